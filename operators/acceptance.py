"""Acceptance: join UI feedback to suggestions, and infer it from the agent's next turn.

Keyed by conversation. The step sees, in each conversation's order, the
guardrails' ``Suggestion`` and shown ``Decision`` records, the conversation's
input envelopes (passed through by the guardrails just before their
decision) and the ``Feedback`` reports of agent UIs (``coaching.feedback``).
It keeps the conversation's shown suggestions for ``ttl_s`` (wall clock; the
whole state goes when the conversation has been idle that long) and:

- **click**: a ``Feedback`` verdict (accepted, edited, dismissed) on a
  suggestion becomes an ``Acceptance(mode="click")``, the first verdict per
  suggestion only. A ``shown`` report, or a later verdict on a suggestion
  already judged, becomes a ``recorded`` ``Decision`` (``input.kind``
  ``feedback``, reason ``feedback_shown`` / ``feedback_superseded``). A
  repeated ``feedback_id`` is dead-lettered ``duplicate_event``; feedback on a
  suggestion id the conversation has not shown waits up to ``wait_s`` for it
  (the feedback topic can run ahead of the events) and is then dead-lettered
  ``unknown_suggestion`` (also at the end of a finite input). So every
  feedback record is accounted for.
- **inferred**: the agent's next action after a shown suggestion judges it:
  an agent turn with an ``action`` label (STAR replays, template sends) is
  accepted when the label equals the suggested action (``basis="action"``);
  a knowledge-base result means the agent queried (action ``query``); an
  unlabelled final agent turn is accepted when its similarity to the
  suggestion text (``difflib.SequenceMatcher`` ratio, by cydifflib, over case-folded,
  whitespace-collapsed text) is at least ``similarity`` (``basis=
  "similarity"``). A suggestion overtaken by another prediction point (the
  customer spoke again, a task flow opened) or by the end of the
  conversation before the agent acted is not judged: there is no agent
  action to compare with. ``channels`` says where inference runs (``all``
  or ``voice``; ``off`` disables it).
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import TypeGuard, cast

import bytewax.operators as op
from bytewax.dataflow import Stream, operator
from cydifflib import SequenceMatcher  # difflib's, compiled: the same ratios

from operators.boundary import Boundary, keyed_step
from operators.envelope import Envelope
from operators.records import mask_text, refuse, stable_id, utc_from_ns
from operators.state import KeyedLogic
from schemas import (
    Acceptance,
    ConversationEnd,
    Decision,
    DecisionInput,
    Feedback,
    KbResult,
    Suggestion,
    TaskSelected,
    Turn,
)
from schemas.events import AnyEvent

#: The action a knowledge-base result shows the agent took (as STAR labels it).
QUERY_ACTION = "query"
VERDICTS = {"accepted": True, "edited": True, "dismissed": False}
_SPACE = re.compile(r"\s+")
#: Shown suggestions kept per conversation at most (the oldest go first).
MAX_SUGGESTIONS = 256


@dataclass(frozen=True)
class AcceptanceConfig:
    """See ``COACH_FEEDBACK_TTL_S``, ``COACH_FEEDBACK_WAIT_S``, ``COACH_ACCEPT_*``."""

    ttl_s: float = 1800.0
    """Wall-clock seconds a shown suggestion can still be judged by a click."""
    wait_s: float = 30.0
    """Wall-clock seconds feedback on an unknown suggestion waits for it."""
    similarity: float = 0.8
    """Unlabelled agent replies at least this similar to the suggestion count as accepted."""
    channels: str = "all"
    """Where acceptance is inferred: ``all``, ``voice`` or ``off``."""
    payload_limit: int = 65_536


@dataclass(frozen=True)
class Shown:
    """A shown suggestion, with what its verdicts count by (replaced, never changed, when judged)."""

    suggestion_id: str
    decision_id: str
    conversation_id: str
    action: str
    text: str
    channel: str
    agent_id: str
    customer_id: str
    model_version: str
    policy_version: str
    created_at: float
    """Wall clock (epoch seconds) the suggestion was made."""
    point_at: float | None
    """Event time of the prediction point it was made at."""
    seen_wall: float
    policy_name: str = ""
    policy_hash: str = ""
    rules: list[str] = field(default_factory=list)
    arm: str | None = None
    experiment: str | None = None
    clicked: bool = False
    feedback_ids: tuple[str, ...] = ()


@dataclass
class AcceptanceState:
    """Plain, picklable per-conversation state."""

    shown: dict[str, Shown] = field(default_factory=dict)
    """suggestion id -> the suggestion, oldest first."""
    pending: str | None = None
    """The latest shown suggestion not yet judged by the agent's next action."""
    point_at: float | None = None
    """Event time of the latest prediction point."""
    waiting: list[tuple[float, Envelope]] = field(default_factory=list)
    """(deadline, feedback envelope) for suggestions not seen yet."""
    last_seen: float = 0.0


