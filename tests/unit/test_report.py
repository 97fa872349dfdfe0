"""``coach report``: rates from a small hand-built output directory, checked by hand."""

from __future__ import annotations

import argparse
import json
from datetime import timedelta
from pathlib import Path

import pytest

from coachflow.report import add_arguments, main_report
from schemas import Alert, Decision, Suggestion
from schemas.feedback import Acceptance, Feedback
from tests.helpers import T0, at

EXPERIMENT = "exp-1"
#: conversation -> (arm, model version)
CONVERSATIONS = {"c-1": ("control", "m-1"), "c-2": ("candidate", "m-2"), "c-3": ("control", "m-1")}
RULES = ["injection.templates_only", "rate.no_repeat", "quality.confidence_floor", "rate.min_interval"]


def decision(n: int, conversation: str, outcome: str, verdicts: list[str], *, action: str | None = None,
             reasons: list[str] = ()) -> Decision:
    arm, model = CONVERSATIONS[conversation]
    shown = outcome == "shown"
    return Decision(
        decision_id=f"d{n}",
        decided_at=at(n),
        conversation_id=conversation,
        customer_id="u-1",
        agent_id="a-1",
        input={
            "kind": "turn",
            "event_id": f"{conversation}-{n}",
            "source": {"kind": "file", "file": "t", "line": n},
            "is_final": True,
            "speaker": "customer" if outcome != "recorded" else "agent",
        },
        outcome=outcome,
        reasons=list(reasons),
        suggestion_id=f"s{n}" if shown else None,
        suggestion={"action": action, "text": action} if shown else None,
        candidates=[{"action": action or "hello", "confidence": 0.9}] if outcome != "recorded" else [],
        context_status="present",
        model_version=model if outcome != "recorded" else None,
        policy_name="coaching-guardrails",
        policy_version="p-1",
        policy_hash="sha256:0",
        rules=[{"rule_id": rule, "outcome": v} for rule, v in zip(RULES, verdicts, strict=False)],
        arm=arm,
        experiment=EXPERIMENT,
    )


def suggestion(d: Decision) -> Suggestion:
    return Suggestion(
        suggestion_id=d.suggestion_id,
        decision_id=d.decision_id,
        conversation_id=d.conversation_id,
        customer_id="u-1",
        agent_id="a-1",
        channel="chat",
        event_id=d.input.event_id,
        action=d.suggestion.action,
        text=d.suggestion.text,
        confidence=0.9,
        model_version=d.model_version,
        policy_version=d.policy_version,
        created_at=d.decided_at,
    )


def acceptance(d: Decision, mode: str, outcome: str, t: float) -> Acceptance:
    return Acceptance(
        acceptance_id=f"{d.suggestion_id}:{mode}",
        suggestion_id=d.suggestion_id,
        decision_id=d.decision_id,
        conversation_id=d.conversation_id,
        agent_id="a-1",
        channel="chat",
        mode=mode,
        outcome=outcome,
        accepted=outcome in ("accepted", "edited"),
        action=d.suggestion.action,
        arm=d.arm,
        experiment=EXPERIMENT,
        model_version=d.model_version,
        policy_version=d.policy_version,
        at=at(t),
    )


def alert(n: int, conversation: str, kind: str) -> Alert:
    return Alert(
        alert_id=f"al{n}",
        conversation_id=conversation,
        customer_id="u-1",
        agent_id="a-1",
        event_id=f"e{n}",
        kind=kind,
        severity="warning",
        audience=["supervisor"],
        message=kind,
        event_time=at(n),
        raised_at=at(n),
    )


def feedback(n: int, d: Decision, event: str, t: float) -> Feedback:
    return Feedback(feedback_id=f"f{n}", suggestion_id=d.suggestion_id, conversation_id=d.conversation_id,
                    agent_id="a-1", event=event, at=at(t))


def write(path: Path, records: list) -> None:
    path.write_text("".join(r.model_dump_json() + "\n" for r in records))


