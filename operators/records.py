"""Builders for published records: deterministic ids and dead letters.

Ids are UUIDv5 over the inputs that define a record, so replaying the same
input with the same model and policy reproduces the same ids and consumers can
drop duplicates by id.

Dead letters keep the input's bytes for forensics, with personal data masked
(every kind the redactor knows, whatever the policy says: a refused record
is the least trusted). A payload that cannot be shown safely (personal data
hidden in JSON escapes of a malformed record, or anything masking fails on)
is withheld: building a dead letter never raises.

A dead letter's ``detail`` is the job's own sentence, kept as written so an
operator can read it (expectation ids, step names, numbers); the untrusted
parts a caller puts in it (ids, keys, field names) go through ``mask_text``,
and exception messages through ``mask_message``.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import re
import uuid
from datetime import UTC, datetime

from operators.envelope import Envelope, Origin
from operators.limits import JsonLimits, check_shape
from operators.pii import STRICT_KINDS, Redactor
from schemas import CustomerContext, DeadLetter, FieldError

_NAMESPACE = uuid.UUID("6f1c7d0e-4b8a-5c39-9a51-3a0f2f7c2b10")
_NAMESPACE_BYTES = _NAMESPACE.bytes
#: Every kind ``operators.pii`` knows, and names and streets said with no cue: for dead letters.
STRICT = Redactor(frozenset(STRICT_KINDS), uncued=True)
#: For the contracts' structural fields (ids, times, enums) and the job's own messages: every
#: kind, but a bare number only where a keyword names it ("account 1234"); other numbers stay.
SHAPED = Redactor(frozenset(STRICT_KINDS), min_digits=99)
#: For untrusted structural text (a refused record's ids, times and enums, the ids our messages quote):
#: ``SHAPED``, and names with no cue too (an id is never a person's name; numbers in it stay readable).
#: A refused record's field names get ``STRICT``: a field name worth reading has no digits.
IDS = Redactor(frozenset(STRICT_KINDS), min_digits=99, uncued=True)
STRUCTURAL = frozenset((
    "schema_version", "type", "event_id", "conversation_id", "customer_id", "agent_id", "channel",
    "event_time", "updated_at", "sequence", "speaker", "is_final", "action", "tasks", "task", "api",
    "total_items", "reason", "tier", "marketing_opt_out", "recording_consent", "jurisdiction",
    "language", "open_cases",
))
_ESCAPE = re.compile(r"\\u([0-9a-fA-F]{4})")
_UNPARSED = object()


def stable_id(kind: str, *parts: object) -> str:
    """A UUIDv5 over ``kind`` and ``parts``: same inputs, same id.

    Exactly ``str(uuid.uuid5(namespace, name))``, without building a ``UUID``
    (cheaper, and every decision and suggestion takes one).
    """
    digest = bytearray(
        hashlib.sha1(_NAMESPACE_BYTES + "|".join((kind, *map(str, parts))).encode()).digest()[:16]
    )
    digest[6] = (digest[6] & 0x0F) | 0x50  # version 5
    digest[8] = (digest[8] & 0x3F) | 0x80  # RFC 4122 variant
    x = digest.hex()
    return f"{x[:8]}-{x[8:12]}-{x[12:16]}-{x[16:20]}-{x[20:]}"


def utc_from_ns(ns: int) -> datetime:
    return datetime.fromtimestamp(ns / 1e9, tz=UTC)


def _mask_json(value, found: list[str], redactor: Redactor = STRICT):
    if isinstance(value, str):
        clean, kinds = redactor.redact(value)
        found += kinds
        return clean
    if isinstance(value, list):
        return [_mask_json(v, found, redactor) for v in value]
    if isinstance(value, dict):
        return {
            _mask_json(k, found, STRICT): _mask_json(v, found, IDS if k in STRUCTURAL else STRICT)
            for k, v in value.items()
        }
    return value


def _unique(pairs: list[tuple[str, object]]) -> dict:
    """An object whose keys are unique; a repeated key would hide its other values from masking
    (``json.loads`` keeps the last), so such a payload is masked as text."""
    obj = dict(pairs)
    if len(obj) < len(pairs):
        raise ValueError("repeated key")
    return obj


#: JSON beyond these is masked as text: ``json.loads`` and ``_mask_json`` recurse.
_MASKABLE = JsonLimits(depth=64, keys=100_000, items=1_000_000, string_chars=1 << 30)


def mask_payload(payload: bytes) -> tuple[bytes, list[str], str]:
    """``payload`` with personal data masked: (bytes, kinds masked, form). Never raises:
    a payload that masking fails on is withheld."""
    try:
        return _mask_payload(payload)
    except Exception:  # noqa: BLE001 - show nothing rather than risk personal data, and never stop
        return b"", [], "withheld"


def _mask_payload(payload: bytes) -> tuple[bytes, list[str], str]:
    try:
        text = payload.decode("utf-8")
        encoding = "utf-8"
    except UnicodeDecodeError:
        text, encoding = payload.decode("latin-1"), "latin-1"  # one char per byte: the rest stays
    found: list[str] = []
    parsed = _UNPARSED
    if check_shape(payload, _MASKABLE) is None:
        with contextlib.suppress(ValueError):  # not JSON: masked as text
            parsed = json.loads(text, object_pairs_hook=_unique)
    if parsed is not _UNPARSED:
        masked = _mask_json(parsed, found)
        if masked == parsed and "\\u" not in text:
            return payload, [], "original"
        return json.dumps(masked, ensure_ascii=False).encode(), found, "canonical"
    if "\\u" in text:
        unescaped = _ESCAPE.sub(lambda m: chr(int(m.group(1), 16)), text)
        if STRICT.redact(unescaped)[1]:
            return b"", ["escaped"], "withheld"
    clean, found = STRICT.redact(text)
    return clean.encode(encoding, "replace"), found, "original"


def mask_text(text: str | None) -> str | None:
    """Untrusted structural text (record keys, ids, field names) as quoted in our own messages:
    personal data masked (``IDS``: a bare number only where a keyword names it, names with no cue too)."""
    return None if text is None else IDS.redact(text)[0]


def mask_message(error: BaseException, limit: int = 500) -> str:
    """An exception's message, which may quote input: every kind of personal data masked, cut at ``limit``."""
    try:
        text = str(error)
    except Exception:  # noqa: BLE001 - a message that cannot be rendered says nothing
        return ""
    return STRICT.redact(text[: limit * 4])[0][:limit]


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
    form: str = "original",
    step: str | None = None,
    error_type: str | None = None,
) -> DeadLetter:
    """A dead letter carrying the input's bytes, masked and cut at ``payload_limit``.

    ``detail`` is kept as given (see the module docstring); ``payload_size`` is the
    record's full size when ``payload`` is only its head; ``step`` and ``error_type``
    say where an ``internal_error`` happened and what was raised.
    """
    payload = payload or b""
    size = len(payload) if payload_size is None else payload_size
    digest = hashlib.sha256(payload).hexdigest()
    kept = payload[:payload_limit]
    if form == "original":
        kept, masked, form = mask_payload(kept)
    else:
        kept, masked = mask_payload(kept)[:2]
    return DeadLetter.trusted(
        schema_version="1.1",
        dead_letter_id=stable_id("dead_letter", origin.describe(), reason, event_id or ""),
        received_at=utc_from_ns(received_ns),
        source=origin.ref(),
        reason=reason,
        detail=detail,
        errors=errors or [],
        key=None if key is None else mask_text(key.decode("utf-8", "replace")[:256]),
        payload_b64=base64.b64encode(kept).decode("ascii"),
        payload_form=form,
        payload_masked=sorted(set(masked)),
        payload_bytes=size,
        payload_sha256=digest,
        payload_truncated=len(payload) > payload_limit,
        event_id=event_id,
        conversation_id=conversation_id,
        customer_id=customer_id,
        step=step,
        error_type=error_type,
    )


