"""Each knowledge-card rule with hand-made passages, and the knowledge decision it writes."""

from __future__ import annotations

import yaml

from coachflow.knowledge_config import DEFAULT_KNOWLEDGE_POLICY
from operators.cards import CardGuard, parse_knowledge_policy
from operators.knowledge import Ask, PassageHit, seeks_knowledge
from schemas import INPUT_ADAPTER, KnowledgeCard, KnowledgeDecision
from tests.helpers import context, envelope, event

POLICY = parse_knowledge_policy(DEFAULT_KNOWLEDGE_POLICY.read_text())


def policy_with(**rules):
    body = yaml.safe_load(DEFAULT_KNOWLEDGE_POLICY.read_text())
    for name, value in rules.items():
        body["rules"][name] = {**body["rules"][name], **value}
    return parse_knowledge_policy(yaml.safe_dump(body))


def hit(article="a", start=0, score=0.5, source="doc2dial_va", tags=(), text="Apply online or by phone."):
    return PassageHit(
        article_id=article,
        article_version="1",
        title=f"Title {article}",
        heading="How to apply",
        start=start,
        end=start + len(text),
        text=text,
        score=score,
        source=source,
        source_url=None,
        tags=tuple(tags),
    )


def ask(hits, t=10.0, seq=1, ctx=None, channel="chat"):
    env = envelope(event("turn", seq=seq, t=t, channel=channel, text="How do I apply?"))
    env.context = None if ctx is None else INPUT_ADAPTER.validate_python(context(**ctx))
    env.context_status = "missing" if ctx is None else "present"
    return Ask(env, "ask", None, (("customer", "How do I apply?"),), asked_ns=2, hits=list(hits),
               kb_version="kb-test", retrieve_ms=1.0, retrieved_ns=3)


def decide(guard, item, policy=POLICY):
    out = guard.decide(item, policy)
    decision = next(o for o in out if isinstance(o, KnowledgeDecision))
    card = next((o for o in out if isinstance(o, KnowledgeCard)), None)
    return decision, card


def rule(decision, rule_id):
    return next(r for r in decision.rules if r.rule_id == rule_id)


def test_the_best_passage_becomes_a_card_with_alternatives():
    decision, card = decide(
        CardGuard(ranker_version="r1"),
        ask([hit("a"), hit("b", score=0.3), hit("c", score=0.2), hit("d", score=0.1)]),
    )
    assert decision.outcome == "shown" and card.article_id == "a" and card.card_id == decision.card_id
    assert [a.article_id for a in card.alternatives] == ["b", "c"]  # top_k 3
    assert rule(decision, "knowledge.top_k").outcome == "rewrite"
    assert card.citation.kb_version == "kb-test" and card.ranker_version == "r1"
    KnowledgeDecision.model_validate_json(decision.model_dump_json())
    KnowledgeCard.model_validate_json(card.model_dump_json())


def test_offers_are_held_for_customers_who_opted_out_or_are_unknown():
    offer = hit("offer", tags=("kind:offer",), source="offers")
    decision, card = decide(CardGuard(), ask([offer, hit("b", score=0.2)], ctx={"marketing_opt_out": True}))
    assert card.article_id == "b" and rule(decision, "knowledge.consent.marketing").outcome == "block"
    decision, card = decide(CardGuard(), ask([offer]))  # no context: consent unknown
    assert card is None and decision.reasons == ["knowledge.consent.marketing"]
    decision, card = decide(CardGuard(), ask([offer], ctx={"marketing_opt_out": False}))
    assert card.article_id == "offer"


def test_jurisdiction_tags():
    ny = hit("ny", tags=("jurisdiction:us-ny",))
    _, card = decide(CardGuard(), ask([ny], ctx={"jurisdiction": "US-NY"}))
    assert card is not None
    decision, card = decide(CardGuard(), ask([ny], ctx={"jurisdiction": "US-CA"}))
    assert card is None and decision.reasons == ["knowledge.jurisdiction.applies"]
    _, card = decide(CardGuard(), ask([hit("us", tags=("jurisdiction:us",))], ctx={"jurisdiction": "US-CA"}))
    assert card is not None  # us covers us-ca
    strict = policy_with(jurisdiction={"unknown_customer": "block"})
    decision, card = decide(CardGuard(), ask([ny]), strict)
    assert card is None and "unknown" in rule(decision, "knowledge.jurisdiction.applies").detail


def test_a_rule_per_source():
    policy = policy_with(sources={"sources": [{"source": "internal", "enabled": False},
                                              {"source": "voice_only", "channels": ["voice"]},
                                              {"source": "picky", "min_score": 0.9}]})
    for source in ("internal", "voice_only", "picky"):
        decision, card = decide(CardGuard(), ask([hit(source=source)]), policy)
        assert card is None and decision.reasons == ["knowledge.source.allowed"], source
    _, card = decide(CardGuard(), ask([hit(source="voice_only")], channel="voice"), policy)
    assert card is not None


def test_score_floor_rate_and_repetition():
    decision, card = decide(CardGuard(), ask([hit(score=0.01)]))
    assert card is None and decision.reasons == ["knowledge.source.allowed"]  # its source's floor first
    decision, card = decide(CardGuard(), ask([hit(score=0.06)]), policy_with(score={"min_score": 0.07}))
    assert card is None and decision.reasons == ["knowledge.score_floor"]
    guard = CardGuard()
    _, first = decide(guard, ask([hit("a")], t=10, seq=1))
    decision, card = decide(guard, ask([hit("b")], t=12, seq=2))  # 2 s later: under the 5 s interval
    assert first is not None and card is None and decision.reasons == ["knowledge.rate.min_interval"]
    decision, card = decide(guard, ask([hit("a"), hit("b", score=0.4)], t=30, seq=3))  # "a" was shown
    assert card.article_id == "b" and rule(decision, "knowledge.rate.no_repeat").outcome == "block"


def test_shed_and_not_needed_inputs_get_their_decision():
    shed = ask([])
    shed.hits, shed.shed, shed.retrieved_ns, shed.kb_version = [], "shed.queue_full", 0, None
    decision, card = decide(CardGuard(), shed)
    assert card is None and decision.outcome == "shed" and decision.reasons == ["shed.queue_full"]
    assert decision.latency_ms.queue_ms >= 0
    quiet = Ask(envelope(event("turn", text="thanks")), "not_needed", "knowledge.small_talk")
    decision, _ = decide(CardGuard(), quiet)
    assert decision.outcome == "not_needed" and decision.reasons == ["knowledge.small_talk"]


def test_which_customer_turns_seek_knowledge():
    for text in ("How do I apply for disability benefits?", "my license was suspended last week",
                 "what if I miss the deadline", "I need to know about the GI Bill"):
        assert seeks_knowledge(text) is None, text
    for text in ("ok thanks", "yes", "Hello!", "no", "great, bye", "thank you so much"):
        assert seeks_knowledge(text) is not None, text
