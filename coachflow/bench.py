"""Live benchmarks on a real broker: end-to-end latency by Kafka append times.

A run creates its own topics (input and output topics with
``message.timestamp.type=LogAppendTime``, so the broker stamps both ends),
starts the job with ``python -m bytewax.run flows.coaching:flow`` on them,
publishes STAR conversations at a steady rate after a short warm-up, and
reads every decision and dead letter back. A decision's end-to-end latency
is its append time on ``coaching.decisions`` minus its input's append time
on ``conversation.events`` (or ``customer.context``), matched by the source
partition and offset every decision carries. ``coach bench`` deletes the
topics it made when it is done.
"""

from __future__ import annotations

import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from coachflow import replay
from coachflow.config import Settings, kafka_client_env
from coachflow.topics import ensure_topics
from models import star
from schemas.topics import TOPICS

ROOT = Path(__file__).resolve().parents[1]
APPEND_TIME = {"message.timestamp.type": "LogAppendTime"}


#: Below this a sender is on time: sleeping would cost more than it waits.
_MIN_SLEEP_S = 0.001

def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def summarize(latencies: list[float]) -> dict[str, float]:
    if not latencies:
        return {"n": 0}
    return {
        "n": len(latencies),
        "p50_ms": round(statistics.median(latencies), 2),
        "p95_ms": round(percentile(latencies, 0.95), 2),
        "p99_ms": round(percentile(latencies, 0.99), 2),
        "max_ms": round(max(latencies), 2),
        "mean_ms": round(statistics.fmean(latencies), 2),
    }


def prefixed_settings(brokers: str, prefix: str, **overrides) -> Settings:
    """Settings whose every topic (inputs and outputs) is named ``prefix + default``: a run of its own."""
    base = Settings(brokers=brokers, **overrides)
    return base.model_copy(update={name: prefix + getattr(base, name) for name in _topic_fields(base)})


def topic_env(settings: Settings) -> dict[str, str]:
    """The ``COACH_TOPIC_*`` variables that give a job ``settings``' topics."""
    return {f"COACH_{name.upper()}": str(getattr(settings, name)) for name in _topic_fields(settings)}


def _topic_fields(settings: Settings) -> list[str]:
    """The settings of the catalog's topics that are always used (``schemas.topics``)."""
    return [spec.setting for spec in TOPICS if not spec.optional]


def bench_settings(brokers: str, prefix: str, partitions: int) -> Settings:
    return prefixed_settings(brokers, prefix, topic_partitions=partitions)


#: Topics this process created for its runs, deleted by ``delete_created_topics``.
CREATED: list[str] = []


def create_topics(settings: Settings) -> None:
    """The run's topics, as the job would create them; inputs, decisions, dead letters broker-stamped."""
    stamped = (settings.topic_events, settings.topic_context, settings.topic_decisions, settings.topic_dlq)
    CREATED.extend(ensure_topics(settings, extra_config=dict.fromkeys(stamped, APPEND_TIME)))


def delete_created_topics(brokers: str, timeout: float = 60.0) -> list[str]:
    """Delete the topics this process created; return those deleted.

    A run's topics are of no use once its figures are out, and a broker that
    keeps every run's topics, inputs and outputs grows and slows run after run.
    """
    from confluent_kafka.admin import AdminClient

    names, CREATED[:] = list(CREATED), []
    if not names:
        return []
    deleted = []
    admin = AdminClient(Settings(brokers=brokers).kafka_client())
    for name, future in admin.delete_topics(
        names, operation_timeout=timeout, request_timeout=timeout
    ).items():
        try:
            future.result(timeout)
            deleted.append(name)
        except Exception as exc:  # already gone, or the broker went away: say so, keep the figures
            print(f"coach bench: topic {name} not deleted: {exc}", file=sys.stderr)
    return deleted


