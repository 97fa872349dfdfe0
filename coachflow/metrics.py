"""Prometheus metrics of the job, served on ``/metrics`` once per process.

Every label value is a bounded enum (an output kind, a decision outcome, a
dead-letter reason, a stage, a policy's rule id and verdict, an input topic
and partition): never an id, a key or any text from a record.

- ``JobMetrics.observe`` is the hot-path hook: an ``op.inspect`` on the stream
  of published records, just before serialisation. It counts records by kind
  and outcome, dead letters by reason and rule firings, and observes each
  decision's stage latencies and its end-to-end latency (from the input's
  Kafka timestamp to this moment; embedded mode has no such timestamp).
  It only adds to plain ints and floats of its thread's tally, without a
  lock (prometheus_client's own Counter and Histogram take a lock per
  increment, which the hot path would pay several times a record); a
  collector sums the tallies when Prometheus scrapes. ``bench/metrics_hook.py``
  measures the hook (docs/performance.md).
- ``ConsumerLag`` is a background thread: ``read_inputs`` notes the next
  offset to read of each input partition this process reads
  (``JobMetrics.positions``, a dict write per record) and the thread fetches
  the partitions' high watermarks every few seconds, so the stream never
  waits for the broker.
- ``serve`` starts the HTTP server (``prometheus_client.start_http_server``)
  at most once per process, whatever the number of workers or flows built.

Metrics live in prometheus_client's default registry, so the process and
GC collectors come along and Bytewax's own dataflow API (``/metrics`` when
``BYTEWAX_DATAFLOW_API_ENABLED`` is set) shows them too.
"""

from __future__ import annotations

import argparse
import atexit
import logging
import os
import sys
import threading
import time
from bisect import bisect_left
from collections.abc import Callable, Iterator, Mapping, Sequence
from operator import attrgetter
from threading import get_ident
from typing import get_args

from prometheus_client import REGISTRY, Gauge, start_http_server
from prometheus_client.metrics_core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

from coachflow.kafka_log import client_config
from operators.boundary import FAILURES
from operators.experiment import assign
from schemas import OUTPUT_KIND, Acceptance, Alert, DeadLetter, Decision, KnowledgeDecision
from schemas.outputs import DeadLetterReason

log = logging.getLogger("coachflow.metrics")

#: Stage latencies: a tenth of a millisecond (guardrails) to the context wait (2 s by default).
STAGE_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
#: End to end: includes the wait for context and any backlog in Kafka.
E2E_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
#: ``StageLatency`` field -> ``stage`` label.
STAGES = (
    ("join_wait_ms", "join_wait"),
    ("conversation_ms", "conversation"),
    ("score_ms", "score"),
    ("guard_ms", "guard"),
    ("total_ms", "total"),
)
_stage_values = attrgetter(*(field for field, _ in STAGES))
_STAGE_BOUNDS_MS = tuple(round(bound * 1000, 6) for bound in STAGE_BUCKETS)  # the hot path stays in ms
OUTCOMES = ("shown", "suppressed", "recorded")
REASONS = (*get_args(DeadLetterReason), "other")
#: Output kind of each published record type besides decisions (counted with outcome "published").
PUBLISHED = {record: kind for record, kind in OUTPUT_KIND.items() if record is not Decision}
RECORD_LABELS = (*(("decisions", o) for o in OUTCOMES), *((k, "published") for k in PUBLISHED.values()))
#: Rule ids come from the policy in force; more distinct ids than this are counted as "other".
MAX_RULE_IDS = 100
#: Model and policy versions counted by name; more distinct ones are counted as "other".
MAX_VERSIONS = 20
#: The ``arm`` label outside an experiment.
NO_ARM = "none"

CONSUMER_LAG = Gauge(
    "coachflow_consumer_lag",
    "Records not yet read: high watermark minus the next offset to read, per input partition of this"
    " process.",
    ["topic", "partition"],
)


