"""Windowed per-conversation state: ordering, features, alerts and summaries.

``ConversationTracker`` is a plain state machine over one conversation's
events. It refuses duplicates, events later than the allowed lateness and
stragglers after the end; it keeps the recent turns, the agent's previous
actions, an event-time sliding window (default 60 s) of turns and words per
speaker, silence gaps and customer complaints; and at every prediction point
it builds the ``Features`` the scorer sees. Training replays STAR through the
same tracker, so training and serving compute features by one code path.

``ConversationLogic`` wraps it as a Bytewax ``StatefulLogic`` keyed by
``conversation_id``: it closes a conversation on its end event or after a
session gap with no events (wall clock) and emits a ``ConversationSummary``.
"""

from __future__ import annotations

import bisect
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TypeGuard

import bytewax.operators as op
from bytewax.dataflow import Stream, operator

from operators.boundary import Boundary, keyed_step
from operators.envelope import Envelope, now_ns
from operators.features import (
    FREE_TEXT_ACTION,
    QUERY_ACTION,
    Features,
    is_complaint,
    word_count,
)
from operators.records import mask_text, refuse, stable_id, utc_from_ns
from operators.state import KeyedLogic
from schemas import (
    Alert,
    ConversationEnd,
    ConversationStart,
    ConversationSummary,
    KbResult,
    SpeakerFigures,
    TaskSelected,
    Turn,
)
from schemas.events import AnyEvent

_HISTORY_TEXT_CHARS = 500
_MAX_ACTIONS_LOGGED = 200
_MAX_WINDOW_ENTRIES = 256


@dataclass(frozen=True)
class ConversationConfig:
    """See the ``COACH_WINDOW_S`` ... ``COACH_ALERT_*`` settings."""

    window_s: float = 60.0
    """Event-time sliding window for per-speaker turn and talk figures."""
    recent_turns: int = 8
    """Turns of history a prediction point carries."""
    allowed_lateness_s: float = 30.0
    """Events older than the newest event time minus this are refused as late."""
    session_gap_s: float = 900.0
    """Wall-clock idle time after which a conversation is closed."""
    tombstone_s: float = 600.0
    """How long an ended conversation still refuses stragglers."""
    silence_alert_s_voice: float = 20.0
    silence_alert_s_chat: float = 120.0
    complaint_alert_count: int = 2
    """Complaint turns in a conversation that raise ``repeated_complaint``."""
    dominance_share: float = 0.85
    """Agent share of words in the window above which ``agent_talk_dominance`` fires."""
    dominance_min_turns: int = 4
    alert_cooldown_s: float = 120.0
    """Event-time seconds before the same alert kind can fire again."""
    payload_limit: int = 65_536


@dataclass
class _Turn:
    sequence: int
    at: float
    speaker: str
    text: str
    event_id: str


@dataclass
class ConversationState:
    """Plain, picklable state of one conversation."""

    conversation_id: str = ""
    customer_id: str = ""
    agent_id: str = ""
    channel: str = "chat"
    started_at: float | None = None
    start_seen: bool = False
    watermark: float = float("-inf")
    """The newest event time seen (epoch seconds)."""
    last_wall: float = 0.0
    max_sequence: int = -1
    seen_event_ids: set[str] = field(default_factory=set)
    final_sequences: set[int] = field(default_factory=set)
    recent: list[_Turn] = field(default_factory=list)
    window: list[tuple[float, str, int]] = field(default_factory=list)
    """(event time, speaker, words) of turns inside the sliding window."""
    tasks: list[str] = field(default_factory=list)
    task: str | None = None
    prev_actions: list[str] = field(default_factory=list)
    kb_api: str | None = None
    kb_total_items: int | None = None
    kb_item: tuple[tuple[str, object], ...] = ()
    last_customer_text: str = ""
    first_customer_text: str = ""
    last_turn_at: float | None = None
    last_turn_speaker: str | None = None
    turns: dict[str, int] = field(default_factory=lambda: {"customer": 0, "agent": 0})
    words: dict[str, int] = field(default_factory=lambda: {"customer": 0, "agent": 0})
    max_silence_s: float = 0.0
    complaints: int = 0
    queries: int = 0
    out_of_scope: int = 0
    last_alert_at: dict[str, float] = field(default_factory=dict)
    alerts: int = 0
    actions_log: list[str] = field(default_factory=list)
    context_status: str = "missing"
    ended: bool = False
    ended_wall: float = 0.0