def job_env(settings: Settings, extra: dict[str, str]) -> dict[str, str]:
    """A job's environment on ``settings``' topics: none of this process's ``COACH_*`` variables
    but the Kafka client's (its credentials)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("COACH_")}
    env.update(kafka_client_env())
    env.update({
        "COACH_BROKERS": settings.brokers,
        **topic_env(settings),
        "COACH_CREATE_TOPICS": "false",
        "COACH_PRINT_SUGGESTIONS": "false",
        "PYTHONUNBUFFERED": "1",
    })
    env.update(extra)
    return env


@dataclass
class Collector:
    """Reads decisions and dead letters as they are appended, in a thread."""

    settings: Settings
    topics: tuple[str, ...] = ()
    outputs: list[tuple[bytes, bool, float]] = field(
        default_factory=list
    )  # (value, is dead letter, append s)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> None:
        from confluent_kafka import Consumer, TopicPartition

        consumer = Consumer(self.settings.kafka_client(**{
            "group.id": f"bench-{uuid.uuid4().hex}", "enable.auto.commit": False, "fetch.wait.max.ms": 10}))
        dlq = self.settings.topic_dlq
        parts = [
            TopicPartition(topic, p, 0)
            for topic in (self.topics or (self.settings.topic_decisions, dlq))
            for p in range(self.settings.topic_partitions)
        ]
        consumer.assign(parts)

        def run() -> None:
            try:
                while not self._stop.is_set():
                    for msg in consumer.consume(1000, 0.05):
                        if msg.error():
                            continue
                        # Parsed after the run (``records``), so reading costs the machine little.
                        self.outputs.append((msg.value(), msg.topic() == dlq, msg.timestamp()[1] / 1000))
            finally:
                consumer.close()

        self._thread = threading.Thread(target=run, name="bench-collector", daemon=True)
        self._thread.start()

    def wait_for(self, count: int, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while len(self.outputs) < count and time.monotonic() < deadline:
            time.sleep(0.05)
        return len(self.outputs) >= count

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)

    def records(self) -> Iterator[tuple[dict, float]]:
        for value, dead, appended in self.outputs:
            record = json.loads(value)
            record["_dlq"] = dead
            yield record, appended

    def throughput(self) -> float:
        """Inputs answered per second, from the first input parsed to the last answer's append.

        The first input parsed is the earliest decision's ``decided_at`` less its
        ``latency_ms.total_ms``. Counting from the first answer's append instead
        would leave out the time the first batch took (up to a batch per input
        partition, answered in one burst) and overstate the rate.
        """
        times = sorted(t for _, _, t in self.outputs)
        if len(times) < 2:  # noqa: PLR2004 - a rate needs two instants
            return 0.0
        began = min(
            (parsed_at(record) for record, _ in self.records() if not record["_dlq"]), default=times[0]
        )
        return len(times) / (times[-1] - began) if times[-1] > began else 0.0


@dataclass
class Publisher:
    """Produces records in order, remembering each one's broker append time."""

    settings: Settings
    key_by: str = "conversation"
    """What events are keyed by (``COACH_INPUT_KEY``): ``customer`` for jobs sharing the partitions."""
    appended: dict[tuple[str, int, int], float] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        from confluent_kafka import Producer

        # Batched as a gateway producer would (librdkafka's default linger, 5 ms). Latency is
        # counted from the broker's append, so lingering does not shorten it; a request per
        # record (``linger.ms`` 0) would spend the broker's and the producer's CPU, which the
        # job shares on a two-core machine.
        self._producer = Producer(self.settings.kafka_client(**{"linger.ms": 5, "enable.idempotence": True}))

    def _delivered(self, err, msg) -> None:
        if err is not None:
            self.failures.append(str(err))
        else:
            self.appended[(msg.topic(), msg.partition(), msg.offset())] = msg.timestamp()[1] / 1000

    def send(self, record: dict) -> None:
        stream, key = replay.kafka_target(record, self.key_by)
        topic = self.settings.topic_context if stream == "context" else self.settings.topic_events
        value = json.dumps(record, ensure_ascii=False, separators=(",", ":")).encode()
        while True:
            try:
                self._producer.produce(topic, value=value, key=key.encode(), on_delivery=self._delivered)
                break
            except BufferError:
                self._producer.poll(0.01)
        self._producer.poll(0)

    def paced(self, records: Iterable[dict], rate: float) -> float:
        """Send at ``rate`` records a second; return the rate achieved."""
        began = time.perf_counter()
        sent = 0
        for sent, record in enumerate(records, 1):
            due = began + sent / rate
            ahead = due - time.perf_counter()
            if ahead > _MIN_SLEEP_S:
                self._producer.poll(0)
                time.sleep(ahead)
            self.send(record)
        elapsed = time.perf_counter() - began
        self.flush()
        return sent / elapsed if elapsed > 0 else 0.0

    def flush(self) -> None:
        if self._producer.flush(60) or self.failures:
            raise RuntimeError(f"replay undelivered: {self.failures[:3]}")


def parsed_at(decision: dict) -> float:
    """When the job parsed the decision's input (epoch s): ``decided_at`` less ``latency_ms.total_ms``."""
    decided = datetime.fromisoformat(decision["decided_at"].replace("Z", "+00:00")).timestamp()
    return decided - (decision.get("latency_ms") or {}).get("total_ms", 0.0) / 1000


def latency_report(collector: Collector, publisher: Publisher, skip: int) -> dict:
    """End-to-end latency of every decision on a record after the first ``skip`` (the warm-up).

    ``context_first`` summarises those of them whose input came after its
    customer's first context record: the others were held by the join, by
    the replay's design, until that context came or ``COACH_CONTEXT_WAIT_MS``
    ran out, so their latency is mostly that wait (see ``star._place_context``).
    """
    order = sorted(publisher.appended, key=publisher.appended.get)
    measured = set(order[skip:])
    decisions, dead = [], 0
    for record, appended in collector.records():
        if record["_dlq"]:
            dead += 1
            continue
        src = record["input"]["source"]
        key = (src["topic"], src["partition"], src["offset"])
        decisions.append((record, publisher.appended.get(key), appended, key in measured))
    context_at = first_context_appends(decisions)
    every, final_turns, in_job, context_first = [], [], [], []
    for record, published, appended, is_measured in decisions:
        if not is_measured:
            continue
        latency = (appended - published) * 1000
        every.append(latency)
        if record.get("latency_ms"):
            in_job.append(record["latency_ms"]["total_ms"])
        if (
            record["input"]["kind"] == "turn"
            and record["input"]["is_final"]
            and record["input"]["speaker"] == "customer"
        ):
            final_turns.append(latency)
        if context_at.get(record["customer_id"], float("inf")) <= published:
            context_first.append(latency)
    return {
        "decisions": summarize(every),
        "final_customer_turns": summarize(final_turns),
        "context_first": summarize(context_first),
        # From the input being parsed to its decision, as the job measures it.
        "in_job": summarize(in_job),
        "dead_letters": dead,
    }


def first_context_appends(decisions: Iterable[tuple[dict, float | None, float, bool]]) -> dict[str, float]:
    """Per customer, when its first accepted context record was appended (from its decision)."""
    first: dict[str, float] = {}
    for record, published, _, _ in decisions:
        if record["input"]["kind"] == "customer_context" and published is not None:
            customer = record["customer_id"]
            first[customer] = min(published, first.get(customer, published))
    return first


