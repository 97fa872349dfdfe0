"""Every step is an error boundary for the record it handles.

An exception raised while a step handles one record is about that record:
the record becomes a dead letter with reason ``internal_error`` (the step,
the exception's type and its message with personal data masked, and the
record's source position), a keyed step's state for that key goes back to
what it was before the record, and the stream goes on. Failures that are
not about one record stop the job, loudly:

- a step that fails on ``in_a_row`` records in a row (every record: a broken
  model session, a bug on the common path) raises ``SystemicFailure``;
- start-up failures (an unreadable model or policy) and the connectors'
  failures (a broker that does not acknowledge output) are raised where they
  happen and never reach a boundary.

``FAILURES`` counts the records each step failed on in this process (the
``coachflow_internal_errors_total`` metric).

A step accounts for the inputs it decides; an item that is not one of them
(the acceptance step's copy of a suggestion, whose input already has its
decision) is counted and logged, not dead-lettered, so that every input
still gets exactly one decision or one dead letter.
"""

from __future__ import annotations

import dataclasses
import logging
import re
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Generic, TypeVar, cast

import bytewax.operators as op
from bytewax.dataflow import Stream, operator
from bytewax.operators import KeyedStream, StatefulBatchLogic, StatefulLogic

from operators.envelope import Envelope, Origin, RawRecord, now_ns
from operators.records import dead_letter, mask_message, refuse
from operators.state import freeze
from schemas import Acceptance, DeadLetter, Decision, KnowledgeDecision, SourceRef

log = logging.getLogger("coachflow.boundary")

#: Step id -> records the step failed on in this process.
FAILURES: Counter[str] = Counter()
_IN_A_ROW: Counter[str] = Counter()

V = TypeVar("V")
W = TypeVar("W")
T = TypeVar("T")


class SystemicFailure(RuntimeError):
    """A step failed on every record of a long run: not about one record, so the job stops."""


def accounts_for(item: object) -> bool:
    """Whether an item is an input the step decides (the default): raw records and envelopes."""
    return isinstance(item, RawRecord | Envelope)


@dataclass(frozen=True)
class Boundary:
    """How one step turns a failure on a record into a dead letter; shared by the step's keys."""

    step: str
    payload_limit: int = 65_536
    in_a_row: int = 100
    """Failures in a row, across the step's keys in this process, that stop the job."""
    owns: Callable[[object], bool] = field(default=accounts_for, compare=False)
    """Which items the step accounts for (the others are counted and logged only)."""

    def failed(self, item: object, error: Exception) -> list[DeadLetter]:
        """Count and log the failure; the dead letter of ``item`` if the step accounts for it.

        Raises ``SystemicFailure`` once the step failed on ``in_a_row`` records in a row.
        """
        FAILURES[self.step] += 1
        streak = _IN_A_ROW[self.step] = _IN_A_ROW[self.step] + 1
        detail = describe(self.step, error)
        log.error("%s (%s)", detail, _position(item))
        if streak >= self.in_a_row:
            raise SystemicFailure(
                f"step {self.step} failed on {streak} records in a row; the last: {detail}"
            ) from error
        if not self.owns(item):
            return []
        letter = internal_error(self.step, item, error, self.payload_limit)
        return [] if letter is None else [letter]

    def passed(self) -> None:
        """A record went through: the run of failures, if any, is over."""
        if _IN_A_ROW[self.step]:
            _IN_A_ROW[self.step] = 0

    def guard(self, handle: Callable[[V], W], item: V) -> W | list[DeadLetter]:
        """``handle(item)``, or the item's dead letters if it raises."""
        try:
            out = handle(item)
        except Exception as error:  # noqa: BLE001 - the boundary: one record's failure is that record's
            return self.failed(item, error)
        self.passed()
        return out



def split_dead_letters(
    step_id: str, up: Stream[T | DeadLetter], kind: type[T]
) -> tuple[Stream[T], Stream[DeadLetter]]:
    """``up``'s items of ``kind`` and its dead letters, as two streams (Bytewax's ``branch`` narrows only
    the first)."""
    split = op.branch(step_id, up, lambda item: isinstance(item, kind))
    return cast("Stream[T]", split.trues), cast("Stream[DeadLetter]", split.falses)

def describe(step: str, error: BaseException) -> str:
    """The dead letter's detail: the step, the exception's type and its masked message."""
    message = mask_message(error)
    return f"{step} failed: {type(error).__name__}" + (f": {message}" if message else "")


def internal_error(step: str, item: object, error: BaseException, payload_limit: int) -> DeadLetter | None:
    """The ``internal_error`` dead letter of an input (raw, parsed, or its decision); None for other items."""
    detail, kind = describe(step, error), type(error).__name__
    if isinstance(item, RawRecord):
        return dead_letter(
            origin=item.origin, reason="internal_error", detail=detail, payload=item.value,
            received_ns=now_ns(), payload_limit=payload_limit, key=item.key, payload_size=item.payload_bytes,
            step=step, error_type=kind,
        )
    if isinstance(item, Envelope):
        return refuse(item, "internal_error", detail, payload_limit, step=step, error_type=kind)
    if isinstance(item, Decision | KnowledgeDecision | DeadLetter | Acceptance):
        decided = item.input if isinstance(item, Decision | KnowledgeDecision) else None
        source = decided.source if decided is not None else getattr(item, "source", None)
        return dead_letter(
            origin=_origin(source), reason="internal_error", detail=detail, payload=None,
            received_ns=now_ns(), payload_limit=payload_limit, form="withheld",
            event_id=decided.event_id if decided is not None else getattr(item, "event_id", None),
            conversation_id=item.conversation_id, customer_id=getattr(item, "customer_id", None),
            step=step, error_type=kind,
        )
    return None


