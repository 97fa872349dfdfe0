"""The planted-PII corpus through the embedded job: as valid turns, as knowledge-base values, as
duplicates and as records the contract refuses. No planted value comes out in clear in any output,
log line or lineage event, every input is accounted for, and the dead letters name each kind."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime

from coachflow import replay
from tests import adversarial, pii_corpus
from tests.helpers import STAR_DIALOGUES, run_embedded

MARKERS = ("[PERSON]", "[ADDRESS]", "[CREDENTIAL]", "[EMAIL]", "[DATE_OF_BIRTH]", "[IBAN]", "[PHONE]",
           "[CARD_NUMBER]", "[SSN]", "[PIN]", "[ACCOUNT_NUMBER]")


Planted = list[tuple[str, list[str], list[str]]]


def planted_inputs(planted: Planted = adversarial.PLANTED, kb: Planted | None = None, dialogues: int = 40
                   ) -> tuple[list[bytes], list[dict], set[str]]:
    """Input lines, the refused records whose dead letters must name the planted kinds, and the
    event ids of the planted valid turns. ``planted`` go into customer turns and refused records,
    ``kb`` (default ``planted``) into knowledge-base values."""
    items = replay.records(STAR_DIALOGUES, split="dev", limit=dialogues, concurrency=8,
                           start=datetime(2026, 6, 1, 9, 0, tzinfo=UTC))
    texts = [text for text, _, _ in planted]
    kb_texts = texts if kb is None else [text for text, _, _ in kb]
    valid, planted_turns, n, k = [], [], 0, 0
    for _, original in items:
        record = original
        if record["type"] == "turn" and record["speaker"] == "customer" and record["is_final"] \
                and n < len(texts) and record["sequence"] % 2 == 1:
            record = {**record, "text": texts[n]}
            planted_turns.append(record)
            n += 1
        elif record["type"] == "kb_result":
            item = {}
            for key, value in record["item"].items():
                item[key] = kb_texts[k % len(kb_texts)] if isinstance(value, str) else value
                k += isinstance(value, str)
            record = {**record, "item": item}
        valid.append(record)
    assert n == len(texts), "not enough customer turns to plant every text"
    turn = planted_turns[0]
    refused, lines = [], []
    for i, (text, _, kinds) in enumerate(planted):
        bad = {**turn, "conversation_id": f"pii-{i}", "event_id": f"pii-{i}-1", "channel": "fax",
               "text": text}
        refused.append({"event_id": bad["event_id"], "kinds": kinds})
        lines.append(json.dumps(bad).encode())
        lines.append(('{"text": "' + text + '", "type": "turn"').encode())  # malformed: masked as bytes
        lines.append(json.dumps({**turn, "event_id": f"pii-{i}-2", text: 1}).encode())  # a PII field name
    duplicates = [json.dumps(r).encode() for r in planted_turns]  # refused after parsing: re-serialised
    return ([json.dumps(r).encode() for r in valid] + duplicates + lines, refused,
            {r["event_id"] for r in planted_turns})


def assert_dead_letters_name_the_kinds(dead: list[dict], refused: list[dict]) -> None:
    """Each refused record's dead letter lists its planted kinds and its payload shows their markers."""
    by_event = {}
    for letter in dead:
        payload = base64.b64decode(letter["payload_b64"]).decode("utf-8", "replace")
        try:
            by_event[json.loads(payload).get("event_id")] = (letter, payload)
        except ValueError:
            continue
    for want in refused:
        letter, payload = by_event[want["event_id"]]
        assert set(want["kinds"]) <= set(letter["payload_masked"]), (want, letter["payload_masked"], payload)
        assert all(f"[{kind.upper()}]" in payload for kind in want["kinds"]), payload


def test_no_planted_value_leaves_the_job_in_clear(tmp_path):
    lines, refused, planted_ids = planted_inputs()
    source = tmp_path / "in.jsonl"
    source.write_bytes(b"\n".join(lines) + b"\n")
    assert len(set(adversarial.leaks([source.read_text()]))) >= len(adversarial.PLANTED), "the input has it"

    outputs, everything = run_embedded(source, tmp_path / "out", COACH_LOG_LEVEL="DEBUG")
    assert outputs["lineage.jsonl"], "lineage events are checked too"
    assert adversarial.leaks(everything) == []

    decisions = [json.loads(line) for line in outputs["decisions.jsonl"]]
    dead = [json.loads(line) for line in outputs["dlq.jsonl"]]
    assert len(decisions) + len(dead) == len(lines)
    again = [d for d in dead if d["event_id"] in planted_ids and d["payload_form"] == "canonical"]
    assert len(again) == len(adversarial.PLANTED), "each planted turn, sent again, is refused after parsing"
    assert_dead_letters_name_the_kinds(dead, refused)

    suggestions = [json.loads(line)["text"] for line in outputs["suggestions.jsonl"]]
    assert any(marker in text for text in suggestions for marker in MARKERS), "KB values reached suggestions"


def test_no_value_of_the_reviewers_corpus_leaves_the_job_in_clear(tmp_path):
    # Customer turns and refused records carry every text, names without a cue too; knowledge-base
    # values (business data the agent reads out, masked with SHAPED) carry the cued ones.
    planted = pii_corpus.CORPUS + pii_corpus.UNCUED_NAMES
    kb = [c for c in pii_corpus.CORPUS if c[0] not in pii_corpus.BARE]
    lines, refused, planted_ids = planted_inputs(planted, kb, dialogues=120)
    source = tmp_path / "in.jsonl"
    source.write_bytes(b"\n".join(lines) + b"\n")
    needles = [value for _, values, _ in planted for value in values]
    assert set(adversarial.leaks([source.read_text()], needles)) == set(needles), "the input has every value"

    outputs, everything = run_embedded(source, tmp_path / "out", COACH_LOG_LEVEL="DEBUG")
    assert outputs["lineage.jsonl"], "lineage events are checked too"
    assert adversarial.leaks(everything, needles) == []

    decisions, dead = outputs["decisions.jsonl"], [json.loads(line) for line in outputs["dlq.jsonl"]]
    assert len(decisions) + len(dead) == len(lines)
    assert_dead_letters_name_the_kinds(dead, refused)