def shares(partitions: int, jobs: int) -> list[list[int]]:
    """The input partitions of each of ``jobs`` jobs splitting ``partitions`` (round robin)."""
    if not 1 <= jobs <= partitions:
        raise ValueError(f"{jobs} jobs cannot split {partitions} partitions")
    return [[p for p in range(partitions) if p % jobs == i] for i in range(jobs)]


def share_env(share: list[int]) -> dict[str, str]:
    """A job's environment for one share of co-partitioned input (``COACH_KAFKA_PARTITIONS``)."""
    return {"COACH_INPUT_KEY": "customer", "COACH_KAFKA_PARTITIONS": json.dumps(share)}


class Job:
    """The job under benchmark: ``processes`` local processes of ``workers`` workers each, or ``jobs``
    independent one-process jobs, each reading its share of the input partitions (co-partitioned input)."""

    def __init__(self, settings: Settings, env: dict[str, str], log_dir: Path, *,
                 workers: int = 1, processes: int = 1, jobs: int = 1, args: tuple[str, ...] = ()) -> None:
        if jobs > 1 and processes > 1:
            raise ValueError("jobs sharing the partitions run one process each")
        self.log_path = log_dir / f"{settings.topic_events.split('.')[0]}.log"
        self._log = self.log_path.open("w")
        env = job_env(
            settings, {"COACH_OUTPUT_DIR": str(log_dir), "COACH_LINEAGE_RUN_ID": str(uuid.uuid4()), **env}
        )
        scale: list[tuple[list[str], dict[str, str]]] = [(["-w", str(workers)], env)]
        if processes > 1:
            ports = free_ports(processes)
            addresses = ";".join(f"127.0.0.1:{port}" for port in ports)
            scale = [(["-w", str(workers), "-i", str(i), "-a", addresses], env) for i in range(processes)]
        elif jobs > 1:  # own metrics ports and lineage runs: separate jobs
            scale = [
                (
                    ["-w", str(workers)],
                    {
                        **env,
                        **share_env(share),
                        "COACH_METRICS_PORT": str(port),
                        "COACH_LINEAGE_RUN_ID": str(uuid.uuid4()),
                    },
                )
                for share, port in zip(shares(settings.topic_partitions, jobs), free_ports(jobs), strict=True)
            ]
        self.processes = [
            subprocess.Popen(
                [sys.executable, "-m", "bytewax.run", *flags, *args, "flows.coaching:flow"],
                cwd=ROOT,
                env=process_env,
                stdout=self._log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
            for flags, process_env in scale
        ]
        self.usage = Usage([p.pid for p in self.processes])
        self.usage.start()

    def running(self) -> bool:
        return any(p.poll() is None for p in self.processes)

    def wait(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        for process in self.processes:
            process.wait(max(0.1, deadline - time.monotonic()))

    def stop(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGINT)
        for process in self.processes:
            try:
                process.wait(60)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
        self.usage.stop()
        self._log.close()


class ReferenceLoops:
    """The reference loop (``python -m coachflow.reference``) on the run's topics, as ``Job`` runs the job:
    one loop, or one per share of the partitions (``jobs``), each a process of its own."""

    def __init__(self, settings: Settings, log_dir: Path, jobs: int = 1) -> None:
        self.log_path = log_dir / f"{settings.topic_decisions.split('.')[0]}.reference.log"
        self._log = self.log_path.open("w")
        env = job_env(settings, {"COACH_LINEAGE": "none"})
        envs = [env] if jobs == 1 else [{**env, **share_env(share)}
                                         for share in shares(settings.topic_partitions, jobs)]
        self.processes = [
            subprocess.Popen(
                [sys.executable, "-m", "coachflow.reference"],
                cwd=ROOT,
                env=loop_env,
                stdout=self._log,
                stderr=subprocess.STDOUT,
            )
            for loop_env in envs
        ]
        self.usage = Usage([p.pid for p in self.processes])
        self.usage.start()

    def running(self) -> bool:
        return any(p.poll() is None for p in self.processes)

    def stop(self) -> None:
        for process in self.processes:
            process.terminate()
        for process in self.processes:
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()
        self.usage.stop()
        self._log.close()


def free_ports(count: int) -> list[int]:
    import socket

    sockets = [socket.socket() for _ in range(count)]
    for sock in sockets:
        sock.bind(("127.0.0.1", 0))
    ports = [sock.getsockname()[1] for sock in sockets]
    for sock in sockets:
        sock.close()
    return ports


class Usage:
    """CPU time and peak resident memory of processes and their descendants, sampled from /proc.

    Peak memory is the largest sum of the tree's resident set sizes seen at
    one sample (every 100 ms); CPU is the tree's user + system time.
    """

    TICK = os.sysconf("SC_CLK_TCK")
    PAGE = os.sysconf("SC_PAGE_SIZE")

    def __init__(self, roots: list[int]) -> None:
        self.roots = roots
        self.peak_rss = 0
        self._cpu: dict[int, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="bench-usage", daemon=True)

    def start(self) -> None:
        self.began = time.monotonic()
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self.wall = time.monotonic() - self.began

    @property
    def cpu_s(self) -> float:
        return sum(self._cpu.values())

    def _tree(self) -> list[int]:
        parents: dict[int, list[int]] = {}
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                try:
                    stat = Path(f"/proc/{entry}/stat").read_text()
                except OSError:
                    continue
                ppid = int(stat.rsplit(")", 1)[1].split()[1])
                parents.setdefault(ppid, []).append(int(entry))
        found, todo = [], list(self.roots)
        while todo:
            pid = todo.pop()
            found.append(pid)
            todo.extend(parents.get(pid, []))
        return found

    def sample(self) -> None:
        rss = 0
        for pid in self._tree():
            try:
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            self._cpu[pid] = (int(fields[11]) + int(fields[12])) / self.TICK  # utime, stime
            rss += int(fields[21]) * self.PAGE
        self.peak_rss = max(self.peak_rss, rss)

    def _run(self) -> None:
        while not self._stop.wait(0.1):
            self.sample()


def working_cpu_us(usage: Usage, collector: Collector, count: int, timeout: float,
                   still: Callable[[], bool] = lambda: True) -> float | None:
    """Wait for ``count`` outputs; CPU microseconds a record while the processes of ``usage`` worked,
    from their first output to their last (start-up and shutdown left out). None if they did not answer
    them all within ``timeout`` (or ``still`` says they stopped; the caller sees the outputs missing), or
    if the run is too short for that window (half its records or more out at once)."""
    deadline = time.monotonic() + timeout
    while not collector.outputs and still() and time.monotonic() < deadline:
        time.sleep(0.01)
    usage.sample()
    first, cpu = len(collector.outputs), usage.cpu_s
    while not collector.wait_for(count, 1) and still() and time.monotonic() < deadline:
        pass
    if len(collector.outputs) < count:
        return None
    usage.sample()
    if count - first < count / 2:
        return None
    return round((usage.cpu_s - cpu) / (count - first) * 1e6, 1)


class KnowledgeJob:
    """The knowledge job (``flows.knowledge:flow``) on a run's input topics, with output topics of its own."""

    def __init__(self, settings: Settings, log_dir: Path, articles: Path) -> None:
        from coachflow.knowledge_config import KnowledgeSettings

        prefix = settings.topic_events.split(".")[0] + ".k."
        defaults = KnowledgeSettings()
        self.topics = {name: prefix + getattr(defaults, name)
                       for name in ("topic_cards", "topic_decisions", "topic_dlq", "topic_feedback")}
        CREATED.extend(ensure_topics(settings, specs={topic: {} for topic in self.topics.values()}))
        self.brokers, self.partitions = settings.brokers, settings.topic_partitions
        self.log_path = log_dir / "knowledge.log"
        self._log = self.log_path.open("w")
        env = job_env(settings, {
            "COACH_LINEAGE_RUN_ID": str(uuid.uuid4()), "COACH_METRICS_PORT": "0",
            "COACH_KNOWLEDGE_METRICS_PORT": "0", "COACH_KNOWLEDGE_OUTPUT_DIR": str(log_dir / "knowledge"),
            "COACH_KNOWLEDGE_ARTICLES": str(articles), "COACH_KNOWLEDGE_CREATE_TOPICS": "false",
            **{f"COACH_KNOWLEDGE_{name.upper()}": topic for name, topic in self.topics.items()},
        })
        self.process = subprocess.Popen(
            [sys.executable, "-m", "bytewax.run", "flows.knowledge:flow"], cwd=ROOT, env=env,
            stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True)
        self.usage = Usage([self.process.pid])
        self.usage.start()

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGINT)
        try:
            self.process.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
        self.usage.stop()
        self._log.close()

    def report(self, since_s: float, timeout: float = 30.0) -> dict:
        """Its decisions (by outcome) and cards since ``since_s``, a card's latency from its turn's append."""
        from confluent_kafka import Consumer, TopicPartition

        consumer = Consumer(
            Settings(brokers=self.brokers).kafka_client(
                **{
                    "group.id": f"bench-{uuid.uuid4().hex}",
                    "enable.auto.commit": False,
                    "enable.partition.eof": True,
                }
            )
        )
        topic = self.topics["topic_decisions"]
        consumer.assign([TopicPartition(topic, p, 0) for p in range(self.partitions)])
        outcomes: dict[str, int] = {}
        latencies: list[float] = []
        open_parts, deadline = set(range(self.partitions)), time.monotonic() + timeout
        try:
            while open_parts and time.monotonic() < deadline:
                for msg in consumer.consume(1000, 0.2):
                    if msg.error():
                        open_parts.discard(msg.partition())
                        continue
                    decision = json.loads(msg.value())
                    stamp = decision["input"]["source"].get("timestamp_ms")
                    if stamp is None or stamp / 1000 < since_s:
                        continue
                    key = decision["outcome"] + (
                        "" if decision["outcome"] != "shed" else f":{decision['reasons'][0]}"
                    )
                    outcomes[key] = outcomes.get(key, 0) + 1
                    if decision["outcome"] == "shown":
                        decided = datetime.fromisoformat(
                            decision["decided_at"].replace("Z", "+00:00")
                        ).timestamp()
                        latencies.append(1000 * (decided - stamp / 1000))
        finally:
            consumer.close()
        return {"decisions": sum(outcomes.values()), "outcomes": dict(sorted(outcomes.items())),
                "card_p50_ms": round(percentile(latencies, 50), 1) if latencies else None,
                "card_p99_ms": round(percentile(latencies, 99), 1) if latencies else None}


def live_run(
    brokers: str,
    records: list[dict],
    rate: float,
    *,
    env: dict[str, str] | None = None,
    partitions: int = 4,
    warmup: int = 500,
    settle_s: float = 10.0,
    workers: int = 1,
    processes: int = 1,
    jobs: int = 1,
    log_dir: Path | None = None,
    reference: bool = False,
    knowledge: Path | None = None,
) -> dict:
    """Run the job on fresh topics, replay ``records`` at ``rate``, report end-to-end latency.

    ``reference``: run the reference loop instead (one per share when ``jobs``
    split the partitions), measured the same way, for the job's latency to be
    read against the least a loop doing the same steps takes on this machine.
    ``knowledge``: also run the knowledge job on the same input topics, indexing
    these articles, and report its CPU, outcomes and card latency beside the job's.
    """
    settings = bench_settings(
        brokers, f"{'rlat' if reference else 'bench'}{uuid.uuid4().hex[:8]}.", partitions
    )
    create_topics(settings)
    log_dir = log_dir or Path(tempfile.mkdtemp(prefix="coach-bench-"))
    job = (ReferenceLoops(settings, log_dir, jobs) if reference
           else Job(settings, env or {}, log_dir, workers=workers, processes=processes, jobs=jobs))
    beside = KnowledgeJob(settings, log_dir, knowledge) if knowledge is not None else None
    collector, publisher = Collector(settings), Publisher(settings, key_by=key_by(jobs))
    collector.start()
    extra: dict = {}
    try:
        # Warm-up: the job starts, loads its model and suites, sees the first records.
        for record in records[:warmup]:
            publisher.send(record)
        publisher.flush()
        if not collector.wait_for(warmup, 120):
            raise RuntimeError(f"no answer to the warm-up; see {job.log_path}")
        time.sleep(settle_s)  # what the job starts beside the stream (the GX process) is up
        if beside is not None and beside.process.poll() is not None:
            raise RuntimeError(f"the knowledge job stopped; see {beside.log_path}")
        cpu_before, began = job.usage.cpu_s, time.monotonic()
        beside_before = beside.usage.cpu_s if beside is not None else 0.0
        achieved = publisher.paced(records[warmup:], rate)
        if not collector.wait_for(len(records), 120):
            raise RuntimeError(
                f"{len(records) - len(collector.outputs)} records unanswered; see {job.log_path}"
            )
        job.usage.sample()
        cpu = (job.usage.cpu_s - cpu_before) / (time.monotonic() - began)
        if beside is not None:
            time.sleep(2.0)  # the knowledge job's last answers
            beside.usage.sample()
            extra["knowledge"] = {
                "cpu_cores": round((beside.usage.cpu_s - beside_before) / (time.monotonic() - began), 2),
                **beside.report(began - 1.0),
            }
        time.sleep(0.5)
    finally:
        collector.stop()
        job.stop()
        if beside is not None:
            beside.stop()
    return {
        "rate_per_s": round(achieved, 1),
        "records": len(records),
        "cpu_cores": round(cpu, 2),
        "peak_rss_mb": round(job.usage.peak_rss / 2**20, 1),
        **latency_report(collector, publisher, warmup),
        **extra,
    }


def throughput_run(
    brokers: str,
    records: list[dict],
    *,
    partitions: int = 4,
    workers: int = 1,
    processes: int = 1,
    jobs: int = 1,
    reference: bool = True,
    reference_first: bool = False,
    env: dict[str, str] | None = None,
    log_dir: Path | None = None,
) -> dict:
    """Preload ``records``, then let the job (and the reference loop) work through them at full speed.

    Throughput counts inputs answered (a decision or a dead letter) per
    second, from the first input parsed to the last answer's append time
    (``Collector.throughput``), so the start-up is not counted.
    ``reference_first`` runs the reference loop before the job
    (``main_bench`` alternates, so drift of the machine's speed between the
    two runs does not favour either). With ``jobs`` > 1 the input is
    co-partitioned (events keyed by customer id), and as many reference
    loops as jobs run side by side on the same shares of the partitions.
    """
    settings = bench_settings(brokers, f"tput{uuid.uuid4().hex[:8]}.", partitions)
    create_topics(settings)
    publisher = Publisher(settings, key_by=key_by(jobs))
    for record in records:
        publisher.send(record)
    publisher.flush()
    log_dir = log_dir or Path(tempfile.mkdtemp(prefix="coach-bench-"))
    result = {"records": len(records), "partitions": partitions, "workers": workers, "processes": processes,
              "jobs": jobs}
    if reference and reference_first:
        result.update(_reference_run(brokers, settings, len(records), log_dir, partitions, jobs))
    result.update(_job_run(settings, len(records), log_dir, env, workers, processes, jobs))
    if reference and not reference_first:
        result.update(_reference_run(brokers, settings, len(records), log_dir, partitions, jobs))
    if reference:
        tput = result["reference_throughput_per_s"]
        result["ratio"] = round(result["throughput_per_s"] / tput, 3) if tput else None
    return result


def key_by(jobs: int) -> str:
    """What the replay keys events by: customer id when jobs share the partitions (co-partitioned input)."""
    return "customer" if jobs > 1 else "conversation"


def _job_run(settings: Settings, count: int, log_dir: Path, env: dict[str, str] | None,
             workers: int, processes: int, jobs: int = 1) -> dict:
    collector = Collector(settings)
    collector.start()
    job = Job(
        settings,
        {"COACH_KAFKA_TAIL": "false", **(env or {})},
        log_dir,
        workers=workers,
        processes=processes,
        jobs=jobs,
    )
    try:
        working = working_cpu_us(job.usage, collector, count, 600)
        if len(collector.outputs) < count:
            raise RuntimeError(f"{count - len(collector.outputs)} records unanswered; see {job.log_path}")
        job.wait(120)
    finally:
        collector.stop()
        job.stop()
    return {
        "throughput_per_s": round(collector.throughput(), 1),
        "cpu_cores": round(job.usage.cpu_s / job.usage.wall, 2),
        "cpu_us_per_record": working,
        "peak_rss_mb": round(job.usage.peak_rss / 2**20, 1),
    }


def _reference_run(brokers: str, settings: Settings, count: int, log_dir: Path, partitions: int,
                   jobs: int = 1) -> dict:
    """The reference loop (one per share when ``jobs`` split the partitions): the job's input topics, its own
    output topics."""
    ref = bench_settings(brokers, f"ref{uuid.uuid4().hex[:8]}.", partitions)
    ref = ref.model_copy(
        update={"topic_events": settings.topic_events, "topic_context": settings.topic_context}
    )
    create_topics(ref)
    collector = Collector(ref)
    collector.start()
    loops = ReferenceLoops(ref, log_dir, jobs)
    try:
        working = working_cpu_us(loops.usage, collector, count, 600, loops.running)
        if len(collector.outputs) < count:
            raise RuntimeError(f"the reference loop left {count - len(collector.outputs)} unanswered; "
                               f"see {loops.log_path}")
    finally:
        collector.stop()
        loops.stop()
    return {
        "reference_throughput_per_s": round(collector.throughput(), 1),
        "reference_cpu_us_per_record": working,
        "reference_peak_rss_mb": round(loops.usage.peak_rss / 2**20, 1),
    }


def records_pool(count: int, concurrency: int) -> list[dict]:
    """At least ``count`` records: the STAR dev conversations, then again under new ids as often as needed."""
    base = bench_records(10_000, concurrency)
    pool = list(base)
    lap = 1
    while len(pool) < count:
        suffix = f"-r{lap}"
        for record in base:
            copy = dict(record)
            for key in ("conversation_id", "customer_id", "event_id"):
                if key in copy:
                    copy[key] += suffix
            pool.append(copy)
        lap += 1
    return pool[:count]


def bench_records(dialogues: int, concurrency: int, split: str = "dev") -> list[dict]:
    """STAR conversations as contract records, stamped in the recent past (never future)."""
    items = replay.records(star.DEFAULT_STAR_DIR / "dialogues.jsonl.gz", split=split, limit=dialogues,
                           concurrency=concurrency, start=datetime.now(UTC) - timedelta(hours=12))
    return [record for _, record in items]


def broker_up(brokers: str, timeout: float = 3.0) -> bool:
    """Whether a broker answers within ``timeout``.

    Its port is probed with plain TCP until it opens, so a broker that is absent
    or still starting costs no librdkafka client and none of its reconnect lines.
    """
    import socket

    from confluent_kafka.admin import AdminClient

    host, _, port = brokers.split(",", maxsplit=1)[0].strip().rpartition(":")
    deadline = time.monotonic() + timeout
    while True:
        try:
            socket.create_connection((host, int(port)), timeout=max(0.1, deadline - time.monotonic())).close()
            break
        except OSError:
            if time.monotonic() + 0.2 >= deadline:
                return False
            time.sleep(0.2)
    try:
        admin = AdminClient(Settings(brokers=brokers).kafka_client())
        admin.list_topics(timeout=max(1.0, deadline - time.monotonic()))
        return True
    except Exception:  # noqa: BLE001 - any failure means "not reachable"
        return False


def replay_to_file(dialogues: Path, split: str, limit: int, out: Path) -> int:
    """``coach replay`` of STAR dialogues to the job's JSONL input (``limit`` 0: all of the split), as a
    user runs it; the number of records written."""
    command = [sys.executable, "-m", "coachflow.cli", "replay", str(dialogues), "--split", split,
               "--out", str(out)]
    if limit:
        command += ["--limit", str(limit)]
    subprocess.run(command, cwd=ROOT, check=True, stdout=subprocess.DEVNULL)
    with out.open() as lines:
        return sum(1 for _ in lines)


def machine() -> dict:
    """What the figures were measured on."""
    model = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                  if line.startswith("model name")), "unknown")
    mem = next(int(line.split()[1]) for line in Path("/proc/meminfo").read_text().splitlines()
               if line.startswith("MemTotal"))
    return {"cpus": os.cpu_count(), "cpu": model, "memory_gb": round(mem / 2**20, 1),
            "python": sys.version.split()[0]}


