"""The network's recurrent head (BiLSTM, dense layers, sigmoid) run by ONNX Runtime on a CPU.

:class:`~minidet.detection.scorer.WindowScorer` runs the convolution blocks in torch and hands
their output, ``(n, steps, channels)`` float32, to this head. ONNX Runtime's LSTM kernel (MLAS
matrix products with the gate arithmetic fused) is about 1.5x faster than torch's oneDNN LSTM
for miniML's sizes (96 units, 50 steps, batches of 64-256) on one AVX2 core, and the LSTM is
two thirds of the work of scoring a window (``benchmarks/predict_speed.py`` prints the gain).

The graph is built from the network's own weights with the ``onnx`` package's helpers: no
model file, no export step, nothing pickled. Same float32 arithmetic as torch's LSTM up to the
order of the sums (scores agree within about 1e-6; a test holds them to 1e-5).

ONNX gate order is (input, output, forget, cell); torch's is (input, forget, cell, output), so
each weight matrix is cut into its four gate blocks and put together again.
"""

from __future__ import annotations

import logging

import numpy as np

__all__ = ["available", "build_head_model", "OnnxHead"]

logger = logging.getLogger(__name__)

#: torch gate blocks (i, f, g, o) in ONNX order (i, o, f, c)
_TORCH_TO_ONNX_GATES = (0, 3, 1, 2)
_OPSET = 17


def available() -> bool:
    """True when onnxruntime and onnx can be imported."""
    try:
        import onnx  # noqa: F401
        import onnxruntime  # noqa: F401
    except Exception:  # pragma: no cover - depends on the installation
        return False
    return True


def _np(t) -> np.ndarray:
    return t.detach().cpu().numpy().astype(np.float32)


def _gates(w: np.ndarray, hidden: int) -> np.ndarray:
    return np.concatenate([w[k * hidden:(k + 1) * hidden] for k in _TORCH_TO_ONNX_GATES], axis=0)


def build_head_model(lstm, dense_w, dense_b, dense_slope: float, out_w, out_b) -> bytes:
    """Serialized ONNX model: ``h`` (n, steps, features) float32 -> ``p`` (n, 1) probabilities.

    Parameters
    ----------
    lstm : torch.nn.LSTM
        One layer, bidirectional, with biases; the last hidden states of both directions are
        summed, as in :class:`~minidet.model.network.MiniMLNet`.
    dense_w, dense_b : tensors (units, dense) and (dense,)
        The hidden dense layer, weight already transposed (``x @ dense_w + dense_b``).
    dense_slope : float
        Its LeakyReLU slope.
    out_w, out_b : tensors (dense, 1) and (1,)
        The output layer, weight transposed; a sigmoid follows.
    """
    from onnx import TensorProto, checker, helper, numpy_helper

    if lstm.num_layers != 1 or not lstm.bidirectional or not lstm.bias or lstm.proj_size:
        raise ValueError("the ONNX head needs a one-layer, bidirectional nn.LSTM with biases")
    hidden = int(lstm.hidden_size)
    w, r, b = [], [], []
    for suffix in ("", "_reverse"):
        w.append(_gates(_np(getattr(lstm, "weight_ih_l0" + suffix)), hidden))
        r.append(_gates(_np(getattr(lstm, "weight_hh_l0" + suffix)), hidden))
        b.append(np.concatenate([_gates(_np(getattr(lstm, "bias_ih_l0" + suffix)), hidden),
                                 _gates(_np(getattr(lstm, "bias_hh_l0" + suffix)), hidden)]))
    initializers = [
        numpy_helper.from_array(np.stack(w), "W"),
        numpy_helper.from_array(np.stack(r), "R"),
        numpy_helper.from_array(np.stack(b), "B"),
        numpy_helper.from_array(np.array([0], dtype=np.int64), "directions_axis"),
        numpy_helper.from_array(_np(dense_w), "dense_w"),
        numpy_helper.from_array(_np(dense_b), "dense_b"),
        numpy_helper.from_array(_np(out_w), "out_w"),
        numpy_helper.from_array(_np(out_b), "out_b"),
    ]
    nodes = [
        helper.make_node("Transpose", ["h"], ["x"], perm=[1, 0, 2]),  # time-major for LSTM
        helper.make_node("LSTM", ["x", "W", "R", "B"], ["", "h_n"], direction="bidirectional",
                         hidden_size=hidden),
        helper.make_node("ReduceSum", ["h_n", "directions_axis"], ["summed"], keepdims=0),
        helper.make_node("Gemm", ["summed", "dense_w", "dense_b"], ["dense"]),
        helper.make_node("LeakyRelu", ["dense"], ["act"], alpha=float(dense_slope)),
        helper.make_node("Gemm", ["act", "out_w", "out_b"], ["logit"]),
        helper.make_node("Sigmoid", ["logit"], ["p"]),
    ]
    graph = helper.make_graph(
        nodes, "minidet_recurrent_head",
        [helper.make_tensor_value_info("h", TensorProto.FLOAT, ["n", "steps", int(lstm.input_size)])],
        [helper.make_tensor_value_info("p", TensorProto.FLOAT, ["n", 1])],
        initializers)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", _OPSET)],
                              producer_name="minidet")
    model.ir_version = 8  # readable by every onnxruntime since 1.10
    checker.check_model(model)
    return model.SerializeToString()


class OnnxHead:
    """An ONNX Runtime session for the recurrent head; call it with ``(n, steps, features)``.

    One intra-op thread: :func:`~minidet.detection.predict.predict` runs one scoring thread
    per core, and a session may be run from several threads at once (ONNX Runtime's ``run``
    is thread-safe and releases the GIL).
    """

    def __init__(self, lstm, dense_w, dense_b, dense_slope: float, out_w, out_b) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        options.log_severity_level = 3  # errors only
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self._session = ort.InferenceSession(
            build_head_model(lstm, dense_w, dense_b, dense_slope, out_w, out_b), options,
            providers=["CPUExecutionProvider"])

    def __call__(self, features: np.ndarray) -> np.ndarray:
        """Probabilities, float32 (n,), of conv features, float32 (n, steps, features)."""
        x = np.ascontiguousarray(features, dtype=np.float32)
        return self._session.run(None, {"h": x})[0][:, 0]
