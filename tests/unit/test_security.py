"""The ACL table: least privilege, derived for the configured topic names."""

from __future__ import annotations

from coachflow import security
from coachflow.bench import prefixed_settings
from coachflow.config import Settings
from coachflow.knowledge_config import KnowledgeSettings
from tests.helpers import ROOT


def rights(settings: Settings) -> dict[str, dict[str, set[str]]]:
    table: dict[str, dict[str, set[str]]] = {}
    for principal, kind, name, operation in security.grants(settings):
        table.setdefault(principal, {}).setdefault(f"{kind} {operation}", set()).add(name)
    return table


def test_each_principal_reads_and_writes_only_its_own_topics():
    s = Settings(brokers="b:1", policy_topic="coaching.policy")  # renamed
    table = rights(s)
    inputs = {s.topic_events, s.topic_context, s.topic_feedback}
    assert table["coaching"]["TOPIC READ"] == inputs | {"coaching.policy"}
    assert table["coaching"]["TOPIC WRITE"] == {*s.outputs().values(), s.lineage_topic}
    knowledge = KnowledgeSettings()
    assert table["console"] == {
        "TOPIC READ": {s.topic_suggestions, s.topic_alerts, s.topic_acceptance, knowledge.topic_cards},
        "TOPIC WRITE": {s.topic_feedback, knowledge.topic_feedback}, "GROUP READ": {"coach-console-*"}}
    assert table["knowledge"]["TOPIC WRITE"] == {
        knowledge.topic_cards, knowledge.topic_decisions, knowledge.topic_dlq, s.lineage_topic}
    assert s.topic_events in table["knowledge"]["TOPIC READ"]
    assert not table["knowledge"]["TOPIC WRITE"] & {*s.inputs().values(), *s.outputs().values()}
    assert table["replay"] == {"TOPIC WRITE": {s.topic_events, s.topic_context}}
    assert "TOPIC WRITE" not in table["report"]
    writers = {name: {p for p, r in table.items() if name in r.get("TOPIC WRITE", set())}
               for name in {n for r in table.values() for n in r.get("TOPIC WRITE", set())}}
    assert writers.pop(s.lineage_topic) == {"coaching", "knowledge"}  # both jobs' OpenLineage events
    assert all(len(who) == 1 for who in writers.values()), writers  # one writer per topic
    assert security.principals()[0] == security.ADMIN and security.ADMIN not in table


def test_acls_follow_renamed_and_prefixed_topics_and_grant_unset_optional_ones_by_their_catalog_name():
    plain = Settings(brokers="b:1")
    assert plain.policy_topic is None
    assert ("coaching", "TOPIC", "coaching.policies", "READ") in security.grants(plain)
    assert security.topics_of("coaching", plain) == [*plain.inputs().values(), *plain.outputs().values(),
                                                     plain.lineage_topic]  # the job checks only those it uses
    prefixed = prefixed_settings("b:1", "t1.")
    topics = {name for _, kind, name, _ in security.grants(prefixed) if kind == "TOPIC"}
    knowledge = KnowledgeSettings()  # the knowledge job's topics: its own COACH_KNOWLEDGE_* names
    assert {name for name in topics if not name.startswith("t1.")} == {
        prefixed.lineage_topic, "coaching.policies", knowledge.topic_cards, knowledge.topic_decisions,
        knowledge.topic_dlq, knowledge.topic_feedback, "knowledge.articles", "coaching.knowledge.policies"}
    bindings = security.bindings(prefixed)
    assert len(bindings) == len(security.grants(prefixed))
    groups = {(b.name, b.resource_pattern_type.name) for b in bindings if b.restype.name == "GROUP"}
    assert ("coach-console-", "PREFIXED") in groups and ("BYTEWAX_IGNORED", "LITERAL") in groups
    assert {b.principal for b in bindings} == {f"User:{p}" for p in security.ACCESS}
    assert {b.permission_type.name for b in bindings} == {"ALLOW"}


def test_the_table_lists_every_principal_and_docs_show_it_as_it_is():
    shown = security.table()
    assert all(f"| `{principal}` |" in shown for principal in security.principals())
    assert shown in (ROOT / "docs" / "security.md").read_text(), "docs/security.md: paste `coach acls show`"
