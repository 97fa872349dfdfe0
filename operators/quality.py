"""Data-quality gates from Great Expectations suites, and GX beside the hot path.

The suites in ``data-quality/suites/*.json`` (GX 1.x expectation suites) are
the one source of truth. Each expectation has a ``severity``:

- ``critical`` expectations are enforced per record on the hot path by
  ``Gate``: plain Python compiled from the same JSON (no GX import, a few
  microseconds a record). A record failing one goes to the dead letters,
  reason ``quality_check_failed``, naming the expectation.
- ``warning`` expectations are measured: the gate notes them in the
  decision, and GX itself validates micro-batches of the same rows in a
  separate process (``QualityMonitor``), whose results become metrics and
  OpenLineage data-quality facets. GX's fixed cost (tens of milliseconds a
  validation, seconds to import) never touches a turn's latency.

``quality_row`` flattens a record into the row both see, so the gate and GX
judge the same values. Expectations with ``meta.batch_only`` (the sequence
step within a conversation) need neighbouring rows and run in GX only.
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
import threading
import time
import zlib
from collections.abc import Callable
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import bytewax.operators as op
from bytewax.dataflow import Stream, operator
from pydantic_core import to_json

from operators.boundary import Boundary
from operators.envelope import Envelope
from operators.records import refuse_quality
from schemas import (
    ConversationEnd,
    ConversationStart,
    CustomerContext,
    DeadLetter,
    Feedback,
    KbResult,
    TaskSelected,
    Turn,
)

log = logging.getLogger("coachflow.quality")

SUITES_DIR = Path(__file__).resolve().parents[1] / "data-quality" / "suites"
EVENTS_SUITE = "conversation_events"
CONTEXT_SUITE = "customer_context"
_CONDITION = re.compile(r'^\s*(\w+)\s*==\s*"([^"]*)"\s*$')


# -- rows ------------------------------------------------------------------------
def quality_row(envelope: Envelope) -> dict:
    """The flat row a record is judged on (by the gate and by GX)."""
    record = envelope.record
    received = envelope.received_ns / 1e9
    if isinstance(record, CustomerContext):
        return {
            "customer_id": record.customer_id,
            "tier": record.tier,
            "jurisdiction": record.jurisdiction,
            "language": record.language,
            "open_cases": record.open_cases,
            "updated_at_skew_s": round(record.updated_at.timestamp() - received, 3),
        }
    if isinstance(record, Feedback):
        raise TypeError("feedback has no quality row: it goes straight to the acceptance step")
    row: dict[str, object] = {
        "type": record.type,
        "event_id": record.event_id,
        "conversation_id": record.conversation_id,
        "customer_id": record.customer_id,
        "agent_id": record.agent_id,
        "channel": record.channel,
        "sequence": record.sequence,
        "event_time_skew_s": round(record.event_time.timestamp() - received, 3),
        "speaker": None,
        "text_length": None,
        "kb_total_items": None,
    }
    if isinstance(record, Turn):
        row["speaker"] = record.speaker
        row["text_length"] = len(record.text)
    elif isinstance(record, KbResult):
        row["kb_total_items"] = record.total_items
    elif not isinstance(record, (ConversationStart, ConversationEnd, TaskSelected)):
        raise TypeError(f"no quality row for {type(record).__name__}")
    return row


def suite_of(envelope: Envelope) -> str:
    return CONTEXT_SUITE if isinstance(envelope.record, CustomerContext) else EVENTS_SUITE


# -- suites and the gate ------------------------------------------------------------
@dataclass(frozen=True)
class Expectation:
    id: str
    type: str
    column: str
    severity: str
    kwargs: dict
    condition: tuple[str, str] | None
    batch_only: bool
    check: Callable[[object], bool] | None = field(compare=False, default=None)


@dataclass(frozen=True)
class Suite:
    name: str
    version: str
    expectations: tuple[Expectation, ...]
    body: dict = field(compare=False, repr=False)

    @property
    def label(self) -> str:
        return f"{self.name}@{self.version}"


def _checker(kind: str, kw: dict) -> Callable[[object], bool]:
    """A per-value predicate with GX's semantics (nulls pass everything but not_be_null)."""
    if kind == "expect_column_values_to_not_be_null":
        return lambda v: v is not None
    if kind == "expect_column_values_to_be_in_set":
        allowed = frozenset(kw["value_set"])
        return lambda v: v is None or v in allowed
    if kind == "expect_column_values_to_match_regex":
        pattern = re.compile(kw["regex"])
        return lambda v: v is None or pattern.search(str(v)) is not None
    if kind in ("expect_column_values_to_be_between", "expect_column_value_lengths_to_be_between"):
        low, high = kw.get("min_value"), kw.get("max_value")
        strict_low, strict_high = kw.get("strict_min", False), kw.get("strict_max", False)
        measure = len if kind == "expect_column_value_lengths_to_be_between" else (lambda v: v)

        def between(v) -> bool:
            if v is None:
                return True
            x = measure(v)
            if low is not None and (x <= low if strict_low else x < low):
                return False
            return not (high is not None and (x >= high if strict_high else x > high))

        return between
    raise ValueError(f"the gate does not implement {kind}")


