"""Shared building blocks of every topic contract.

Every record is a frozen pydantic model that forbids unknown fields, carries
a ``schema_version`` and uses timezone-aware UTC datetimes.
"""

from __future__ import annotations

import re
import unicodedata
from datetime import UTC, datetime
from functools import lru_cache
from typing import Annotated, Any, Self

from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, StringConstraints
from pydantic_core import PydanticCustomError

#: Hard ceiling on any free-text field, whatever the configured limit is.
#: The job's configurable limit (``COACH_MAX_TEXT_CHARS``) is checked on top.
TEXT_HARD_LIMIT = 16_000


class Contract(BaseModel):
    """Base of every topic record: strict, immutable, versioned."""

    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=False)

    @classmethod
    def trusted(cls, **values: Any) -> Self:
        """A record from values the job computed itself: no validation, as ``model_construct``.

        The same instance as ``model_construct(**values)`` (the same ``__dict__``, in
        field order, the same defaults and fields set), at a fraction of its cost:
        ``model_construct`` walks every field's aliases in Python on each call, this
        follows a plan built once per class. Unlike ``model_construct`` it refuses
        names that are not fields (``TypeError``) instead of dropping them.
        """
        order, names, steps = _PLANS.get(cls) or _plan_of(cls)
        if len(values) == len(order) and tuple(values) == order:
            fields = values  # every field, in field order: the call's own dict will do
        else:
            if not names.issuperset(values):
                raise TypeError(f"{cls.__name__} has no field {sorted(set(values) - names)}")
            fields = {}
            for name, default, field in steps:
                if name in values:
                    fields[name] = values[name]
                elif default is not _REQUIRED:
                    fields[name] = (
                        default if field is None
                        else field.get_default(call_default_factory=True, validated_data=fields)
                    )
        record = cls.__new__(cls)
        _set(record, "__dict__", fields)
        _set(record, "__pydantic_fields_set__", set(values))
        _set(record, "__pydantic_extra__", None)
        _set(record, "__pydantic_private__", None)
        return record


_set = object.__setattr__
_REQUIRED = object()
#: Defaults a record may share with every other (``model_construct`` copies the rest).
_IMMUTABLE = (type(None), bool, int, float, str, bytes)
_PLANS: dict[type, tuple[tuple[str, ...], frozenset[str], tuple[tuple[str, Any, Any], ...]]] = {}


def _plan_of(cls: type[Contract]) -> tuple:
    """Per field, in order: its name, and its default or how to make one."""
    fields = cls.__pydantic_fields__
    if cls.__pydantic_post_init__ or any(f.alias or f.validation_alias for f in fields.values()):
        raise TypeError(f"{cls.__name__}: trusted() does not serve aliases or post-init hooks")
    steps: list[tuple[str, Any, Any]] = []
    for name, field in fields.items():
        if field.is_required():
            steps.append((name, _REQUIRED, None))
        elif field.default_factory is None and isinstance(field.default, _IMMUTABLE):
            steps.append((name, field.default, None))
        else:  # a factory, or a mutable default: made per record, as model_construct does
            steps.append((name, None, field))
    plan = (tuple(fields), frozenset(fields), tuple(steps))
    _PLANS[cls] = plan
    return plan


def _to_utc(value: datetime) -> datetime:
    try:
        return value.astimezone(UTC)
    except OverflowError:  # 9999-12-31T23:59-14:00 is in year 10000 in UTC
        raise PydanticCustomError(
            "datetime_out_of_range", "the time is outside the years 1 to 9999 in UTC"
        ) from None


@lru_cache(maxsize=65_536)
def utc_iso(value: datetime) -> str:
    """A canonical UTC timestamp string: ``2026-01-05T09:00:00.000000Z``.

    Cached: every decision names its customer's context version, one
    ``updated_at`` shared by all the customer's decisions. Equal instants in
    other offsets share an entry, and they have the same UTC string."""
    return value.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


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
