"""Builders for published records: deterministic ids and dead letters.

Ids are UUIDv5 over the inputs that define a record, so replaying the same
input with the same model and policy reproduces the same ids and consumers can
drop duplicates by id.
"""

from __future__ import annotations

import base64
import hashlib
import uuid
from datetime import datetime, timezone

from operators.envelope import Envelope, Origin
from schemas import DeadLetter, FieldError

_NAMESPACE = uuid.UUID("6f1c7d0e-4b8a-5c39-9a51-3a0f2f7c2b10")


def stable_id(kind: str, *parts: object) -> str:
    """A UUIDv5 over ``kind`` and ``parts``: same inputs, same id."""
    return str(uuid.uuid5(_NAMESPACE, "|".join((kind, *map(str, parts)))))


def utc_from_ns(ns: int) -> datetime:
    return datetime.fromtimestamp(ns / 1e9, tz=timezone.utc)


def dead_letter(
    *,
    origin: Origin,
    reason: str,
    detail: str,
    payload: bytes | None,
    received_ns: int,
    payload_limit: int,
    key: bytes | None = None,
    errors: list[FieldError] | None = None,
    event_id: str | None = None,
    conversation_id: str | None = None,
    customer_id: str | None = None,
    payload_size: int | None = None,
) -> DeadLetter:
    """A dead letter carrying the original bytes (cut at ``payload_limit``).

    ``payload_size`` is the record's full size when ``payload`` is only its head.
    """
    payload = payload or b""
    kept = payload[:payload_limit]
    size = len(payload) if payload_size is None else payload_size
    return DeadLetter.model_construct(
        schema_version="1.0",
        dead_letter_id=stable_id("dead_letter", origin.describe(), reason, event_id or ""),
        received_at=utc_from_ns(received_ns),
        source=origin.ref(),
        reason=reason,
        detail=detail,
        errors=errors or [],
        key=None if key is None else key.decode("utf-8", "replace")[:256],
        payload_b64=base64.b64encode(kept).decode("ascii"),
        payload_bytes=size,
        payload_sha256=hashlib.sha256(payload).hexdigest(),
        payload_truncated=len(kept) < size,
        event_id=event_id,
        conversation_id=conversation_id,
        customer_id=customer_id,
    )


def refuse(envelope: Envelope, reason: str, detail: str, payload_limit: int) -> DeadLetter:
    """The dead letter of a parsed input that a later step refused."""
    record = envelope.record
    return dead_letter(
        origin=envelope.origin,
        reason=reason,
        detail=detail,
        payload=envelope.payload,
        received_ns=envelope.received_ns,
        payload_limit=payload_limit,
        key=envelope.key,
        event_id=getattr(record, "event_id", None),
        conversation_id=getattr(record, "conversation_id", None),
        customer_id=record.customer_id,
    )
