"""Shared building blocks of every topic contract.

Every record is a frozen pydantic model that forbids unknown fields, carries
a ``schema_version`` and uses timezone-aware UTC datetimes.
"""

from __future__ import annotations

import re
import unicodedata
from datetime import datetime, timezone
from typing import Annotated

from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, StringConstraints
from pydantic_core import PydanticCustomError

#: Hard ceiling on any free-text field, whatever the configured limit is.
#: The job's configurable limit (``COACH_MAX_TEXT_CHARS``) is checked on top.
TEXT_HARD_LIMIT = 16_000


class Contract(BaseModel):
    """Base of every topic record: strict, immutable, versioned."""

    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=False)


def _to_utc(value: datetime) -> datetime:
    return value.astimezone(timezone.utc)


def utc_iso(value: datetime) -> str:
    """A canonical UTC timestamp string: ``2026-01-05T09:00:00.000000Z``."""
    return value.astimezone(timezone.utc).isoformat(timespec="microseconds").replace("+00:00", "Z")


UtcDatetime = Annotated[AwareDatetime, AfterValidator(_to_utc)]
"""An ISO-8601 timestamp with an explicit offset, normalised to UTC."""

Identifier = Annotated[
    str,
    StringConstraints(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9][A-Za-z0-9._:@/-]*$"),
]
"""Opaque id: 1-128 characters of letters, digits and ``._:@/-``."""

Label = Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=r"^[a-z0-9_]+$")]
"""A snake_case label such as a task name or an agent action."""

# C0 and C1 control characters except tab, newline and carriage return, and the
# bidirectional overrides used to disguise text ("Trojan Source").
_HOSTILE = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
# Zero-width characters carry no meaning in a transcript but split words apart.
_ZERO_WIDTH = re.compile(r"[\u200b-\u200d\u2060\ufeff]")


def clean_text(value: str) -> str:
    """Reject control characters and bidi overrides; NFKC-normalise the rest.

    NFKC folds look-alike forms (full-width digits, ligatures) into their plain
    equivalents, so every later check sees the text a reader would see.
    """
    if _HOSTILE.search(value):
        raise PydanticCustomError(
            "invalid_text", "text contains control characters or bidirectional overrides"
        )
    if not value.isascii():
        value = unicodedata.normalize("NFKC", _ZERO_WIDTH.sub("", value))
    return value


Text = Annotated[
    str,
    StringConstraints(max_length=TEXT_HARD_LIMIT),
    AfterValidator(clean_text),
]
"""Free text from a person: bounded, control-character free, NFKC-normalised."""
