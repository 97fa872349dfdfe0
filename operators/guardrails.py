"""Guardrails and the decision log: one audit record per accepted input.

Keyed by conversation. Each prediction point's ranked candidates pass the
policy in force (``policies/*.yaml``, see ``schemas/policy.py``):

- per candidate, in rank order: approved template with plain slot values
  (``injection.templates_only``), consent (no marketing to opted-out
  customers), jurisdiction, flow compliance (no disclosure before identity
  verification), repetition (never the same suggestion twice), channel form
  (length per channel); the first candidate passing them all is chosen;
- then the chosen one: the confidence floor, the rate limit (at most one
  suggestion per interval) and the top-k limit on alternatives.

The decision records every rule's verdict (pass, block, rewrite or alert),
what PII masking changed, the suggestion or why none was shown, the model and
policy versions and hash, and per-stage latency. Inputs that are not
prediction points get a ``recorded`` decision, so every input is accounted
for. Alerts: escalation risk, prohibited agent phrases, required steps
missing by their deadline.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import lru_cache
from typing import cast

import bytewax.operators as op
from bytewax.dataflow import Stream, operator

from operators.boundary import Boundary, keyed_step
from operators.envelope import Envelope, now_ns
from operators.features import Features
from operators.policy import Policy
from operators.records import stable_id, utc_from_ns
from operators.scoring import placeholder
from operators.state import KeyedLogic
from schemas import (
    Alert,
    Candidate,
    ConversationEnd,
    CustomerContext,
    Decision,
    DecisionInput,
    KbResult,
    QualityResult,
    RuleResult,
    StageLatency,
    SuggestedResponse,
    Suggestion,
    Turn,
)
from schemas.events import AnyEvent
from schemas.policy import JurisdictionRule, VerifyBeforeDisclosureRule

#: A structural rule, not in the policy: a point superseded by a newer event.
LATEST_EVENT = "stream.latest_event"
#: A structural rule, not in the policy: a suggestion that states a fact (a template slot filled from the
#: knowledge-base result) must state the result's value; checked where the point has a result.
GROUNDED = "grounding.stated_facts"
NO_CANDIDATE = "model.no_candidate"


@dataclass
class GuardState:
    """Plain, picklable per-conversation state of the guardrails."""

    started_at: float | None = None
    """Event time (epoch seconds) of the conversation's first event."""
    last_seen: float = 0.0
    """Wall clock of the last input."""
    last_shown_at: float | None = None
    shown: list[str] = field(default_factory=list)
    """Suggestion texts shown so far (for the repetition rule)."""
    verified: list[str] = field(default_factory=list)
    """Ids of verification rules satisfied in this conversation."""
    steps_done: list[str] = field(default_factory=list)
    steps_alerted: list[str] = field(default_factory=list)
    risk_alert_at: float | None = None


def _ms(later: int, earlier: int) -> float:
    return round(max(0, later - earlier) / 1e6, 3) if later and earlier else 0.0


def _latency(envelope: Envelope, decided: int) -> StageLatency:
    joined = envelope.joined_ns or envelope.received_ns
    featured = envelope.featured_ns or joined
    scored = envelope.scored_ns or featured
    return StageLatency.trusted(
        join_wait_ms=_ms(joined, envelope.received_ns),
        conversation_ms=_ms(featured, joined),
        score_ms=_ms(scored, featured),
        guard_ms=_ms(decided, scored),
        total_ms=_ms(decided, envelope.received_ns),
    )


def record_digest(record: CustomerContext) -> str:
    """A short digest of a record's content, as its contract serialises it."""
    return hashlib.blake2b(record.model_dump_json().encode(), digest_size=8).hexdigest()


@lru_cache(maxsize=4096)
def _result(rule_id: str, outcome: str, detail: str | None = None) -> RuleResult:
    """A rule's verdict. Records are frozen, so decisions share the common ones
    (a prediction point takes six to ten, most of them ``pass``)."""
    return RuleResult.trusted(rule_id=rule_id, outcome=outcome, detail=detail)


