"""`coach report`: knowledge-card acceptance per knowledge-base version, by hand-computed figures."""

from __future__ import annotations

import json

from coachflow.cli import main


def card(card_id: str, kb: str, at: str = "2026-03-02T14:00:00Z") -> dict:
    return {"card_id": card_id, "kb_version": kb, "ranker_version": "r1", "created_at": at}


def feedback(feedback_id: str, card_id: str, event: str, at: str) -> dict:
    return {"feedback_id": feedback_id, "card_id": card_id, "conversation_id": "c", "agent_id": "a",
            "event": event, "at": at, "schema_version": "1.0", "type": "card_feedback"}


def write(path, rows) -> None:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))


def test_card_acceptance_per_kb_version(tmp_path, capsys):
    (tmp_path / "knowledge").mkdir()
    write(
        tmp_path / "knowledge" / "knowledge.jsonl",
        [
            card("k1", "kb-a"),
            card("k2", "kb-a"),
            card("k3", "kb-a"),
            card("k1", "kb-a"),  # k1 twice: at-least-once
            card("k4", "kb-b"),
            card("k5", "kb-b"),
        ],
    )
    write(tmp_path / "knowledge" / "knowledge_feedback.jsonl", [
        feedback("f1", "k1", "shown", "2026-03-02T14:00:01Z"),
        feedback("f2", "k1", "accepted", "2026-03-02T14:00:02Z"),
        feedback("f2", "k1", "accepted", "2026-03-02T14:00:02Z"),  # a duplicate report
        feedback("f3", "k2", "accepted", "2026-03-02T14:00:03Z"),
        feedback("f4", "k2", "dismissed", "2026-03-02T14:00:09Z"),  # the later verdict counts
        feedback("f5", "k4", "accepted", "2026-03-02T14:00:04Z"),
        feedback("f6", "nope", "accepted", "2026-03-02T14:00:05Z"),  # a card we never saw
    ])
    assert main(["report", str(tmp_path), "--json", "--no-chart"]) == 0
    knowledge = json.loads(capsys.readouterr().out)["knowledge"]
    by_version = {row["kb_version"]: row for row in knowledge["by_kb_version"]}
    assert by_version["kb-a"] == {
        "kb_version": "kb-a",
        "cards": 3,
        "judged": 2,
        "accepted": 1,
        "dismissed": 1,
        "acceptance": 0.5,
    }
    assert by_version["kb-b"] == {
        "kb_version": "kb-b",
        "cards": 2,
        "judged": 1,
        "accepted": 1,
        "dismissed": 0,
        "acceptance": 1.0,
    }
    assert knowledge["overall"]["cards"] == 5 and knowledge["overall"]["acceptance"] == round(2 / 3, 4)
    assert knowledge["feedback_for_unknown_cards"] == 1
    assert main(["report", str(tmp_path), "--no-chart"]) == 0
    text = capsys.readouterr().out
    assert "Knowledge cards by KB version" in text and "kb-a" in text and "50.0% (1/2)" in text
