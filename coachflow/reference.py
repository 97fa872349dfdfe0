"""The reference loop: the coaching pipeline as a plain confluent-kafka loop, no Bytewax.

``coach bench`` measures the job's throughput against this loop on the same
input, so the figure says what Bytewax's dataflow costs (or saves) over the
simplest program doing the same work. It runs the job's own step logic, in
the job's order, in one process and one thread:

consume a batch -> parse (contracts, PII masking) -> quality gate -> join
with customer context -> conversation state -> score the batch with the ONNX
model -> guardrails -> acceptance -> serialise -> produce.

Keyed steps keep one ``StatefulLogic`` per key in a dict, as Bytewax does,
and their timers (the join's context wait, idle conversations) are served
between batches. It publishes what the job publishes. What it leaves out:
GX's side process, lineage and the Prometheus metrics (the job under
benchmark has them on), recovery snapshots and anything to do with several
workers.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime

from coachflow.config import Settings
from coachflow.runtime import JobResources
from models.heap import settle_heap
from operators.acceptance import AcceptanceLogic, acceptance_key, wants
from operators.conversation import ConversationLogic
from operators.envelope import Envelope, Origin, RawRecord, now_ns
from operators.guardrails import GuardConfig, GuardLogic, guard_key
from operators.join import ContextJoinLogic
from operators.parse import parse_record
from operators.publish import serialize
from operators.quality import quality_row, suite_of
from operators.records import refuse_quality
from operators.scoring import score_envelopes
from schemas import Feedback

#: Seconds between two scans for due timers at least.
_TICK_S = 0.05


class Keyed:
    """One ``StatefulLogic`` per key, built on first sight, dropped when it says so."""

    def __init__(self, build: Callable[[], object]) -> None:
        self._build = build
        self._logics: dict[str, object] = {}
        self._timers: dict[str, datetime] = {}

    def feed(self, key: str, value, out: list) -> None:
        logic = self._logics.get(key) or self._build()
        items, discard = logic.on_item(value)
        out.extend(items)
        self._keep(key, logic, discard)

    def tick(self, now: datetime, out: list) -> None:
        for key, due in list(self._timers.items()):
            if due <= now:
                logic = self._logics[key]
                items, discard = logic.on_notify()
                out.extend(items)
                self._keep(key, logic, discard)

    def eof(self, out: list) -> None:
        for key, logic in list(self._logics.items()):
            items, discard = logic.on_eof()
            out.extend(items)
            self._keep(key, logic, discard)

    def _keep(self, key: str, logic, discard: bool) -> None:
        if discard:
            self._logics.pop(key, None)
            self._timers.pop(key, None)
            return
        self._logics[key] = logic
        due = logic.notify_at()
        if due is None:
            self._timers.pop(key, None)
        else:
            self._timers[key] = due


class Pipeline:
    """The job's steps over a batch of raw records, returning the records to publish."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        # The job's own resources, without what the loop leaves out (lineage, metrics, the GX monitor).
        self.job = JobResources(settings.model_copy(update={
            "lineage": "none", "metrics_port": 0, "quality_monitor": False, "print_suggestions": False,
        })).open()
        self.scorer, self.policies, self.gate = self.job.scorer, self.job.policies, self.job.gate
        self.limits = settings.parse_limits()
        join, conversation = settings.join_config(), settings.conversation_config()
        templates, idle = self.scorer.templates, settings.session_gap_s
        self.join = Keyed(lambda: ContextJoinLogic(join, None, time.time))
        self.conversations = Keyed(lambda: ConversationLogic(conversation, None, time.time))
        # The guards pass each input through just before its decision, for the acceptance step.
        guard = GuardConfig(idle_s=idle, passthrough=True, payload_limit=settings.max_payload_bytes)
        self.guards = Keyed(lambda: GuardLogic(self.policies, templates, guard))
        acceptance = settings.acceptance_config()
        self.acceptance = Keyed(lambda: AcceptanceLogic(acceptance, None, time.time))
        self._last_tick = 0.0

    def process(self, batch: list[RawRecord]) -> list:
        out: list = []
        received, redactor = now_ns(), self.policies.current().redactor
        joined: list = []
        for raw in batch:
            parsed = parse_record(raw, self.limits, received, redactor)
            if not isinstance(parsed, Envelope):
                out.append(parsed)
                continue
            if isinstance(parsed.record, Feedback):  # UI feedback goes straight to acceptance
                self.acceptance.feed(acceptance_key(parsed), parsed, out)
                continue
            verdict = self.gate.judge(suite_of(parsed), quality_row(parsed))
            if verdict.critical:
                out.append(refuse_quality(parsed, verdict, self.settings.max_payload_bytes))
                continue
            parsed.quality = verdict
            self.join.feed(parsed.join_key, parsed, joined)
        self._route(joined, out, self._timers_due())
        return out

    def idle(self) -> list:
        """Serve due timers when no input came."""
        out: list = []
        self._route([], out, self._timers_due())
        return out

    def finish(self) -> list:
        """The end of the input, as Bytewax signals it: each step's ``on_eof`` in order."""
        joined: list = []
        out: list = []
        self.join.eof(joined)
        self._route(joined, out, timers=False, eof=True)
        return out

    def _timers_due(self) -> bool:
        """Timers are served every 50 ms at most, as a scan over the keys that have one."""
        if time.monotonic() - self._last_tick < _TICK_S:
            return False
        self._last_tick = time.monotonic()
        return True

    def _route(self, joined: list, out: list, timers: bool, eof: bool = False) -> None:
        if timers:
            self.join.tick(datetime.now(UTC), joined)
        tracked: list = []
        contexts: list = []
        for item in joined:
            if not isinstance(item, Envelope):
                out.append(item)
            elif item.recorded is None:
                self.conversations.feed(item.record.conversation_id, item, tracked)
            else:
                contexts.append(item)
        if timers:
            self.conversations.tick(datetime.now(UTC), tracked)
        if eof:
            self.conversations.eof(tracked)
        points = [item for item in tracked if isinstance(item, Envelope)]
        out.extend(item for item in tracked if not isinstance(item, Envelope))
        guarded: list = []
        for envelope in [*score_envelopes(points, self.scorer), *contexts]:
            self.guards.feed(guard_key(envelope), envelope, guarded)
        if timers:
            self.guards.tick(datetime.now(UTC), guarded)
        if eof:
            self.guards.eof(guarded)
        for item in guarded:
            if not isinstance(item, Envelope):
                out.append(item)
            if wants(item):
                self.acceptance.feed(acceptance_key(item), item, out)
        if timers:
            self.acceptance.tick(datetime.now(UTC), out)
        if eof:
            self.acceptance.eof(out)


