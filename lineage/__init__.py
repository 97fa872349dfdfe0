"""OpenLineage for the coaching job: what it reads and writes, under which
schemas, model, policy and data-quality results.

One ``Lineage`` per job process emits a ``START`` when the flow is built,
``RUNNING`` every ``interval_s``, and ``COMPLETE``, ``FAIL`` or ``ABORT`` when
the process ends. Events go through openlineage-python's transports (a file,
HTTP to a catalog such as Marquez, or Kafka) from a background thread with a
bounded queue: emitting never blocks the stream, and a catalog that is down
costs lineage events (logged and counted), never turns.

Facets: job type (STREAMING, BYTEWAX); the processing engine; a ``coachflow``
run facet naming the model and policy versions; Kafka datasets named by the
OpenLineage naming spec (namespace ``kafka://host:port``, name = topic) or
files (namespace ``file``, name = path); a schema facet per dataset from the
topic contracts; data-quality assertions on the inputs from the GX results;
column lineage for suggestions and decisions.
"""

from __future__ import annotations

import atexit
import logging
import os
import queue
import signal
import socket
import sys
import threading
import traceback
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import attr
from openlineage.client import OpenLineageClient
from openlineage.client.event_v2 import InputDataset, Job, OutputDataset, Run, RunEvent, RunState
from openlineage.client.facet_v2 import (
    DatasetFacet,
    RunFacet,
    column_lineage_dataset,
    data_quality_assertions_dataset,
    data_quality_metrics_input_dataset,
    dataset_version_dataset,
    documentation_job,
    error_message_run,
    job_type_job,
    processing_engine_run,
    schema_dataset,
)
from openlineage.client.uuid import generate_new_uuid

from coachflow.private import private_file
from operators.records import SHAPED

log = logging.getLogger("coachflow.lineage")

PRODUCER = "https://coachflow.dev/lineage"


@attr.define
class CoachflowRunFacet(RunFacet):
    """The model, policy and data-quality suites a run used (schema: ``facets/CoachflowRunFacet.json``)."""

    model: dict
    policy: dict
    qualitySuites: list[str]  # noqa: N815

    def __attrs_post_init__(self) -> None:
        self._producer = self._producer or PRODUCER  # coachflow's facet, not the client's
        super().__attrs_post_init__()

    @staticmethod
    def _get_schema() -> str:
        return "https://coachflow.dev/lineage/facets/CoachflowRunFacet.json#/$defs/CoachflowRunFacet"


@dataclass(frozen=True)
class LineageConfig:
    """See the ``COACH_LINEAGE_*`` settings."""

    transport: str = "file"
    """``file``, ``http``, ``kafka`` or ``none``."""
    file: Path = Path("out/lineage.jsonl")
    url: str | None = None
    brokers: str | None = None
    kafka_config: Mapping[str, object] = field(default_factory=dict, repr=False)
    """The kafka transport's librdkafka configuration.

    It is ``Settings.kafka_client``: credentials, the log's route.
    """
    topic: str = "openlineage.events"
    namespace: str = "coachflow"
    job: str = "coaching"
    interval_s: float = 60.0
    run_id: str | None = None


def make_client(config: LineageConfig) -> OpenLineageClient | None:
    """The openlineage-python client for the configured transport."""
    if config.transport == "none":
        return None
    if config.transport == "file":
        from openlineage.client.transport.file import FileConfig, FileTransport

        private_file(config.file)  # the events name the job's datasets: owner only, as its outputs
        return OpenLineageClient(
            transport=FileTransport(FileConfig(log_file_path=str(config.file), append=True))
        )
    if config.transport == "http":
        from openlineage.client.transport.http import HttpConfig, HttpTransport

        if not config.url:
            raise ValueError("COACH_LINEAGE_URL is required for the http transport")
        return OpenLineageClient(transport=HttpTransport(HttpConfig(url=config.url, timeout=5.0)))
    if config.transport == "kafka":
        from openlineage.client.transport.kafka import KafkaConfig, KafkaTransport

        if not config.brokers:
            raise ValueError("the kafka lineage transport needs brokers (COACH_BROKERS)")
        return OpenLineageClient(transport=KafkaTransport(KafkaConfig(
            config={"bootstrap.servers": config.brokers, "client.id": "coachflow-lineage",
                    **{key: str(value) for key, value in config.kafka_config.items()}},
            topic=config.topic, flush=True,
        )))
    raise ValueError(f"unknown lineage transport {config.transport!r}")


