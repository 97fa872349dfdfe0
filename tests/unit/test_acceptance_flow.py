"""Acceptance and experiments through the whole embedded flow."""

from __future__ import annotations

import base64
import json
from collections import Counter
from pathlib import Path

import pytest

from coachflow.config import SAMPLE_INPUT, Settings
from operators.experiment import assign
from schemas import Acceptance, DeadLetter, Decision, Suggestion
from tests.helpers import ROOT, run_job

EVALUATION = ROOT / "policies" / "evaluation.yaml"


def settings_for(tmp: Path, source: Path, **more) -> Settings:
    return Settings(input=source, output_dir=tmp, context_wait_ms=50, print_suggestions=False,
                    quality_monitor=False, lineage="none", **more)


def read(directory: Path, kind: str, model) -> list:
    path = directory / f"{kind}.jsonl"
    return (
        [model.model_validate_json(line) for line in path.read_text().splitlines()] if path.exists() else []
    )


def fb(fid: str, suggestion: Suggestion | None, event: str, **fields) -> dict:
    return {
        "schema_version": "1.0", "type": "feedback", "feedback_id": fid,
        "suggestion_id": suggestion.suggestion_id if suggestion else "no-such-suggestion",
        "conversation_id": suggestion.conversation_id if suggestion else "star-110",
        "agent_id": suggestion.agent_id if suggestion else "agent-1",
        "event": event, "at": "2026-01-05T10:00:00Z", **fields,
    }


@pytest.fixture(scope="module")
def clicks(tmp_path_factory):
    """The sample, then UI feedback: clicks, a shown report, a repeat, a stranger, a bad one."""
    tmp = tmp_path_factory.mktemp("clicks")
    run_job(settings_for(tmp / "first", SAMPLE_INPUT))
    suggestions = read(tmp / "first", "suggestions", Suggestion)
    s = suggestions[:5]
    early = fb("fb-early", suggestions[-1], "accepted")  # before its suggestion exists: it waits
    lines = [json.dumps(early)] + SAMPLE_INPUT.read_text().splitlines()
    feedback = [
        fb("fb-1", s[0], "shown"), fb("fb-2", s[0], "accepted"), fb("fb-3", s[1], "edited", edit_distance=7),
        fb("fb-4", s[2], "dismissed"), fb("fb-5", s[2], "accepted"), fb("fb-2", s[0], "accepted"),
        fb("fb-6", None, "accepted"),
    ]
    bad = {k: v for k, v in fb("fb-7", s[3], "accepted").items() if k != "event"}
    lines += [json.dumps(r) for r in [*feedback, bad]]
    source = tmp / "input.jsonl"
    source.write_text("\n".join(lines) + "\n")
    out = tmp / "out"
    run_job(settings_for(out, source))
    return {
        "lines": len(lines), "suggestions": suggestions, "s": s,
        "decisions": read(out, "decisions", Decision), "dlq": read(out, "dlq", DeadLetter),
        "acceptance": read(out, "acceptance", Acceptance),
    }


def test_click_feedback_becomes_acceptance_records(clicks) -> None:
    s = clicks["s"]
    click = {a.feedback_id: a for a in clicks["acceptance"] if a.mode == "click"}
    assert set(click) == {"fb-early", "fb-2", "fb-3", "fb-4"}
    assert (click["fb-2"].suggestion_id, click["fb-2"].outcome, click["fb-2"].accepted) == (
        s[0].suggestion_id, "accepted", True)
    assert (click["fb-3"].outcome, click["fb-3"].edit_distance, click["fb-3"].accepted) == ("edited", 7, True)
    assert (click["fb-4"].outcome, click["fb-4"].accepted) == ("dismissed", False)
    assert click["fb-early"].suggestion_id == clicks["suggestions"][-1].suggestion_id
    for a in click.values():
        assert a.model_version == s[0].model_version and a.policy_version == s[0].policy_version