def normalise(text: str) -> str:
    return _SPACE.sub(" ", text.casefold()).strip()


def similarity(reply: str, suggestion: str) -> float:
    """How alike the agent's reply and the suggestion are, 0 to 1 (difflib's ratio, computed by cydifflib)."""
    a, b = normalise(reply), normalise(suggestion)
    if not a and not b:
        return 1.0
    return SequenceMatcher(None, a, b, autojunk=False).ratio()


class AcceptanceLogic(KeyedLogic[object, object, AcceptanceState]):
    """Bytewax logic for one conversation; see the module docstring."""

    state_type = AcceptanceState

    def __init__(
        self,
        config: AcceptanceConfig,
        state: AcceptanceState | bytes | None = None,
        now_getter: Callable[[], float] = time.time,
    ) -> None:
        super().__init__(state)
        self.config = config
        self._now = now_getter

    def held(self) -> list[Envelope]:
        return [envelope for _, envelope in self.state.waiting]

    # -- the stream ----------------------------------------------------------
    def on_item(self, value: object) -> tuple[Iterable[object], bool]:
        now = self._now()
        state = self.state
        state.last_seen = now
        out: list[object] = []
        if isinstance(value, Suggestion):
            self._remember(value, now)
            out += self._release(value.suggestion_id, now)
        elif isinstance(value, Decision):
            shown = state.shown.get(value.suggestion_id or "")
            if shown is not None:
                state.shown[shown.suggestion_id] = replace(
                    shown, policy_name=value.policy_name, policy_hash=value.policy_hash,
                    rules=sorted({r.rule_id for r in value.rules if r.outcome in ("block", "rewrite")}),
                    arm=value.arm, experiment=value.experiment,
                )
        elif isinstance(value, Envelope):
            if isinstance(value.record, Feedback):
                out += self._feedback(value, now)
            else:
                out += self._observe(value)
        out += self._expire(now)
        return out, self.RETAIN if self._alive() else self.DISCARD

    def on_notify(self) -> tuple[Iterable[object], bool]:
        out = self._expire(self._now())
        return out, self.RETAIN if self._alive() else self.DISCARD

    def on_eof(self) -> tuple[Iterable[object], bool]:
        # A finite input is over: feedback still waiting will never find its suggestion.
        out = [self._unknown(envelope) for _, envelope in self.state.waiting]
        self.state.waiting = []
        return out, self.RETAIN if self._alive() else self.DISCARD

    def notify_at(self) -> datetime:
        state = self.state
        due = [deadline for deadline, _ in state.waiting]
        due += [s.seen_wall + self.config.ttl_s for s in state.shown.values()]
        due.append(state.last_seen + self.config.ttl_s)  # an idle conversation's state goes
        return datetime.fromtimestamp(min(due), tz=UTC)

    def _alive(self) -> bool:
        state = self.state
        return bool(state.shown or state.waiting) or state.last_seen + self.config.ttl_s > self._now()

    # -- suggestions ---------------------------------------------------------
    def _remember(self, suggestion: Suggestion, now: float) -> None:
        state = self.state
        if suggestion.suggestion_id in state.shown:
            return
        state.shown[suggestion.suggestion_id] = Shown(
            suggestion_id=suggestion.suggestion_id,
            decision_id=suggestion.decision_id,
            conversation_id=suggestion.conversation_id,
            action=suggestion.action,
            text=suggestion.text,
            channel=suggestion.channel,
            agent_id=suggestion.agent_id,
            customer_id=suggestion.customer_id,
            model_version=suggestion.model_version,
            policy_version=suggestion.policy_version,
            created_at=suggestion.created_at.timestamp(),
            point_at=state.point_at,
            seen_wall=now,
        )
        while len(state.shown) > MAX_SUGGESTIONS:
            del state.shown[next(iter(state.shown))]
        if self.config.channels in ("all", suggestion.channel):
            state.pending = suggestion.suggestion_id

    def _expire(self, now: float) -> list[object]:
        state = self.state
        out: list[object] = []
        if state.waiting:
            due = [(d, e) for d, e in state.waiting if d <= now]
            if due:
                state.waiting = [(d, e) for d, e in state.waiting if d > now]
                out += [self._unknown(envelope) for _, envelope in due]
        ttl = self.config.ttl_s
        for sid in [sid for sid, s in state.shown.items() if s.seen_wall + ttl <= now]:
            del state.shown[sid]
        if state.pending is not None and state.pending not in state.shown:
            state.pending = None
        return out

    # -- inferred acceptance -------------------------------------------------
    def _observe(self, envelope: Envelope) -> list[Acceptance]:
        record, state = envelope.event, self.state
        if envelope.features is not None:  # a prediction point
            at = record.event_time.timestamp()
            verdict = None
            if isinstance(record, KbResult):
                verdict = self._infer(record, at, agent_action=QUERY_ACTION)
            state.pending = None  # a new point: the previous suggestion is judged or overtaken
            state.point_at = at
            return [verdict] if verdict is not None else []
        if isinstance(record, Turn) and record.speaker == "agent" and record.is_final:
            verdict = self._infer(record, record.event_time.timestamp(), agent_action=record.action,
                                  reply=record.text)
            state.pending = None
            return [verdict] if verdict is not None else []
        if isinstance(record, (ConversationEnd, TaskSelected)):
            state.pending = None
        return []

    def _infer(
        self, record, at: float, agent_action: str | None, reply: str | None = None
    ) -> Acceptance | None:
        shown = self.state.shown.get(self.state.pending or "")
        if shown is None:
            return None
        if agent_action is not None:
            accepted, basis, score = agent_action == shown.action, "action", None
        else:
            score = round(similarity(reply or "", shown.text), 4)
            accepted, basis = score >= self.config.similarity, "similarity"
        latency = None if shown.point_at is None else round(max(0.0, at - shown.point_at), 3)
        return self._acceptance(
            shown, "inferred", basis, "accepted" if accepted else "ignored", accepted,
            at=record.event_time, latency_s=latency, agent_action=agent_action, similarity=score,
            event_id=record.event_id,
        )

    # -- clicks --------------------------------------------------------------
    def _feedback(self, envelope: Envelope, now: float) -> list[object]:
        feedback = envelope.feedback
        state = self.state
        seen = any(feedback.feedback_id in s.feedback_ids for s in state.shown.values()) or any(
            e.feedback.feedback_id == feedback.feedback_id for _, e in state.waiting
        )
        if seen:
            return [
                self._dead(
                    envelope, "duplicate_event", f"feedback {mask_text(feedback.feedback_id)} seen before"
                )
            ]
        shown = state.shown.get(feedback.suggestion_id)
        if shown is None:
            state.waiting.append((now + self.config.wait_s, envelope))
            return []
        return [self._judge(shown, envelope)]

    def _release(self, suggestion_id: str, now: float) -> list[object]:
        """Feedback that was waiting for this suggestion."""
        state = self.state
        ready = [e for _, e in state.waiting if e.feedback.suggestion_id == suggestion_id]
        if not ready:
            return []
        state.waiting = [(d, e) for d, e in state.waiting if e.feedback.suggestion_id != suggestion_id]
        shown = state.shown[suggestion_id]
        return [self._judge(shown, envelope) for envelope in ready]

    def _judge(self, shown: Shown, envelope: Envelope) -> object:
        feedback = envelope.feedback
        shown = self.state.shown[shown.suggestion_id]  # as an earlier verdict of this batch left it
        clicked = shown.clicked or feedback.event != "shown"
        self.state.shown[shown.suggestion_id] = replace(
            shown, feedback_ids=(*shown.feedback_ids, feedback.feedback_id), clicked=clicked
        )
        if feedback.event == "shown":
            return self._recorded(shown, envelope, "feedback_shown")
        if shown.clicked:
            return self._recorded(shown, envelope, "feedback_superseded")
        latency = round(max(0.0, feedback.at.timestamp() - shown.created_at), 3)
        return self._acceptance(
            shown, "click", "click", feedback.event, VERDICTS[feedback.event], at=feedback.at,
            latency_s=latency, feedback_id=feedback.feedback_id,
            edit_distance=feedback.edit_distance if feedback.event == "edited" else None,
        )

    # -- records -------------------------------------------------------------
    def _acceptance(self, shown: Shown, mode: str, basis: str, outcome: str, accepted: bool, *, at,
                    latency_s=None, agent_action=None, similarity=None, event_id=None, feedback_id=None,
                    edit_distance=None) -> Acceptance:
        return Acceptance.trusted(
            schema_version="1.0",
            acceptance_id=stable_id("acceptance", shown.suggestion_id, mode),
            suggestion_id=shown.suggestion_id,
            decision_id=shown.decision_id,
            conversation_id=shown.conversation_id,
            agent_id=shown.agent_id,
            channel=shown.channel,
            mode=mode,
            basis=basis,
            feedback_id=feedback_id,
            event_id=event_id,
            outcome=outcome,
            accepted=accepted,
            action=shown.action,
            agent_action=agent_action,
            similarity=similarity,
            edit_distance=edit_distance,
            arm=shown.arm,
            experiment=shown.experiment,
            model_version=shown.model_version,
            policy_version=shown.policy_version,
            rules=list(shown.rules),
            latency_s=latency_s,
            at=at,
        )

    def _recorded(self, shown: Shown, envelope: Envelope, reason: str) -> Decision:
        feedback = envelope.feedback
        return Decision.trusted(
            schema_version="1.0",
            decision_id=stable_id("decision", feedback.feedback_id, "feedback"),
            decided_at=utc_from_ns(time.time_ns()),
            conversation_id=feedback.conversation_id,
            customer_id=shown.customer_id,
            agent_id=feedback.agent_id,
            input=DecisionInput.trusted(
                kind="feedback", event_id=feedback.feedback_id, source=envelope.origin.ref(),
                is_final=None, speaker=None, history_event_ids=[],
            ),
            outcome="recorded",
            reasons=[reason],
            suggestion_id=shown.suggestion_id,
            suggestion=None,
            candidates=[],
            context_status="not_applicable",
            context_version=None,
            model_version=shown.model_version,
            policy_name=shown.policy_name,
            policy_version=shown.policy_version,
            policy_hash=shown.policy_hash,
            rules=[],
            masked=[],
            latency_ms=None,
            quality=None,
            run_id=None,
            risk=None,
            arm=shown.arm,
            experiment=shown.experiment,
        )

    def _dead(self, envelope: Envelope, reason: str, detail: str):
        return refuse(envelope, reason, detail, self.config.payload_limit)

    def _unknown(self, envelope: Envelope):
        feedback = envelope.feedback
        return self._dead(
            envelope, "unknown_suggestion",
            f"suggestion {mask_text(feedback.suggestion_id)} was not shown in conversation "
            f"{mask_text(feedback.conversation_id)} "
            f"within {self.config.wait_s:g}s (or is older than the feedback TTL)",
        )


