"""Guardrails and the decision: one audit record per accepted input.

Every prediction point's top candidates pass the policy's rules; the decision
records each rule's verdict, the suggestion shown or why nothing was, the
model and policy versions and the per-stage latency. Inputs that are not
prediction points (context updates, conversation start and end, agent and
interim turns) get a ``recorded`` decision, so every input is accounted for.
"""

from __future__ import annotations

import copy
import hashlib
import json
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from functools import cached_property

import bytewax.operators as op
from bytewax.dataflow import Stream, operator
from bytewax.operators import StatefulLogic

from operators.envelope import Envelope, now_ns
from operators.records import stable_id, utc_from_ns
from schemas import (
    Alert,
    Candidate,
    ConversationEnd,
    CustomerContext,
    Decision,
    DecisionInput,
    RuleResult,
    StageLatency,
    SuggestedResponse,
    Suggestion,
    Turn,
)


@dataclass(frozen=True)
class GuardrailPolicy:
    """The rules in force; its version and content hash appear in every decision."""

    version: str = "builtin-1"
    min_confidence: float = 0.15
    """Suggestions below this confidence are suppressed."""
    top_k: int = 3
    """The suggestion plus at most ``top_k - 1`` alternatives."""
    max_chars_voice: int = 220
    """Voice suggestions must be short enough to say."""
    max_chars_chat: int = 600
    escalation_threshold: float = 0.5
    """Escalation risk at or above which an ``escalation_risk`` alert is raised."""
    escalation_cooldown_s: float = 120.0
    """Event-time seconds before a conversation's escalation alert can fire again."""

    @cached_property
    def hash(self) -> str:
        canonical = json.dumps(asdict(self), sort_keys=True, separators=(",", ":"))
        return "sha256:" + hashlib.sha256(canonical.encode()).hexdigest()


def _ms(later: int, earlier: int) -> float:
    return round(max(0, later - earlier) / 1e6, 3) if later and earlier else 0.0


def _latency(envelope: Envelope, decided: int) -> StageLatency:
    joined = envelope.joined_ns or envelope.received_ns
    featured = envelope.featured_ns or joined
    scored = envelope.scored_ns or featured
    return StageLatency.model_construct(
        join_wait_ms=_ms(joined, envelope.received_ns),
        conversation_ms=_ms(featured, joined),
        score_ms=_ms(scored, featured),
        guard_ms=_ms(decided, scored),
        total_ms=_ms(decided, envelope.received_ns),
    )


def _check(policy: GuardrailPolicy, envelope: Envelope) -> tuple[list[RuleResult], tuple[str, float] | None]:
    """Run the rules; return their verdicts and the candidate to show, if any."""
    rules: list[RuleResult] = []

    def verdict(rule_id: str, passed: bool, detail: str | None = None) -> bool:
        rules.append(RuleResult.model_construct(
            rule_id=rule_id, outcome="pass" if passed else "block", detail=None if passed else detail
        ))
        return passed

    if not verdict("latest_event", envelope.is_latest, "a newer event of this conversation arrived first"):
        return rules, None
    if not verdict("has_candidate", bool(envelope.candidates), "the model has no candidate with a template"):
        return rules, None
    limit = policy.max_chars_voice if envelope.record.channel == "voice" else policy.max_chars_chat
    fitting = [c for c in envelope.candidates if len(envelope.texts[c[0]]) <= limit]
    if not verdict("channel_length", bool(fitting), f"every candidate is longer than {limit} characters"):
        return rules, None
    best = fitting[0]
    if not verdict(
        "confidence_floor",
        best[1] >= policy.min_confidence,
        f"confidence {best[1]:.3f} is below {policy.min_confidence}",
    ):
        return rules, None
    return rules, best


_REASON_OF = {
    "latest_event": "superseded",
    "has_candidate": "no_candidate",
    "channel_length": "too_long_for_channel",
    "confidence_floor": "below_confidence_floor",
}