@dataclass(frozen=True, slots=True)
class AlertSpec:
    """An alert the tracker raised; ``ConversationLogic`` publishes it."""

    kind: str
    severity: str
    audience: tuple[str, ...]
    message: str
    evidence: dict[str, float | int | str]


@dataclass(slots=True)
class Applied:
    """What applying one event did."""

    refused: str | None = None
    """Dead-letter reason when the event was refused."""
    detail: str = ""
    features: Features | None = None
    """Set when the event is a prediction point."""
    recorded: str | None = None
    """Why an accepted event is not a prediction point."""
    is_latest: bool = True
    alerts: list[AlertSpec] = field(default_factory=list)
    ended: bool = False


class ConversationTracker:
    """Apply one conversation's events in arrival order; see the module docstring."""

    def __init__(self, config: ConversationConfig, state: ConversationState | None = None):
        self.config = config
        self.state = state if state is not None else ConversationState()

    def apply(self, event: AnyEvent, context_status: str = "present", wall: float = 0.0) -> Applied:
        state, config = self.state, self.config
        at = event.event_time.timestamp()
        if state.ended:
            return Applied(refused="conversation_ended", detail="the conversation has ended")
        if event.event_id in state.seen_event_ids:
            return Applied(refused="duplicate_event", detail=f"event {mask_text(event.event_id)} seen before")
        final_turn = isinstance(event, Turn) and event.is_final
        if (final_turn or not isinstance(event, Turn)) and event.sequence in state.final_sequences:
            return Applied(
                refused="duplicate_event",
                detail=f"sequence {event.sequence} already has a final event",
            )
        if isinstance(event, ConversationStart) and state.start_seen:
            return Applied(refused="duplicate_event", detail="the conversation already started")
        if at < state.watermark - config.allowed_lateness_s:
            return Applied(
                refused="late_event",
                detail=(
                    f"event time is {state.watermark - at:.1f}s behind the conversation's newest "
                    f"event; allowed lateness is {config.allowed_lateness_s:g}s"
                ),
            )

        if state.started_at is None:
            state.conversation_id = event.conversation_id
            state.customer_id = event.customer_id
            state.agent_id = event.agent_id
            state.channel = event.channel
            state.started_at = at
        state.seen_event_ids.add(event.event_id)
        if final_turn or not isinstance(event, Turn):
            state.final_sequences.add(event.sequence)
        is_latest = event.sequence >= state.max_sequence
        state.max_sequence = max(state.max_sequence, event.sequence)
        state.watermark = max(state.watermark, at)
        state.started_at = min(state.started_at, at)
        state.last_wall = wall
        state.context_status = context_status
        result = Applied(is_latest=is_latest)

        if isinstance(event, ConversationStart):
            state.start_seen = True
            state.tasks = list(dict.fromkeys([*event.tasks, *state.tasks]))
            if state.task is None and event.tasks:
                state.task = event.tasks[0]
            result.recorded = "conversation_start"
        elif isinstance(event, Turn):
            if not event.is_final:
                result.recorded = "interim_turn"
            else:
                self._add_turn(event, at, result)
                if event.speaker == "customer":
                    result.features = self.features("customer_turn", event.event_id)
                else:
                    result.recorded = "agent_turn"
        elif isinstance(event, TaskSelected):
            state.task = event.task
            if event.task not in state.tasks:
                state.tasks.append(event.task)
            result.features = self.features("task_selected", event.event_id)
        elif isinstance(event, KbResult):
            state.kb_api = event.api
            state.kb_total_items = event.total_items
            state.kb_item = tuple(sorted(
                (k, tuple(v) if isinstance(v, list) else v) for k, v in event.item.items()
            ))
            state.queries += 1
            self._log_action(QUERY_ACTION)
            result.features = self.features("kb_result", event.event_id)
        elif isinstance(event, ConversationEnd):
            result.recorded = "conversation_end"
            result.ended = True
        return result

    def _log_action(self, action: str) -> None:
        state = self.state
        state.prev_actions = [*state.prev_actions[-2:], action]
        if len(state.actions_log) < _MAX_ACTIONS_LOGGED:
            state.actions_log.append(action)

    def _add_turn(self, turn: Turn, at: float, result: Applied) -> None:
        state, config = self.state, self.config
        speaker = turn.speaker
        words = word_count(turn.text)
        state.turns[speaker] += 1
        state.words[speaker] += words
        entry = _Turn(turn.sequence, at, speaker, turn.text[:_HISTORY_TEXT_CHARS], turn.event_id)
        keys = [t.sequence for t in state.recent]
        state.recent.insert(bisect.bisect_right(keys, turn.sequence), entry)
        del state.recent[: -config.recent_turns]
        state.window.append((at, speaker, words))
        horizon = state.watermark - config.window_s
        state.window = [w for w in state.window if w[0] >= horizon][-_MAX_WINDOW_ENTRIES:]

        if speaker == "agent":
            self._log_action(turn.action or FREE_TEXT_ACTION)
            if turn.action == "out_of_scope":
                state.out_of_scope += 1
        else:
            state.last_customer_text = turn.text[:_HISTORY_TEXT_CHARS]
            if not state.first_customer_text:
                state.first_customer_text = state.last_customer_text

        # Silence: the gap since the previous turn, when this turn is the newest.
        if state.last_turn_at is not None and result.is_latest and at >= state.last_turn_at:
            gap = at - state.last_turn_at
            state.max_silence_s = max(state.max_silence_s, gap)
            limit = (
                config.silence_alert_s_voice if state.channel == "voice" else config.silence_alert_s_chat
            )
            if gap >= limit and state.last_turn_speaker == "customer" and speaker == "agent":
                self._alert(result, at, AlertSpec(
                    kind="long_silence",
                    severity="warning",
                    audience=("agent", "supervisor"),
                    message=f"The customer waited {gap:.0f}s for a reply.",
                    evidence={"silence_s": round(gap, 1), "limit_s": limit},
                ))
        if result.is_latest:
            state.last_turn_at = at
            state.last_turn_speaker = speaker

        if speaker == "customer" and is_complaint(turn.text):
            state.complaints += 1
            if state.complaints >= config.complaint_alert_count:
                self._alert(result, at, AlertSpec(
                    kind="repeated_complaint",
                    severity="warning" if state.complaints < 2 * config.complaint_alert_count else "critical",
                    audience=("agent", "supervisor"),
                    message=f"The customer has complained {state.complaints} times.",
                    evidence={"complaints": state.complaints},
                ))
        if speaker == "agent" and state.channel == "voice":
            turns_in_window = len(state.window)
            share = self._agent_share()
            if turns_in_window >= config.dominance_min_turns and share >= config.dominance_share:
                self._alert(result, at, AlertSpec(
                    kind="agent_talk_dominance",
                    severity="info",
                    audience=("agent",),
                    message=f"The agent spoke {share:.0%} of the words in the last {config.window_s:g}s.",
                    evidence={"agent_share": round(share, 3), "window_s": config.window_s},
                ))

    def _alert(self, result: Applied, at: float, spec: AlertSpec) -> None:
        last = self.state.last_alert_at.get(spec.kind)
        if last is not None and at - last < self.config.alert_cooldown_s:
            return
        self.state.last_alert_at[spec.kind] = at
        self.state.alerts += 1
        result.alerts.append(spec)

    def _agent_share(self) -> float:
        agent = sum(w for _, s, w in self.state.window if s == "agent")
        total = sum(w for _, _, w in self.state.window)
        return agent / total if total else 0.0

    def features(self, trigger: str, event_id: str = "") -> Features:
        """The features of the conversation as it stands, for a prediction point."""
        state = self.state
        turns_customer = sum(1 for _, s, _ in state.window if s == "customer")
        silence = 0.0 if state.last_turn_at is None else max(0.0, state.watermark - state.last_turn_at)
        return Features(
            conversation_id=state.conversation_id,
            event_id=event_id,
            agent_id=state.agent_id,
            channel=state.channel,
            trigger=trigger,
            task=state.task,
            tasks=tuple(state.tasks),
            prev_actions=tuple(state.prev_actions),
            actions_so_far=tuple(dict.fromkeys(state.actions_log)),
            kb_api=state.kb_api,
            kb_total_items=state.kb_total_items,
            kb_item=state.kb_item,
            last_customer_text=state.last_customer_text,
            first_customer_text=state.first_customer_text,
            history=tuple((t.speaker, t.text) for t in state.recent),
            turns_60s_customer=turns_customer,
            turns_60s_agent=len(state.window) - turns_customer,
            agent_talk_share_60s=self._agent_share(),
            silence_s=silence,
            complaints=state.complaints,
            n_turns=state.turns["customer"] + state.turns["agent"],
            queries=state.queries,
            out_of_scope=state.out_of_scope,
        )

    def history_event_ids(self) -> list[str]:
        return [t.event_id for t in self.state.recent]

    def summary(self, end_reason: str) -> ConversationSummary:
        state = self.state
        total_words = state.words["customer"] + state.words["agent"]
        started = state.started_at if state.started_at is not None else state.watermark
        share = {
            s: (state.words[s] / total_words if total_words else 0.0) for s in ("customer", "agent")
        }
        return ConversationSummary.trusted(
            schema_version="1.0",
            conversation_id=state.conversation_id,
            customer_id=state.customer_id,
            agent_id=state.agent_id,
            channel=state.channel,
            started_at=datetime.fromtimestamp(started, tz=UTC),
            ended_at=datetime.fromtimestamp(state.watermark, tz=UTC),
            end_reason=end_reason,
            duration_s=round(max(0.0, state.watermark - started), 3),
            turns=SpeakerFigures.trusted(**{k: float(v) for k, v in state.turns.items()}),
            words=SpeakerFigures.trusted(**{k: float(v) for k, v in state.words.items()}),
            talk_share=SpeakerFigures.trusted(**{k: round(v, 4) for k, v in share.items()}),
            max_silence_s=round(state.max_silence_s, 3),
            complaints=state.complaints,
            tasks=list(state.tasks),
            agent_actions=list(state.actions_log),
            alerts=state.alerts,
            context_status=state.context_status if state.context_status == "present" else "missing",
        )


