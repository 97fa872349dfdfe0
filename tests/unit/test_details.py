"""Dead letters say what failed in the job's own words: expectation ids, step names, field names and
numbers stay as written; only what came with the input (ids, keys, field names, messages) is masked."""

from __future__ import annotations

import json

import pytest

from operators.acceptance import AcceptanceConfig, AcceptanceLogic
from operators.boundary import Boundary
from operators.conversation import ConversationConfig, ConversationLogic
from operators.join import ContextJoinLogic, JoinConfig
from operators.parse import ParseLimits, parse_record
from operators.quality import Gate, load_suites
from operators.records import refuse_quality
from schemas import DeadLetter
from tests.helpers import Clock, context, envelope, event, raw
from tests.unit.test_acceptance import feedback

FILE = ParseLimits(check_keys=False)
KAFKA = ParseLimits(check_keys=True)


def parsed(value, stream: str = "any", key: bytes | None = None, limits: ParseLimits = FILE) -> DeadLetter:
    result = parse_record(raw(value, stream=stream, key=key), limits, received_ns=1)
    assert isinstance(result, DeadLetter), result
    return result


@pytest.mark.parametrize(
    ("value", "stream", "key", "reason", "detail"),
    [
        (
            b'{"type":"turn",',
            "any",
            None,
            "malformed_json",
            "Invalid JSON: EOF while parsing a value at line 1 column 15",
        ),
        (
            b"\xff\xfe{}",
            "any",
            None,
            "invalid_encoding",
            "payload is not UTF-8: invalid start byte at byte 0",
        ),
        (b"  ", "any", None, "empty_payload", "the record has no value"),
        (b"[" * 40, "any", None, "too_deeply_nested", "nested deeper than 32 levels at byte 32"),
        (
            json.dumps({k: 1 for k in map(str, range(1100))}).encode(),
            "any",
            None,
            "too_many_keys",
            "more than 1024 object keys",
        ),
        (json.dumps(list(range(5000))).encode(), "any", None, "too_many_items", "more than 4096 array items"),
        (
            json.dumps({"t": "x" * 33_000}).encode(),
            "any",
            None,
            "string_too_long",
            "a string of 33000 characters at byte 6; the limit is 32768",
        ),
        (
            {k: v for k, v in event().items() if k != "text"},
            "any",
            None,
            "missing_field",
            "text: Field required",
        ),
        (
            {**event(), "sentiment": "sad"},
            "any",
            None,
            "unknown_field",
            "sentiment: Extra inputs are not permitted",
        ),
        (
            {**event(), "my card 4111 1111 1111 1111": 1},
            "any",
            None,
            "unknown_field",
            "my card [CARD_NUMBER]: Extra inputs are not permitted",
        ),
        (
            {**event(), "channel": "fax"},
            "any",
            None,
            "unknown_enum_value",
            "channel: Input should be 'voice' or 'chat'",
        ),
        (
            {**event(), "schema_version": "2.0"},
            "any",
            None,
            "unsupported_schema_version",
            "schema_version: Input should be '1.0'",
        ),
        (
            {**event(), "event_id": "has spaces"},
            "any",
            None,
            "schema_violation",
            "event_id: String should match pattern '^[A-Za-z0-9][A-Za-z0-9._:@/-]*$'",
        ),
        (
            {**event(), "event_time": "9999-12-31T23:59:59-14:00"},
            "any",
            None,
            "schema_violation",
            "event_time: the time is outside the years 1 to 9999 in UTC",
        ),
        (
            {**event(), "text": "a\x07b"},
            "any",
            None,
            "invalid_text",
            "text: text contains control characters or bidirectional overrides",
        ),
        (
            {**event(), "text": "w " * 2500},
            "any",
            None,
            "text_too_long",
            "text has 5000 characters, the limit is 4000",
        ),
        (
            context(),
            "events",
            b"u-1",
            "wrong_topic",
            "a customer_context record on the conversation events topic",
        ),
        (event(), "events", None, "missing_key", "the record must be keyed by 'c-1'"),
        (event(), "events", b"jo@example.com", "key_mismatch", "key '[EMAIL]' is not 'c-1'"),
    ],
)
def test_each_parse_reason_has_its_detail(value, stream, key, reason, detail) -> None:
    letter = parsed(value, stream, key, KAFKA if stream != "any" else FILE)
    assert (letter.reason, letter.detail) == (reason, detail)


def test_the_quality_gates_name_the_expectation_and_suite_as_written() -> None:
    gate = Gate(load_suites())
    future = envelope(event(event_time="2099-01-01T00:00:00Z"), received_ns=1_700_000_000 * 10**9)
    from operators.quality import quality_row, suite_of

    verdict = gate.judge(suite_of(future), quality_row(future))
    letter = refuse_quality(future, verdict, 65_536)
    assert letter.detail == "failed events.event_time.not_future (conversation_events@1.0.0)"


def test_the_stateful_steps_details() -> None:
    clock = Clock()
    conversation = ConversationLogic(ConversationConfig(allowed_lateness_s=30), now_getter=clock)
    conversation.on_item(envelope(event(seq=1, t=100)))
    [dup], _ = conversation.on_item(envelope(event(seq=1, t=100)))
    [late], _ = conversation.on_item(envelope(event(seq=2, t=10, event_id="c-1-late")))
    assert dup.detail == "event c-1-1 seen before"
    assert (
        late.detail == "event time is 90.0s behind the conversation's newest event; allowed lateness is 30s"
    )

    join = ContextJoinLogic(JoinConfig(), now_getter=clock)
    join.on_item(envelope(context(t=60)))
    [stale], _ = join.on_item(envelope(context(t=0)))
    [again], _ = join.on_item(envelope(context(t=60)))
    assert stale.detail == ("updated_at 2026-03-02T14:00:00.000000Z is older than the current "
                            "2026-03-02T14:01:00.000000Z")
    assert again.detail == "the context as of 2026-03-02T14:01:00.000000Z again"

    acceptance = AcceptanceLogic(AcceptanceConfig(wait_s=0), now_getter=clock)
    [unknown], _ = acceptance.on_item(feedback("fb-1", "s-404"))  # waits 0 s for its suggestion
    assert (
        unknown.detail
        == "suggestion s-404 was not shown in conversation c-1 within 0s (or is older than the feedback TTL)"
    )


def test_an_internal_error_names_the_step_and_the_exception() -> None:
    [letter] = Boundary("guardrails").failed(envelope(event()), KeyError("rule 42 for ann@example.com"))
    assert letter.detail == "guardrails failed: KeyError: 'rule 42 for [EMAIL]'"
    assert (letter.step, letter.error_type) == ("guardrails", "KeyError")


def test_log_lines_keep_digests_and_uuids_and_mask_the_numbers_beside_them() -> None:
    # A policy's sha256 and a decision's UUID hold digit runs a phone or an account number pass would take.
    from operators.privacy import scrub_text

    digest = "75e8f39505bddc0ccbf45f95fac94bf62d64e23910a3838e4155551234efe123"
    uuid = "e2ab6aa6-a70a-5ed9-8684-b886032d30df"
    line = f"policy permissive 9.9.9 (sha256:{digest}) in force, decision {uuid}, phone 415 555 1234"
    assert scrub_text(line) == (
        f"policy permissive 9.9.9 (sha256:{digest}) in force, decision {uuid}, phone [PHONE]")
    # Only digests' exact shapes: a card number glued into other hex is still a card number.
    assert scrub_text("ref deadbeef4111111111111111deadbeef99") == "ref deadbeef[CARD_NUMBER]deadbeef99"
