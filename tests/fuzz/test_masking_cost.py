"""Masking a hostile record ends: no pattern backtracks through the biggest record the job reads.

The fuzzers found payloads that masking took minutes over (a 32 KiB run of
one character class with an "@" after it: the e-mail patterns retried their
unbounded runs from every position, quadratic in the text). Each shape here
is the biggest payload the parse step reads (``COACH_MAX_PAYLOAD_BYTES``,
64 KiB), refused and masked for its dead letter. The test's timeout is the
failure; it sets no speed target (``bench/privacy.py`` measures).
"""

from __future__ import annotations

import pytest

from operators.envelope import Origin, RawRecord
from operators.parse import ParseLimits, parse_record
from operators.records import STRICT, mask_payload
from schemas import DeadLetter

LIMIT = 65_536
#: (repeated unit, what follows the run): runs of one character class that a pattern can start in anywhere.
SHAPES = {
    "letters then @": ("x", '"@'),
    "utf-16 text then @": ("x\x00", '"@'),
    "digits then @": ("1", "@"),
    "signed digits": ("+1", "@"),
    "dotted words": ("a.", " at b dot c"),
    "dashed words": ("a-", "@"),
    "spaces": (" ", "@x.com"),
    "spoken joins": ("a dot ", "@"),
    "at words": ("a at ", ""),
    "digit words": ("oh ", "."),
    "labels": ("b.", "@"),
    "hex with digit runs": ("a1111", ""),
}


def payload(unit: str, tail: str) -> bytes:
    head = '{"text": "'
    body = unit * ((LIMIT - len(head) - len(tail)) // len(unit))
    return (head + body + tail).encode("latin-1")[:LIMIT]


@pytest.mark.timeout(30)
@pytest.mark.parametrize("shape", sorted(SHAPES))
def test_masking_the_biggest_hostile_record_ends(shape: str) -> None:
    value = payload(*SHAPES[shape])
    assert len(value) <= LIMIT
    STRICT.redact(value.decode("latin-1"))
    mask_payload(value)
    letter = parse_record(RawRecord(value=value, key=None, origin=Origin(file="f", line=1), stream="any"),
                          ParseLimits(max_payload_bytes=LIMIT), 1)
    assert isinstance(letter, DeadLetter)
