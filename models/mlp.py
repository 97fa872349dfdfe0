"""A sparse-input MLP (an "embedding bag"), trained with numpy and SciPy.

``hidden = relu(X @ E + b1)``, ``logits = hidden @ W2 + b2``, where ``X`` is a
sparse matrix of named inputs (a few dozen non-zeros per row out of tens of
thousands). Training touches only the rows of ``E`` a batch uses (lazy Adam),
so an epoch over STAR takes seconds on two cores.

Why not a library: scikit-learn's ``MLPClassifier`` computes dense gradients
for the whole input layer on every batch (about 50 s an epoch here, with no
dropout), and PyTorch's Linux wheels pull gigabytes of CUDA packages. The
exported ONNX graph computes the same function; a test checks the two agree.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy import sparse


@dataclass
class MLPParams:
    E: np.ndarray  # (inputs, hidden)
    b1: np.ndarray  # (hidden,)
    W2: np.ndarray  # (hidden, classes)
    b2: np.ndarray  # (classes,)

    def logits(self, X: sparse.csr_matrix) -> np.ndarray:
        hidden = np.maximum(X @ self.E + self.b1, 0.0)
        return hidden @ self.W2 + self.b2


def softmax(z: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    z = z / temperature
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


class _Adam:
    def __init__(self, shape: tuple[int, ...], lr: float, beta1=0.9, beta2=0.999, eps=1e-8):
        self.m = np.zeros(shape, dtype=np.float32)
        self.v = np.zeros(shape, dtype=np.float32)
        matrix = len(shape) == 2  # noqa: PLR2004 - a weight matrix, else a bias vector
        self.t = np.zeros(shape[0], dtype=np.int64) if matrix else np.zeros(1, dtype=np.int64)
        self.lr, self.beta1, self.beta2, self.eps = lr, beta1, beta2, eps

    def step(self, param: np.ndarray, grad: np.ndarray, rows: np.ndarray | None = None) -> None:
        """Dense update, or a lazy update of ``rows`` only (per-row step counts)."""
        if rows is None:
            self.t += 1
            t = self.t[0]
            self.m = self.beta1 * self.m + (1 - self.beta1) * grad
            self.v = self.beta2 * self.v + (1 - self.beta2) * grad * grad
            m_hat = self.m / (1 - self.beta1**t)
            v_hat = self.v / (1 - self.beta2**t)
            param -= self.lr * m_hat / (np.sqrt(v_hat) + self.eps)
            return
        self.t[rows] += 1
        t = self.t[rows][:, None]
        m = self.beta1 * self.m[rows] + (1 - self.beta1) * grad
        v = self.beta2 * self.v[rows] + (1 - self.beta2) * grad * grad
        self.m[rows], self.v[rows] = m, v
        param[rows] -= self.lr * (m / (1 - self.beta1**t)) / (np.sqrt(v / (1 - self.beta2**t)) + self.eps)


def train_mlp(
    X: sparse.csr_matrix,
    y: np.ndarray,
    n_classes: int,
    *,
    hidden: int = 128,
    epochs: int = 8,
    batch_size: int = 128,
    lr: float = 2e-3,
    dropout: float = 0.3,
    input_dropout: float = 0.1,
    weight_decay: float = 1e-6,
    label_smoothing: float = 0.0,
    soft_targets: np.ndarray | None = None,
    soft_weight: float = 0.0,
    seed: int = 0,
    on_epoch: Callable[[int, float, MLPParams], None] | None = None,
) -> MLPParams:
    """Minimise softmax cross-entropy with dropout; return the trained parameters.

    With ``soft_targets`` (a teacher's probabilities, [n, classes]) the target
    is ``soft_weight`` of the teacher plus the rest of the (smoothed) label:
    knowledge distillation.
    """
    rng = np.random.default_rng(seed)
    n, d = X.shape
    params = MLPParams(
        E=(rng.standard_normal((d, hidden)) * 0.05).astype(np.float32),
        b1=np.zeros(hidden, dtype=np.float32),
        W2=(rng.standard_normal((hidden, n_classes)) * np.sqrt(2.0 / hidden)).astype(np.float32),
        b2=np.zeros(n_classes, dtype=np.float32),
    )
    opt_E = _Adam(params.E.shape, lr)
    opt_b1 = _Adam(params.b1.shape, lr)
    opt_W2 = _Adam(params.W2.shape, lr)
    opt_b2 = _Adam(params.b2.shape, lr)
    X = X.tocsr().astype(np.float32)
    for epoch in range(epochs):
        order = rng.permutation(n)
        total = 0.0
        for start in range(0, n, batch_size):
            rows = order[start : start + batch_size]
            xb = X[rows]
            if input_dropout > 0:
                keep = rng.random(xb.nnz) >= input_dropout
                xb = sparse.csr_matrix(
                    (xb.data * keep / (1 - input_dropout), xb.indices, xb.indptr), shape=xb.shape
                )
            used = np.unique(xb.indices)
            xs = xb[:, used]  # only the inputs this batch touches
            pre = xs @ params.E[used] + params.b1
            hidden_out = np.maximum(pre, 0.0)
            mask = (rng.random(hidden_out.shape) >= dropout).astype(np.float32) / (1 - dropout)
            h = hidden_out * mask
            probs = softmax(h @ params.W2 + params.b2)
            yb = y[rows]
            total += -np.log(probs[np.arange(len(rows)), yb] + 1e-12).sum()
            hard = 1.0 - soft_weight
            grad_logits = probs - hard * label_smoothing / n_classes
            grad_logits[np.arange(len(rows)), yb] -= hard * (1.0 - label_smoothing)
            if soft_targets is not None and soft_weight > 0:
                grad_logits -= soft_weight * soft_targets[rows]
            grad_logits /= len(rows)
            grad_W2 = h.T @ grad_logits + weight_decay * params.W2
            grad_b2 = grad_logits.sum(axis=0)
            grad_h = (grad_logits @ params.W2.T) * mask * (pre > 0)
            grad_b1 = grad_h.sum(axis=0)
            grad_E = np.asarray(xs.T @ grad_h) + weight_decay * params.E[used]
            opt_W2.step(params.W2, grad_W2)
            opt_b2.step(params.b2, grad_b2)
            opt_b1.step(params.b1, grad_b1)
            opt_E.step(params.E, grad_E, rows=used)
        if on_epoch is not None:
            on_epoch(epoch, total / n, params)
    return params


def fit_temperature(logits: np.ndarray, y: np.ndarray) -> float:
    """The softmax temperature minimising held-out negative log-likelihood (grid, then refine)."""

    def nll(t: float) -> float:
        p = softmax(logits, t)
        return float(-np.log(p[np.arange(len(y)), y] + 1e-12).mean())

    grid = np.exp(np.linspace(np.log(0.3), np.log(5.0), 40))
    best = min(grid, key=nll)
    fine = np.linspace(best * 0.85, best * 1.15, 31)
    return float(min(fine, key=nll))
