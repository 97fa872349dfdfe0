"""`coach train`: the next-action and escalation model, from STAR to one ONNX file.

1. Prediction points from the STAR training split, through the serving
   feature path (``models.dataset`` -> ``ConversationTracker`` -> ``Features``
   -> ``Vectorizer``).
2. An ensemble of sparse-input MLPs for the agent's next action (every wizard
   ``pick_suggestion`` and ``query``), trained with dropout and label smoothing.
3. A logistic-regression escalation head over sentiment (VADER's lexicon),
   complaint and repetition inputs, labelled by the wizard's "the user became
   aggressive or annoyed" answer.
4. A softmax temperature fitted on the dev split, so confidences are calibrated.
5. Export to ONNX (``models.onnx_graph``), evaluation through ``OnnxScorer``
   (the serving code), a registry entry and a model card.
"""

from __future__ import annotations

import json
import os
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from models import star
from models.dataset import Example, examples, file_sha256
from models.mlp import MLPParams, softmax, train_mlp
from models.scorer import FEATURE_SPEC, KIND, OnnxScorer, Vectorizer
from models.templates import TemplateBook
from operators.features import Lexicon, risk_inputs

MODEL_DIR = Path(__file__).parent / "coach"
ARTIFACT = MODEL_DIR / "coach.onnx"


@dataclass(frozen=True)
class TrainConfig:
    version: str = "coach-1.0.0"
    members: int = 4
    hidden: int = 128
    epochs: int = 6
    batch_size: int = 128
    lr: float = 2e-3
    dropout: float = 0.3
    input_dropout: float = 0.1
    label_smoothing: float = 0.15
    min_count: int = 10
    """Inputs seen fewer times in training are dropped from the vocabulary."""
    risk_min_count: int = 5
    risk_c: float = 0.1
    seed: int = 0
    limit: int | None = None
    """Read at most this many dialogues (smoke tests)."""


def vader_lexicon() -> dict[str, float]:
    """VADER's word valences (MIT); the model file carries its own copy."""
    from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

    return {word: round(float(v), 3) for word, v in SentimentIntensityAnalyzer().lexicon.items()}


def _vocabulary(rows: list[dict[str, float]], min_count: int) -> list[str]:
    counts = Counter(name for row in rows for name in row)
    return sorted(name for name, n in counts.items() if n >= min_count)


def _ensemble_probs(logits: list[np.ndarray], temperature: float) -> np.ndarray:
    """The members' average, calibrated as the graph does: softmax(log(mean) / T)."""
    return softmax(np.log(np.mean([softmax(z) for z in logits], axis=0) + 1e-12), temperature)


def _fit_temperature(logits: list[np.ndarray], y: np.ndarray) -> float:
    def nll(t: float) -> float:
        p = _ensemble_probs(logits, t)
        return float(-np.log(p[np.arange(len(y)), y] + 1e-12).mean())

    logits = [z.astype(np.float64) for z in logits]
    grid = np.exp(np.linspace(np.log(0.4), np.log(4.0), 30))
    best = min(grid, key=nll)
    return float(min(np.linspace(best * 0.9, best * 1.1, 21), key=nll))


def _points(path: Path, split: str, limit: int | None, log) -> list[Example]:
    started = time.monotonic()
    out = list(examples(star.select(path, split=split, limit=limit)))
    log(f"  {split}: {len(out)} prediction points ({time.monotonic() - started:.1f}s)")
    return out


