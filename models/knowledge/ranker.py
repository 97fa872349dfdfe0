"""The learned re-ranker as one ONNX file, and the retriever that serves cards with it.

The graph (built by ``build_graph`` at training time, with ``onnx.helper``):

    features float [N, F] -> (x - mean) / scale
        -> per member m: relu(x @ W1_m + b1_m) -> relu(. @ W2_m + b2_m) -> sigmoid(. @ w3_m + b3_m)
        -> mean over members -> score float [N]

``score`` is the ensemble's probability that a passage holds the answer.
Serving (``Reranker``) checks the file's feature spec against the code's,
and ``Retriever`` puts the index, the features and the model together: one
feature pass per query and one session call for a whole batch of queries.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from models.knowledge.features import FEATURE_SPEC, FEATURES, candidates
from models.knowledge.index import KnowledgeIndex
from models.registry import MODELS_DIR, REGISTRY, ModelIntegrityError, verify
from operators.knowledge import PassageHit

#: The registry's ``kind`` of re-rankers.
KIND = "onnx-knowledge-ranker"
DEFAULT_RANKER = MODELS_DIR / "knowledge" / "ranker.onnx"
OPSET = 17


def build_graph(mean: np.ndarray, scale: np.ndarray, members: list[list[tuple[np.ndarray, np.ndarray]]],
                metadata: dict[str, object]):
    """The ONNX model of an ensemble of MLPs (each a list of (weights, bias) layers; ReLU between,
    a sigmoid at the end) over standardised features; the members' probabilities are averaged."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    def const(name: str, value: np.ndarray):
        return numpy_helper.from_array(np.asarray(value, dtype=np.float32), name=name)

    initializers = [const("mean", mean), const("inv_scale", 1.0 / scale)]
    nodes = [
        helper.make_node("Sub", ["features", "mean"], ["centred"]),
        helper.make_node("Mul", ["centred", "inv_scale"], ["x"]),
    ]
    outputs = []
    for m, layers in enumerate(members):
        current = "x"
        for n, (weights, bias) in enumerate(layers):
            initializers += [const(f"W{m}_{n}", weights), const(f"b{m}_{n}", bias)]
            nodes += [
                helper.make_node("MatMul", [current, f"W{m}_{n}"], [f"z{m}_{n}"]),
                helper.make_node("Add", [f"z{m}_{n}", f"b{m}_{n}"], [f"a{m}_{n}"]),
            ]
            current = f"a{m}_{n}"
            if n < len(layers) - 1:
                nodes.append(helper.make_node("Relu", [current], [f"h{m}_{n}"]))
                current = f"h{m}_{n}"
        nodes.append(helper.make_node("Sigmoid", [current], [f"p{m}"]))
        outputs.append(f"p{m}")
    nodes += [
        helper.make_node("Concat", outputs, ["member_probs"], axis=1),
        helper.make_node("ReduceMean", ["member_probs"], ["score"], axes=[1], keepdims=0),
    ]
    graph = helper.make_graph(
        nodes, "coachflow_knowledge_ranker",
        inputs=[helper.make_tensor_value_info("features", TensorProto.FLOAT, ["N", len(mean)])],
        outputs=[helper.make_tensor_value_info("score", TensorProto.FLOAT, ["N"])],
        initializer=initializers,
    )
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="coachflow"
    )
    model.ir_version = 8
    for key, value in metadata.items():
        entry = model.metadata_props.add()
        entry.key = key
        entry.value = value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))
    onnx.checker.check_model(model)
    return model


def reference_scores(mean, scale, members, X: np.ndarray) -> np.ndarray:
    """What the graph computes, in numpy (for tests)."""
    x = (X - mean) / scale
    probs = []
    for layers in members:
        h = x
        for n, (weights, bias) in enumerate(layers):
            h = h @ weights + bias
            if n < len(layers) - 1:
                h = np.maximum(h, 0.0)
        probs.append(1.0 / (1.0 + np.exp(-h)))
    return np.mean(np.concatenate(probs, axis=1), axis=1)


