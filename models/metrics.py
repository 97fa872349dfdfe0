"""Classification metrics for next-action prediction (accuracy, weighted F1, top-k)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence


def weighted_f1(gold: Sequence[str], predicted: Sequence[str]) -> float:
    """F1 per gold label, averaged with each label's support as its weight.

    The same definition as scikit-learn's ``f1_score(average="weighted")``.
    """
    if not gold:
        return 0.0
    support = Counter(gold)
    predicted_count = Counter(predicted)
    true_positive = Counter(g for g, p in zip(gold, predicted, strict=True) if g == p)
    total = 0.0
    for label, n in support.items():
        tp = true_positive[label]
        precision = tp / predicted_count[label] if predicted_count[label] else 0.0
        recall = tp / n
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        total += f1 * n
    return total / len(gold)


def accuracy(gold: Sequence[str], predicted: Sequence[str]) -> float:
    if not gold:
        return 0.0
    return sum(g == p for g, p in zip(gold, predicted, strict=True)) / len(gold)


def top_k_accuracy(gold: Sequence[str], ranked: Sequence[Sequence[str]], k: int = 3) -> float:
    if not gold:
        return 0.0
    return sum(g in r[:k] for g, r in zip(gold, ranked, strict=True)) / len(gold)