class _Tally:
    """One thread's counts. Only its own thread writes it (no lock on the hot path);
    the collector sums every thread's tallies at scrape time."""

    __slots__ = ("records", "dead", "rules", "stages", "stage_sums", "e2e", "e2e_sum",
                 "accept", "accept_versions", "arm_decisions", "arm_latency", "arm_latency_sum", "arm_alerts",
                 "knowledge", "retrieval", "retrieval_sum")

    def __init__(self) -> None:
        self.knowledge: dict[tuple[str, str], int] = {}  # (outcome, reason) of knowledge decisions
        self.retrieval = [0] * (len(STAGE_BUCKETS) + 1)  # knowledge retrieval latency buckets
        self.retrieval_sum = 0.0  # milliseconds
        self.accept: dict[tuple[str, str, str], int] = {}  # (mode, arm, outcome)
        self.accept_versions: dict[tuple[str, str, str, str], int] = {}  # (mode, model, policy, accepted)
        self.arm_decisions: dict[tuple[str, str], int] = {}  # (arm, outcome)
        self.arm_latency: dict[str, list[int]] = {}  # arm -> total-latency buckets
        self.arm_latency_sum: dict[str, float] = {}  # milliseconds
        self.arm_alerts: dict[tuple[str, str], int] = {}  # (arm, kind)
        self.records = dict.fromkeys(RECORD_LABELS, 0)
        self.dead = dict.fromkeys(REASONS, 0)
        self.rules: dict[tuple[str, str], int] = {}
        self.stages = [[0] * (len(STAGE_BUCKETS) + 1) for _ in STAGES]
        self.stage_sums = [0.0] * len(STAGES)  # milliseconds
        self.e2e = [0] * (len(E2E_BUCKETS) + 1)
        self.e2e_sum = 0.0


_tallies: dict[int, _Tally] = {}  # thread id -> its tally; never emptied: counters only grow
_tallies_lock = threading.Lock()
_rule_labels: set[str] = set()
_version_labels: set[str] = set()


def _version_label(version: str | None) -> str:
    version = version or "unknown"
    with _tallies_lock:
        if version not in _version_labels and len(_version_labels) < MAX_VERSIONS:
            _version_labels.add(version)
        return version if version in _version_labels else "other"


def _sum_dicts(dicts) -> dict:
    total: dict = {}
    for d in dicts:
        for key, count in list(d.items()):
            total[key] = total.get(key, 0) + count
    return total


def _tally() -> _Tally:
    with _tallies_lock:
        return _tallies.setdefault(get_ident(), _Tally())


def _rule_label(rule_id: str) -> str:
    with _tallies_lock:
        if rule_id not in _rule_labels and len(_rule_labels) < MAX_RULE_IDS:
            _rule_labels.add(rule_id)
        return rule_id if rule_id in _rule_labels else "other"


def _histogram(counts: list[int], bounds: Sequence[float]) -> list[tuple[str, float]]:
    buckets: list[tuple[str, float]] = []
    total = 0
    for bound, count in zip((*map(str, bounds), "+Inf"), counts, strict=True):
        total += count
        buckets.append((bound, total))
    return buckets


