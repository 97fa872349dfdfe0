"""Every step is an error boundary: a record a step fails on becomes its dead letter, the key's
state is as it was before that record, and the stream goes on; a step failing on every record stops."""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime

import pytest

from coachflow import replay
from coachflow.config import Settings
from operators import conversation, guardrails, parse, publish, quality, scoring
from operators.acceptance import AcceptanceConfig, AcceptanceLogic
from operators.boundary import FAILURES, Boundary, Bounded, SystemicFailure, clone
from operators.conversation import ConversationConfig, ConversationLogic
from operators.join import ContextJoinLogic, JoinConfig
from operators.limits import JsonLimits, check_shape
from operators.records import mask_payload
from schemas import DeadLetter, Decision
from tests.helpers import STAR_DIALOGUES, Clock, context, envelope, event, raw, run_job
from tests.unit.test_flow_embedded import read_outputs


class Boom(RuntimeError):
    pass


def test_a_failing_item_becomes_a_dead_letter_and_leaves_the_state_as_it_was() -> None:
    logic = Bounded(ConversationLogic(ConversationConfig(), now_getter=Clock()), Boundary("conversation"))
    first = envelope(event("conversation_start", seq=0))
    logic.on_item(first)
    logic.on_item(envelope(event(seq=1, t=1, text="card 4111 1111 1111 1111 please")))
    before = logic.inner.state
    snapshot = logic.snapshot()

    def explode(self, event, context_status="present", wall=0.0):
        self.state.turns["customer"] += 100  # half applied, then ...
        self.state.seen_event_ids.add(event.event_id)
        raise Boom(f"bad turn for card {event.text if hasattr(event, 'text') else ''}")

    poison = envelope(event(seq=2, t=2, text="my card is 4111 1111 1111 1111"))
    original = conversation.ConversationTracker.apply
    conversation.ConversationTracker.apply = explode
    try:
        out, discard = logic.on_item(poison)
    finally:
        conversation.ConversationTracker.apply = original
    [letter] = out
    assert isinstance(letter, DeadLetter) and not discard
    assert (letter.reason, letter.step, letter.error_type) == ("internal_error", "conversation", "Boom")
    assert letter.detail.startswith("conversation failed: Boom: bad turn for card")
    assert "4111" not in letter.detail  # the exception's message quoted the input: masked
    assert letter.source.line == poison.origin.line and letter.event_id == poison.record.event_id
    assert logic.snapshot() == snapshot and logic.inner.state is not before  # as before the record
    assert logic.inner.state.turns == {"customer": 1, "agent": 0}
    assert poison.record.event_id not in logic.inner.state.seen_event_ids
    # ... and the next record goes through as if the failed one had never come.
    out, _ = logic.on_item(envelope(event(seq=3, t=3)))
    assert [type(item).__name__ for item in out] == ["Envelope"] and out[0].features is not None


def test_a_failing_timer_dead_letters_what_the_key_held_and_drops_the_key() -> None:
    clock = Clock()
    join = ContextJoinLogic(JoinConfig(hold_s=1.0), now_getter=clock)
    logic = Bounded(join, Boundary("join_context"))
    held = envelope(event(seq=1))
    assert logic.on_item(held) == ([], False)  # waits for its customer's context

    def explode():
        raise Boom("timer")

    join.on_notify = explode
    clock.advance(5)
    out, discard = logic.on_notify()
    assert discard and [(d.reason, d.step, d.event_id) for d in out] == [
        ("internal_error", "join_context", "c-1-1")
    ]


def test_a_step_failing_on_every_record_stops_the_job() -> None:
    boundary = Boundary("score-systemic", in_a_row=3)
    boundary.failed(envelope(event(seq=1)), Boom("x"))
    boundary.passed()  # a success ends the run of failures
    boundary.failed(envelope(event(seq=2)), Boom("x"))
    boundary.failed(envelope(event(seq=3)), Boom("x"))
    with pytest.raises(SystemicFailure, match="score-systemic failed on 3 records in a row"):
        boundary.failed(envelope(event(seq=4)), Boom("x"))
    assert FAILURES["score-systemic"] == 4


