"""Guardrails for knowledge cards and the knowledge decision log: one record per input.

Keyed by conversation. Each retrieved ask's ranked passages pass the
knowledge policy in force (``policies/knowledge.yaml``, ``schemas.knowledge``):

- per passage, in rank order: the source's rule (enabled, channel, its own
  score floor), consent (no ``kind:offer`` articles to customers who opted
  out or whose consent is unknown), jurisdiction (an article tagged
  ``jurisdiction:us-ny`` is shown only to customers there), repetition (never
  the same passage twice in a conversation); the first passage passing them
  all is the card;
- then the card: the score floor and the rate limit (at most one card per
  interval), and the top-k limit on alternatives;
- the passage's personal data is masked before it leaves (``pii``).

Every input gets one ``KnowledgeDecision``: ``shown`` (with its card),
``suppressed`` (the rules' verdicts say why), ``not_needed``, ``shed`` or
``recorded``, with the KB, ranker and policy versions and per-stage latency.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import lru_cache

import bytewax.operators as op
from bytewax.dataflow import Stream, operator
from bytewax.operators import StatefulLogic

from operators.boundary import Boundary, keyed_step
from operators.envelope import now_ns
from operators.knowledge import Ask, AskBoundary, PassageHit
from operators.pii import Redactor
from operators.policy import document_hash, read_document
from operators.records import stable_id, utc_from_ns
from operators.state import freeze, thaw
from schemas import ConversationEnd, CustomerContext, DecisionInput, Turn
from schemas.knowledge import (
    CardAlternative,
    Citation,
    KnowledgeCard,
    KnowledgeDecision,
    KnowledgeLatency,
    KnowledgePolicyDocument,
    PassageScore,
)
from schemas.outputs import RuleResult

#: At most this many passages per conversation are remembered for the repetition rule.
MAX_SHOWN = 64
#: Structural verdicts, not in the policy.
NO_PASSAGE = "knowledge.no_passage"


@dataclass(frozen=True)
class KnowledgePolicy:
    """A validated knowledge policy, compiled for the stream."""

    document: KnowledgePolicyDocument
    hash: str
    redactor: Redactor = field(compare=False)

    @property
    def name(self) -> str:
        return self.document.name

    @property
    def version(self) -> str:
        return self.document.version

    @property
    def rules(self):
        return self.document.rules


def parse_knowledge_policy(text: str | bytes) -> KnowledgePolicy:
    """A ``KnowledgePolicy`` from YAML or JSON; raises ``PolicyError`` saying what is wrong."""
    document = read_document(text, KnowledgePolicyDocument, "a knowledge policy")
    pii = document.rules.pii
    return KnowledgePolicy(document=document, hash=document_hash(document),
                           redactor=Redactor(frozenset(pii.kinds), pii.min_digits))


@dataclass
class CardState:
    """Plain, picklable per-conversation state of the card guard."""

    shown: list[str] = field(default_factory=list)
    """Passages shown so far (``article_id@start``), at most ``MAX_SHOWN``."""
    last_card_at: float | None = None
    """Event time of the last card."""
    last_seen: float = 0.0


@lru_cache(maxsize=1024)
def _result(rule_id: str, outcome: str, detail: str | None = None) -> RuleResult:
    return RuleResult.trusted(rule_id=rule_id, outcome=outcome, detail=detail)


def _ms(later: int, earlier: int) -> float:
    return round(max(0, later - earlier) / 1e6, 3) if later and earlier else 0.0


def _applies(tags: tuple[str, ...], jurisdiction: str | None, unknown: str) -> str | None:
    """Why an article's jurisdiction tags rule out a customer in ``jurisdiction``, or None."""
    places = [tag.split(":", 1)[1] for tag in tags if tag.startswith("jurisdiction:")]
    if not places:
        return None
    if jurisdiction is None:
        return None if unknown == "allow" else "the customer's jurisdiction is unknown"
    mine = jurisdiction.lower()
    if any(mine == place or mine.startswith(place + "-") for place in places):
        return None
    return f"applies in {', '.join(places)}, not {jurisdiction}"