@dataclass(frozen=True)
class DatasetSpec:
    namespace: str
    name: str
    contract: str | None
    """The schemas/ contract describing its records (a CONTRACTS key)."""
    suite: str | None = None
    """The data-quality suite judging it (inputs)."""


def schema_facet(contract: str) -> schema_dataset.SchemaDatasetFacet:
    """Top-level fields of a contract's JSON Schema (all variants of a union)."""
    from schemas import json_schema

    schema = json_schema(contract)
    defs = schema.get("$defs", {})
    variants = [defs[ref["$ref"].split("/")[-1]] for ref in schema.get("oneOf", [])] or [schema]
    fields: dict[str, schema_dataset.SchemaDatasetFacetFields] = {}
    for variant in variants:
        for name, prop in variant.get("properties", {}).items():
            kind = prop.get("type") or ("union" if "anyOf" in prop else "object")
            fields.setdefault(name, schema_dataset.SchemaDatasetFacetFields(
                name=name, type=str(kind), description=prop.get("description")
            ))
    return schema_dataset.SchemaDatasetFacet(fields=list(fields.values()))


class Lineage:
    """Emits the job run's OpenLineage events, off the hot path."""

    def __init__(
        self,
        config: LineageConfig,
        inputs: list[DatasetSpec],
        outputs: list[DatasetSpec],
        run_facet: CoachflowRunFacet,
        column_lineage: dict[str, column_lineage_dataset.ColumnLineageDatasetFacet] | None = None,
        description: str = "",
    ) -> None:
        self.config = config
        self.run_id = config.run_id or str(generate_new_uuid())
        self.inputs = inputs
        self.outputs = outputs
        self.run_facet = run_facet
        self.column_lineage = column_lineage or {}
        self.description = description
        self.quality: dict[str, dict] = {}
        #: Input dataset name -> its version, as the next events report it (a knowledge base's, say).
        self.versions: dict[str, str] = {}
        self.emitted = 0
        self.failed = 0
        self.dropped = 0
        self.finished: str | None = None
        self._client = make_client(config)
        self._queue: queue.Queue = queue.Queue(maxsize=1000)
        self._stop = threading.Event()
        self._sender = threading.Thread(target=self._send, name="lineage-sender", daemon=True)
        self._ticker = threading.Thread(target=self._tick, name="lineage-running", daemon=True)
        self._error: BaseException | None = None
        self._lock = threading.Lock()

    # -- lifecycle ------------------------------------------------------------------
    def start(self) -> None:
        if self._client is None:
            return
        self._sender.start()
        self._emit(RunState.START)
        self._ticker.start()
        _ACTIVE.append(self)

    def update_quality(self, summary: dict) -> None:
        """Take a GX micro-batch result (``QualityMonitor.on_result``)."""
        self.quality[summary["suite"]] = summary

    def finish(self, state: RunState, error: BaseException | None = None, wait: float = 10.0) -> None:
        with self._lock:
            if self._client is None or self.finished is not None:
                return
            self.finished = state.value
        self._stop.set()
        self._emit(state, error)
        self._queue.put(None)
        self._sender.join(wait)

    # -- events -----------------------------------------------------------------------
    def event(self, state: RunState, error: BaseException | None = None) -> RunEvent:
        run_facets = {
            "processing_engine": processing_engine_run.ProcessingEngineRunFacet(
                version=_version("bytewax"),
                name="bytewax",
                openlineageAdapterVersion=_version("openlineage-python"),
            ),
            "coachflow": self.run_facet,
        }
        if error is not None:
            # An exception's text may quote a record: shaped personal data is masked, as in dead letters.
            run_facets["errorMessage"] = error_message_run.ErrorMessageRunFacet(
                message=SHAPED.redact(f"{type(error).__name__}: {error}")[0][:2000],
                programmingLanguage="python",
                stackTrace=SHAPED.redact("".join(traceback.format_exception(error)))[0][-8000:],
            )
        job = Job(
            namespace=self.config.namespace,
            name=self.config.job,
            facets={
                "jobType": job_type_job.JobTypeJobFacet(
                    processingType="STREAMING", integration="BYTEWAX", jobType="JOB"
                ),
                "documentation": documentation_job.DocumentationJobFacet(description=self.description),
            },
        )
        return RunEvent(
            eventType=state,
            eventTime=datetime.now(UTC).isoformat(),
            run=Run(runId=self.run_id, facets=run_facets),
            job=job,
            inputs=[self._input(spec) for spec in self.inputs],
            outputs=[self._output(spec) for spec in self.outputs],
            producer=PRODUCER,
        )

    def _input(self, spec: DatasetSpec) -> InputDataset:
        facets: dict[str, DatasetFacet] = {"schema": schema_facet(spec.contract)} if spec.contract else {}
        version = self.versions.get(spec.name)
        if version is not None:
            facets["version"] = dataset_version_dataset.DatasetVersionDatasetFacet(datasetVersion=version)
        input_facets: dict = {}
        summary = self.quality.get(spec.suite) if spec.suite else None
        if summary is not None:
            assertions = [
                data_quality_assertions_dataset.Assertion(
                    assertion=r["id"], success=r["success"], column=r["column"], severity=r["severity"],
                    description=r.get("description"),
                )
                for r in summary["results"]
            ]
            input_facets["dataQualityAssertions"] = (
                data_quality_assertions_dataset.DataQualityAssertionsDatasetFacet(assertions=assertions)
            )
            input_facets["dataQualityMetrics"] = (
                data_quality_metrics_input_dataset.DataQualityMetricsInputDatasetFacet(
                    rowCount=summary["rows"], columnMetrics={}
                )
            )
        return InputDataset(namespace=spec.namespace, name=spec.name, facets=facets, inputFacets=input_facets)

    def _output(self, spec: DatasetSpec) -> OutputDataset:
        facets: dict[str, DatasetFacet] = {"schema": schema_facet(spec.contract)} if spec.contract else {}
        if spec.contract in self.column_lineage:
            facets["columnLineage"] = self.column_lineage[spec.contract]
        return OutputDataset(namespace=spec.namespace, name=spec.name, facets=facets)

    # -- plumbing -------------------------------------------------------------------
    def _emit(self, state: RunState, error: BaseException | None = None) -> None:
        try:
            self._queue.put_nowait(self.event(state, error))
        except queue.Full:
            self.dropped += 1
            log.warning("lineage queue full: %s event dropped", state.value)

    def _send(self) -> None:
        client = self._client
        if client is None:
            return
        while True:
            event = self._queue.get()
            if event is None:
                return
            try:
                client.emit(event)
                self.emitted += 1
            except Exception as exc:  # noqa: BLE001 - a catalog outage costs lineage, never turns
                self.failed += 1
                log.warning("lineage %s event not delivered: %s", event.eventType.value, exc)

    def _tick(self) -> None:
        while not self._stop.wait(self.config.interval_s):
            self._emit(RunState.RUNNING)