def test_items_the_step_does_not_account_for_are_counted_not_dead_lettered() -> None:
    logic = Bounded(AcceptanceLogic(AcceptanceConfig()), Boundary("acceptance-owns", owns=lambda item: False))
    logic.inner.on_item = lambda value: (_ for _ in ()).throw(Boom("x"))
    before = FAILURES["acceptance-owns"]
    assert logic.on_item(envelope(event(seq=1))) == ([], False)
    assert FAILURES["acceptance-owns"] == before + 1


def test_a_batch_goes_on_with_a_new_logic_when_its_key_ends_mid_batch() -> None:
    @dataclass
    class Seen:
        items: list[str] = field(default_factory=list)

    class EndsOn:
        """A key's logic that ends (discards) on the item "end"."""

        def __init__(self, resume) -> None:
            self.state = resume or Seen()

        def on_item(self, value: str):
            self.state.items.append(value)
            return [value], value == "end"

    built: list[EndsOn] = []

    def build(resume) -> EndsOn:
        built.append(EndsOn(resume))
        return built[-1]

    logic = Bounded(build(None), Boundary("ends-on"), build)
    assert logic.on_batch(["a", "end", "b"]) == (["a", "end", "b"], False)
    assert [b.state.items for b in built] == [["a", "end"], ["b"]]  # "b" went to a new logic
    assert logic.on_batch(["c", "end"]) == (["c", "end"], True)  # the key ends with the batch


def test_clone_copies_containers_so_later_changes_do_not_reach_it() -> None:
    logic = ConversationLogic(ConversationConfig(), now_getter=Clock())
    logic.on_item(envelope(event(seq=1)))
    copy = clone(logic.state)
    logic.on_item(envelope(event(seq=2, t=1)))
    assert copy.seen_event_ids == {"c-1-1"} and len(copy.recent) == 1 and copy.turns["customer"] == 1


@pytest.mark.parametrize(("payload", "reason"), [
    (b'{"a":' * 3000 + b"1" + b"}" * 3000, "too_deeply_nested"),
    (b"[" * 100_000, "too_deeply_nested"),
    (json.dumps({f"k{i}": i for i in range(2000)}).encode(), "too_many_keys"),
    (json.dumps([[i] for i in range(3000)]).encode(), "too_many_items"),
    (b'{"text": "' + b"x" * 40_000 + b'"}', "string_too_long"),
])
def test_limits_are_checked_on_the_raw_bytes_before_anything_parses_them(payload, reason) -> None:
    letter = parse.parse_record(raw(payload), parse.ParseLimits(max_payload_bytes=1 << 20), 1)
    assert isinstance(letter, DeadLetter) and letter.reason == reason
    assert base64.b64decode(letter.payload_b64)  # the bytes are kept (masked as text, never parsed)


def test_limits_count_structure_outside_strings_only() -> None:
    limits = JsonLimits(depth=4, keys=64, items=64)
    assert check_shape(b'{"t": "' + b"[[[[[[[[{{{{{{" * 20 + b'"}', limits) is None
    assert check_shape(b'["\\"[[[[[", 1]', limits) is None
    assert check_shape(b'[[[[[1]]]]]', limits).reason == "too_deeply_nested"
    valid = json.dumps(event(kind="kb_result", item={f"k{i}": ["a"] * 32 for i in range(64)})).encode()
    assert check_shape(valid, JsonLimits()) is None  # the biggest record the contract allows


def test_masking_a_payload_never_raises(monkeypatch) -> None:
    from operators import records

    monkeypatch.setattr(type(records.STRICT), "redact",
                        lambda self, text: (_ for _ in ()).throw(RecursionError("deep")))
    assert mask_payload(b'{"text": "my card is 4111 1111 1111 1111"}') == (b"", [], "withheld")


