"""Hypothesis strategies of hostile input: bytes, JSON with every trick, type swaps and mutations.

- ``payloads()``: arbitrary bytes, JSON documents rendered with tricks
  (``hostile_json``), deep nesting (``nested``), and records of every input
  contract derived from its JSON Schema (``tests.fuzz.contracts``), each
  possibly mutated.
- ``mutated(record)``: a valid record changed the ways a broken or hostile
  producer changes one: a field dropped, added, swapped to every other JSON
  type or set to an edge value (ids at their limits, timestamps at the edges,
  huge and special numbers), its ``type`` set to another contract's, its bytes
  flipped, cut, re-encoded or given duplicate keys.
- ``kafka_keys(record)``: keys of every shape for a record.

Planted personal data (``tests.adversarial.PII``, in the sentences a person
writes it in) goes anywhere a string goes: free text, ids, labels, field names,
unknown fields, malformed bytes and Kafka keys, so the checks can look for it
in every output.
"""

from __future__ import annotations

import codecs
import json
import math
from dataclasses import dataclass
from functools import cache
from typing import Any, get_args

from hypothesis import strategies as st
from pydantic import BaseModel

from tests.adversarial import PII
from tests.fuzz.contracts import JSON_TYPES, Contract, contracts, fields, valid_records

#: Surface forms of personal data, as a person writes them.
PLANTED: tuple[str, ...] = tuple(s for s, _ in PII)


@cache
def by_tag() -> dict[str, tuple[Contract, type[BaseModel]]]:
    """Each record ``type`` tag of the input contracts -> its contract and model."""
    out = {}
    for c in contracts():
        for model in c.records:
            tag = model.model_fields.get("type")
            for value in get_args(tag.annotation) if tag is not None else ():
                out[value] = (c, model)
    return out


TAGS: tuple[str, ...] = tuple(by_tag())

#: Strings a hostile producer tries: control characters, bidi overrides, zero-width and NFKC-changing
#: characters, quotes and markup, path tricks, a lone surrogate, a NUL, a BOM.
ODD_STRINGS = (
    "", " ", "\t", "\n", "\r\n", "\x00", "\x1b[31m", "\x7f", "\x85", "\u2028", "\u2029", "\u202e", "\u2066",
    "\u200b", "\ufeff", "\ufffd", "\ud800", "\udfff", "\U0010ffff", "\uff21\uff22", "\ufb01", "e\u0301",
    "\u0665\u0661", "' OR 1=1 --", "<script>", "{{x}}", "{balance}", "%s%n", "../../etc/passwd", "null",
    "true", "NaN", "1e999", "-0", "[]", "{}", "\\", "\"", "a" * 64, "a" * 65, "a" * 128, "a" * 129,
)
#: Identifiers at and beyond their limits (1-128 characters of ``[A-Za-z0-9._:@/-]``, first alphanumeric).
ODD_IDS = ("a", "0", "a" * 128, "a" * 129, "-a", ".", "a b", "a\x00", "\u00e9", "a/../b", "a:b@c",
           "A" * 127 + "/", "c-1 ", " c-1", "C-1", "c\u200b-1")
ODD_NUMBERS = (-1, 0, 1, 2**31 - 1, 2**31, 2**53 + 1, 2**63 - 1, 2**63, 2**64, -(2**63) - 1, 10**30, 10**300,
               1.0, 0.5, -0.0, 1e308, -1e308, 5e-324, True, False)
#: Number literals ``json.dumps`` cannot write: special, huge, tiny, or not JSON at all.
ODD_NUMBER_LITERALS = ("NaN", "-NaN", "Infinity", "-Infinity", "1e999", "-1e999", "1e-999", "-0", "0e0",
                       "1" * 4301, "9" * 20, "1.7976931348623157e309", "4.9e-325", "01", "+1", ".5", "1.",
                       "0x10", "1_000", "١", "1e", "--1")
