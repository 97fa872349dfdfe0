"""The whole job, fuzzed: hostile records woven into valid STAR traffic, through the embedded flow.

Each example takes two valid conversations (with their customers' context and
UI feedback on their suggestions), inserts hostile records at random places
(any payload of ``strategies.payloads``, and records made hostile relative to
the traffic: duplicates, late and future events, stragglers after the end,
events of another conversation, feedback on other conversations'
suggestions, repeated feedback, context at the edges) and runs the embedded
job on it in this process. ``check_run`` holds every line to one decision,
one dead letter or one click acceptance, no step to raising, and every
output to its contract with no planted personal data.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from tests.fuzz import budget, strategies
from tests.fuzz.budget import examples, keep_if_failing
from tests.fuzz.contracts import contracts, fields
from tests.fuzz.harness import check_run
from tests.fuzz.test_parse import swaps


def _shift(stamp: str, seconds: float) -> str:
    try:
        moment = datetime.fromisoformat(stamp.replace("Z", "+00:00")) + timedelta(seconds=seconds)
    except (OverflowError, ValueError):
        return stamp
    return moment.isoformat().replace("+00:00", "Z")


EVENTS = ("accepted", "dismissed", "edited", "shown")


@dataclass(frozen=True)
class Around:
    """The traffic a hostile record is made against: a chunk's records, and another chunk's."""

    records: list[dict]
    events: list[dict]
    feedback: list[dict]
    contexts: list[dict]
    foreign: list[dict]
    suggestions: tuple[dict, ...]
    """The other chunk's shown suggestions."""


def _feedback_other(draw, r: dict, fresh: str, around: Around) -> dict:
    s = draw(st.sampled_from(around.suggestions))
    return {"schema_version": "1.0", "type": "feedback", "feedback_id": f"fz-{fresh}",
            "suggestion_id": s["suggestion_id"],
            "conversation_id": draw(st.sampled_from([r["conversation_id"], s["conversation_id"]])),
            "agent_id": r["agent_id"], "event": draw(st.sampled_from(EVENTS)), "at": r["event_time"]}


def _end_early(draw, r: dict, fresh: str, around: Around) -> dict:
    shared = ("schema_version", "conversation_id", "customer_id", "agent_id", "channel", "event_time",
              "sequence")
    common = {k: v for k, v in r.items() if k in shared}
    return {**common, "type": "conversation_end", "event_id": fresh,
            "reason": draw(st.sampled_from(["completed", "abandoned"]))}


def _after_end(draw, r: dict, fresh: str, around: Around) -> dict:
    last = max(around.events, key=lambda e: e["sequence"])
    return {**r, "event_id": fresh, "sequence": last["sequence"] + 1, "event_time": last["event_time"]}


def _restart(draw, r: dict, fresh: str, around: Around) -> dict:
    start = next((e for e in around.events if e["type"] == "conversation_start"), r)
    return {**start, "event_id": fresh, "event_time": _shift(r["event_time"], 1)}


