"""Snapshots are pickled once, cannot change with later items, and old-format states still resume."""

from __future__ import annotations

import pickle
from pathlib import Path

from coachflow.config import Settings
from operators.guardrails import GuardConfig, GuardLogic, GuardState
from operators.join import ContextJoinLogic, JoinConfig, JoinState
from operators.state import freeze, thaw
from tests.helpers import Clock, context, envelope, event


def test_a_frozen_state_is_bytes_that_thaw_to_an_equal_independent_state():
    state = GuardState(started_at=1.0, shown=["Hello"], verified=["identity"])
    frozen = freeze(state)
    assert isinstance(frozen, bytes)
    state.shown.append("Goodbye")  # later changes do not reach the snapshot
    thawed = thaw(frozen)
    assert thawed == GuardState(started_at=1.0, shown=["Hello"], verified=["identity"])
    assert thawed is not state and thaw(pickle.loads(pickle.dumps(frozen))) == thawed  # as a store keeps it
    assert thaw(None) is None and thaw(state) is state  # a state object is taken as it is


def test_steps_resume_from_snapshots_of_either_format():
    join = ContextJoinLogic(JoinConfig(), now_getter=Clock())
    join.on_item(envelope(event(seq=1)))
    old_format = JoinState(
        pending=list(thaw(join.snapshot()).pending)
    )  # as releases before freeze() stored it
    for resume in (join.snapshot(), old_format):
        resumed = ContextJoinLogic(JoinConfig(), resume, Clock())
        out, _ = resumed.on_item(envelope(context()))
        assert [o.record.sequence for o in out if o.recorded is None] == [1]
    guard = GuardLogic(policies=None, templates={}, config=GuardConfig(idle_s=60.0),
                       state=freeze(GuardState(shown=["Hi"])))
    assert guard.state.shown == ["Hi"]


SNAPSHOTS = Path(__file__).resolve().parents[1] / "data" / "snapshots-4570f33"


def test_recovery_stores_of_the_previous_release_resume() -> None:
    """Each keyed step resumes from the snapshots release 4570f33 wrote, and goes on from there."""
    from models.registry import load_scorer
    from operators.acceptance import AcceptanceConfig, AcceptanceLogic
    from operators.conversation import ConversationConfig, ConversationLogic
    from operators.join import ContextJoinLogic, JoinConfig
    from operators.policy import DEFAULT_POLICY, PolicyStore
    from tests.helpers import Clock, context, envelope, event
    from tests.unit.test_acceptance import feedback

    clock = Clock()
    join = ContextJoinLogic(JoinConfig(hold_s=60), (SNAPSHOTS / "join.pickle").read_bytes(), clock)
    released, _ = join.on_item(envelope(context(customer="u-9")))
    assert [e.record.event_id for e in released[1:]] == ["c-9-1"]  # the held event, now with its context

    conv = ConversationLogic(ConversationConfig(), (SNAPSHOTS / "conversation.pickle").read_bytes(), clock)
    [point], _ = conv.on_item(envelope(event(seq=2, t=2)))
    assert point.features.n_turns == 2 and conv.state.seen_event_ids == {"c-1-0", "c-1-1", "c-1-2"}

    scorer = load_scorer(Settings().model)
    guard = GuardLogic(PolicyStore(DEFAULT_POLICY), scorer.templates, GuardConfig(),
                       (SNAPSHOTS / "guardrails.pickle").read_bytes(), clock)
    assert guard.state.started_at is not None
    assert any(type(d).__name__ == "Decision" for d in guard.on_item(envelope(event(seq=1, t=1)))[0])

    acceptance = AcceptanceLogic(AcceptanceConfig(), (SNAPSHOTS / "acceptance.pickle").read_bytes(), clock)
    [click], _ = acceptance.on_item(feedback("f2", "s1", "accepted"))
    assert (click.mode, click.outcome) == ("click", "accepted")
    [again], _ = acceptance.on_item(feedback("f3", "s1", "dismissed"))  # judged once: the rest is recorded
    assert again.reasons == ["feedback_superseded"]