class Reranker:
    """The ONNX re-ranker: ``score(X)`` for rows of ``FEATURES``."""

    registry_entry: dict
    """The model registry's entry for the file (set by ``load_reranker``)."""

    def __init__(self, path: Path | str, threads: int = 1) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        meta = self.session.get_modelmeta().custom_metadata_map
        if meta.get("coachflow.feature_spec") != FEATURE_SPEC or json.loads(
            meta["coachflow.features"]
        ) != list(FEATURES):
            raise ModelIntegrityError(
                f"{path} was trained with features {meta.get('coachflow.feature_spec')!r}, "
                f"this code computes {FEATURE_SPEC!r}"
            )
        self.version = meta["coachflow.version"]

    def score(self, X: np.ndarray) -> np.ndarray:
        if not len(X):
            return np.zeros(0, dtype=np.float32)
        return self.session.run(None, {"features": np.ascontiguousarray(X, dtype=np.float32)})[0]


@dataclass(frozen=True, slots=True)
class Hit:
    """One ranked passage: its index in the knowledge index and the re-ranker's score."""

    passage: int
    score: float


class Retriever:
    """The index and the re-ranker together; swap the index with ``swap`` (a reload)."""

    def __init__(self, index: KnowledgeIndex, reranker: Reranker) -> None:
        self._index = index
        self.reranker = reranker
        self._lock = threading.Lock()

    @property
    def index(self) -> KnowledgeIndex:
        return self._index

    def swap(self, index: KnowledgeIndex) -> None:
        with self._lock:
            self._index = index

    def search_batch(
        self, queries: Sequence[Sequence[tuple[str, str]]], k: int = 10
    ) -> tuple[KnowledgeIndex, list[list[Hit]], list[float]]:
        """The best ``k`` passages for each conversation in ``queries``: one feature pass per
        query, one model call for the batch. Returns the index used (all hits refer to it), the
        hits, and each query's milliseconds (its features plus its share of the model call)."""
        index = self._index  # one index for the whole batch, even if a reload swaps it meanwhile
        ids, rows, spent = [], [], []
        for turns in queries:
            start = time.perf_counter()
            found, X = candidates(index, turns)
            ids.append(found)
            rows.append(X)
            spent.append(time.perf_counter() - start)
        start = time.perf_counter()
        scores = self.reranker.score(np.concatenate(rows)) if rows else np.zeros(0, dtype=np.float32)
        model_s = time.perf_counter() - start
        total = sum(len(found) for found in ids) or 1
        out, offset = [], 0
        for found in ids:
            mine = scores[offset:offset + len(found)]
            offset += len(found)
            order = np.argsort(-mine, kind="stable")[:k]
            out.append([Hit(int(found[i]), float(mine[i])) for i in order])
        millis = [1000 * (s + model_s * len(found) / total) for s, found in zip(spent, ids, strict=True)]
        return index, out, millis


    def passages_batch(
        self, conversations: Sequence[Sequence[tuple[str, str]]], k: int = 10
    ) -> tuple[str, list[list[PassageHit]], list[float]]:
        """``search_batch`` as plain data for the stream (``operators.knowledge.Retrieval``)."""
        index, hits, millis = self.search_batch(conversations, k)
        out = []
        for found in hits:
            rows = []
            for hit in found:
                passage = index.passages[hit.passage]
                article = index.articles[passage.article]
                rows.append(
                    PassageHit(
                        article_id=article.article_id,
                        article_version=article.version,
                        title=article.title,
                        heading=passage.heading,
                        start=passage.start,
                        end=passage.end,
                        text=index.text(passage),
                        score=hit.score,
                        source=article.source,
                        source_url=article.source_url,
                        tags=tuple(article.tags),
                    )
                )
            out.append(rows)
        return index.kb_version, out, millis


def load_reranker(path: Path | str = DEFAULT_RANKER, threads: int = 1, registry: Path = REGISTRY) -> Reranker:
    """Verify ``path`` against the model registry (hash, kind) and load it."""
    entry = verify(path, registry)
    if entry.get("kind") != KIND:
        raise ModelIntegrityError(f"{path} is a {entry.get('kind')!r} in the registry, not a {KIND}")
    reranker = Reranker(path, threads)
    reranker.registry_entry = entry
    return reranker
