"""STAR dialogues (Mosig et al., 2020; MIT, Rasa Technologies GmbH) as contract events.

STAR is a Wizard-of-Oz corpus: a user (our *customer*) talks to a wizard (our
*agent*) who picks each reply from suggested actions (``pick_suggestion`` with
its ``ActionLabel``), queries a knowledge base and selects task flows. This
module reads the corpus and turns one dialogue into the events a contact-center
platform would publish, with deterministic synthetic customer context.

It is the one mapping used by ``coach replay``, the bundled sample, baseline
training and evaluation, so the job sees in production what it was trained on.

Prediction points and labels: the agent's next action is predicted after every
final customer turn, knowledge-base result and task selection. The label of a
point is the wizard's next action (its ``ActionLabel``, or ``query`` for a
knowledge-base lookup) when no other prediction point comes between them; free
text the wizard typed has no label.
"""

from __future__ import annotations

import gzip
import hashlib
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

#: Default location of the corpus, relative to a checkout (``../shared`` beside it).
DEFAULT_STAR_DIR = Path(__file__).resolve().parents[2] / "shared" / "data" / "star"

# Share of dialogues (by id) held out as the dev split; see ``split_of``.
DEV_SHARE_PERCENT = 15
#: Fields of a knowledge-base item kept in a ``kb_result`` record at most.
_ITEM_FIELDS = 64

TIERS = ("basic", "silver", "gold", "platinum")
JURISDICTIONS = ("US-CA", "US-NY", "US-TX", "GB", "DE", "FR", "CA-QC", "AU")


