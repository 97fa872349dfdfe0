"""bench/step_profile.py counts each sampled stack for the step it runs in."""

from __future__ import annotations

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location("step_profile", ROOT / "bench" / "step_profile.py")
assert _spec is not None and _spec.loader is not None
step_profile = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(step_profile)

RUN = "_run_module_as_main (<frozen runpy>:198);<module> (run.py:355)"
SHIM = "_StatefulLogic.on_batch (operators/__init__.py:1036)"
BOUND = "Bounded.on_item (operators/boundary.py:185)"


def _stack(*frames: str) -> list[str]:
    return [*RUN.split(";"), *frames]


def test_a_sample_belongs_to_the_innermost_step_and_contracts_to_their_caller():
    guard = "Guard.decide (operators/guardrails.py:280)"
    trusted = "Contract.trusted (schemas/_base.py:38)"
    assert step_profile.step_of(_stack(SHIM, BOUND, guard, trusted)) == "guardrails"
    assert step_profile.step_of(_stack(SHIM, BOUND, "clone (operators/boundary.py:160)")) == \
        "error boundaries (state copies)"
    parse = "parse_record (operators/parse.py:211)"
    assert step_profile.step_of(_stack(parse, "Redactor.redact (operators/pii.py:452)")) == "masking"
    assert step_profile.step_of(_stack(parse, trusted)) == "parse and contracts"
    assert step_profile.step_of(_stack(trusted)) == "parse and contracts"
    assert step_profile.step_of(_stack(SHIM)) == "Bytewax runtime and operator shims"
    build = "_locate_dataflow (run.py:42)"
    assert step_profile.step_of([*RUN.split(";"), build, guard]) == "start-up"


def test_the_summary_leaves_start_up_out_of_the_shares(tmp_path):
    raw = tmp_path / "raw.txt"
    raw.write_text(
        ";".join(_stack(SHIM, BOUND, "Guard.decide (operators/guardrails.py:280)")) + " 3\n"
        + ";".join(_stack("OnnxScorer.score (models/scorer.py:400)")) + " 1\n"
        + ";".join([*RUN.split(";"), "_locate_dataflow (run.py:42)"]) + " 6\n"
    )
    summary = step_profile.summarise(raw)
    assert summary["samples"] == 10 and summary["start_up_samples"] == 6
    assert summary["steps"] == {"guardrails": {"samples": 3, "share": 0.75},
                                "scoring (ONNX)": {"samples": 1, "share": 0.25}}
