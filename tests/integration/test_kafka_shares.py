"""Independent jobs splitting the input partitions (COACH_KAFKA_PARTITIONS), on the real broker.

The topics are co-partitioned: events keyed by customer id like the context
(COACH_INPUT_KEY=customer). Two one-process jobs, each on its share, decide
every input exactly once between them, each only inputs of its own
partitions, and every customer's context still reaches its conversations.
"""

from __future__ import annotations

import json
import uuid
from collections import Counter

import pytest

from coachflow.replay import kafka_target
from tests import badcorpus
from tests.integration.conftest import KafkaJob
from tests.integration.test_kafka_flow import traffic

pytestmark = pytest.mark.kafka


def test_two_jobs_on_shares_of_co_partitioned_topics_decide_every_input_once(kafka_job: KafkaJob, tmp_path):
    valid, _bad, _plan = traffic(120)
    messages = [(*kafka_target(record, "customer"), json.dumps(record).encode()) for record in valid]
    messages = [(stream, key.encode(), value) for stream, key, value in messages]
    # A producer still keying by conversation id: refused loudly, not joined without its context.
    stray = next(r for r in valid if r["type"] == "turn" and r["conversation_id"] != r["customer_id"])
    stray = {**stray, "event_id": stray["event_id"] + "-stray"}
    messages.append(("events", stray["conversation_id"].encode(), json.dumps(stray).encode()))
    kafka_job.produce(messages)

    runs = {str(uuid.uuid4()): [0, 2], str(uuid.uuid4()): [1, 3]}
    jobs = [
        kafka_job.start(
            tmp_path / f"job{i}.log",
            COACH_KAFKA_TAIL="false",
            COACH_CONTEXT_WAIT_MS="1000",
            COACH_INPUT_KEY="customer",
            COACH_KAFKA_PARTITIONS=json.dumps(share),
            COACH_LINEAGE_RUN_ID=run,
            COACH_METRICS_PORT="0",
            COACH_OUTPUT_DIR=str(tmp_path / f"o{i}"),
        )
        for i, (run, share) in enumerate(runs.items())
    ]
    for i, job in enumerate(jobs):
        assert job.wait(300) == 0, (tmp_path / f"job{i}.log").read_text()[-3000:]
    out = kafka_job.consume(until=len(messages))

    decisions, dead = out["decisions"], out["dlq"]
    assert len(decisions) + len(dead) == len(messages)
    decided = Counter(d.input.event_id for d in decisions)
    assert all(decided[badcorpus.record_id(record)] == 1 for record in valid)
    assert sum(decided.values()) == len(valid)
    (letter,) = dead
    assert letter.reason == "key_mismatch" and stray["customer_id"] in letter.detail

    # Each job decided the inputs of its share only, and both had work.
    for run, share in runs.items():
        mine = [d for d in decisions if d.run_id == run]
        assert mine and {d.input.source.partition for d in mine} <= set(share)

    # The join crossed no share: a customer with a context record never decides without it.
    with_context = {r["customer_id"] for r in valid if r["type"] == "customer_context"}
    missing = [d for d in decisions if d.context_status == "missing" and d.customer_id in with_context]
    assert not missing, [(d.customer_id, d.input.event_id) for d in missing[:5]]
    assert Counter(d.context_status for d in decisions)["present"] > 1000
