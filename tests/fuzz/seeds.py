"""Valid records for the fuzzers to start from: STAR conversations, UI feedback on them, the sample.

``build(job)`` replays STAR dev dialogues (``coachflow.replay``) and groups
them two conversations at a time (with their customers' context) into
``Chunk``s; it runs each chunk through the embedded job once and adds UI
feedback on the suggestions it showed (accepted, edited, dismissed, shown),
so that feedback reaches the acceptance step's state. ``Pool.records`` holds
every valid seed, the bundled sample's valid lines included, and
``Pool.by_type`` one seed of each record type.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from coachflow import replay
from coachflow.config import SAMPLE_INPUT
from operators.envelope import Envelope, Origin, RawRecord
from operators.parse import ParseLimits, parse_record
from tests import adversarial
from tests.fuzz.strategies import TAGS
from tests.helpers import STAR_DIALOGUES

FEEDBACK_EVENTS = ("accepted", "edited", "dismissed", "shown")


@dataclass(frozen=True)
class Chunk:
    """Two conversations' valid records in time order, UI feedback on their suggestions last."""

    records: tuple[dict, ...]
    suggestions: tuple[dict, ...]
    """The suggestions a run of the records alone showed (id, conversation, agent)."""

    def __repr__(self) -> str:
        conversations = sorted({r["conversation_id"] for r in self.records if "conversation_id" in r})
        return f"Chunk({len(self.records)} records of {conversations})"

    def _repr_pretty_(self, printer, cycle: bool) -> None:
        printer.text(repr(self))

    def lines(self) -> list[bytes]:
        return [json.dumps(r, ensure_ascii=False).encode() for r in self.records]


@dataclass(frozen=True)
class Pool:
    chunks: tuple[Chunk, ...]
    records: tuple[dict, ...]
    by_type: dict[str, dict]

    def __repr__(self) -> str:
        return f"Pool({len(self.chunks)} chunks, {len(self.records)} records)"

    def _repr_pretty_(self, printer, cycle: bool) -> None:  # Hypothesis's reports: the summary only
        printer.text(repr(self))


def _valid(record: dict) -> bool:
    raw = RawRecord(value=json.dumps(record).encode(), key=None, origin=Origin(file="seed", line=1),
                    stream="any")
    return isinstance(parse_record(raw, ParseLimits(check_keys=False), 1), Envelope)


def _chunks(records: list[dict], size: int = 2) -> list[list[dict]]:
    conversations = list(dict.fromkeys(r["conversation_id"] for r in records if "conversation_id" in r))
    out = []
    for i in range(0, len(conversations), size):
        group = set(conversations[i:i + size])
        customers = {r["customer_id"] for r in records if r.get("conversation_id") in group}
        out.append([r for r in records if r.get("conversation_id") in group
                    or (r["type"] == "customer_context" and r["customer_id"] in customers)])
    return out


def feedback_on(suggestions: list[dict], at: str, tag: str) -> list[dict]:
    """UI feedback on some of ``suggestions``: each kind of report once, ids unique per ``tag``."""
    out = []
    for n, (s, event) in enumerate(zip(suggestions, FEEDBACK_EVENTS, strict=False)):
        record = {"schema_version": "1.0", "type": "feedback", "feedback_id": f"fb-{tag}-{n}",
                  "suggestion_id": s["suggestion_id"], "conversation_id": s["conversation_id"],
                  "agent_id": s["agent_id"], "event": event, "at": at}
        if event == "edited":
            record["edit_distance"] = 7
        out.append(record)
    return out


def build(job, start: datetime, dialogues: int = 16) -> Pool:
    replayed = replay.records(STAR_DIALOGUES, split="dev", limit=dialogues, concurrency=2, start=start)
    items = [r for _, r in replayed]
    chunks = []
    for n, records in enumerate(_chunks(items)):
        out = job.run([json.dumps(r).encode() for r in records])
        shown = [json.loads(line) for line in out.lines.get("suggestions", [])]
        last = max(r.get("event_time", r.get("updated_at")) for r in records)
        feedback = feedback_on(shown, last, str(n))
        chunks.append(Chunk(tuple(records + feedback), tuple(shown)))
    sample = [json.loads(line) for line in Path(SAMPLE_INPUT).read_bytes().splitlines() if line.strip()
              and _is_json(line)]
    records = [r for c in chunks for r in c.records]
    records += [r for r in sample if isinstance(r, dict) and _valid(r)]
    by_type: dict[str, dict] = {}
    for record in records:
        by_type.setdefault(record["type"], record)
    if "task_selected" not in by_type:  # rare in STAR: look further
        more = replay.records(STAR_DIALOGUES, split="dev", limit=200, concurrency=2, start=start)
        by_type["task_selected"] = next(r for _, r in more if r["type"] == "task_selected")
        records.append(by_type["task_selected"])
    assert set(by_type) == set(TAGS), set(TAGS) - set(by_type)
    return Pool(tuple(chunks), tuple(records), by_type)


def with_pii(records: tuple[dict, ...]) -> list[dict]:
    """``records`` with personal data in customer turns (``tests.adversarial.seed``) and in every other
    knowledge-base item's text values (slot values of suggestions come from there)."""
    seeded, _ = adversarial.seed(list(records))
    out = []
    for n, record in enumerate(seeded):
        if record["type"] == "kb_result" and n % 2:
            surface = adversarial.PII[n % len(adversarial.PII)][0]
            item = {k: surface if isinstance(v, str) else v for k, v in record["item"].items()}
            out.append({**record, "item": item})
        else:
            out.append(record)
    return out


def _is_json(line: bytes) -> bool:
    try:
        json.loads(line)
    except ValueError:
        return False
    return True
