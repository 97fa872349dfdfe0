"""Acceptance: click feedback joined to suggestions, and inferred from the agent's next turn."""

from __future__ import annotations

import pickle
from datetime import UTC, datetime

import bytewax.operators as op
from bytewax.dataflow import Dataflow
from bytewax.testing import TestingSink, TestingSource, run_main

from operators.acceptance import AcceptanceConfig, AcceptanceLogic, similarity, track_acceptance
from operators.envelope import Envelope, Origin
from operators.parse import ParseLimits, parse_record
from operators.state import thaw
from schemas import Acceptance, DeadLetter, Decision, Feedback, Suggestion
from tests.helpers import Clock, at, envelope, event, raw

CONFIG = AcceptanceConfig(ttl_s=600, wait_s=30, similarity=0.8)


def point(seq: int, t: float, kind: str = "turn", conversation: str = "c-1", **fields) -> Envelope:
    """A prediction point as the guardrails pass it through (features set)."""
    env = envelope(event(kind, seq=seq, t=t, conversation=conversation, **fields))
    env.features = object()  # the step only asks whether the input is a prediction point
    return env


def agent(seq: int, t: float, conversation: str = "c-1", **fields) -> Envelope:
    fields.setdefault("text", "Thank you, one moment please.")
    return envelope(event("turn", seq=seq, t=t, conversation=conversation, speaker="agent", **fields))


def suggestion(sid: str, action: str = "bank_ask_pin", text: str = "Could you please tell me your PIN?",
               conversation: str = "c-1", channel: str = "chat", t: float = 0.0) -> Suggestion:
    return Suggestion(
        suggestion_id=sid, decision_id=f"d-{sid}", conversation_id=conversation, customer_id="u-1",
        agent_id="a-1", channel=channel, event_id="e", action=action, text=text, confidence=0.9,
        model_version="m-1", policy_version="1.0.0", created_at=at(t),
    )


def shown_decision(s: Suggestion, arm: str | None = None) -> Decision:
    return Decision.model_validate(
        {
            "decision_id": s.decision_id,
            "decided_at": at(0),
            "conversation_id": s.conversation_id,
            "customer_id": "u-1",
            "agent_id": "a-1",
            "input": {"kind": "turn", "event_id": "e", "source": {"kind": "file", "file": "t", "line": 1}},
            "outcome": "shown",
            "suggestion_id": s.suggestion_id,
            "suggestion": {"action": s.action, "text": s.text},
            "context_status": "present",
            "model_version": "m-1",
            "policy_name": "p",
            "policy_version": "1.0.0",
            "policy_hash": "h",
            "rules": [
                {"rule_id": "rate.no_repeat", "outcome": "block"},
                {"rule_id": "pii.mask", "outcome": "pass"},
            ],
            "arm": arm,
            "experiment": None if arm is None else "canary",
        }
    )


def feedback(fid: str, sid: str, kind: str = "accepted", t: float = 5.0, conversation: str = "c-1",
             **fields) -> Envelope:
    record = {"feedback_id": fid, "suggestion_id": sid, "conversation_id": conversation, "agent_id": "a-1",
              "event": kind, "at": at(t), **fields}
    return Envelope(record=Feedback.model_validate(record), origin=Origin(file="fb", line=1), received_ns=1)


def show(logic: AcceptanceLogic, env: Envelope, s: Suggestion, arm: str | None = None) -> list:
    """A prediction point, then its suggestion and decision, as the guardrails emit them."""
    out = list(logic.on_item(env)[0])
    out += logic.on_item(s)[0]
    out += logic.on_item(shown_decision(s, arm))[0]
    return out


def test_inferred_from_the_agents_action_label() -> None:
    logic = AcceptanceLogic(CONFIG, now_getter=Clock())
    assert show(logic, point(1, 10), suggestion("s1"), arm="candidate") == []
    (verdict,), _ = logic.on_item(agent(2, 14, action="bank_ask_pin"))
    assert isinstance(verdict, Acceptance)
    assert (verdict.mode, verdict.basis, verdict.outcome, verdict.accepted) == (
        "inferred",
        "action",
        "accepted",
        True,
    )
    assert verdict.agent_action == "bank_ask_pin" and verdict.latency_s == 4.0 and verdict.event_id == "c-1-2"
    assert (
        verdict.arm == "candidate" and verdict.experiment == "canary" and verdict.rules == ["rate.no_repeat"]
    )
    Acceptance.model_validate(verdict.model_dump())  # a valid record
    # One verdict per suggestion: the agent's following turn judges nothing.
    assert list(logic.on_item(agent(3, 15, action="bank_ask_pin"))[0]) == []

    show(logic, point(4, 20), suggestion("s2", action="bank_inform_balance"))
    (verdict,), _ = logic.on_item(agent(5, 22, action="bank_ask_name"))
    assert (verdict.outcome, verdict.accepted, verdict.agent_action) == ("ignored", False, "bank_ask_name")


