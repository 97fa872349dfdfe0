"""Build the scoring model's ONNX graph from trained weights.

One graph, two heads, sparse inputs padded to the batch's longest row:

    action_idx int64 [N, K], action_mask uint8 [N, K] (1 for an input, 0 for padding)
        -> per member m: sum_k E_m[idx] * mask + b1_m -> ReLU -> @ W2_m + b2_m -> softmax
        -> mean over members -> softmax(log(mean) / T) -> action_probs float [N, C]
    risk_idx int64 [N, R], risk_val float [N, R]
        -> sum_r w[idx] * val + b -> sigmoid -> risk float [N]

The input layers are stored as int8 with a scale per column (a quarter of
float32; the scores move by about 1e-3).
Everything serving needs besides the weights (input vocabularies, labels,
temperature, templates) rides in the file's metadata, so the one ONNX file is
the whole model.
"""

from __future__ import annotations

import json

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = 17


def _const(name: str, value: np.ndarray) -> onnx.TensorProto:
    return numpy_helper.from_array(value, name=name)


def quantize_columns(E: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Symmetric int8 per column: ``E ~ Eq * scale``."""
    scale = np.abs(E).max(axis=0) / 127.0
    scale[scale == 0] = 1.0
    Eq = np.clip(np.round(E / scale), -127, 127).astype(np.int8)
    return Eq, scale.astype(np.float32)


def build(
    *,
    members: list,
    temperature: float,
    risk_w: np.ndarray,
    risk_b: float,
    metadata: dict[str, object],
) -> onnx.ModelProto:
    """The ONNX model: an ensemble of action MLPs (probabilities averaged) and a risk head.

    The members' input layers are concatenated into one int8 matrix with a
    scale per column, so the ensemble costs one gather.
    """
    hidden = members[0].E.shape[1]
    n_members = len(members)
    E = np.concatenate([m.E for m in members], axis=1)
    Eq, scale = quantize_columns(E)
    initializers = [
        _const("Eq", Eq),
        _const("E_scale", scale),
        _const("b1", np.concatenate([m.b1 for m in members]).astype(np.float32)),
        _const("W2", np.stack([m.W2 for m in members]).astype(np.float32)),  # [M, H, C]
        _const("b2", np.stack([m.b2 for m in members]).astype(np.float32)),  # [M, C]
        _const("inv_temperature", np.array(1.0 / temperature, dtype=np.float32)),
        _const("tiny", np.array(1e-12, dtype=np.float32)),
        _const("risk_w", risk_w.astype(np.float32).reshape(-1, 1)),
        _const("risk_b", np.array([risk_b], dtype=np.float32)),
        _const("axis1", np.array([1], dtype=np.int64)),
        _const("flat", np.array([-1], dtype=np.int64)),
        _const("split_shape", np.array([0, n_members, hidden], dtype=np.int64)),
    ]
    nodes = [
        # action heads: one embedding bag for all members, then each member's layer
        # The bag is an integer [1, K] @ [K, H] per point (mask @ int8 rows):
        # faster in onnxruntime than casting the gathered rows
        # to float and reducing them.
        helper.make_node("Gather", ["Eq", "action_idx"], ["rows8"]),
        helper.make_node("Unsqueeze", ["action_mask", "axis1"], ["mask_row"]),
        helper.make_node("MatMulInteger", ["mask_row", "rows8"], ["bag_i3"]),
        helper.make_node("Squeeze", ["bag_i3", "axis1"], ["bag_i"]),
        helper.make_node("Cast", ["bag_i"], ["bag_q"], to=TensorProto.FLOAT),
        helper.make_node("Mul", ["bag_q", "E_scale"], ["bag"]),
        helper.make_node("Add", ["bag", "b1"], ["pre"]),
        helper.make_node("Relu", ["pre"], ["hidden"]),
        helper.make_node("Reshape", ["hidden", "split_shape"], ["hidden_m"]),  # [N, M, H]
        helper.make_node("Transpose", ["hidden_m"], ["hidden_t"], perm=[1, 0, 2]),  # [M, N, H]
        helper.make_node("MatMul", ["hidden_t", "W2"], ["logits0"]),  # [M, N, C]
        helper.make_node("Unsqueeze", ["b2", "axis1"], ["b2_3"]),  # [M, 1, C]
        helper.make_node("Add", ["logits0", "b2_3"], ["logits"]),
        helper.make_node("Softmax", ["logits"], ["member_probs"], axis=2),
        helper.make_node("ReduceMean", ["member_probs"], ["mean_probs"], axes=[0], keepdims=0),
        # Calibrate the ensemble's average, not the members: softmax(log(p) / T)
        # is monotonic in p, so the ranking is the ensemble's.
        helper.make_node("Add", ["mean_probs", "tiny"], ["mean_probs_safe"]),
        helper.make_node("Log", ["mean_probs_safe"], ["log_probs"]),
        helper.make_node("Mul", ["log_probs", "inv_temperature"], ["scaled"]),
        helper.make_node("Softmax", ["scaled"], ["action_probs"], axis=1),
        # risk head: logistic regression over its own inputs
        helper.make_node("Gather", ["risk_w", "risk_idx"], ["risk_rows"]),  # [N, R, 1]
        helper.make_node("Unsqueeze", ["risk_val", "axis1"], ["risk_val_row"]),  # [N, 1, R]
        helper.make_node("MatMul", ["risk_val_row", "risk_rows"], ["risk_sum3"]),  # [N, 1, 1]
        helper.make_node("Reshape", ["risk_sum3", "flat"], ["risk_sum"]),
        helper.make_node("Add", ["risk_sum", "risk_b"], ["risk_logit"]),
        helper.make_node("Sigmoid", ["risk_logit"], ["risk"]),
    ]
    n_classes = members[0].W2.shape[1]
    graph = helper.make_graph(
        nodes,
        "coachflow_scorer",
        inputs=[
            helper.make_tensor_value_info("action_idx", TensorProto.INT64, ["N", "K"]),
            helper.make_tensor_value_info("action_mask", TensorProto.UINT8, ["N", "K"]),
            helper.make_tensor_value_info("risk_idx", TensorProto.INT64, ["N", "R"]),
            helper.make_tensor_value_info("risk_val", TensorProto.FLOAT, ["N", "R"]),
        ],
        outputs=[
            helper.make_tensor_value_info("action_probs", TensorProto.FLOAT, ["N", n_classes]),
            helper.make_tensor_value_info("risk", TensorProto.FLOAT, ["N"]),
        ],
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


def reference(
    members: list, temperature: float, risk_w: np.ndarray, risk_b: float, X, R
) -> tuple[np.ndarray, np.ndarray]:
    """The same function in numpy (with the graph's int8 weights), for tests."""
    from models.mlp import softmax

    Eq, scale = quantize_columns(np.concatenate([m.E for m in members], axis=1))
    E = Eq.astype(np.float32) * scale
    hidden_size = members[0].E.shape[1]
    probs = []
    for i, member in enumerate(members):
        block = E[:, i * hidden_size : (i + 1) * hidden_size]
        hidden = np.maximum(X @ block + member.b1, 0.0)
        probs.append(softmax(hidden @ member.W2 + member.b2))
    risk = 1.0 / (1.0 + np.exp(-(R @ risk_w + risk_b)))
    return softmax(np.log(np.mean(probs, axis=0) + 1e-12), temperature), np.asarray(risk).ravel()
