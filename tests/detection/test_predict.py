"""Sliding-window prediction: grid, chunking, fast vs full, direction, resampling, errors."""

from __future__ import annotations

import h5py
import numpy as np
import pytest
import torch

from minidet.detection.predict import Prediction, PredictSettings, predict
from minidet.detection.scorer import WindowScorer
from minidet.errors import NaNTraceError, ParameterError, UnknownModelError
from minidet.examples import path as example_path
from minidet.recording import Recording

FS = 50_000.0


@pytest.fixture(scope="module")
def model():
    from minidet.model import load_model

    return load_model("gc")


@pytest.fixture(scope="module")
def public10() -> np.ndarray:
    with h5py.File(example_path("public10"), "r") as f:
        return np.asarray(f["mini_data"][:], dtype=np.float64)


@pytest.fixture(scope="module")
def short(public10) -> Recording:
    """1.2 s of the example recording with several events (0.2 to 1.4 s)."""
    return Recording(public10[10_000:70_000], FS)


def noisy_trace(seconds: float = 1.0, seed: int = 7, rate_hz: float = 10.0,
                amps: tuple[float, float] = (-20, -4)) -> np.ndarray:
    """Coloured noise (3 pA SD) with small, fast GC-like events (default -4 to -20 pA, 10 Hz)."""
    rng = np.random.default_rng(seed)
    n = int(seconds * FS)
    white = rng.standard_normal(n)
    red = np.zeros(n)
    e = rng.standard_normal(n)
    for i in range(1, n):  # AR(1) noise
        red[i] = 0.95 * red[i - 1] + e[i]
    x = 0.7 * white / white.std() + 0.7 * red / red.std()
    x *= 3.0 / x.std()
    t = np.arange(int(0.02 * FS)) / FS
    kernel = (1 - np.exp(-t / 3e-4)) * np.exp(-t / 1.5e-3)
    kernel /= kernel.max()
    onsets = rng.integers(500, n - 1000, int(rate_hz * seconds))
    spikes = np.zeros(n)
    np.add.at(spikes, onsets, rng.uniform(amps[0], amps[1], onsets.size))
    return x + np.convolve(spikes, kernel)[:n]


def bound_error(a: np.ndarray, b: np.ndarray, level: float = 0.05) -> float:
    """Largest |a - b| where either exceeds ``level`` (0 if neither does anywhere)."""
    mask = (a > level) | (b > level)
    return float(np.abs(a - b)[mask].max()) if mask.any() else 0.0


# ------------------------------------------------------------------------------ grid
def test_output_length_and_grid(short, model):
    pred = predict(short, model, mode="full")
    assert isinstance(pred, Prediction)
    n = short.n_samples
    assert len(pred) == pred.values.size == n - 600 + 1
    assert pred.values.dtype == np.float32
    assert np.asarray(pred).shape == (n - 600 + 1,)
    assert pred.n_windows == (n - 600) // 20 + 1 and pred.stride == 20 and pred.model_stride == 20
    np.testing.assert_array_equal(pred.window_starts, np.arange(pred.n_windows) * 20.0)
    # every scored window sits at its own start sample; in between: linear interpolation
    np.testing.assert_array_equal(pred.values[::20][: pred.n_windows], pred.scores)
    np.testing.assert_allclose(pred.values[10], (pred.scores[0] + pred.scores[1]) / 2, rtol=1e-6)
    # after the last scored window (< stride samples) the last score is held
    last = (pred.n_windows - 1) * 20
    assert np.all(pred.values[last:] == pred.scores[-1])
    assert pred.evaluated.all() and pred.n_evaluated == pred.n_windows
    assert 0.0 <= pred.values.min() and pred.values.max() <= 1.0
    assert pred.values.max() > 0.99  # the segment holds events
    # miniML's own layout: (n_windows - 1) * stride samples
    assert pred.miniml_layout().size == (pred.n_windows - 1) * 20


def test_scores_match_miniml_reference(shared, model):
    """Windows and scores are miniML's: compare with its prediction for public30."""
    with h5py.File(shared / "reference" / "public30.h5", "r") as f:
        x = f["mini_data"][:60_000] * 1e12
    ref = np.load(shared / "reference" / "public30_miniml.npz")["prediction"]
    pred = predict(Recording(x, FS), model, mode="full")
    # miniML stretches its 74,971 scores over 1,499,400 samples with np.linspace(0, n, L)
    n_full, length = 74_971, ref.size
    i = np.arange(0, 55_000)
    pos = i * n_full / (length - 1)
    ours = np.interp(pos, np.arange(pred.n_windows), pred.scores)
    assert np.abs(ours - ref[i]).max() < 1e-4


def test_scorer_matches_keras_outputs(shared, model):
    data = np.load(shared / "reference" / "keras_model_outputs.npz")
    for engine in ("fast", "plain"):
        scorer = WindowScorer(model.network, torch.device("cpu"), engine)
        got = scorer(data["windows_raw"])
        assert np.abs(got - data["pred_GC_lstm_model"]).max() < 1e-5, engine


