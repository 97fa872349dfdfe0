"""Policies as versioned, validated artifacts, swapped without a restart."""

from __future__ import annotations

import json
import shutil
import time

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
        (lambda d: d["rules"]["pii"].update(kinds=["shoe_size"]), "rules.pii.kinds"),
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


class FakePolicyConsumer:
    """A policies topic: one partition holding ``documents``, then whatever ``later`` brings."""

    def __init__(self, documents: list[bytes], exists: bool = True, slow: int = 0) -> None:
        self.documents = list(documents)
        self.exists = exists
        self.slow = slow  # empty polls before the first message (the group join)
        self.offset = 0
        self.later: list[bytes] = []
        self.closed = False

    def subscribe(self, topics):
        self.topics = topics

    def list_topics(self, topic, timeout=None):
        meta = type("Meta", (), {"error": None, "partitions": {0: object()}})()
        return type("Cluster", (), {"topics": {topic: meta} if self.exists else {}})()

    def get_watermark_offsets(self, part, timeout=None):
        return 0, len(self.documents)

    def poll(self, timeout=None):
        if self.slow:
            self.slow -= 1
            return None
        queue = self.documents + self.later
        if self.offset >= len(queue):
            time.sleep(0.01)
            return None
        value, offset = queue[self.offset], self.offset
        self.offset += 1
        return type("Msg", (), {"value": lambda s: value, "offset": lambda s: offset,
                                "partition": lambda s: 0, "error": lambda s: None})()

    def close(self):
        self.closed = True


def policy_version(version: str) -> bytes:
    return DEFAULT_POLICY.read_text().replace("version: 1.0.0", f"version: {version}").encode()


def test_a_start_puts_the_topics_latest_policy_in_force_before_anything_is_decided():
    """A restart (from recovery, too) replays records: they must be decided under the
    policy that was in force, the topic's latest, not the file's older one."""
    topic = FakePolicyConsumer([policy_version("1.0.1"), b"rules: [broken", policy_version("1.0.2")], slow=5)
    store = PolicyStore(DEFAULT_POLICY, brokers="kafka:9092", topic="coaching.policies",
                        consumer_factory=lambda config: topic)
    try:
        assert store.current().version == "1.0.2"  # at once: no waiting for the follower
        assert len(store.rejections) == 1
        topic.later.append(policy_version("1.0.3"))  # and it keeps following the topic
        deadline = time.monotonic() + 5
        while store.current().version != "1.0.3" and time.monotonic() < deadline:
            time.sleep(0.01)
        assert store.current().version == "1.0.3"
    finally:
        store.close()


def test_a_missing_policies_topic_leaves_the_file_policy_in_force():
    topic = FakePolicyConsumer([], exists=False)
    store = PolicyStore(DEFAULT_POLICY, brokers="kafka:9092", topic="coaching.policies",
                        consumer_factory=lambda config: topic, catch_up_s=0.5)
    try:
        assert store.current().version == "1.0.0"
    finally:
        store.close()
