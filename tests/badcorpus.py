"""A corpus of bad input records, each with the dead-letter reason it must get.

``build(valid)`` takes a replay's valid records (in order) and returns the
bad ones: self-contained refusals (malformed, invalid, oversized, hostile)
plus refusals relative to the valid traffic (duplicates, late events,
stragglers after the end, stale or repeated context), each placed right after
the valid record it relates to. ``interleave`` merges them into one input.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta

from schemas._base import utc_iso


@dataclass(frozen=True)
class Bad:
    stream: str
    """"events" or "context": the topic it goes to in Kafka mode."""
    key: bytes | None
    value: bytes
    reason: str
    after: str | None = None
    """Insert right after the valid record with this id (event_id or customer@time)."""
    kafka_only: bool = False
    """Only meaningful with topics and keys (wrong topic, missing or wrong key)."""


def _dump(record: dict) -> bytes:
    return json.dumps(record, ensure_ascii=False).encode()


def _without(record: dict, *names: str) -> dict:
    return {k: v for k, v in record.items() if k not in names}


def record_id(record: dict) -> str:
    """The id a decision gives its input: event_id, or customer_id@version for context."""
    if record["type"] == "customer_context":
        moment = datetime.fromisoformat(record["updated_at"].replace("Z", "+00:00"))
        return f"{record['customer_id']}@{utc_iso(moment)}"
    return record["event_id"]


def _shift(stamp: str, seconds: float) -> str:
    moment = datetime.fromisoformat(stamp.replace("Z", "+00:00")) + timedelta(seconds=seconds)
    return moment.isoformat().replace("+00:00", "Z")


def build(valid: list[dict]) -> list[Bad]:
    events = [r for r in valid if r["type"] != "customer_context"]
    contexts = [r for r in valid if r["type"] == "customer_context"]
    turn = next(r for r in events if r["type"] == "turn" and r["speaker"] == "customer")
    ctx = contexts[0]

    def ev(record: dict, reason: str, key: bytes | None = None, **kw) -> Bad:
        return Bad("events", key if key is not None else record.get("conversation_id", "x").encode(),
                   _dump(record), reason, **kw)

    def cx(record: dict, reason: str, key: bytes | None = None, **kw) -> Bad:
        return Bad("context", key if key is not None else record.get("customer_id", "x").encode(),
                   _dump(record), reason, **kw)

    def fresh(n: int) -> dict:
        # A turn of a conversation nobody else uses, so only parsing can refuse it.
        return {**turn, "event_id": f"bad-{n}", "conversation_id": f"bad-conv-{n}",
                "text": "I need help with my account"}

    key = b"bad-conv"
    bad = [
        # malformed JSON
        Bad("events", key, b'{"schema_version":"1.0","type":"turn",', "malformed_json"),
        Bad("events", key, b"{'type': 'turn'}", "malformed_json"),
        Bad("events", key, b'{"type":"turn",}', "malformed_json"),
        Bad("events", key, b"hello agent", "malformed_json"),
        Bad("context", b"u", b'{"customer_id": "u" "tier": "gold"}', "malformed_json"),
        # not UTF-8
        Bad("events", key, b"\xff\xfe{\x00}", "invalid_encoding"),
        Bad("events", key, _dump(fresh(1)).replace(b"I", b"\xe9"), "invalid_encoding"),
        Bad("context", b"u", _dump(ctx).replace(b'"en"', b'"\xe9n"'), "invalid_encoding"),
        # too big, or empty
        ev({**fresh(2), "text": "x" * 70_000}, "payload_too_large"),
        cx({**ctx, "language": "en", "padding": "y" * 70_000}, "payload_too_large"),
        Bad("events", key, b"", "empty_payload"),
        Bad("events", key, b"   \n", "empty_payload"),
        # missing fields
        ev(_without(fresh(3), "text"), "missing_field"),
        ev(_without(fresh(4), "event_id"), "missing_field"),
        ev(_without(fresh(5), "type"), "missing_field"),
        cx(_without(ctx, "tier"), "missing_field"),
        # unknown fields
        ev({**fresh(6), "sentiment": "angry"}, "unknown_field"),
        ev({**fresh(7), "customer": {"name": "Ann"}}, "unknown_field"),
        cx({**ctx, "credit_score": 700}, "unknown_field"),
        # unknown enum values
        ev({**fresh(8), "channel": "fax"}, "unknown_enum_value"),
        ev({**fresh(9), "speaker": "bot"}, "unknown_enum_value"),
        ev({**fresh(10), "type": "hold_music"}, "unknown_enum_value"),
        ev({**_without(fresh(11), "speaker", "text", "is_final", "action"), "type": "conversation_end",
            "reason": "hangup"}, "unknown_enum_value"),
        cx({**ctx, "tier": "diamond"}, "unknown_enum_value"),
        # versions we do not speak
        ev({**fresh(12), "schema_version": "2.0"}, "unsupported_schema_version"),
        cx({**ctx, "schema_version": "0.9"}, "unsupported_schema_version"),
        # other schema violations
        ev({**fresh(13), "sequence": -1}, "schema_violation"),
        ev({**fresh(14), "event_time": "2026-01-05T09:00:00"}, "schema_violation"),
        ev({**fresh(15), "event_time": "yesterday"}, "schema_violation"),
        ev({**fresh(16), "event_id": "has spaces; DROP TABLE"}, "schema_violation"),
        ev({**fresh(17), "is_final": "maybe"}, "schema_violation"),
        Bad("events", key, b"[1, 2, 3]", "schema_violation"),
        Bad("events", key, b'"just a string"', "schema_violation"),
        cx({**ctx, "jurisdiction": "california"}, "schema_violation"),
        cx({**ctx, "open_cases": -3}, "schema_violation"),
        # hostile text
        ev({**fresh(18), "text": "refund\u0000now"}, "invalid_text"),
        ev({**fresh(19), "text": "pay \u202eevil\u202c here"}, "invalid_text"),
        ev({**fresh(20), "text": "\x1b[31mred alert\x1b[0m"}, "invalid_text"),
        # longer than COACH_MAX_TEXT_CHARS (4000) but under the payload limit
        ev({**fresh(21), "text": "word " * 1000}, "text_too_long"),
        ev({**fresh(22), "text": "\u00e9" * 4500}, "text_too_long"),
        # topics and keys (Kafka mode only)
        Bad("events", b"u", _dump(ctx), "wrong_topic", kafka_only=True),
        Bad("context", b"bad-conv-23", _dump(fresh(23)), "wrong_topic", kafka_only=True),
        ev(fresh(24), "missing_key", key=b"", kafka_only=True),
        ev(fresh(25), "key_mismatch", key=b"someone-else", kafka_only=True),
        cx({**ctx, "customer_id": "other-customer"}, "key_mismatch", key=b"u-wrong", kafka_only=True),
    ]
    # missing_key needs a record without any key at all
    bad = [Bad(b.stream, None, b.value, b.reason, b.after, b.kafka_only) if b.key == b"" else b for b in bad]

    # Relative to the valid traffic: duplicates, late events, stragglers.
    open_turns = [r for r in events if r["type"] == "turn" and r["is_final"] and r["sequence"] >= 3]
    conversations = list(dict.fromkeys(r["conversation_id"] for r in open_turns))
    picks = [next(r for r in open_turns if r["conversation_id"] == c) for c in conversations[:5]]
    for record in picks[:3]:
        bad.append(ev(record, "duplicate_event", after=record["event_id"]))
    for n, record in enumerate(picks[3:5]):
        late = {**record, "event_id": f"{record['event_id']}-late{n}", "sequence": record["sequence"] + 500,
                "event_time": _shift(record["event_time"], -3600)}
        bad.append(ev(late, "late_event", after=record["event_id"]))
    ends = [r for r in events if r["type"] == "conversation_end"][:2]
    for n, end in enumerate(ends):
        straggler = {**turn, "conversation_id": end["conversation_id"], "customer_id": end["customer_id"],
                     "agent_id": end["agent_id"], "channel": end["channel"],
                     "event_id": f"{end['event_id']}-after{n}", "sequence": end["sequence"] + 1,
                     "event_time": end["event_time"]}
        bad.append(ev(straggler, "conversation_ended", after=end["event_id"]))
    bad.append(cx({**ctx, "updated_at": _shift(ctx["updated_at"], -86_400)}, "stale_context",
                  after=record_id(ctx)))
    bad.append(cx(ctx, "duplicate_context", after=record_id(ctx)))
    return bad


def interleave(valid: list[dict], bad: list[Bad]) -> list[tuple[str, dict | None, Bad | None]]:
    """Valid records with each bad one right after its anchor (unanchored ones at the end).

    Returns ``(stream, valid record or None, bad or None)`` in input order.
    """
    anchored: dict[str, list[Bad]] = {}
    for b in bad:
        if b.after is not None:
            anchored.setdefault(b.after, []).append(b)
    out: list[tuple[str, dict | None, Bad | None]] = []
    for record in valid:
        stream = "context" if record["type"] == "customer_context" else "events"
        out.append((stream, record, None))
        for b in anchored.pop(record_id(record), []):
            out.append((b.stream, None, b))
    assert not anchored, f"bad records anchored to unknown records: {list(anchored)}"
    out.extend((b.stream, None, b) for b in bad if b.after is None)
    return out