class Guard:
    """The policy's rules for one conversation; ``GuardLogic`` runs it in the stream."""

    def __init__(
        self, templates, state: GuardState | None = None, run_id: str | None = None,
        experiment: str | None = None,
        untemplated: bool = False,
    ) -> None:
        self.templates = templates
        self.state = state if state is not None else GuardState()
        self.run_id = run_id
        self.experiment = experiment
        self.untemplated = untemplated
        """Evaluation only: a candidate without a template passes as its bare placeholder ``[action]``."""

    # -- what the conversation shows about compliance ------------------------
    def observe(self, envelope: Envelope, policy: Policy) -> None:
        """Note verification and required steps from this input."""
        if isinstance(envelope.record, CustomerContext):
            return
        record, state = envelope.event, self.state
        at = record.event_time.timestamp()
        state.started_at = at if state.started_at is None else min(state.started_at, at)
        if isinstance(record, Turn) and record.speaker == "agent" and record.is_final:
            for rule in policy.rules.verify_before_disclosure:
                if record.action in rule.verified_by.actions and rule.id not in state.verified:
                    state.verified.append(rule.id)
            text = record.text.lower()
            for step, phrases in policy.steps:
                if step.id not in state.steps_done and (
                    record.action in step.agent_actions or (phrases is not None and phrases.search(text))
                ):
                    state.steps_done.append(step.id)
        if isinstance(record, KbResult):
            for rule in policy.rules.verify_before_disclosure:
                verified_by = rule.verified_by
                if (
                    record.api in verified_by.kb_apis
                    and any(f in record.item for f in verified_by.kb_fields_any)
                    and rule.id not in state.verified
                ):
                    state.verified.append(rule.id)

    # -- the candidates ------------------------------------------------------
    def choose(self, envelope: Envelope, policy: Policy) -> tuple[tuple[str, float] | None, list[RuleResult]]:
        """The first candidate every candidate rule passes, and each rule's verdict."""
        rules = policy.rules
        record = envelope.event
        features = cast(Features, envelope.features)  # choose is called for prediction points only
        context = envelope.context
        opted_out = (
            context.marketing_opt_out if context is not None
            else rules.consent.missing_context_means_opted_out
        )
        jurisdiction = context.jurisdiction if context is not None else None
        limit = rules.channel_form.max_chars.get(record.channel, 10_000)
        checks: list[tuple[str, Callable[[str, str], str | None]]] = [
            (rules.templates_only.id, lambda a, t: None if self.templates.approved(
                a, t, features.task, features.tasks, rules.templates_only.max_slot_chars
            ) or (self.untemplated and t == placeholder(a) and not self.templates.has(a))
                else "not an approved template with plain slot values"),
            (rules.consent.id, lambda a, t: "the customer opted out of marketing"
                if opted_out and a in rules.consent.marketing_actions else None),
        ]
        contradictions = getattr(self.templates, "contradictions", None)
        if features.kb_item and contradictions is not None:
            checks.insert(1, (GROUNDED, lambda a, t: self._contradicted(contradictions(
                a, t, features.task, features.tasks, features.kb_item), features.kb_api)))
        for rule in rules.jurisdiction:
            def not_offered(a: str, t: str, r: JurisdictionRule = rule) -> str | None:
                return f"not offered in {jurisdiction}" if (
                    jurisdiction in r.jurisdictions and a in r.blocked_actions
                ) else None
            checks.append((rule.id, not_offered))
        for rule in rules.verify_before_disclosure:
            def not_verified(a: str, t: str, r: VerifyBeforeDisclosureRule = rule) -> str | None:
                return "identity not verified in this conversation" if (
                    a in r.disclosures and r.id not in self.state.verified
                ) else None
            checks.append((rule.id, not_verified))
        repeats = rules.repetition.enabled
        checks += [
            (rules.repetition.id, lambda a, t: "already suggested in this conversation"
                if repeats and t in self.state.shown else None),
            (rules.channel_form.id, lambda a, t: f"{len(t)} characters, over {limit} for {record.channel}"
                if len(t) > limit else None),
        ]
        removed: dict[str, list[str]] = {rule_id: [] for rule_id, _ in checks}
        reasons: dict[str, str] = {}
        chosen = None
        for action, confidence in envelope.candidates:
            text = envelope.texts[action]
            failed = None
            for rule_id, check in checks:
                why = check(action, text)
                if why is not None:
                    removed[rule_id].append(action)
                    reasons.setdefault(rule_id, why)
                    failed = rule_id
                    break
            if failed is None:
                chosen = (action, confidence)
                break
        verdicts = [
            _result(rule_id, "block", f"{', '.join(actions)}: {reasons[rule_id]}") if actions
            else _result(rule_id, "pass")
            for rule_id, actions in removed.items()
        ]
        return chosen, verdicts

    @staticmethod
    def _contradicted(slots: list[str], api: str | None) -> str | None:
        # Slot names only: the values are the customer's business (masked or not, they stay out of the log).
        return f"states {', '.join(slots)} other than the {api or 'knowledge-base'} result" if slots else None

    # -- the decision --------------------------------------------------------
    def decide(self, envelope: Envelope, policy: Policy, clock: Callable[[], int] = now_ns) -> list:
        """The decision for one input, preceded by its suggestion when one is shown."""
        record: AnyEvent | CustomerContext
        event: AnyEvent | None
        context: CustomerContext | None
        rules = policy.rules
        model_version = envelope.model_version
        # Two decisions must never share an id. Event ids repeat across conversations (the conversation
        # step refuses repeats within one only), so the conversation is part of the id; a context's id is
        # its version (updated_at), which two contents can share (the join lets the later win), so its
        # content is.
        if isinstance(envelope.record, CustomerContext):
            record = context = envelope.record
            event, scope = None, record_digest(record)
        else:
            record = event = envelope.event
            context, scope = envelope.context, event.conversation_id or "-"
        is_context = event is None
        decision_id = stable_id("decision", scope, envelope.input_id, model_version or "-", policy.version,
                                policy.hash)
        verdicts: list[RuleResult] = []
        if envelope.masked:
            verdicts.append(_result(rules.pii.id, "rewrite", "masked " + ", ".join(envelope.masked)))
        best = None
        reasons: list[str] = []
        if envelope.features is not None:
            if not envelope.is_latest:
                verdicts.append(
                    _result(LATEST_EVENT, "block", "a newer event of this conversation came first")
                )
            elif not envelope.candidates:
                verdicts.append(_result(NO_CANDIDATE, "block", "the model has no candidate with a template"))
            else:
                best, candidate_verdicts = self.choose(envelope, policy)
                verdicts += candidate_verdicts
                best = self._final_checks(best, envelope, policy, verdicts)
            blocked = [v.rule_id for v in verdicts if v.outcome == "block"]
            outcome = "shown" if best is not None else "suppressed"
            reasons = [] if best is not None else (blocked[-1:] if blocked else [NO_CANDIDATE])
        else:
            outcome, reasons = "recorded", [envelope.recorded or "recorded"]
        decided = clock()
        decided_at = utc_from_ns(decided)
        top_k = rules.top_k.k
        candidates = [
            Candidate.trusted(action=a, confidence=round(c, 4)) for a, c in envelope.candidates[:top_k]
        ]
        if envelope.features is not None and len(envelope.candidates) > top_k:
            verdicts.append(_result(rules.top_k.id, "rewrite", f"kept {top_k} of {len(envelope.candidates)}"))
        suggestion = None
        if best is not None and event is not None:  # only an event's prediction point has a best
            action, confidence = best
            self.state.shown.append(envelope.texts[action])
            self.state.last_shown_at = event.event_time.timestamp()
            suggestion = Suggestion.trusted(
                schema_version="1.0",
                suggestion_id=stable_id("suggestion", decision_id),
                decision_id=decision_id,
                conversation_id=event.conversation_id,
                customer_id=event.customer_id,
                agent_id=event.agent_id,
                channel=event.channel,
                event_id=event.event_id,
                action=action,
                text=envelope.texts[action],
                confidence=round(confidence, 4),
                alternatives=[c for c in candidates if c.action != action][: top_k - 1],
                model_version=model_version,
                policy_version=policy.version,
                run_id=self.run_id,
                created_at=decided_at,
            )
        decision = Decision.trusted(
            schema_version="1.0",
            decision_id=decision_id,
            decided_at=decided_at,
            conversation_id=None if event is None else event.conversation_id,
            customer_id=record.customer_id,
            agent_id=None if event is None else event.agent_id,
            input=DecisionInput.trusted(
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
            suggestion=None if suggestion is None else SuggestedResponse.trusted(
                action=suggestion.action, text=suggestion.text
            ),
            candidates=candidates,
            context_status="not_applicable" if is_context else envelope.context_status,
            context_version=None if context is None else context.version,
            model_version=model_version,
            policy_name=policy.name,
            policy_version=policy.version,
            policy_hash=policy.hash,
            rules=verdicts,
            masked=list(envelope.masked),
            latency_ms=_latency(envelope, decided),
            quality=None if envelope.quality is None else QualityResult.trusted(
                suite=envelope.quality.suite, warnings=list(envelope.quality.warnings)
            ),
            run_id=self.run_id,
            risk=None if envelope.risk is None else round(envelope.risk, 4),
            arm=envelope.arm,
            experiment=self.experiment if envelope.arm is not None else None,
        )
        return [decision] if suggestion is None else [suggestion, decision]

    def _final_checks(
        self, best: tuple[str, float] | None, envelope: Envelope, policy: Policy, verdicts: list[RuleResult]
    ) -> tuple[str, float] | None:
        rules = policy.rules
        if best is None:
            return None
        floor = rules.confidence.min_confidence
        if best[1] < floor:
            verdicts.append(
                _result(rules.confidence.id, "block", f"confidence {best[1]:.3f} is below {floor}")
            )
            return None
        verdicts.append(_result(rules.confidence.id, "pass"))
        at = envelope.event.event_time.timestamp()
        last = self.state.last_shown_at
        if last is not None and at - last < rules.rate.min_interval_s:
            verdicts.append(
                _result(
                    rules.rate.id,
                    "block",
                    f"{at - last:.1f}s since the last suggestion, under {rules.rate.min_interval_s:g}s",
                )
            )
            return None
        verdicts.append(_result(rules.rate.id, "pass"))
        return best

    # -- alerts --------------------------------------------------------------
    def alerts(self, envelope: Envelope, policy: Policy) -> list[Alert]:
        record = envelope.record
        if isinstance(record, CustomerContext):
            return []
        out = []
        escalation = self._escalation(envelope, policy)
        if escalation is not None:
            out.append(escalation)
        rules = policy.rules
        if (
            isinstance(record, Turn)
            and record.speaker == "agent"
            and record.is_final
            and policy.conduct is not None
        ):
            hit = policy.conduct.search(record.text.lower())
            if hit is not None:
                out.append(
                    self._alert(
                        envelope,
                        "agent_conduct",
                        rules.conduct.id,
                        rules.conduct.severity,
                        list(rules.conduct.audience),
                        f'The agent said "{hit.group(0)}", which the policy prohibits.',
                        {"rule_id": rules.conduct.id, "phrase": hit.group(0)},
                    )
                )
        out += self._missing_steps(envelope, policy)
        return out

    def _missing_steps(self, envelope: Envelope, policy: Policy) -> list[Alert]:
        record, state = envelope.event, self.state  # alerts returned early for context records
        if state.started_at is None:
            return []
        elapsed = record.event_time.timestamp() - state.started_at
        ended = isinstance(record, ConversationEnd)
        jurisdiction = envelope.context.jurisdiction if envelope.context is not None else None
        out = []
        for step, _ in policy.steps:
            if step.id in state.steps_done or step.id in state.steps_alerted:
                continue
            if record.channel not in step.channels:
                continue
            if step.jurisdictions and jurisdiction is not None and jurisdiction not in step.jurisdictions:
                continue
            if elapsed >= step.deadline_s or ended:
                state.steps_alerted.append(step.id)
                out.append(self._alert(
                    envelope, "missing_required_step", step.id, step.severity, list(step.audience),
                    f"Required step {step.id} has not happened {elapsed:.0f}s into the conversation "
                    f"(deadline {step.deadline_s:g}s).",
                    {"rule_id": step.id, "elapsed_s": round(elapsed, 1), "deadline_s": step.deadline_s,
                     "jurisdiction": jurisdiction or "unknown"},
                ))
        return out

    def _escalation(self, envelope: Envelope, policy: Policy) -> Alert | None:
        rule = policy.rules.escalation
        risk, record = envelope.risk, envelope.event  # alerts returned early for context records
        threshold = rule.threshold if rule.threshold is not None else envelope.risk_threshold
        if risk is None or threshold is None or risk < threshold:
            return None
        at = record.event_time.timestamp()
        last = self.state.risk_alert_at
        if last is not None and at - last < rule.cooldown_s:
            return None
        self.state.risk_alert_at = at
        return self._alert(
            envelope, "escalation_risk", rule.id,
            "critical" if risk >= (1 + threshold) / 2 else rule.severity, ["agent", "supervisor"],
            f"Escalation risk {risk:.0%}: the customer may be getting frustrated.",
            {"rule_id": rule.id, "risk": round(risk, 4), "threshold": round(threshold, 4),
             "model_version": envelope.model_version or ""},
        )

    def _alert(self, envelope, kind, rule_id, severity, audience, message, evidence) -> Alert:
        record = envelope.record
        return Alert.trusted(
            schema_version="1.0",
            alert_id=stable_id("alert", record.event_id, kind, rule_id),
            conversation_id=record.conversation_id,
            customer_id=record.customer_id,
            agent_id=record.agent_id,
            event_id=record.event_id,
            kind=kind,
            severity=severity,
            audience=audience,
            message=message,
            evidence=evidence,
            event_time=record.event_time,
            raised_at=utc_from_ns(now_ns()),
        )


@dataclass(frozen=True)
class GuardConfig:
    """How the guardrails step runs; see ``COACH_SESSION_GAP_S`` and ``COACH_SUGGEST_UNTEMPLATED``."""

    idle_s: float = 900.0
    """Wall-clock idle time after which a conversation's state is dropped."""
    run_id: str | None = None
    """The OpenLineage run id, stamped on suggestions and decisions."""
    passthrough: bool = False
    """Also emit each input ``Envelope`` just before its decision (for the acceptance step,
    which must see the agent's turns in order)."""
    untemplated: bool = False
    """Evaluation only: accept the placeholder of a candidate without a template."""
    payload_limit: int = 65_536


class GuardLogic(KeyedLogic[Envelope, object, GuardState]):
    """Bytewax logic: the guard of one conversation, with the policy in force.

    :arg policies: A ``PolicyStore`` (anything with ``current() -> Policy``).
    :arg templates: The model's ``TemplateBook`` (approved templates).
    :arg arms: An experiment's ``Arms``: each conversation takes its arm's policy and templates.
    """

    state_type = GuardState

    def __init__(
        self,
        policies,
        templates,
        config: GuardConfig = GuardConfig(),
        state: GuardState | bytes | None = None,
        now_getter: Callable[[], float] = time.time,
        arms=None,
    ) -> None:
        self.policies = policies
        self.arms = arms
        self.passthrough = config.passthrough
        self.guard = Guard(
            templates, None, config.run_id, None if arms is None else arms.name, config.untemplated
        )
        super().__init__(state)
        self.idle_s = config.idle_s
        self._now = now_getter

    @property
    def state(self) -> GuardState:
        return self.guard.state

    @state.setter
    def state(self, state: GuardState) -> None:
        self.guard.state = state

    def on_item(self, value: Envelope) -> tuple[Iterable[object], bool]:
        if self.arms is not None:
            policy = self.arms.policies(value.arm).current()
            self.guard.templates = self.arms.templates(value.arm)
        else:
            policy = self.policies.current()
        self.state.last_seen = self._now()
        self.guard.observe(value, policy)
        out: list[object] = (
            [value] if self.passthrough else []
        )  # first: the acceptance step judges before it sees new suggestions
        out += self.guard.decide(value, policy)
        out += self.guard.alerts(value, policy)
        done = isinstance(value.record, (CustomerContext, ConversationEnd))
        return out, self.DISCARD if done else self.RETAIN

    def on_notify(self) -> tuple[Iterable[object], bool]:
        return [], self.DISCARD

    def notify_at(self) -> datetime | None:
        return datetime.fromtimestamp(self.state.last_seen + self.idle_s, tz=UTC)


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
    policies,
    templates,
    config: GuardConfig = GuardConfig(),
    now_getter: Callable[[], float] = time.time,
    arms=None,
    boundary: Boundary | None = None,
) -> Stream[object]:
    """Decide on every input: the suggestion (if shown), the decision, and alerts.

    Keyed by conversation, so per-conversation rules keep their state; a
    conversation's state goes with its end event or after ``idle_s``.

    :arg step_id: Unique ID.
    :arg up: Scored prediction points and recorded inputs.
    :arg policies: A ``PolicyStore`` (anything with ``current() -> Policy``).
    :arg templates: The model's ``TemplateBook`` (approved templates).
    :arg config: Idle time, run id, passthrough (see ``GuardConfig``).
    :arg now_getter: Wall clock in seconds (injected by tests).
    :arg arms: An experiment's ``Arms``: each conversation takes its arm's policy and
        templates, and its decisions record the arm (``policies``/``templates`` are control's).
    :arg boundary: How a failure on one record becomes its dead letter (default: named after the step).
    :returns: ``Suggestion``, ``Decision``, ``Alert`` and ``DeadLetter`` records (and envelopes with
        ``passthrough``).
    """
    keyed = op.key_on("key_conversation", up, guard_key)
    boundary = boundary or Boundary(step_id, config.payload_limit)

    def build(resume: GuardState | bytes | None) -> GuardLogic:
        return GuardLogic(policies, templates, config, resume, now_getter, arms)

    return op.key_rm("unkey", keyed_step("decide", keyed, build, boundary))
