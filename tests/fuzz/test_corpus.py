"""Every corpus case, replayed on every run: what the fuzzers found, kept as regression cases.

A case is a JSON file under ``tests/fuzz/corpus/`` (``budget.write_found``
writes them in a campaign; ``corpus/README.md`` says how to add one): its
``target`` names the check it goes through (``parse``, ``flow``, ``policy``),
the other fields that check's input (bytes in base64) and ``found`` what
went wrong before the fix.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.fuzz import budget
from tests.fuzz.harness import check_run
from tests.fuzz.test_parse import check as check_parse
from tests.fuzz.test_policy import check_policy

CASES = sorted(p for p in budget.CORPUS.rglob("*.json") if ".hypothesis" not in p.parts)


def test_the_corpus_holds_a_case_of_each_target() -> None:
    targets = {json.loads(p.read_text())["target"] for p in CASES}
    assert targets >= {"parse", "flow", "policy"}, targets


@pytest.mark.parametrize("path", CASES, ids=[p.stem for p in CASES])
def test_corpus_case(path: Path, embedded_job) -> None:
    case = json.loads(path.read_text())
    target = case["target"]
    if target == "parse":
        check_parse(case["stream"], budget.unb64(case["value"]), budget.unb64(case["key"]),
                    case["check_keys"], case.get("key_by", "conversation"))
    elif target == "policy":
        check_policy(budget.unb64(case["value"]))
    elif target == "flow":
        lines = [budget.unb64(line) or b"" for line in case["lines"]]
        policy = None
        if case.get("policy") is not None:
            policy = embedded_job.workdir / f"{path.stem}.yaml"
            policy.write_text(case["policy"])
        problems = check_run(lines, embedded_job.run(lines, policy=policy))
        assert not problems, problems
    else:
        raise AssertionError(f"{path}: unknown target {target!r}")
