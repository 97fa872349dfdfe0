"""Train the knowledge re-ranker on doc2dial, export it to ONNX, evaluate and register it.

``train`` builds the passage index of doc2dial's documents, computes the
candidates and features of every grounded turn of the train split
(``models.knowledge.features``, the serving path), labels each candidate
(in the gold document and holding the answer's offset), and fits an
ensemble of small MLPs (scikit-learn, binary cross-entropy, early stopping)
on standardised features. The ensemble becomes one ONNX graph
(``ranker.build_graph``), which is then evaluated on the dev split through
the serving path and registered with its figures and a model card.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from models.dataset import file_sha256
from models.knowledge import articles as kb
from models.knowledge import doc2dial
from models.knowledge.evaluate import evaluate
from models.knowledge.features import FEATURE_SPEC, FEATURES, candidates
from models.knowledge.index import KnowledgeIndex
from models.knowledge.passages import DEFAULT_MAX_WORDS
from models.knowledge.ranker import KIND, Reranker, Retriever, build_graph
from models.registry import MODELS_DIR

OUT_DIR = MODELS_DIR / "knowledge"
DEFAULT_DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "doc2dial"


@dataclass(frozen=True)
class RankerConfig:
    version: str = "knowledge-ranker-1.0.0"
    hidden: tuple[int, ...] = (32,)
    members: int = 3
    alpha: float = 0.01
    max_iter: int = 200
    max_words: int = DEFAULT_MAX_WORDS
    seed: int = 0
    limit: int | None = None
    """Train on at most this many turns (smoke tests)."""


def labelled(index: KnowledgeIndex, turns: list[doc2dial.GroundedTurn]) -> tuple[np.ndarray, np.ndarray]:
    """Features and labels of every candidate of every turn."""
    position = {article.article_id: i for i, article in enumerate(index.articles)}
    rows, labels = [], []
    for turn in turns:
        ids, X = candidates(index, turn.turns)
        gold = position.get(turn.doc_id, -1)
        starts = np.array([index.passages[i].start for i in ids.tolist()], dtype=np.int64)
        ends = np.array([index.passages[i].end for i in ids.tolist()], dtype=np.int64)
        labels.append(
            (index.passage_article[ids] == gold) & (starts <= turn.answer_start) & (turn.answer_start < ends)
        )
        rows.append(X)
    if not rows:
        return np.zeros((0, len(FEATURES)), dtype=np.float32), np.zeros(0, dtype=bool)
    return np.concatenate(rows), np.concatenate(labels)


def fit(X: np.ndarray, y: np.ndarray, config: RankerConfig):
    """(mean, scale, members): each member a list of (weights, bias) layers."""
    from sklearn.neural_network import MLPClassifier

    mean = X.mean(axis=0)
    scale = X.std(axis=0)
    scale[scale == 0] = 1.0
    Xs = (X - mean) / scale
    members = []
    for m in range(config.members):
        model = MLPClassifier(
            hidden_layer_sizes=config.hidden, alpha=config.alpha, max_iter=config.max_iter,
            early_stopping=True, random_state=config.seed + m,
        ).fit(Xs, y)
        members.append([(w.astype(np.float32), b.astype(np.float32).reshape(1, -1))
                        for w, b in zip(model.coefs_, model.intercepts_, strict=True)])
    return mean.astype(np.float32), scale.astype(np.float32), members


def train(documents: Path, turns_path: Path, config: RankerConfig, out: Path = OUT_DIR,
          log: Callable[[str], None] = print) -> dict:
    """Train, export ``out/ranker.onnx``, evaluate on dev; return its registry entry (not registered)."""
    started = time.monotonic()
    index = KnowledgeIndex.build(kb.import_doc2dial(documents), config.max_words)
    log(f"index: {len(index.articles)} articles, {len(index)} passages ({index.kb_version})")
    train_turns = list(doc2dial.read_turns(turns_path, split="train", limit=config.limit))
    X, y = labelled(index, train_turns)
    log(f"train: {len(train_turns)} turns, {len(y)} candidates, {int(y.sum())} hits")
    mean, scale, members = fit(X, y, config)
    out.mkdir(parents=True, exist_ok=True)
    path = out / "ranker.onnx"
    model = build_graph(mean, scale, members, {
        "coachflow.version": config.version, "coachflow.feature_spec": FEATURE_SPEC,
        "coachflow.features": list(FEATURES), "coachflow.max_words": config.max_words,
    })
    path.write_bytes(model.SerializeToString())
    seconds = round(time.monotonic() - started, 1)
    entry = {
        "name": "knowledge-ranker", "version": config.version, "kind": KIND,
        "path": path.resolve().relative_to(MODELS_DIR.resolve()).as_posix() if path.resolve().is_relative_to(
            MODELS_DIR.resolve()) else str(path.resolve()),
        "sha256": file_sha256(path), "size_kb": round(path.stat().st_size / 1024, 1),
        "feature_spec": FEATURE_SPEC, "features": list(FEATURES),
        "config": {**asdict(config), "hidden": list(config.hidden)},
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"), "train_seconds": seconds,
        "passage_unit": f"runs of sections within a heading, at most {config.max_words} words",
        "training_data": {
            "documents": {"path": "shared/data/doc2dial/" + documents.name, "sha256": file_sha256(documents)},
            "turns": {"path": "shared/data/doc2dial/" + turns_path.name, "sha256": file_sha256(turns_path)},
            "split": f"train: dialogues whose blake2b('knowledge-split|id') falls outside the lowest "
                     f"{doc2dial.DEV_SHARE:.0%}",
            "turns_used": len(train_turns), "candidates": int(len(y)),
        },
    }
    # The exported file, through the serving path.
    dev, cpu = evaluate(Retriever(index, Reranker(path)), doc2dial.read_turns(turns_path, split="dev"))
    dev = {**dev, **cpu}
    log(f"dev: {json.dumps(dev)}")
    entry["metrics"] = {"dev": dev}
    entry["metrics_measured"] = {"by": "coach knowledge train", "at": entry["created_at"]}
    return entry
