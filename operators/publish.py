"""Serialise published records to ``(kind, key, value)`` for a sink."""

from __future__ import annotations

import sys
from typing import TextIO

from operators.privacy import scrub
from schemas import Acceptance, Alert, ConversationSummary, DeadLetter, Decision, Suggestion

_KIND = {
    Suggestion: "suggestions",
    Alert: "alerts",
    Decision: "decisions",
    DeadLetter: "dlq",
    ConversationSummary: "summaries",
    Acceptance: "acceptance",
}


def kind_of(record: object) -> str:
    return _KIND[type(record)]


def key_of(record: object) -> bytes | None:
    """Conversation id where there is one, so a conversation stays in one partition."""
    key = getattr(record, "conversation_id", None)
    if key is None and isinstance(record, DeadLetter):
        key = record.key
    if key is None:
        key = getattr(record, "customer_id", None)
    return None if key is None else key.encode("utf-8")


def serialize(record) -> tuple[str, bytes | None, bytes]:
    """``(output kind, key, JSON bytes)`` of a published record, personal data masked (``scrub``)."""
    record = scrub(record)
    return kind_of(record), key_of(record), record.__pydantic_serializer__.to_json(record)


def show(suggestion: Suggestion, out: TextIO = sys.stdout) -> None:
    """One readable line per suggestion, for people watching the embedded run."""
    suggestion = scrub(suggestion)
    alternatives = ", ".join(c.action for c in suggestion.alternatives)
    print(
        f"{suggestion.conversation_id:<12} {suggestion.channel:<5} after {suggestion.event_id}: "
        f"{suggestion.action} ({suggestion.confidence:.0%}) \u2192 \"{suggestion.text}\""
        + (f"  [also: {alternatives}]" if alternatives else ""),
        file=out,
        flush=False,
    )
