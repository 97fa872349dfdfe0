"""Data-quality suites: the hot-path gate agrees with Great Expectations."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from coachflow import replay
from coachflow.config import Settings
from operators.envelope import Envelope, Origin
from operators.quality import (
    CONTEXT_SUITE,
    EVENTS_SUITE,
    Gate,
    QualityMonitor,
    gx_validate,
    load_suites,
    quality_row,
)
from schemas import INPUT_ADAPTER
from tests.helpers import STAR_DIALOGUES, context, event, run_job

SUITES = load_suites()
GATE = Gate(SUITES)
NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)


def row(record: dict) -> dict:
    env = Envelope(record=INPUT_ADAPTER.validate_python(record), origin=Origin(file="t", line=1),
                   received_ns=int(NOW.timestamp() * 1e9))
    return quality_row(env)


def iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def test_the_suites_are_versioned_gx_suites_with_severities():
    assert set(SUITES) == {EVENTS_SUITE, CONTEXT_SUITE}
    for suite in SUITES.values():
        assert suite.version == "1.0.0"
        assert {e.severity for e in suite.expectations} == {"critical", "warning"}
        assert len({e.id for e in suite.expectations}) == len(suite.expectations)


def corpus() -> tuple[list[dict], list[dict]]:
    """Rows from real traffic plus rows that break each expectation."""
    items = replay.records(STAR_DIALOGUES, split="dev", limit=15, start=NOW - timedelta(hours=2))
    events, contexts = [], []
    for _, r in items:
        (contexts if r["type"] == "customer_context" else events).append(row(r))
    base = events[3]
    events += [
        {**base, "event_time_skew_s": 900.0},  # from the future
        {**base, "event_time_skew_s": -200_000.0},  # days old (warning)
        {**base, "type": "turn", "speaker": "agent", "text_length": 0},  # empty (warning)
        {**base, "type": "turn", "speaker": "bot", "text_length": 5},  # unknown speaker
        {**base, "type": "turn", "speaker": None, "text_length": 5},  # turn without speaker
        {**base, "type": "turn", "speaker": "customer", "text_length": 5000},  # too long
        {**base, "type": "kb_result", "kb_total_items": 9999},  # implausible (warning)
        {**base, "channel": "fax"},
        {**base, "event_id": None},
        {**base, "sequence": -1},
    ]
    c = contexts[0]
    contexts += [
        {**c, "open_cases": 5000}, {**c, "open_cases": 50}, {**c, "jurisdiction": "california"},
        {**c, "tier": "diamond"}, {**c, "language": "tlh"}, {**c, "updated_at_skew_s": 3600.0},
        {**c, "customer_id": None},
    ]
    return events, contexts


def test_the_gate_and_gx_agree_row_by_row(gx_ready):
    events, contexts = corpus()
    for suite, rows in [(EVENTS_SUITE, events), (CONTEXT_SUITE, contexts)]:
        summary = gx_validate(suite, rows)
        by_gx = {r["id"]: set(r["unexpected_index_list"]) for r in summary["results"]}
        by_gate: dict[str, set[int]] = {e.id: set() for e in SUITES[suite].expectations if not e.batch_only}
        for i, r in enumerate(rows):
            verdict = GATE.judge(suite, r)
            for failed in verdict.critical + verdict.warnings:
                by_gate[failed].add(i)
        for expectation_id, indices in by_gate.items():
            assert indices == by_gx[expectation_id], (suite, expectation_id, indices, by_gx[expectation_id])
        flagged = set().union(*by_gate.values())
        crafted = set(range(len(rows) - (10 if suite == EVENTS_SUITE else 7), len(rows)))
        assert crafted <= flagged  # every crafted row breaks something, and both see it


def test_gx_checks_sequences_across_rows(gx_ready):
    rows = [row(event(seq=s, t=s)) for s in (0, 1, 2)] + [row(event(seq=1, t=3, event_id="again"))]
    summary = gx_validate(EVENTS_SUITE, rows)
    step = next(r for r in summary["results"] if r["id"] == "events.sequence.increasing")
    assert step["success"] is False and step["unexpected_index_list"] == [3]


def test_critical_failures_are_dead_lettered_naming_the_expectation_and_warnings_noted(tmp_path):
    future = datetime.now(UTC) + timedelta(hours=1)
    recent = datetime.now(UTC) - timedelta(minutes=5)
    records = [
        context(t=0, updated_at=iso(recent)),
        event("conversation_start", seq=0, event_time=iso(recent)),
        event(seq=1, text="", event_time=iso(recent)),  # empty turn: a warning
        event(seq=2, event_time=iso(future)),  # from the future: critical
        context(customer="u-9", open_cases=2000, updated_at=iso(recent)),  # critical
    ]
    source = tmp_path / "in.jsonl"
    source.write_text("".join(json.dumps(r) + "\n" for r in records))
    out = tmp_path / "out"
    run_job(Settings(input=source, output_dir=out, print_suggestions=False,
                               quality_monitor=False, lineage="none", context_wait_ms=10))
    dead = [json.loads(line) for line in (out / "dlq.jsonl").read_text().splitlines()]
    assert sorted((d["reason"], d["detail"].split(" (")[0]) for d in dead) == [
        ("quality_check_failed", "failed context.open_cases.range"),
        ("quality_check_failed", "failed events.event_time.not_future"),
    ]
    decisions = [json.loads(line) for line in (out / "decisions.jsonl").read_text().splitlines()]
    empty = next(d for d in decisions if d["input"]["event_id"] == "c-1-1")
    assert empty["quality"] == {"suite": "conversation_events@1.0.0", "warnings": ["events.text_length.min"]}
    assert len(decisions) + len(dead) == len(records)


def test_the_monitor_samples_whole_conversations_within_its_bound():
    monitor = QualityMonitor(max_rows=500)
    rows = [
        ("conversation_events", {"conversation_id": f"c{i % 400}", "sequence": i // 400}) for i in range(4000)
    ]
    monitor.add(rows)
    batches, seen = monitor.take()
    assert seen == {"conversation_events": 4000}
    assert len(batches["conversation_events"]) == 500  # the bound, before any rate is known
    # The next interval at the same rate keeps ~400 rows: every row of ~1/10 of the conversations.
    monitor.add(rows)
    batches, _ = monitor.take()
    kept = batches["conversation_events"]
    assert 250 <= len(kept) < 500
    per_conversation = {}
    for row in kept:
        per_conversation.setdefault(row["conversation_id"], []).append(row["sequence"])
    assert all(sequences == list(range(10)) for sequences in per_conversation.values())