FLOOR_MODES = ("bytes", "contracts", "json")


def sample_decisions() -> list:
    """Decisions the embedded job writes for the bundled sample (the reference loop's steps, in process)."""
    from coachflow.config import SAMPLE_INPUT
    from coachflow.reference import Pipeline
    from operators.envelope import Origin, RawRecord
    from schemas import Decision

    settings = Settings(
        input=SAMPLE_INPUT,
        output_dir=tempfile.mkdtemp(prefix="floor-"),
        quality_monitor=False,
        lineage="none",
        print_suggestions=False,
        log_level="WARNING",
    )
    pipeline = Pipeline(settings)
    raws = [RawRecord(value=line, key=None, origin=Origin(file=str(SAMPLE_INPUT), line=n), stream="any",
                      size=len(line) + 1)
            for n, line in enumerate(SAMPLE_INPUT.read_bytes().splitlines(), 1)]
    out = [*pipeline.process(raws), *pipeline.finish()]
    return [record for record in out if isinstance(record, Decision)]


def _local_broker_pid(brokers: str) -> int | None:
    """The pid of the project's own broker when ``brokers`` is it (for its CPU), else None."""
    port = brokers.rsplit(":", 1)[-1]
    status = subprocess.run([str(ROOT / "scripts" / "kafka.sh"), "status"], capture_output=True, text=True,
                            env={**os.environ, "KAFKA_PORT": port}, check=False).stdout
    return int(status.rsplit("pid", 1)[1].strip(" )\n")) if "pid" in status else None


