"""The job on a real Apache Kafka broker: 200 STAR dialogues and a bad-record corpus.

Every valid input gets exactly one decision on `coaching.decisions`, every bad
record exactly one dead letter on `coaching.dlq` with its source offset and
reason, and inputs = decisions + dead letters.
"""

from __future__ import annotations

import json
from collections import Counter
from datetime import UTC, datetime

import pytest

from coachflow import replay
from tests import badcorpus
from tests.helpers import STAR_DIALOGUES
from tests.integration.conftest import KafkaJob, stop

pytestmark = pytest.mark.kafka


def traffic(dialogues: int) -> tuple[list[dict], list[badcorpus.Bad], list]:
    items = replay.records(STAR_DIALOGUES, limit=dialogues, concurrency=16,
                           start=datetime(2026, 4, 1, 9, 0, tzinfo=UTC))
    valid = [record for _, record in items]
    bad = badcorpus.build(valid)
    plan = badcorpus.interleave(valid, bad)
    return valid, bad, plan


def to_messages(plan) -> list[tuple[str, bytes | None, bytes]]:
    messages = []
    for stream, record, bad in plan:
        if record is not None:
            _, key = replay.kafka_target(record)
            messages.append((stream, key.encode(), json.dumps(record).encode()))
        else:
            messages.append((stream, bad.key, bad.value))
    return messages


def check_accounting(valid, plan, positions, out) -> None:
    decisions, dead = out["decisions"], out["dlq"]
    assert len(decisions) + len(dead) == len(plan), (len(decisions), len(dead), len(plan))

    # Every bad record: exactly one dead letter, at its offset, with its reason.
    letters = Counter((d.source.topic, d.source.partition, d.source.offset) for d in dead)
    reasons = {(d.source.topic, d.source.partition, d.source.offset): d.reason for d in dead}
    bad_positions = [(pos, item[2]) for pos, item in zip(positions, plan, strict=True) if item[2] is not None]
    assert len(bad_positions) >= 50
    for pos, bad in bad_positions:
        assert letters[pos] == 1, (pos, bad.reason, letters[pos])
        assert reasons[pos] == bad.reason, (pos, bad.value[:100], reasons[pos])
    assert sum(letters.values()) == len(bad_positions)

    # Every valid record, each final turn included: exactly one decision.
    decided = Counter(d.input.event_id for d in decisions)
    for record in valid:
        assert decided[badcorpus.record_id(record)] == 1, record
    final_turns = {r["event_id"] for r in valid if r["type"] == "turn" and r["is_final"]}
    assert len(final_turns) > 2000
    sources = {d.input.event_id: d.input.source for d in decisions}
    assert all(sources[e].kind == "kafka" and sources[e].offset is not None for e in final_turns)

    # Suggestions go out exactly for the decisions that show one.
    shown = {d.suggestion_id for d in decisions if d.outcome == "shown"}
    assert {s.suggestion_id for s in out["suggestions"]} == shown and len(shown) > 1000


def test_replay_of_200_dialogues_and_bad_records_through_the_job(kafka_job: KafkaJob, tmp_path):
    valid, _bad, plan = traffic(200)
    positions = kafka_job.produce(to_messages(plan))
    # Read to the end of every partition, then stop.
    job = kafka_job.start(tmp_path / "job.log", COACH_KAFKA_TAIL="false", COACH_CONTEXT_WAIT_MS="500")
    code = job.wait(300)
    log = (tmp_path / "job.log").read_text()
    assert code == 0, log[-3000:]
    out = kafka_job.consume(until=len(plan))
    check_accounting(valid, plan, positions, out)
    # Summaries: one per conversation, keyed so a conversation stays in order.
    started = {r["conversation_id"] for r in valid if r["type"] == "conversation_start"}
    assert {s.conversation_id for s in out["summaries"]} == started


def test_the_job_serves_live_traffic_with_two_workers(kafka_job: KafkaJob, tmp_path):
    valid, _bad, plan = traffic(120)
    job = kafka_job.start(tmp_path / "job.log", "-w", "2", COACH_CONTEXT_WAIT_MS="300")
    try:
        positions = kafka_job.produce(to_messages(plan))
        out = kafka_job.consume(until=len(plan))
        assert job.poll() is None, "the job must keep running through bad input"
        log = (tmp_path / "job.log").read_text()
        assert "Traceback" not in log and "Error" not in log, log[-3000:]
    finally:
        stop(job)
    valid_final = sum(1 for r in valid if r["type"] == "turn" and r["is_final"])
    assert valid_final > 1000
    # Same guarantees as the batch run; a bigger `valid` would only lengthen it.
    letters = {(d.source.topic, d.source.partition, d.source.offset) for d in out["dlq"]}
    assert len(out["decisions"]) + len(out["dlq"]) == len(plan)
    assert all(positions[i] in letters for i, item in enumerate(plan) if item[2] is not None)
    decided = Counter(d.input.event_id for d in out["decisions"])
    assert all(decided[badcorpus.record_id(r)] == 1 for r in valid)
