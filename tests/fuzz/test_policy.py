"""Policy documents as the policy topic delivers them, fuzzed.

The topic (``coaching.policies``, compacted, keyed by name) brings any bytes,
or none (a tombstone). ``PolicyStore`` offers each to ``parse_policy`` and
keeps the policy in force when it raises ``PolicyError``; anything else it
raised would end the store's follower thread, or the job's start-up while it
catches up with the topic. So: ``parse_policy`` returns a ``Policy`` or
raises ``PolicyError``, whatever the bytes. And a document the contract
accepts (generated from its JSON Schema, or one that turns every rule as far
down as the contract lets it) decides every record through the embedded job.
"""

from __future__ import annotations

import json

import yaml
from hypothesis import example, given
from hypothesis import strategies as st

from operators.policy import DEFAULT_POLICY, Policy, PolicyError, parse_policy
from tests.fuzz import budget, seeds, strategies
from tests.fuzz.budget import examples, keep_if_failing
from tests.fuzz.contracts import valid_records
from tests.fuzz.harness import check_run

DEFAULT = yaml.safe_load(DEFAULT_POLICY.read_text())

#: The default policy with every rule as far down as the contract allows: nothing masked, no
#: confidence floor, no rate limit, no repeats refused, no conduct phrases, steps and checks gone.
PERMISSIVE = {
    **DEFAULT, "name": "permissive", "version": "9.9.9",
    "rules": {
        **DEFAULT["rules"],
        "pii": {**DEFAULT["rules"]["pii"], "kinds": [], "min_digits": 12},
        "confidence": {**DEFAULT["rules"]["confidence"], "min_confidence": 0.0},
        "top_k": {**DEFAULT["rules"]["top_k"], "k": 10},
        "channel_form": {**DEFAULT["rules"]["channel_form"], "max_chars": {"voice": 10**9, "chat": 10**9}},
        "templates_only": {**DEFAULT["rules"]["templates_only"], "max_slot_chars": 500},
        "consent": {**DEFAULT["rules"]["consent"], "missing_context_means_opted_out": False},
        "verify_before_disclosure": [], "required_steps": [], "jurisdiction": [],
        "conduct": {**DEFAULT["rules"]["conduct"], "phrases": []},
        "rate": {**DEFAULT["rules"]["rate"], "min_interval_s": 0},
        "repetition": {**DEFAULT["rules"]["repetition"], "enabled": False},
        "escalation": {**DEFAULT["rules"]["escalation"], "threshold": 1.0, "cooldown_s": 0},
    },
}
#: ... and every number the contract allows at its far end.
EXTREME = {
    **PERMISSIVE, "name": "extreme",
    "rules": {
        **PERMISSIVE["rules"],
        "rate": {**DEFAULT["rules"]["rate"], "min_interval_s": 1e308},
        "escalation": {**DEFAULT["rules"]["escalation"], "threshold": 0.0, "cooldown_s": 1e308},
        "channel_form": {**DEFAULT["rules"]["channel_form"], "max_chars": {"voice": -(10**30), "chat": 0}},
        "required_steps": [{**DEFAULT["rules"]["required_steps"][0], "deadline_s": 1e308,
                            "jurisdictions": []}],
    },
}

#: YAML that PyYAML itself chokes on, or builds something odd from.
YAML_TRICKS = (
    b"a: &a [*a]", b"a: &x [1]\nb: *y", b"a: 2026-13-45", b"a: !!binary xx", b"!!python/object:os.system {}",
    b"a: !!timestamp 99999-01-01", b"---\nname: a\n---\nname: b", b"? [a, b]\n: c", b"<<: *nope",
    b"a: b\na: c",
    b"a: \t b", b"%YAML 9.9\n---\na: 1", b"a: 1e99999", b"a: 0o999", b"a: .nan", b"\xef\xbb\xbfa: 1",
    b"\xff\xfe", b"a: 0x", b"- " * 3000 + b"x", b"[" * 5000, b"{a: " * 3000, b"a:\n" + b" b:\n" * 3000,
    b"lol: &a [x,x,x,x,x,x,x,x,x]\nl2: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]\nl3: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]\n"
    b"l4: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]\nl5: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]\n"
    b"rules: {conduct: {phrases: [*e,*e,*e,*e,*e,*e,*e,*e,*e]}}",
)


