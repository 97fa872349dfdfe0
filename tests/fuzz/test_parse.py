"""The raw-bytes path, fuzzed: ``parse_record`` on every stream never raises, and every record it
gets becomes an envelope of that stream's contract or a dead letter with a reason, safe to publish."""

from __future__ import annotations

import json

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from operators.envelope import Origin, RawRecord
from operators.keys import key_field
from operators.parse import ParseLimits
from tests.fuzz import budget, strategies
from tests.fuzz.budget import examples, keep_if_failing
from tests.fuzz.contracts import JSON_TYPES, contracts, fields
from tests.fuzz.harness import check_parsed

STREAMS = ("events", "context", "feedback", "any")
_lines = iter(range(1, 1 << 62))


def check(stream: str, value: bytes | None, key: bytes | None, check_keys: bool,
          key_by: str = "conversation") -> None:
    """The invariants for one raw record (``tests.fuzz.harness.check_parsed``); in a campaign, a failing
    record is kept as a corpus case."""
    case = {"target": "parse", "stream": stream, "value": budget.b64(value), "key": budget.b64(key),
            "check_keys": check_keys, "key_by": key_by}
    with keep_if_failing(case):
        origin = Origin(file="fuzz.jsonl", line=next(_lines))
        raw = RawRecord(value=value, key=key, origin=origin, stream=stream)
        limits = ParseLimits(check_keys=check_keys, key_by=key_by)  # type: ignore[arg-type]
        problems = check_parsed(raw, limits)
        assert not problems, problems


_PAYLOADS: dict[int, st.SearchStrategy[bytes]] = {}


def pool_payloads(pool) -> st.SearchStrategy[bytes]:
    """``strategies.payloads`` over the pool's records, built once."""
    if id(pool) not in _PAYLOADS:
        _PAYLOADS[id(pool)] = strategies.payloads(list(pool.records))
    return _PAYLOADS[id(pool)]


def right_key(stream: str, payload: bytes, key_by: str) -> str | None:
    """The key the record in ``payload`` should have, if it names one."""
    try:
        record = json.loads(payload)
    except (ValueError, RecursionError):
        return None
    if not isinstance(record, dict) or stream == "any":
        return None
    value = record.get(key_field(stream, key_by))
    return value if isinstance(value, str) else None


@examples(300)
@given(stream=st.sampled_from(STREAMS), value=st.one_of(st.none(), st.binary(max_size=512)),
       key=st.one_of(st.none(), st.binary(max_size=32)), check_keys=st.booleans())
@example(stream="events", value=b"\xef\xbb\xbf{}", key=None, check_keys=True)
@example(stream="context", value=b"\x00" * 70_000, key=b"", check_keys=True)
def test_arbitrary_bytes(stream, value, key, check_keys) -> None:
    check(stream, value, key, check_keys)


@examples(400)
@given(stream=st.sampled_from(STREAMS), value=st.one_of(strategies.hostile_json(), strategies.nested()),
       check_keys=st.booleans())
@example(stream="any", value=b'{"a":' * 3000 + b"1" + b"}" * 3000, check_keys=False)
@example(stream="events", value=b'{"text": "\\ud800 my card is 4111 1111 1111 1111", "type": "turn"}',
         check_keys=False)
@example(stream="events", value=("[" + "1" * 4301 + "]").encode(), check_keys=False)
def test_generated_json(stream, value, check_keys) -> None:
    check(stream, value, None, check_keys)


@examples(900)
@given(data=st.data())
def test_contract_records_and_their_mutations(pool, data) -> None:
    stream = data.draw(st.sampled_from(STREAMS), label="stream")
    value = data.draw(pool_payloads(pool), label="value")
    key_by = data.draw(st.sampled_from(["conversation", "customer"]), label="key_by")
    key = data.draw(strategies.kafka_keys(right_key(stream, value, key_by)), label="key")
    check(stream, value, key, data.draw(st.booleans(), label="check_keys"), key_by)


#: A value of each JSON type, for swapping a field's type for every other.
BY_TYPE = {"null": None, "boolean": True, "integer": -1, "number": 0.5,
           "string": "my card is 4111 1111 1111 1111", "array": [1, "ssn 078-05-1120"],
           "object": {"note": "call me on (415) 555-0132"}}


def swaps(record: dict, types: dict[str, set[str]]) -> list[tuple[str, str, dict]]:
    """``record`` with each field set to each JSON type it does not allow, and without each field."""
    out = []
    for name, allowed in types.items():
        for kind in JSON_TYPES:
            if kind not in allowed and not (kind == "integer" and "number" in allowed):
                out.append((name, kind, {**record, name: BY_TYPE[kind]}))
        out.append((name, "absent", {k: v for k, v in record.items() if k != name}))
    return out


CASES = [(c.kind, model) for c in contracts() if c.stream is not None for model in c.records]


@pytest.mark.parametrize(("kind", "model"), CASES, ids=[m.__name__ for _, m in CASES])
def test_every_field_of_every_contract_swapped_for_every_other_type(pool, kind, model) -> None:
    contract = next(c for c in contracts() if c.kind == kind)
    seed = next(r for tag, r in pool.by_type.items() if strategies.by_tag()[tag][1] is model)
    cases = swaps(seed, fields(contract, model))
    assert len(cases) >= 3 * len(model.model_fields)
    for _name, _kind, record in cases:
        payload = json.dumps(record).encode()
        for stream in (contract.stream, "any"):
            key = right_key(stream, payload, "conversation")
            check(stream, payload, None if key is None else key.encode(), True)
