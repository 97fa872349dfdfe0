"""The ONNX model: graph = reference maths, training, registry, serving."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest
from scipy import sparse

from models import onnx_graph, registry, star
from models.dataset import examples
from models.mlp import MLPParams, fit_temperature, softmax, train_mlp
from models.scorer import FEATURE_SPEC, OnnxScorer, indices_of
from models.train import ARTIFACT
from tests.helpers import STAR_DIALOGUES, registered_copy


def random_members(rng, n_inputs=300, hidden=16, classes=7, members=3):
    return [
        MLPParams(
            E=rng.standard_normal((n_inputs, hidden)).astype(np.float32) * 0.3,
            b1=rng.standard_normal(hidden).astype(np.float32) * 0.1,
            W2=rng.standard_normal((hidden, classes)).astype(np.float32),
            b2=rng.standard_normal(classes).astype(np.float32) * 0.1,
        )
        for _ in range(members)
    ]


def test_the_onnx_graph_computes_the_reference_function():
    rng = np.random.default_rng(7)
    members = random_members(rng)
    risk_w, risk_b = rng.standard_normal(50), -0.3
    model = onnx_graph.build(members=members, temperature=1.7, risk_w=risk_w, risk_b=risk_b,
                             metadata={"k": "v"})
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    n, k, r = 9, 12, 5
    idx = rng.integers(0, 300, (n, k))
    mask = (rng.random((n, k)) < 0.8).astype(np.uint8)
    ridx = rng.integers(0, 50, (n, r))
    rval = rng.random((n, r)).astype(np.float32)
    probs, risk = session.run(
        None, {"action_idx": idx, "action_mask": mask, "risk_idx": ridx, "risk_val": rval}
    )
    X = sparse.csr_matrix(
        (mask.ravel().astype(np.float32), (np.repeat(np.arange(n), k), idx.ravel())), shape=(n, 300)
    )
    R = sparse.csr_matrix((rval.ravel(), (np.repeat(np.arange(n), r), ridx.ravel())), shape=(n, 50))
    want_probs, want_risk = onnx_graph.reference(members, 1.7, risk_w, risk_b, X, R)
    np.testing.assert_allclose(probs, want_probs, atol=1e-5)
    np.testing.assert_allclose(risk, want_risk, atol=1e-5)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)
    # int8 storage stays close to the float weights
    mean = np.mean([softmax(np.maximum(X @ m.E + m.b1, 0) @ m.W2 + m.b2) for m in members], axis=0)
    float_probs = softmax(np.log(mean), 1.7)
    assert np.abs(float_probs - probs).max() < 0.02


def test_the_mlp_learns_and_the_temperature_calibrates():
    rng = np.random.default_rng(0)
    n, d, classes = 2000, 60, 4
    y = rng.integers(0, classes, n)
    cols = np.stack([y * 10 + rng.integers(0, 10, n), rng.integers(40, 60, n)], axis=1)
    X = sparse.csr_matrix(
        (np.ones(2 * n, np.float32), (np.repeat(np.arange(n), 2), cols.ravel())), shape=(n, d)
    )
    losses = []
    params = train_mlp(
        X, y, classes, hidden=16, epochs=6, lr=1e-2, on_epoch=lambda e, loss, p: losses.append(loss)
    )
    assert losses[-1] < losses[0] / 3
    logits = params.logits(X)
    assert (logits.argmax(axis=1) == y).mean() > 0.95
    # Labels drawn from softmax(L): logits 3L are over-confident by a factor of 3.
    L = rng.standard_normal((20_000, 5)) * 1.5
    p = softmax(L)
    drawn = np.array([rng.choice(5, p=row) for row in p])
    assert abs(fit_temperature(3 * L, drawn) - 3.0) < 0.3


def test_the_committed_model_is_registered_small_and_serves_top3_with_risk():
    entry = registry.verify(ARTIFACT)
    assert entry["kind"] == "onnx-mlp-ensemble" and entry["feature_spec"] == FEATURE_SPEC
    assert ARTIFACT.stat().st_size <= 20 * 1024 * 1024
    dev = entry["metrics"]["dev"]
    assert dev["weighted_f1"] >= 0.75 and dev["top3_accuracy"] >= 0.95
    scorer = registry.load_scorer(ARTIFACT)
    points = list(examples(star.select(STAR_DIALOGUES, split="dev", limit=30)))
    scores = scorer.score_batch([p.features for p in points])
    assert len(scores) == len(points)
    for point, s in zip(points, scores, strict=True):
        assert len(s.candidates) == 3
        confidences = [c for _, c in s.candidates]
        assert confidences == sorted(confidences, reverse=True) and 0 < sum(confidences) <= 1.0001
        assert (s.risk is not None) == (point.features.trigger == "customer_turn")
    top1 = [s.candidates[0][0] for s in scores]
    assert np.mean([t == p.label for t, p in zip(top1, points, strict=True)]) > 0.6
    # a batch of one gives the same answer as inside a batch
    alone = scorer.score_batch([points[5].features])[0]
    assert alone.candidates[0][0] == scores[5].candidates[0][0]
    assert abs(alone.candidates[0][1] - scores[5].candidates[0][1]) < 1e-5


def test_replies_are_rendered_with_slots_from_the_knowledge_base():
    scorer = OnnxScorer(ARTIFACT)
    point = next(p for p in examples(star.select(STAR_DIALOGUES, split="dev", limit=200))
                 if p.label == "bank_inform_balance")
    text = scorer.render("bank_inform_balance", point.features)
    balance = dict(point.features.kb_item)["BankBalance"]
    assert text == f"Your current balance is {balance} in credit."


def test_a_tampered_or_foreign_model_is_refused(tmp_path, monkeypatch):
    copy, reg = registered_copy(tmp_path, monkeypatch, ARTIFACT)
    assert registry.load_scorer(copy, reg).version == registry.verify(copy, reg)["version"]  # intact: loads
    data = bytearray(copy.read_bytes())
    data[-100] ^= 0xFF
    copy.write_bytes(bytes(data))
    with pytest.raises(registry.ModelIntegrityError, match="refusing to load"):
        registry.load_scorer(copy, reg)


def test_a_model_from_another_feature_spec_is_refused(tmp_path):
    import onnx

    model = onnx.load(ARTIFACT)
    for prop in model.metadata_props:
        if prop.key == "coachflow.feature_spec":
            prop.value = "coachflow-features-0"
    path = tmp_path / "old.onnx"
    onnx.save(model, path)
    with pytest.raises(ValueError, match="trained with features"):
        OnnxScorer(path)


def test_served_rows_are_the_training_inputs_each_once():
    """The vectoriser's shortcuts (cached parts, per-conversation reuse, word
    tables) give exactly the inputs that ``action_inputs`` / ``risk_inputs``
    name for training, each index once, whatever order points come in."""
    from operators.features import action_inputs, risk_inputs

    scorer = registry.load_scorer(ARTIFACT)
    vec = scorer.vectorizer
    points = [p.features for p in examples(star.select(STAR_DIALOGUES, split="dev", limit=60))]
    assert len(points) > 300
    action_index = {name: i for i, name in enumerate(vec.action_vocab)}
    risk_index = {name: i for i, name in enumerate(vec.risk_vocab)}
    # in stream order, then again (caches warm), then reversed (no reuse between points)
    for order in (points, points, points[::-1]):
        for f in order:
            row = indices_of(vec.action_row(f))
            assert len(row) == len(set(row))
            assert set(row) == {action_index[n] for n in action_inputs(f, vec.flows) if n in action_index}
            indices, values = vec.risk_row(f)
            indices = indices_of(indices)
            assert len(indices) == len(set(indices))
            expected = {
                risk_index[n]: v for n, v in risk_inputs(f, vec.lexicon).items() if n in risk_index and v
            }
            # valued inputs are served even when zero (the risk head is linear: zero and absent score alike)
            served = dict(zip(indices, values, strict=True))
            assert {j: v for j, v in served.items() if v} == pytest.approx(expected)


def test_top_k_ranks_best_first():
    from models.scorer import top_k

    rng = np.random.default_rng(3)
    probs = softmax(rng.standard_normal((50, 40)).astype(np.float32))
    top, top_p = top_k(probs, 3)
    expected = np.argsort(-probs, axis=1, kind="stable")[:, :3]
    assert (top == expected).all()
    assert np.allclose(top_p, np.take_along_axis(probs, expected, axis=1))
    assert top_k(probs[:, :2], 3)[0].shape == (50, 2)


def test_memo_keeps_recent_entries_within_two_generations():
    from operators.features import Memo

    memo = Memo(size=3)
    for i in range(3):
        memo.keep(i, str(i))
    memo.keep(3, "3")  # full: 0..2 become the previous generation
    assert memo.get(0) is None and memo.recall(0) == "0" and memo.get(0) == "0"
    for i in range(4, 9):
        memo.keep(i, str(i))
    assert memo.get(1) is None and memo.recall(1) is None  # dropped two generations ago
    assert len(memo) + len(memo.previous) <= 6