# ------------------------------------------------------------------------------ chunks
def test_chunked_resampling_equals_whole_trace(short, model):
    """Resampled block by block (small blocks) == one block for the whole trace."""
    whole = predict(short, model, window_size=1200, chunk_size=10**8)
    chunked = predict(short, model, window_size=1200, chunk_size=2400)
    np.testing.assert_array_equal(chunked.scores, whole.scores)
    np.testing.assert_array_equal(chunked.values, whole.values)


def test_windows_gathered_per_batch_equal_whole_trace_windows(short, model):
    rec = Recording(short.samples[:20_000], FS)
    pred = predict(rec, model, mode="full", batch_size=37)
    windows = np.lib.stride_tricks.sliding_window_view(rec.samples, 600)[::20].astype(np.float32)
    scorer = WindowScorer(model.network, torch.device("cpu"), "fast")
    np.testing.assert_allclose(pred.scores, scorer(windows), atol=2e-6)


# ------------------------------------------------------------------------------ fast mode
@pytest.mark.parametrize("which", ["example", "noisy", "burst"])
def test_fast_mode_within_bound_of_full(which, short, model):
    traces = {"example": lambda: short.samples, "noisy": noisy_trace,
              "burst": lambda: noisy_trace(seed=3, rate_hz=30, amps=(-60, -8))}
    rec = Recording(traces[which](), FS)
    full = predict(rec, model, mode="full")
    fast = predict(rec, model)  # the default: fast mode
    assert fast.n_evaluated < 0.7 * full.n_windows
    assert bound_error(fast.scores, full.scores) < 1e-3
    assert bound_error(fast.values, full.values) < 1e-3
    # everything left to interpolation is quiet
    assert fast.scores[~fast.evaluated].max(initial=0) <= 2e-3


# ------------------------------------------------------------------------------ direction
def test_inversion_by_direction(short, model):
    neg = predict(short, model)
    flipped = Recording(-short.samples, FS)
    pos = predict(flipped, model, event_direction="positive")
    assert pos.inverted and not neg.inverted
    np.testing.assert_array_equal(pos.values, neg.values)
    # a trace of upward events scored as "negative" shows none
    wrong = predict(flipped, model, event_direction="negative")
    assert wrong.values.max() < 0.5 < neg.values.max()
    # training_direction given explicitly overrides the model file
    same = predict(short, model, event_direction="positive", training_direction="positive")
    np.testing.assert_array_equal(same.values, neg.values)


# ------------------------------------------------------------------------------ resampling
def test_window_1200_on_a_twice_slower_trace_scores_like_600(short, model):
    from scipy.signal import resample_poly

    slow = Recording(resample_poly(short.samples, 2, 1), FS)  # every event twice as long
    base = predict(short, model, mode="full")
    res = predict(slow, model, window_size=1200, mode="full")
    assert res.stride == 40 and res.model_stride == 20 and res.factor == 0.5
    assert len(res) == slow.n_samples - 1200 + 1
    n = min(base.n_windows, res.n_windows)
    a, b = base.scores[:n], res.scores[:n]
    assert bound_error(a, b, 0.5) < 0.1
    assert np.array_equal(a > 0.5, b > 0.5) or np.mean((a > 0.5) != (b > 0.5)) < 0.01
    # on the recording's grid: sample 2j of the slow trace <-> sample j of the original
    np.testing.assert_allclose(res.values[: 2 * base.n_windows * 20 : 2][: n * 20 - 20],
                               base.values[: n * 20 - 20], atol=0.1)


def test_resample_false_uses_the_network_window(short, model):
    pred = predict(short, model, resample=False, mode="full")
    assert pred.factor == 1.0 and pred.window_size == 600
    with pytest.raises(ParameterError, match="resample=False"):
        predict(short, model, window_size=1200, resample=False)


# ------------------------------------------------------------------------------ errors
def test_bad_input_errors(short, model):
    with pytest.raises(ParameterError, match=r"window_size=70000 .* longer than the recording \(60000"):
        predict(short, model, window_size=70_000)
    with pytest.raises(ParameterError, match="stride"):
        predict(short, model, stride=0)
    with pytest.raises(ParameterError, match="stride"):
        predict(short, model, stride=-5)
    with pytest.raises(ParameterError, match=r"stride must be from 1 to window_size \(600\)"):
        predict(short, model, stride=601)
    with pytest.raises(UnknownModelError, match="no-such-model"):
        predict(short, "no-such-model")
    bad = short.samples.copy()
    bad[1000:1010] = np.nan
    with pytest.raises(NaNTraceError, match="NaN"):
        predict(Recording(bad, FS), model)
    with pytest.raises(ParameterError, match="event_direction"):
        predict(short, model, event_direction="down")
    with pytest.raises(ParameterError, match="mode"):
        PredictSettings(mode="exact")
    with pytest.raises(ParameterError, match="batch_size"):
        PredictSettings(batch_size=0)
    with pytest.raises(ParameterError, match="refine_threshold"):
        PredictSettings(refine_threshold=0.2)
    with pytest.raises(ParameterError, match="device"):
        predict(short, model, device="tpu")


def test_progress_bar_runs(short, model, capsys):
    pred = predict(short, model, progress=True)
    assert pred.values.size == short.n_samples - 599
    assert "predict" in capsys.readouterr().err