def load_suite(path: Path | str) -> Suite:
    body = json.loads(Path(path).read_text())
    expectations = []
    for e in body["expectations"]:
        kw = dict(e["kwargs"])
        condition = None
        cond = kw.get("row_condition")
        if cond:
            text = cond["pass_through_filter"] if isinstance(cond, dict) else cond
            match = _CONDITION.match(text)
            if match is None:
                raise ValueError(f"unsupported row_condition {text!r} in {path}")
            condition = (match.group(1), match.group(2))
        meta = e.get("meta") or {}
        batch_only = bool(meta.get("batch_only")) or kw.get("column", "").endswith("_step")
        expectations.append(Expectation(
            id=meta.get("id") or f"{e['type']}:{kw.get('column')}",
            type=e["type"],
            column=kw["column"],
            severity=e.get("severity", "critical"),
            kwargs=kw,
            condition=condition,
            batch_only=batch_only,
            check=None if batch_only else _checker(e["type"], kw),
        ))
    return Suite(body["name"], (body.get("meta") or {}).get("version", "0"), tuple(expectations), body)


def load_suites(directory: Path | str = SUITES_DIR) -> dict[str, Suite]:
    return {s.name: s for s in (load_suite(p) for p in sorted(Path(directory).glob("*.json")))}


@dataclass(frozen=True)
class Verdict:
    suite: str
    critical: list[str]
    warnings: list[str]


class Gate:
    """The suites' per-record expectations, compiled."""

    def __init__(self, suites: dict[str, Suite]) -> None:
        self.suites = suites
        self._plans = {
            name: [e for e in suite.expectations if not e.batch_only] for name, suite in suites.items()
        }

    def judge(self, suite: str, row: dict) -> Verdict:
        critical: list[str] = []
        warnings: list[str] = []
        for e in self._plans[suite]:
            if e.condition is not None and row.get(e.condition[0]) != e.condition[1]:
                continue
            if e.check is not None and not e.check(row.get(e.column)):
                (critical if e.severity == "critical" else warnings).append(e.id)
        return Verdict(self.suites[suite].label, critical, warnings)


@dataclass(frozen=True)
class GateOut:
    oks: Stream[Envelope]
    errs: Stream[DeadLetter]


