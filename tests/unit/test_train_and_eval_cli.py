"""`coach train` and `coach eval` from the command line (small, fast settings)."""

from __future__ import annotations

import json

from coachflow.cli import main as coach
from models.scorer import OnnxScorer
from tests.helpers import STAR_DIALOGUES, STAR_DIR


def test_coach_train_builds_a_loadable_model_with_its_entry(tmp_path, capsys):
    out = tmp_path / "model"
    code = coach(["train", "--star", str(STAR_DIR), "--out", str(out), "--limit", "120",
                  "--members", "2", "--hidden", "16", "--epochs", "2", "--version", "coach-test"])
    assert code == 0
    log = capsys.readouterr().err
    assert "member 2/2 epoch 2/2" in log and "evaluating through the serving code" in log
    entry = json.loads((out / "entry.json").read_text())
    assert entry["version"] == "coach-test" and entry["kind"] == "onnx-mlp-ensemble"
    assert entry["training_data"]["prediction_points"] > 500
    assert {"weighted_f1", "top3_accuracy", "escalation_auc", "score_us_mean"} <= set(entry["metrics"]["dev"])
    scorer = OnnxScorer(out / "coach.onnx")
    assert scorer.version == "coach-test" and len(scorer.labels) == entry["label_set_size"]


def test_coach_eval_prints_one_json_object_with_the_figures(capsys):
    code = coach(["eval", "--dialogues", str(STAR_DIALOGUES), "--split", "dev", "--limit", "40", "--compact"])
    assert code == 0
    lines = [line for line in capsys.readouterr().out.splitlines() if line.strip()]
    assert len(lines) == 1
    result = json.loads(lines[0])
    for key in ("n", "weighted_f1", "accuracy", "top3_accuracy", "escalation_auc", "per_domain",
                "score_us_mean", "score_us_p99_batch_of_one"):
        assert key in result, key
    assert result["n"] > 200 and 0.5 < result["accuracy"] <= 1.0
    assert result["top3_accuracy"] >= result["accuracy"]
    assert set(result["per_domain"]) <= {
        "apartment", "bank", "doctor", "hotel", "meeting", "party", "plane", "restaurant", "ride",
        "spaceship", "trip", "trivia", "weather",
    }


def test_coach_eval_record_stores_the_dev_figures_and_refuses_partial_runs(tmp_path, monkeypatch, capsys):
    import pytest

    from models import registry
    from models.train import ARTIFACT
    from tests.helpers import registered_copy

    with pytest.raises(SystemExit, match="--split dev and no --limit"):
        coach(["eval", "--dialogues", str(STAR_DIALOGUES), "--split", "dev", "--limit", "40", "--record"])
    copy, reg = registered_copy(tmp_path, monkeypatch, ARTIFACT)
    monkeypatch.setattr(registry, "REGISTRY", reg)
    before = next(e for e in registry.entries(reg) if e["name"] == "coach")
    assert coach(["eval", "--dialogues", str(STAR_DIALOGUES), "--split", "dev", "--model", str(copy),
                  "--record", "--compact"]) == 0
    printed = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    entry = next(e for e in registry.entries(reg) if e["name"] == "coach")
    assert entry["metrics_measured"]["by"] == "coach eval --record"
    assert entry["metrics"]["dev"]["score_us_mean"] == printed["score_us_mean"]
    assert entry["metrics"]["dev"]["accuracy"] == before["metrics"]["dev"]["accuracy"]  # the same model
    assert entry["sha256"] == before["sha256"]
    assert "`coach eval --record`" in (copy.parent / "MODEL_CARD.md").read_text()