class _Collector(Collector):
    """The hot path's metrics, from every thread's tally."""

    def describe(self) -> list[Metric]:
        return list(self._families([]))

    def collect(self) -> Iterator[Metric]:
        with _tallies_lock:
            tallies = list(_tallies.values())
        return self._families(tallies)

    def _families(self, tallies: list[_Tally]) -> Iterator[Metric]:
        e2e = HistogramMetricFamily(
            "coachflow_e2e_latency_seconds",
            "From the input's Kafka timestamp to its decision being handed to the sink (Kafka mode only).",
        )
        if tallies:
            counts = [sum(col) for col in zip(*(t.e2e for t in tallies), strict=True)]
            e2e.add_metric([], _histogram(counts, E2E_BUCKETS), sum(t.e2e_sum for t in tallies))
        yield e2e

        stages = HistogramMetricFamily(
            "coachflow_stage_latency_seconds",
            "Per-stage latency of each decision (Decision.latency_ms): "
            "join_wait, conversation, score, guard, total.",
            labels=["stage"],
        )
        if tallies:
            for i, (_, stage) in enumerate(STAGES):
                counts = [sum(col) for col in zip(*(t.stages[i] for t in tallies), strict=True)]
                seconds = sum(t.stage_sums[i] for t in tallies) / 1000
                stages.add_metric([stage], _histogram(counts, STAGE_BUCKETS), seconds)
        yield stages

        records = CounterMetricFamily(
            "coachflow_records",
            "Published records by output kind; decisions by outcome (shown, suppressed, recorded), "
            "the others 'published'.",
            labels=["kind", "outcome"],
        )
        dead = CounterMetricFamily(
            "coachflow_dead_letters", "Refused inputs by dead-letter reason.", labels=["reason"]
        )
        rules = CounterMetricFamily(
            "coachflow_rule_firings",
            "Guardrail verdicts other than pass (block, rewrite, alert) in published decisions, by rule id.",
            labels=["rule", "verdict"],
        )
        if tallies:
            for labels in RECORD_LABELS:
                records.add_metric(labels, sum(t.records[labels] for t in tallies))
            for reason in REASONS:
                dead.add_metric([reason], sum(t.dead[reason] for t in tallies))
            fired: dict[tuple[str, str], int] = {}
            for t in tallies:
                for key, count in list(t.rules.items()):
                    fired[key] = fired.get(key, 0) + count
            for labels, count in sorted(fired.items()):
                rules.add_metric(labels, count)
        yield records
        yield dead
        yield rules

        accept = CounterMetricFamily(
            "coachflow_acceptance",
            "Acceptance verdicts on shown suggestions by mode (click, inferred), experiment arm "
            "(control, candidate, none) and outcome (accepted, edited, dismissed, ignored).",
            labels=["mode", "arm", "outcome"],
        )
        versions = CounterMetricFamily(
            "coachflow_acceptance_by_version",
            "Acceptance verdicts by mode, model version, policy version and accepted (true/false).",
            labels=["mode", "model_version", "policy_version", "accepted"],
        )
        arm_decisions = CounterMetricFamily(
            "coachflow_arm_decisions",
            "Decisions by experiment arm (none outside an experiment) and outcome.",
            labels=["arm", "outcome"],
        )
        arm_alerts = CounterMetricFamily(
            "coachflow_arm_alerts", "Alerts by experiment arm and kind.", labels=["arm", "kind"]
        )
        arm_latency = HistogramMetricFamily(
            "coachflow_arm_latency_seconds", "Total in-job latency of each decision, by experiment arm.",
            labels=["arm"],
        )
        if tallies:
            for labels, count in sorted(_sum_dicts(t.accept for t in tallies).items()):
                accept.add_metric(labels, count)
            for labels, count in sorted(_sum_dicts(t.accept_versions for t in tallies).items()):
                versions.add_metric(labels, count)
            for labels, count in sorted(_sum_dicts(t.arm_decisions for t in tallies).items()):
                arm_decisions.add_metric(labels, count)
            for labels, count in sorted(_sum_dicts(t.arm_alerts for t in tallies).items()):
                arm_alerts.add_metric(labels, count)
            arms = sorted({arm for t in tallies for arm in list(t.arm_latency)})
            for arm in arms:
                rows = [t.arm_latency[arm] for t in tallies if arm in t.arm_latency]
                counts = [sum(col) for col in zip(*rows, strict=True)]
                seconds = sum(t.arm_latency_sum.get(arm, 0.0) for t in tallies) / 1000
                arm_latency.add_metric([arm], _histogram(counts, STAGE_BUCKETS), seconds)
        knowledge = CounterMetricFamily(
            "coachflow_knowledge_decisions",
            "Knowledge decisions (knowledge job) by outcome (shown, suppressed, not_needed, shed, recorded)"
            " and reason (the shed reason, why none was needed, the rule that held a card).",
            labels=["outcome", "reason"],
        )
        retrieval = HistogramMetricFamily(
            "coachflow_knowledge_retrieval_seconds", "Retrieval and ranking time of each ask (knowledge job)."
        )
        if tallies:
            for labels, count in sorted(_sum_dicts(t.knowledge for t in tallies).items()):
                knowledge.add_metric(labels, count)
            counts = [sum(col) for col in zip(*(t.retrieval for t in tallies), strict=True)]
            retrieval.add_metric(
                [], _histogram(counts, STAGE_BUCKETS), sum(t.retrieval_sum for t in tallies) / 1000
            )
        yield knowledge
        yield retrieval
        yield accept
        yield versions
        yield arm_decisions
        yield arm_alerts
        yield arm_latency

        failures = CounterMetricFamily(
            "coachflow_internal_errors",
            "Records a step failed on (an exception while it handled them), by step; each such input "
            "is dead-lettered internal_error by the step that accounts for it.",
            labels=["step"],
        )
        for step, count in sorted(FAILURES.items()):
            failures.add_metric([step], count)
        yield failures


REGISTRY.register(_Collector())