def test_a_knowledge_base_result_means_the_agent_queried() -> None:
    logic = AcceptanceLogic(CONFIG, now_getter=Clock())
    show(logic, point(1, 10), suggestion("s1", action="query", text="[Look up: bank balance]"))
    kb = point(2, 12, kind="kb_result")
    (verdict,), _ = logic.on_item(kb)
    assert (verdict.agent_action, verdict.accepted, verdict.event_id) == ("query", True, "c-1-2")
    # The KB result is itself a point: its own suggestion is judged by what follows.
    logic.on_item(suggestion("s2", action="bank_inform_balance"))
    (verdict,), _ = logic.on_item(agent(3, 13, action="bank_inform_balance"))
    assert verdict.suggestion_id == "s2" and verdict.accepted


def test_a_suggestion_overtaken_before_the_agent_acts_is_not_judged() -> None:
    logic = AcceptanceLogic(CONFIG, now_getter=Clock())
    show(logic, point(1, 10), suggestion("s1"))
    logic.on_item(point(2, 11))  # the customer spoke again, no suggestion shown this time
    assert list(logic.on_item(agent(3, 12, action="bank_ask_pin"))[0]) == []
    show(logic, point(4, 20), suggestion("s2"))
    logic.on_item(envelope(event("conversation_end", seq=5, t=21)))
    assert list(logic.on_item(agent(6, 22, action="bank_ask_pin"))[0]) == []


def test_unlabelled_replies_are_judged_by_similarity() -> None:
    assert similarity("Could you please tell me your PIN?", "could  you please tell me your pin?") == 1.0
    assert similarity("ok", "Could you please tell me your PIN?") < 0.3
    logic = AcceptanceLogic(CONFIG, now_getter=Clock())
    show(logic, point(1, 10), suggestion("s1"))
    (verdict,), _ = logic.on_item(agent(2, 12, text="Could you please tell me your PIN number?"))
    assert (verdict.basis, verdict.accepted, verdict.agent_action) == ("similarity", True, None)
    assert verdict.similarity >= 0.8
    show(logic, point(3, 20), suggestion("s2"))
    (verdict,), _ = logic.on_item(agent(4, 22, text="Let me check that for you."))
    assert (verdict.outcome, verdict.accepted) == ("ignored", False) and verdict.similarity < 0.8


