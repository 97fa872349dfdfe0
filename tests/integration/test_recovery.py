"""Bytewax recovery on a real broker: crashes and a broker restart lose nothing.

The job runs the Bytewax 0.21.1 way, from recovery partitions made by
``python -m bytewax.recovery DIR 1`` and with
``python -m bytewax.run -r DIR -s 1 -b 0 flows.coaching:flow``.

``test_sigkill_at_random_points_loses_nothing`` publishes STAR conversations
and a bad-record corpus at a steady pace while the job is killed with SIGKILL
at seeded random points (during start-up and restore, and mid-stream) and
restarted on the same recovery directory, then lets it run to the end of its
input (``COACH_KAFKA_TAIL=false``). Every valid input must have a decision,
every bad one its dead letter, duplicates must repeat the same id, and every
output that depends on join or window state (decisions' outcome, suggestion,
candidates, rule verdicts, context status and version, history; dead letters;
alerts; conversation summaries) must equal an uninterrupted reference run's
on the same input topics.

Determinism: nothing may depend on the wall clock. The join's context wait
(``COACH_CONTEXT_WAIT_MS``) is the only wall-clock timer that could fire
within the test (session gap, tombstones and TTLs are minutes); it is set to
an hour, so a turn waits for its customer's context however the job
interleaves the partitions, and turns of customers that never get one are
released as ``context_missing`` at the end of the input. Everything else is
stamped in event time. Which of a customer's several context versions a turn
sees does depend on how the job interleaves the events and context topics
(even between two uninterrupted runs), so for those customers the version is
checked to be one of theirs rather than equal to the reference; their updates
change ``open_cases`` only, which no rule reads.

``test_a_broker_restart_mid_stream_loses_nothing`` runs its own broker
(``scripts/kafka.sh`` on other ports, with its own data), stops and restarts
it twice while the job runs: once with default producer settings and once
with a delivery timeout shorter than the outage. The job either rides an
outage out or stops with ``DeliveryError`` (non-zero exit); then it is
restarted from its recovery directory. Either way nothing is lost.
"""

from __future__ import annotations

import json
import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition

from coachflow.bench import bench_records
from schemas import Alert, ConversationSummary, DeadLetter, Decision
from tests import badcorpus
from tests.helpers import ROOT
from tests.integration.conftest import KafkaJob

pytestmark = pytest.mark.kafka

SEED = int(os.environ.get("COACH_TEST_SEED", "20260401"))
SNAPSHOT_S = "1"
BACKUP_S = "0"
JOB_ENV = {
    # No wall-clock timer may decide anything (see the module docstring).
    "COACH_CONTEXT_WAIT_MS": str(3_600_000),
    "COACH_LINEAGE": "none",
    "COACH_QUALITY_MONITOR": "false",
    "COACH_PRINT_SUGGESTIONS": "false",
}
KAFKA_SH = ROOT / "scripts" / "kafka.sh"

Position = tuple[str, int, int]


# -- input -------------------------------------------------------------------
@dataclass
class Traffic:
    """Messages to publish, in order, and what each one must become."""

    messages: list[tuple[str, bytes | None, bytes]]
    expected: list[str | None]
    """None for a valid record (a decision), else the dead letter's reason."""
    valid: list[dict]
    multi_version: set[str] = field(default_factory=set)
    """Customers with more than one context record."""


def make_traffic(dialogues: int, concurrency: int, rng: random.Random) -> Traffic:
    valid = bench_records(dialogues, concurrency)
    bad = badcorpus.build(valid)
    anchored = badcorpus.interleave(valid, [b for b in bad if b.after is not None])
    # Self-contained bad records go anywhere in the stream, not just at its end.
    plan: list[tuple[str, dict | None, badcorpus.Bad | None]] = list(anchored)
    for b in (b for b in bad if b.after is None):
        plan.insert(rng.randrange(len(plan) + 1), (b.stream, None, b))
    messages, expected = [], []
    for stream, record, b in plan:
        if record is not None:
            key = record["customer_id"] if stream == "context" else record["conversation_id"]
            messages.append((stream, key.encode(), json.dumps(record).encode()))
            expected.append(None)
        else:
            messages.append((stream, b.key, b.value))
            expected.append(b.reason)
    versions = Counter(r["customer_id"] for r in valid if r["type"] == "customer_context")
    return Traffic(messages, expected, valid, {c for c, n in versions.items() if n > 1})


