"""The job's lifecycle: what a job process opens besides its dataflow, and closes at its end.

``JobResources(settings).open()`` checks that Kafka lets the job in, loads the model (and an experiment's
candidate), the policy store and the data-quality suites, creates missing
topics (in embedded mode, the output directory), emits the lineage run's START, starts the GX side
process and the Prometheus endpoint, and prints the banner; ``close()`` emits COMPLETE, FAIL
or ABORT and stops what it started. ``flows.coaching.get_flow`` only wires
steps around an opened ``JobResources``; the module's ``flow`` (what
``python -m bytewax.run flows.coaching:flow`` runs) opens one and closes it
when the process ends. Used as a context manager in tests and tools:

    with JobResources(settings) as job:
        run_main(get_flow(settings, job))
"""

from __future__ import annotations

import atexit
import logging
import sys
from types import TracebackType

from coachflow import metrics
from coachflow.config import Settings
from coachflow.private import private_dir, private_file
from coachflow.security import check_job_access
from coachflow.topics import ensure_topics
from lineage import Lineage, RunState, install_exit_hooks
from lineage.job import job_lineage
from models.registry import load_scorer
from operators.experiment import Arms
from operators.policy import PolicyStore
from operators.privacy import MaskingFilter
from operators.quality import Gate, QualityMonitor, Suite, load_suites
from operators.scoring import Scorer


def configure_logging(level: str) -> None:
    """``coachflow.*`` log lines to stderr (unless the host application configured logging), personal
    data masked (``MaskingFilter`` on every handler of the ``coachflow`` logger)."""
    root = logging.getLogger("coachflow")
    if not root.handlers:
        stderr = logging.StreamHandler(sys.stderr)
        stderr.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        root.addHandler(stderr)
        root.setLevel(level.upper())
        root.propagate = False
    for handler in root.handlers:
        if not any(isinstance(f, MaskingFilter) for f in handler.filters):
            handler.addFilter(MaskingFilter())


class JobResources:
    """What one job process opens for its dataflow; see the module docstring.

    Attributes are set by ``open``: ``scorer``, ``policies``, ``suites``, ``gate``,
    ``arms`` (None without an experiment), ``lineage``, ``monitor`` (None when
    the GX monitor is off) and ``metrics`` (None when metrics are off).
    """

    scorer: Scorer
    policies: PolicyStore
    suites: dict[str, Suite]
    gate: Gate
    arms: Arms | None
    lineage: Lineage
    monitor: QualityMonitor | None
    metrics: metrics.JobMetrics | None

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.opened = False
        self.closed = False

    def open(self) -> JobResources:
        """Open everything once (a second call does nothing)."""
        if self.opened:
            return self
        settings = self.settings
        configure_logging(settings.log_level)
        if settings.kafka_mode:
            check_job_access(
                settings
            )  # credentials or rights Kafka refuses stop the job here, before it loads
        self.scorer = load_scorer(settings.model, threads=settings.onnx_threads)
        self.policies = settings.policy_store()
        self.suites = load_suites(settings.quality_suites)
        self.gate = Gate(self.suites)
        self.arms = experiment_arms(settings, self.scorer, self.policies)
        if settings.kafka_mode and settings.create_topics:
            ensure_topics(settings)
        if not settings.kafka_mode:  # outputs hold personal data: owner-only before the sink appends to them
            directory = private_dir(settings.output_dir)
            for kind in settings.outputs():
                private_file(directory / f"{kind}.jsonl")
        self.lineage = self._start_lineage()
        self.monitor = self._start_monitor()
        self.metrics = start_metrics(settings)
        self.opened = True
        if settings.should_print:
            self._banner()
        return self

    def close(self, error: BaseException | None = None) -> None:
        """End the run: lineage COMPLETE (FAIL with ``error``, ABORT for an interrupt), the GX
        monitor's last validation, the consumer-lag thread."""
        if not self.opened or self.closed:
            return
        self.closed = True
        if self.monitor is not None:
            self.monitor.close()
        if self.metrics is not None and self.metrics.lag is not None:
            self.metrics.lag.stop()
        end_run(self.lineage, error)

    def close_at_exit(self) -> None:
        """Close when the process ends (a ``bytewax.run`` process: the run loop is Bytewax's).

        The lineage exit hooks say how it ended (an uncaught exception, Ctrl-C or SIGTERM).
        """
        install_exit_hooks()
        atexit.register(self._close_at_exit)

    def _close_at_exit(self) -> None:
        from lineage import ending_error

        self.close(ending_error())

    def __enter__(self) -> JobResources:
        return self.open()

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close(error)

    @property
    def redactor(self):
        """The PII redactor of the policy in force (read per batch: a new policy takes over at once)."""
        return self.policies.current().redactor

    # -- what open() starts -------------------------------------------------------------------------------
    def _start_lineage(self) -> Lineage:
        settings, entry, policy = self.settings, self.scorer.registry_entry, self.policies.current()
        lineage = job_lineage(
            settings,
            settings.lineage_config(),
            model={"name": entry["name"], "version": entry["version"], "sha256": entry["sha256"]},
            policy={"name": policy.name, "version": policy.version, "hash": policy.hash},
            suites=[suite.label for suite in self.suites.values()],
        )
        lineage.start()
        return lineage

    def _start_monitor(self) -> QualityMonitor | None:
        settings = self.settings
        if not settings.quality_monitor:
            return None
        monitor = QualityMonitor(
            settings.quality_suites, settings.quality_batch_rows, settings.quality_interval_s,
            on_result=self.lineage.update_quality,
        )
        monitor.start()
        return monitor

    def _banner(self) -> None:
        settings, policy = self.settings, self.policies.current()
        where = (
            f"Kafka {settings.brokers}" if settings.kafka_mode
            else f"{settings.input} -> {settings.output_dir}/{{{','.join(settings.outputs())}}}.jsonl"
        )
        print(
            f"coachflow: {where}; model {self.scorer.version}, policy {policy.name} {policy.version}, "
            f"lineage run {self.lineage.run_id} ({settings.lineage})",
            file=sys.stderr,
        )