def test_similarity_is_difflibs_ratio() -> None:
    """cydifflib computes the standard library's ratio, not an approximation of it."""
    import difflib
    import random

    from models import star
    from tests.helpers import STAR_DIALOGUES

    texts = [
        e["Text"]
        for d in star.select(STAR_DIALOGUES, split="dev", limit=40)
        for e in d["Events"]
        if e.get("Text")
    ]
    rng = random.Random(5)
    pairs = [(rng.choice(texts), rng.choice(texts)) for _ in range(500)] + [
        (t, t[: len(t) // 2]) for t in texts[:50]
    ]
    for reply, suggestion in pairs:
        a, b = " ".join(reply.casefold().split()), " ".join(suggestion.casefold().split())
        assert similarity(reply, suggestion) == difflib.SequenceMatcher(None, a, b, autojunk=False).ratio()


def test_voice_only_inference_skips_chat() -> None:
    logic = AcceptanceLogic(AcceptanceConfig(channels="voice"), now_getter=Clock())
    show(logic, point(1, 10), suggestion("s1", channel="chat"))
    assert list(logic.on_item(agent(2, 12, action="bank_ask_pin"))[0]) == []
    show(logic, point(3, 20, channel="voice"), suggestion("s2", channel="voice"))
    (verdict,), _ = logic.on_item(agent(4, 22, action="bank_ask_pin", channel="voice"))
    assert verdict.channel == "voice"
    off = AcceptanceLogic(AcceptanceConfig(channels="off"), now_getter=Clock())
    show(off, point(1, 10), suggestion("s1"))
    assert list(off.on_item(agent(2, 12, action="bank_ask_pin"))[0]) == []


def test_click_feedback_is_joined_and_every_record_accounted_for() -> None:
    clock = Clock()
    logic = AcceptanceLogic(CONFIG, now_getter=clock)
    s = suggestion("s1", t=0)
    show(logic, point(1, 0), s, arm="control")
    (shown,), _ = logic.on_item(feedback("f0", "s1", "shown", t=1))
    assert isinstance(shown, Decision) and shown.outcome == "recorded" and shown.reasons == ["feedback_shown"]
    assert shown.input.kind == "feedback" and shown.input.event_id == "f0" and shown.customer_id == "u-1"
    Decision.model_validate(shown.model_dump())

    (click,), _ = logic.on_item(feedback("f1", "s1", "edited", t=6, edit_distance=3))
    assert (click.mode, click.basis, click.outcome, click.accepted) == ("click", "click", "edited", True)
    assert click.edit_distance == 3 and click.feedback_id == "f1" and click.latency_s == 6.0
    assert click.policy_version == "1.0.0" and click.model_version == "m-1" and click.arm == "control"

    (later,), _ = logic.on_item(feedback("f2", "s1", "dismissed", t=7))
    assert isinstance(later, Decision) and later.reasons == ["feedback_superseded"]
    (dup,), _ = logic.on_item(feedback("f1", "s1", "edited", t=6, edit_distance=3))
    assert isinstance(dup, DeadLetter) and dup.reason == "duplicate_event" and dup.event_id == "f1"

    # Click and inferred verdicts on one suggestion live side by side.
    (inferred,), _ = logic.on_item(agent(2, 8, action="bank_ask_pin"))
    assert inferred.mode == "inferred" and inferred.acceptance_id != click.acceptance_id


def test_feedback_waits_for_its_suggestion_then_is_dead_lettered() -> None:
    clock = Clock()
    logic = AcceptanceLogic(CONFIG, now_getter=clock)
    assert list(logic.on_item(feedback("f1", "s1", "accepted"))[0]) == []  # ran ahead of the events
    out = show(logic, point(1, 0), suggestion("s1"))
    assert [type(o) for o in out] == [Acceptance] and out[0].outcome == "accepted"

    assert list(logic.on_item(feedback("f2", "nope", "accepted"))[0]) == []
    clock.advance(10)
    assert list(logic.on_notify()[0]) == []
    clock.advance(21)
    (dead,), _ = logic.on_notify()
    assert dead.reason == "unknown_suggestion" and dead.event_id == "f2" and dead.conversation_id == "c-1"
    DeadLetter.model_validate(dead.model_dump())

    logic.on_item(feedback("f3", "nope", "accepted"))
    (dead,), _ = logic.on_eof()  # a finite input ended: it never will arrive
    assert dead.reason == "unknown_suggestion"


def test_state_is_bounded_and_snapshots() -> None:
    clock = Clock()
    logic = AcceptanceLogic(CONFIG, now_getter=clock)
    show(logic, point(1, 0), suggestion("s1"))
    restored = pickle.loads(pickle.dumps(logic.snapshot()))
    assert set(thaw(restored).shown) == {"s1"}
    assert logic.notify_at() == datetime.fromtimestamp(clock.now + 600, tz=UTC)
    clock.advance(601)
    out, discard = logic.on_notify()
    assert list(out) == [] and discard == logic.DISCARD and logic.state.shown == {}
    # Past the TTL, a click finds nothing: it waits, then is dead-lettered.
    fresh = AcceptanceLogic(CONFIG, restored, now_getter=clock)
    fresh.on_notify()
    fresh.on_item(feedback("f1", "s1", "accepted"))
    clock.advance(31)
    (dead,), _ = fresh.on_notify()
    assert dead.reason == "unknown_suggestion"


def test_feedback_parses_against_its_contract() -> None:
    record = {"feedback_id": "f1", "suggestion_id": "s1", "conversation_id": "c-1", "agent_id": "a-1",
              "event": "accepted", "at": at(1)}
    limits = ParseLimits(check_keys=True)
    env = parse_record(raw({**record, "type": "feedback"}), ParseLimits(check_keys=False), 1)
    assert isinstance(env.record, Feedback)
    assert isinstance(parse_record(raw(record, stream="feedback", key=b"c-1"), limits, 1).record, Feedback)
    dead = parse_record(raw(record, stream="feedback", key=b"c-2"), limits, 1)
    assert dead.reason == "key_mismatch"
    dead = parse_record(raw({**record, "event": "liked"}, stream="feedback", key=b"c-1"), limits, 1)
    assert dead.reason == "unknown_enum_value"
    dead = parse_record(raw({**record, "text": "the reply"}, stream="feedback", key=b"c-1"), limits, 1)
    assert dead.reason == "unknown_field"  # no raw text in feedback
    dead = parse_record(raw(event("turn"), stream="feedback", key=b"c-1"), limits, 1)
    assert dead.reason == "wrong_topic"
    dead = parse_record(raw({**record, "type": "feedback"}, stream="events", key=b"c-1"), limits, 1)
    assert dead.reason == "wrong_topic"


def test_the_operator_in_a_dataflow() -> None:
    s = suggestion("s1", conversation="c-1")
    other = suggestion("s9", conversation="c-2")
    items = [
        feedback("f1", "s1", "dismissed"),
        point(1, 0), s, shown_decision(s),
        point(1, 0, conversation="c-2"), other, shown_decision(other),
        agent(2, 3, conversation="c-2", action="bank_ask_pin"),
        feedback("f2", "missing", "accepted", conversation="c-2"),
    ]
    out: list = []
    flow = Dataflow("acceptance")
    judged = track_acceptance("acceptance", op.input("in", flow, TestingSource(items)), CONFIG)
    op.output("out", judged, TestingSink(out))
    run_main(flow)
    by_type = {type(o).__name__: o for o in out}
    assert len(out) == 3
    assert by_type["Acceptance"] is not None
    modes = sorted((o.mode, o.outcome) for o in out if isinstance(o, Acceptance))
    assert modes == [("click", "dismissed"), ("inferred", "accepted")]
    assert by_type["DeadLetter"].reason == "unknown_suggestion"