ODD_TIMES = (
    "0001-01-01T00:00:00Z", "0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59.999999Z",
    "9999-12-31T23:59:59-14:00", "1970-01-01T00:00:00Z", "1969-12-31T23:59:59Z", "2038-01-19T03:14:08Z",
    "2026-02-29T10:00:00Z", "2024-02-29T10:00:00Z", "2026-03-02T23:59:60Z", "2026-03-02T24:00:00Z",
    "2026-03-02T14:00:00+23:59", "2026-03-02T14:00:00-23:59", "2026-03-02T14:00:00+24:00",
    "2026-03-02T14:00:00", "2026-03-02 14:00:00Z", "2026-03-02t14:00:00z", "2026-03-02T14:00:00.123456789Z",
    "2026-03-02T14:00Z", "2026-03-02", "20260302T140000Z", "+002026-03-02T14:00:00Z", "2026-W10-1T14:00:00Z",
    "1772460000", "1772460000000", "now", "", "2026-03-02T14:00:00\u200bZ",
    "\uff12\uff10\uff12\uff16-03-02T14:00Z",
)


@cache
def planted() -> st.SearchStrategy[str]:
    """A string carrying personal data, with some text around it."""
    return st.builds(lambda pre, v, post: f"{pre}{v}{post}", st.sampled_from(["", "x ", "note: "]),
                     st.sampled_from(PLANTED), st.sampled_from(["", " ok", "\n"]))


@cache
def strings() -> st.SearchStrategy[str]:
    """Any text, odd strings, personal data, and (rarely) strings at the length limits."""
    long = st.sampled_from([4_000, 4_001, 16_000, 16_001, 32_768, 32_769]).map(lambda n: "x" * n)
    return st.one_of(st.text(max_size=40), st.sampled_from(ODD_STRINGS), st.text(max_size=12), planted(),
                     st.sampled_from(ODD_STRINGS), planted(), long)


@cache
def numbers() -> st.SearchStrategy:
    return st.one_of(st.integers(), st.floats(), st.sampled_from(ODD_NUMBERS),
                     st.integers(min_value=-(2**80), max_value=2**80))


_ESCAPES = ("\\ud800", "\\udfff", "\\ud800\\u0041", "\\u0000", "\\u202e", "\\uZZZZ", "\\x41")


@dataclass(frozen=True)
class Raw:
    """JSON text written as is (a number literal ``json.dumps`` cannot write, a lone-surrogate escape).

    Not a ``str`` subclass: Hypothesis 6.170 re-inserts drawn values as choices when it mutates an example,
    and a subclass of ``str`` there fails inside it (``KeyError: <class 'Raw'>``)."""

    text: str


class Pairs(list):
    """A JSON object as its (key, value) pairs: keys may repeat."""


@cache
def json_values(max_leaves: int = 12) -> st.SearchStrategy:
    leaves = st.one_of(
        st.none(), st.booleans(), numbers(), strings(),
        st.sampled_from(ODD_NUMBER_LITERALS).map(Raw),
        st.sampled_from(_ESCAPES).map(lambda escape: Raw(f'"{escape}"')),
    )
    names = sorted({f for c in contracts() for r in c.records for f in r.model_fields})
    keys = st.one_of(st.text(max_size=12), st.sampled_from(ODD_STRINGS), planted(), st.sampled_from(names))
    return st.recursive(
        leaves,
        lambda children: st.one_of(
            st.lists(children, max_size=5),
            st.dictionaries(keys, children, max_size=5),
            st.lists(st.tuples(keys, children), max_size=5).map(Pairs),
        ),
        max_leaves=max_leaves,
    )


def render(value: Any, ensure_ascii: bool = False, spacing: str = "") -> str:
    """JSON text of ``value`` (``Raw`` as is, ``Pairs`` with their repeats), NaN and Infinity allowed."""
    if isinstance(value, Raw):
        return value.text
    if isinstance(value, Pairs | dict):
        pairs = value if isinstance(value, Pairs) else value.items()
        inner = f",{spacing}".join(
            f"{json.dumps(str(k), ensure_ascii=ensure_ascii)}:{spacing}{render(v, ensure_ascii, spacing)}"
            for k, v in pairs
        )
        return "{" + inner + "}"
    if isinstance(value, list):
        return "[" + f",{spacing}".join(render(v, ensure_ascii, spacing) for v in value) + "]"
    if isinstance(value, float) and math.isnan(value):
        return "NaN"
    return json.dumps(value, ensure_ascii=ensure_ascii)


# -- bytes --------------------------------------------------------------------------------------------
_OVERLONG = (b"\xc0\xaf", b"\xe0\x80\xaf", b"\xf0\x80\x80\xaf", b"\xc1\xbf", b"\xc0\x80", b"\xc0\xa2",
             b"\xe0\x80\xa2")
_ENCODINGS = ("utf-8", "utf-8-sig", "utf-16", "utf-16-le", "utf-16-be", "utf-32", "latin-1", "cp1252",
              "utf-7")


