"""Windowed conversation state: ordering, late events, features, alerts, the end."""

from __future__ import annotations

import pickle

import bytewax.operators as op
from bytewax.dataflow import Dataflow
from bytewax.testing import TestingSink, TestingSource, run_main

from operators.conversation import (
    ConversationConfig,
    ConversationLogic,
    ConversationTracker,
    track_conversations,
)
from operators.envelope import Envelope
from schemas import Alert, ConversationSummary, DeadLetter
from tests.helpers import Clock, envelope, event

CONFIG = ConversationConfig(window_s=60, allowed_lateness_s=30, session_gap_s=900, tombstone_s=600)


def parsed(record: dict):
    return envelope(record).record


def tracker(*records: dict, config: ConversationConfig = CONFIG) -> ConversationTracker:
    t = ConversationTracker(config)
    for record in records:
        applied = t.apply(parsed(record))
        assert applied.refused is None, applied.detail
    return t


def agent(seq, t, action, text="Sure."):
    return event(seq=seq, t=t, speaker="agent", text=text, action=action)


def test_features_carry_the_conversation_so_far():
    t = tracker(
        event("conversation_start", seq=0, tasks=["bank_balance", "bank_fraud_report"]),
        event(seq=1, t=1, text="hi"),
        agent(2, 5, "hello", "Hello, how can I help?"),
        event(seq=3, t=9, text="my balance please"),
        agent(4, 12, "ask_name", "Your name?"),
        event(seq=5, t=15, text="Ann"),
        agent(6, 18, "bank_ask_pin", "And your PIN?"),
    )
    applied = t.apply(parsed(event("kb_result", seq=7, t=25)))
    f = applied.features
    assert f.trigger == "kb_result" and f.task == "bank_balance"
    assert f.tasks == ("bank_balance", "bank_fraud_report")
    assert f.prev_actions == ("ask_name", "bank_ask_pin", "query")
    assert f.kb_state == "message" and dict(f.kb_item) == {"BankBalance": 5703}
    assert f.last_customer_text == "Ann"
    assert [s for s, _ in f.history] == ["customer", "agent"] * 3
    assert f.n_turns == 6


def test_turns_and_talk_share_in_the_last_60_seconds():
    t = tracker(
        event(seq=1, t=0, text="one two three four"),        # leaves the window
        agent(2, 50, "hello", "a b c d e f"),
        event(seq=3, t=70, text="x y"),
    )
    f = t.apply(parsed(event(seq=4, t=80, text="z"))).features
    # Window is (20, 80]: agent 6 words at 50, customer 2 + 1 at 70, 80.
    assert (f.turns_60s_customer, f.turns_60s_agent) == (2, 1)
    assert abs(f.agent_talk_share_60s - 6 / 9) < 1e-9
    assert f.silence_s == 0.0


def test_only_final_customer_turns_and_kb_and_task_events_are_prediction_points():
    t = tracker(event("conversation_start", seq=0))
    assert t.apply(parsed(event(seq=1, t=1, is_final=False, event_id="i1"))).recorded == "interim_turn"
    assert t.apply(parsed(event(seq=1, t=2))).features is not None
    assert t.apply(parsed(agent(2, 3, "hello"))).recorded == "agent_turn"
    assert t.apply(parsed(event("task_selected", seq=3, t=4))).features.trigger == "task_selected"
    assert t.apply(parsed(event("conversation_end", seq=4, t=5))).ended


def test_duplicates_are_refused_by_event_id_and_by_final_sequence():
    t = tracker(event(seq=1))
    assert t.apply(parsed(event(seq=1))).refused == "duplicate_event"
    assert t.apply(parsed(event(seq=1, event_id="other"))).refused == "duplicate_event"
    # An interim hypothesis may share the final's sequence number.
    assert t.apply(parsed(event(seq=1, is_final=False, event_id="interim"))).refused is None
    assert t.apply(parsed(event("conversation_start", seq=9, event_id="s1"))).refused is None
    assert t.apply(parsed(event("conversation_start", seq=10, event_id="s2"))).refused == "duplicate_event"


def test_late_events_beyond_the_allowed_lateness_are_refused():
    t = tracker(event(seq=1, t=100))
    late = t.apply(parsed(event(seq=2, t=69)))
    assert late.refused == "late_event" and "allowed lateness is 30s" in late.detail
    assert t.apply(parsed(event(seq=3, t=71))).refused is None  # within lateness


def test_out_of_order_turns_within_lateness_are_kept_in_sequence_order():
    t = tracker(event(seq=1, t=10, text="first"), event(seq=3, t=20, text="third"))
    applied = t.apply(parsed(event(seq=2, t=15, text="second")))
    assert applied.refused is None and applied.is_latest is False
    assert [text for _, text in applied.features.history] == ["first", "second", "third"]
    assert t.apply(parsed(event(seq=4, t=25))).is_latest is True


