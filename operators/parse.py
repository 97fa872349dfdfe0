"""Parse raw input bytes into contract records; refuse the rest with a reason.

Every refused input becomes a ``DeadLetter`` carrying its bytes (personal
data masked), its source position and a machine-readable ``reason``; nothing
raises inside the stream. Accepted turns and knowledge-base results have
personal data masked here, before any later step, state or output sees them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any, Literal

import bytewax.operators as op
from bytewax.dataflow import Stream, operator
from pydantic import Field, TypeAdapter, ValidationError
from pydantic_core import ErrorDetails

from operators.boundary import Boundary, split_dead_letters
from operators.envelope import Envelope, RawRecord, now_ns
from operators.keys import key_field
from operators.limits import JsonLimits, check_shape
from operators.pii import FAST, Redactor
from operators.records import STRICT, dead_letter, mask_text
from schemas import (
    CONTEXT_ADAPTER,
    EVENT_ADAPTER,
    ConversationEnd,
    ConversationStart,
    CustomerContext,
    DeadLetter,
    Feedback,
    FieldError,
    KbResult,
    TaskSelected,
    Turn,
)

#: Embedded mode: one JSONL file interleaves events, context and UI feedback.
ANY_ADAPTER: TypeAdapter = TypeAdapter(Annotated[
    ConversationStart | Turn | TaskSelected | KbResult | ConversationEnd | CustomerContext | Feedback,
    Field(discriminator="type"),
])
FEEDBACK_ADAPTER: TypeAdapter = TypeAdapter(Feedback)
_ADAPTERS: dict[str, TypeAdapter] = {
    "events": EVENT_ADAPTER,
    "context": CONTEXT_ADAPTER,
    "feedback": FEEDBACK_ADAPTER,
    "any": ANY_ADAPTER,
}
_EVENT_TYPES = frozenset(
    ("conversation_start", "turn", "task_selected", "kb_result", "conversation_end")
)
_TAGS = _EVENT_TYPES | {"customer_context", "feedback"}
#: Names a location may hold that are the contracts' own; any other name in it came with the input.
_FIELDS = (
    frozenset(
        name
        for model in (
            ConversationStart,
            Turn,
            TaskSelected,
            KbResult,
            ConversationEnd,
            CustomerContext,
            Feedback,
        )
        for name in model.model_fields
    )
    | _TAGS
    | {"str", "int", "float", "bool", "list[str]", "none", "constrained-str"}
)
_MAX_ERRORS = 20
#: How much of an unknown tag a message keeps, once masked.
_TAG_CHARS = 64


@dataclass(frozen=True)
class ParseLimits:
    """Bounds on input records; see ``COACH_MAX_PAYLOAD_BYTES``, ``COACH_MAX_TEXT_CHARS``."""

    max_payload_bytes: int = 65_536
    max_text_chars: int = 4_000
    json: JsonLimits = JsonLimits()
    """Bounds on the JSON's shape, checked on the raw bytes before anything parses them."""
    check_keys: bool = True
    """Kafka mode: the record key must equal the conversation or customer id."""
    key_by: Literal["conversation", "customer"] = "conversation"
    """What events and feedback are keyed by (``COACH_INPUT_KEY``); context is always keyed by customer."""


def expected_key(record, stream: str, key_by: str) -> str | None:
    """The Kafka key a record of ``stream`` must have (``operators.keys.key_field``), or None where the
    record does not hold it: feedback names no customer, so by customer only its key's presence is checked."""
    return getattr(record, key_field(stream, key_by), None)


def _loc(loc: tuple) -> str:
    """A pydantic error location as a dotted path; names the input brought (unknown fields, item keys)
    are masked, since a producer can put anything in them."""
    parts = [str(p) if isinstance(p, int) or p in _FIELDS else STRICT.redact(str(p))[0] for p in loc]
    # Discriminated unions prefix the location with the tag; drop it.
    if parts and parts[0] in _TAGS:
        parts = parts[1:]
    return ".".join(parts) or "$"