def train(
    star_dir: Path | str,
    config: TrainConfig = TrainConfig(),
    out_dir: Path | str = MODEL_DIR,
    log: Callable[[str], None] = print,
) -> dict:
    """Train, export, evaluate; return the registry entry (the caller registers it)."""
    import onnx
    from sklearn.linear_model import LogisticRegression

    from models import onnx_graph
    from models.evaluate import evaluate

    star_dir = Path(star_dir)
    dialogues = star_dir / "dialogues.jsonl.gz"
    started = time.monotonic()
    log(f"reading {dialogues}")
    train_points = _points(dialogues, "train", config.limit, log)
    dev_points = _points(dialogues, "dev", config.limit and max(20, config.limit // 5), log)

    templates = TemplateBook.from_star(star_dir / "tasks")
    lexicon = vader_lexicon()
    from operators.features import FlowGraphs, action_inputs

    flows = FlowGraphs(templates.graph)
    action_rows = [action_inputs(p.features, flows) for p in train_points]
    risk_points = [p for p in train_points if p.features.trigger == "customer_turn"]
    risk_rows = [risk_inputs(p.features, Lexicon(lexicon)) for p in risk_points]
    vectorizer = Vectorizer(
        _vocabulary(action_rows, config.min_count),
        _vocabulary(risk_rows, config.risk_min_count),
        templates.graph,
        lexicon,
    )
    labels = sorted({p.label for p in train_points})
    index = {label: i for i, label in enumerate(labels)}
    X = vectorizer.csr([p.features for p in train_points], "action")
    y = np.array([index[p.label] for p in train_points])
    X_dev = vectorizer.csr([p.features for p in dev_points], "action")
    y_dev = np.array([index.get(p.label, -1) for p in dev_points])
    log(f"inputs: {len(vectorizer.action_vocab)} action, {len(vectorizer.risk_vocab)} risk; "
        f"{len(labels)} actions; {X.nnz / max(1, X.shape[0]):.0f} active inputs per point")

    members: list[MLPParams] = []
    for m in range(config.members):
        def progress(epoch: int, loss: float, params: MLPParams, m: int = m) -> None:
            top1 = params.logits(X_dev).argmax(axis=1)
            log(f"  member {m + 1}/{config.members} epoch {epoch + 1}/{config.epochs}: "
                f"loss {loss:.3f}, dev accuracy {(top1 == y_dev).mean():.3f} "
                f"({time.monotonic() - started:.0f}s)")

        members.append(train_mlp(
            X, y, len(labels), hidden=config.hidden, epochs=config.epochs,
            batch_size=config.batch_size, lr=config.lr, dropout=config.dropout,
            input_dropout=config.input_dropout, label_smoothing=config.label_smoothing,
            seed=config.seed + m, on_epoch=progress,
        ))

    known = y_dev >= 0
    dev_logits = [m.logits(X_dev)[known] for m in members]
    temperature = _fit_temperature(dev_logits, y_dev[known])
    log(f"temperature {temperature:.3f} (fitted on dev)")

    R = vectorizer.csr([p.features for p in risk_points], "risk")
    risk_y = np.array([p.aggressive for p in risk_points])
    risk_model = LogisticRegression(C=config.risk_c, class_weight="balanced", max_iter=2000)
    risk_model.fit(R, risk_y)
    dev_turns = [p for p in dev_points if p.features.trigger == "customer_turn"]
    dev_risk = risk_model.predict_proba(vectorizer.csr([p.features for p in dev_turns], "risk"))[:, 1]
    # Recommended alert threshold: the top 5% of customer turns on dev.
    risk_threshold = float(np.quantile(dev_risk, 0.95)) if len(dev_risk) else 0.5
    log(f"escalation head: {int(risk_y.sum())} of {len(risk_y)} customer turns in aggressive dialogues; "
        f"alert threshold {risk_threshold:.3f}")

    metadata = {
        "coachflow.version": config.version,
        "coachflow.feature_spec": FEATURE_SPEC,
        "coachflow.labels": labels,
        "coachflow.action_vocab": vectorizer.action_vocab,
        "coachflow.risk_vocab": vectorizer.risk_vocab,
        "coachflow.lexicon": lexicon,
        "coachflow.templates": templates.to_json(),
        "coachflow.temperature": str(temperature),
        "coachflow.risk_threshold": str(round(risk_threshold, 4)),
        "coachflow.train_config": asdict(config),
        "coachflow.license": (
            "Trained on STAR (MIT, Rasa Technologies GmbH); VADER lexicon (MIT, C.J. Hutto)."
        ),
    }
    model = onnx_graph.build(
        members=members, temperature=temperature,
        risk_w=risk_model.coef_[0], risk_b=float(risk_model.intercept_[0]), metadata=metadata,
    )
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    artifact = out_dir / "coach.onnx"
    onnx.save(model, artifact)
    size_mb = artifact.stat().st_size / 1e6
    log(f"wrote {artifact} ({size_mb:.1f} MB)")

    log("evaluating through the serving code (OnnxScorer) on dev ...")
    scorer = OnnxScorer(artifact)
    metrics = evaluate(scorer, dev_points)
    log(json.dumps({k: v for k, v in metrics.items() if not k.startswith("per_")}))
    entry = {
        "name": "coach",
        "version": config.version,
        "kind": KIND,
        "path": os.path.relpath(artifact.resolve(), Path(__file__).parent.resolve()),
        "sha256": file_sha256(artifact),
        "size_mb": round(size_mb, 2),
        "feature_spec": FEATURE_SPEC,
        "training_data": {
            "path": "shared/data/star/dialogues.jsonl.gz",
            "sha256": file_sha256(dialogues),
            "split": "train (dialogues whose id hashes outside the 15% dev split)",
            "prediction_points": len(train_points),
        },
        "label_set": labels,
        "label_set_size": len(labels),
        "config": asdict(config),
        "temperature": round(temperature, 4),
        "risk_threshold": round(risk_threshold, 4),
        "metrics": {"dev": metrics},
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "train_seconds": round(time.monotonic() - started, 1),
    }
    return entry
