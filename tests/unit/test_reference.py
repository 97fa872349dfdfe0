"""The benchmark's reference loop does the job's work: same decisions, dead letters, suggestions."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from coachflow.config import Settings
from coachflow.reference import Pipeline
from operators.envelope import Origin, RawRecord
from operators.publish import serialize
from tests.helpers import ROOT

SAMPLE = ROOT / "data" / "sample" / "conversations.jsonl"


def test_the_reference_loop_decides_as_the_job_does(tmp_path):
    env = {**os.environ, "COACH_OUTPUT_DIR": str(tmp_path), "COACH_PRINT_SUGGESTIONS": "false",
           "COACH_LINEAGE": "none", "COACH_QUALITY_MONITOR": "false"}
    env.pop("COACH_BROKERS", None)
    done = subprocess.run([sys.executable, "-m", "bytewax.run", "flows.coaching:flow"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    job = {kind: [json.loads(line) for line in (tmp_path / f"{kind}.jsonl").read_text().splitlines()]
           for kind in ("decisions", "suggestions", "dlq", "acceptance")}

    lines = SAMPLE.read_bytes().splitlines()
    batch = [RawRecord(value=line, key=None, origin=Origin(file=str(SAMPLE), line=number), stream="any",
                       size=len(line) + 1)
             for number, line in enumerate(lines, 1) if line.strip()]
    pipeline = Pipeline(Settings(input=SAMPLE, lineage="none"))
    out = [serialize(record) for record in [*pipeline.process(batch[:150]), *pipeline.process(batch[150:]),
                                            *pipeline.finish()]]
    ref: dict[str, list[dict]] = {"decisions": [], "suggestions": [], "dlq": [], "acceptance": []}
    for kind, _key, value in out:
        if kind in ref:
            ref[kind].append(json.loads(value))

    assert len(ref["decisions"]) == len(job["decisions"]) > 300
    assert len(ref["dlq"]) == len(job["dlq"]) > 0
    by_id = {d["decision_id"]: d for d in job["decisions"]}
    for decision in ref["decisions"]:
        twin = by_id[decision["decision_id"]]
        for field in (
            "outcome",
            "reasons",
            "context_status",
            "context_version",
            "candidates",
            "suggestion",
            "rules",
        ):
            assert decision[field] == twin[field], (field, decision["decision_id"])
    assert {s["suggestion_id"] for s in ref["suggestions"]} == {
        s["suggestion_id"] for s in job["suggestions"]
    }
    assert sorted(d["reason"] for d in ref["dlq"]) == sorted(d["reason"] for d in job["dlq"])
    judged = {(a["suggestion_id"], a["mode"], a["outcome"]) for a in job["acceptance"]}
    assert len(judged) == len(job["acceptance"]) > 10
    assert {(a["suggestion_id"], a["mode"], a["outcome"]) for a in ref["acceptance"]} == judged
