"""``coach lineage explain SUGGESTION_ID``: why an agent saw a suggestion.

Finds the suggestion's decision in the decisions output (the embedded run's
``decisions.jsonl`` or the ``coaching.decisions`` topic) and reconstructs its
chain: the input turn and its source offset, the history the model saw, the
customer context version, the data-quality result, the model, the policy and
every rule's verdict, and the OpenLineage run (with its START event when the
lineage file is at hand).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from pathlib import Path


def _file_records(path: Path) -> Iterator[dict]:
    with open(path, encoding="utf-8") as lines:
        for line in lines:
            if line.strip():
                yield json.loads(line)


def _topic_records(brokers: str, topic: str, timeout: float = 10.0) -> Iterator[dict]:
    from confluent_kafka import Consumer, TopicPartition

    from coachflow.config import Settings

    consumer = Consumer(Settings(brokers=brokers).kafka_client(**{
        "group.id": "coachflow-explain", "enable.auto.commit": False, "auto.offset.reset": "earliest"}))
    try:
        meta = consumer.list_topics(topic, timeout=timeout).topics[topic]
        parts = [TopicPartition(topic, p, 0) for p in meta.partitions]
        ends = {p.partition: consumer.get_watermark_offsets(p, timeout=timeout)[1] for p in parts}
        consumer.assign(parts)
        done = {p for p, end in ends.items() if end == 0}
        while len(done) < len(ends):
            for msg in consumer.consume(500, 1.0):
                if msg.error():
                    continue
                yield json.loads(msg.value())
                if msg.offset() + 1 >= ends[msg.partition()]:
                    done.add(msg.partition())
    finally:
        consumer.close()


def explain(
    suggestion_id: str, decisions: Iterable[dict], lineage_events: Iterable[dict] = ()
) -> dict | None:
    """The provenance of one suggestion, or None if no decision shows it."""
    decision = next((d for d in decisions if d.get("suggestion_id") == suggestion_id), None)
    if decision is None:
        return None
    start = next(
        (
            e
            for e in lineage_events
            if e.get("eventType") == "START" and e["run"]["runId"] == decision.get("run_id")
        ),
        None,
    )
    chain = {
        "suggestion_id": suggestion_id,
        "suggestion": decision["suggestion"],
        "decision_id": decision["decision_id"],
        "decided_at": decision["decided_at"],
        "conversation_id": decision["conversation_id"],
        "input": decision["input"],
        "context": {"status": decision["context_status"], "version": decision["context_version"]},
        "quality": decision.get("quality"),
        "masked": decision.get("masked", []),
        "model": {"version": decision["model_version"], "candidates": decision["candidates"]},
        "policy": {"name": decision["policy_name"], "version": decision["policy_version"],
                   "hash": decision["policy_hash"]},
        "rules": decision["rules"],
        "latency_ms": decision["latency_ms"],
        "run": {"run_id": decision.get("run_id")},
    }
    if start is not None:
        chain["run"].update({
            "job": f"{start['job']['namespace']}/{start['job']['name']}",
            "started": start["eventTime"],
            "inputs": [f"{d['namespace']}/{d['name']}" for d in start["inputs"]],
            "facets": start["run"]["facets"].get("coachflow"),
        })
    return chain


def main_explain(args) -> int:
    decisions = _topic_records(args.brokers, args.topic) if args.brokers else _file_records(args.decisions)
    lineage = _file_records(args.lineage) if args.lineage and Path(args.lineage).is_file() else ()
    chain = explain(args.suggestion_id, decisions, list(lineage))
    if chain is None:
        print(f"no decision shows suggestion {args.suggestion_id}")
        return 1
    print(json.dumps(chain, indent=2))
    return 0