def is_feedback(item: object) -> bool:
    """The inputs the acceptance step decides: feedback (the rest were decided by the guardrails)."""
    return isinstance(item, Envelope) and isinstance(item.record, Feedback)


def acceptance_key(item: Envelope | Suggestion | Decision) -> str:
    """The conversation of an item the step wants (``wants``): every one has it."""
    if isinstance(item, Envelope):
        return cast(AnyEvent | Feedback, item.record).conversation_id
    return cast(str, item.conversation_id)


def wants(item: object) -> TypeGuard[Envelope | Suggestion | Decision]:
    """What the acceptance step takes from the guardrails' output: envelopes of
    conversation events, suggestions and shown decisions."""
    if isinstance(item, Envelope):
        return hasattr(item.record, "conversation_id")
    if isinstance(item, Suggestion):
        return True
    return isinstance(item, Decision) and item.outcome == "shown"


@operator
def track_acceptance(
    step_id: str,
    up: Stream[object],
    config: AcceptanceConfig,
    now_getter: Callable[[], float] = time.time,
    boundary: Boundary | None = None,
) -> Stream[object]:
    """Acceptance per shown suggestion, by click and inferred; see the module docstring.

    :arg step_id: Unique ID.
    :arg up: Feedback envelopes, and the guardrails' suggestions, shown decisions and
        passed-through conversation envelopes.
    :arg config: TTL, wait, similarity threshold and channels.
    :arg now_getter: Wall clock in seconds (injected by tests).
    :arg boundary: How a failure on one record becomes its dead letter (default: named after the step;
        it accounts for feedback only: the other items' inputs were decided by the guardrails).
    :returns: ``Acceptance`` records, ``recorded`` feedback ``Decision``s and dead letters.
    """
    # One step keeps what the step wants, keyed by conversation.
    keyed = op.filter_map(
        "key_wanted", up, lambda item: (acceptance_key(item), item) if wants(item) else None
    )
    boundary = boundary or Boundary(step_id, config.payload_limit, owns=is_feedback)

    def build(resume: AcceptanceState | bytes | None) -> AcceptanceLogic:
        return AcceptanceLogic(config, resume, now_getter)

    return op.key_rm("unkey", keyed_step("judge", keyed, build, boundary))