def encode(text: str, encoding: str) -> bytes:
    """``text`` in ``encoding``; lone surrogates as their (invalid) UTF-8 bytes, unmappable ones as ?."""
    if encoding.startswith("utf-8"):
        prefix = codecs.BOM_UTF8 if encoding == "utf-8-sig" else b""
        return prefix + text.encode("utf-8", "surrogatepass")
    return text.encode(encoding, "replace") if encoding != "utf-7" else text.encode("utf-7", "replace")


_BOMS = (codecs.BOM_UTF8, codecs.BOM_UTF16_LE, codecs.BOM_UTF32, codecs.BOM_UTF8 * 2)
_GARBAGE = (b" x", b"}", b"]", b",", b"\x00", b"\xff", b" {}", b"//", b"\x1a", b"\r", b"\r\r")
_INSERTS = st.one_of(st.binary(min_size=1, max_size=8), st.sampled_from(_OVERLONG), st.sampled_from(_GARBAGE))


@st.composite
def byte_tricks(draw, payload: bytes) -> bytes:
    """``payload`` with a byte-level change: flipped, cut, spliced, overlong UTF-8, NULs, BOMs, CRs."""
    at = draw(st.integers(0, len(payload)))
    trick = draw(st.sampled_from(("splice", "flip", "cut", "prefix", "suffix", "double")))
    if trick == "flip" and at < len(payload):
        return payload[:at] + bytes([payload[at] ^ draw(st.integers(1, 255))]) + payload[at + 1:]
    if trick == "cut":
        return payload[:at]
    if trick == "double":
        return payload + payload
    if trick == "prefix":
        return draw(st.sampled_from(_BOMS)) + payload
    if trick == "suffix":
        return payload + draw(st.sampled_from(_GARBAGE))
    return payload[:at] + draw(_INSERTS) + payload[at + draw(st.integers(0, 16)):]


@st.composite
def nested(draw) -> bytes:
    """Objects or arrays nested around the limit (32) or far beyond it, closed or not."""
    depth = draw(st.one_of(st.integers(28, 40), st.sampled_from([1_000, 5_000, 20_000])))
    kind = draw(st.sampled_from(("array", "object", "mixed")))
    opens = {"array": [b"["], "object": [b'{"a":'], "mixed": [b"[", b'{"text":']}[kind]
    closes = {b"[": b"]", b'{"a":': b"}", b'{"text":': b"}"}
    parts = [opens[i % len(opens)] for i in range(depth)]
    closed = draw(st.booleans())
    tail = b"".join(closes[p] for p in reversed(parts)) if closed else b""
    return b"".join(parts) + b"1" + tail


@st.composite
def hostile_json(draw) -> bytes:
    """A generated JSON document, rendered and encoded with tricks."""
    value = draw(json_values())
    spacing = draw(st.sampled_from(["", " ", "\n", "\t"]))
    text = render(value, ensure_ascii=draw(st.booleans()), spacing=spacing)
    encoding = draw(st.sampled_from(_ENCODINGS[:1] * 6 + _ENCODINGS))
    return encode(text, encoding)


# -- records of the contracts, and their mutations -------------------------------------------------------
@cache
def other_type(kind: str) -> st.SearchStrategy:
    """A JSON value of type ``kind``."""
    return {
        "null": st.none(),
        "boolean": st.booleans(),
        "integer": st.one_of(st.integers(), st.sampled_from([0, -1, 2**63, 10**30])),
        "number": st.one_of(st.floats(allow_nan=False, allow_infinity=False), st.sampled_from([0.5, 1e308])),
        "string": strings(),
        "array": st.lists(st.one_of(st.integers(), st.text(max_size=8), planted()), max_size=4),
        "object": st.dictionaries(st.text(max_size=8), st.one_of(st.integers(), planted()), max_size=3),
    }[kind]


def record_fields(record: dict) -> dict[str, set[str]]:
    """The JSON types of ``record``'s fields, from the contract its ``type`` names (empty if none)."""
    tag = record.get("type")
    found = by_tag().get(tag) if isinstance(tag, str) else None
    return {} if found is None else fields(*found)


@st.composite
def swapped(draw, record: dict) -> dict:
    """``record`` with one of its contract's fields set to a value of another JSON type."""
    types = record_fields(record)
    if not types:
        return record
    name = draw(st.sampled_from(sorted(types)))
    kind = draw(st.sampled_from([t for t in JSON_TYPES if t not in types[name]] or ["object"]))
    return {**record, name: draw(other_type(kind))}


