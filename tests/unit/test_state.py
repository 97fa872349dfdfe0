"""Snapshots are pickled once, cannot change with later items, and old-format states still resume."""

from __future__ import annotations

import pickle

from operators.guardrails import GuardLogic, GuardState
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
    old_format = JoinState(pending=list(thaw(join.snapshot()).pending))  # as releases before freeze() stored it
    for resume in (join.snapshot(), old_format):
        resumed = ContextJoinLogic(JoinConfig(), resume, Clock())
        out, _ = resumed.on_item(envelope(context()))
        assert [o.record.sequence for o in out if o.recorded is None] == [1]
    guard = GuardLogic(policies=None, templates={}, idle_s=60.0, state=freeze(GuardState(shown=["Hi"])))
    assert guard.state.shown == ["Hi"]
