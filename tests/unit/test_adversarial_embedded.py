"""Replaying dialogues seeded with personal data and injection attempts (embedded mode):
no personal data in any output or log line, no suggestion text that is not an
approved template, every input still accounted for."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from coachflow import replay
from models.templates import TemplateBook
from tests import adversarial
from tests.helpers import STAR_DIALOGUES, STAR_DIR, run_embedded

BOOK = TemplateBook.from_star(STAR_DIR / "tasks")


def approved_anywhere(action: str, text: str) -> bool:
    return any(BOOK.approved(action, text, task) for task in BOOK.by_task)


def test_no_personal_data_leaves_the_job_and_suggestions_stay_templated(tmp_path):
    items = replay.records(STAR_DIALOGUES, split="dev", limit=60, concurrency=8,
                           start=datetime(2026, 6, 1, 9, 0, tzinfo=UTC))
    valid, injections = adversarial.seed([r for _, r in items])
    bad = adversarial.bad_records(valid)
    lines = [json.dumps(r, ensure_ascii=False).encode() for r in valid] + [value for _, _, value in bad]
    source = tmp_path / "in.jsonl"
    source.write_bytes(b"\n".join(line.replace(b"\n", b" ") for line in lines) + b"\n")
    assert adversarial.leaks([source.read_text("utf-8", "replace")]), "the input itself must carry the PII"

    outputs, everything = run_embedded(source, tmp_path / "out")
    assert adversarial.leaks(everything) == []

    decisions = [json.loads(line) for line in outputs["decisions.jsonl"]]
    dead = [json.loads(line) for line in outputs["dlq.jsonl"]]
    assert len(decisions) + len(dead) == len(lines)
    assert sum(1 for d in decisions if d["masked"]) >= len(adversarial.PII)
    assert {d["payload_form"] for d in dead} >= {"original", "canonical", "withheld"}

    suggestions = [json.loads(line) for line in outputs["suggestions.jsonl"]]
    assert len(suggestions) > 100
    for s in suggestions:
        assert approved_anywhere(s["action"], s["text"]), s
        for text in injections:
            assert text[:40] not in s["text"]