@st.composite
def edged(draw, record: dict) -> dict:
    """``record`` with one field at an edge: ids at their limits, odd times, huge numbers, odd strings."""
    if not record:
        return record
    name = draw(st.sampled_from(sorted(record)))
    if name.endswith("_id"):
        value = draw(st.one_of(st.sampled_from(ODD_IDS), planted(), st.just(f"{record[name]}x")))
    elif name in ("event_time", "updated_at", "at"):
        value = draw(st.sampled_from(ODD_TIMES))
    elif isinstance(record[name], bool):
        value = draw(st.sampled_from([0, 1, "true", None, "yes"]))
    elif isinstance(record[name], int | float):
        value = draw(st.one_of(st.sampled_from(ODD_NUMBERS), st.sampled_from(ODD_NUMBER_LITERALS).map(Raw)))
    else:
        value = draw(st.one_of(st.sampled_from(ODD_STRINGS), planted(), st.sampled_from(TAGS)))
    return {**record, name: value}


@st.composite
def mutated(draw, record: dict) -> bytes:
    """A valid record after one to three mutations, as bytes (possibly no longer JSON)."""
    value: Any = dict(record)
    for _ in range(draw(st.integers(1, 3))):
        op = draw(st.sampled_from(("drop", "add", "swap", "edge", "retag", "text", "none")))
        if op == "drop" and value:
            name = draw(st.sampled_from(sorted(value)))
            value = {k: v for k, v in value.items() if k != name}
        elif op == "add":
            key = draw(st.one_of(st.text(max_size=10), st.sampled_from(ODD_STRINGS), planted()))
            value = {**value, key: draw(json_values(max_leaves=4))}
        elif op == "swap":
            value = draw(swapped(value))
        elif op == "edge":
            value = draw(edged(value))
        elif op == "retag":  # a record valid for one contract under another type
            value = {**value, "type": draw(st.sampled_from(TAGS))}
        elif op == "text" and "text" in value:
            value = {**value, "text": draw(st.one_of(planted(), strings()))}
    pairs: Any = value
    if draw(st.integers(0, 9)) == 0 and value:  # duplicate keys: which one wins?
        name = draw(st.sampled_from(sorted(value)))
        pairs = Pairs([*value.items(), (name, draw(json_values(max_leaves=2)))])
        if draw(st.booleans()):
            pairs = Pairs([(name, draw(json_values(max_leaves=2))), *value.items()])
    text = render(pairs, ensure_ascii=draw(st.booleans()))
    payload = encode(text, draw(st.sampled_from(["utf-8"] * 8 + ["utf-8-sig", "utf-16"])))
    if draw(st.integers(0, 3)) == 0:
        payload = draw(byte_tricks(payload))
    return payload


@cache
def contract_records() -> st.SearchStrategy[dict]:
    """A document one of the input contracts' JSON Schemas accepts (the policy's is another topic's)."""
    return st.one_of([valid_records(c.kind) for c in contracts() if c.stream is not None])


def payloads(seeds: list[dict]) -> st.SearchStrategy[bytes]:
    """Any hostile payload: bytes, generated JSON, deep nesting, contract records and mutated seeds."""
    return st.one_of(
        st.binary(max_size=256),
        hostile_json(),
        nested(),
        contract_records().map(lambda r: render(r).encode("utf-8", "surrogatepass")),
        contract_records().flatmap(mutated),
        st.sampled_from(seeds).flatmap(mutated),
    )


def kafka_keys(right: str | None) -> st.SearchStrategy[bytes | None]:
    """Keys of every shape for a record whose key should be ``right``."""
    options = [st.none(), st.just(b""), st.binary(max_size=64), planted().map(str.encode),
               st.sampled_from(ODD_IDS).map(lambda s: s.encode("utf-8", "surrogatepass")),
               st.just(b"k" * 100_000)]
    if right:
        # A generated id may hold a lone surrogate: written as its (invalid) UTF-8 bytes.
        raw = right.encode("utf-8", "surrogatepass")
        options += [st.just(raw)] * 4 + [
            st.just(raw + b"\x00"), st.just(right.upper().encode("utf-8", "surrogatepass")),
            st.just(b" " + raw), st.just(right.encode("utf-16", "surrogatepass")),
        ]
    return st.one_of(options)
