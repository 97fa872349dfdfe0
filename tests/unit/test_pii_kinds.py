"""Masking per kind: spoken and mixed digits, IBANs, credentials, spelled e-mails, dates of birth,
people and addresses; what must stay unmasked so coaching still works."""

from __future__ import annotations

import pytest

from operators.pii import FAST, STRICT_KINDS, Redactor, spoken_digits
from operators.policy import DEFAULT_POLICY, load_policy
from operators.records import SHAPED, STRICT
from tests import adversarial

POLICY = load_policy(DEFAULT_POLICY).redactor
#: ``STRICT`` without its uncued rules (names from a list, streets without a number).
CUED = Redactor(frozenset(STRICT_KINDS))


@pytest.mark.parametrize(
    "text, values, kinds", adversarial.PLANTED, ids=[t[:40] for t, _, _ in adversarial.PLANTED]
)
def test_strict_masking_leaves_no_planted_value_and_names_its_kind(text, values, kinds):
    assert set(adversarial.leaks([text])) >= set(values), "the corpus must find its own values"
    clean, found = STRICT.redact(text)
    assert adversarial.leaks([clean]) == [], (text, clean)
    assert set(found) == set(kinds), (text, clean, found)
    for kind in kinds:
        assert f"[{kind.upper()}]" in clean


@pytest.mark.parametrize(
    "text, values, kinds", [p for p in adversarial.PLANTED if set(p[2]) <= POLICY.kinds],
    ids=[t[:40] for t, _, k in adversarial.PLANTED if set(k) <= POLICY.kinds],
)
def test_the_policys_fast_masking_reads_spoken_digits_too(text, values, kinds):
    clean, found = POLICY.redact(text)
    assert adversarial.leaks([clean]) == [] and set(found) == set(kinds), (text, clean, found)


@pytest.mark.parametrize(
    "text, masked",
    [
        # what the issue found kept in clear, half masked or misnamed
        ("four one one one, one one one one, one one one one, one one one one", "[CARD_NUMBER]"),
        ("my name is Sherlock Holmes", "my name is [PERSON]"),
        ("221B Baker Street, London NW1 6XE", "[ADDRESS], London [ADDRESS]"),
        ("password is hunter2, username jsmith", "password is [CREDENTIAL], username [CREDENTIAL]"),
        ("john dot smith at gmail dot com", "[EMAIL]"),
        ("john dot smith at gmail.com", "[EMAIL]"),
        ("my date of birth is 12/03/1980", "my date of birth is [DATE_OF_BIRTH]"),
    ],
)
def test_the_issues_examples(text, masked):
    assert STRICT.redact(text)[0] == masked


@pytest.mark.parametrize(
    "run, digits, grouped",
    [
        ("four one one one", "4111", "4111"),
        ("oh seven seven double oh, nine double one", "07700911", "07700 911"),
        ("4 1 one 1", "4111", "4111"),
        ("triple five, twelve thirty four", "5551234", "555 1234"),
        ("nineteen eighty two", "1982", "1982"),
    ],
)
def test_spoken_digits(run, digits, grouped):
    assert spoken_digits(run) == (digits, grouped)


@pytest.mark.parametrize(
    "text, kind",
    [
        ("my pin is seven three nine one", "pin"),
        ("ssn one two three, four five, six seven eight nine", "ssn"),
        ("call me on five five five, one two three, four five six seven", "phone"),
        ("my number is oh seven nine one one, one two three, four five six", "phone"),
        ("call me on 020 7946 0958", "phone"),  # a UK number: valid by phonenumbers, no US shape
        ("account 4155550132", "account_number"),  # the keyword, not the phone-like shape, names it
        ("member id 5501 2299", "account_number"),
        ("date of birth oh three, one two, nineteen eighty", "date_of_birth"),
        ("born 3 May 1980", "date_of_birth"),
        ("I was born in May 1980", "date_of_birth"),
        ("DOB: 14.07.75", "date_of_birth"),
        ("I think it's 02/01/1927", "date_of_birth"),  # no keyword, but a birth year
        ("my iban is GB82 WEST 1234 5698 7654 32 thanks", "iban"),
        ("my username is j.watson", "credential"),
        ("the password for my account is blue-horse-7", "credential"),
        ("my childhood pet was Buddy", "credential"),
        ("passcode: opensesame", "credential"),
        ("Hi, I'm Angela", "person"),
        ("this is Mark. I need to book a party", "person"),
        ("call me Ishmael", "person"),
        ("that's H-O-L-M-E-S", "person"),
        ("Mr Holmes called", "person"),
        ("my zip code is 90210", "address"),
        ("we live at the old mill, little wittering", "address"),
        ("Washington, DC 20500", "address"),
        # An IPv6 address once raised: a digest check's character set shadowed the hex-digit pattern.
        ("my ip is fe80::1", "ip_address"),
        ("IPv6 address 2001:db8:85a3::8a2e:370:7334", "ip_address"),
    ],
)
def test_each_kind_is_named(text, kind):
    clean, found = STRICT.redact(text)
    assert found and set(found) == {kind}, (text, clean, found)


