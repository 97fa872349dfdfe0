"""Replay STAR dialogues as live contact-center traffic, to a file or to Kafka.

Dialogues become contract events (``models.star``) with deterministic
synthetic customer context, interleaved as ``concurrency`` agents working in
parallel, and are written as fast as possible or paced (``speed`` 1 = real
time, 10 = ten times faster).

Event times: a paced replay starts now and keeps pace with the clock, as live
traffic does. A replay written as fast as possible ends now: every event lies
in the past, so the job accepts it whether it runs at once or a day later (its
quality gate refuses events more than 300 s in its future).
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from coachflow.kafka_log import client_config
from models import star
from operators.keys import key_field
from schemas.topics import topic


@dataclass
class ReplayStats:
    conversations: int = 0
    events: int = 0
    contexts: int = 0
    final_turns: int = 0
    prediction_points: int = 0
    event_ids: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, int]:
        return {
            "conversations": self.conversations,
            "events": self.events,
            "contexts": self.contexts,
            "records": self.events + self.contexts,
            "final_turns": self.final_turns,
            "prediction_points": self.prediction_points,
        }


def records(
    path: Path | str,
    *,
    split: str = "all",
    limit: int | None = None,
    concurrency: int = 8,
    start: datetime | None = None,
    time_scale: float = 1.0,
    voice_share: float = 0.4,
    end: datetime | None = None,
) -> Iterator[tuple[datetime, dict[str, Any]]]:
    """Stamped contract records of the selected dialogues, in time order.

    The first record is at ``start`` (default now); with ``end``, the times are shifted
    so that the last record is at ``end`` instead (the dialogues are read twice).
    """

    def schedule(at: datetime) -> Iterator[tuple[datetime, dict[str, Any]]]:
        mapped = (
            star.map_dialogue(d, voice_share=voice_share) for d in star.select(path, split=split, limit=limit)
        )
        return star.schedule(mapped, start=at, concurrency=concurrency, time_scale=time_scale)

    if end is None:
        return schedule(start or datetime.now(UTC))
    origin = datetime(2000, 1, 1, tzinfo=UTC)
    last = max((moment for moment, _ in schedule(origin)), default=origin)
    return schedule(end - (last - origin))


def _paced(items: Iterable[tuple[datetime, dict]], speed: float) -> Iterator[tuple[datetime, dict]]:
    """Hold each record back until its time has come at ``speed`` (0 = no pacing)."""
    began_wall = time.monotonic()
    began: datetime | None = None
    for moment, record in items:
        if speed > 0:
            began = began or moment
            due = began_wall + (moment - began).total_seconds() / speed
            delay = due - time.monotonic()
            if delay > 0:
                time.sleep(delay)
        yield moment, record


def _count(stats: ReplayStats, record: dict[str, Any]) -> None:
    if record["type"] == "customer_context":
        stats.contexts += 1
        return
    stats.events += 1
    stats.event_ids.append(record["event_id"])
    if record["type"] == "conversation_start":
        stats.conversations += 1
    if record["type"] == "turn" and record["is_final"]:
        stats.final_turns += 1
    if star.is_prediction_point(record):
        stats.prediction_points += 1


def to_file(items: Iterable[tuple[datetime, dict]], out: Path | str, speed: float = 0.0) -> ReplayStats:
    """Write records as JSONL (the embedded mode's input format)."""
    stats = ReplayStats()
    from coachflow.private import private_file

    with open(private_file(out), "w", encoding="utf-8") as sink:
        for _, record in _paced(items, speed):
            sink.write(json.dumps(record, ensure_ascii=False, separators=(",", ":")) + "\n")
            if speed > 0:
                sink.flush()
            _count(stats, record)
    return stats


def kafka_target(record: dict, key_by: str = "conversation") -> tuple[str, str]:
    """``(stream, key)`` of a contract record as the job reads it from Kafka.

    The key is ``operators.keys.key_field``'s.
    """
    stream = "context" if record["type"] == "customer_context" else "events"
    return stream, record[key_field(stream, key_by)]


def to_kafka(
    items: Iterable[tuple[datetime, dict]],
    brokers: str,
    *,
    topic_events: str = topic("events").default,
    topic_context: str = topic("context").default,
    speed: float = 0.0,
    config: dict[str, str] | None = None,
    key_by: str = "conversation",
) -> ReplayStats:
    """Produce events keyed by conversation id (or customer id: ``key_by``), context by customer id."""
    from confluent_kafka import Producer

    producer = Producer(client_config({
        "bootstrap.servers": brokers,
        "linger.ms": 5 if speed == 0 else 0,
        "enable.idempotence": True,
        **(config or {}),
    }))
    stats = ReplayStats()
    failures: list[str] = []

    def delivered(err, _msg) -> None:
        if err is not None:
            failures.append(str(err))

    topics = {"events": topic_events, "context": topic_context}
    for _, record in _paced(items, speed):
        stream, key = kafka_target(record, key_by)
        topic = topics[stream]
        value = json.dumps(record, ensure_ascii=False, separators=(",", ":")).encode()
        while True:
            try:
                producer.produce(topic, value=value, key=key.encode(), on_delivery=delivered)
                break
            except BufferError:
                producer.poll(0.05)
        producer.poll(0)
        _count(stats, record)
    remaining = producer.flush(60)
    if remaining or failures:
        raise RuntimeError(f"{remaining} records undelivered, {len(failures)} failed: {failures[:3]}")
    return stats


def _moment(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text.replace("Z", "+00:00")) if text else None


def main_replay(args) -> int:
    start, end = _moment(args.start_time), _moment(args.end_time)
    if start is None and end is None and args.speed == 0:
        end = datetime.now(UTC)  # as fast as possible: every event in the past
    items = records(
        args.path,
        split=args.split,
        limit=args.limit,
        concurrency=args.concurrency,
        start=start,
        end=end,
        time_scale=args.time_scale,
        voice_share=args.voice_share,
    )
    if args.brokers:
        from coachflow.config import Settings
        from coachflow.topics import ensure_topics

        settings = Settings(
            brokers=args.brokers, topic_events=args.topic_events,
            topic_context=args.topic_context, topic_partitions=args.partitions,
        )
        ensure_topics(settings, only=(args.topic_events, args.topic_context))
        stats = to_kafka(
            items,
            args.brokers,
            topic_events=args.topic_events,
            topic_context=args.topic_context,
            speed=args.speed,
            config=settings.kafka_client(),
            key_by=args.key,
        )
    else:
        stats = to_file(items, args.out, speed=args.speed)
    print(json.dumps(stats.as_dict()), file=sys.stderr)
    return 0