class CardGuard:
    """The knowledge policy's rules for one conversation."""

    def __init__(self, state: CardState | None = None, run_id: str | None = None,
                 ranker_version: str = "unknown") -> None:
        self.state = state if state is not None else CardState()
        self.run_id = run_id
        self.ranker_version = ranker_version

    def choose(self, ask: Ask, policy: KnowledgePolicy) -> tuple[PassageHit | None, list[RuleResult]]:
        rules = policy.rules
        record, context = ask.envelope.event, ask.envelope.context
        opted_out = (
            context.marketing_opt_out
            if context is not None
            else rules.consent.missing_context_means_opted_out
        )
        jurisdiction = context.jurisdiction if context is not None else None
        marketing = set(rules.consent.marketing_tags)
        by_source = {rule.source: rule for rule in rules.sources.sources}

        def source_rule(hit: PassageHit) -> str | None:
            rule = by_source.get(hit.source, rules.sources.default)
            if not rule.enabled:
                return f"source {hit.source} is disabled"
            if record.channel not in rule.channels:
                return f"source {hit.source} is not shown on {record.channel}"
            if hit.score < rule.min_score:
                return f"source {hit.source} needs a score of {rule.min_score}"
            return None

        checks: list[tuple[str, Callable[[PassageHit], str | None]]] = [
            (rules.sources.id, source_rule),
            (
                rules.consent.id,
                lambda hit: (
                    "the customer opted out of marketing"
                    if opted_out and marketing.intersection(hit.tags)
                    else None
                ),
            ),
            (
                rules.jurisdiction.id,
                lambda hit: _applies(hit.tags, jurisdiction, rules.jurisdiction.unknown_customer),
            ),
            (
                rules.repetition.id,
                lambda hit: (
                    "already shown in this conversation"
                    if rules.repetition.enabled and f"{hit.article_id}@{hit.start}" in self.state.shown
                    else None
                ),
            ),
        ]
        removed: dict[str, list[str]] = {rule_id: [] for rule_id, _ in checks}
        reasons: dict[str, str] = {}
        chosen = None
        for hit in ask.hits:
            failed = False
            for rule_id, check in checks:
                why = check(hit)
                if why is not None:
                    removed[rule_id].append(f"{hit.article_id}@{hit.start}")
                    reasons.setdefault(rule_id, why)
                    failed = True
                    break
            if not failed:
                chosen = hit
                break
        verdicts = [
            _result(rule_id, "block", f"{len(items)} passage(s): {reasons[rule_id]}") if items
            else _result(rule_id, "pass")
            for rule_id, items in removed.items()
        ]
        return chosen, verdicts

    def decide(self, ask: Ask, policy: KnowledgePolicy, clock: Callable[[], int] = now_ns) -> list:
        """The decision for one input, preceded by its card when one is shown."""
        envelope, record, rules = ask.envelope, ask.envelope.record, policy.rules
        is_context = isinstance(record, CustomerContext)
        kb_version = ask.kb_version or "none"
        decision_id = stable_id("knowledge_decision", envelope.input_id, kb_version, self.ranker_version,
                                policy.version, policy.hash)
        verdicts: list[RuleResult] = []
        if envelope.masked:
            verdicts.append(_result("pii.mask", "rewrite", "masked " + ", ".join(envelope.masked)))
        reasons: list[str] = []
        card = None
        if ask.outcome != "ask":
            outcome, reasons = ask.outcome, [ask.reason or ask.outcome]
        elif ask.shed is not None:
            outcome, reasons = "shed", [ask.shed]
        elif not ask.hits:
            outcome, reasons = "suppressed", [NO_PASSAGE]
            verdicts.append(_result(NO_PASSAGE, "block", "no passage matches the conversation"))
        else:
            best, candidate_verdicts = self.choose(ask, policy)
            verdicts += candidate_verdicts
            best = self._final_checks(best, ask, policy, verdicts)
            if best is None:
                blocked = [v.rule_id for v in verdicts if v.outcome == "block"]
                outcome, reasons = "suppressed", blocked[-1:] or [NO_PASSAGE]
            else:
                outcome = "shown"
                card = self._card(ask, best, policy, decision_id, kb_version, verdicts, clock)
        if ask.hits and len(ask.hits) > rules.top_k.k and outcome == "shown":
            verdicts.append(_result(rules.top_k.id, "rewrite", f"kept {rules.top_k.k} of {len(ask.hits)}"))
        decided = clock()
        joined = envelope.joined_ns or envelope.received_ns
        if ask.retrieved_ns:
            queue_ms = max(0.0, round(_ms(ask.retrieved_ns, ask.asked_ns) - ask.retrieve_ms, 3))
            guard_ms = _ms(decided, ask.retrieved_ns)
        else:  # not retrieved: shed ones waited until now, the rest did not queue
            queue_ms, guard_ms = (_ms(decided, ask.asked_ns) if ask.asked_ns else 0.0), 0.0
        context = record if isinstance(record, CustomerContext) else envelope.context
        decision = KnowledgeDecision.trusted(
            schema_version="1.0",
            decision_id=decision_id,
            decided_at=utc_from_ns(decided),
            conversation_id=None if isinstance(record, CustomerContext) else envelope.event.conversation_id,
            customer_id=getattr(record, "customer_id", None),
            agent_id=None if is_context else getattr(record, "agent_id", None),
            input=DecisionInput.trusted(
                kind=getattr(record, "type", "turn"),
                event_id=envelope.input_id,
                source=envelope.origin.ref(),
                is_final=record.is_final if isinstance(record, Turn) else None,
                speaker=record.speaker if isinstance(record, Turn) else None,
                history_event_ids=[],
            ),
            outcome=outcome,
            reasons=reasons,
            card_id=None if card is None else card.card_id,
            passages=[
                PassageScore.trusted(
                    article_id=hit.article_id,
                    start=hit.start,
                    end=hit.end,
                    score=round(min(max(hit.score, 0.0), 1.0), 4),
                )
                for hit in ask.hits[: rules.top_k.k]
            ],
            context_status="not_applicable" if is_context else envelope.context_status,
            context_version=None if context is None else context.version,
            kb_version=kb_version,
            ranker_version=self.ranker_version,
            policy_name=policy.name,
            policy_version=policy.version,
            policy_hash=policy.hash,
            rules=verdicts,
            masked=list(envelope.masked),
            latency_ms=KnowledgeLatency.trusted(
                join_wait_ms=_ms(joined, envelope.received_ns),
                queue_ms=queue_ms,
                retrieve_ms=round(ask.retrieve_ms, 3),
                guard_ms=guard_ms,
                total_ms=_ms(decided, envelope.received_ns),
            ),
            run_id=self.run_id,
        )
        return [decision] if card is None else [card, decision]

    def _final_checks(self, best: PassageHit | None, ask: Ask, policy: KnowledgePolicy,
                      verdicts: list[RuleResult]) -> PassageHit | None:
        if best is None:
            return None
        rules = policy.rules
        if best.score < rules.score.min_score:
            verdicts.append(
                _result(rules.score.id, "block", f"score {best.score:.3f} is below {rules.score.min_score}")
            )
            return None
        verdicts.append(_result(rules.score.id, "pass"))
        at = ask.envelope.event.event_time.timestamp()
        last = self.state.last_card_at
        if last is not None and at - last < rules.rate.min_interval_s:
            verdicts.append(
                _result(
                    rules.rate.id,
                    "block",
                    f"{at - last:.1f}s since the last card, under {rules.rate.min_interval_s:g}s",
                )
            )
            return None
        verdicts.append(_result(rules.rate.id, "pass"))
        return best

    def _card(self, ask: Ask, best: PassageHit, policy: KnowledgePolicy, decision_id: str, kb_version: str,
              verdicts: list[RuleResult], clock: Callable[[], int]) -> KnowledgeCard:
        record = ask.envelope.event
        state = self.state
        state.shown.append(f"{best.article_id}@{best.start}")
        del state.shown[:-MAX_SHOWN]
        state.last_card_at = record.event_time.timestamp()
        passage, masked = policy.redactor.redact(" ".join(best.text.split()))
        if masked:
            verdicts.append(
                _result(policy.rules.pii.id, "rewrite", "masked passage:" + ",".join(sorted(set(masked))))
            )
        alternatives = [hit for hit in ask.hits if hit is not best][: policy.rules.top_k.k - 1]
        now = clock()
        return KnowledgeCard.trusted(
            schema_version="1.0",
            card_id=stable_id("knowledge_card", decision_id),
            decision_id=decision_id,
            conversation_id=record.conversation_id,
            customer_id=record.customer_id,
            agent_id=record.agent_id,
            channel=record.channel,
            event_id=record.event_id,
            article_id=best.article_id,
            title=best.title,
            passage=passage,
            score=round(min(max(best.score, 0.0), 1.0), 4),
            citation=_citation(best, kb_version),
            alternatives=[
                CardAlternative.trusted(
                    article_id=hit.article_id,
                    title=hit.title,
                    citation=_citation(hit, kb_version),
                    score=round(min(max(hit.score, 0.0), 1.0), 4),
                )
                for hit in alternatives
            ],
            latency_ms=_ms(now, ask.envelope.received_ns),
            kb_version=kb_version,
            ranker_version=self.ranker_version,
            policy_version=policy.version,
            run_id=self.run_id,
            created_at=utc_from_ns(now),
        )