def test_every_feedback_record_is_accounted_for(clicks) -> None:
    decisions, dlq = clicks["decisions"], clicks["dlq"]
    clicked = [a for a in clicks["acceptance"] if a.mode == "click"]
    # Every input line: one decision, one dead letter, or (a click verdict) one acceptance record.
    assert len(decisions) + len(dlq) + len(clicked) == clicks["lines"]
    recorded = {d.input.event_id: d.reasons for d in decisions if d.input.kind == "feedback"}
    assert recorded == {"fb-1": ["feedback_shown"], "fb-5": ["feedback_superseded"]}
    reasons = Counter(d.reason for d in dlq if d.payload_bytes and b"feedback" in _payload(d))
    assert reasons == {"duplicate_event": 1, "unknown_suggestion": 1, "missing_field": 1}


def _payload(dead: DeadLetter) -> bytes:
    return base64.b64decode(dead.payload_b64)


def test_inferred_acceptance_beside_clicks(clicks) -> None:
    inferred = [a for a in clicks["acceptance"] if a.mode == "inferred"]
    shown = {s.suggestion_id for s in clicks["suggestions"]}
    assert len(inferred) > 50 and {a.suggestion_id for a in inferred} <= shown
    assert len({a.acceptance_id for a in clicks["acceptance"]}) == len(clicks["acceptance"])
    assert {a.basis for a in inferred} == {"action", "similarity"}
    assert 0 < sum(a.accepted for a in inferred) < len(inferred)
    assert {a.channel for a in inferred} == {"voice", "chat"}


@pytest.fixture(scope="module")
def canary(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("canary")
    experiment = {"name": "eval-policy", "share": 0.5, "policy": str(EVALUATION)}
    run_job(settings_for(tmp, SAMPLE_INPUT, experiment=experiment))
    return {"decisions": read(tmp, "decisions", Decision), "acceptance": read(tmp, "acceptance", Acceptance),
            "suggestions": read(tmp, "suggestions", Suggestion)}


def test_decisions_record_the_arm_and_take_its_policy(canary) -> None:
    decisions = [d for d in canary["decisions"] if d.conversation_id is not None]
    arms = Counter()
    for d in decisions:
        assert d.experiment == "eval-policy"
        assert d.arm == assign("eval-policy", 0.5, d.conversation_id)
        expected = "coaching-evaluation" if d.arm == "candidate" else "coaching-guardrails"
        assert d.policy_name == expected
        arms[d.arm] += 1
    assert set(arms) == {"control", "candidate"}
    # The evaluation policy shows something at every prediction point; the default does not.
    points = [d for d in decisions if d.outcome != "recorded"]
    candidate = [d for d in points if d.arm == "candidate"]
    assert candidate and all(d.outcome == "shown" for d in candidate)
    assert any(d.outcome == "suppressed" for d in points if d.arm == "control")
    for a in canary["acceptance"]:
        assert a.arm == assign("eval-policy", 0.5, a.conversation_id) and a.experiment == "eval-policy"


def test_share_zero_is_a_rollback_and_one_a_promotion(tmp_path) -> None:
    for share, arm in ((0.0, "control"), (1.0, "candidate")):
        out = tmp_path / str(share)
        experiment = {"name": "eval-policy", "share": share, "policy": str(EVALUATION)}
        run_job(settings_for(out, SAMPLE_INPUT, experiment=experiment))
        decisions = [d for d in read(out, "decisions", Decision) if d.conversation_id is not None]
        assert {d.arm for d in decisions} == {arm}


def test_a_candidate_model_scores_its_arm(tmp_path) -> None:
    baseline = ROOT / "models" / "baseline" / "baseline.json"
    experiment = {"name": "baseline-canary", "share": 0.5, "model": str(baseline)}
    run_job(settings_for(tmp_path, SAMPLE_INPUT, experiment=experiment))
    scored = [d for d in read(tmp_path, "decisions", Decision) if d.model_version is not None]
    versions = {arm: {d.model_version for d in scored if d.arm == arm} for arm in ("control", "candidate")}
    assert versions == {"control": {"coach-1.0.0"}, "candidate": {"baseline-1.0.0"}}
    for a in read(tmp_path, "acceptance", Acceptance):
        assert a.model_version == ("baseline-1.0.0" if a.arm == "candidate" else "coach-1.0.0")