def _version(package: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(package)
    except PackageNotFoundError:
        return "unknown"


# -- how the process ends ----------------------------------------------------------------
_ACTIVE: list[Lineage] = []
_ENDING: dict[str, BaseException | None] = {"error": None}


def ending_error() -> BaseException | None:
    """How this process is ending: the uncaught exception, a ``KeyboardInterrupt`` for Ctrl-C or
    SIGTERM, or None for a normal exit (read in an exit hook, after ``install_exit_hooks``)."""
    error = _ENDING["error"]
    if _interrupted(error):
        return KeyboardInterrupt()
    return error


def _excepthook(kind, value, tb) -> None:
    _ENDING["error"] = value
    _previous_excepthook(kind, value, tb)


def _interrupted(error: BaseException | None) -> bool:
    """An interrupt, even wrapped by Bytewax (which re-raises it as the cause of its own error)."""
    seen = 0
    while error is not None and seen < 10:  # noqa: PLR2004 - a bound on a cycle of causes
        if isinstance(error, KeyboardInterrupt):
            return True
        error, seen = error.__cause__ or error.__context__, seen + 1
    return False


def _at_exit() -> None:
    error = _ENDING["error"]
    for lineage in list(_ACTIVE):
        if _interrupted(error):
            lineage.finish(RunState.ABORT)
        elif error is not None:
            lineage.finish(RunState.FAIL, error)
        else:
            lineage.finish(RunState.COMPLETE)


def _on_sigterm(signum, frame) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


_previous_excepthook = sys.excepthook


_HOOKS: list[bool] = []  # one entry once the hooks are installed


def install_exit_hooks() -> None:
    """COMPLETE on a normal exit, FAIL on an uncaught exception, ABORT on Ctrl-C or SIGTERM."""
    if _HOOKS:
        return
    _HOOKS.append(True)
    sys.excepthook = _excepthook
    atexit.register(_at_exit)
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _on_sigterm)


def kafka_namespace(brokers: str) -> str:
    """``kafka://host:port`` of the first bootstrap server (the OpenLineage naming spec)."""
    return "kafka://" + brokers.split(",", maxsplit=1)[0].strip()


def file_namespace() -> str:
    return "file"


def host() -> str:
    return os.environ.get("HOSTNAME") or socket.gethostname()
