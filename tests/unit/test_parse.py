"""Dead-letter reasons at the parse gate, and the parse operator in a dataflow."""

from __future__ import annotations

import base64
import hashlib
import json

import bytewax.operators as op
import pytest
from bytewax.dataflow import Dataflow
from bytewax.testing import TestingSink, TestingSource, run_main

from operators.envelope import Envelope
from operators.parse import ParseLimits, parse_record, parse_records
from schemas import DeadLetter, Turn
from tests import badcorpus
from tests.helpers import context, event, raw

KAFKA = ParseLimits(check_keys=True)
FILE = ParseLimits(check_keys=False)


def refuse(record, stream="any", key=None, limits=FILE) -> DeadLetter:
    result = parse_record(raw(record, stream=stream, key=key), limits, received_ns=1)
    assert isinstance(result, DeadLetter), f"expected a dead letter, got {result!r}"
    return result


def test_a_valid_turn_parses_into_an_envelope():
    result = parse_record(raw(event()), FILE, received_ns=7)
    assert isinstance(result, Envelope)
    assert isinstance(result.record, Turn) and result.record.text == "I need my balance"
    assert result.received_ns == 7


def test_text_is_nfkc_normalised_and_zero_width_characters_removed():
    result = parse_record(raw(event(text="room \uff14\uff13 for two\u200b please")), FILE, 1)
    assert result.record.text == "room 43 for two please"


def test_personal_data_is_masked_at_the_gate():
    result = parse_record(
        raw(event(text="my card is 4111 1111 1111 1111, mail me at ann@example.com")), FILE, 1
    )
    assert result.record.text == "my card is [CARD_NUMBER], mail me at [EMAIL]"
    assert result.masked == ["text:email", "text:card_number"]


@pytest.mark.parametrize(
    "payload, reason",
    [
        (b'{"type": "turn"', "malformed_json"),
        (b"not json at all", "malformed_json"),
        (b"\xc3\x28{}", "invalid_encoding"),
        (b"", "empty_payload"),
        (b"[]", "schema_violation"),
    ],
)
def test_unparseable_bytes(payload, reason):
    assert refuse(payload).reason == reason


@pytest.mark.parametrize(
    "mutate, reason, field",
    [
        (lambda r: r.pop("text"), "missing_field", "text"),
        (lambda r: r.pop("conversation_id"), "missing_field", "conversation_id"),
        (lambda r: r.update(mood="sad"), "unknown_field", "mood"),
        (lambda r: r.update(channel="fax"), "unknown_enum_value", "channel"),
        (lambda r: r.update(speaker="robot"), "unknown_enum_value", "speaker"),
        (lambda r: r.update(schema_version="9.9"), "unsupported_schema_version", "schema_version"),
        (lambda r: r.update(text="hi\x07there"), "invalid_text", "text"),
        (lambda r: r.update(text="x" * 16_001), "text_too_long", "text"),
        (lambda r: r.update(sequence=-5), "schema_violation", "sequence"),
        (lambda r: r.update(event_time="2026-01-01T10:00:00"), "schema_violation", "event_time"),
    ],
)
def test_schema_violations_name_the_field(mutate, reason, field):
    record = event()
    mutate(record)
    letter = refuse(record)
    assert letter.reason == reason
    assert any(e.loc == field for e in letter.errors), letter.errors
    assert field in letter.detail


def test_a_type_nobody_knows_is_an_unknown_enum_value():
    assert refuse(event(type="hold_music")).reason == "unknown_enum_value"


def test_a_missing_type_is_a_missing_field():
    record = event()
    del record["type"]
    assert refuse(record).reason == "missing_field"


def test_configured_text_limit():
    limits = ParseLimits(max_text_chars=10, check_keys=False)
    letter = refuse(event(text="eleven chars"), limits=limits)
    assert letter.reason == "text_too_long" and "limit is 10" in letter.detail
    assert letter.event_id == "c-1-1" and letter.conversation_id == "c-1"


def test_oversized_payload_keeps_head_size_and_hash():
    limits = ParseLimits(max_payload_bytes=300, check_keys=False)
    payload = json.dumps(event(text="y" * 1000)).encode()
    letter = refuse(payload, limits=limits)
    assert letter.reason == "payload_too_large"
    assert letter.payload_bytes == len(payload)
    assert letter.payload_truncated
    head = base64.b64decode(letter.payload_b64)
    assert head.startswith(b'{"schema_version": "1.0", "type": "turn"') and head.endswith(b"yyyy")
    assert letter.payload_sha256 == hashlib.sha256(payload).hexdigest()