class ConversationLogic(KeyedLogic[Envelope, object, ConversationState]):
    """Bytewax logic for one conversation: tracker, idle close, tombstone."""

    state_type = ConversationState

    def __init__(
        self,
        config: ConversationConfig,
        state: ConversationState | bytes | None = None,
        now_getter: Callable[[], float] = time.time,
    ) -> None:
        self.config = config
        self.tracker = ConversationTracker(config)
        super().__init__(state)
        self._now = now_getter

    @property
    def state(self) -> ConversationState:
        return self.tracker.state

    @state.setter
    def state(self, state: ConversationState) -> None:
        self.tracker.state = state

    def on_item(self, value: Envelope) -> tuple[Iterable[object], bool]:
        event = value.event
        applied = self.tracker.apply(event, value.context_status, self._now())
        if applied.refused is not None:
            return [refuse(value, applied.refused, applied.detail, self.config.payload_limit)], self.RETAIN
        value.is_latest = applied.is_latest
        value.featured_ns = now_ns()
        if applied.features is not None:
            value.features = applied.features
            value.history_event_ids = self.tracker.history_event_ids()
        else:
            value.recorded = applied.recorded
        out: list[object] = [value]
        out.extend(self._publish(spec, event, value.featured_ns) for spec in applied.alerts)
        if applied.ended and isinstance(event, ConversationEnd):  # only an end event ends a conversation
            out.append(self._close(event.reason))
        return out, self.RETAIN

    def on_notify(self) -> tuple[Iterable[object], bool]:
        now = self._now()
        state = self.state
        if state.ended:
            if now >= state.ended_wall + self.config.tombstone_s:
                return [], self.DISCARD
            return [], self.RETAIN
        if now >= state.last_wall + self.config.session_gap_s:
            return [self._close("idle")], self.RETAIN
        return [], self.RETAIN

    def on_eof(self) -> tuple[Iterable[object], bool]:
        if self.state.ended or self.state.started_at is None:
            return [], self.RETAIN
        return [self._close("input_exhausted")], self.RETAIN

    def notify_at(self) -> datetime | None:
        state = self.state
        due = (
            state.ended_wall + self.config.tombstone_s
            if state.ended
            else state.last_wall + self.config.session_gap_s
        )
        return datetime.fromtimestamp(due, tz=UTC)

    def _close(self, reason: str) -> ConversationSummary:
        summary = self.tracker.summary(reason)
        state = self.state
        # Keep a tombstone only: enough to refuse stragglers.
        self.tracker.state = ConversationState(
            conversation_id=state.conversation_id,
            customer_id=state.customer_id,
            agent_id=state.agent_id,
            channel=state.channel,
            started_at=state.started_at,
            watermark=state.watermark,
            ended=True,
            ended_wall=self._now(),
        )
        return summary

    def _publish(self, spec: AlertSpec, event: AnyEvent, at_ns: int) -> Alert:
        return Alert.trusted(
            schema_version="1.0",
            alert_id=stable_id("alert", event.event_id, spec.kind),
            conversation_id=event.conversation_id,
            customer_id=event.customer_id,
            agent_id=event.agent_id,
            event_id=event.event_id,
            kind=spec.kind,
            severity=spec.severity,
            audience=list(spec.audience),
            message=spec.message,
            evidence=dict(spec.evidence),
            event_time=event.event_time,
            raised_at=utc_from_ns(at_ns),
        )