def check_policy(value: bytes | None) -> Policy | None:
    """The topic's invariant for one document; returns the policy if it was accepted."""
    budget.tried("policy")
    with keep_if_failing({"target": "policy", "value": budget.b64(value)}):
        try:
            policy = parse_policy(value)
        except PolicyError as error:
            assert str(error), "a rejection says why"
            return None
        assert isinstance(policy, Policy) and policy.hash.startswith("sha256:")
        policy.redactor.redact("call me on (415) 555-0132")
        return policy


def documents() -> st.SearchStrategy[bytes]:
    """Policy documents: valid ones (JSON and YAML), mutated ones, YAML tricks, any JSON, any bytes."""
    valid = valid_records("policies")
    as_yaml = valid.map(lambda d: yaml.safe_dump(d, allow_unicode=True).encode())
    as_json = valid.map(lambda d: json.dumps(d).encode())
    return st.one_of(
        as_yaml, as_json, valid.flatmap(strategies.mutated), st.just(DEFAULT).flatmap(strategies.mutated),
        st.sampled_from(YAML_TRICKS), strategies.hostile_json(), strategies.nested(), st.binary(max_size=256),
    )


@examples(200)
@given(value=st.one_of(st.none(), documents()))
@example(value=None)  # a tombstone: the compacted topic's deletion of a policy
@example(value=b"rules: [" * 5000)
@example(value=YAML_TRICKS[-1])
def test_a_policy_document_is_accepted_or_rejected_never_raised(value) -> None:
    check_policy(value)


def test_valid_documents_are_accepted() -> None:
    """The generated valid documents are mostly accepted: the fuzzing reaches past validation."""
    accepted = [check_policy(json.dumps(doc).encode()) for doc in (DEFAULT, PERMISSIVE, EXTREME)]
    assert all(accepted)


def run_policy(embedded_job, tmp_path_factory, doc: dict, chunks) -> None:
    """Every chunk (personal data planted in it) through the embedded job under the policy ``doc``."""
    text = yaml.safe_dump(doc, allow_unicode=True)
    if check_policy(text.encode()) is None:
        return  # the contract refused it (a pattern the JSON Schema cannot say): nothing to run
    path = tmp_path_factory.mktemp("policy") / "policy.yaml"
    path.write_text(text)
    for chunk in chunks:
        lines = [json.dumps(r, ensure_ascii=False).encode() for r in seeds.with_pii(chunk.records)]
        case = {"target": "flow", "lines": [budget.b64(line) for line in lines], "policy": text}
        with keep_if_failing(case):
            problems = check_run(lines, embedded_job.run(lines, policy=path))
            assert not problems, problems


@examples(25, runs_the_job=True)
@given(data=st.data())
def test_any_policy_the_contract_accepts_decides_every_record(embedded_job, pool, tmp_path_factory,
                                                              data) -> None:
    doc = data.draw(valid_records("policies"), label="policy")
    # Masking as the default policy has it: a policy that turns it off is the case below.
    doc = {**doc, "rules": {**doc["rules"], "pii": DEFAULT["rules"]["pii"]}}
    run_policy(embedded_job, tmp_path_factory, doc, [data.draw(st.sampled_from(pool.chunks), label="chunk")])


def test_a_policy_at_the_far_ends_of_its_numbers_decides_every_record(embedded_job, pool, tmp_path_factory):
    run_policy(embedded_job, tmp_path_factory, EXTREME, pool.chunks)


def test_a_policy_that_masks_nothing_leaks_nothing(embedded_job, pool, tmp_path_factory) -> None:
    run_policy(embedded_job, tmp_path_factory, PERMISSIVE, pool.chunks)