class Publisher(threading.Thread):
    """Publishes the traffic in order at a steady pace; records each message's position."""

    def __init__(self, job: KafkaJob, traffic: Traffic, duration_s: float) -> None:
        super().__init__(name="publisher", daemon=True)
        self.topics = {"events": job.settings.topic_events, "context": job.settings.topic_context}
        self.brokers = job.brokers
        self.messages = traffic.messages
        self.duration_s = duration_s
        self.positions: list[Position | None] = [None] * len(self.messages)
        self.errors: list[str] = []
        self.sent = 0

    def run(self) -> None:
        producer = Producer({"bootstrap.servers": self.brokers, "enable.idempotence": True, "linger.ms": 5,
                             "log_level": "0"})  # failures come back as delivery reports
        began = time.monotonic()
        step = self.duration_s / len(self.messages)
        for index, (stream, key, value) in enumerate(self.messages):
            delay = began + index * step - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            producer.produce(self.topics[stream], key=key, value=value, on_delivery=self._report(index))
            producer.poll(0)
            self.sent = index + 1
        if producer.flush(180) != 0:
            self.errors.append("records still undelivered after 180 s")

    def _report(self, index: int):
        def delivered(err, msg) -> None:
            if err is not None:
                self.errors.append(str(err))
            else:
                self.positions[index] = (msg.topic(), msg.partition(), msg.offset())
        return delivered

    def finish(self, timeout: float = 240) -> list[Position]:
        self.join(timeout)
        assert not self.is_alive(), "the publisher did not finish"
        assert not self.errors and all(p is not None for p in self.positions), self.errors[:5]
        return self.positions  # type: ignore[return-value]


# -- output ------------------------------------------------------------------
class OutputCounter(threading.Thread):
    """Counts records appended to some topics, to see a job make progress."""

    def __init__(self, brokers: str, topics: list[str]) -> None:
        super().__init__(name="output-counter", daemon=True)
        self.brokers, self.topics = brokers, topics
        self.count = 0
        self._halt = threading.Event()

    def run(self) -> None:
        consumer = Consumer({"bootstrap.servers": self.brokers, "group.id": f"count-{uuid.uuid4().hex}",
                             "enable.auto.commit": False, "fetch.wait.max.ms": 50, "log_level": "0"})
        consumer.assign([TopicPartition(t, p, 0) for t in self.topics for p in partitions(consumer, t)])
        try:
            while not self._halt.is_set():
                self.count += sum(1 for msg in consumer.consume(500, 0.2) if not msg.error())
        finally:
            consumer.close()

    def wait_for(self, predicate, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > deadline:
                return False
            time.sleep(0.05)
        return True

    def stop(self) -> None:
        self._halt.set()
        self.join(10)


def partitions(consumer: Consumer, topic: str) -> list[int]:
    return sorted(consumer.list_topics(topic, timeout=15).topics[topic].partitions)


MODELS = {"decisions": Decision, "dlq": DeadLetter, "alerts": Alert, "summaries": ConversationSummary}


def read_outputs(brokers: str, topics: dict[str, str]) -> dict[str, list]:
    """Every record of ``topics`` (kind -> topic), up to each partition's end, validated."""
    consumer = Consumer({"bootstrap.servers": brokers, "group.id": f"read-{uuid.uuid4().hex}",
                         "enable.auto.commit": False})
    kinds = {topic: kind for kind, topic in topics.items()}
    out: dict[str, list] = {kind: [] for kind in topics}
    try:
        ends: dict[tuple[str, int], int] = {}
        for topic in topics.values():
            for p in partitions(consumer, topic):
                low, high = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=15)
                if high > low:
                    ends[(topic, p)] = high
        consumer.assign([TopicPartition(t, p, 0) for t, p in ends])
        deadline = time.monotonic() + 120
        while ends and time.monotonic() < deadline:
            for msg in consumer.consume(1000, 0.5):
                assert msg.error() is None, msg.error()
                kind = kinds[msg.topic()]
                out[kind].append(MODELS[kind].model_validate_json(msg.value()))
                if msg.offset() + 1 >= ends.get((msg.topic(), msg.partition()), 0):
                    ends.pop((msg.topic(), msg.partition()), None)
        assert not ends, f"not read to the end: {ends}"
    finally:
        consumer.close()
    return out


