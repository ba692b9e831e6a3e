"""Prediction in bounded memory: lazy recordings, the lazy full-grid trace, the segment-wise
fast-mode walk."""

from __future__ import annotations

import h5py
import numpy as np
import pytest

from minidet.detection.predict import Prediction, PredictSettings, _plan, _WindowSource, fast_schedule, predict
from minidet.examples import path as example_path
from minidet.recording import LazyTrace, Recording

FS = 50_000.0


@pytest.fixture(scope="module")
def model():
    from minidet.model import load_model

    return load_model("gc")


@pytest.fixture(scope="module")
def samples() -> np.ndarray:
    """0.8 s of the example recording with events."""
    with h5py.File(example_path("public10"), "r") as f:
        return np.asarray(f["mini_data"][10_000:50_000], dtype=np.float64)


class CountingReader:
    """``read`` for a LazyTrace over an array, remembering every range asked for."""

    def __init__(self, x: np.ndarray) -> None:
        self.x = x
        self.ranges: list[tuple[int, int]] = []

    def __call__(self, a: int, b: int) -> np.ndarray:
        self.ranges.append((a, b))
        return self.x[a:b]


@pytest.mark.parametrize("kwargs", [{}, {"mode": "full"}, {"window_size": 700, "stride": 23}])
def test_lazy_recording_predicts_bit_identical(samples, model, kwargs):
    reader = CountingReader(samples)
    lazy = Recording(LazyTrace(samples.size, reader), FS)
    a = predict(lazy, model, batch_size=64, **kwargs)
    b = predict(Recording(samples, FS), model, batch_size=64, **kwargs)
    np.testing.assert_array_equal(a.scores, b.scores)
    np.testing.assert_array_equal(a.evaluated, b.evaluated)
    np.testing.assert_array_equal(a.values, b.values)
    assert reader.ranges  # it did read through the lazy trace


def test_lazy_windows_read_only_what_they_cover(samples, model):
    """Windows far apart are read as separate small slices, never one range spanning them;
    windows a little apart share one read."""
    reader = CountingReader(samples)
    trace = LazyTrace(samples.size, reader)
    plan = _plan(samples.size, PredictSettings(), model.metadata, 600)
    source = _WindowSource(trace, plan, 1 << 18)
    idx = np.array([0, 1, 2, 500, 1800, 1900])  # window starts 0, 20, 40, 10000, 36000, 38000
    windows = source.windows(idx)
    starts = idx * plan.model_stride
    expected = samples[starts[:, None] + np.arange(600)].astype(np.float32)
    np.testing.assert_array_equal(windows, expected)
    assert sorted(reader.ranges) == [(0, 640), (10_000, 10_600), (36_000, 38_600)]


@pytest.mark.parametrize("kwargs", [{}, {"window_size": 700, "stride": 23}])
def test_trace_slices_equal_values(samples, model, kwargs):
    pred = predict(Recording(samples, FS), model, **kwargs)
    assert "values" not in pred.__dict__  # not made until asked for
    trace = pred.trace()
    assert isinstance(trace, LazyTrace) and len(trace) == len(pred) == pred.n_values
    pieces = [trace[a:b] for a, b in ((0, 1), (0, 777), (777, 20_001), (20_001, len(trace)), (123, 124))]
    values = pred.values
    assert values.dtype == np.float32 and values.size == samples.size - pred.window_size + 1
    for (a, b), piece in zip(((0, 1), (0, 777), (777, 20_001), (20_001, len(trace)), (123, 124)), pieces):
        assert piece.dtype == np.float64
        np.testing.assert_array_equal(piece, values[a:b].astype(np.float64))
    np.testing.assert_array_equal(np.asarray(trace), values.astype(np.float64))
    np.testing.assert_array_equal(np.asarray(pred), values)
    assert pred.values is values  # cached
    np.testing.assert_array_equal(pred.values_range(5, 9000), values[5:9000])
    np.testing.assert_array_equal(pred.window_starts, np.arange(pred.n_windows) * pred.stride)