@pytest.fixture
def outdir(tmp_path: Path) -> Path:
    d1 = decision(1, "c-1", "shown", ["pass", "block", "pass", "pass"], action="ask_name")
    d2 = decision(2, "c-1", "suppressed", ["pass", "pass", "block"], reasons=["quality.confidence_floor"])
    d3 = decision(3, "c-1", "recorded", [])
    d4 = decision(4, "c-1", "shown", ["pass", "pass", "pass", "pass"], action="goodbye")
    d5 = decision(5, "c-3", "shown", ["pass", "pass", "pass", "pass"], action="ask_name")
    d6 = decision(6, "c-3", "suppressed", ["pass", "pass", "pass", "block"], reasons=["rate.min_interval"])
    d7 = decision(7, "c-2", "shown", ["rewrite", "pass", "pass", "pass"], action="ask_name")
    d8 = decision(8, "c-2", "suppressed", ["pass", "pass", "block"], reasons=["quality.confidence_floor"])
    # The job records each feedback input as a decision that names the suggestion (not a second showing).
    d9 = decision(9, "c-1", "recorded", []).model_copy(
        update={"suggestion_id": "s1", "reasons": ["feedback"]}
    )
    decisions = [d1, d2, d3, d4, d5, d6, d7, d8, d9, d1]  # d1 twice: outputs are at-least-once
    write(tmp_path / "decisions.jsonl", decisions)
    write(tmp_path / "suggestions.jsonl", [suggestion(d) for d in (d1, d4, d5, d7)])
    write(tmp_path / "alerts.jsonl", [alert(1, "c-1", "long_silence"), alert(2, "c-1", "long_silence"),
                                      alert(3, "c-2", "escalation_risk"), alert(4, "c-3", "long_silence")])
    write(tmp_path / "acceptance.jsonl", [
        acceptance(d1, "click", "accepted", 10), acceptance(d1, "inferred", "ignored", 12),
        acceptance(d4, "click", "dismissed", 70), acceptance(d4, "inferred", "accepted", 75),
        acceptance(d5, "inferred", "accepted", 80),
        acceptance(d7, "click", "edited", 130), acceptance(d7, "inferred", "accepted", 135),
        acceptance(d1, "click", "accepted", 10),  # a duplicate
    ])
    # s5 has no click acceptance: its dismissal comes from the UI's feedback; s1's feedback is superseded.
    write(tmp_path / "feedback.jsonl", [feedback(1, d5, "shown", 81), feedback(2, d5, "dismissed", 85),
                                        feedback(3, d1, "dismissed", 11)])
    (tmp_path / "junk.jsonl").write_text("not read\n")
    return tmp_path


def run(argv: list[str], capsys) -> tuple[int, str]:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    code = main_report(parser.parse_args(argv))
    return code, capsys.readouterr().out


def acc(accepted: int, judged: int, rate: float | None) -> dict:
    return {"accepted": accepted, "judged": judged, "rate": rate}


