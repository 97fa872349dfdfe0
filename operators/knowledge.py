"""The knowledge stage's steps: which customer turns seek knowledge, and retrieving for them.

``track_asks`` is keyed by conversation. It keeps the conversation's recent
final turns (text masked at the parse step, bounded in number and length)
and turns every input into an ``Ask``: a final customer turn that seeks
knowledge (``seeks_knowledge``) carries the conversation so far; any other
customer turn is ``not_needed`` with its reason; everything else is
``recorded``. State goes with the conversation's end, or after ``idle_s``.

``retrieve`` works a batch at a time: the ``LoadShedder`` decides which asks
of the batch are retrieved and which are shed (``operators.shedding``), and
the retriever ranks passages for all admitted asks with one model call.
Retrieval is injected (``Retrieval``): this layer knows nothing of indexes.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Protocol

import bytewax.operators as op
from bytewax.dataflow import Stream, operator
from bytewax.operators import StatefulLogic

from operators.boundary import Boundary, keyed_step
from operators.envelope import Envelope, now_ns
from operators.shedding import LoadShedder
from operators.state import freeze, thaw
from schemas import ConversationEnd, CustomerContext, Feedback, Turn

#: Why a customer turn seeks no knowledge.
TOO_SHORT = "knowledge.too_short"
SMALL_TALK = "knowledge.small_talk"
INTERIM = "knowledge.interim_turn"

_WORD = re.compile(r"[a-z0-9']+")
_FILLER = frozenset(
    [
        "a",
        "an",
        "and",
        "are",
        "as",
        "at",
        "be",
        "but",
        "by",
        "do",
        "does",
        "for",
        "from",
        "hi",
        "hello",
        "hey",
        "i",
        "im",
        "i'm",
        "is",
        "it",
        "it's",
        "its",
        "me",
        "my",
        "of",
        "oh",
        "ok",
        "okay",
        "on",
        "or",
        "so",
        "that",
        "the",
        "then",
        "this",
        "to",
        "uh",
        "um",
        "well",
        "yes",
        "yeah",
        "yep",
        "no",
        "nope",
        "not",
        "thanks",
        "thank",
        "you",
        "please",
        "sure",
        "great",
        "good",
        "fine",
        "bye",
        "goodbye",
        "alright",
        "right",
        "cool",
        "perfect",
        "got",
        "see",
        "wow",
        "hmm",
        "we",
        "us",
        "our",
        "your",
        "that's",
        "all",
    ]
)
_ASKS = re.compile(
    r"\?|^\s*(?:how|what|when|where|why|who|whom|which|whose|can|could|would|will|should|shall|do|does|did|is|are"
    r"|am|was|were|may|might|must|have|has|tell|explain|help|show|need|want|looking|wondering)\b"
    r"|\b(?:how (?:do|can|long|much|many)|what (?:is|are|do|does|if|happens)"
    r"|i (?:need|want|would like|'d like)|tell me|explain"
    r"|can i|do i|am i|is there|are there|information|eligib|apply|qualif|require)",
    re.IGNORECASE,
)


def seeks_knowledge(text: str, min_words: int = 4) -> str | None:
    """None if a customer's final turn seeks knowledge, else why not (``TOO_SHORT``, ``SMALL_TALK``).

    A turn seeks knowledge when it asks (a question mark, a question or request
    word) with at least two content words, or states something with at least
    ``min_words`` content words ("my license was suspended last week"):
    acknowledgements, greetings and thanks do not.
    """
    words = _WORD.findall(text.lower())
    content = [w for w in words if w not in _FILLER and len(w) > 1]
    if len(content) < 2:  # noqa: PLR2004 - one content word asks nothing
        return SMALL_TALK if words and len(content) < len(words) else TOO_SHORT
    if _ASKS.search(text) or len(content) >= min_words:
        return None
    return TOO_SHORT


@dataclass(frozen=True)
class KnowledgeConfig:
    """See the ``COACH_KNOWLEDGE_*`` settings."""

    history_turns: int = 16
    """Final turns kept per conversation (the query's context)."""
    turn_chars: int = 1_000
    """Each kept turn is cut to this many characters."""
    min_words: int = 4
    idle_s: float = 900.0
    """A conversation with no input for this long (wall clock) is forgotten."""
    top_k: int = 10
    """Passages ranked per ask."""


@dataclass(frozen=True, slots=True)
class PassageHit:
    """One ranked passage, as plain data (it crosses workers and sits in decisions)."""

    article_id: str
    article_version: str
    title: str
    heading: str
    start: int
    end: int
    text: str
    score: float
    source: str
    source_url: str | None
    tags: tuple[str, ...]


@dataclass(slots=True)
class Ask:
    """An input on its way to its knowledge decision."""

    envelope: Envelope
    outcome: str
    """``ask`` (retrieve for it), ``not_needed`` or ``recorded``."""
    reason: str | None = None
    turns: tuple[tuple[str, str], ...] = ()
    """For an ask: the conversation's recent final turns, the customer's question last."""
    asked_ns: int = 0
    """When the tracker let it out: its wait in the stage's queue starts here."""
    hits: list[PassageHit] = field(default_factory=list)
    kb_version: str | None = None
    retrieve_ms: float = 0.0
    retrieved_ns: int = 0
    shed: str | None = None
    """Why it was shed (``operators.shedding``), if it was."""

    @property
    def arrived_s(self) -> float:
        """When its input reached the job: the Kafka timestamp, else when it was read."""
        origin = self.envelope.origin
        timestamp = getattr(origin, "timestamp_ms", None)
        return timestamp / 1000 if timestamp is not None else self.envelope.received_ns / 1e9


@dataclass
class AskState:
    """Plain, picklable per-conversation state."""

    turns: list[tuple[str, str]] = field(default_factory=list)
    last_seen: float = 0.0


class AskTracker(StatefulLogic[Envelope, Ask, bytes]):
    """One conversation's recent turns; every input out as an ``Ask``."""

    def __init__(self, config: KnowledgeConfig, state: AskState | bytes | None = None,
                 now_getter: Callable[[], float] = time.time) -> None:
        self.config = config
        self.state = thaw(state) or AskState()
        self._now = now_getter

    def on_item(self, value: Envelope) -> tuple[Iterable[Ask], bool]:
        self.state.last_seen = self._now()
        record = value.record
        if isinstance(record, ConversationEnd):
            return [Ask(value, "recorded", "conversation_end")], self.DISCARD
        if not isinstance(record, Turn):
            return [Ask(value, "recorded", getattr(record, "type", "recorded"))], self.RETAIN
        if not record.is_final:
            reason = INTERIM if record.speaker == "customer" else "interim_turn"
            outcome = "not_needed" if record.speaker == "customer" else "recorded"
            return [Ask(value, outcome, reason)], self.RETAIN
        turns = self.state.turns
        turns.append((record.speaker, record.text[: self.config.turn_chars]))
        del turns[: -self.config.history_turns]
        if record.speaker != "customer":
            return [Ask(value, "recorded", "agent_turn")], self.RETAIN
        why = seeks_knowledge(record.text, self.config.min_words)
        if why is not None:
            return [Ask(value, "not_needed", why)], self.RETAIN
        return [Ask(value, "ask", None, tuple(turns), now_ns())], self.RETAIN

    def on_notify(self) -> tuple[Iterable[Ask], bool]:
        return [], self.DISCARD

    def notify_at(self) -> datetime | None:
        return datetime.fromtimestamp(self.state.last_seen + self.config.idle_s, tz=UTC)

    def snapshot(self) -> bytes:
        return freeze(self.state)


def ask_key(envelope: Envelope) -> str:
    """Conversation events by conversation; context records by customer."""
    record = envelope.record
    if isinstance(record, CustomerContext):
        return f"customer:{record.customer_id}"
    return record.conversation_id


@dataclass(frozen=True)
class AskBoundary(Boundary):
    """A step's error boundary for ``Ask`` items: a failure dead-letters the ask's input."""

    def failed(self, item: object, error: Exception) -> list:
        return super().failed(item.envelope if isinstance(item, Ask) else item, error)


@operator
def track_asks(step_id: str, up: Stream[Envelope], config: KnowledgeConfig,
               now_getter: Callable[[], float] = time.time, boundary: Boundary | None = None) -> Stream[Ask]:
    """Every conversation event as an ``Ask``; final customer turns seeking knowledge carry the conversation.

    :arg step_id: Unique ID.
    :arg up: Joined conversation events (``operators.join``).
    :arg config: History bounds and the idle time.
    :arg now_getter: Wall clock in seconds (injected by tests).
    :arg boundary: How a failure on one record becomes its dead letter (default: named after the step).
    :returns: One ``Ask`` per input (or its ``internal_error`` dead letter).
    """
    keyed = op.key_on("key_conversation", up, ask_key)
    boundary = boundary or Boundary(step_id)
    return op.key_rm(
        "unkey", keyed_step("track", keyed, lambda resume: AskTracker(config, resume, now_getter), boundary)
    )


def passthrough(envelope: Envelope) -> Ask:
    """Inputs that skip the tracker (context records, UI feedback) as recorded asks."""
    record = envelope.record
    reason = envelope.recorded or ("feedback" if isinstance(record, Feedback) else "recorded")
    return Ask(envelope, "recorded", reason)


class Retrieval(Protocol):
    """What the stage needs of retrieval (``models.knowledge.ranker.Retriever``)."""

    def passages_batch(
        self, conversations: Sequence[Sequence[tuple[str, str]]], k: int
    ) -> tuple[str, list[list[PassageHit]], list[float]]:
        """(KB version, the best ``k`` passages per conversation, each one's milliseconds)."""
        ...


def retrieve_batch(batch: list, retrieval: Retrieval, shedder: LoadShedder, k: int,
                   boundary: Boundary | None = None, clock: Callable[[], int] = now_ns) -> list:
    """Shed what the policy sheds, retrieve for the rest (one call for the batch); every ask goes on.

    If the batch's retrieval fails, each ask is retrieved alone, so that only
    the asks that fail become dead letters (``internal_error``).
    """
    asks = [item for item in batch if isinstance(item, Ask) and item.outcome == "ask"]
    if not asks:
        return batch
    admitted, shed = shedder.admit(asks)
    for ask, reason in shed:
        ask.shed = reason
    if not admitted:
        return batch
    try:
        _retrieve(admitted, retrieval, shedder, k, clock)
    except Exception:  # noqa: BLE001 - the boundary: find the asks it is about, one by one
        if boundary is None:
            raise
        failed: dict[int, list] = {}
        for ask in admitted:
            out = boundary.guard(lambda one: _retrieve([one], retrieval, shedder, k, clock), ask)
            if isinstance(out, list):
                failed[id(ask)] = out
        return [letter for item in batch for letter in failed.get(id(item), [item])]
    if boundary is not None:
        boundary.passed()
    return batch


def _retrieve(
    asks: list[Ask], retrieval: Retrieval, shedder: LoadShedder, k: int, clock: Callable[[], int]
) -> None:
    kb_version, hits, millis = retrieval.passages_batch([ask.turns for ask in asks], k)
    done = clock()
    for ask, found, ms in zip(asks, hits, millis, strict=True):
        ask.hits, ask.kb_version, ask.retrieve_ms, ask.retrieved_ns = found, kb_version, ms, done
    shedder.observe(millis)


@operator
def retrieve(step_id: str, up: Stream[Ask], retrieval: Retrieval, shedder: LoadShedder, k: int = 10,
             boundary: Boundary | None = None) -> Stream:
    """Rank passages for the asks of each batch, shedding by ``shedder``'s policy; other inputs pass.

    :arg step_id: Unique ID.
    :arg up: Asks from ``track_asks``.
    :arg retrieval: The index and re-ranker, loaded once per process.
    :arg shedder: The bounded queue and circuit breaker of this process.
    :arg k: Passages per ask.
    :arg boundary: How a failure on one ask becomes its input's dead letter (an ``AskBoundary``).
    :returns: The same asks, retrieved ones with ``hits``, shed ones with ``shed`` (and dead letters).
    """
    boundary = boundary or AskBoundary(step_id)
    return op.flat_map_batch("retrieve_batch", up,
                             lambda batch: retrieve_batch(batch, retrieval, shedder, k, boundary))