def test_long_silence_raises_one_alert_per_cooldown():
    config = ConversationConfig(silence_alert_s_chat=30, alert_cooldown_s=120)
    t = tracker(event(seq=1, t=0), config=config)
    applied = t.apply(parsed(agent(2, 45, "hello")))
    assert [a.kind for a in applied.alerts] == ["long_silence"]
    assert applied.alerts[0].evidence["silence_s"] == 45.0
    t.apply(parsed(event(seq=3, t=50)))
    assert t.apply(parsed(agent(4, 90, "ask_name"))).alerts == []  # cooldown
    assert t.state.max_silence_s == 45.0


def test_repeated_complaints_raise_an_alert():
    t = tracker(event(seq=1, t=0, text="This is ridiculous"))
    assert t.state.complaints == 1
    applied = t.apply(parsed(event(seq=2, t=5, text="Still not working, I want a manager")))
    assert [a.kind for a in applied.alerts] == ["repeated_complaint"]
    assert applied.features.complaints == 2


def test_agent_talk_dominance_on_voice():
    t = tracker(event("conversation_start", seq=0, channel="voice"))
    t.apply(parsed(event(seq=1, t=1, text="hi", channel="voice")))
    long = "word " * 40
    alerts = [
        t.apply(parsed({**agent(seq, seq * 5, "hello", long), "channel": "voice"})).alerts
        for seq in range(2, 6)
    ]
    assert [a.kind for a in sum(alerts, [])] == ["agent_talk_dominance"]


def logic(clock: Clock, config: ConversationConfig = CONFIG) -> ConversationLogic:
    return ConversationLogic(config, None, clock)


def test_explicit_end_emits_a_summary_and_refuses_stragglers_until_the_tombstone_expires():
    clock = Clock()
    conv = logic(clock)
    conv.on_item(envelope(event("conversation_start", seq=0)))
    conv.on_item(envelope(event(seq=1, t=3, text="hello there")))
    out, _ = conv.on_item(envelope(event("conversation_end", seq=2, t=10)))
    assert [type(o).__name__ for o in out] == ["Envelope", "ConversationSummary"]
    summary = out[1]
    assert summary.end_reason == "completed" and summary.duration_s == 10.0
    assert summary.turns.customer == 1 and summary.words.customer == 2
    ConversationSummary.model_validate_json(summary.model_dump_json())
    straggler, _ = conv.on_item(envelope(event(seq=3, t=11)))
    assert isinstance(straggler[0], DeadLetter) and straggler[0].reason == "conversation_ended"
    clock.advance(CONFIG.tombstone_s + 1)
    assert conv.on_notify() == ([], True)


def test_a_session_gap_closes_an_idle_conversation():
    clock = Clock()
    conv = logic(clock)
    conv.on_item(envelope(event(seq=1)))
    assert conv.notify_at().timestamp() == clock.now + CONFIG.session_gap_s
    clock.advance(CONFIG.session_gap_s + 1)
    out, discard = conv.on_notify()
    assert out[0].end_reason == "idle" and not discard
    assert conv.state.ended


def test_end_of_input_closes_open_conversations():
    conv = logic(Clock())
    conv.on_item(envelope(event(seq=1)))
    out, _ = conv.on_eof()
    assert out[0].end_reason == "input_exhausted"


def test_state_snapshot_pickles_and_resumes():
    clock = Clock()
    conv = logic(clock)
    conv.on_item(envelope(event(seq=1, t=0, text="first")))
    snap = pickle.loads(pickle.dumps(conv.snapshot()))
    resumed = ConversationLogic(CONFIG, snap, clock)
    out, _ = resumed.on_item(envelope(event(seq=2, t=5, text="second")))
    assert [text for _, text in out[0].features.history] == ["first", "second"]
    assert resumed.on_item(envelope(event(seq=1)))[0][0].reason == "duplicate_event"


def test_conversation_operator_in_a_dataflow():
    records = [
        event("conversation_start", seq=0),
        event(seq=1, t=1, text="this is ridiculous"),
        event(seq=1, t=1, text="this is ridiculous"),  # duplicate
        event(seq=2, t=2, text="awful, still not working"),
        event("conversation_end", seq=3, t=3),
    ]
    inp = []
    for r in records:
        e = envelope(r)
        e.context_status = "present"
        inp.append(e)
    events: list = []
    outputs: list = []
    flow = Dataflow("conversation_test")
    tracked = track_conversations("conv", op.input("in", flow, TestingSource(inp)), CONFIG)
    op.output("events", tracked.events, TestingSink(events))
    op.output("outputs", tracked.outputs, TestingSink(outputs))
    run_main(flow)
    assert len(events) == 4 and all(isinstance(e, Envelope) for e in events)
    assert sorted(type(o).__name__ for o in outputs) == ["Alert", "ConversationSummary", "DeadLetter"]
    alert = next(o for o in outputs if isinstance(o, Alert))
    Alert.model_validate_json(alert.model_dump_json())