def _msg(error: ErrorDetails) -> str:
    """Pydantic's message; the one kind quoting the input (a discriminator's unknown tag) has it masked."""
    tag = (error.get("ctx") or {}).get("tag")
    if tag is None:
        return error["msg"]
    tag = str(tag)
    # Masked whole, then cut: a value cut first ("... at mailhost dot n") no longer looks like one.
    masked = mask_text(tag) or ""
    return error["msg"].replace(tag, masked[:_TAG_CHARS] + ("..." if len(masked) > _TAG_CHARS else ""))


def classify(error: ValidationError, stream: str, payload: bytes) -> tuple[str, str, list[FieldError]]:
    """Map pydantic errors to one dead-letter reason, a detail line and the error list."""
    raw: list[dict[str, Any]] = [
        {**e, "msg": _msg(e)} for e in error.errors(include_url=False, include_input=False)
    ]
    errors = [FieldError(loc=_loc(e["loc"]), type=e["type"], msg=e["msg"]) for e in raw[:_MAX_ERRORS]]
    first = raw[0]
    kinds = {e["type"] for e in raw}
    if "json_invalid" in kinds:
        try:
            payload.decode("utf-8")
        except UnicodeDecodeError as exc:
            return "invalid_encoding", f"payload is not UTF-8: {exc.reason} at byte {exc.start}", errors
        return "malformed_json", first["msg"], errors
    if first["type"] in ("dict_type", "model_type", "model_attributes_type"):
        return "schema_violation", "payload is not a JSON object", errors
    tag = (first.get("ctx") or {}).get("tag")
    if (
        stream == "events"
        and first["type"] == "union_tag_invalid"
        and tag in ("customer_context", "feedback")
    ):
        return "wrong_topic", f"a {tag} record on the conversation events topic", errors
    if stream in ("context", "feedback"):
        wrong = [e for e in raw if e["loc"] == ("type",) and e["type"] == "literal_error"]
        if wrong:
            return "wrong_topic", f"another record type on the {stream} topic", errors
    by_priority = (
        ("unsupported_schema_version", lambda e: e["loc"][-1:] == ("schema_version",)),
        ("missing_field", lambda e: e["type"] in ("missing", "union_tag_not_found")),
        ("unknown_field", lambda e: e["type"] == "extra_forbidden"),
        ("unknown_enum_value", lambda e: e["type"] in ("literal_error", "enum", "union_tag_invalid")),
        ("invalid_text", lambda e: e["type"] == "invalid_text"),
        ("text_too_long", lambda e: e["type"] == "string_too_long" and e["loc"][-1:] == ("text",)),
    )
    for reason, matches in by_priority:
        hits = [e for e in raw if matches(e)]
        if hits:
            hit = hits[0]
            fields = ", ".join(sorted({_loc(e["loc"]) for e in hits}))
            return reason, f"{fields}: {hit['msg']}", errors
    return "schema_violation", f"{_loc(first['loc'])}: {first['msg']}", errors


def mask_record(record, redactor: Redactor):
    """``record`` with personal data masked in its free text; and what changed, as ``field:kind``."""
    if isinstance(record, Turn):
        text, kinds = redactor.redact(record.text)
        if kinds:
            return record.model_copy(update={"text": text}), [f"text:{k}" for k in kinds]
        return record, []
    if isinstance(record, KbResult):
        masked: list[str] = []
        item: dict[str, object] = {}
        for key, value in record.item.items():
            if isinstance(value, str):
                clean, kinds = redactor.redact(value)
                masked += [f"item.{key}:{k}" for k in kinds]
                item[key] = clean
            elif isinstance(value, list):
                cleaned = [redactor.redact(v) for v in value]
                masked += [f"item.{key}:{k}" for _, kinds in cleaned for k in kinds]
                item[key] = [v for v, _ in cleaned]
            else:
                item[key] = value
        if masked:
            return record.model_copy(update={"item": item}), masked
    return record, []


