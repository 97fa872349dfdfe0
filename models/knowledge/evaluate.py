"""Passage retrieval on grounded turns: recall at 1, 3, 5 and 10, MRR, latency per query.

A retrieved passage is a hit when it is in the turn's gold document and
contains the gold answer's first character. Each query runs alone through
the serving path (``Retriever.search_batch`` with one conversation: its
features and its own model call), as a quiet job serves a customer turn;
its latency is the wall-clock time of that call.
"""

from __future__ import annotations

import gc
import time
from collections.abc import Iterable

import numpy as np

from models.knowledge.doc2dial import GroundedTurn
from models.knowledge.index import KnowledgeIndex
from models.knowledge.ranker import Hit, Retriever
from models.knowledge.text import tokens

KS = (1, 3, 5, 10)


def rank_of_answer(retriever_index, hits, turn: GroundedTurn) -> int | None:
    """The 1-based rank of the first hit, or None."""
    for rank, hit in enumerate(hits, 1):
        passage = retriever_index.passages[hit.passage]
        article = retriever_index.articles[passage.article]
        if article.article_id == turn.doc_id and passage.start <= turn.answer_start < passage.end:
            return rank
    return None


class PlainBM25:
    """The baseline: BM25 passages for all the customer's turns so far, no re-ranker (``--engine bm25``)."""

    def __init__(self, index: KnowledgeIndex) -> None:
        self.index = index

    def search_batch(self, queries, k: int = 10):
        index, out = self.index, []
        for turns in queries:
            scores = index.scores(
                "passages", tokens(" ".join(text for speaker, text in turns if speaker == "customer"))
            )
            order = np.argsort(-scores, kind="stable")[:k]
            out.append([Hit(int(i), float(scores[i])) for i in order if scores[i] > 0])
        return index, out, [0.0] * len(out)


def evaluate(
    retriever: Retriever | PlainBM25, turns: Iterable[GroundedTurn], warmup: int = 20
) -> tuple[dict, dict]:
    """The figures over ``turns`` (the first ``warmup`` are run once first and not timed twice), and
    their CPU time (``cpu_figures``): wall-clock latency moves with what else the machine runs."""
    turns = list(turns)
    for turn in turns[:warmup]:  # first calls build caches (onnxruntime, numpy); a running job is past them
        retriever.search_batch([turn.turns])
    ranks: list[int | None] = []
    millis: list[float] = []
    cpu_millis: list[float] = []
    gc.collect()
    frozen = gc.isenabled()
    gc.freeze()  # what a job process does after loading (models.heap.settle_heap)
    try:
        for turn in turns:
            start, cpu = time.perf_counter(), time.thread_time()
            index, (hits,), _ = retriever.search_batch([turn.turns], k=max(KS))
            millis.append(1000 * (time.perf_counter() - start))
            cpu_millis.append(1000 * (time.thread_time() - cpu))
            ranks.append(rank_of_answer(index, hits, turn))
    finally:
        gc.unfreeze()
        if not frozen:
            gc.disable()
    n = len(ranks)
    found = np.array([r if r is not None else 0 for r in ranks])
    result: dict[str, float | int] = {"n": n}
    for k in KS:
        result[f"recall_at_{k}"] = round(float(np.mean((found >= 1) & (found <= k))) if n else 0.0, 4)
    result["mrr"] = round(
        float(np.mean(np.where(found > 0, 1.0 / np.maximum(found, 1), 0.0))) if n else 0.0, 4
    )
    times = np.array(millis) if millis else np.zeros(1)
    result["p50_ms"] = round(float(np.percentile(times, 50)), 2)
    result["p99_ms"] = round(float(np.percentile(times, 99)), 2)
    return result, cpu_figures(cpu_millis)


def cpu_figures(millis: list[float]) -> dict:
    """The same queries' CPU time (this thread's): what wall-clock latency is on an idle machine."""
    times = np.array(millis) if millis else np.zeros(1)
    return {"cpu_p50_ms": round(float(np.percentile(times, 50)), 2),
            "cpu_p99_ms": round(float(np.percentile(times, 99)), 2)}
