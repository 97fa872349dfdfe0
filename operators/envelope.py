"""Internal records that travel between steps (never published as-is).

``RawRecord`` is an input as read (bytes plus where it came from) and
``Envelope`` a parsed input on its way to its decision. Both are plain,
picklable dataclasses; the published contracts live in ``schemas/``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from operator import attrgetter
from typing import TYPE_CHECKING, cast

from operators.features import Features
from schemas import CustomerContext, Feedback, SourceRef
from schemas.events import AnyEvent

if TYPE_CHECKING:
    from operators.quality import Verdict


def now_ns() -> int:
    """Wall-clock nanoseconds; stage latencies are differences of these."""
    return time.time_ns()


@dataclass(frozen=True, slots=True)
class Origin:
    """Where an input came from: a Kafka topic/partition/offset or a file line.

    ``timestamp_ms`` is the Kafka record's timestamp (end-to-end latency is
    measured from it); it is not part of the record's identity.
    """

    topic: str | None = None
    partition: int | None = None
    offset: int | None = None
    file: str | None = None
    line: int | None = None
    timestamp_ms: int | None = None

    def ref(self) -> SourceRef:
        if self.file is not None:
            return SourceRef.trusted(
                kind="file",
                topic=None,
                partition=None,
                offset=None,
                timestamp_ms=None,
                file=self.file,
                line=self.line,
            )
        return SourceRef.trusted(  # every field, in order: trusted()'s fast path
            kind="kafka", topic=self.topic, partition=self.partition, offset=self.offset,
            # getattr: an Origin pickled (recovery snapshot) before the field existed lacks it
            timestamp_ms=getattr(self, "timestamp_ms", None), file=None, line=None,
        )

    def describe(self) -> str:
        if self.file is not None:
            return f"{self.file}:{self.line}"
        return f"{self.topic}/{self.partition}@{self.offset}"


@dataclass(frozen=True, slots=True)
class RawRecord:
    """One input record as read, before parsing."""

    value: bytes | None
    key: bytes | None
    origin: Origin
    #: Which contract the bytes should hold: "events", "context" or "any" (file mode).
    stream: str
    #: The full size of the record when ``value`` holds only its head (over-long lines).
    size: int = -1
    #: The source's own error for this record (a Kafka consumer error).
    error: str | None = None

    @property
    def payload_bytes(self) -> int:
        return self.size if self.size >= 0 else len(self.value or b"")


@dataclass(slots=True)
class Envelope:
    """A parsed input on its way to a decision; each step fills in its part.

    join: ``context``, ``context_status``, ``joined_ns``;
    conversation: ``features`` (prediction points only), ``history_event_ids``,
    ``is_latest`` or ``recorded`` (why this input is not a prediction point);
    scoring: ``candidates``, ``texts``, ``model_version``.
    """

    record: AnyEvent | CustomerContext | Feedback
    origin: Origin
    received_ns: int
    key: bytes | None = None
    masked: list[str] = field(default_factory=list)
    """What PII masking changed, as ``field:kind`` (``text:card_number``)."""
    quality: Verdict | None = None
    """The data-quality gate's verdict."""
    context: CustomerContext | None = None
    context_status: str = "not_applicable"
    joined_ns: int = 0
    features: Features | None = None
    history_event_ids: list[str] = field(default_factory=list)
    is_latest: bool = True
    recorded: str | None = None
    featured_ns: int = 0
    candidates: list[tuple[str, float]] = field(default_factory=list)
    """(action, confidence), best first; only actions with an approved template."""
    texts: dict[str, str] = field(default_factory=dict)
    """Rendered reply per candidate action."""
    model_version: str | None = None
    risk: float | None = None
    """Escalation risk from the model, when it has that head."""
    risk_threshold: float | None = None
    """The model's recommended escalation threshold."""
    scored_ns: int = 0
    arm: str | None = None
    """The conversation's experiment arm, when an experiment runs."""

    if TYPE_CHECKING:

        @property
        def event(self) -> AnyEvent:
            """The record as a conversation event: what the steps after the split of feedback and
            context hold (a name for the type the stream guarantees; no check is made)."""
            return cast(AnyEvent, self.record)

        @property
        def feedback(self) -> Feedback:
            """The record as UI feedback (the acceptance step's feedback envelopes; no check is made)."""
            return cast(Feedback, self.record)

    else:  # the same names at run time, read as cheaply as the attribute itself (hot path)
        event = property(attrgetter("record"), doc="The record as a conversation event (no check).")
        feedback = property(attrgetter("record"), doc="The record as UI feedback (no check).")

    @property
    def join_key(self) -> str:
        return cast(AnyEvent | CustomerContext, self.record).customer_id

    @property
    def input_id(self) -> str:
        """The input's id: its ``event_id``, or ``customer_id@updated_at`` for context."""
        record = self.record
        if isinstance(record, CustomerContext):
            return f"{record.customer_id}@{record.version}"
        if isinstance(record, Feedback):
            return record.feedback_id
        return record.event_id