def test_values_interpolate_the_scores(model):
    """Integer and fractional strides: values at window starts are the scores, in between
    linear, after the last window the last score."""
    scores = np.array([0.0, 1.0, 0.5, 0.25], dtype=np.float32)
    pred = Prediction(scores=scores, evaluated=np.ones(4, bool), window_size=10, stride=4.0,
                      model_stride=4, factor=1.0, sampling_rate=FS, inverted=False, mode="full",
                      n_values=15)
    np.testing.assert_allclose(pred.values[[0, 2, 4, 6, 8, 12, 13, 14]],
                               [0, 0.5, 1, 0.75, 0.5, 0.25, 0.25, 0.25])
    frac = Prediction(scores=scores, evaluated=np.ones(4, bool), window_size=12, stride=10 / 3,
                      model_stride=10, factor=3.0, sampling_rate=FS, inverted=False, mode="full",
                      n_values=14, up=3, down=1)
    expected = np.interp(np.arange(14), np.arange(4) * 10 / 3, scores).astype(np.float32)
    np.testing.assert_array_equal(frac.values, expected)
    np.testing.assert_array_equal(frac.trace()[3:11], expected[3:11])


def bumps(n: int, seed: int) -> np.ndarray:
    """Score-like curve: a 1e-4 baseline with bumps of several widths and heights."""
    rng = np.random.default_rng(seed)
    s = np.full(n, 1e-4)
    x = np.arange(n)
    for c, w, h in zip(rng.integers(0, n, n // 200), rng.uniform(2, 25, n // 200), rng.uniform(1e-3, 1, n // 200)):
        s += h * np.exp(-0.5 * ((x - c) / w) ** 2)
    return np.minimum(s, 1).astype(np.float32)


@pytest.mark.parametrize("coarse,refine", [(8, 4), (4, 4), (9, 2)])
def test_fast_schedule_is_the_same_set_for_any_segment(coarse, refine):
    s = bumps(20_011, seed=coarse + refine)
    calls: list[np.ndarray] = []

    def score(idx):
        calls.append(idx)
        return s[idx]

    ref, ref_scores = fast_schedule(s.size, coarse, refine, 2e-4, 2e-3, score)
    assert ref.sum() < 0.8 * s.size and ref[::coarse].all() and ref[-1]
    # closed: both neighbours of every scored window above refine_threshold are scored
    hot = np.flatnonzero(ref & (s > 2e-3))
    assert ref[np.clip(hot - 1, 0, s.size - 1)].all() and ref[np.clip(hot + 1, 0, s.size - 1)].all()
    for segment in (1, 37, 1000, 4096, 10**6):
        calls.clear()
        progress: list[int] = []
        got, got_scores = fast_schedule(s.size, coarse, refine, 2e-4, 2e-3, score, segment=segment,
                                        done=progress.append)
        np.testing.assert_array_equal(got, ref)
        np.testing.assert_array_equal(got_scores, ref_scores)
        every = np.concatenate(calls)
        assert every.size == np.unique(every).size  # no window scored twice
        assert progress == sorted(progress) and progress[-1] == s.size


def test_long_lazy_recording_is_never_read_whole(model):
    """A trace longer than one read chunk: every read is a piece, and values come from trace()."""
    from minidet.recording import DEFAULT_CHUNK

    n = DEFAULT_CHUNK + 200_000
    rng = np.random.default_rng(1)
    x = np.cumsum(rng.standard_normal(n)) * 0.05 + rng.standard_normal(n)
    reader = CountingReader(x)
    lazy = Recording(LazyTrace(n, reader), FS)
    pred = predict(lazy, model, stride=300, mode="full", batch_size=256)
    assert max(b - a for a, b in reader.ranges) <= DEFAULT_CHUNK
    assert sum(b - a for a, b in reader.ranges) < 3 * n
    assert "values" not in pred.__dict__
    piece = pred.trace()[n - 5_000:n - 599]
    t0 = (n - 30_000) // 300 * 300  # a window start: the same windows on the tail alone
    ref = predict(Recording(x[t0:], FS), model, stride=300, mode="full", batch_size=256)
    np.testing.assert_allclose(piece, ref.values[n - 5_000 - t0:n - 599 - t0], atol=2e-6)


def test_progress_bar_counts_seconds_of_recording(samples, model, monkeypatch):
    import tqdm.auto

    seen: list[tuple[float, float]] = []

    class Bar(tqdm.auto.tqdm):
        def update(self, n=1):
            out = super().update(n)
            seen.append((self.n, self.total))
            return out

    monkeypatch.setattr(tqdm.auto, "tqdm", Bar)
    predict(Recording(samples, FS), model, progress=True)
    assert seen and all(total == 0.8 for _, total in seen)  # the total is known up front
    assert [n for n, _ in seen] == sorted(n for n, _ in seen) and seen[-1][0] == 0.8