@operator
def quality_gate(
    step_id: str,
    up: Stream[Envelope],
    gate: Gate,
    payload_limit: int,
    observe: Callable[[list[tuple[str, dict]]], None] | None = None,
    boundary: Boundary | None = None,
) -> GateOut:
    """Enforce the suites' critical expectations per record; note the warnings.

    :arg step_id: Unique ID.
    :arg up: Parsed records.
    :arg gate: The compiled suites.
    :arg payload_limit: Dead letters keep at most this many bytes.
    :arg observe: Gets each batch's ``(suite, row)`` of the records that
        passed, for GX beside the hot path (``QualityMonitor.add``: a list
        append; the validation happens in another process).
    :arg boundary: How a failure on one record becomes its dead letter (default: named after the step).
    :returns: ``GateOut(oks, errs)``.
    """
    boundary = boundary or Boundary(step_id, payload_limit)

    def judge(batch: list[Envelope]) -> list:
        out: list = []
        rows: list[tuple[str, dict]] = []
        for envelope in batch:
            try:
                suite = suite_of(envelope)
                row = quality_row(envelope)
                verdict = gate.judge(suite, row)
            except Exception as error:  # noqa: BLE001 - the step's error boundary
                out += boundary.failed(envelope, error)
                continue
            boundary.passed()
            if verdict.critical:
                out.append(refuse_quality(envelope, verdict, payload_limit))
                continue
            envelope.quality = verdict
            out.append(envelope)
            rows.append((suite, row))
        if observe is not None and rows:
            observe(rows)
        return out

    judged = op.flat_map_batch("judge", up, judge)
    passed = op.branch("passed", judged, lambda x: isinstance(x, Envelope))
    return GateOut(oks=passed.trues, errs=passed.falses)


# -- GX beside the hot path ------------------------------------------------------------
_GX: dict = {}


def _gx_init(suites_dir: str) -> None:
    """In the validator process: import GX once, load the suites into an ephemeral context."""
    import logging as _logging
    import os
    import signal

    os.nice(10)  # the stream comes first when the two compete for a core
    # The job decides when this process ends (it validates the last rows on
    # the way out): a Ctrl-C or SIGTERM sent to the process group is its business.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)

    import great_expectations as gx

    _logging.getLogger("great_expectations").setLevel(_logging.ERROR)
    context = gx.get_context(mode="ephemeral")
    with contextlib.suppress(Exception):  # an older layout of the setting
        context.variables.progress_bars = {"globally": False, "metric_calculations": False}  # type: ignore[assignment]
    source = context.data_sources.add_pandas("coachflow")
    _GX["suites"] = {}
    _GX["batches"] = {}
    for path in sorted(Path(suites_dir).glob("*.json")):
        body = json.loads(path.read_text())
        suite = gx.ExpectationSuite(
            **{k: v for k, v in body.items() if k in ("name", "expectations", "meta", "notes")}
        )
        _GX["suites"][body["name"]] = (suite, (body.get("meta") or {}).get("version", "0"))
        asset = source.add_dataframe_asset(body["name"])
        _GX["batches"][body["name"]] = asset.add_batch_definition_whole_dataframe("micro_batch")


def _with_steps(rows: list[dict]) -> list[dict]:
    """Add ``sequence_step``: the change from the previous event of the same conversation."""
    last: dict[str, int] = {}
    out = []
    for row in rows:
        if "sequence" in row:
            conversation = row["conversation_id"]
            previous = last.get(conversation)
            step = None if previous is None else row["sequence"] - previous
            last[conversation] = max(row["sequence"], previous if previous is not None else row["sequence"])
            out.append({**row, "sequence_step": step})
        else:
            out.append(row)
    return out


def _warm() -> bool:
    return True