@dataclass(frozen=True)
class ConversationOut:
    """Events on their way to a decision, and records published from here."""

    events: Stream[Envelope]
    outputs: Stream[object]
    """Alerts, conversation summaries and dead letters (late, duplicate, ended)."""


@operator
def track_conversations(
    step_id: str,
    up: Stream[Envelope],
    config: ConversationConfig,
    now_getter: Callable[[], float] = time.time,
    boundary: Boundary | None = None,
) -> ConversationOut:
    """Keep windowed state per conversation and mark prediction points.

    :arg step_id: Unique ID.
    :arg up: Conversation events joined with their customer context.
    :arg config: Window, lateness, session gap and alert thresholds.
    :arg now_getter: Wall clock in seconds (injected by tests).
    :arg boundary: How a failure on one record becomes its dead letter (default: named after the step).
    :returns: ``ConversationOut(events, outputs)``.
    """
    keyed = op.key_on("key_conversation", up, lambda envelope: envelope.event.conversation_id)
    boundary = boundary or Boundary(step_id, config.payload_limit)
    tracked: Stream[object] = op.key_rm(
        "unkey",
        keyed_step("track", keyed, lambda resume: ConversationLogic(config, resume, now_getter), boundary),
    )
    split = op.branch("split", tracked, _is_envelope)
    return ConversationOut(events=split.trues, outputs=split.falses)


def _is_envelope(item: object) -> TypeGuard[Envelope]:
    return isinstance(item, Envelope)