def run(settings: Settings, *, stop_when_idle_s: float = 5.0, group: str | None = None) -> dict:
    """Consume both input topics from the beginning until idle; produce every output. Returns counts."""
    from confluent_kafka import OFFSET_BEGINNING, Consumer, Producer, TopicPartition

    pipeline = Pipeline(settings)
    settle_heap()  # as the job does after start-up
    streams = {settings.topic_events: "events", settings.topic_context: "context"}
    topics = settings.outputs()
    consumer = Consumer(settings.kafka_client(**{
        "group.id": group or f"coach-reference-{time.time_ns()}",
        "enable.auto.commit": False, "auto.offset.reset": "earliest",
    }))
    producer = Producer(settings.kafka_client())
    metadata = consumer.list_topics(timeout=30).topics
    share = settings.kafka_partitions  # the job's COACH_KAFKA_PARTITIONS, read the same way
    parts = {
        topic: [p for p in metadata[topic].partitions if share is None or p in share] for topic in streams
    }
    consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for topic in streams for p in parts[topic]])
    # As much per batch as one job worker takes into an activation under a backlog:
    # the batch size from each partition.
    per_batch = settings.kafka_batch_size * len(parts[settings.topic_events])
    consumed = produced = 0
    last_input = time.monotonic()
    try:
        while time.monotonic() - last_input < stop_when_idle_s:
            messages = consumer.consume(per_batch, 0.01)
            batch = []
            for message in messages:
                if message.error() is not None:
                    continue
                batch.append(
                    RawRecord(
                        value=message.value(),
                        key=message.key(),
                        stream=streams[message.topic()],
                        origin=Origin(
                            topic=message.topic(), partition=message.partition(), offset=message.offset()
                        ),
                    )
                )
            if batch:
                last_input = time.monotonic()
                consumed += len(batch)
                records = pipeline.process(batch)
            else:
                records = pipeline.idle()
            for record in records:
                kind, key, value = serialize(record)
                while True:
                    try:
                        producer.produce(topics[kind], value=value, key=key)
                        break
                    except BufferError:
                        producer.poll(0.01)
                produced += 1
            producer.poll(0)
        producer.flush(60)
    finally:
        consumer.close()
    return {"consumed": consumed, "produced": produced}


def main() -> None:
    """``python -m coachflow.reference``: run on the ``COACH_*`` topics until idle for 30 s."""
    import json
    import logging

    logging.basicConfig(level=logging.WARNING)
    print(json.dumps(run(Settings(), stop_when_idle_s=30.0)), flush=True)


if __name__ == "__main__":
    main()