def position(source) -> Position:
    return (source.topic, source.partition, source.offset)


# -- the job -----------------------------------------------------------------
def init_recovery(directory: Path) -> Path:
    """Recovery partitions by ``scripts/recovery-init.sh`` (``python -m bytewax.recovery DIR 1``)."""
    script = [str(ROOT / "scripts" / "recovery-init.sh"), str(directory), "1"]
    env = {**os.environ, "PYTHON": sys.executable}
    subprocess.run(script, check=True, cwd=ROOT, env=env)
    subprocess.run(script, check=True, cwd=ROOT, env=env)  # again: keeps them
    assert [p.name for p in directory.glob("part-*.sqlite3")] == ["part-0.sqlite3"]
    return directory


def start(
    job: KafkaJob, log: Path, recovery: Path | None, tail: bool, *args: str, **env: str
) -> subprocess.Popen:
    if recovery is not None:
        args = ("-r", str(recovery), "-s", SNAPSHOT_S, "-b", BACKUP_S, *args)
    return job.start(log, *args, **{**JOB_ENV, "COACH_KAFKA_TAIL": str(tail).lower(), **env})


def kill(process: subprocess.Popen) -> None:
    os.killpg(process.pid, signal.SIGKILL)
    process.wait(30)


def tail_of(log: Path, chars: int = 3000) -> str:
    return log.read_text(errors="replace")[-chars:] if log.exists() else "(no log)"


def run_to_end(job: KafkaJob, log: Path, recovery: Path | None, *args: str, timeout: float = 180,
               **env: str) -> None:
    process = start(job, log, recovery, False, *args, **env)
    try:
        code = process.wait(timeout)
    except subprocess.TimeoutExpired:
        kill(process)
        raise AssertionError(f"the job did not stop at the end of its input: {tail_of(log)}") from None
    assert code == 0, tail_of(log)


@dataclass
class Streaming:
    """A job's recovery directory, its output topics (kind -> topic), the publisher of its traffic and
    the counter of its decisions and dead letters, both running; the jobs it started or tracks."""

    job: KafkaJob
    recovery: Path
    outputs: dict[str, str]
    publisher: Publisher
    counter: OutputCounter
    processes: list[subprocess.Popen] = field(default_factory=list)

    def start(self, log: Path, *args: str, **env: str) -> subprocess.Popen:
        """An incarnation of the job on the recovery directory, tailing its input."""
        return self.track(start(self.job, log, self.recovery, True, *args, **env))

    def track(self, process: subprocess.Popen) -> subprocess.Popen:
        self.processes.append(process)
        return process


@contextmanager
def streaming(job: KafkaJob, traffic: Traffic, tmp_path: Path, duration_s: float) -> Iterator[Streaming]:
    """Recovery partitions in ``tmp_path / "recovery"``, then the output counter and the publisher of
    ``traffic`` over ``duration_s`` started; on leaving, the counter stops and every job started or
    tracked through it that still runs is killed."""
    recovery = init_recovery(tmp_path / "recovery")
    outputs = {k: v for k, v in job.settings.outputs().items() if k in MODELS}
    counter = OutputCounter(job.brokers, [outputs["decisions"], outputs["dlq"]])
    counter.start()
    run = Streaming(job, recovery, outputs, Publisher(job, traffic, duration_s), counter)
    try:
        run.publisher.start()
        yield run
    finally:
        counter.stop()
        for process in run.processes:
            if process.poll() is None:
                kill(process)