def _h(*parts: object) -> int:
    """A stable 64-bit hash (Python's ``hash`` is salted per process)."""
    digest = hashlib.blake2b("|".join(map(str, parts)).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big")


def split_of(dialogue_id: int | str) -> str:
    """``dev`` for a fixed 15% of dialogues by id, ``train`` for the rest."""
    return "dev" if _h("split", dialogue_id) % 100 < DEV_SHARE_PERCENT else "train"


def read_dialogues(path: Path | str) -> Iterator[dict[str, Any]]:
    """Yield STAR dialogues from a ``.jsonl(.gz)`` file or a directory of ``.json`` files."""
    path = Path(path)
    if path.is_dir():
        for file in sorted(path.glob("*.json")):
            yield json.loads(file.read_text())
        return
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as lines:
        for line in lines:
            if line.strip():
                yield json.loads(line)


def iso(moment: datetime) -> str:
    """RFC 3339 UTC with millisecond precision and a ``Z``."""
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace(
        "+00:00", "Z"
    )


@dataclass
class MappedDialogue:
    """One dialogue as contract records, with offsets relative to its start."""

    dialogue_id: int
    conversation_id: str
    customer_id: str
    #: (seconds after the dialogue's start, record as a JSON-ready dict minus times)
    records: list[tuple[float, dict[str, Any]]] = field(default_factory=list)
    #: event_id of a prediction point -> the agent's actual next action
    labels: dict[str, str] = field(default_factory=dict)
    happy: bool = True
    multi_task: bool = False
    aggressive: bool = False
    domains: tuple[str, ...] = ()
    duration_s: float = 0.0


def customer_id_of(dialogue: dict[str, Any]) -> str:
    worker = dialogue.get("AnonymizedUserWorkerID") or str(dialogue["DialogueID"])
    return f"cust-{_h('customer', worker):016x}"[:17]


def agent_id_of(dialogue: dict[str, Any]) -> str:
    worker = dialogue.get("AnonymizedWizardWorkerID") or "wizard"
    return f"agent-{_h('agent', worker):016x}"[:14]


def synthetic_context(customer_id: str, variant: int = 0) -> dict[str, Any]:
    """Deterministic customer context; ``updated_at`` is filled in by the scheduler."""
    h = _h("context", customer_id)
    return {
        "schema_version": "1.0",
        "type": "customer_context",
        "customer_id": customer_id,
        "tier": TIERS[h % len(TIERS)],
        "marketing_opt_out": (h >> 8) % 4 == 0,
        "recording_consent": (h >> 16) % 10 != 0,
        "jurisdiction": JURISDICTIONS[(h >> 24) % len(JURISDICTIONS)],
        "language": "en",
        "open_cases": ((h >> 32) + variant) % 4,
    }


def _flatten_item(item: dict[str, Any] | None) -> dict[str, Any]:
    """A knowledge-base item as the contract's flat ``item`` map."""
    flat: dict[str, Any] = {}
    for key, value in (item or {}).items():
        if key == "APIName" or len(flat) >= _ITEM_FIELDS:
            continue
        name = str(key)[:64]
        if isinstance(value, (bool, int, float)) or value is None:
            flat[name] = value
        elif isinstance(value, list):
            flat[name] = [str(v)[:128] for v in value[:32]]
        else:
            flat[name] = str(value)[:512]
    return flat


def _wizard_task_list(dialogue: dict[str, Any]) -> list[str]:
    caps = dialogue.get("Scenario", {}).get("WizardCapabilities", [])
    return [c["Task"] for c in caps if c.get("Task")][:16]


def _questionnaire_flag(dialogue: dict[str, Any], needle: str) -> bool:
    for qa in dialogue.get("WizardQuestionnaire", []) or []:
        if needle in qa.get("Question", "").lower():
            return bool(qa.get("Answer"))
    return False


PREDICTION_TYPES = ("task_selected", "kb_result")


def is_prediction_point(record: dict[str, Any]) -> bool:
    """Final customer turns, task selections and knowledge-base results."""
    kind = record.get("type")
    if kind == "turn":
        return record["speaker"] == "customer" and record["is_final"]
    return kind in PREDICTION_TYPES


def map_dialogue(dialogue: dict[str, Any], *, voice_share: float = 0.4) -> MappedDialogue:
    """Turn one STAR dialogue into contract records (without absolute times).

    Deterministic: the same dialogue always gives the same records, channel,
    interim turns and context placement.
    """
    did = int(dialogue["DialogueID"])
    conversation_id = f"star-{did}"
    customer_id = customer_id_of(dialogue)
    agent_id = agent_id_of(dialogue)
    channel = "voice" if _h("channel", did) % 1000 < voice_share * 1000 else "chat"
    scenario = dialogue.get("Scenario", {})
    mapped = MappedDialogue(
        dialogue_id=did,
        conversation_id=conversation_id,
        customer_id=customer_id,
        happy=bool(scenario.get("Happy", True)),
        multi_task=bool(scenario.get("MultiTask", False)),
        aggressive=_questionnaire_flag(dialogue, "aggressive"),
        domains=tuple(d for d in scenario.get("Domains", ()) if d),
    )
    events = dialogue.get("Events", [])
    times = [e.get("UnixTime") for e in events]
    t0 = next((t for t in times if t is not None), 0)
    seq = 0
    common = {
        "schema_version": "1.0",
        "conversation_id": conversation_id,
        "customer_id": customer_id,
        "agent_id": agent_id,
        "channel": channel,
    }

    def emit(offset: float, body: dict[str, Any], suffix: str = "") -> dict[str, Any]:
        nonlocal seq
        record = {**common, "event_id": f"{conversation_id}-{seq:03d}{suffix}", "sequence": seq}
        record.update(body)
        mapped.records.append((offset, record))
        if not suffix:
            seq += 1
        return record

    emit(0.0, {"type": "conversation_start", "tasks": _wizard_task_list(dialogue)})
    last_point: str | None = None  # the latest unlabelled prediction point
    offset = 0.0
    for index, event in enumerate(events):
        if event.get("UnixTime") is not None:
            offset = max(offset, float(event["UnixTime"] - t0))
        agent, action = event.get("Agent"), event.get("Action")
        record = None
        if agent == "User" and action == "utter":
            text = str(event.get("Text", ""))
            words = text.split()
            # A cut interim needs a few words.
            if channel == "voice" and len(words) >= 4 and _h("interim", did, index) % 2 == 0:  # noqa: PLR2004
                partial = " ".join(words[: len(words) // 2])
                # An interim hypothesis shares the final turn's sequence number.
                emit(
                    max(0.0, offset - 1.0),
                    {"type": "turn", "speaker": "customer", "text": partial, "is_final": False},
                    suffix="-i",
                )
            record = emit(
                offset, {"type": "turn", "speaker": "customer", "text": text, "is_final": True}
            )
        elif agent == "Wizard" and action in ("pick_suggestion", "utter"):
            label = event.get("ActionLabel")
            body = {"type": "turn", "speaker": "agent", "text": str(event.get("Text", "")),
                    "is_final": True}
            if label:
                body["action"] = label
            if last_point is not None and action == "pick_suggestion" and label:
                mapped.labels[last_point] = label
            last_point = None
            record = emit(offset, body)
        elif agent == "Wizard" and action == "query":
            if last_point is not None:
                mapped.labels[last_point] = "query"
            last_point = None
        elif agent == "Wizard" and action == "select_task" and event.get("Task"):
            record = emit(offset, {"type": "task_selected", "task": event["Task"]})
        elif agent == "KnowledgeBase" and action == "return_item":
            record = emit(
                offset,
                {
                    "type": "kb_result",
                    "api": str(event.get("APIName", "unknown")).lower(),
                    "total_items": int(event.get("TotalItems", -1)),
                    "item": _flatten_item(event.get("Item")),
                },
            )
        elif agent == "User" and action == "complete":
            emit(offset, {"type": "conversation_end", "reason": "completed"})
            break
        if record is not None and is_prediction_point(record):
            last_point = record["event_id"]
    mapped.duration_s = offset
    _place_context(mapped)
    return mapped


def _place_context(mapped: MappedDialogue) -> None:
    """Put customer-context records where a real platform might deliver them.

    70% arrive before the conversation starts, 15% only after the first
    customer turn (the join must hold the turn), 10% before and again as an
    update half-way, and 5% never (the turn proceeds ``context_missing``).
    """
    placement = _h("placement", mapped.conversation_id) % 100
    records = mapped.records
    if placement >= 95:  # noqa: PLR2004 - percent shares of the placement, told in the docstring
        return
    first_offset = records[0][0]
    context = synthetic_context(mapped.customer_id)
    # Percent shares of the placement, told in the docstring.
    if placement < 70 or placement >= 85:  # noqa: PLR2004
        records.insert(0, (first_offset, dict(context)))
    else:
        first_turn = next(
            (i for i, (_, r) in enumerate(records) if r.get("type") == "turn"), len(records) - 1
        )
        records.insert(first_turn + 1, (records[first_turn][0], dict(context)))
    if placement >= 85:  # noqa: PLR2004 - percent shares of the placement, told in the docstring
        middle = max(1, len(records) // 2)
        update = synthetic_context(mapped.customer_id, variant=1)
        records.insert(middle, (records[middle - 1][0], update))


def stamp(record: dict[str, Any], moment: datetime) -> dict[str, Any]:
    """The record with its absolute time (``event_time`` or ``updated_at``)."""
    key = "updated_at" if record.get("type") == "customer_context" else "event_time"
    return {**record, key: iso(moment)}


def schedule(
    dialogues: Iterable[MappedDialogue],
    *,
    start: datetime,
    concurrency: int = 1,
    gap_s: float = 2.0,
    time_scale: float = 1.0,
) -> Iterator[tuple[datetime, dict[str, Any]]]:
    """Interleave dialogues as ``concurrency`` agents working in parallel.

    Each of ``concurrency`` slots plays its dialogues back to back (``gap_s``
    apart, slots staggered); records of all slots come out in time order.
    ``time_scale`` shrinks each dialogue's own timeline (0.1 = ten times
    faster conversations), which keeps replays of long dialogues short.
    Yields ``(absolute time, stamped record)``. A customer's context records
    get strictly increasing ``updated_at`` (bumped by 1 ms on a tie), so each
    one is a genuine update.
    """
    import heapq

    source = iter(dialogues)
    heap: list[tuple[datetime, int, int, int, MappedDialogue, datetime]] = []
    counter = 0

    def load(slot: int, at: datetime) -> None:
        nonlocal counter
        dialogue = next(source, None)
        if dialogue is None or not dialogue.records:
            return
        counter += 1
        first = at + timedelta(seconds=dialogue.records[0][0] * time_scale)
        heapq.heappush(heap, (first, counter, slot, 0, dialogue, at))

    for slot in range(max(1, concurrency)):
        load(slot, start + timedelta(seconds=slot * gap_s / max(1, concurrency)))
    context_times: dict[str, datetime] = {}
    while heap:
        moment, _, slot, index, dialogue, began = heapq.heappop(heap)
        record = dialogue.records[index][1]
        stamped_at = moment
        if record.get("type") == "customer_context":
            last = context_times.get(record["customer_id"])
            if last is not None and stamped_at <= last:
                stamped_at = last + timedelta(milliseconds=1)
            context_times[record["customer_id"]] = stamped_at
        yield moment, stamp(record, stamped_at)
        if index + 1 < len(dialogue.records):
            nxt = began + timedelta(seconds=dialogue.records[index + 1][0] * time_scale)
            nxt = max(nxt, moment)
            heapq.heappush(heap, (nxt, counter, slot, index + 1, dialogue, began))
            counter += 1
        else:
            load(slot, moment + timedelta(seconds=gap_s))


def select(
    path: Path | str, *, split: str = "all", limit: int | None = None
) -> Iterator[dict[str, Any]]:
    """Dialogues of one split (``train``, ``dev`` or ``all``), at most ``limit``."""
    taken = 0
    for dialogue in read_dialogues(path):
        if split != "all" and split_of(dialogue["DialogueID"]) != split:
            continue
        yield dialogue
        taken += 1
        if limit is not None and taken >= limit:
            return