def refuse_quality(envelope: Envelope, verdict, payload_limit: int) -> DeadLetter:
    """The dead letter of a record that failed a critical data-quality expectation."""
    return refuse(
        envelope,
        "quality_check_failed",
        f"failed {', '.join(verdict.critical)} ({verdict.suite})",
        payload_limit,
    )


def refuse(
    envelope: Envelope, reason: str, detail: str, payload_limit: int, *,
    step: str | None = None, error_type: str | None = None,
) -> DeadLetter:
    """The dead letter of a parsed input that a later step refused.

    Its payload is the parsed record re-serialised: the record as the job kept
    it, PII already masked (the original bytes are not kept after parsing, so
    neither held inputs nor recovery snapshots hold personal data). A record
    that cannot be re-serialised is withheld.
    """
    record = envelope.record
    try:
        payload, form = record.model_dump_json().encode(), "canonical"
    except Exception:  # noqa: BLE001 - the dead letter must still be written
        payload, form = b"", "withheld"
    return dead_letter(
        origin=envelope.origin,
        reason=reason,
        detail=detail,
        payload=payload,
        received_ns=envelope.received_ns,
        payload_limit=payload_limit,
        key=envelope.key,
        event_id=None if isinstance(record, CustomerContext) else envelope.input_id,
        conversation_id=getattr(record, "conversation_id", None),
        customer_id=getattr(record, "customer_id", None),
        form=form,
        step=step,
        error_type=error_type,
    )