def decide(envelope: Envelope, policy: GuardrailPolicy, clock: Callable[[], int] = now_ns) -> list:
    """The decision for one envelope, preceded by its suggestion when one is shown."""
    record = envelope.record
    is_context = isinstance(record, CustomerContext)
    model_version = envelope.model_version
    decision_id = stable_id("decision", envelope.input_id, model_version or "-", policy.version)
    rules: list[RuleResult] = []
    suggestion = None
    if envelope.features is not None:
        rules, best = _check(policy, envelope)
        if best is not None:
            outcome, reasons = "shown", []
        else:
            outcome, reasons = "suppressed", [_REASON_OF[rules[-1].rule_id]]
    else:
        outcome, reasons = "recorded", [envelope.recorded or "recorded"]
        best = None
    decided = clock()
    decided_at = utc_from_ns(decided)
    candidates = [
        Candidate.model_construct(action=a, confidence=round(c, 4))
        for a, c in envelope.candidates[: policy.top_k]
    ]
    if best is not None:
        action, confidence = best
        suggestion = Suggestion.model_construct(
            schema_version="1.0",
            suggestion_id=stable_id("suggestion", decision_id),
            decision_id=decision_id,
            conversation_id=record.conversation_id,
            customer_id=record.customer_id,
            agent_id=record.agent_id,
            channel=record.channel,
            event_id=record.event_id,
            action=action,
            text=envelope.texts[action],
            confidence=round(confidence, 4),
            alternatives=[c for c in candidates if c.action != action][: policy.top_k - 1],
            model_version=model_version,
            policy_version=policy.version,
            created_at=decided_at,
        )
    context = record if is_context else envelope.context
    decision = Decision.model_construct(
        schema_version="1.0",
        decision_id=decision_id,
        decided_at=decided_at,
        conversation_id=None if is_context else record.conversation_id,
        customer_id=record.customer_id,
        agent_id=None if is_context else record.agent_id,
        input=DecisionInput.model_construct(
            kind=record.type,
            event_id=envelope.input_id,
            source=envelope.origin.ref(),
            is_final=record.is_final if isinstance(record, Turn) else None,
            speaker=record.speaker if isinstance(record, Turn) else None,
            history_event_ids=envelope.history_event_ids,
        ),
        outcome=outcome,
        reasons=reasons,
        suggestion_id=None if suggestion is None else suggestion.suggestion_id,
        suggestion=None if suggestion is None else SuggestedResponse.model_construct(
            action=suggestion.action, text=suggestion.text
        ),
        candidates=candidates,
        context_status="not_applicable" if is_context else envelope.context_status,
        context_version=None if context is None else context.version,
        model_version=model_version,
        policy_version=policy.version,
        policy_hash=policy.hash,
        rules=rules,
        latency_ms=_latency(envelope, decided),
        risk=None if envelope.risk is None else round(envelope.risk, 4),
    )
    return [decision] if suggestion is None else [suggestion, decision]


@dataclass
class GuardState:
    """Plain, picklable per-conversation state of the guardrails."""

    risk_alert_at: float | None = None
    """Event time (epoch seconds) of the last escalation alert."""
    last_seen: float = 0.0
    """Wall clock of the last input."""


class GuardLogic(StatefulLogic[Envelope, object, GuardState]):
    """Decide on each input of one conversation; raise escalation alerts."""

    def __init__(
        self,
        policy: GuardrailPolicy,
        idle_s: float,
        state: GuardState | None = None,
        now_getter: Callable[[], float] = time.time,
    ) -> None:
        self.policy = policy
        self.idle_s = idle_s
        self.state = state if state is not None else GuardState()
        self._now = now_getter

    def on_item(self, value: Envelope) -> tuple[Iterable[object], bool]:
        self.state.last_seen = self._now()
        out = decide(value, self.policy)
        alert = self._escalation(value)
        if alert is not None:
            out.append(alert)
        done = isinstance(value.record, (CustomerContext, ConversationEnd))
        return out, self.DISCARD if done else self.RETAIN

    def _escalation(self, envelope: Envelope) -> Alert | None:
        risk, record, policy = envelope.risk, envelope.record, self.policy
        if risk is None or risk < policy.escalation_threshold or isinstance(record, CustomerContext):
            return None
        at = record.event_time.timestamp()
        last = self.state.risk_alert_at
        if last is not None and at - last < policy.escalation_cooldown_s:
            return None
        self.state.risk_alert_at = at
        return Alert.model_construct(
            schema_version="1.0",
            alert_id=stable_id("alert", record.event_id, "escalation_risk"),
            conversation_id=record.conversation_id,
            customer_id=record.customer_id,
            agent_id=record.agent_id,
            event_id=record.event_id,
            kind="escalation_risk",
            severity="critical" if risk >= (1 + policy.escalation_threshold) / 2 else "warning",
            audience=["agent", "supervisor"],
            message=f"Escalation risk {risk:.0%}: the customer may be getting frustrated.",
            evidence={
                "risk": round(risk, 4),
                "threshold": policy.escalation_threshold,
                "model_version": envelope.model_version or "",
            },
            event_time=record.event_time,
            raised_at=utc_from_ns(now_ns()),
        )

    def on_notify(self) -> tuple[Iterable[object], bool]:
        return [], self.DISCARD

    def notify_at(self) -> datetime | None:
        return datetime.fromtimestamp(self.state.last_seen + self.idle_s, tz=timezone.utc)

    def snapshot(self) -> GuardState:
        return copy.deepcopy(self.state)


def guard_key(envelope: Envelope) -> str:
    """Conversation events by conversation; context records by customer."""
    record = envelope.record
    if isinstance(record, CustomerContext):
        return f"customer:{record.customer_id}"
    return record.conversation_id


@operator
def apply_guardrails(
    step_id: str,
    up: Stream[Envelope],
    policy: GuardrailPolicy,
    idle_s: float = 900.0,
    now_getter: Callable[[], float] = time.time,
) -> Stream[object]:
    """Decide on every input: the suggestion (if shown), the decision, escalation alerts.

    Keyed by conversation, so per-conversation rules keep their state; a
    conversation's state goes with its end event or after ``idle_s``.

    :arg step_id: Unique ID.
    :arg up: Scored prediction points and recorded inputs.
    :arg policy: The guardrail policy in force.
    :arg idle_s: Wall-clock idle time after which state is dropped.
    :arg now_getter: Wall clock in seconds (injected by tests).
    :returns: ``Suggestion``, ``Decision`` and ``Alert`` records.
    """
    keyed = op.key_on("key_conversation", up, guard_key)

    def build(resume: GuardState | None) -> GuardLogic:
        return GuardLogic(policy, idle_s, resume, now_getter)

    return op.key_rm("unkey", op.stateful("decide", keyed, build))