def _citation(hit: PassageHit, kb_version: str) -> Citation:
    return Citation.trusted(
        article_id=hit.article_id,
        article_version=hit.article_version,
        kb_version=kb_version,
        start=hit.start,
        end=hit.end,
        heading=hit.heading or None,
        source=hit.source,
        source_url=hit.source_url,
    )


class CardGuardLogic(StatefulLogic[Ask, object, bytes]):
    """Bytewax logic: the card guard of one conversation, with the knowledge policy in force."""

    def __init__(self, policies, idle_s: float, state: CardState | bytes | None = None,
                 now_getter: Callable[[], float] = time.time, run_id: str | None = None,
                 ranker_version: str = "unknown") -> None:
        self.policies = policies
        self.guard = CardGuard(thaw(state), run_id, ranker_version)
        self.idle_s = idle_s
        self._now = now_getter

    @property
    def state(self) -> CardState:
        return self.guard.state

    @state.setter
    def state(self, value: CardState) -> None:  # the error boundary puts a state back
        self.guard.state = value

    def on_item(self, value: Ask) -> tuple[Iterable[object], bool]:
        self.guard.state.last_seen = self._now()
        out = self.guard.decide(value, self.policies.current())
        record = value.envelope.record
        done = isinstance(record, (CustomerContext, ConversationEnd))
        return out, self.DISCARD if done else self.RETAIN

    def on_notify(self) -> tuple[Iterable[object], bool]:
        return [], self.DISCARD

    def notify_at(self) -> datetime | None:
        return datetime.fromtimestamp(self.guard.state.last_seen + self.idle_s, tz=UTC)

    def snapshot(self) -> bytes:
        return freeze(self.guard.state)


