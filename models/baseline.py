"""The baseline scorer: next agent action by counting, with back-off.

An honest, transparent baseline learned from STAR's training split: for each
context key (task, the agent's previous two actions, what triggered the
prediction, the knowledge-base state) it counts the agent's actual next
actions. A prediction uses the most specific key seen at least ``min_count``
times and backs off to coarser keys for the remaining candidates. Confidence
is the relative frequency at the key used. Only actions with an approved
template can be suggested.

Train:  ``coach baseline train`` (writes models/baseline/ and the registry entry)
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import polars as pl

from models.dataset import Example, examples, file_sha256
from models.templates import TemplateBook
from operators.features import Features

MODEL_DIR = Path(__file__).parent / "baseline"
ARTIFACT = MODEL_DIR / "baseline.json"
KIND = "backoff-frequency"

#: Context keys from most to least specific.
LEVELS: tuple[tuple[str, ...], ...] = (
    ("task", "prev", "prev2", "trigger", "kb_state"),
    ("task", "prev", "trigger", "kb_state"),
    ("task", "prev", "trigger"),
    ("task", "prev"),
    ("task", "trigger"),
    ("prev", "trigger"),
    ("trigger",),
)
FIELDS = ("task", "prev", "prev2", "trigger", "kb_state")


def key_fields(features: Features) -> dict[str, str]:
    prev = features.prev_actions
    return {
        "task": features.task or "-",
        "prev": prev[-1] if prev else "-",
        "prev2": prev[-2] if len(prev) > 1 else "-",
        "trigger": features.trigger,
        "kb_state": features.kb_state,
    }


def _key(level: Sequence[str], fields: dict[str, str]) -> str:
    return "|".join(fields[name] for name in level)


@dataclass(frozen=True)
class BaselineModel:
    """A loaded baseline: per-level count tables and the template book."""

    version: str
    tables: tuple[dict[str, list[tuple[str, int]]], ...]
    templates: TemplateBook
    min_count: int = 3
    top_k: int = 3

    @classmethod
    def load(cls, path: Path | str = ARTIFACT) -> BaselineModel:
        body = json.loads(Path(path).read_text())
        if body.get("kind") != KIND:
            raise ValueError(f"{path} is not a {KIND} model")
        tables = tuple(
            {key: [(label, int(n)) for label, n in counts] for key, counts in table.items()}
            for table in body["tables"]
        )
        return cls(
            version=body["version"],
            tables=tables,
            templates=TemplateBook.from_json(body["templates"]),
            min_count=body.get("min_count", 3),
        )

    def predict(self, features: Features) -> list[tuple[str, float]]:
        """Up to ``top_k`` (action, confidence), best first, each with a template."""
        fields = key_fields(features)
        ranked: list[tuple[str, float]] = []
        seen: set[str] = set()
        for level, table in zip(LEVELS, self.tables, strict=True):
            counts = table.get(_key(level, fields))
            if not counts:
                continue
            total = sum(n for _, n in counts)
            if total < self.min_count and level != LEVELS[-1]:
                continue
            for label, n in counts:
                if label in seen or not self.templates.has(label):
                    continue
                seen.add(label)
                # Candidates found after backing off keep their lower, coarser share.
                ranked.append((label, n / total if not ranked else min(ranked[-1][1], n / total)))
                if len(ranked) >= self.top_k:
                    return ranked
        return ranked

    def predict_batch(self, batch: Sequence[Features]) -> list[list[tuple[str, float]]]:
        return [self.predict(features) for features in batch]


def _frame(points: Iterable[Example]) -> pl.DataFrame:
    rows = [{**key_fields(p.features), "label": p.label} for p in points]
    return pl.DataFrame(rows, schema={name: pl.String for name in (*FIELDS, "label")})


def fit(train: Sequence[Example], keep: int = 12) -> tuple[dict[str, list[tuple[str, int]]], ...]:
    """Count next actions per context key at every back-off level (with polars)."""
    frame = _frame(train)
    tables = []
    for level in LEVELS:
        counted = (
            frame.with_columns(pl.concat_str([pl.col(c) for c in level], separator="|").alias("key"))
            .group_by("key", "label")
            .len()
            .sort(["key", "len", "label"], descending=[False, True, False])
        )
        table: dict[str, list[tuple[str, int]]] = {}
        for key, label, n in counted.select("key", "label", "len").iter_rows():
            bucket = table.setdefault(key, [])
            if len(bucket) < keep:
                bucket.append((label, n))
        tables.append(table)
    return tuple(tables)


def train(star_dir: Path | str, out_dir: Path | str = MODEL_DIR, version: str = "baseline-1.0.0",
          log=print) -> dict:
    """Train on STAR's train split, evaluate on dev, write the artifact; return its entry."""
    from models import star

    star_dir = Path(star_dir)
    dialogues_path = star_dir / "dialogues.jsonl.gz"
    started = time.monotonic()
    log(f"reading {dialogues_path} ...")
    train_points = list(examples(star.select(dialogues_path, split="train")))
    dev_points = list(examples(star.select(dialogues_path, split="dev")))
    log(f"{len(train_points)} training and {len(dev_points)} dev prediction points "
        f"({time.monotonic() - started:.1f}s)")
    templates = TemplateBook.from_star(star_dir / "tasks")
    tables = fit(train_points)
    model = BaselineModel(version=version, tables=tables, templates=templates)
    from models.evaluate import evaluate
    from operators.scoring import TemplateScorer

    metrics = {"dev": evaluate(TemplateScorer(model), dev_points)}
    log(f"dev: accuracy {metrics['dev']['accuracy']}, weighted F1 {metrics['dev']['weighted_f1']}, "
        f"top-3 {metrics['dev']['top3_accuracy']}")
    labels = sorted({p.label for p in train_points})
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    body = {
        "kind": KIND,
        "version": version,
        "levels": [list(level) for level in LEVELS],
        "min_count": model.min_count,
        "labels": labels,
        "tables": [{k: [list(c) for c in v] for k, v in t.items()} for t in tables],
        "templates": templates.to_json(),
        "license": "Templates and counts derived from STAR (MIT, Rasa Technologies GmbH).",
    }
    artifact = out_dir / "baseline.json"
    artifact.write_text(json.dumps(body, sort_keys=True, separators=(",", ":")) + "\n")
    entry = {
        "name": "baseline",
        "version": version,
        "kind": KIND,
        "path": str(artifact.relative_to(Path(__file__).parent)),
        "sha256": file_sha256(artifact),
        "training_data": {
            "path": "shared/data/star/dialogues.jsonl.gz",
            "sha256": file_sha256(dialogues_path),
            "split": "train (dialogues whose id hashes outside the 15% dev split)",
            "prediction_points": len(train_points),
        },
        "label_set_size": len(labels),
        "metrics": metrics,
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    log(f"wrote {artifact} ({artifact.stat().st_size // 1024} KiB) in "
        f"{time.monotonic() - started:.1f}s")
    return entry