def parse_record(
    raw: RawRecord, limits: ParseLimits, received_ns: int, redactor: Redactor = FAST
) -> Envelope | DeadLetter:
    """Parse one raw input into an ``Envelope`` (PII masked), or refuse it as a ``DeadLetter``."""
    payload = raw.value or b""

    def refuse(reason: str, detail: str, errors: list[FieldError] | None = None, record=None):
        return dead_letter(
            origin=raw.origin,
            reason=reason,
            detail=detail,
            payload=payload,
            received_ns=received_ns,
            payload_limit=limits.max_payload_bytes,
            key=raw.key,
            errors=errors,
            event_id=getattr(record, "event_id", None),
            conversation_id=getattr(record, "conversation_id", None),
            customer_id=getattr(record, "customer_id", None),
            payload_size=raw.payload_bytes,
        )

    if raw.error is not None:
        return refuse("source_error", f"the source reported: {mask_text(raw.error)}")
    # Size first: a source keeps only the head of an over-long record; a blank head is no empty record.
    if raw.payload_bytes > limits.max_payload_bytes:
        return refuse(
            "payload_too_large",
            f"{raw.payload_bytes} bytes exceeds the limit of {limits.max_payload_bytes}",
        )
    if not payload.strip():
        return refuse("empty_payload", "the record has no value")
    shape = check_shape(payload, limits.json)
    if shape is not None:
        return refuse(shape.reason, shape.detail)
    try:
        record = _ADAPTERS[raw.stream].validate_json(payload)
    except ValidationError as error:
        reason, detail, errors = classify(error, raw.stream, payload)
        return refuse(reason, detail, errors)
    if isinstance(record, Turn) and len(record.text) > limits.max_text_chars:
        return refuse(
            "text_too_long",
            f"text has {len(record.text)} characters, the limit is {limits.max_text_chars}",
            record=record,
        )
    if limits.check_keys and raw.stream != "any":
        expected = expected_key(record, raw.stream, limits.key_by)
        if raw.key is None:
            wanted = repr(mask_text(expected)) if expected is not None else "its conversation's customer id"
            return refuse("missing_key", f"the record must be keyed by {wanted}", record=record)
        if expected is not None and raw.key != expected.encode():
            return refuse(
                "key_mismatch",
                f"key {mask_text(raw.key.decode('utf-8', 'replace')[:128])!r} is not {mask_text(expected)!r}",
                record=record,
            )
    record, masked = mask_record(record, redactor)
    return Envelope(record=record, origin=raw.origin, received_ns=received_ns, key=raw.key, masked=masked)


@dataclass(frozen=True)
class ParseOut:
    """Parsed inputs (``oks``) and refused ones (``errs``)."""

    oks: Stream[Envelope]
    errs: Stream[DeadLetter]


@operator
def parse_records(
    step_id: str,
    up: Stream[RawRecord],
    limits: ParseLimits,
    redactor_getter: Callable[[], Redactor] = lambda: FAST,
    boundary: Boundary | None = None,
    now_getter: Callable[[], int] = now_ns,
) -> ParseOut:
    """Parse raw inputs against the topic contracts.

    Oversized, empty, malformed, invalid or mis-keyed inputs go to ``errs``
    as dead letters with their original bytes; the stream keeps running.

    :arg step_id: Unique ID.
    :arg up: Raw records from Kafka or a JSONL file.
    :arg limits: Size and key checks.
    :arg redactor_getter: The PII redactor of the policy in force.
    :arg boundary: How a failure on one record becomes its dead letter (default: named after the step).
    :arg now_getter: Wall clock in nanoseconds (injected by tests).
    :returns: ``ParseOut(oks, errs)``.
    """
    boundary = boundary or Boundary(step_id, limits.max_payload_bytes)

    def parse_batch(batch: list[RawRecord]) -> list[Envelope | DeadLetter]:
        received = now_getter()
        redactor = redactor_getter()
        out: list[Envelope | DeadLetter] = []
        for raw in batch:
            try:
                out.append(parse_record(raw, limits, received, redactor))
            except Exception as error:  # noqa: BLE001 - the step's error boundary
                out += boundary.failed(raw, error)
            else:
                boundary.passed()
        return out

    parsed = op.flat_map_batch("parse", up, parse_batch)
    oks, errs = split_dead_letters("split", parsed, Envelope)
    return ParseOut(oks=oks, errs=errs)