def floor_run(brokers: str, mode: str, records: list[dict], partitions: int, decisions: list) -> dict:
    """The Kafka floor: a bare confluent-kafka loop over ``records``, no pipeline (bench/kafka_floor.py).

    ``bytes`` produces each input's own bytes; ``contracts`` validates each input with its topic
    contract's adapter and serialises a real decision of the sample (the least work a record costs
    while the topics keep their pydantic contracts); ``json`` does the same with the standard library.
    """
    from confluent_kafka import Consumer, Producer, TopicPartition

    from schemas.events import CONTEXT_ADAPTER, EVENT_ADAPTER  # the parse step's adapters for the two topics

    adapters = {"events": EVENT_ADAPTER, "context": CONTEXT_ADAPTER}
    as_dicts = [json.loads(decision.__pydantic_serializer__.to_json(decision)) for decision in decisions]
    count = len(records)
    settings = bench_settings(brokers, f"floor{uuid.uuid4().hex[:8]}.", partitions)
    create_topics(settings)
    publisher = Publisher(settings)
    for record in records:
        publisher.send(record)
    publisher.flush()
    collector = Collector(settings, topics=(settings.topic_decisions,))
    collector.start()
    consumer = Consumer(
        settings.kafka_client(**{"group.id": f"floor-{uuid.uuid4().hex}", "enable.auto.commit": False})
    )
    consumer.assign([TopicPartition(topic, p, 0) for topic in (settings.topic_events, settings.topic_context)
                     for p in range(partitions)])
    producer = Producer(settings.kafka_client(**{"linger.ms": 5, "delivery.report.only.error": True,
                                                 "enable.idempotence": True}))
    pid = _local_broker_pid(brokers)
    broker = Usage([pid]) if pid is not None else None
    broker_before = 0.0
    if broker is not None:
        broker.sample()
        broker_before = broker.cpu_s
        broker.start()
    cpu, thread_cpu, done = time.process_time(), time.thread_time(), 0
    while done < count:
        for message in consumer.consume(1000, 0.1):
            if message.error():
                continue
            if mode == "bytes":
                value = message.value()
            elif mode == "contracts":
                stream = "context" if message.topic() == settings.topic_context else "events"
                record = adapters[stream].validate_json(message.value())
                decision = decisions[done % len(decisions)]
                decision = decision.model_copy(
                    update={"decision_id": getattr(record, "event_id", record.customer_id)}
                )
                value = decision.__pydantic_serializer__.to_json(decision)
            else:
                parsed = json.loads(message.value())
                as_dict = as_dicts[done % len(as_dicts)]
                value = json.dumps({**as_dict, "decision_id": parsed.get("event_id", parsed["customer_id"])},
                                   separators=(",", ":")).encode()
            done += 1
            while True:
                try:
                    producer.produce(settings.topic_decisions, value=value, key=message.key())
                    break
                except BufferError:
                    producer.poll(0.01)
            producer.poll(0)
    if producer.flush(60):
        raise RuntimeError("floor: undelivered records")
    cpu, thread_cpu = time.process_time() - cpu, time.thread_time() - thread_cpu
    arrived = collector.wait_for(count, 120)
    if broker is not None:
        broker.sample()
        broker.stop()
    collector.stop()
    consumer.close()
    appends = sorted(appended for _, _, appended in collector.outputs)
    if not arrived or len(appends) < 2:  # noqa: PLR2004 - a rate needs two instants
        raise RuntimeError(f"floor: {len(appends)} of {count} outputs arrived")
    span = appends[-1] - appends[0]
    return {"mode": mode, "records": count, "throughput_per_s": round(count / span) if span > 0 else None,
            "loop_cpu_us_per_record": round(cpu / count * 1e6, 1),
            "loop_thread_cpu_us_per_record": round(thread_cpu / count * 1e6, 1),
            "broker_cpu_cores": (round((broker.cpu_s - broker_before) / broker.wall, 2)
                                 if broker is not None and broker.wall > 0 else None),
            "output_bytes_per_record": round(sum(len(v) for v, _, _ in collector.outputs) / count)}


