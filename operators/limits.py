"""Bounds on the shape of a JSON payload, checked on its raw bytes before anything parses it.

Parsers and the masking code walk JSON recursively; a record nested a few
thousand levels deep, or with a million keys, must be refused before either
touches it. ``check_shape`` reads the bytes once with a tokenising regular
expression (strings whole, so brackets inside strings do not count) and
iterates, never recursing; most records are decided by counting bytes alone.

    >>> check_shape(b'{"a": [1, 2]}', JsonLimits())
    >>> check_shape(b"[" * 40 + b"]" * 40, JsonLimits()).reason
    'too_deeply_nested'
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal, NamedTuple

ShapeReason = Literal["too_deeply_nested", "too_many_keys", "too_many_items", "string_too_long"]

#: A JSON string (possibly unterminated) or one structural character.
_TOKEN = re.compile(rb'"(?:[^"\\]++|\\.)*+"?|[\[\]{},:]', re.DOTALL)


#: JSON's structural bytes, as ``bytes`` indexing gives them.
_QUOTE, _OPEN_ARRAY, _COLON = ord('"'), ord("["), ord(":")

@dataclass(frozen=True)
class JsonLimits:
    """The JSON limits: ``COACH_MAX_JSON_DEPTH``, ``_KEYS``, ``_ITEMS`` and ``_STRING_CHARS``."""

    depth: int = 32
    """Objects and arrays nested deeper than this are refused."""
    keys: int = 1_024
    """Object keys in the whole document."""
    items: int = 4_096
    """Array items in the whole document."""
    string_chars: int = 32_768
    """Characters of one string as written (an escape counts as the characters it is written with)."""


class ShapeViolation(NamedTuple):
    reason: ShapeReason
    detail: str


def check_shape(payload: bytes, limits: JsonLimits) -> ShapeViolation | None:
    """The first limit ``payload`` exceeds, or None. Never raises, never recurses."""
    size = len(payload)
    opens = payload.count(b"{") + payload.count(b"[")
    # Upper bounds from byte counts (brackets, colons and commas inside strings count too):
    # a record within all of them needs no closer look.
    if (opens <= limits.depth and payload.count(b":") <= limits.keys
            and payload.count(b",") + opens <= limits.items and size - 2 <= limits.string_chars):
        return None
    depth = keys = items = 0
    arrays: list[bool] = []  # per open container, innermost last: is it an array
    for match in _TOKEN.finditer(payload):
        token = match.group()
        first = token[0]
        if first == _QUOTE:
            if len(token) - 2 > limits.string_chars:  # bytes bound characters from above
                chars = len(token.decode("utf-8", "replace")) - 2
                if chars > limits.string_chars:
                    return ShapeViolation(
                        "string_too_long",
                        f"a string of {chars} characters at byte {match.start()};"
                        f" the limit is {limits.string_chars}",
                    )
        elif first in (0x7B, 0x5B):  # { [
            depth += 1
            if depth > limits.depth:
                return ShapeViolation(
                    "too_deeply_nested", f"nested deeper than {limits.depth} levels at byte {match.start()}"
                )
            is_array = first == _OPEN_ARRAY
            arrays.append(is_array)
            items += is_array  # an array's first item (an empty one counts as one)
        elif first in (0x7D, 0x5D):  # } ]
            if arrays:
                arrays.pop()
                depth -= 1
        elif first == _COLON:
            keys += 1
            if keys > limits.keys:
                return ShapeViolation("too_many_keys", f"more than {limits.keys} object keys")
        elif arrays and arrays[-1]:  # a comma between array items
            items += 1
        if items > limits.items:
            return ShapeViolation("too_many_items", f"more than {limits.items} array items")
    return None
