"""STAR to contract events, the interleaving scheduler and `coach replay`."""

from __future__ import annotations

import json
from collections import Counter
from datetime import UTC, datetime

from coachflow import replay
from coachflow.cli import main as coach
from models import star
from schemas import INPUT_ADAPTER
from tests.helpers import STAR_DIALOGUES

START = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)

DIALOGUE = {
    "DialogueID": 77,
    "AnonymizedUserWorkerID": "user-1",
    "AnonymizedWizardWorkerID": "wizard-1",
    "Scenario": {"Domains": ["bank"], "Happy": True, "MultiTask": False,
                 "WizardCapabilities": [{"Task": "bank_balance", "Domain": "bank"}]},
    "WizardQuestionnaire": [{"Question": "Did the user become aggressive or annoyed?", "Answer": True}],
    "Events": [
        {"Agent": "User", "Action": "utter", "Text": "I want to know my balance now", "UnixTime": 100},
        {"Agent": "Wizard", "Action": "request_suggestions", "Text": "name", "UnixTime": 104},
        {"Agent": "Wizard", "Action": "pick_suggestion", "ActionLabel": "ask_name",
         "Text": "Could I get your full name, please?", "UnixTime": 105},
        {"Agent": "User", "Action": "utter", "Text": "Ann Lee", "UnixTime": 110},
        {"Agent": "User", "Action": "utter", "Text": "hello?", "UnixTime": 112},
        {"Agent": "Wizard", "Action": "query", "APIName": "bank_balance", "Constraints": [], "UnixTime": 115},
        {"Agent": "KnowledgeBase", "Action": "return_item", "APIName": "bank_balance",
         "Item": {"APIName": "bank_balance", "BankBalance": 10}, "TotalItems": -1},
        {"Agent": "Wizard", "Action": "pick_suggestion", "ActionLabel": "bank_inform_balance",
         "Text": "Your current balance is 10 in credit.", "UnixTime": 120},
        {"Agent": "Wizard", "Action": "utter", "Text": "Anything else?", "UnixTime": 125},
        {"Agent": "User", "Action": "complete", "UnixTime": 130},
    ],
}


def events_of(mapped) -> list[dict]:
    return [r for _, r in mapped.records if r["type"] != "customer_context"]


def test_a_dialogue_maps_to_contract_events_with_labels():
    mapped = star.map_dialogue(DIALOGUE, voice_share=0.0)
    events = events_of(mapped)
    assert [e["type"] for e in events] == [
        "conversation_start", "turn", "turn", "turn", "turn", "kb_result", "turn", "turn", "conversation_end",
    ]
    assert events[0]["tasks"] == ["bank_balance"]
    assert [e["sequence"] for e in events] == list(range(9))
    assert events[2]["speaker"] == "agent" and events[2]["action"] == "ask_name"
    assert "action" not in events[7]  # free text has no action label
    assert events[5]["item"] == {"BankBalance": 10}
    # The label belongs to the last prediction point before the wizard acts.
    assert mapped.labels == {
        "star-77-001": "ask_name",
        "star-77-004": "query",
        "star-77-005": "bank_inform_balance",
    }
    assert mapped.aggressive and mapped.happy and mapped.domains == ("bank",)
    for _, record in mapped.records:
        INPUT_ADAPTER.validate_python(star.stamp(record, START))


def test_voice_conversations_get_interim_turns_sharing_the_final_sequence():
    mapped = star.map_dialogue({**DIALOGUE, "DialogueID": 5}, voice_share=1.0)
    interims = [e for e in events_of(mapped) if e["type"] == "turn" and not e["is_final"]]
    finals = {e["sequence"]: e for e in events_of(mapped) if e["type"] == "turn" and e["is_final"]}
    for interim in interims:
        assert interim["event_id"].endswith("-i")
        assert finals[interim["sequence"]]["text"].startswith(interim["text"])


def test_context_placement_covers_before_after_update_and_missing():
    placements = Counter()
    for did in range(400):
        mapped = star.map_dialogue({**DIALOGUE, "DialogueID": did})
        kinds = [r["type"] for _, r in mapped.records]
        n = kinds.count("customer_context")
        first = kinds.index("customer_context") if n else None
        placements["missing" if n == 0 else "updated" if n == 2 else
                   "before" if first == 0 else "after"] += 1
    assert set(placements) == {"missing", "updated", "before", "after"}
    assert placements["before"] > placements["after"] > placements["missing"]


def test_mapping_is_deterministic():
    assert star.map_dialogue(DIALOGUE).records == star.map_dialogue(DIALOGUE).records
    assert star.split_of(77) == star.split_of("77")


def test_the_scheduler_interleaves_conversations_in_time_order():
    dialogues = [star.map_dialogue({**DIALOGUE, "DialogueID": i}) for i in range(6)]
    items = list(star.schedule(dialogues, start=START, concurrency=3))
    times = [t for t, _ in items]
    assert times == sorted(times)
    first_three = [r["conversation_id"] for _, r in items[:12] if r["type"] == "conversation_start"]
    assert len(first_three) == 3  # three agents at work at once
    per_customer: dict[str, list[str]] = {}
    for _, r in items:
        if r["type"] == "customer_context":
            per_customer.setdefault(r["customer_id"], []).append(r["updated_at"])
    for stamps in per_customer.values():
        assert stamps == sorted(stamps) and len(set(stamps)) == len(stamps)


def test_coach_replay_writes_valid_contract_jsonl(tmp_path, capsys):
    out = tmp_path / "replay.jsonl"
    code = coach(["replay", str(STAR_DIALOGUES), "--out", str(out), "--limit", "20",
                  "--concurrency", "5", "--start-time", "2026-01-05T09:00:00Z"])
    assert code == 0
    lines = out.read_text().splitlines()
    stats = json.loads(capsys.readouterr().err.strip().splitlines()[-1])
    assert stats["conversations"] == 20 and stats["records"] == len(lines)
    records = [INPUT_ADAPTER.validate_json(line) for line in lines]
    assert records[0].model_dump()["schema_version"] == "1.0"
    assert {r.conversation_id for r in records if hasattr(r, "conversation_id")} == {
        f"star-{d['DialogueID']}" for d in star.select(STAR_DIALOGUES, limit=20)
    }


def test_replay_pacing_follows_event_time(tmp_path):
    import time

    items = list(replay.records(STAR_DIALOGUES, limit=1, concurrency=1, start=START, time_scale=0.01))
    span = (items[-1][0] - items[0][0]).total_seconds()
    began = time.monotonic()
    replay.to_file(iter(items), tmp_path / "paced.jsonl", speed=1.0)
    elapsed = time.monotonic() - began
    assert span > 0.5 and elapsed >= span * 0.9


def test_replay_reads_a_directory_of_dialogue_json_files(tmp_path):
    folder = tmp_path / "dialogues"
    folder.mkdir()
    for did in (3, 4):
        (folder / f"{did}.json").write_text(json.dumps({**DIALOGUE, "DialogueID": did}))
    out = tmp_path / "out.jsonl"
    assert coach(["replay", str(folder), "--out", str(out), "--concurrency", "2"]) == 0
    conversations = {json.loads(line).get("conversation_id") for line in out.read_text().splitlines()}
    assert conversations - {None} == {"star-3", "star-4"}
