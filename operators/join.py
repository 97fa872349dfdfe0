"""Stream-table join of conversation events with the latest customer context.

Keyed by ``customer_id``. Context may arrive before or after a conversation's
first event; a newer ``updated_at`` replaces it. An event whose customer has
no context yet is held for at most ``hold_s`` (wall clock) and then proceeds
marked ``context_missing``; it is never dropped. Events of one customer leave
in the order they arrived. A customer's state is released once none of its
conversations is active and it has been idle for ``context_ttl_s``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime

import bytewax.operators as op
from bytewax.dataflow import Stream, operator

from operators.boundary import Boundary, keyed_step, split_dead_letters
from operators.envelope import Envelope, now_ns
from operators.records import refuse
from operators.state import KeyedLogic
from schemas import ConversationEnd, CustomerContext, DeadLetter


@dataclass(frozen=True)
class JoinConfig:
    """See ``COACH_CONTEXT_WAIT_MS``, ``COACH_SESSION_GAP_S`` and ``COACH_CONTEXT_TTL_S``."""

    hold_s: float = 2.0
    """How long an event waits for its customer's context."""
    idle_s: float = 300.0
    """A conversation with no event for this long no longer pins the context."""
    context_ttl_s: float = 3600.0
    """How long an unused context stays after the customer's last activity."""
    max_pending: int = 1000
    """Held events per customer beyond which they proceed without context."""
    payload_limit: int = 65_536


@dataclass
class JoinState:
    """Plain, picklable per-customer state."""

    context: CustomerContext | None = None
    pending: list[Envelope] = field(default_factory=list)
    hold_until: float | None = None
    gave_up: bool = False
    """The hold expired: later events pass at once until context arrives."""
    conversations: dict[str, float] = field(default_factory=dict)
    """Active conversation id -> wall time of its last event."""
    touched: float = 0.0


def _at(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, tz=UTC)


class ContextJoinLogic(KeyedLogic[Envelope, Envelope | DeadLetter, JoinState]):
    """Join one customer's conversation events with its latest context."""

    state_type = JoinState

    def __init__(
        self,
        config: JoinConfig,
        state: JoinState | bytes | None = None,
        now_getter: Callable[[], float] = time.time,
    ) -> None:
        super().__init__(state)
        self.config = config
        self._now = now_getter

    def held(self) -> list[Envelope]:
        return list(self.state.pending)

    # -- inputs -------------------------------------------------------------
    def on_item(self, value: Envelope) -> tuple[Iterable[Envelope | DeadLetter], bool]:
        now = self._now()
        state = self.state
        state.touched = now
        record = value.record
        if isinstance(record, CustomerContext):
            return self._apply_context(value, record, now), self.RETAIN
        if isinstance(record, ConversationEnd):
            state.conversations.pop(record.conversation_id, None)
        else:
            state.conversations[record.conversation_id] = now
        if state.context is not None or state.gave_up:
            return [self._release(value, "present" if state.context else "missing")], self.RETAIN
        state.pending.append(value)
        if state.hold_until is None:
            state.hold_until = now + self.config.hold_s
        if len(state.pending) > self.config.max_pending:
            return self._give_up(), self.RETAIN
        return [], self.RETAIN

    def _apply_context(
        self, envelope: Envelope, context: CustomerContext, now: float
    ) -> list[Envelope | DeadLetter]:
        current = self.state.context
        if current is not None and context.updated_at <= current.updated_at:
            if context.updated_at < current.updated_at:
                reason, detail = "stale_context", (
                    f"updated_at {context.version} is older than the current {current.version}"
                )
            elif context == current:
                reason, detail = "duplicate_context", f"the context as of {current.version} again"
            else:
                reason = None  # same instant, new content: the later arrival wins
            if reason is not None:
                return [refuse(envelope, reason, detail, self.config.payload_limit)]
        self.state.context = context
        self.state.gave_up = False
        envelope.recorded = "context_updated" if current is not None else "context_applied"
        envelope.joined_ns = now_ns()
        return [envelope, *self._flush("present")]

    # -- timers -------------------------------------------------------------
    def on_notify(self) -> tuple[Iterable[Envelope | DeadLetter], bool]:
        now = self._now()
        state = self.state
        out: list[Envelope | DeadLetter] = []
        if state.pending and state.hold_until is not None and now >= state.hold_until:
            out = [*self._give_up()]
        idle_before = now - self.config.idle_s
        for conversation_id, seen in list(state.conversations.items()):
            if seen <= idle_before:
                del state.conversations[conversation_id]
        if not state.conversations and not state.pending:
            state.gave_up = False
            if now >= state.touched + self.config.context_ttl_s:
                return out, self.DISCARD
        return out, self.RETAIN

    def on_eof(self) -> tuple[Iterable[Envelope | DeadLetter], bool]:
        # The input is exhausted: nothing more will arrive for held events.
        return self._give_up() if self.state.pending else [], self.RETAIN

    def notify_at(self) -> datetime | None:
        state = self.state
        times = [state.touched + self.config.context_ttl_s]
        if state.pending and state.hold_until is not None:
            times.append(state.hold_until)
        if state.conversations:
            times.append(min(state.conversations.values()) + self.config.idle_s)
        return _at(min(times))

    # -- helpers ------------------------------------------------------------
    def _release(self, envelope: Envelope, status: str) -> Envelope:
        envelope.context = self.state.context
        envelope.context_status = status
        envelope.joined_ns = now_ns()
        return envelope

    def _flush(self, status: str) -> list[Envelope]:
        pending, self.state.pending = self.state.pending, []
        self.state.hold_until = None
        return [self._release(envelope, status) for envelope in pending]

    def _give_up(self) -> list[Envelope]:
        self.state.gave_up = True
        return self._flush("missing")


@dataclass(frozen=True)
class JoinOut:
    """Events with their context, accepted context records, and refused ones."""

    events: Stream[Envelope]
    contexts: Stream[Envelope]
    errs: Stream[DeadLetter]


@operator
def join_context(
    step_id: str,
    up: Stream[Envelope],
    config: JoinConfig,
    now_getter: Callable[[], float] = time.time,
    boundary: Boundary | None = None,
) -> JoinOut:
    """Join conversation events with the latest context of their customer.

    Both inputs arrive on ``up`` (an ``Envelope`` holds either); they are
    keyed by ``customer_id``. Stale or repeated context goes to ``errs``.

    :arg step_id: Unique ID.
    :arg up: Parsed conversation events and customer-context records.
    :arg config: Hold time and state lifetimes.
    :arg now_getter: Wall clock in seconds (injected by tests).
    :arg boundary: How a failure on one record becomes its dead letter (default: named after the step).
    :returns: ``JoinOut(events, contexts, errs)``.
    """
    keyed = op.key_on("key_customer", up, lambda envelope: envelope.join_key)
    boundary = boundary or Boundary(step_id, config.payload_limit)
    joined: Stream[Envelope | DeadLetter] = op.key_rm(
        "unkey",
        keyed_step("join", keyed, lambda resume: ContextJoinLogic(config, resume, now_getter), boundary),
    )
    oks, errs = split_dead_letters("split_errs", joined, Envelope)
    kinds = op.branch("split_contexts", oks, lambda envelope: envelope.recorded is None)
    return JoinOut(events=kinds.trues, contexts=kinds.falses, errs=errs)