# -- checks ------------------------------------------------------------------
def check_accounting(traffic: Traffic, positions: list[Position], out: dict[str, list]) -> None:
    """Every valid input has a decision, every bad one its dead letter; duplicates repeat the id."""
    decisions: dict[Position, list[Decision]] = defaultdict(list)
    letters: dict[Position, list[DeadLetter]] = defaultdict(list)
    for d in out["decisions"]:
        decisions[position(d.input.source)].append(d)
    for d in out["dlq"]:
        letters[position(d.source)].append(d)
    inputs = set(positions)
    assert set(decisions) <= inputs and set(letters) <= inputs, "outputs for positions never published"
    for pos, reason in zip(positions, traffic.expected, strict=True):
        if reason is None:
            assert pos in decisions and pos not in letters, (pos, [x.reason for x in letters.get(pos, [])])
        else:
            assert pos in letters and pos not in decisions, (pos, reason)
            assert {x.reason for x in letters[pos]} == {reason}, (pos, reason, letters[pos][0].detail)
    # The only kind of duplicate is a repeated id: one id per input.
    for pos, found in decisions.items():
        assert len({d.decision_id for d in found}) == 1, (pos, [d.decision_id for d in found])
    for pos, found in letters.items():
        assert len({d.dead_letter_id for d in found}) == 1, (pos, [d.dead_letter_id for d in found])
    by_id = defaultdict(set)
    for d in out["decisions"]:
        by_id[d.decision_id].add(position(d.input.source))
    assert all(len(v) == 1 for v in by_id.values()), "one decision id for two inputs"
    assert {badcorpus.record_id(r) for r in traffic.valid} <= {d.input.event_id for d in out["decisions"]}


def decision_state(d: Decision, loose_version: bool) -> tuple:
    """What a decision says that depends on join, window and guardrail state."""
    return (
        d.decision_id, d.input.kind, d.input.event_id, tuple(d.input.history_event_ids),
        d.outcome, tuple(d.reasons), d.suggestion_id,
        None if d.suggestion is None else (d.suggestion.action, d.suggestion.text),
        tuple(c.action for c in d.candidates), tuple((r.rule_id, r.outcome) for r in d.rules),
        d.context_status, "(one of the customer's)" if loose_version else d.context_version,
        tuple(d.masked), None if d.quality is None else tuple(d.quality.warnings),
    )


def check_against_reference(traffic: Traffic, out: dict[str, list], ref: dict[str, list]) -> Counter:
    """The interrupted run's state-dependent outputs equal the reference's; returns duplicate counts."""
    versions = defaultdict(set)
    for r in traffic.valid:
        if r["type"] == "customer_context":
            versions[r["customer_id"]].add(badcorpus.record_id(r).split("@", 1)[1])
    reference = {position(d.input.source): d for d in ref["decisions"]}
    assert len(reference) == len(ref["decisions"]), "the reference run has duplicate decisions"
    seen: dict[Position, list[Decision]] = defaultdict(list)
    for d in out["decisions"]:
        seen[position(d.input.source)].append(d)
    assert set(seen) == set(reference)
    for pos, found in seen.items():
        want = reference[pos]
        loose = want.customer_id in traffic.multi_version and want.input.kind != "customer_context"
        expected = decision_state(want, loose)
        for d in found:
            assert decision_state(d, loose) == expected, (pos, decision_state(d, loose), expected)
            for got, exp in zip(d.candidates, want.candidates, strict=True):
                assert abs(got.confidence - exp.confidence) <= 1e-3, (pos, got, exp)
            if loose and d.context_version is not None:
                assert d.context_version in versions[d.customer_id], (pos, d.context_version)
    ref_letters = {position(d.source): (d.dead_letter_id, d.reason) for d in ref["dlq"]}
    assert {position(d.source): (d.dead_letter_id, d.reason) for d in out["dlq"]} == ref_letters
    assert len(ref_letters) == len(ref["dlq"])
    # Window state: alerts (deterministic ids) and whole-conversation summaries.
    alert = lambda a: (a.alert_id, a.kind, a.event_id, a.severity)  # noqa: E731
    assert {alert(a) for a in out["alerts"]} == {alert(a) for a in ref["alerts"]}
    summaries: dict[str, set[str]] = defaultdict(set)
    for s in out["summaries"]:
        summaries[s.conversation_id].add(s.model_dump_json())
    ref_summaries = {s.conversation_id: {s.model_dump_json()} for s in ref["summaries"]}
    assert len(ref_summaries) == len(ref["summaries"])
    assert dict(summaries) == ref_summaries
    return Counter({
        kind: len(out[kind]) - len({key(x) for x in out[kind]})
        for kind, key in (("decisions", lambda d: d.decision_id), ("dlq", lambda d: d.dead_letter_id),
                          ("alerts", lambda a: a.alert_id), ("summaries", lambda s: s.conversation_id))
    })


