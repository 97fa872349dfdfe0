"""Acceptance on a real broker: UI feedback on `coaching.feedback`, verdicts on `coaching.acceptance`."""

from __future__ import annotations

import json
from collections import Counter

import pytest

from tests.integration.conftest import KafkaJob, stop
from tests.integration.test_kafka_flow import to_messages, traffic

pytestmark = pytest.mark.kafka


def feedback(fid: str, suggestion, event: str, suggestion_id: str | None = None) -> tuple[str, bytes, bytes]:
    record = {
        "schema_version": "1.0", "type": "feedback", "feedback_id": fid,
        "suggestion_id": suggestion_id or suggestion.suggestion_id,
        "conversation_id": suggestion.conversation_id, "agent_id": suggestion.agent_id,
        "event": event, "at": "2026-04-01T10:00:00Z",
    }
    return "feedback", suggestion.conversation_id.encode(), json.dumps(record).encode()


def test_click_feedback_and_inferred_acceptance_on_kafka(kafka_job: KafkaJob, tmp_path):
    valid, _bad, plan = traffic(20)
    job = kafka_job.start(tmp_path / "job.log", COACH_CONTEXT_WAIT_MS="300", COACH_FEEDBACK_WAIT_S="1")
    try:
        kafka_job.produce(to_messages(plan))
        first = kafka_job.consume(until=len(plan))
        s = first["suggestions"][:3]
        assert len(s) == 3
        clicks = [feedback("k1", s[0], "accepted"), feedback("k2", s[1], "dismissed"),
                  feedback("k3", s[2], "shown"), feedback("k4", s[2], "accepted", suggestion_id="nope")]
        kafka_job.produce(clicks)
        out = kafka_job.consume(until=len(plan) + 2, settle=4.0)
        assert job.poll() is None
    finally:
        stop(job)
    # Every input: a decision, a dead letter or a click verdict.
    click = {a.feedback_id: a for a in out["acceptance"] if a.mode == "click"}
    assert len(out["decisions"]) + len(out["dlq"]) + len(click) == len(plan) + len(clicks)
    assert {k: (a.suggestion_id, a.outcome) for k, a in click.items()} == {
        "k1": (s[0].suggestion_id, "accepted"), "k2": (s[1].suggestion_id, "dismissed")}
    assert [d.reasons for d in out["decisions"] if d.input.kind == "feedback"] == [["feedback_shown"]]
    assert Counter(d.reason for d in out["dlq"] if d.source.topic == kafka_job.settings.topic_feedback) == {
        "unknown_suggestion": 1}
    inferred = [a for a in out["acceptance"] if a.mode == "inferred"]
    assert len(inferred) > 20 and {a.basis for a in inferred} >= {"action"}
