"""Policies as versioned, validated artifacts, swapped without a restart."""

from __future__ import annotations

import json
import shutil

import pytest
import yaml

from operators.policy import DEFAULT_POLICY, PolicyError, PolicyStore, load_policy, parse_policy
from tests.helpers import ROOT

ABCD = ROOT / "policies" / "abcd.yaml"


def test_the_shipped_policies_load():
    default = load_policy(DEFAULT_POLICY)
    assert (default.name, default.version) == ("coaching-guardrails", "1.0.0")
    assert default.hash.startswith("sha256:") and len(default.hash) == 71
    abcd = load_policy(ABCD)
    assert abcd.rules.consent.marketing_actions == ["promo_code", "membership"]


def test_the_hash_follows_the_content_not_the_formatting():
    text = DEFAULT_POLICY.read_text()
    as_json = json.dumps(yaml.safe_load(text), indent=4)
    assert parse_policy(as_json).hash == parse_policy(text).hash
    changed = text.replace("min_confidence: 0.15", "min_confidence: 0.2")
    assert parse_policy(changed).hash != parse_policy(text).hash


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda d: d["rules"]["confidence"].update(min_confidence=2), "rules.confidence.min_confidence"),
        (lambda d: d.update(version="latest"), "version"),
        (lambda d: d["rules"].pop("pii"), "rules.pii"),
        (lambda d: d["rules"]["rate"].update(id="Rate Limit"), "rules.rate.id"),
        (lambda d: d["rules"]["pii"].update(kinds=["passport"]), "rules.pii.kinds"),
        (lambda d: d["rules"].update(surprise=True), "rules.surprise"),
    ],
)
def test_an_invalid_policy_is_rejected_saying_where(mutate, message):
    body = yaml.safe_load(DEFAULT_POLICY.read_text())
    mutate(body)
    with pytest.raises(PolicyError, match=message.replace(".", r"\.")):
        parse_policy(yaml.safe_dump(body))


def test_malformed_yaml_is_rejected():
    with pytest.raises(PolicyError, match="not valid YAML"):
        parse_policy("rules: [unclosed")
    with pytest.raises(PolicyError, match="a policy is a mapping"):
        parse_policy("- just\n- a list\n")


class FakeClock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def test_the_store_swaps_in_a_new_version_and_keeps_the_old_one_on_a_bad_update(tmp_path):
    path = tmp_path / "policy.yaml"
    shutil.copy(DEFAULT_POLICY, path)
    clock = FakeClock()
    store = PolicyStore(path, reload_s=1.0, clock=clock)
    first = store.current()
    assert first.version == "1.0.0"

    text = path.read_text()
    path.write_text(text.replace("version: 1.0.0", "version: 1.1.0"))
    assert store.current() is first  # not checked again yet
    clock.now = 1.5
    assert store.current().version == "1.1.0"

    path.write_text("rules: [unclosed")
    clock.now = 3.0
    assert store.current().version == "1.1.0"
    assert "rejected" in store.rejections[-1] and "keeping coaching-guardrails 1.1.0" in store.rejections[-1]

    path.write_text(text.replace("version: 1.0.0", "version: 1.2.0"))
    clock.now = 4.5
    assert store.current().version == "1.2.0"


def test_a_store_needs_a_valid_policy_to_start(tmp_path):
    path = tmp_path / "broken.yaml"
    path.write_text("rules: [unclosed")
    with pytest.raises(PolicyError, match="broken.yaml"):
        PolicyStore(path)


def test_the_abcd_policy_follows_abcds_flows():
    """Every ABCD action a rule guards comes after one of the rule's verifying
    actions in one of ABCD's flows (kb.json)."""
    kb = json.loads((ROOT.parent / "shared" / "data" / "abcd" / "kb.json").read_text())
    flows = [[s.replace("-", "_") for s in steps] for steps in kb.values()]
    rules = load_policy(ABCD).rules.verify_before_disclosure
    assert len(rules) == 2
    for rule in rules:
        after = {step for steps in flows for i, step in enumerate(steps)
                 if any(v in steps[:i] for v in rule.verified_by.actions)}
        assert set(rule.disclosures) <= after, rule.id