def _medians(rounds: list[dict]) -> dict:
    """Per figure, the median over the rounds (the ratio is the median of each round's own ratio);
    peak memory is the largest."""
    out = dict(rounds[0])
    for key, value in rounds[0].items():
        values = [r[key] for r in rounds if r.get(key) is not None]
        if isinstance(value, float) and values:
            out[key] = max(values) if key.endswith("rss_mb") else round(statistics.median(values), 3)
    return out


#: The figures of each rate in ``latency`` (several ``--rate``s).
_LATENCY_ROW = (
    "rate_target_per_s", "rate_achieved_per_s", "latency_records", "p50_ms", "p95_ms", "p99_ms", "max_ms",
    "in_job_p99_ms", "latency_cpu_cores", "reference_p50_ms", "reference_p95_ms", "reference_p99_ms",
    "reference_latency_cpu_cores",
)


def latency_at(
    brokers: str, records: list, rate: float, args, scale: dict, log: Callable[[str], None]
) -> dict:
    """The latency run at ``rate``: the job's, then (unless ``--no-reference``) the reference loop's."""
    log(f"latency: {rate:g} records/s for {args.duration:g} s")
    live = live_run(brokers, records, rate, knowledge=args.knowledge, **scale)
    ends = live["decisions"]
    result = {key: ends[key] for key in ("p50_ms", "p95_ms", "p99_ms", "max_ms")}
    result.update({
        "rate_target_per_s": rate,
        "rate_achieved_per_s": live["rate_per_s"],
        "latency_records": len(records),
        "final_customer_turns": live["final_customer_turns"],
        "context_first": live["context_first"],
        "in_job": live["in_job"],
        "in_job_p99_ms": live["in_job"].get("p99_ms"),
        "latency_cpu_cores": live["cpu_cores"],
        "peak_rss_mb": live["peak_rss_mb"],
    })
    if "knowledge" in live:
        result["knowledge"] = live["knowledge"]
    if not args.no_reference:
        log(f"latency of the reference loop: {rate:g} records/s for {args.duration:g} s")
        ref = live_run(brokers, records, rate, reference=True, **scale)
        ends = ref["decisions"]
        result.update({f"reference_{key}": ends[key] for key in ("p50_ms", "p95_ms", "p99_ms", "max_ms")})
        result.update({"reference_rate_achieved_per_s": ref["rate_per_s"],
                       "reference_context_first": ref["context_first"],
                       "reference_in_loop": ref["in_job"],
                       "reference_latency_cpu_cores": ref["cpu_cores"]})
    return result