# -- SIGKILL at random points -------------------------------------------------
KILLS = 12
DIALOGUES = 80
WORKERS = ("-w", "2")  # the interrupted job; the reference runs one worker


def test_sigkill_at_random_points_loses_nothing(kafka_job: KafkaJob, tmp_path):
    rng = random.Random(SEED)
    traffic = make_traffic(DIALOGUES, 16, rng)
    ref_job = KafkaJob(kafka_job.brokers, f"r{uuid.uuid4().hex[:10]}.")
    kills: list[tuple[str, float, int, int]] = []
    began = time.monotonic()
    reference = None
    with streaming(kafka_job, traffic, tmp_path, duration_s=40) as run:
        counter, publisher = run.counter, run.publisher

        def start_reference() -> subprocess.Popen:
            # Uninterrupted, no recovery, on the same input topics, to its own output topics.
            return run.track(start(ref_job, tmp_path / "reference.log", None, False,
                                   COACH_TOPIC_EVENTS=kafka_job.settings.topic_events,
                                   COACH_TOPIC_CONTEXT=kafka_job.settings.topic_context))

        for n in range(KILLS):
            log = tmp_path / f"run-{n:02d}.log"
            process = run.start(log, *WORKERS)
            before = counter.count
            if rng.random() < 0.25:
                when = "start-up"  # while it imports, restores its state or reads its first batch
                time.sleep(rng.uniform(0.2, 2.5))
            else:
                when = "mid-stream"
                counter.wait_for(lambda b=before: counter.count > b or not publisher.is_alive(), 60)
                time.sleep(rng.uniform(0.0, 2.5))
            assert process.poll() is None, f"incarnation {n} stopped by itself: {tail_of(log)}"
            kill(process)
            kills.append((when, round(time.monotonic() - began, 1), publisher.sent, counter.count))
            if reference is None and not publisher.is_alive():
                reference = start_reference()  # all input is published: beside the rest
        positions = publisher.finish()
        reference = reference or start_reference()
        # The last incarnation resumes and stops at the end of the input.
        run_to_end(kafka_job, tmp_path / "run-final.log", run.recovery, *WORKERS)
        assert reference.wait(180) == 0, tail_of(tmp_path / "reference.log")
    print(f"\nkills (when, s, published, outputs): {kills}")
    # The kills landed while input was still arriving, and after progress.
    assert sum(1 for k in kills if k[2] < len(traffic.messages)) >= KILLS // 2, kills
    assert sum(1 for k in kills if k[0] == "mid-stream") >= KILLS // 2, kills

    out = read_outputs(kafka_job.brokers, run.outputs)
    ref = read_outputs(
        kafka_job.brokers, {k: v for k, v in ref_job.settings.outputs().items() if k in MODELS}
    )
    check_accounting(traffic, positions, ref)
    check_accounting(traffic, positions, out)
    duplicates = check_against_reference(traffic, out, ref)
    print(f"inputs {len(positions)}, decisions {len(out['decisions'])}, dead letters {len(out['dlq'])}, "
          f"duplicates {dict(duplicates)}, {time.monotonic() - began:.0f}s")
    assert duplicates["decisions"] > 0, "no kill made the job replay anything"