def gx_validate(suite_name: str, rows: list[dict] | bytes, observed: int | None = None) -> dict:
    """Validate one micro-batch with GX; a summary of each expectation's result.

    ``rows`` may come JSON-encoded (cheaper to hand across processes);
    ``observed`` is how many rows the stream had in the interval (the batch
    may be a sample of them).
    """
    import pandas as pd

    table: list[dict] = json.loads(rows) if isinstance(rows, bytes) else rows
    suite, version = _GX["suites"][suite_name]
    frame = pd.DataFrame(_with_steps(table) if suite_name == EVENTS_SUITE else table)
    started = time.perf_counter()
    result = _GX["batches"][suite_name].get_batch(batch_parameters={"dataframe": frame}).validate(
        suite, result_format={"result_format": "COMPLETE"}
    )
    results = []
    for r in result.results:
        config = r.expectation_config
        results.append({
            "id": (config.meta or {}).get("id") or config.type,
            "type": config.type,
            "description": config.description,
            "column": config.kwargs.get("column"),
            "severity": str(getattr(config.severity, "value", config.severity)),
            "success": bool(r.success),
            "unexpected_count": int(r.result.get("unexpected_count") or 0),
            "unexpected_percent": float(r.result.get("unexpected_percent") or 0.0),
            "unexpected_index_list": list(r.result.get("unexpected_index_list") or []),
        })
    return {
        "suite": suite_name,
        "version": version,
        "rows": len(table),
        "observed_rows": len(table) if observed is None else observed,
        "success": bool(result.success),
        "validated_in_ms": round((time.perf_counter() - started) * 1000, 1),
        "results": results,
    }


class QualityMonitor:
    """Has GX validate a bounded micro-batch of the stream every ``interval_s``, in another process.

    ``add`` runs on the hot path and only appends: rows of a sample of whole
    conversations (customers, for context), sized so that an interval holds
    about ``max_rows`` rows per suite (everything, at modest rates). The
    sample fraction follows the previous interval's rate; whole conversations
    keep the batch-only sequence check meaningful. A timer thread encodes each
    interval's rows in small chunks (never holding the GIL for long) and hands
    them to the validator process; results land in ``latest`` (per suite) and
    go to ``on_result`` (lineage, metrics).
    """

    CHUNK = 250

    def __init__(
        self,
        suites_dir: Path | str = SUITES_DIR,
        max_rows: int = 5000,
        interval_s: float = 15.0,
        on_result: Callable[[dict], None] | None = None,
    ) -> None:
        self.suites_dir = str(suites_dir)
        self.max_rows = max_rows
        self.interval_s = interval_s
        self.on_result = on_result
        self.latest: dict[str, dict] = {}
        self.validated_rows = 0
        self.failures: list[str] = []
        self._rows: dict[str, list[dict]] = {}
        self._seen: dict[str, int] = {}
        self._keep: dict[str, int] = {}  # suite -> rows kept when crc32(key) % 1000 < this
        self._lock = threading.Lock()
        self._pool: ProcessPoolExecutor | None = None
        self._pending: list[Future] = []
        self._timer: threading.Thread | None = None
        self._closed = threading.Event()

    def start(self) -> None:
        """Start the validator process now (GX takes seconds to import), off the hot path."""
        if self._pool is None:
            import multiprocessing

            self._pool = ProcessPoolExecutor(
                1, mp_context=multiprocessing.get_context("spawn"),
                initializer=_gx_init, initargs=(self.suites_dir,),
            )
            self._pool.submit(_warm)
            # Validate the last rows before the interpreter shuts the pool down:
            # threading's exit hooks run newest first, before concurrent.futures'
            # own (which refuses new work) and before atexit (where lineage
            # sends its final event, with these results).
            threading._register_atexit(self.close)  # type: ignore[attr-defined]
        if self._timer is None:
            self._timer = threading.Thread(target=self._tick, name="quality-monitor", daemon=True)
            self._timer.start()

    def _start_pool(self) -> ProcessPoolExecutor:
        self.start()
        assert self._pool is not None  # start() made it
        return self._pool

    def add(self, items: list[tuple[str, dict]]) -> None:
        with self._lock:
            for suite, row in items:
                self._seen[suite] = self._seen.get(suite, 0) + 1
                key = row.get("conversation_id") or row.get("customer_id") or ""
                if zlib.crc32(key.encode()) % 1000 < self._keep.get(suite, 1000):
                    rows = self._rows.setdefault(suite, [])
                    if len(rows) < self.max_rows:
                        rows.append(row)

    def take(self) -> tuple[dict[str, list[dict]], dict[str, int]]:
        """End the interval: its sampled rows and how many rows each suite saw."""
        with self._lock:
            batches, self._rows = self._rows, {}
            seen, self._seen = self._seen, {}
            for suite, count in seen.items():
                # Next interval: keep about 80% of max_rows of a similar number of
                # rows (the headroom keeps sampled conversations whole).
                self._keep[suite] = max(1, min(1000, int(800 * self.max_rows / max(count, 1))))
        return batches, seen

    def flush(self, wait: float | None = None) -> None:
        """Send the interval's rows to the validator; optionally wait for all results."""
        batches, seen = self.take()
        for suite, rows in batches.items():
            if not rows:
                continue
            pool = self._start_pool()
            payload = _encode(rows, self.CHUNK)
            log.debug("quality monitor: %d of %d %s rows to GX", len(rows), seen.get(suite, 0), suite)
            future = pool.submit(gx_validate, suite, payload, seen.get(suite, len(rows)))
            future.add_done_callback(self._done)
            self._pending.append(future)
        if wait is not None:
            deadline = time.monotonic() + wait
            for future in list(self._pending):
                with contextlib.suppress(Exception):  # logged in _done
                    future.result(timeout=max(0.0, deadline - time.monotonic()))
        self._pending = [f for f in self._pending if not f.done()]

    def _tick(self) -> None:
        while not self._closed.wait(self.interval_s):
            self.flush()

    def _done(self, future: Future) -> None:
        try:
            summary = future.result()
        except Exception as exc:  # noqa: BLE001 - GX trouble must not stop the stream
            self.failures.append(repr(exc))
            log.error("GX validation failed: %r", exc)
            return
        self.latest[summary["suite"]] = summary
        self.validated_rows += summary["rows"]
        level, message = describe(summary)
        log.log(level, "%s", message)
        if self.on_result is not None:
            self.on_result(summary)

    def close(self, wait: float = 60.0) -> None:
        if self._closed.is_set():
            return
        self._closed.set()
        self.flush(wait=wait)
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None