class JobMetrics:
    """The hot-path hook (``observe``) and the input positions the lag thread reads."""

    def __init__(self, lag: ConsumerLag | None = None, clock: Callable[[], float] = time.time,
                 experiment: tuple[str, float] | None = None) -> None:
        self.lag = lag
        #: (name, share) of the experiment in force: alerts are counted by their conversation's arm.
        self.experiment = experiment
        #: (topic, partition) -> next offset to read; written by ``read_inputs``.
        self.positions: dict[tuple[str, int], int] | None = lag.positions if lag is not None else None
        self._clock = clock

    def observe(self, _step_id: str, record: object) -> None:
        """``op.inspect`` callback for every published record: plain int and float
        updates of this thread's tally, no lock. Never raises: a record the metrics
        cannot count is logged, and the stream goes on."""
        try:
            self._observe(record)
        except Exception:  # noqa: BLE001 - metrics must never stop the stream
            log.exception("metrics could not count a %s", type(record).__name__)

    def _observe(self, record: object) -> None:
        tally = _tallies.get(get_ident()) or _tally()
        kind: type = type(record)
        if type(record) is Decision:
            self._decision(tally, record)
        elif type(record) is DeadLetter:
            tally.records[("dlq", "published")] += 1
            reason = record.reason
            tally.dead[reason if reason in tally.dead else "other"] += 1
        else:
            published = PUBLISHED.get(kind)
            if published is not None:
                tally.records[(published, "published")] += 1
            if type(record) is Acceptance:
                self._acceptance(tally, record)
            elif type(record) is KnowledgeDecision:
                self._knowledge(tally, record)
            elif type(record) is Alert:
                arm = NO_ARM if self.experiment is None else assign(*self.experiment, record.conversation_id)
                key = (arm, record.kind)
                tally.arm_alerts[key] = tally.arm_alerts.get(key, 0) + 1

    def _knowledge(self, tally: _Tally, decision: KnowledgeDecision) -> None:
        outcome = decision.outcome
        reason = "none" if outcome == "shown" else "recorded" if outcome == "recorded" else (
            _rule_label(decision.reasons[0]) if decision.reasons else "none")
        key = (outcome, reason)
        tally.knowledge[key] = tally.knowledge.get(key, 0) + 1
        if outcome in ("shown", "suppressed"):
            ms = decision.latency_ms.retrieve_ms
            tally.retrieval[bisect_left(_STAGE_BOUNDS_MS, ms)] += 1
            tally.retrieval_sum += ms

    def _acceptance(self, tally: _Tally, record: Acceptance) -> None:
        key = (record.mode, record.arm or NO_ARM, record.outcome)
        tally.accept[key] = tally.accept.get(key, 0) + 1
        versions = (record.mode, _version_label(record.model_version), _version_label(record.policy_version),
                    "true" if record.accepted else "false")
        tally.accept_versions[versions] = tally.accept_versions.get(versions, 0) + 1

    def _decision(self, tally: _Tally, decision: Decision) -> None:
        now = self._clock()
        timestamp_ms = decision.input.source.timestamp_ms
        if timestamp_ms is not None:
            seconds = max(0.0, now - timestamp_ms / 1000)
            tally.e2e[bisect_left(E2E_BUCKETS, seconds)] += 1
            tally.e2e_sum += seconds
        counted = ("decisions", decision.outcome)
        if counted in tally.records:
            tally.records[counted] += 1
        arm = decision.arm or NO_ARM
        arm_key = (arm, decision.outcome)
        tally.arm_decisions[arm_key] = tally.arm_decisions.get(arm_key, 0) + 1
        latency = decision.latency_ms
        if latency is not None:
            row = tally.arm_latency.get(arm)
            if row is None:
                row = tally.arm_latency[arm] = [0] * (len(STAGE_BUCKETS) + 1)
                tally.arm_latency_sum[arm] = 0.0
            row[bisect_left(_STAGE_BOUNDS_MS, latency.total_ms)] += 1
            tally.arm_latency_sum[arm] += latency.total_ms
            sums, stages = tally.stage_sums, tally.stages
            for i, ms in enumerate(_stage_values(latency)):
                stages[i][bisect_left(_STAGE_BOUNDS_MS, ms)] += 1
                sums[i] += ms
        for rule in decision.rules:
            if rule.outcome != "pass":
                key = (rule.rule_id, rule.outcome)
                if key not in tally.rules:
                    key = (_rule_label(rule.rule_id), rule.outcome)
                tally.rules[key] = tally.rules.get(key, 0) + 1


