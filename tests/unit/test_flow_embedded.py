"""The whole dataflow in embedded mode: JSONL in, JSONL out, nothing lost."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import pytest

from coachflow import replay
from coachflow.config import SAMPLE_INPUT, Settings
from schemas import Alert, ConversationSummary, DeadLetter, Decision, Suggestion
from tests import badcorpus
from tests.helpers import ROOT, STAR_DIALOGUES, run_job

MODELS = {
    "suggestions": Suggestion,
    "alerts": Alert,
    "decisions": Decision,
    "dlq": DeadLetter,
    "summaries": ConversationSummary,
}


def read_outputs(directory: Path) -> dict[str, list]:
    """Every output file, each line validated against its contract."""
    out = {}
    for kind, model in MODELS.items():
        path = directory / f"{kind}.jsonl"
        lines = path.read_text().splitlines() if path.exists() else []
        out[kind] = [model.model_validate_json(line) for line in lines]
    return out


def without_context(valid: list[dict]) -> list[dict]:
    """A copy of the first conversation for a customer whose context never arrives."""
    first = valid[1]["conversation_id"]
    copy = []
    for r in valid:
        if r.get("conversation_id") == first:
            copy.append({**r, "conversation_id": "no-context-1", "customer_id": "cust-unknown",
                         "event_id": r["event_id"].replace(first, "no-context-1")})
    return copy


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """Replay 40 dev dialogues with the bad corpus woven in, through the flow."""
    tmp = tmp_path_factory.mktemp("embedded")
    items = replay.records(STAR_DIALOGUES, split="dev", limit=40, concurrency=6,
                           start=datetime(2026, 2, 1, 8, 0, tzinfo=UTC))
    valid = [record for _, record in items]
    valid += without_context(valid)
    bad = [b for b in badcorpus.build(valid) if not b.kafka_only]
    lines: list[bytes] = []
    expected: dict[int, tuple[str, object]] = {}  # line -> ("valid", record) | ("bad", Bad)
    # A blank line holds no record in a JSONL file (it is skipped), so empty
    # payloads are a Kafka-only case here.
    bad = [b for b in bad if b.value.strip()]
    for _stream, record, b in badcorpus.interleave(valid, bad):
        payload = json.dumps(record).encode() if record is not None else b.value
        lines.append(payload.replace(b"\n", b" "))
        expected[len(lines)] = ("valid", record) if record is not None else ("bad", b)
    source = tmp / "input.jsonl"
    source.write_bytes(b"\n".join(lines) + b"\n")
    settings = Settings(input=source, output_dir=tmp / "out", context_wait_ms=50, print_suggestions=False)
    run_job(settings)
    first = read_outputs(tmp / "out")
    # Run again: the same input gives the same decisions, ids included.
    run_job(settings.model_copy(update={"output_dir": tmp / "again"}))
    return {"expected": expected, "out": first, "again": read_outputs(tmp / "again"), "valid": valid}


def test_every_input_is_a_decision_or_a_dead_letter(run):
    out, expected = run["out"], run["expected"]
    assert len(out["decisions"]) + len(out["dlq"]) == len(expected)
    by_line = Counter(d.source.line for d in out["dlq"])
    for line, (kind, item) in expected.items():
        if kind == "bad":
            assert by_line[line] == 1, f"line {line} ({item.reason}) has {by_line[line]} dead letters"
    reasons = {d.source.line: d.reason for d in out["dlq"]}
    wrong = {line: (item.reason, reasons.get(line)) for line, (kind, item) in expected.items()
             if kind == "bad" and reasons.get(line) != item.reason}
    assert not wrong, wrong


def test_every_valid_record_has_exactly_one_decision(run):
    decided = Counter(d.input.event_id for d in run["out"]["decisions"])
    for record in run["valid"]:
        assert decided[badcorpus.record_id(record)] == 1, record
    finals = [r for r in run["valid"] if r["type"] == "turn" and r["is_final"]]
    assert len(finals) > 300


def test_suggestions_match_shown_decisions(run):
    out = run["out"]
    shown = {d.suggestion_id: d for d in out["decisions"] if d.outcome == "shown"}
    assert len(shown) == len(out["suggestions"]) > 100
    for s in out["suggestions"]:
        decision = shown[s.suggestion_id]
        assert decision.decision_id == s.decision_id
        assert decision.suggestion.text == s.text and decision.input.event_id == s.event_id
        assert decision.model_version == s.model_version
        assert s.text and "{" not in s.text


def test_decisions_explain_themselves(run):
    decisions = run["out"]["decisions"]
    outcomes = Counter(d.outcome for d in decisions)
    assert set(outcomes) <= {"shown", "suppressed", "recorded"} and outcomes["recorded"] > 0
    for d in decisions:
        assert d.reasons or d.outcome == "shown"
        assert d.policy_name == "coaching-guardrails" and d.policy_hash.startswith("sha256:")
        if d.outcome == "shown":
            passed = {r.rule_id for r in d.rules if r.outcome == "pass"}
            assert {"injection.templates_only", "quality.confidence_floor", "rate.min_interval"} <= passed
        if d.outcome == "suppressed":
            assert d.reasons[0] in {r.rule_id for r in d.rules if r.outcome == "block"}
        assert d.latency_ms.total_ms >= d.latency_ms.join_wait_ms
    statuses = Counter(d.context_status for d in decisions)
    assert statuses["present"] and statuses["not_applicable"]
    unknown = [d for d in decisions if d.customer_id == "cust-unknown"]
    assert unknown and all(d.context_status == "missing" and d.context_version is None for d in unknown)


def test_a_summary_per_conversation(run):
    summaries = run["out"]["summaries"]
    started = {r["conversation_id"] for r in run["valid"] if r["type"] == "conversation_start"}
    assert {s.conversation_id for s in summaries} == started
    reasons = Counter(s.end_reason for s in summaries)
    assert reasons["completed"] > 0


def test_a_rerun_reproduces_the_decision_ids(run):
    first = {d.decision_id for d in run["out"]["decisions"]}
    again = {d.decision_id for d in run["again"]["decisions"]}
    assert first == again and len(first) == len(run["out"]["decisions"])
    assert {d.dead_letter_id for d in run["out"]["dlq"]} == {d.dead_letter_id for d in run["again"]["dlq"]}


def test_the_readme_run_command_shows_suggestions_from_the_bundled_sample(tmp_path):
    env = {**os.environ, "COACH_OUTPUT_DIR": str(tmp_path)}
    env.pop("COACH_BROKERS", None)
    env.pop("COACH_INPUT", None)
    done = subprocess.run(
        [sys.executable, "-m", "bytewax.run", "flows.coaching:flow"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    shown = [line for line in done.stdout.splitlines() if "\u2192" in line]
    assert len(shown) > 50 and "star-" in shown[0]
    out = read_outputs(tmp_path)
    sample_lines = [line for line in SAMPLE_INPUT.read_text().splitlines() if line.strip()]
    assert len(out["decisions"]) + len(out["dlq"]) == len(sample_lines)
    assert len(out["suggestions"]) == len(shown)
    assert {d.reason for d in out["dlq"]} >= {"malformed_json", "unknown_field", "conversation_ended"}


def test_importing_the_flow_module_or_building_a_flow_starts_nothing(tmp_path) -> None:
    """A Dataflow is a description: the job's resources open in ``JobResources``, not while it is built."""
    probe = f"""
import json, multiprocessing, os, threading

def world():
    return [threading.active_count(), len(multiprocessing.active_children()),
            sorted(os.listdir("/proc/self/fd")), sorted(os.listdir({str(tmp_path)!r}))]

first = world()
import flows.coaching
from coachflow.config import Settings
from coachflow.runtime import JobResources
imported = world()
settings = Settings(output_dir={str(tmp_path / "out")!r}, lineage="none", metrics_port=0,
                    quality_monitor=False, print_suggestions=False)
job = JobResources(settings).open()
opened = world()
flow = flows.coaching.get_flow(settings, job)
print(json.dumps([first, imported, opened, world(), flow.flow_id]))
"""
    env = {k: v for k, v in os.environ.items() if not k.startswith("COACH_")}
    done = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=120, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    first, imported, opened, built, flow_id = json.loads(done.stdout.splitlines()[-1])
    assert flow_id == "coaching"
    assert imported == first  # importing the module: no thread, process, open file or output
    assert built == opened  # building the flow: nothing beyond what the opened resources hold
