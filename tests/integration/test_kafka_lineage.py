"""Lineage in Kafka mode: Kafka datasets, RUNNING with quality results, ABORT on SIGTERM."""

from __future__ import annotations

import json
import os
import signal
import time
from datetime import UTC, datetime, timedelta

import pytest
from confluent_kafka import Consumer, TopicPartition

from coachflow import replay
from lineage.validate import SpecValidator
from tests import badcorpus
from tests.helpers import STAR_DIALOGUES
from tests.integration.conftest import KafkaJob
from tests.integration.test_kafka_flow import to_messages

pytestmark = pytest.mark.kafka
SPEC = SpecValidator()


def read_topic(brokers: str, topic: str) -> list[dict]:
    """Every event on the topic now (up to each partition's end), in time order."""
    consumer = Consumer(
        {"bootstrap.servers": brokers, "group.id": f"{topic}-reader", "auto.offset.reset": "earliest"}
    )
    meta = consumer.list_topics(topic, timeout=10).topics[topic]
    parts = [TopicPartition(topic, p, 0) for p in meta.partitions]
    ends = {p.partition: consumer.get_watermark_offsets(p, timeout=10)[1] for p in parts}
    consumer.assign(parts)
    events, done = [], {p for p, end in ends.items() if end == 0}
    deadline = time.monotonic() + 30
    while len(done) < len(ends) and time.monotonic() < deadline:
        for m in consumer.consume(100, 1.0):
            if m.error():
                continue
            events.append(json.loads(m.value()))
            if m.offset() + 1 >= ends[m.partition()]:
                done.add(m.partition())
    consumer.close()
    return sorted(events, key=lambda e: e["eventTime"])


def test_lineage_to_kafka_with_quality_results_and_an_abort(kafka_job: KafkaJob, tmp_path):
    topic = f"{kafka_job.prefix}openlineage.events"
    items = [r for _, r in replay.records(STAR_DIALOGUES, limit=40, concurrency=8,
                                          start=datetime.now(UTC) - timedelta(hours=1))]
    job = kafka_job.start(
        tmp_path / "job.log",
        COACH_LINEAGE="kafka",
        COACH_LINEAGE_TOPIC=topic,
        COACH_LINEAGE_INTERVAL_S="1",
        COACH_QUALITY_INTERVAL_S="1",
        COACH_QUALITY_BATCH_ROWS="200",
    )
    try:
        kafka_job.produce(to_messages(badcorpus.interleave(items, [])))
        kafka_job.consume(until=len(items), settle=0.5)
        # GX validates a micro-batch beside the stream (in its own process); a
        # RUNNING event then carries the results.
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and not any(
            "dataQualityAssertions" in d["inputFacets"]
            for e in read_topic(kafka_job.brokers, topic) for d in e["inputs"]
        ):
            time.sleep(2)
    finally:
        os.killpg(job.pid, signal.SIGTERM)
        job.wait(30)
    events = read_topic(kafka_job.brokers, topic)
    kinds = [e["eventType"] for e in events]
    assert kinds[0] == "START" and kinds[-1] == "ABORT" and "RUNNING" in kinds, kinds
    assert len({e["run"]["runId"] for e in events}) == 1
    for e in events:
        assert SPEC.problems(e) == [], SPEC.problems(e)
    last = events[-1]
    names = {(d["namespace"], d["name"]) for d in last["inputs"]}
    assert names == {(f"kafka://{kafka_job.brokers}", kafka_job.settings.topic_events),
                     (f"kafka://{kafka_job.brokers}", kafka_job.settings.topic_context),
                     (f"kafka://{kafka_job.brokers}", kafka_job.settings.topic_feedback)}
    outputs = {d["name"] for d in last["outputs"]}
    assert kafka_job.settings.topic_suggestions in outputs and kafka_job.settings.topic_decisions in outputs
    with_quality = [
        e for e in events if any("dataQualityAssertions" in d["inputFacets"] for d in e["inputs"])
    ]
    assert with_quality, "a RUNNING or ABORT event carries the GX results"
    assertions = with_quality[-1]["inputs"][0]["inputFacets"]["dataQualityAssertions"]["assertions"]
    assert any(a["assertion"] == "events.sequence.increasing" for a in assertions)