def end_run(lineage: Lineage, error: BaseException | None) -> None:
    """The run's last lineage event: ABORT for an interrupt, FAIL with ``error``, else COMPLETE."""
    if isinstance(error, KeyboardInterrupt):
        lineage.finish(RunState.ABORT)
    elif error is not None:
        lineage.finish(RunState.FAIL, error)
    else:
        lineage.finish(RunState.COMPLETE)


def start_metrics(settings: Settings) -> metrics.JobMetrics | None:
    """The Prometheus endpoint of this process (port + process index) and the hot-path hook.

    None when metrics are off. The endpoint starts once per process; in Kafka
    mode a background thread keeps the consumer-lag gauge.
    """
    base = settings.metrics_base_port
    if base is None:
        return None
    port = base + metrics.process_index()
    if port > 65_535:  # noqa: PLR2004 - the highest TCP port
        logging.getLogger("coachflow.metrics").warning("metrics port %d out of range: no endpoint", port)
    else:
        metrics.serve(settings.metrics_host, port)
    lag = None
    if settings.kafka_mode:
        lag = metrics.ConsumerLag(settings.kafka_client(), settings.metrics_lag_interval_s)
        lag.start()
    experiment = settings.experiment
    return metrics.JobMetrics(
        lag, experiment=None if experiment is None else (experiment.name, experiment.share)
    )


def experiment_arms(settings: Settings, scorer: Scorer, policies: PolicyStore) -> Arms | None:
    """The experiment's arms (its candidate model and policy loaded once per process), or None."""
    experiment = settings.experiment
    if experiment is None:
        return None
    candidate_scorer = (
        load_scorer(experiment.model, threads=settings.onnx_threads) if experiment.model is not None else None
    )
    candidate_policies = (
        settings.model_copy(update={"policy": experiment.policy, "policy_topic": None}).policy_store()
        if experiment.policy is not None else None
    )
    return Arms(
        control_scorer=scorer, control_policies=policies,
        candidate_scorer=candidate_scorer, candidate_policies=candidate_policies,
        name=experiment.name, share=experiment.share,
    )
