"""Serving the ONNX model: vectorise features, run one session, rank and render.

``Vectorizer`` turns ``Features`` into the model's sparse inputs with
``operators.features.action_inputs`` / ``risk_inputs`` and the vocabularies
stored in the model; training builds its matrices with the very same object.
``OnnxScorer`` holds one onnxruntime session per process (Bytewax workers in a
process share it) and scores a whole batch per call.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from itertools import chain
from pathlib import Path

import numpy as np

from models.templates import TemplateBook
from operators.features import (
    Features,
    FlowGraphs,
    Lexicon,
    Part,
    Words,
    action_input_parts,
    risk_input_parts,
)
from operators.scoring import Scores

#: Bump when action_inputs / risk_inputs change meaning; the model records it.
FEATURE_SPEC = "coachflow-features-2"
#: The registry's ``kind`` of models served by ``OnnxScorer``.
KIND = "onnx-mlp-ensemble"


class Vectorizer:
    """Named model inputs -> (index, value) rows, for training and serving alike.

    Action inputs are all valued 1.0 (``action_input_parts`` promises it), so
    an action row is its indices; risk inputs carry values. ``Words`` parts
    are mapped key by key (``w`` + ``refund`` -> the index of ``w=refund``)
    without spelling out the names: the keys are shared, already-hashed
    strings, which keeps the hot path cheap.
    """

    def __init__(
        self,
        action_vocab: Sequence[str],
        risk_vocab: Sequence[str],
        graph: dict[str, dict[str, str]],
        lexicon: dict[str, float],
    ) -> None:
        self.action_vocab = list(action_vocab)
        self.risk_vocab = list(risk_vocab)
        self._action_index = {name: i for i, name in enumerate(self.action_vocab)}
        self._risk_index = {name: i for i, name in enumerate(self.risk_vocab)}
        self._action_words = _by_prefix(self.action_vocab)
        self._risk_words = _by_prefix(self.risk_vocab)
        self._parts: dict[int, tuple[tuple[str, ...], tuple[int, ...]]] = {}
        self._word_parts: dict[tuple[str, int], tuple[tuple[str, ...], tuple[int, ...]]] = {}
        self._risk_parts: dict[tuple[str, int], tuple[tuple[str, ...], tuple[int, ...]]] = {}
        self.flows = FlowGraphs(graph)
        self.lexicon = Lexicon(lexicon)

    def _word_indices(self, part: Words, index: dict[str, dict[str, int]], memo: dict) -> tuple[int, ...]:
        # Key tuples are cached objects: remember their indices by identity
        # (checked, since an id can be reused once a tuple leaves its cache).
        key = (part.prefix, id(part.keys))
        hit = memo.get(key)
        if hit is not None and hit[0] is part.keys:
            return hit[1]
        words = index.get(part.prefix, {})
        indices = tuple([words[k] for k in part.keys if k in words])
        if len(memo) >= 100_000:
            memo.clear()
        memo[key] = (part.keys, indices)
        return indices

    def _part_indices(self, part: Part) -> tuple[int, ...]:
        if type(part) is Words:
            return self._word_indices(part, self._action_words, self._word_parts)
        hit = self._parts.get(id(part))
        if hit is not None and hit[0] is part:
            return hit[1]
        get = self._action_index.get
        indices = tuple([j for j in map(get, part) if j is not None])
        if len(self._parts) >= 100_000:
            self._parts.clear()
        self._parts[id(part)] = (part, indices)
        return indices

    def action_row(self, features: Features) -> list[int]:
        """Indices of the point's action inputs, each once, in first-seen order."""
        parts = action_input_parts(features, self.flows)
        return list(dict.fromkeys(chain.from_iterable(map(self._part_indices, parts))))

    def risk_row(self, features: Features) -> tuple[list[int], list[float]]:
        """Indices and values of the point's risk inputs, each once."""
        values, words = risk_input_parts(features, self.lexicon)
        get = self._risk_index.get
        row = {j: v for j, v in zip(map(get, values), values.values(), strict=True) if j is not None and v}
        for part in words:
            for j in self._word_indices(part, self._risk_words, self._risk_parts):
                row.setdefault(j, 1.0)
        return list(row), list(row.values())

    def rows(self, batch: Sequence[Features]) -> tuple[list[list[int]], list[tuple[list[int], list[float]]]]:
        """Action and risk rows of a batch.

        Escalation risk is about the customer's latest turn, so only customer
        turns get risk inputs; other points get an empty row (and no risk).
        """
        action = [self.action_row(f) for f in batch]
        risk = [self.risk_row(f) if f.trigger == "customer_turn" else _EMPTY_ROW for f in batch]
        return action, risk

    def padded(self, batch: Sequence[Features]) -> dict[str, np.ndarray]:
        """The four input tensors of a batch; rows are padded with (index 0, value 0)."""
        return tensors(*self.rows(batch))

    def csr(self, batch: Sequence[Features], head: str):
        """A SciPy CSR matrix of one head's inputs (for training)."""
        from scipy import sparse

        if head == "action":
            rows = [(i, [1.0] * len(i)) for i in (self.action_row(f) for f in batch)]
            width = len(self.action_vocab)
        else:
            rows = [self.risk_row(f) for f in batch]
            width = len(self.risk_vocab)
        indptr = np.cumsum([0] + [len(i) for i, _ in rows])
        indices = np.fromiter(chain.from_iterable(i for i, _ in rows), dtype=np.int64, count=indptr[-1])
        values = np.fromiter(chain.from_iterable(v for _, v in rows), dtype=np.float32, count=indptr[-1])
        return sparse.csr_matrix((values, indices, indptr), shape=(len(rows), width))


