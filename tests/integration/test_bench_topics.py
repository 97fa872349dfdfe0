"""``coach bench`` deletes the topics it made for its runs, on the real broker."""

from __future__ import annotations

import time
import uuid

from confluent_kafka.admin import AdminClient

from coachflow import bench


def topics(brokers: str) -> set[str]:
    return set(AdminClient({"bootstrap.servers": brokers}).list_topics(timeout=30).topics)


def test_the_topics_a_run_made_are_deleted_and_no_others(brokers):
    bystander = bench.bench_settings(brokers, f"keep{uuid.uuid4().hex[:8]}.", 2)
    bench.create_topics(bystander)
    bench.CREATED.clear()  # made by someone else: not this run's
    run = bench.bench_settings(brokers, f"tput{uuid.uuid4().hex[:8]}.", 2)
    bench.create_topics(run)
    made = set(bench.CREATED)
    assert made and all(name.startswith(run.topic_events.split(".")[0] + ".") for name in made)
    assert made <= topics(brokers)

    assert set(bench.delete_created_topics(brokers)) == made
    deadline = time.monotonic() + 30
    while made & topics(brokers) and time.monotonic() < deadline:  # deletion is asynchronous on the broker
        time.sleep(0.5)
    left = topics(brokers)
    assert not made & left
    assert bystander.topic_events in left and bystander.topic_decisions in left
    assert bench.CREATED == [] and bench.delete_created_topics(brokers) == []