class ConsumerLag:
    """Sets ``coachflow_consumer_lag`` from ``positions`` and the brokers' high watermarks."""

    def __init__(self, kafka_config: Mapping[str, object], interval_s: float, timeout_s: float = 5.0) -> None:
        """``kafka_config``: the client's librdkafka configuration (``Settings.kafka_client``)."""
        self.positions: dict[tuple[str, int], int] = {}
        self.interval_s = interval_s
        self._config = client_config({
            "group.id": "coachflow-metrics-lag",  # never joins: it only asks for watermarks
            "enable.auto.commit": False,
            **kafka_config,
        })
        self._timeout_s = timeout_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._gauges: dict[tuple[str, int], Gauge] = {}
        self._warned = False

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="metrics-consumer-lag", daemon=True)
        self._thread.start()
        atexit.register(self.stop)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(2.0)

    def _run(self) -> None:
        from confluent_kafka import Consumer, TopicPartition

        consumer = Consumer(self._config)

        def high_watermark(topic: str, partition: int) -> int:
            tp = TopicPartition(topic, partition)
            return consumer.get_watermark_offsets(tp, timeout=self._timeout_s, cached=False)[1]

        try:
            while not self._stop.wait(self.interval_s):
                self.update(high_watermark)
        finally:
            consumer.close()

    def update(self, high_watermark: Callable[[str, int], int]) -> None:
        """One round: lag = high watermark - next offset to read, for every partition seen."""
        for (topic, partition), next_offset in self.positions.copy().items():
            try:
                high = high_watermark(topic, partition)
            except Exception as exc:  # noqa: BLE001 - a broker hiccup costs one reading, not the thread
                if not self._warned:  # once: the next rounds retry
                    self._warned = True
                    reason = exc.args[0] if exc.args else exc
                    reason = reason.str() if hasattr(reason, "str") else reason  # a KafkaError's message
                    log.warning("consumer lag: no watermark for %s[%d]: %s", topic, partition, reason)
                continue
            gauge = self._gauges.get((topic, partition))
            if gauge is None:
                gauge = self._gauges[(topic, partition)] = CONSUMER_LAG.labels(topic, str(partition))
            gauge.set(max(0, high - next_offset))


def process_index(argv: Sequence[str] | None = None, env: Mapping[str, str] | None = None,
                  main_module: str | None = None) -> int:
    """This process's index in a multi-process Bytewax job (0 when alone).

    As ``python -m bytewax.run`` finds it: ``-i/--process-id``, else
    ``BYTEWAX_PROCESS_ID``, else the ordinal of ``BYTEWAX_POD_NAME`` in
    ``BYTEWAX_STATEFULSET_NAME`` (Bytewax's Helm chart).
    """
    env = os.environ if env is None else env
    if main_module is None:
        spec = getattr(sys.modules.get("__main__"), "__spec__", None)
        main_module = spec.name if spec is not None else ""
    if argv is None:
        argv = sys.argv[1:] if main_module == "bytewax.run" else []
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("-i", "--process-id", type=int)
    try:
        known, _ = parser.parse_known_args(list(argv))
    except SystemExit:
        known = argparse.Namespace(process_id=None)
    if known.process_id is not None:
        return known.process_id
    if env.get("BYTEWAX_PROCESS_ID"):
        return int(env["BYTEWAX_PROCESS_ID"])
    pod, statefulset = env.get("BYTEWAX_POD_NAME"), env.get("BYTEWAX_STATEFULSET_NAME")
    if pod and statefulset:
        return int(pod.replace(statefulset + "-", ""))
    return 0


_server_lock = threading.Lock()
_served: tuple[str, int] | None = None


def serve(host: str, port: int) -> tuple[str, int] | None:
    """Serve the default registry on ``host:port`` unless this process already serves it.

    Returns where it is served, or None when the port could not be bound (logged: the job
    runs on without an endpoint rather than stop for its metrics).
    """
    global _served  # noqa: PLW0603 - one endpoint per process, under _server_lock
    with _server_lock:
        if _served is not None:
            if _served != (host, port):
                log.warning("metrics already served on %s:%d in this process; not on %s:%d",
                            *_served, host, port)
            return _served
        try:
            start_http_server(port, addr=host)
        except OSError as exc:
            log.warning("metrics endpoint %s:%d not started (%s); metrics are still collected",
                        host, port, exc.strerror or exc)
            return None
        _served = (host, port)
        log.info("metrics on http://%s:%d/metrics", host, port)
        return _served