def card_key(ask: Ask) -> str:
    record = ask.envelope.record
    if isinstance(record, CustomerContext):
        return f"customer:{record.customer_id}"
    return record.conversation_id


@operator
def guard_cards(step_id: str, up: Stream[Ask], policies, idle_s: float = 900.0,
                now_getter: Callable[[], float] = time.time, run_id: str | None = None,
                ranker_version: str = "unknown", boundary: Boundary | None = None) -> Stream[object]:
    """Decide on every input: the card (if shown) and the knowledge decision.

    :arg step_id: Unique ID.
    :arg up: Asks from ``retrieve`` and the recorded inputs.
    :arg policies: A store of the knowledge policy (anything with ``current() -> KnowledgePolicy``).
    :arg idle_s: Wall-clock idle time after which a conversation's state is dropped.
    :arg now_getter: Wall clock in seconds (injected by tests).
    :arg run_id: The OpenLineage run id, stamped on cards and decisions.
    :arg ranker_version: The re-ranker's version, in every decision id.
    :arg boundary: How a failure on one ask becomes its input's dead letter (an ``AskBoundary``).
    :returns: ``KnowledgeCard`` and ``KnowledgeDecision`` records (and dead letters).
    """
    keyed = op.key_on("key_conversation", up, card_key)
    boundary = boundary or AskBoundary(step_id)

    def build(resume: CardState | bytes | None) -> CardGuardLogic:
        return CardGuardLogic(policies, idle_s, resume, now_getter, run_id, ranker_version)

    return op.key_rm("unkey", keyed_step("decide", keyed, build, boundary))
