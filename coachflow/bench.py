"""Live benchmarks on a real broker: end-to-end latency by Kafka append times.

A run creates its own topics (input and output topics with
``message.timestamp.type=LogAppendTime``, so the broker stamps both ends),
starts the job with ``python -m bytewax.run flows.coaching:flow`` on them,
publishes STAR conversations at a steady rate after a short warm-up, and
reads every decision and dead letter back. A decision's end-to-end latency
is its append time on ``coaching.decisions`` minus its input's append time
on ``conversation.events`` (or ``customer.context``), matched by the source
partition and offset every decision carries.
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
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path

from coachflow import replay, star
from coachflow.config import Settings
from coachflow.topics import ensure_topics

ROOT = Path(__file__).resolve().parents[1]
APPEND_TIME = {"message.timestamp.type": "LogAppendTime"}


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


def bench_settings(brokers: str, prefix: str, partitions: int) -> Settings:
    return Settings(
        brokers=brokers,
        topic_partitions=partitions,
        topic_events=f"{prefix}conversation.events",
        topic_context=f"{prefix}customer.context",
        topic_suggestions=f"{prefix}coaching.suggestions",
        topic_alerts=f"{prefix}coaching.alerts",
        topic_decisions=f"{prefix}coaching.decisions",
        topic_dlq=f"{prefix}coaching.dlq",
        topic_summaries=f"{prefix}coaching.summaries",
    )


def create_topics(settings: Settings) -> None:
    """The run's topics; inputs, decisions and dead letters stamped by the broker."""
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({"bootstrap.servers": settings.brokers})
    stamped = {settings.topic_events, settings.topic_decisions, settings.topic_dlq}
    topics = [NewTopic(t, num_partitions=settings.topic_partitions, replication_factor=-1, config=APPEND_TIME)
              for t in stamped]
    topics.append(NewTopic(settings.topic_context, num_partitions=settings.topic_partitions,
                           replication_factor=-1, config={**APPEND_TIME, "cleanup.policy": "compact"}))
    for future in admin.create_topics(topics, request_timeout=30).values():
        future.result(30)
    ensure_topics(settings)  # the rest, as the job would