def test_rates_overall_per_version_and_arm(outdir: Path, capsys) -> None:
    code, out = run([str(outdir), "--json", "--bucket", "1m"], capsys)
    assert code == 0
    report = json.loads(out)
    assert report["missing"] == []
    assert report["sources"]["decisions"]["records"] == 10  # as read; de-duplicated below

    overall = report["overall"]
    assert (overall["conversations"], overall["prediction_points"], overall["shown"], overall["suppressed"],
            overall["recorded"]) == (3, 7, 4, 3, 2)
    assert overall["shown_rate"] == 0.5714 and overall["suppression_rate"] == 0.4286
    assert overall["suppression_reasons"] == {"quality.confidence_floor": 2, "rate.min_interval": 1}
    assert overall["alerts"]["total"] == 4
    assert overall["alerts"]["per_100_conversations"] == 133.33
    assert overall["alerts"]["by_kind"] == {"long_silence": {"count": 3, "per_100_conversations": 100.0},
                                            "escalation_risk": {"count": 1, "per_100_conversations": 33.33}}
    # click: s1 yes, s4 no, s5 no (feedback), s7 edited = yes; inferred: s1 no, s4, s5, s7 yes
    assert overall["acceptance"] == {"click": acc(2, 4, 0.5), "inferred": acc(3, 4, 0.75)}

    groups = {(g["model_version"], g["policy_version"], g["arm"]): g for g in report["groups"]}
    assert set(groups) == {("m-1", "p-1", "control"), ("m-2", "p-1", "candidate")}
    control, candidate = groups["m-1", "p-1", "control"], groups["m-2", "p-1", "candidate"]
    assert (control["conversations"], control["prediction_points"], control["shown"], control["suppressed"]) \
        == (2, 5, 3, 2)
    assert control["shown_rate"] == 0.6 and control["suppression_rate"] == 0.4
    assert control["suppression_reasons"] == {"quality.confidence_floor": 1, "rate.min_interval": 1}
    assert control["alerts"]["per_100_conversations"] == 150.0
    assert control["alerts"]["by_kind"] == {"long_silence": {"count": 3, "per_100_conversations": 150.0}}
    assert control["acceptance"] == {"click": acc(1, 3, 0.3333), "inferred": acc(2, 3, 0.6667)}
    assert (candidate["conversations"], candidate["prediction_points"], candidate["suppression_rate"]) == (
        1,
        2,
        0.5,
    )
    assert candidate["alerts"]["by_kind"] == {"escalation_risk": {"count": 1, "per_100_conversations": 100.0}}
    assert candidate["acceptance"] == {"click": acc(1, 1, 1.0), "inferred": acc(1, 1, 1.0)}


def test_rules_and_actions(outdir: Path, capsys) -> None:
    report = json.loads(run([str(outdir), "--json", "--no-chart"], capsys)[1])
    rules = {r["rule_id"]: r for r in report["rules"]}
    assert [r["rule_id"] for r in report["rules"]] == [
        "quality.confidence_floor", "injection.templates_only", "rate.min_interval", "rate.no_repeat"]
    floor = rules["quality.confidence_floor"]
    assert (floor["evaluated"], floor["blocked"], floor["suppressed"], floor["changed_shown"]) == (7, 2, 2, 0)
    assert floor["block_rate"] == 0.2857
    assert floor["acceptance_when_changed"] == {"click": acc(0, 0, None), "inferred": acc(0, 0, None)}
    interval = rules["rate.min_interval"]
    assert (interval["evaluated"], interval["blocked"], interval["block_rate"], interval["suppressed"]) \
        == (5, 1, 0.2, 1)
    repeat = rules["rate.no_repeat"]  # blocked s1's first candidate: s1 clicked, not taken up in the reply
    assert (repeat["blocked"], repeat["suppressed"], repeat["changed_shown"]) == (1, 0, 1)
    assert repeat["acceptance_when_changed"] == {"click": acc(1, 1, 1.0), "inferred": acc(0, 1, 0.0)}
    injection = rules["injection.templates_only"]
    assert (injection["rewrote"], injection["rewrite_rate"], injection["changed_shown"]) == (1, 0.1429, 1)
    assert injection["acceptance_when_changed"] == {"click": acc(1, 1, 1.0), "inferred": acc(1, 1, 1.0)}

    assert report["actions"] == [
        {
            "action": "ask_name",
            "shown": 3,
            "acceptance": {"click": acc(2, 3, 0.6667), "inferred": acc(2, 3, 0.6667)},
        },
        {
            "action": "goodbye",
            "shown": 1,
            "acceptance": {"click": acc(0, 1, 0.0), "inferred": acc(1, 1, 1.0)},
        },
    ]
    assert report["chart"] is None


