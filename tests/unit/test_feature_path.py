"""One feature path: the running dataflow feeds the model exactly what training saw."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from coachflow import replay, runtime
from coachflow.config import Settings
from models import star
from models.dataset import examples
from models.registry import load_scorer
from models.scorer import indices_of
from models.train import ARTIFACT
from tests.helpers import STAR_DIALOGUES, run_job


class RecordingScorer:
    """The real scorer, noting the model inputs of every point it scores."""

    def __init__(self, scorer) -> None:
        self.scorer = scorer
        self.version = scorer.version
        self.registry_entry = scorer.registry_entry
        self.risk_threshold = scorer.risk_threshold
        self.templates = scorer.templates
        self.rows: dict[str, tuple] = {}

    def score_batch(self, batch):
        vec = self.scorer.vectorizer
        for f in batch:
            self.rows[f.event_id] = (vec.action_row(f), vec.risk_row(f), f)
        return self.scorer.score_batch(batch)

    def render(self, action, features):
        return self.scorer.render(action, features)


def test_training_and_serving_compute_identical_inputs(tmp_path, monkeypatch):
    limit = 25
    items = replay.records(STAR_DIALOGUES, split="dev", limit=limit, concurrency=5,
                           start=datetime(2026, 5, 1, 10, 0, tzinfo=UTC))
    source = tmp_path / "in.jsonl"
    source.write_text("".join(json.dumps(r) + "\n" for _, r in items))

    recorder = RecordingScorer(load_scorer(ARTIFACT))
    monkeypatch.setattr(runtime, "load_scorer", lambda path, **kw: recorder)
    run_job(Settings(input=source, output_dir=tmp_path / "out", print_suggestions=False))

    training = list(examples(star.select(STAR_DIALOGUES, split="dev", limit=limit)))
    assert len(training) > 150
    vec = recorder.scorer.vectorizer
    for point in training:
        served = recorder.rows.get(point.event_id)
        assert served is not None, f"the stream made no prediction at {point.event_id}"
        action, risk, features = served
        assert features == point.features
        # the same inputs (a row's order carries no meaning: see Vectorizer.action_row)
        assert sorted(indices_of(action)) == sorted(indices_of(vec.action_row(point.features)))
        indices, values = vec.risk_row(point.features)
        assert dict(zip(indices_of(risk[0]), risk[1], strict=True)) == dict(
            zip(indices_of(indices), values, strict=True)
        )