def _origin(source: SourceRef | None) -> Origin:
    if source is None:
        return Origin()
    return Origin(topic=source.topic, partition=source.partition, offset=source.offset, file=source.file,
                  line=source.line, timestamp_ms=source.timestamp_ms)


def _position(item: object) -> str:
    origin = getattr(item, "origin", None)
    if isinstance(origin, Origin):
        return origin.describe()
    return type(item).__name__


_CONTAINERS = (list, dict, set)
#: Annotation words of fields that never hold a container (any other field is checked when cloned).
_IMMUTABLE_WORDS = frozenset({"str", "int", "float", "bool", "None", "bytes"})
_PLANS: dict[type, tuple[str, ...] | None] = {}


def _clone_plan(cls: type) -> tuple[str, ...] | None:
    """The fields of a dataclass state that may hold a container, from their annotations (None: not a
    dataclass, every field is looked at)."""
    if not dataclasses.is_dataclass(cls):
        return None
    return tuple(
        f.name for f in dataclasses.fields(cls)
        if not _IMMUTABLE_WORDS.issuperset(re.findall(r"\w+", str(f.type)))
    )


def clone(state: Any) -> Any:
    """A copy of a step's state that later changes to the original do not reach.

    States are plain dataclasses whose fields hold immutable values or lists,
    dicts and sets of immutable values (an update replaces an element rather
    than changing it): copying the containers one level deep is enough. The
    copy looks only at fields whose annotation allows a container (every
    step clones its state before each record).
    """
    cls = type(state)
    try:
        names = _PLANS[cls]
    except KeyError:
        names = _PLANS[cls] = _clone_plan(cls)
    fields = state.__dict__.copy()
    for name in fields if names is None else names:
        value = fields.get(name)
        if value.__class__ in _CONTAINERS:
            fields[name] = value.copy()
    copy = object.__new__(cls)
    copy.__dict__.update(fields)
    return copy


class Bounded(StatefulBatchLogic[V, W, bytes], Generic[V, W]):
    """A keyed step's logic behind its error boundary, snapshotted once per epoch.

    ``inner`` is the step's own logic (anything with ``on_item``, ``on_notify``,
    ``on_eof``, ``notify_at`` and a settable ``state``). Before each item its
    state is cloned; if the item raises, the clone is put back and the item
    becomes a dead letter. A failing timer or end of input puts the state back
    too, dead-letters the inputs the key held (``inner.held()``, if it has
    one) and drops the key, so a broken state cannot fail again forever.

    It takes the key's items of an activation in one call (``on_batch``), so a
    record costs one call into the step's logic and no per-record shim; ``build``
    makes a new logic when the key's logic ends mid-batch (a conversation's end,
    then a new one under the same key).
    """

    def __init__(self, inner: Any, boundary: Boundary, build: Callable[[Any], Any] | None = None) -> None:
        self.inner = inner
        self.boundary = boundary
        self.build = build

    def on_batch(self, values: list[V]) -> tuple[Iterable[W], bool]:
        if len(values) == 1:
            return self.on_item(values[0])
        out: list[W] = []
        for value in values:
            if self.inner is None:
                if self.build is None:
                    raise RuntimeError("a discarded key's logic got another item and has no builder")
                self.inner = self.build(None)
            items, discard = self.on_item(value)
            out.extend(items)
            if discard:
                self.inner = None
        return out, self.inner is None

    def on_item(self, value: V) -> tuple[Iterable[W], bool]:
        """One record through the step, behind the boundary."""
        inner = self.inner
        before = clone(inner.state)
        try:
            out, discard = inner.on_item(value)
        except Exception as error:  # noqa: BLE001 - the boundary
            inner.state = before
            return self.boundary.failed(value, error), self.RETAIN  # type: ignore[return-value]
        self.boundary.passed()
        return out, discard

    def on_notify(self) -> tuple[Iterable[W], bool]:
        return self._settle(self.inner.on_notify)

    def on_eof(self) -> tuple[Iterable[W], bool]:
        return self._settle(self.inner.on_eof)

    def _settle(self, call: Callable[[], tuple[Iterable[W], bool]]) -> tuple[Iterable[W], bool]:
        inner = self.inner
        before = clone(inner.state)
        try:
            return call()
        except Exception as error:  # noqa: BLE001 - the boundary
            inner.state = before
            held: list[Any] = getattr(inner, "held", list)()
            out: list = []
            for item in held or [None]:
                out += self.boundary.failed(item, error)
            return out, self.DISCARD

    def notify_at(self) -> datetime | None:
        return self.inner.notify_at()

    def snapshot(self) -> bytes:
        return freeze(self.inner.state)


def keyed_step(
    step_id: str,
    up: KeyedStream[V],
    build: Callable[[Any], StatefulLogic],
    boundary: Boundary,
) -> KeyedStream[W]:
    """A keyed stateful step with ``build``'s logic behind ``boundary`` (see ``Bounded``).

    As ``op.stateful``, and under the same step id (``<step_id>.stateful_batch``), so recovery
    stores written with ``op.stateful`` resume; the key's items of an activation go to its logic in
    one call.

    :arg step_id: Unique ID.
    :arg up: Keyed items.
    :arg build: Makes a key's logic from its resume state (a snapshot, or None for a new key).
    :arg boundary: How the step turns a failure on a record into a dead letter.
    :returns: What the logic emits, keyed.
    """
    return _bounded_step(step_id, up, lambda resume: Bounded(build(resume), boundary, build))


@operator
def _bounded_step(
    step_id: str, up: KeyedStream[V], builder: Callable[[Any], StatefulBatchLogic]
) -> KeyedStream[W]:
    return op.stateful_batch("stateful_batch", up, builder)