def test_dead_letter_carries_source_position_and_original_bytes():
    payload = b'{"broken": '
    letter = parse_record(raw(payload), FILE, received_ns=1_700_000_000_000_000_000)
    assert letter.source.kind == "file" and letter.source.file == "test.jsonl" and letter.source.line >= 1
    assert base64.b64decode(letter.payload_b64) == payload and not letter.payload_truncated
    assert letter.received_at.year == 2023
    DeadLetter.model_validate_json(letter.model_dump_json())  # a valid contract record


def test_kafka_keys_and_topics():
    record = event()
    assert refuse(record, "events", key=None, limits=KAFKA).reason == "missing_key"
    assert refuse(record, "events", key=b"c-2", limits=KAFKA).reason == "key_mismatch"
    assert refuse(context(), "events", key=b"u-1", limits=KAFKA).reason == "wrong_topic"
    assert refuse(record, "context", key=b"u-1", limits=KAFKA).reason == "wrong_topic"
    assert refuse(context(), "context", key=b"u-2", limits=KAFKA).reason == "key_mismatch"
    ok = parse_record(raw(context(), stream="context", key=b"u-1"), KAFKA, 1)
    assert isinstance(ok, Envelope)


def test_co_partitioned_topics_key_events_by_customer():
    """COACH_INPUT_KEY=customer: events carry the customer's key (as context does), not a conversation's."""
    by_customer = ParseLimits(check_keys=True, key_by="customer")
    record = event(conversation="c-1", customer="u-1")
    assert isinstance(parse_record(raw(record, stream="events", key=b"u-1"), by_customer, 1), Envelope)
    letter = refuse(record, "events", key=b"c-1", limits=by_customer)
    assert letter.reason == "key_mismatch" and "'u-1'" in letter.detail
    assert refuse(record, "events", key=None, limits=by_customer).reason == "missing_key"
    assert refuse(context(), "context", key=b"c-1", limits=by_customer).reason == "key_mismatch"
    # Feedback names no customer: its key must be there, its value cannot be checked.
    feedback = {"type": "feedback", "feedback_id": "f1", "suggestion_id": "s1", "conversation_id": "c-1",
                "agent_id": "a-1", "event": "accepted", "at": "2026-04-01T09:00:00Z"}
    assert isinstance(parse_record(raw(feedback, stream="feedback", key=b"u-9"), by_customer, 1), Envelope)
    missing = refuse(feedback, "feedback", key=None, limits=by_customer)
    assert missing.reason == "missing_key" and "customer id" in missing.detail


def test_a_source_error_becomes_a_dead_letter():
    from dataclasses import replace

    broken = replace(raw(event()), error="Broker: Message corrupt")
    letter = parse_record(broken, FILE, 1)
    assert letter.reason == "source_error" and "corrupt" in letter.detail


def test_every_self_contained_bad_record_of_the_corpus_gets_its_reason():
    valid = [context(), event("conversation_start", seq=0), event(seq=1), event(seq=2)]
    corpus = [b for b in badcorpus.build(valid) if b.after is None]
    assert len(corpus) >= 40
    for bad in corpus:
        limits = KAFKA if bad.kafka_only else FILE
        stream = bad.stream if bad.kafka_only else "any"
        result = parse_record(raw(bad.value, stream=stream, key=bad.key), limits, 1)
        assert isinstance(result, DeadLetter), bad
        assert result.reason == bad.reason, (bad.value[:80], result.reason, result.detail)


def test_parse_operator_splits_oks_and_errs():
    inp = [raw(event()), raw(b"{oops"), raw(context())]
    oks: list = []
    errs: list = []
    flow = Dataflow("parse_test")
    parsed = parse_records("parse", op.input("in", flow, TestingSource(inp)), FILE)
    op.output("oks", parsed.oks, TestingSink(oks))
    op.output("errs", parsed.errs, TestingSink(errs))
    run_main(flow)
    assert [type(e.record).__name__ for e in oks] == ["Turn", "CustomerContext"]
    assert [e.reason for e in errs] == ["malformed_json"]


def test_stable_ids_are_uuid5() -> None:
    """Decision, suggestion and dead-letter ids are RFC 4122 UUIDv5s of their parts."""
    import uuid

    from operators.records import _NAMESPACE, stable_id

    for kind, parts in [("decision", ("conv-1", "evt-7", "coach-1.0.0", "p@1")), ("dead_letter", ()),
                        ("suggestion", ("é", 3, None, 2.5)), ("acceptance", ("x" * 300,))]:
        expected = uuid.uuid5(_NAMESPACE, "|".join((kind, *map(str, parts))))
        assert stable_id(kind, *parts) == str(expected)
        assert uuid.UUID(stable_id(kind, *parts)).version == 5
