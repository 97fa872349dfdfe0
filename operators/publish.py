"""Serialise published records to ``(kind, key, value)`` for a sink."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable
from typing import TextIO

from pydantic import BaseModel

from operators.boundary import Boundary
from operators.privacy import scrub
from schemas import OUTPUT_KIND, Acceptance, DeadLetter, Decision, KnowledgeDecision, Suggestion


def kind_of(record: BaseModel) -> str:
    """The output kind (``schemas.topics``) a published record goes to."""
    return OUTPUT_KIND[type(record)]


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


def serialize_batch(boundary: Boundary) -> Callable[[list], list[tuple[str, bytes | None, bytes]]]:
    """``serialize`` over a batch, behind ``boundary`` (give it ``owns=accounts_for_input``): a record
    that cannot be serialised is replaced by the ``internal_error`` dead letter of its input when it
    accounts for one, and counted and logged otherwise."""

    def batch(records: list) -> list[tuple[str, bytes | None, bytes]]:
        out = []
        for record in records:
            try:
                out.append(serialize(record))
            except Exception as error:  # noqa: BLE001 - the step's error boundary
                for letter in boundary.failed(record, error):
                    with contextlib.suppress(Exception):  # counted and logged by failed() already
                        out.append(serialize(letter))
            else:
                boundary.passed()
        return out

    return batch


def accounts_for_input(record: object) -> bool:
    """Whether a published record is its input's one decision or dead letter (or a feedback's click)."""
    return isinstance(record, Decision | KnowledgeDecision | DeadLetter) or (
        isinstance(record, Acceptance) and record.mode == "click")


def show(suggestion: Suggestion, out: TextIO | None = None) -> None:
    """One readable line per suggestion, for people watching the embedded run (never raises)."""
    try:
        suggestion = scrub(suggestion)
        alternatives = ", ".join(c.action for c in suggestion.alternatives)
        print(
            f"{suggestion.conversation_id:<12} {suggestion.channel:<5} after {suggestion.event_id}: "
            f"{suggestion.action} ({suggestion.confidence:.0%}) \u2192 \"{suggestion.text}\""
            + (f"  [also: {alternatives}]" if alternatives else ""),
            file=out or sys.stdout,
            flush=False,
        )
    except Exception:  # noqa: BLE001 - a line a terminal cannot print is not worth stopping for
        pass
