"""`coach eval`: run the serving code over STAR-format dialogues and measure it.

The dialogues go through the same mapping, conversation tracker, vectoriser
and ONNX session as the live job. Next-action figures are over every labelled
prediction point (happy, unhappy and multi-task dialogues alike); escalation
AUC is over customer turns, against the wizard's "the user became aggressive
or annoyed" answer for the dialogue.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence

import numpy as np
from sklearn.metrics import accuracy_score, f1_score, roc_auc_score

from models.dataset import Example, examples
from models.heap import settled_heap


def domain_of(example: Example) -> str:
    """The domain of the task in progress (``bank_balance`` -> ``bank``)."""
    task = example.features.task
    if task:
        return task.split("_")[0]
    return example.domains[0] if example.domains else "unknown"


def ranking_figures(gold: Sequence[str], ranked: Sequence[Sequence[str]]) -> dict:
    top1 = [r[0] if r else "" for r in ranked]
    return {
        "n": len(gold),
        "accuracy": round(float(accuracy_score(gold, top1)), 4) if gold else 0.0,
        "weighted_f1": round(float(f1_score(gold, top1, average="weighted", zero_division=0)), 4)
        if gold else 0.0,
        "top3_accuracy": round(sum(g in r[:3] for g, r in zip(gold, ranked, strict=True)) / len(gold), 4)
        if gold else 0.0,
    }


def expected_calibration_error(confidence: np.ndarray, correct: np.ndarray, bins: int = 15) -> float:
    edges = np.linspace(0, 1, bins + 1)
    total = 0.0
    for lo, hi in zip(edges[:-1], edges[1:], strict=True):
        inside = (confidence > lo) & (confidence <= hi)
        if inside.any():
            total += inside.mean() * abs(confidence[inside].mean() - correct[inside].mean())
    return float(total)


def evaluate(scorer, points: Iterable[Example], batch_size: int = 256, timing_sample: int = 500) -> dict:
    """Next-action, calibration, escalation and timing figures of ``scorer`` on ``points``."""
    points = list(points)
    ranked: list[list[str]] = []
    confidence: list[float] = []
    risks: list[float | None] = []
    # Timed with the collector settled as in a job process (models.heap),
    # so the dataset held here is not walked again and again as it would not
    # be in the stream.
    with settled_heap():
        started = time.perf_counter()
        for start in range(0, len(points), batch_size):
            batch = [p.features for p in points[start : start + batch_size]]
            for scores in scorer.score_batch(batch):
                ranked.append([a for a, _ in scores.candidates])
                confidence.append(scores.candidates[0][1] if scores.candidates else 0.0)
                risks.append(scores.risk)
        batched_s = time.perf_counter() - started

        single: list[float] = []
        for p in points[:: max(1, len(points) // timing_sample)][:timing_sample]:
            t0 = time.perf_counter()
            scorer.score_batch([p.features])
            single.append(time.perf_counter() - t0)

    gold = [p.label for p in points]
    result = ranking_figures(gold, ranked)
    correct = np.array([bool(r) and r[0] == g for g, r in zip(gold, ranked, strict=True)], dtype=float)
    result["ece"] = round(expected_calibration_error(np.array(confidence), correct), 4)

    turns = [
        i for i, p in enumerate(points) if p.features.trigger == "customer_turn" and risks[i] is not None
    ]
    labels = [points[i].aggressive for i in turns]
    result["escalation_auc"] = (
        round(float(roc_auc_score(labels, [risks[i] for i in turns])), 4)
        if len(set(labels)) == 2  # noqa: PLR2004 - AUC needs both classes
        else None
    )
    result["escalation_turns"] = len(turns)
    result["score_us_mean"] = round(batched_s / max(1, len(points)) * 1e6, 1)
    result["score_us_p99_batch_of_one"] = round(float(np.percentile(single, 99)) * 1e6, 1) if single else None
    result["score_us_mean_batch_of_one"] = round(float(np.mean(single)) * 1e6, 1) if single else None
    result["batch_size"] = batch_size

    by_domain: dict[str, list[int]] = {}
    for i, p in enumerate(points):
        by_domain.setdefault(domain_of(p), []).append(i)
    result["per_domain"] = {
        d: ranking_figures([gold[i] for i in idx], [ranked[i] for i in idx])
        for d, idx in sorted(by_domain.items())
    }
    by_kind: dict[str, list[int]] = {}
    for i, p in enumerate(points):
        kind = "happy" if p.happy else "unhappy"
        by_kind.setdefault(kind, []).append(i)
        if p.multi_task:
            by_kind.setdefault("multi_task", []).append(i)
    result["per_kind"] = {
        k: ranking_figures([gold[i] for i in idx], [ranked[i] for i in idx])
        for k, idx in sorted(by_kind.items())
    }
    return result


def evaluate_dialogues(scorer, dialogues: Iterable[dict], **kwargs) -> dict:
    return evaluate(scorer, examples(dialogues), **kwargs)