def test_timeline_and_chart(outdir: Path, capsys) -> None:
    chart = outdir / "charts" / "acc.png"
    report = json.loads(run([str(outdir), "--json", "--bucket", "1m", "--chart", str(chart)], capsys)[1])
    assert report["timeline"]["every"] == "1m"
    points = {(p["bucket"], p["mode"], p["arm"]): (p["accepted"], p["judged"], p["rate"])
              for p in report["timeline"]["points"]}
    t = [(T0 + timedelta(minutes=m)).isoformat().replace("+00:00", "Z") for m in range(3)]
    assert points == {
        (t[0], "click", "control"): (1, 1, 1.0),
        (t[0], "inferred", "control"): (0, 1, 0.0),
        (t[1], "click", "control"): (0, 2, 0.0),      # s4 dismissed, s5 dismissed (feedback)
        (t[1], "inferred", "control"): (2, 2, 1.0),
        (t[2], "click", "candidate"): (1, 1, 1.0),
        (t[2], "inferred", "candidate"): (1, 1, 1.0),
    }
    assert report["chart"] == str(chart)
    data = chart.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR"
    assert len(data) > 5_000


def test_default_chart_path_and_text_report(outdir: Path, capsys) -> None:
    code, out = run([str(outdir)], capsys)
    assert code == 0
    assert (outdir / "acceptance.png").read_bytes()[:4] == b"\x89PNG"
    assert "model m-1 · policy p-1 · arm control" in out
    assert "click  33.3% (1/3)  inferred  66.7% (2/3)" in out
    assert "suppressed by: quality.confidence_floor 2, rate.min_interval 1" in out


def test_missing_acceptance_and_feedback(outdir: Path, capsys) -> None:
    (outdir / "acceptance.jsonl").unlink()
    (outdir / "feedback.jsonl").write_text("")
    code, out = run([str(outdir), "--json"], capsys)
    assert code == 0
    report = json.loads(out)
    assert report["missing"] == ["acceptance", "feedback"]
    assert report["sources"]["acceptance"]["status"] == "missing"
    assert report["sources"]["feedback"]["status"] == "empty"
    assert report["overall"]["acceptance"] == {"click": acc(0, 0, None), "inferred": acc(0, 0, None)}
    assert report["overall"]["suppression_rate"] == 0.4286  # the rest is still there
    assert report["timeline"]["points"] == [] and report["chart"] is None
    assert not (outdir / "acceptance.png").exists()
    code, out = run([str(outdir)], capsys)
    assert code == 0 and "missing or empty: acceptance, feedback" in out and "chart: not written" in out


def test_empty_directory_and_unreadable_lines(tmp_path: Path, capsys) -> None:
    code, out = run([str(tmp_path), "--json"], capsys)
    assert code == 1
    report = json.loads(out)
    assert report["overall"]["prediction_points"] == 0 and report["overall"]["shown_rate"] is None
    (tmp_path / "alerts.jsonl").write_text(
        '{"broken"\n' + alert(1, "c-1", "long_silence").model_dump_json() + "\n"
    )
    report = json.loads(run([str(tmp_path), "--json"], capsys)[1])
    assert report["sources"]["alerts"] | {"source": None} == {
        "source": None, "status": "ok", "records": 1, "unreadable": 1}
    assert report["overall"]["alerts"]["per_100_conversations"] == 100.0
    assert run([str(tmp_path / "nope")], capsys)[0] == 2


def test_timeline_by_suggestion_time(outdir: Path, capsys) -> None:
    report = json.loads(
        run([str(outdir), "--json", "--no-chart", "--by", "suggestion", "--bucket", "1m"], capsys)[1]
    )
    points = {(p["mode"], p["arm"]): (p["accepted"], p["judged"]) for p in report["timeline"]["points"]}
    # every suggestion was made in the first minute
    assert points == {("click", "control"): (1, 3), ("inferred", "control"): (2, 3),
                      ("click", "candidate"): (1, 1), ("inferred", "candidate"): (1, 1)}


def test_bad_bucket_is_refused(outdir: Path, capsys) -> None:
    assert run([str(outdir), "--bucket", "5 minutes"], capsys)[0] == 2