def describe(summary: dict) -> tuple[int, str]:
    """The log level and line of a GX result: the failed expectations, on how many rows, and what it means.

    Warning expectations are only measured (each record's decision notes them);
    critical ones are enforced per record by the gate before GX sees the rows,
    so a critical failure here means GX and the gate disagree (or a batch-only
    check failed): that one is logged as a warning.
    """
    head = (f"GX {summary['suite']}@{summary['version']}: {summary['rows']} of {summary['observed_rows']}"
            f" rows in {summary['validated_in_ms']:.0f} ms")
    failed: dict[str, list[str]] = {}
    for r in summary["results"]:
        if not r["success"]:
            what = f" ({r['description'].rstrip('.')})" if r.get("description") else ""
            count = f"{r['unexpected_count']} of {summary['rows']} rows"
            failed.setdefault(r["severity"], []).append(f"{r['id']}{what} on {count}")
    if not failed:
        return logging.INFO, f"{head}: every expectation passed"
    parts = []
    if "critical" in failed:
        parts.append("critical expectations failed on rows the per-record gate had passed: "
                     + ", ".join(failed.pop("critical")))
        level = logging.WARNING
    else:
        level = logging.INFO
    for severity, names in failed.items():
        parts.append(f"{severity} expectations failed (measured only, no record held back): "
                     + ", ".join(names))
    return level, f"{head}; " + "; ".join(parts)


def _encode(rows: list[dict], chunk: int) -> bytes:
    """Rows as one JSON array, encoded a chunk at a time so the hot path gets the GIL between."""
    parts = []
    for i in range(0, len(rows), chunk):
        parts.append(to_json(rows[i:i + chunk])[1:-1])
        time.sleep(0)
    return b"[" + b",".join(parts) + b"]"