def job_env(settings: Settings, extra: dict[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("COACH_")}
    env.update({
        "COACH_BROKERS": settings.brokers,
        "COACH_TOPIC_EVENTS": settings.topic_events,
        "COACH_TOPIC_CONTEXT": settings.topic_context,
        "COACH_TOPIC_SUGGESTIONS": settings.topic_suggestions,
        "COACH_TOPIC_ALERTS": settings.topic_alerts,
        "COACH_TOPIC_DECISIONS": settings.topic_decisions,
        "COACH_TOPIC_DLQ": settings.topic_dlq,
        "COACH_TOPIC_SUMMARIES": settings.topic_summaries,
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
    outputs: list[tuple[dict, float]] = field(default_factory=list)  # (record, append time s)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> None:
        from confluent_kafka import Consumer, TopicPartition

        consumer = Consumer({"bootstrap.servers": self.settings.brokers, "group.id": f"bench-{uuid.uuid4().hex}",
                             "enable.auto.commit": False, "fetch.wait.max.ms": 10})
        parts = [TopicPartition(topic, p, 0) for topic in (self.settings.topic_decisions, self.settings.topic_dlq)
                 for p in range(self.settings.topic_partitions)]
        consumer.assign(parts)

        def run() -> None:
            try:
                while not self._stop.is_set():
                    for msg in consumer.consume(1000, 0.05):
                        if msg.error():
                            continue
                        record = json.loads(msg.value())
                        record["_dlq"] = msg.topic() == self.settings.topic_dlq
                        self.outputs.append((record, msg.timestamp()[1] / 1000))
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


@dataclass
class Publisher:
    """Produces records in order, remembering each one's broker append time."""

    settings: Settings
    appended: dict[tuple[str, int, int], float] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        from confluent_kafka import Producer

        self._producer = Producer({"bootstrap.servers": self.settings.brokers, "linger.ms": 0,
                                   "enable.idempotence": True})

    def _delivered(self, err, msg) -> None:
        if err is not None:
            self.failures.append(str(err))
        else:
            self.appended[(msg.topic(), msg.partition(), msg.offset())] = msg.timestamp()[1] / 1000

    def send(self, record: dict) -> None:
        if record["type"] == "customer_context":
            topic, key = self.settings.topic_context, record["customer_id"]
        else:
            topic, key = self.settings.topic_events, record["conversation_id"]
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
            if ahead > 0.001:
                self._producer.poll(0)
                time.sleep(ahead)
            self.send(record)
        elapsed = time.perf_counter() - began
        self.flush()
        return sent / elapsed if elapsed > 0 else 0.0

    def flush(self) -> None:
        if self._producer.flush(60) or self.failures:
            raise RuntimeError(f"replay undelivered: {self.failures[:3]}")


def latency_report(collector: Collector, publisher: Publisher, skip: int) -> dict:
    """End-to-end latency of every decision on a record after the first ``skip`` (the warm-up)."""
    order = sorted(publisher.appended, key=publisher.appended.get)
    measured = set(order[skip:])
    every, final_turns, in_job, dead = [], [], [], 0
    for record, appended in collector.outputs:
        if record["_dlq"]:
            dead += 1
            continue
        src = record["input"]["source"]
        key = (src["topic"], src["partition"], src["offset"])
        if key not in measured:
            continue
        latency = (appended - publisher.appended[key]) * 1000
        every.append(latency)
        if record.get("latency_ms"):
            in_job.append(record["latency_ms"]["total_ms"])
        if record["input"]["kind"] == "turn" and record["input"]["is_final"] and record["input"]["speaker"] == "customer":
            final_turns.append(latency)
    return {
        "decisions": summarize(every),
        "final_customer_turns": summarize(final_turns),
        # From the input being parsed to its decision, as the job measures it.
        "in_job": summarize(in_job),
        "dead_letters": dead,
    }


def live_run(
    brokers: str,
    records: list[dict],
    rate: float,
    *,
    env: dict[str, str] | None = None,
    partitions: int = 4,
    warmup: int = 500,
    settle_s: float = 10.0,
    job_args: tuple[str, ...] = (),
    log_dir: Path | None = None,
) -> dict:
    """Run the job on fresh topics, replay ``records`` at ``rate``, report end-to-end latency."""
    settings = bench_settings(brokers, f"bench{uuid.uuid4().hex[:8]}.", partitions)
    create_topics(settings)
    log_dir = log_dir or Path(tempfile.mkdtemp(prefix="coach-bench-"))
    log = (log_dir / f"{settings.topic_events.split('.')[0]}.log").open("w")
    job = subprocess.Popen(
        [sys.executable, "-m", "bytewax.run", *job_args, "flows.coaching:flow"], cwd=ROOT,
        env=job_env(settings, {"COACH_OUTPUT_DIR": str(log_dir), **(env or {})}),
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )
    collector, publisher = Collector(settings), Publisher(settings)
    collector.start()
    try:
        # Warm-up: the job starts, loads its model and suites, sees the first records.
        for record in records[:warmup]:
            publisher.send(record)
        publisher.flush()
        if not collector.wait_for(warmup, 120):
            raise RuntimeError(f"the job did not answer the warm-up; see {log.name}")
        time.sleep(settle_s)  # what the job starts beside the stream (the GX process) is up
        achieved = publisher.paced(records[warmup:], rate)
        if not collector.wait_for(len(records), 120):
            raise RuntimeError(f"{len(records) - len(collector.outputs)} records unanswered; see {log.name}")
        time.sleep(0.5)
    finally:
        collector.stop()
        if job.poll() is None:
            os.killpg(job.pid, signal.SIGINT)
            try:
                job.wait(60)
            except subprocess.TimeoutExpired:
                os.killpg(job.pid, signal.SIGKILL)
        log.close()
    return {"rate_per_s": round(achieved, 1), "records": len(records), **latency_report(collector, publisher, warmup)}


def bench_records(dialogues: int, concurrency: int, split: str = "dev") -> list[dict]:
    """STAR conversations as contract records, stamped in the recent past (never future)."""
    items = replay.records(star.DEFAULT_STAR_DIR / "dialogues.jsonl.gz", split=split, limit=dialogues,
                           concurrency=concurrency, start=datetime.now(timezone.utc) - timedelta(hours=12))
    return [record for _, record in items]