def test_datetimes_beyond_utc_are_schema_violations_not_crashes() -> None:
    for moment in ("9999-12-31T23:59:59-14:00", "0001-01-01T00:00:00+14:00"):
        letter = parse.parse_record(raw(event(event_time=moment)), parse.ParseLimits(), 1)
        assert isinstance(letter, DeadLetter) and letter.reason == "schema_violation", letter.detail
        assert letter.detail.startswith("event_time")


STEPS = {
    # step -> (module, function name, how to fail on the poison record: a wrapper of the original)
    "parse": (parse, "parse_record", lambda f: lambda raw, *a, **k: _fail(raw.value) or f(raw, *a, **k)),
    "quality_gate": (quality, "quality_row", lambda f: lambda e: _fail(e) or f(e)),
    "conversation": (
        conversation.ConversationTracker,
        "apply",
        lambda f: lambda self, ev, *a, **k: _fail(ev) or f(self, ev, *a, **k),
    ),
    "guardrails": (
        guardrails.Guard,
        "decide",
        lambda f: lambda self, e, *a, **k: _fail(e) or f(self, e, *a, **k),
    ),
    "serialize": (publish, "serialize", lambda f: lambda r: _fail(r) or f(r)),
    "join_context": (ContextJoinLogic, "on_item", lambda f: lambda self, e: _fail(e) or f(self, e)),
    # One model call per batch: the batch with the poisoned record fails, then each of its records alone.
    "score": (
        scoring,
        "score_envelopes",
        lambda f: lambda batch, *a, **k: [_fail(e) for e in batch] and f(batch, *a, **k),
    ),
}
POISON = "poison-9f2"
POISONED: list[str] = []  # the event id of the poisoned turn


def _fail(item) -> None:
    """Raise on the poisoned record, in whatever form the step gets it (bytes, envelope, event, decision)."""
    if isinstance(item, DeadLetter):  # its detail quotes the planted message
        return
    decided = getattr(getattr(item, "input", None), "event_id", None)
    text = item if isinstance(item, bytes) else repr(getattr(item, "record", item)).encode()
    if POISON.encode() in text or (isinstance(item, Decision) and decided in POISONED):
        raise Boom(f"planted failure; customer said 4111 1111 1111 1111 ({POISON})")


