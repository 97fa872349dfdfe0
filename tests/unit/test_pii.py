"""PII masking: many forms and spacings; payloads of refused records."""

from __future__ import annotations

import base64
import json

import pytest

from operators.pii import Redactor, luhn_valid
from operators.records import mask_payload
from schemas._base import clean_text

R = Redactor()


@pytest.mark.parametrize(
    "text, kind",
    [
        ("my card is 4111 1111 1111 1111", "card_number"),
        ("card 4111-1111-1111-1111 exp 12/29", "card_number"),
        ("4111.1111.1111.1111", "card_number"),
        ("4 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1", "card_number"),
        ("amex 3782 822463 10005", "card_number"),
        (
            "\uff14\uff11\uff11\uff11\uff11\uff11\uff11\uff11\uff11\uff11\uff11\uff11\uff11\uff11\uff11\uff11",
            "card_number",
        ),
        (
            "\u0664\u0661\u0661\u0661\u0661\u0661\u0661\u0661\u0661\u0661\u0661\u0661\u0661\u0661\u0661\u0661",
            "card_number",
        ),
        ("ssn 123-45-6789", "ssn"),
        ("social security number: 123 45 6789", "ssn"),
        ("my social is 123456789", "ssn"),
        ("write to ann.lee+support@example.co.uk", "email"),
        ("ANN@EXAMPLE.COM", "email"),
        ("ann dot lee at example dot com", "email"),
        ("ann[at]example[dot]com", "email"),
        ("\u0430nn@ex\u0430mple.com", "email"),  # Cyrillic a: a look-alike address
        ("call (555) 123-4567", "phone"),
        ("555.123.4567", "phone"),
        ("+1 555 123 4567", "phone"),
        ("+44 20 7946 0958", "phone"),
        ("my pin is 1234", "pin"),
        ("PIN: 123", "pin"),
        ("the security code is 987", "pin"),
        ("account number 95381901", "account_number"),
        ("it is 95381901.", "account_number"),
        ("my pin might be 9 5 0 3", "pin"),
    ],
)
def test_personal_data_is_masked(text, kind):
    masked, kinds = R.redact(text)
    assert kind in kinds, (text, masked, kinds)
    digits = "".join(c for c in masked if c.isdigit())
    assert len(digits) < 3 or kind == "card_number" and "12/29" in text
    assert f"[{kind.upper()}]" in masked


@pytest.mark.parametrize(
    "text",
    ["at 4 pm on the 21st", "room 432 please", "I have 2 kids and 3 dogs", "meet me at the bar",
     "a table for 4 at 7:30", "thanks!"],
)
def test_ordinary_text_is_left_alone(text):
    assert R.redact(text) == (text, [])


def test_luhn():
    assert luhn_valid("4111111111111111") and not luhn_valid("4111111111111112")
    assert R.redact("4111111111111112")[1] == ["account_number"]  # not a card, still masked


def test_zero_width_characters_cannot_split_a_number():
    text = clean_text("4111\u200b1111\u200b1111\u200b1111")
    assert R.redact(text)[1] == ["card_number"]


def test_the_policy_chooses_the_kinds():
    only_email = Redactor(frozenset({"email"}))
    assert only_email.redact("a@b.com 4111 1111 1111 1111") == ("[EMAIL] 4111 1111 1111 1111", ["email"])


def test_payloads_of_refused_records_are_masked():
    body = {"type": "turn", "text": "card 4111 1111 1111 1111", "event_time": "2026-01-05T09:00:00Z", "x": 1}
    masked, kinds, form = mask_payload(json.dumps(body).encode())
    back = json.loads(masked)
    assert back["text"] == "card [CARD_NUMBER]" and back["event_time"] == "2026-01-05T09:00:00Z"
    assert kinds == ["card_number"] and form == "canonical"
    clean = json.dumps({"type": "turn", "text": "hello"}).encode()
    assert mask_payload(clean) == (clean, [], "original")


def test_escaped_personal_data_is_found_or_withheld():
    escaped = '{"text": "\\u0034\\u0031\\u0031\\u0031 1111 1111 1111"}'
    masked, kinds, form = mask_payload(escaped.encode())
    assert form == "canonical" and b"4111" not in masked and kinds == ["card_number"]
    broken = '{"text": "\\u0034\\u0031\\u0031\\u0031 1111 1111 1111"'
    assert mask_payload(broken.encode()) == (b"", ["escaped"], "withheld")


def test_non_utf8_payloads_keep_their_other_bytes():
    raw = b"\xff\xfe pin 1234 \xfa"
    masked, kinds, form = mask_payload(raw)
    assert masked.startswith(b"\xff\xfe pin [PIN]") and kinds == ["pin"] and form == "original"
    assert base64.b64encode(masked)


def test_a_redactor_refuses_a_kind_the_contract_does_not_know():
    with pytest.raises(ValueError, match="no such kind of personal data: emial"):
        Redactor(frozenset({"email", "emial"}))
