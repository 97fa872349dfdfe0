"""The knowledge job in embedded mode: every input one knowledge decision or one dead letter."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest
from bytewax.testing import run_main

from coachflow.config import Settings
from coachflow.knowledge import KnowledgeResources
from coachflow.knowledge_config import SAMPLE_ARTICLES, KnowledgeSettings
from flows.knowledge import get_flow
from models.knowledge import articles as kb
from schemas import DeadLetter, KnowledgeCard, KnowledgeDecision
from tests.helpers import context, event
from tests.knowledge_helpers import small_kb


def conversation(name: str, customer: str, turns: list[tuple[str, str]], t0: float = 0.0) -> list[dict]:
    records = [event("conversation_start", seq=0, t=t0, conversation=name, customer=customer, tasks=[])]
    for n, (speaker, text) in enumerate(turns, 1):
        records.append(event("turn", seq=n, t=t0 + 10 * n, conversation=name, customer=customer,
                             speaker=speaker, text=text))
    records.append(event("conversation_end", seq=len(turns) + 1, t=t0 + 10 * len(turns) + 5,
                         conversation=name, customer=customer))
    return records


def inputs() -> list[str]:
    records = [
        context("ny-1", jurisdiction="US-NY", marketing_opt_out=True),
        context("ca-1", jurisdiction="US-CA"),
        *conversation(
            "c-ny",
            "ny-1",
            [
                ("customer", "My license plates were lost, how do I replace them?"),
                ("agent", "You can replace them at a DMV office; bring your registration."),
                ("customer", "ok thanks"),
                ("customer", "What does a replacement set of plates cost?"),
            ],
        ),
        *conversation(
            "c-ca", "ca-1", [("customer", "My license plates were stolen, how do I replace them?")], t0=100
        ),
        *conversation(
            "c-ssa",
            "ca-1",
            [("customer", "How do I apply for disability benefits and who can I call?")],
            t0=200,
        ),
    ]
    lines = [json.dumps(r) for r in records]
    return lines + ['{"schema_version":"1.0","type":"turn",', json.dumps({**records[3], "text": None})]


def knowledge_base() -> list:
    """The test articles among the bundled sample's: BM25's statistics of a real knowledge base."""
    return [*small_kb(), *kb.load(SAMPLE_ARTICLES)]


def run_job(tmp: Path, **overrides) -> dict[str, list]:
    (tmp / "in.jsonl").write_text("\n".join(inputs()) + "\n")
    kb.write_jsonl(knowledge_base(), tmp / "kb.jsonl")
    ks = KnowledgeSettings(input=tmp / "in.jsonl", output_dir=tmp / "out", articles=tmp / "kb.jsonl", nice=0,
                           **overrides)
    settings = ks.job_settings(Settings(quality_monitor=False, metrics_port=0))
    with KnowledgeResources(ks, settings) as job:
        run_main(get_flow(ks, settings, job))
    out = {}
    for kind, model in (
        ("knowledge", KnowledgeCard),
        ("knowledge_decisions", KnowledgeDecision),
        ("dlq", DeadLetter),
    ):
        path = tmp / "out" / f"{kind}.jsonl"
        out[kind] = (
            [model.model_validate_json(line) for line in path.read_text().splitlines()]
            if path.exists()
            else []
        )
    out["lineage"] = [json.loads(line) for line in (tmp / "out" / "lineage.jsonl").read_text().splitlines()]
    return out


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    return run_job(tmp_path_factory.mktemp("knowledge"))


def by_event(run) -> dict[str, KnowledgeDecision]:
    return {d.input.event_id: d for d in run["knowledge_decisions"]}


def test_every_input_is_one_decision_or_one_dead_letter(run):
    assert len(run["knowledge_decisions"]) + len(run["dlq"]) == len(inputs())
    assert len({d.input.event_id for d in run["knowledge_decisions"]}) == len(run["knowledge_decisions"])
    assert sorted(d.reason for d in run["dlq"]) == ["malformed_json", "schema_violation"]


def test_a_question_gets_a_card_citing_the_article_version_and_offsets(run):
    decision = by_event(run)["c-ny-1"]
    assert decision.outcome == "shown"
    card = next(c for c in run["knowledge"] if c.card_id == decision.card_id)
    assert card.article_id == "plates" and card.citation.article_version == "3"
    assert card.citation.heading == "Replace your license plates"
    body = next(a for a in small_kb() if a.article_id == "plates").body
    assert " ".join(body[card.citation.start:card.citation.end].split()) == card.passage
    assert (
        card.event_id == "c-ny-1"
        and card.kb_version == kb.kb_version(knowledge_base()) == decision.kb_version
    )
    assert card.citation.source_url == "https://dmv.example/plates" and card.latency_ms >= 0
    assert decision.policy_name == "knowledge-guardrails" and decision.ranker_version == card.ranker_version


def test_turns_that_seek_nothing_and_other_inputs_are_accounted_for(run):
    decisions = by_event(run)
    assert decisions["c-ny-3"].outcome == "not_needed" and decisions["c-ny-3"].reasons == [
        "knowledge.small_talk"
    ]
    assert decisions["c-ny-2"].outcome == "recorded" and decisions["c-ny-2"].reasons == ["agent_turn"]
    assert decisions["c-ny-0"].reasons == ["conversation_start"]
    assert Counter(
        d.reasons[0] for d in run["knowledge_decisions"] if d.input.kind == "customer_context"
    ) == {"context_applied": 2}


def test_jurisdiction_holds_a_card_the_article_does_not_apply_to(run):
    stolen = by_event(run)["c-ca-1"]  # plates are New York's; this customer is in California
    jurisdiction = next(r for r in stolen.rules if r.rule_id == "knowledge.jurisdiction.applies")
    assert jurisdiction.outcome == "block" and "not US-CA" in jurisdiction.detail
    assert stolen.passages[0].article_id == "plates"
    assert all(c.article_id != "plates" for c in run["knowledge"] if c.conversation_id == "c-ca")


def test_personal_data_in_a_passage_is_masked(run):
    card = next(c for c in run["knowledge"] if c.event_id == "c-ssa-1")
    assert card.article_id == "benefits"
    assert "555-123-4567" not in card.passage and "help@ssa.example" not in card.passage
    assert "[PHONE]" in card.passage and "[EMAIL]" in card.passage
    decision = by_event(run)["c-ssa-1"]
    assert any(r.rule_id == "knowledge.pii.mask" and r.outcome == "rewrite" for r in decision.rules)


def test_lineage_names_the_knowledge_base_and_its_version(run):
    start = run["lineage"][0]
    assert start["eventType"] == "START" and start["job"]["name"] == "knowledge"
    kb_input = next(d for d in start["inputs"] if d["name"].endswith("kb.jsonl"))
    assert kb_input["facets"]["version"]["datasetVersion"] == kb.kb_version(knowledge_base())
    assert {d["name"].rsplit("/", 1)[-1] for d in start["outputs"]} == {
        "knowledge.jsonl", "knowledge_decisions.jsonl", "dlq.jsonl"}


def test_an_overloaded_stage_sheds_and_says_why(tmp_path):
    out = run_job(tmp_path, shed_max_age_s=1e-6)  # nothing can be answered in a microsecond
    decisions = {d.input.event_id: d for d in out["knowledge_decisions"]}
    asked = ["c-ny-1", "c-ny-4", "c-ca-1", "c-ssa-1"]
    assert all(decisions[e].outcome == "shed" and decisions[e].reasons == ["shed.stale"] for e in asked)
    assert out["knowledge"] == [] and len(out["knowledge_decisions"]) + len(out["dlq"]) == len(inputs())


def test_metrics_count_knowledge_decisions_by_outcome_and_reason(run):
    from prometheus_client import REGISTRY

    from coachflow.metrics import JobMetrics

    def value(name, **labels):
        return REGISTRY.get_sample_value(name, labels) or 0.0

    shed_before = value(
        "coachflow_knowledge_decisions_total", outcome="not_needed", reason="knowledge.small_talk"
    )
    cards_before = value("coachflow_records_total", kind="knowledge", outcome="published")
    retrievals_before = value("coachflow_knowledge_retrieval_seconds_count")
    metrics = JobMetrics()
    for record in (*run["knowledge"], *run["knowledge_decisions"]):
        metrics.observe("metrics", record)
    expected = sum(1 for d in run["knowledge_decisions"] if d.reasons == ["knowledge.small_talk"])
    assert value("coachflow_knowledge_decisions_total", outcome="not_needed",
                 reason="knowledge.small_talk") - shed_before == expected
    assert value("coachflow_records_total", kind="knowledge", outcome="published") - cards_before == len(
        run["knowledge"]
    )
    retrieved = sum(1 for d in run["knowledge_decisions"] if d.outcome in ("shown", "suppressed"))
    assert value("coachflow_knowledge_retrieval_seconds_count") - retrievals_before == retrieved


def test_the_docs_configuration_table_is_current():
    from coachflow.knowledge_config import reference_table
    from tests.helpers import ROOT

    doc = (ROOT / "docs" / "knowledge.md").read_text()
    start = doc.index("<!-- knowledge-config:start -->\n") + len("<!-- knowledge-config:start -->\n")
    assert doc[start:doc.index("<!-- knowledge-config:end -->")] == reference_table(), (
        "docs/knowledge.md's configuration table is stale: .venv/bin/python scripts/update_knowledge_docs.py")