@pytest.fixture(scope="module")
def replayed(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("boundary")
    items = replay.records(STAR_DIALOGUES, split="dev", limit=12, concurrency=4,
                           start=datetime(2026, 4, 1, 9, 0, tzinfo=UTC))
    records = [r for _, r in items]
    turn = next(i for i, r in enumerate(records) if r["type"] == "turn" and r["speaker"] == "customer"
                and r["sequence"] > 3)
    records[turn] = {**records[turn], "text": f"{records[turn]['text']} {POISON}"}
    source = tmp / "in.jsonl"
    source.write_text("".join(json.dumps(r) + "\n" for r in records))
    POISONED[:] = [records[turn]["event_id"]]
    return tmp, source, len(records), records[turn]["event_id"]


@pytest.mark.parametrize("step", sorted(STEPS))
def test_a_step_failing_on_one_record_dead_letters_it_and_the_job_goes_on(
    step, replayed, monkeypatch
) -> None:
    tmp, source, count, poisoned = replayed
    owner, name, wrap = STEPS[step]
    monkeypatch.setattr(owner, name, wrap(getattr(owner, name)))
    out = tmp / step
    run_job(Settings(input=source, output_dir=out, context_wait_ms=50, print_suggestions=False,
                     lineage="none", quality_monitor=False))
    outputs = read_outputs(out)
    internal = [d for d in outputs["dlq"] if d.reason == "internal_error"]
    assert [(d.step, d.error_type) for d in internal] == [(step, "Boom")]
    assert internal[0].event_id in (poisoned, None) and "4111" not in internal[0].detail
    assert len(outputs["decisions"]) + len(outputs["dlq"]) == count  # every other record decided
    assert poisoned not in {d.input.event_id for d in outputs["decisions"]}


def test_a_step_failing_on_every_record_stops_the_embedded_job(replayed, monkeypatch, tmp_path) -> None:
    _, source, _, _ = replayed

    def always(self, envelope, *args, **kwargs) -> list:
        raise Boom("the policy is broken")

    monkeypatch.setattr(guardrails.Guard, "decide", always)
    with pytest.raises(Exception) as raised:  # noqa: PT011 - Bytewax wraps it: the cause is ours
        run_job(Settings(input=source, output_dir=tmp_path, print_suggestions=False, lineage="none",
                         quality_monitor=False, max_failures_in_a_row=5))
    error, causes = raised.value, []
    while error is not None:
        causes.append(error)
        error = error.__cause__ or error.__context__
    systemic = [e for e in causes if isinstance(e, SystemicFailure)]
    assert systemic and "guardrails failed on 5 records in a row" in str(systemic[0])


def test_the_decision_a_serialiser_fails_on_becomes_a_dead_letter() -> None:
    boundary = Boundary("serialize", owns=publish.accounts_for_input)
    decisions = read_outputs_from_sample()
    broken = decisions[0].model_copy(update={"reasons": [object()]})  # not serialisable
    out = publish.serialize_batch(boundary)([broken, decisions[1]])
    kinds = [kind for kind, _, _ in out]
    assert kinds == ["dlq", "decisions"]
    letter = DeadLetter.model_validate_json(out[0][2])
    assert (letter.reason, letter.step, letter.event_id) == (
        "internal_error",
        "serialize",
        broken.input.event_id,
    )


def read_outputs_from_sample() -> list[Decision]:
    from tests.helpers import ROOT

    lines = (ROOT / "data" / "sample" / "conversations.jsonl").read_text().splitlines()[:40]
    items = [parse.parse_record(raw(line.encode()), parse.ParseLimits(check_keys=False), 1) for line in lines]
    envelopes = [e for e in items if not isinstance(e, DeadLetter)]
    guard = guardrails.GuardLogic(_Policies(), {}, guardrails.GuardConfig())
    out = []
    for e in envelopes:
        e.context = None
        out += [d for d in guard.on_item(e)[0] if isinstance(d, Decision)]
    return out


class _Policies:
    def current(self):
        from operators.policy import DEFAULT_POLICY, load_policy

        return load_policy(DEFAULT_POLICY)


def test_context_records_are_accounted_for_too() -> None:
    logic = Bounded(ContextJoinLogic(JoinConfig()), Boundary("join_context"))
    logic.inner.on_item = lambda value: (_ for _ in ()).throw(Boom("x"))
    [letter], _ = logic.on_item(envelope(context()))
    assert letter.reason == "internal_error" and letter.event_id is None and letter.customer_id == "u-1"


def test_an_acceptance_failure_on_an_input_already_decided_is_counted_not_dead_lettered(
    replayed, monkeypatch
):
    tmp, source, count, poisoned = replayed
    original = AcceptanceLogic.on_item
    monkeypatch.setattr(AcceptanceLogic, "on_item", lambda self, value: _fail(value) or original(self, value))
    before = FAILURES["acceptance"]
    run_job(Settings(input=source, output_dir=tmp / "acceptance", context_wait_ms=50, print_suggestions=False,
                     lineage="none", quality_monitor=False))
    outputs = read_outputs(tmp / "acceptance")
    assert FAILURES["acceptance"] == before + 1  # the poisoned turn's copy the guardrails passed on
    assert not [d for d in outputs["dlq"] if d.reason == "internal_error"]
    assert poisoned in {d.input.event_id for d in outputs["decisions"]}
    assert len(outputs["decisions"]) + len(outputs["dlq"]) == count