#: Kind -> (whether the traffic has what it needs, how to make the record from one of its events).
RELATIVE = {
    "duplicate": (lambda a: True, lambda draw, r, fresh, a: draw(st.sampled_from(a.records))),
    "late": (lambda a: True, lambda draw, r, fresh, a: {
        **r, "event_id": fresh, "sequence": r["sequence"] + 1000,
        "event_time": _shift(r["event_time"], -3600)}),
    "future": (lambda a: True, lambda draw, r, fresh, a: {
        **r, "event_id": fresh, "event_time": _shift(r["event_time"], draw(st.sampled_from([301, 86_400])))}),
    "far_past": (lambda a: True, lambda draw, r, fresh, a: {
        **r, "event_id": fresh, "event_time": _shift(r["event_time"], -10 * 365 * 86_400)}),
    "after_end": (lambda a: True, _after_end),
    "cross": (lambda a: bool(a.foreign), lambda draw, r, fresh, a: {
        **r, "event_id": fresh, "conversation_id": draw(st.sampled_from(a.foreign))["conversation_id"]}),
    "customer": (lambda a: bool(a.foreign), lambda draw, r, fresh, a: {
        **r, "event_id": fresh, "customer_id": draw(st.sampled_from(a.foreign)).get("customer_id", "x")}),
    "sequence": (lambda a: True, lambda draw, r, fresh, a: {
        **r, "event_id": fresh,
        "sequence": draw(st.sampled_from([0, max(r["sequence"] - 1, 0), 2**63 - 1, 2**63, 10**30]))}),
    "restart": (lambda a: True, _restart),
    "end_early": (lambda a: True, _end_early),
    "feedback_other": (lambda a: bool(a.suggestions), _feedback_other),
    "feedback_repeat": (lambda a: bool(a.feedback), lambda draw, r, fresh, a: {
        **draw(st.sampled_from(a.feedback)), "event": draw(st.sampled_from(EVENTS))}),
    "feedback_early": (lambda a: bool(a.feedback), lambda draw, r, fresh, a: {
        **(f := draw(st.sampled_from(a.feedback))), "feedback_id": f"{f['feedback_id']}-early",
        "suggestion_id": f"{f['suggestion_id'][:-4]}beef"}),
    "context": (lambda a: bool(a.contexts), lambda draw, r, fresh, a: draw(
        strategies.edged(draw(st.sampled_from(a.contexts))))),
}


@st.composite
def relative(draw, chunk, other) -> bytes:
    """A record of ``chunk`` made hostile relative to the traffic around it (and ``other`` chunk's)."""
    records = list(chunk.records)
    around = Around(
        records=records, events=[r for r in records if "event_id" in r],
        feedback=[r for r in records if r["type"] == "feedback"],
        contexts=[r for r in records if r["type"] == "customer_context"],
        foreign=[r for r in other.records if "conversation_id" in r], suggestions=other.suggestions,
    )
    usable = sorted(kind for kind, (applies, _) in RELATIVE.items() if applies(around))
    kind = draw(st.sampled_from(usable), label="relative")
    r = dict(draw(st.sampled_from(around.events)))
    fresh = f"{r['event_id']}-fz{draw(st.integers(0, 99))}"
    out = RELATIVE[kind][1](draw, r, fresh, around)
    return json.dumps(out, ensure_ascii=False).encode("utf-8", "surrogatepass")


_PAYLOADS: dict[int, st.SearchStrategy[bytes]] = {}


def check(embedded_job, lines: list[bytes]) -> None:
    with keep_if_failing({"target": "flow", "lines": [budget.b64(line) for line in lines]}):
        problems = check_run(lines, embedded_job.run(lines))
        assert not problems, problems


@examples(120, runs_the_job=True)
@given(data=st.data())
def test_hostile_records_in_valid_traffic(embedded_job, pool, data) -> None:
    if id(pool) not in _PAYLOADS:
        _PAYLOADS[id(pool)] = strategies.payloads(list(pool.records))
    chunk = data.draw(st.sampled_from(pool.chunks), label="chunk")
    other = data.draw(st.sampled_from(pool.chunks), label="other")
    lines = chunk.lines()
    for _ in range(data.draw(st.integers(1, 8), label="hostile records")):
        bad = data.draw(st.one_of(_PAYLOADS[id(pool)], relative(chunk, other)), label="hostile")
        lines.insert(data.draw(st.integers(0, len(lines)), label="at"), bad)
    check(embedded_job, lines)


def test_every_type_swap_of_every_contract_through_the_job(embedded_job, pool) -> None:
    """Each field of each input contract swapped for every other JSON type (and dropped), all in one run
    among valid traffic."""
    lines = pool.chunks[0].lines()
    for c in contracts():
        for model in c.records:
            if c.stream is None:
                continue
            seed = next(r for tag, r in pool.by_type.items() if strategies.by_tag()[tag][1] is model)
            for _name, _kind, record in swaps(seed, fields(c, model)):
                lines.append(json.dumps(record).encode())
    assert len(lines) > len(pool.chunks[0].records) + 7 * 6 * 4  # 7 record types, 6+ fields, 4+ cases each
    check(embedded_job, lines)