# -- a broker restart -----------------------------------------------------------
def free_ports(count: int, preferred: tuple[int, ...]) -> list[int]:
    def free(port: int) -> bool:
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                return False
            return True

    if all(free(p) for p in preferred):
        return list(preferred)
    ports = []
    while len(ports) < count:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            ports.append(s.getsockname()[1])
    return ports


class Broker:
    """A broker of our own: ``scripts/kafka.sh`` on other ports, with its data, logs and
    pid file in ``home`` (the jars are the development broker's)."""

    def __init__(self, home: Path, port: int, controller_port: int) -> None:
        self.address = f"127.0.0.1:{port}"
        self.home = home
        home.mkdir(parents=True)
        (home / "lib").symlink_to(Path(os.environ.get("KAFKA_HOME", ROOT / ".kafka")).resolve() / "lib")
        self.env = {**os.environ, "KAFKA_HOME": str(home), "KAFKA_PORT": str(port),
                    "KAFKA_CONTROLLER_PORT": str(controller_port)}

    def run(self, command: str) -> None:
        subprocess.run([str(KAFKA_SH), command], env=self.env, check=True, cwd=ROOT, timeout=150)


def test_a_broker_restart_mid_stream_loses_nothing(tmp_path):
    broker = Broker(tmp_path / "kafka", *free_ports(2, (9094, 9095)))
    broker.run("start")
    try:
        job = KafkaJob(broker.address, f"b{uuid.uuid4().hex[:10]}.")
        traffic = make_traffic(40, 8, random.Random(SEED + 1))
        with streaming(job, traffic, tmp_path, duration_s=40) as run:
            counter, publisher = run.counter, run.publisher
            outcomes = []
            # Outage 1 with the default delivery timeout (5 minutes); outage 2 with 2 s,
            # shorter than the outage: output in flight then cannot be delivered.
            for n, config in enumerate(({}, {"message.timeout.ms": "2000"})):
                log = tmp_path / f"job-{n}.log"
                env = {"COACH_KAFKA_CONFIG": json.dumps(config)} if config else {}
                process = run.start(log, **env)
                before = counter.count
                counter.wait_for(lambda b=before: counter.count > b + 20 or not publisher.is_alive(), 60)
                assert process.poll() is None, tail_of(log)
                broker.run("stop")
                time.sleep(4)
                broker.run("start")
                if process.poll() is None:
                    # Either it rides the outage out (and makes progress again) or it stops.
                    progress = counter.count
                    counter.wait_for(
                        lambda p=progress, j=process: counter.count > p or j.poll() is not None, 60
                    )
                if process.poll() is None:
                    outcomes.append("rode it out")
                    assert "Traceback" not in log.read_text(errors="replace"), tail_of(log)
                    kill(process)  # ... and on to the next outage, or to the final run
                else:
                    code = process.wait()
                    text = log.read_text(errors="replace")
                    assert code != 0, tail_of(log)
                    assert "DeliveryError" in text and "did not acknowledge" in text, tail_of(log)
                    outcomes.append(f"stopped with exit code {code} and DeliveryError")
            positions = publisher.finish()
        # Restart from the recovery store and run to the end of the input; then the
        # uninterrupted reference on the same input.
        run_to_end(job, tmp_path / "job-final.log", run.recovery, timeout=120)
        ref_job = KafkaJob(broker.address, f"r{uuid.uuid4().hex[:10]}.")
        run_to_end(
            ref_job,
            tmp_path / "reference.log",
            None,
            timeout=120,
            COACH_TOPIC_EVENTS=job.settings.topic_events,
            COACH_TOPIC_CONTEXT=job.settings.topic_context,
        )
        out = read_outputs(job.brokers, run.outputs)
        ref = read_outputs(job.brokers, {k: v for k, v in ref_job.settings.outputs().items() if k in MODELS})
        check_accounting(traffic, positions, out)
        duplicates = check_against_reference(traffic, out, ref)
        print(f"\nbroker outages: {outcomes}; inputs {len(positions)}, decisions {len(out['decisions'])}, "
              f"dead letters {len(out['dlq'])}, duplicates {dict(duplicates)}")
    finally:
        broker.run("stop")
