"""Inferred acceptance on STAR replays equals the model's top-1 accuracy, computed independently.

Two computations over the same 150 dev dialogues:

- the eval path (``coach eval``: ``models.evaluate.evaluate_dialogues``) ranks
  every labelled prediction point and scores its top-1 against the wizard's
  next action;
- the stream replays the dialogues (``coach replay``) through the whole job
  with the evaluation policy (``policies/evaluation.yaml``: nothing blocked)
  and ``COACH_SUGGEST_UNTEMPLATED`` (a top-1 without a template is still shown,
  as ``[action]``), and the acceptance step judges each suggestion from the
  agent's next action label: the rate is accepted / judged over the
  ``Acceptance(mode="inferred", basis="action")`` records.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from coachflow import replay
from coachflow.config import DEFAULT_MODEL, Settings
from models import star
from models.evaluate import evaluate_dialogues
from models.registry import load_scorer
from schemas import Acceptance
from tests.helpers import ROOT, STAR_DIALOGUES, run_job

DIALOGUES = 150


@pytest.fixture(scope="module")
def figures(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("acceptance_eval")
    items = replay.records(STAR_DIALOGUES, split="dev", limit=DIALOGUES, concurrency=8,
                           start=datetime(2026, 2, 1, 8, 0, tzinfo=UTC))
    replay.to_file(items, tmp / "replay.jsonl")
    settings = Settings(
        input=tmp / "replay.jsonl", output_dir=tmp / "out", context_wait_ms=0, print_suggestions=False,
        policy=ROOT / "policies" / "evaluation.yaml", suggest_untemplated=True,
        quality_monitor=False, lineage="none",
    )
    run_job(settings)
    lines = (tmp / "out" / "acceptance.jsonl").read_text().splitlines()
    judged = [
        a for a in map(Acceptance.model_validate_json, lines) if a.mode == "inferred" and a.basis == "action"
    ]
    evaluated = evaluate_dialogues(
        load_scorer(DEFAULT_MODEL), star.select(STAR_DIALOGUES, split="dev", limit=DIALOGUES)
    )
    return {"judged": judged, "eval": evaluated}


def test_inferred_acceptance_equals_top1_accuracy(figures) -> None:
    judged, evaluated = figures["judged"], figures["eval"]
    rate = sum(a.accepted for a in judged) / len(judged)
    print(f"inferred acceptance {rate:.4f} over {len(judged)} suggestions; "
          f"top-1 accuracy {evaluated['accuracy']:.4f} over {evaluated['n']} points")
    assert evaluated["n"] > 1000
    # The same prediction points, within a handful (wizard replies typed with a label count in
    # the stream, not in the eval's labels).
    assert abs(len(judged) - evaluated["n"]) <= 0.01 * evaluated["n"]
    assert abs(rate - evaluated["accuracy"]) <= 0.01