def test_a_numeric_passcode_is_a_pin_and_an_invalid_iban_is_not_an_iban():
    assert STRICT.redact("my passcode is 4471") == ("my passcode is [PIN]", ["pin"])
    assert "iban" not in STRICT.redact("GB00 WEST 1234 5698 7654 32")[1]


@pytest.mark.parametrize(
    "text",
    [
        # STAR agent replies and knowledge-base values: places, doctors, prices, times, measures
        "Dr. Johnson is available at 3 pm at the Hilton Hotel.",
        "It is on level 15, has 26 square meters and 1 bedrooms.",
        "OK, I found a free flat in One on Center Apartments, located near a School and a Park.",
        "Drive for 3 blocks and turn left just after you pass a park.",
        "Turn right onto Castro St, which is a one-way street.",
        "Walk 2 blocks east on Forbes Avenue towards Murray.",
        "After 3 kilometers, turn right on Commercial Drive at the subway station.",
        "Ok, you are booked for North Heights on Tuesday @ 6pm.  Can I help you with anything else?",
        "Cactus Club is available. It is Chinese. Should I book this for you?",
        "It is Main Street.",
        "Could I get your full name, please?",
        "What was your mother's maiden name?",
        "And what was the name of the pet you had as a child?",
        "Security question answers?",
        "Do you know security answer 1?",
        "I am the Chief Engineer",
        # customers: numbers that are not personal, spoken numbers too short to be
        "I'd like a table for four at seven thirty",
        "one moment please, I need two tickets for the nine o'clock show",
        "It is only a 3-4 hour drive after all.",
        "Let's look for a 2 bedroom place with an elevator.",
        "There have been all kinds of $10 transfers taking place from my account.",
        "I'm expecting about 40 people all close friends to show up",
        "my password is not working and I'm looking for help",
        "Your appointment is on 12/03/2026",
        "I will be there at 7.30",
        "meet me at the bar",
        "I'm Looking for a hotel near the park",
        "Oh, one more thing",
        "I would like to stay at the Old Town Inn 5/15-30.",
    ],
)
def test_text_that_is_not_personal_data_stays(text):
    assert CUED.redact(text) == (text, [])
    assert SHAPED.redact(text) == (text, [])
    assert set(STRICT.redact(text)[1]) <= {"person", "address"}, "only the uncued rules of dead letters may"


@pytest.mark.parametrize(
    "text",
    ["Required step disclosure has not happened 3600s into the conversation (deadline 300s).",
     "Your booking id is 8271632.", "It comes at the price of 2812 per month.", "127.0.0.1:9392 refused"],
)
def test_shaped_keeps_numbers_that_no_keyword_names(text):
    assert SHAPED.redact(text) == (text, [])
    assert set(STRICT.redact(text)[1]) == {"account_number"} | (
        {"ip_address"} if "127.0.0.1" in text else set()
    )


def test_the_policy_decides_the_fast_kinds_and_strict_adds_people_and_addresses():
    text = "my name is Sherlock Holmes, password hunter2, born 12/03/1980, I live at 221B Baker Street"
    assert POLICY.redact(text)[1] == ["date_of_birth"]  # account_number brings it: not 12/03/[ACCOUNT_NUMBER]
    assert set(FAST.redact(text)[1]) == {"credential", "date_of_birth"}
    assert set(STRICT.redact(text)[1]) == {"person", "credential", "date_of_birth", "address"}
    assert Redactor(frozenset({"email"})).redact("four one one one one") == ("four one one one one", [])
    assert Redactor(frozenset({"email"})).kinds == {"email"}
