"""The stream-table join of conversation events with customer context."""

from __future__ import annotations

import pickle

import bytewax.operators as op
from bytewax.dataflow import Dataflow
from bytewax.testing import TestingSink, TestingSource, run_main

from operators.envelope import Envelope
from operators.join import ContextJoinLogic, JoinConfig, join_context
from operators.state import thaw
from schemas import DeadLetter
from tests.helpers import Clock, context, envelope, event

CONFIG = JoinConfig(hold_s=2.0, idle_s=300.0, context_ttl_s=3600.0)


def logic(clock: Clock | None = None, config: JoinConfig = CONFIG) -> ContextJoinLogic:
    return ContextJoinLogic(config, None, clock or Clock())


def released(out) -> list[Envelope]:
    return [o for o in out if isinstance(o, Envelope) and o.recorded is None]


def test_context_before_the_first_turn():
    join = logic()
    out, discard = join.on_item(envelope(context(open_cases=2)))
    assert [o.recorded for o in out] == ["context_applied"] and not discard
    out, _ = join.on_item(envelope(event(seq=1)))
    assert len(out) == 1
    assert out[0].context_status == "present" and out[0].context.open_cases == 2


def test_context_after_the_first_turn_releases_held_turns_in_order():
    join = logic()
    assert join.on_item(envelope(event("conversation_start", seq=0)))[0] == []
    assert join.on_item(envelope(event(seq=1)))[0] == []
    out, _ = join.on_item(envelope(context()))
    assert out[0].recorded == "context_applied"
    turns = released(out)
    assert [t.record.sequence for t in turns] == [0, 1]
    assert all(t.context_status == "present" and t.context is not None for t in turns)


def test_an_update_replaces_the_context_for_later_turns():
    join = logic()
    join.on_item(envelope(context(t=0, tier="silver")))
    first, _ = join.on_item(envelope(event(seq=1)))
    out, _ = join.on_item(envelope(context(t=10, tier="platinum")))
    assert out[0].recorded == "context_updated"
    later, _ = join.on_item(envelope(event(seq=2, t=5)))
    assert first[0].context.tier == "silver" and later[0].context.tier == "platinum"


def test_stale_and_repeated_context_are_dead_lettered():
    join = logic()
    join.on_item(envelope(context(t=100)))
    stale, _ = join.on_item(envelope(context(t=50)))
    again, _ = join.on_item(envelope(context(t=100)))
    assert [d.reason for d in stale + again] == ["stale_context", "duplicate_context"]
    assert all(isinstance(d, DeadLetter) and d.customer_id == "u-1" for d in stale + again)
    # Same instant but new content: the later arrival wins.
    out, _ = join.on_item(envelope(context(t=100, tier="basic")))
    assert out[0].recorded == "context_updated"


def test_missing_context_proceeds_marked_after_the_hold_never_dropped():
    clock = Clock()
    join = logic(clock)
    join.on_item(envelope(event(seq=1)))
    clock.advance(1.0)
    join.on_item(envelope(event(seq=2)))
    assert join.notify_at().timestamp() == clock.now - 1.0 + CONFIG.hold_s
    clock.advance(0.5)
    out, _ = join.on_notify()
    assert out == []  # still inside the hold
    clock.advance(0.6)
    out, discard = join.on_notify()
    assert [o.record.sequence for o in out] == [1, 2] and not discard
    assert all(o.context_status == "missing" and o.context is None for o in out)
    # Later turns pass at once, still marked missing, until context arrives.
    out, _ = join.on_item(envelope(event(seq=3)))
    assert out[0].context_status == "missing"
    join.on_item(envelope(context()))
    out, _ = join.on_item(envelope(event(seq=4)))
    assert out[0].context_status == "present"


def test_end_of_input_releases_held_turns():
    join = logic()
    join.on_item(envelope(event(seq=1)))
    out, _ = join.on_eof()
    assert [o.context_status for o in out] == ["missing"]


def test_state_is_released_once_idle_and_no_conversation_is_active():
    clock = Clock()
    join = logic(clock)
    join.on_item(envelope(context()))
    join.on_item(envelope(event("conversation_start", seq=0)))
    join.on_item(envelope(event("conversation_end", seq=1)))
    clock.advance(CONFIG.context_ttl_s - 1)
    assert join.on_notify() == ([], False)
    clock.advance(2)
    assert join.on_notify() == ([], True)


def test_an_idle_conversation_stops_pinning_the_context():
    clock = Clock()
    join = logic(clock)
    join.on_item(envelope(context()))
    join.on_item(envelope(event(seq=1)))  # never ends
    clock.advance(CONFIG.context_ttl_s + 1)
    _, discard = join.on_notify()
    assert discard  # idle beyond both the session gap and the TTL
    assert join.state.conversations == {}


def test_held_events_beyond_the_cap_proceed():
    join = logic(config=JoinConfig(hold_s=60, max_pending=3))
    for seq in range(3):
        assert join.on_item(envelope(event(seq=seq)))[0] == []
    out, _ = join.on_item(envelope(event(seq=3)))
    assert [o.record.sequence for o in out] == [0, 1, 2, 3]


def test_snapshot_is_a_picklable_copy_and_resumes():
    join = logic()
    join.on_item(envelope(event(seq=1)))
    snap = join.snapshot()
    join.on_item(envelope(event(seq=2)))
    assert len(thaw(snap).pending) == 1  # not changed by later items
    resumed = ContextJoinLogic(CONFIG, pickle.loads(pickle.dumps(snap)), Clock())
    out, _ = resumed.on_item(envelope(context()))
    assert [o.record.sequence for o in released(out)] == [1]


def test_join_operator_in_a_dataflow():
    inp = [
        envelope(event(seq=1, customer="u-1")),
        envelope(context(customer="u-2")),
        envelope(event(seq=1, conversation="c-2", customer="u-2")),
        envelope(context(customer="u-1")),
        envelope(context(customer="u-1")),  # repeated
    ]
    events: list = []
    contexts: list = []
    errs: list = []
    flow = Dataflow("join_test")
    joined = join_context("join", op.input("in", flow, TestingSource(inp)), CONFIG)
    op.output("events", joined.events, TestingSink(events))
    op.output("contexts", joined.contexts, TestingSink(contexts))
    op.output("errs", joined.errs, TestingSink(errs))
    run_main(flow)
    assert sorted((e.record.conversation_id, e.context_status) for e in events) == [
        ("c-1", "present"), ("c-2", "present"),
    ]
    assert len(contexts) == 2 and [e.reason for e in errs] == ["duplicate_context"]
