"""OpenLineage from an embedded run: events, facets, provenance, failure modes."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from coachflow.explain import explain
from lineage.validate import SpecValidator
from tests.helpers import ROOT

SPEC = SpecValidator()


def run_job(tmp_path: Path, **env: str) -> subprocess.CompletedProcess:
    environment = {
        **os.environ,
        "COACH_OUTPUT_DIR": str(tmp_path / "out"),
        "COACH_PRINT_SUGGESTIONS": "false",
        **env,
    }
    environment.pop("COACH_BROKERS", None)
    return subprocess.run([sys.executable, "-m", "bytewax.run", "flows.coaching:flow"], cwd=ROOT,
                          env=environment, capture_output=True, text=True, timeout=300, check=False)


def lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


@pytest.fixture(scope="module")
def embedded(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("lineage")
    done = run_job(tmp)
    assert done.returncode == 0, done.stderr[-3000:]
    out = tmp / "out"
    return {"events": lines(out / "lineage.jsonl"), "decisions": lines(out / "decisions.jsonl"),
            "suggestions": lines(out / "suggestions.jsonl"), "out": out, "stderr": done.stderr}


def test_an_embedded_run_writes_a_start_and_a_complete_that_follow_the_spec(embedded):
    events = embedded["events"]
    assert [e["eventType"] for e in events] == ["START", "COMPLETE"]
    assert len({e["run"]["runId"] for e in events}) == 1
    for e in events:
        assert SPEC.problems(e) == [], SPEC.problems(e)


def test_the_events_carry_the_facets(embedded):
    start, complete = embedded["events"]
    job = complete["job"]
    assert (job["namespace"], job["name"]) == ("coachflow", "coaching")
    assert job["facets"]["jobType"]["processingType"] == "STREAMING"
    assert job["facets"]["jobType"]["integration"] == "BYTEWAX"
    run = complete["run"]["facets"]
    assert run["processing_engine"]["name"] == "bytewax" and run["processing_engine"]["version"] == "0.21.1"
    assert run["coachflow"]["model"]["version"] == "coach-1.0.0"
    assert run["coachflow"]["policy"]["name"] == "coaching-guardrails"
    assert run["coachflow"]["qualitySuites"] == ["conversation_events@1.0.0", "customer_context@1.0.0"]

    (source,) = complete["inputs"]
    assert source["namespace"] == "file" and source["name"].endswith("data/sample/conversations.jsonl")
    fields = {f["name"] for f in source["facets"]["schema"]["fields"]}
    assert {"event_id", "conversation_id", "speaker", "text", "event_time"} <= fields
    assertions = source["inputFacets"]["dataQualityAssertions"]["assertions"]
    assert {a["assertion"] for a in assertions} >= {"events.event_id.not_null", "events.channel.in_set"}
    assert start["inputs"][0]["inputFacets"] == {}  # no results yet at the start
    assert source["inputFacets"]["dataQualityMetrics"]["rowCount"] > 100

    outputs = {Path(o["name"]).name: o for o in complete["outputs"]}
    assert set(outputs) == {
        "suggestions.jsonl",
        "alerts.jsonl",
        "decisions.jsonl",
        "dlq.jsonl",
        "summaries.jsonl",
        "acceptance.jsonl",
    }
    lineage = outputs["suggestions.jsonl"]["facets"]["columnLineage"]["fields"]
    assert {f["field"] for f in lineage["action"]["inputFields"]} >= {"text", "marketing_opt_out"}
    assert lineage["conversation_id"]["inputFields"][0]["transformations"][0]["subtype"] == "IDENTITY"
    assert "columnLineage" in outputs["decisions.jsonl"]["facets"]


def test_the_gx_lines_of_the_sample_name_what_failed_and_what_it_means(embedded):
    said = [line.split("coachflow.quality: ", 1)[1] for line in embedded["stderr"].splitlines()
            if "coachflow.quality: GX " in line]
    assert len(said) == 2, embedded["stderr"][-3000:]
    outcome = re.compile(
        r"GX (conversation_events|customer_context)@1\.0\.0: \d+ of \d+ rows in \d+ ms"
        r"(: every expectation passed|; warning expectations failed \(measured only, no record held"
        r" back\): ((events|context)\.[\w.]+ \(.+\) on \d+ of \d+ rows(, )?)+)$"
    )
    for line in said:
        assert outcome.match(line), line


def test_every_suggestion_and_decision_names_the_run(embedded):
    run_id = embedded["events"][0]["run"]["runId"]
    assert {d["run_id"] for d in embedded["decisions"]} == {run_id}
    assert {s["run_id"] for s in embedded["suggestions"]} == {run_id}


def test_explain_reconstructs_a_suggestions_chain(embedded):
    suggestion = embedded["suggestions"][3]
    chain = explain(suggestion["suggestion_id"], embedded["decisions"], embedded["events"])
    assert chain["suggestion"]["text"] == suggestion["text"]
    assert chain["input"]["event_id"] == suggestion["event_id"]
    assert chain["input"]["source"]["file"] == "conversations.jsonl" and chain["input"]["source"]["line"] > 0
    assert chain["policy"]["version"] == "1.0.0" and chain["model"]["version"] == "coach-1.0.0"
    assert chain["quality"]["suite"] == "conversation_events@1.0.0"
    assert {r["rule_id"] for r in chain["rules"]} >= {"injection.templates_only", "quality.confidence_floor"}
    assert chain["run"]["job"] == "coachflow/coaching" and chain["run"]["facets"]["model"]["name"] == "coach"
    assert explain("no-such-suggestion", embedded["decisions"]) is None

    from coachflow.cli import main

    assert main(["lineage", "explain", suggestion["suggestion_id"],
                 "--decisions", str(embedded["out"] / "decisions.jsonl"),
                 "--lineage", str(embedded["out"] / "lineage.jsonl")]) == 0


def test_a_crash_is_reported_as_fail(tmp_path):
    broken = tmp_path / "not-a-file"
    broken.mkdir()
    done = run_job(tmp_path, COACH_INPUT=str(broken), COACH_QUALITY_MONITOR="false")
    assert done.returncode != 0
    events = lines(tmp_path / "out" / "lineage.jsonl")
    assert [e["eventType"] for e in events] == ["START", "FAIL"]
    error = events[1]["run"]["facets"]["errorMessage"]
    assert "BytewaxRuntimeError" in error["message"] and "IsADirectoryError" in error["stackTrace"]
    assert SPEC.problems(events[1]) == []


def test_a_catalog_that_is_down_costs_lineage_not_turns(tmp_path):
    done = run_job(
        tmp_path, COACH_LINEAGE="http", COACH_LINEAGE_URL="http://127.0.0.1:9", COACH_QUALITY_MONITOR="false"
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "lineage START event not delivered" in done.stderr
    decisions = lines(tmp_path / "out" / "decisions.jsonl")
    dead = lines(tmp_path / "out" / "dlq.jsonl")
    sample = (ROOT / "data" / "sample" / "conversations.jsonl").read_text().splitlines()
    assert len(decisions) + len(dead) == len(sample)