def main_bench(args) -> int:
    """``coach bench``: throughput (job, reference loop) and latency at a target rate, one JSON object."""
    if args.rounds < 1 and args.duration <= 0:
        print("coach bench: nothing to measure (--rounds 0 and --duration 0)", file=sys.stderr)
        return 2
    if args.jobs > 1 and (args.processes > 1 or args.jobs > args.partitions):
        print("coach bench: --jobs N runs N one-process jobs, each on its share of the --partitions",
              file=sys.stderr)
        return 2
    brokers, started = args.brokers, False
    if brokers is None:  # the broker scripts/kafka.sh runs (KAFKA_PORT chooses its port)
        brokers = f"127.0.0.1:{os.environ.get('KAFKA_PORT', '9092')}"
        if not broker_up(brokers):
            subprocess.run([str(ROOT / "scripts" / "kafka.sh"), "start"], check=True)
            started = True
    elif not broker_up(brokers, 10):
        print(f"coach bench: no broker at {brokers}", file=sys.stderr)
        return 2
    try:
        scale = {"partitions": args.partitions, "workers": args.workers, "processes": args.processes,
                 "jobs": args.jobs}
        log = lambda message: print(f"coach bench: {message}", file=sys.stderr, flush=True)  # noqa: E731

        def live_size(rate: float) -> int:
            return int(rate * args.duration) + 500  # a latency run's records, its warm-up included

        pool = records_pool(max(args.throughput_records if args.rounds else 0, *map(live_size, args.rate)),
                            args.concurrency)
        rounds = []
        for n in range(args.rounds):
            log(
                f"throughput, round {n + 1} of {args.rounds}: "
                f"{args.throughput_records} records preloaded, {scale}"
            )
            rounds.append(
                throughput_run(
                    brokers,
                    pool[: args.throughput_records],
                    reference=not args.no_reference,
                    reference_first=n % 2 == 1,
                    **scale,
                )
            )
            log(json.dumps(rounds[-1]))
        tput = _medians(rounds) if rounds else {}
        result = {"throughput_per_s": tput.get("throughput_per_s"),
                  "reference_throughput_per_s": tput.get("reference_throughput_per_s"),
                  "ratio": tput.get("ratio")}
        if rounds and not args.no_floor:  # the floor in the same run: the ratio to it is what drifts least
            log(f"the Kafka floor: {args.throughput_records} records, bytes only and with the contracts")
            decisions = sample_decisions()
            floors = {
                mode: floor_run(brokers, mode, pool[: args.throughput_records], args.partitions, decisions)
                for mode in ("bytes", "contracts")
            }
            log(json.dumps(floors))
            floor = floors["contracts"]["throughput_per_s"]
            result.update({
                "floor_throughput_per_s": floor,
                "floor_bytes_throughput_per_s": floors["bytes"]["throughput_per_s"],
                "ratio_to_floor": round(result["throughput_per_s"] / floor, 3) if floor else None,
                "cpu_us_per_record": tput.get("cpu_us_per_record"),
                "reference_cpu_us_per_record": tput.get("reference_cpu_us_per_record"),
                "floor_cpu_us_per_record": floors["contracts"]["loop_cpu_us_per_record"],
                "floor_bytes_cpu_us_per_record": floors["bytes"]["loop_cpu_us_per_record"],
            })
        if len(rounds) > 1:
            result["rounds"] = [
                {key: r.get(key) for key in ("throughput_per_s", "reference_throughput_per_s", "ratio")}
                for r in rounds
            ]
        if args.duration > 0:
            latency = [
                latency_at(brokers, pool[: live_size(rate)], rate, args, scale, log) for rate in args.rate
            ]
            peak = max([tput.get("peak_rss_mb", 0.0), *(run.pop("peak_rss_mb") for run in latency)])
            result.update(latency[0])  # the first rate's figures at the top level, as with one rate
            if len(latency) > 1:
                result["latency"] = [{key: run[key] for key in _LATENCY_ROW if key in run} for run in latency]
        else:
            peak = tput["peak_rss_mb"]
        result.update({"peak_rss_mb": peak, "throughput_cpu_cores": tput.get("cpu_cores"),
                       "reference_peak_rss_mb": tput.get("reference_peak_rss_mb"),
                       "records": tput.get("records"), **scale, "machine": machine()})
        print(json.dumps(result, indent=None if args.compact else 2))
        return 0
    finally:
        if not args.keep_topics:
            delete_created_topics(brokers)
        if started:
            subprocess.run([str(ROOT / "scripts" / "kafka.sh"), "stop"], check=False)
