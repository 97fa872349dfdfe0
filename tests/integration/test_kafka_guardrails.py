"""Guardrails on the real broker: no personal data out, and policy changes mid-run."""

from __future__ import annotations

import shutil
import time
from collections import Counter
from datetime import UTC, datetime

import pytest
from confluent_kafka import Producer

from coachflow import replay
from coachflow.topics import ensure_topics
from operators.policy import DEFAULT_POLICY
from tests import adversarial, badcorpus
from tests.helpers import STAR_DIALOGUES
from tests.integration.conftest import KafkaJob, stop
from tests.integration.test_kafka_flow import to_messages

pytestmark = pytest.mark.kafka


def read_all(kafka_job: KafkaJob, until: int) -> tuple[dict, list[str]]:
    out = kafka_job.consume(until=until)
    lines = [record.model_dump_json() for rows in out.values() for record in rows]
    return out, lines


def test_no_personal_data_reaches_any_topic_or_the_log(kafka_job: KafkaJob, tmp_path):
    items = replay.records(STAR_DIALOGUES, limit=60, concurrency=8,
                           start=datetime(2026, 6, 2, 9, 0, tzinfo=UTC))
    valid, _ = adversarial.seed([r for _, r in items])
    plan = badcorpus.interleave(valid, [])
    messages = to_messages(plan) + adversarial.bad_records(valid)
    kafka_job.produce(messages)
    job = kafka_job.start(tmp_path / "job.log", COACH_KAFKA_TAIL="false", COACH_CONTEXT_WAIT_MS="300",
                          COACH_PRINT_SUGGESTIONS="true")
    assert job.wait(300) == 0, (tmp_path / "job.log").read_text()[-3000:]
    out, lines = read_all(kafka_job, len(messages))
    log = (tmp_path / "job.log").read_text().splitlines()
    assert adversarial.leaks(lines + log) == []
    assert len(out["decisions"]) + len(out["dlq"]) == len(messages)
    assert any(d.masked for d in out["decisions"])


def test_a_policy_change_takes_effect_without_a_restart_or_lost_turns(kafka_job: KafkaJob, tmp_path):
    policy = tmp_path / "policy.yaml"
    shutil.copy(DEFAULT_POLICY, policy)
    policies_topic = f"{kafka_job.prefix}coaching.policies"
    ensure_topics(kafka_job.settings.model_copy(update={"topic_dlq": policies_topic}), only=(policies_topic,))
    items = [r for _, r in replay.records(STAR_DIALOGUES, limit=90, concurrency=10,
                                          start=datetime(2026, 6, 3, 9, 0, tzinfo=UTC))]
    thirds = [
        items[: len(items) // 3],
        items[len(items) // 3 : 2 * len(items) // 3],
        items[2 * len(items) // 3 :],
    ]
    job = kafka_job.start(tmp_path / "job.log", COACH_POLICY=str(policy), COACH_POLICY_RELOAD_S="0.5",
                          COACH_POLICY_TOPIC=policies_topic, COACH_CONTEXT_WAIT_MS="300")
    try:
        sent = 0
        versions = []
        for part, change in zip(thirds, ["1.0.1", "1.0.2", None], strict=True):
            kafka_job.produce(to_messages(badcorpus.interleave(part, [])))
            sent += len(part)
            kafka_job.consume(until=sent, settle=0.5)  # this part is decided
            versions.append({r["event_id"] for r in part if "event_id" in r})
            text = DEFAULT_POLICY.read_text().replace("version: 1.0.0", f"version: {change}")
            if change == "1.0.1":  # through the file
                policy.write_text(text.replace("min_confidence: 0.15", "min_confidence: 0.2"))
                time.sleep(2.0)
            elif change == "1.0.2":  # through the policies topic
                producer = Producer({"bootstrap.servers": kafka_job.brokers})
                producer.produce(policies_topic, key=b"coaching-guardrails",
                                 value=text.replace("min_confidence: 0.15", "min_confidence: 0.25").encode())
                producer.produce(policies_topic, key=b"coaching-guardrails", value=b"rules: [broken")
                assert producer.flush(10) == 0
                time.sleep(3.0)
        out = kafka_job.consume(until=sent)
        assert job.poll() is None, "the job kept running"
    finally:
        stop(job)
    decisions = out["decisions"]
    assert len(decisions) + len(out["dlq"]) == sent and not out["dlq"]
    by_event = {d.input.event_id: d for d in decisions}
    seen = [Counter(by_event[e].policy_version for e in ids if e in by_event) for ids in versions]
    assert set(seen[0]) == {"1.0.0"}
    assert set(seen[1]) == {"1.0.1"}
    assert set(seen[2]) == {"1.0.2"}  # the broken document after it was rejected
    log = (tmp_path / "job.log").read_text()
    assert "rejected: not valid YAML" in log and "keeping coaching-guardrails 1.0.2" in log
