"""The knowledge job on the real broker: articles from a compacted topic, every input accounted for,
cards keyed by conversation, and a new knowledge-base version taken while it runs."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest
from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.admin import AdminClient

from coachflow.knowledge import publish_articles
from coachflow.knowledge_config import SAMPLE_ARTICLES, SAMPLE_CONVERSATIONS, KnowledgeSettings
from coachflow.replay import kafka_target
from coachflow.topics import wait_visible
from models.knowledge import articles as kb
from schemas import DeadLetter, KnowledgeCard, KnowledgeDecision
from tests.helpers import ROOT
from tests.integration.conftest import KafkaJob, stop

pytestmark = pytest.mark.kafka
MODELS = {"topic_cards": KnowledgeCard, "topic_decisions": KnowledgeDecision, "topic_dlq": DeadLetter}


def knowledge_topics(job: KafkaJob) -> dict[str, str]:
    defaults = KnowledgeSettings()
    names = {name: job.prefix + getattr(defaults, name) for name in (*MODELS, "topic_feedback")}
    names["articles_topic"] = job.prefix + "knowledge.articles"
    return names


def start(job: KafkaJob, log, topics: dict[str, str], **env: str) -> subprocess.Popen:
    variables = job.env(
        **{f"COACH_KNOWLEDGE_{name.upper()}": value for name, value in topics.items()},
        COACH_KNOWLEDGE_NICE="0",
        COACH_KNOWLEDGE_METRICS_PORT="0",
        COACH_KNOWLEDGE_RELOAD_S="1",
        COACH_CONTEXT_WAIT_MS="300",
        COACH_LINEAGE="none",
        **env,
    )
    return subprocess.Popen(
        [sys.executable, "-m", "bytewax.run", "flows.knowledge:flow"],
        cwd=ROOT,
        env=variables,
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def read(job: KafkaJob, topics: dict[str, str], until: int, timeout: float = 120.0) -> dict[str, list]:
    """Every record of the knowledge job's output topics, until decisions + dead letters reach ``until``."""
    consumer = Consumer({"bootstrap.servers": job.brokers, "group.id": f"{job.prefix}k-reader",
                         "enable.auto.commit": False})
    kinds = {topics[name]: name for name in MODELS}
    wait_visible(AdminClient({"bootstrap.servers": job.brokers}), list(kinds), 60)  # the job creates them
    parts = []
    for name in kinds:
        meta = consumer.list_topics(name, timeout=10).topics[name]
        parts += [TopicPartition(name, p, 0) for p in meta.partitions]
    consumer.assign(parts)
    out: dict[str, list] = {name: [] for name in MODELS}
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline and len(out["topic_decisions"]) + len(out["topic_dlq"]) < until:
            for msg in consumer.consume(500, 0.5):
                assert not msg.error(), msg.error()
                name = kinds[msg.topic()]
                record = MODELS[name].model_validate_json(msg.value())
                out[name].append((msg.key(), record))
    finally:
        consumer.close()
    return out


def messages(lines: list[str]) -> list[tuple[str, bytes | None, bytes]]:
    out = []
    for line in lines:
        try:
            record = json.loads(line)
            stream, key = kafka_target(record)
            out.append((stream, key.encode(), line.encode()))
        except (ValueError, KeyError):  # the sample's bad records: keyed, refused by the job
            out.append(("events", b"bad", line.encode()))
    return out


def test_the_knowledge_job_on_kafka_takes_a_new_kb_version_while_it_runs(kafka_job: KafkaJob, tmp_path):
    topics = knowledge_topics(kafka_job)
    articles = kb.load(SAMPLE_ARTICLES)
    publish_articles(articles, kafka_job.brokers, topics["articles_topic"])
    lines = [line for line in SAMPLE_CONVERSATIONS.read_text().splitlines() if line.strip()]
    first, second = lines[: len(lines) // 2], lines[len(lines) // 2:]
    kafka_job.produce(messages(first))
    # Produced before the job started: a freshness budget of 5 s would shed them all as stale.
    job = start(kafka_job, tmp_path / "knowledge.log", topics, COACH_KNOWLEDGE_SHED_MAX_AGE_S="600")
    try:
        out = read(kafka_job, topics, len(first))
        assert len(out["topic_decisions"]) + len(out["topic_dlq"]) == len(first), (
            tmp_path / "knowledge.log"
        ).read_text()[-3000:]
        before = kb.kb_version(articles)
        assert {d.kb_version for _, d in out["topic_decisions"] if d.outcome in ("shown", "suppressed")} == {
            before
        }
        # A new version of one article, on the compacted topic: the job re-indexes within its reload interval.
        changed = articles[0].model_copy(update={"version": "2", "body": articles[0].body + "\nUpdated.\n",
                                                 "sections": []})
        publish_articles([changed], kafka_job.brokers, topics["articles_topic"])
        after = kb.kb_version([changed, *articles[1:]])
        time.sleep(4)
        kafka_job.produce(messages(second))
        out = read(kafka_job, topics, len(lines))
    finally:
        code = stop(job)
    log = (tmp_path / "knowledge.log").read_text()
    assert code in (0, 1, -2, 130), log[-3000:]
    decisions = [d for _, d in out["topic_decisions"]]
    assert len(decisions) + len(out["topic_dlq"]) == len(lines), log[-3000:]
    assert len({d.input.event_id for d in decisions}) == len(decisions)  # one decision per input
    assert sorted(d.reason for _, d in out["topic_dlq"]) == ["malformed_json", "schema_violation"]
    later = {
        json.loads(line).get("event_id")
        for line in second
        if line.startswith('{"schema_version":"1.0","conv')
    }
    retrieved_later = {
        d.kb_version for d in decisions if d.input.event_id in later and d.outcome in ("shown", "suppressed")
    }
    assert retrieved_later == {after}, log[-3000:]
    assert f"knowledge base {after} in force" in log
    cards = out["topic_cards"]
    assert cards and all(key == card.conversation_id.encode() for key, card in cards)
    shown = {d.card_id for d in decisions if d.outcome == "shown"}
    assert {card.card_id for _, card in cards} == shown