def _by_prefix(vocab: Sequence[str]) -> dict[str, dict[str, int]]:
    """``{"w": {"refund": 17, ...}, ...}`` for every ``prefix=key`` name."""
    out: dict[str, dict[str, int]] = {}
    for i, name in enumerate(vocab):
        prefix, sep, key = name.partition("=")
        if sep:
            out.setdefault(prefix, {})[key] = i
    return out


_EMPTY_ROW: tuple[list[int], list[float]] = ([], [])


def tensors(action: list[list[int]], risk: list[tuple[list[int], list[float]]]) -> dict[str, np.ndarray]:
    """The model's four input tensors for these rows."""
    action_idx, action_mask = _pad(action, None)
    risk_idx, risk_val = _pad([i for i, _ in risk], [v for _, v in risk])
    return {"action_idx": action_idx, "action_mask": action_mask, "risk_idx": risk_idx, "risk_val": risk_val}


def _pad(indices: list[list[int]], values: list[list[float]] | None) -> tuple[np.ndarray, np.ndarray]:
    """[N, K] index and value arrays; ``values=None`` gives a uint8 mask of ones instead."""
    lengths = np.fromiter(map(len, indices), dtype=np.int64, count=len(indices))
    width = max(1, int(lengths.max(initial=0)))
    total = int(lengths.sum())
    rows = np.repeat(np.arange(len(indices)), lengths)
    starts = np.repeat(np.cumsum(lengths) - lengths, lengths)
    cols = np.arange(total) - starts
    idx = np.zeros((len(indices), width), dtype=np.int64)
    idx[rows, cols] = np.fromiter(chain.from_iterable(indices), dtype=np.int64, count=total)
    if values is None:
        mask = np.zeros((len(indices), width), dtype=np.uint8)
        mask[rows, cols] = 1
        return idx, mask
    val = np.zeros((len(indices), width), dtype=np.float32)
    val[rows, cols] = np.fromiter(chain.from_iterable(values), dtype=np.float32, count=total)
    return idx, val


class OnnxScorer:
    """The embedded ONNX model, with its vocabularies, labels and templates."""

    def __init__(self, path: Path | str, top_k: int = 3, threads: int = 1) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        meta = self.session.get_modelmeta().custom_metadata_map
        if meta.get("coachflow.feature_spec") != FEATURE_SPEC:
            raise ValueError(
                f"{path} was trained with features {meta.get('coachflow.feature_spec')!r}, "
                f"this code computes {FEATURE_SPEC!r}"
            )
        self.version = meta["coachflow.version"]
        self.labels = json.loads(meta["coachflow.labels"])
        self.templates = TemplateBook.from_json(json.loads(meta["coachflow.templates"]))
        self.vectorizer = Vectorizer(
            json.loads(meta["coachflow.action_vocab"]),
            json.loads(meta["coachflow.risk_vocab"]),
            self.templates.graph,
            json.loads(meta["coachflow.lexicon"]),
        )
        self.top_k = top_k
        self.risk_threshold = float(meta.get("coachflow.risk_threshold", "0.5"))

    #: Session calls take at most this many points: the gathered input rows of
    #: a bigger call fall out of the CPU caches and each point costs more.
    CHUNK = 128

    def run(self, batch: Sequence[Features]) -> tuple[np.ndarray, np.ndarray]:
        """Action probabilities [N, C] and risk [N] for a batch.

        Points are grouped by input length into session calls of ``CHUNK``,
        so little of each call is padding.
        """
        action, risk = self.vectorizer.rows(batch)
        if len(batch) <= self.CHUNK:
            return tuple(self.session.run(None, tensors(action, risk)))
        order = sorted(range(len(batch)), key=lambda i: len(action[i]))
        probs = np.empty((len(batch), len(self.labels)), dtype=np.float32)
        risks = np.empty(len(batch), dtype=np.float32)
        for start in range(0, len(order), self.CHUNK):
            chunk = order[start : start + self.CHUNK]
            p, r = self.session.run(None, tensors([action[i] for i in chunk], [risk[i] for i in chunk]))
            probs[chunk] = p
            risks[chunk] = r
        return probs, risks

    def score_batch(self, batch: Sequence[Features]) -> list[Scores]:
        if not batch:
            return []
        probs, risk = self.run(batch)
        k = min(self.top_k, probs.shape[1])
        top = np.argpartition(-probs, k - 1, axis=1)[:, :k]
        top_p = np.take_along_axis(probs, top, axis=1)
        order = np.argsort(-top_p, axis=1)
        top = np.take_along_axis(top, order, axis=1).tolist()
        top_p = np.take_along_axis(top_p, order, axis=1).tolist()
        labels = self.labels
        return [
            Scores(
                candidates=[(labels[j], p) for j, p in zip(js, ps, strict=True)],
                risk=r if f.trigger == "customer_turn" else None,
            )
            for js, ps, r, f in zip(top, top_p, risk.tolist(), batch, strict=True)
        ]

    def render(self, action: str, features: Features) -> str | None:
        return self.templates.render(action, features.task, features.tasks, features.kb_item)
