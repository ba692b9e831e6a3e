"""The fast engine in ONNX Runtime: the same scores as torch, for every model."""

from __future__ import annotations

import threading

import numpy as np
import pytest
import torch

from minidet.detection import onnx_net
from minidet.detection.scorer import WindowScorer
from minidet.errors import ParameterError
from minidet.model import load_model
from minidet.model.network import MiniMLNet, minmax_scale, noise_scale
from minidet.model.zoo import available_models

CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def windows(shared) -> np.ndarray:
    return np.load(shared / "reference" / "keras_model_outputs.npz")["windows_raw"].astype(np.float32)


def test_onnxruntime_is_what_the_fast_engine_uses():
    assert onnx_net.available()
    scorer = WindowScorer(load_model("gc").network, CPU)
    assert scorer.engine == "fast" and scorer.backend == "onnxruntime"
    assert WindowScorer(load_model("gc").network, CPU, backend="torch").backend == "torch"
    assert WindowScorer(load_model("gc").network, CPU, engine="plain").backend is None


@pytest.mark.parametrize("name", available_models())
def test_every_bundled_model_scores_as_in_torch(name, windows):
    model = load_model(name)
    network = model.network
    minmax = model.metadata.input_scaling == "minmax"
    if not minmax:  # a noise-scaled model gets windows scaled by a noise SD, the scorer does not min-max
        windows = noise_scale(windows, 1.4826 * np.median(np.abs(windows - np.median(windows))))
    ort = WindowScorer(network, CPU, minmax=minmax)(windows)
    plain = WindowScorer(network, CPU, engine="plain", minmax=minmax)(windows)
    torch_lstm = WindowScorer(network, CPU, backend="torch", minmax=minmax)(windows)
    assert ort.shape == plain.shape == (windows.shape[0],)
    assert ort.dtype == np.float32
    assert np.abs(ort - plain).max() < 1e-5
    assert np.abs(ort - torch_lstm).max() < 1e-5
    # and the scores are not all alike: the comparison means something
    assert plain.max() - plain.min() > 0.5


def test_other_network_sizes_and_random_weights():
    """Gate order and weight layout: a bug there would pass on a model that scores everything
    near 0 or 1, so use random weights, other sizes and one window length that is not 600."""
    torch.manual_seed(3)
    net = MiniMLNet(window_size=240, lstm_units=17, dense_units=9).eval()
    for p in net.parameters():
        p.data.normal_(0, 0.3)
    for block in net.blocks:
        block.bn.running_mean.normal_(0, 0.2)
        block.bn.running_var.uniform_(0.5, 2.0)
    x = np.random.default_rng(0).standard_normal((50, 240)).astype(np.float32).cumsum(1)
    with torch.no_grad():  # centre and spread the logits so that the probabilities differ
        z = net.logits(minmax_scale(torch.from_numpy(x)))
        scale = 2.0 / z.std()
        net.out.weight.mul_(scale)
        net.out.bias.mul_(scale).sub_(z.mean() * scale)
    ort = WindowScorer(net, CPU)(x)
    plain = WindowScorer(net, CPU, engine="plain")(x)
    assert np.abs(ort - plain).max() < 1e-5
    assert plain.std() > 0.01


def test_single_window_and_empty_batch():
    scorer = WindowScorer(load_model("gc").network, CPU)
    x = np.random.default_rng(1).standard_normal((1, 600)).astype(np.float32)
    assert scorer(x).shape == (1,)
    assert scorer(np.zeros((0, 600), np.float32)).shape == (0,)


def test_one_session_from_two_threads_gives_the_same_scores(windows):
    scorer = WindowScorer(load_model("gc").network, CPU)
    expected = scorer(windows)
    out = {}

    def run(k: int) -> None:
        out[k] = np.concatenate([scorer(windows[i:i + 16]) for i in range(0, windows.shape[0], 16)])

    threads = [threading.Thread(target=run, args=(k,)) for k in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for k in range(2):
        np.testing.assert_allclose(out[k], expected, atol=1e-6)


def test_missing_onnxruntime_falls_back_to_torch_or_says_so(monkeypatch, windows):
    monkeypatch.setattr(onnx_net, "available", lambda: False)
    network = load_model("gc").network
    scorer = WindowScorer(network, CPU)
    assert scorer.backend == "torch"
    assert np.abs(scorer(windows) - WindowScorer(network, CPU, engine="plain")(windows)).max() < 1e-5
    with pytest.raises(ParameterError, match="onnxruntime"):
        WindowScorer(network, CPU, backend="onnxruntime")


def test_bad_backend_name():
    with pytest.raises(ParameterError, match="backend must be"):
        WindowScorer(load_model("gc").network, CPU, backend="tensorflow")


def test_graph_needs_a_bidirectional_one_layer_lstm():
    net = MiniMLNet().eval()
    net.lstm = torch.nn.LSTM(80, 96, batch_first=True)
    with pytest.raises(ValueError, match="bidirectional"):
        onnx_net.build_model(net)


def test_flat_and_constant_windows_score_as_in_torch():
    """Min-max scaling happens inside the graph: a flat window (span 0) must not give NaN."""
    network = load_model("gc").network
    x = np.zeros((3, 600), np.float32)
    x[1] = 5.0
    x[2, 300:] = -1.0
    ort = WindowScorer(network, CPU)(x)
    plain = WindowScorer(network, CPU, engine="plain")(x)
    assert np.isfinite(ort).all()
    assert np.abs(ort - plain).max() < 1e-5
