"""The app's min/max envelopes on lazily read traces (issue 11: hour-long recordings).

The pyramid is built in one pass over pieces; afterwards a zoomed-out request reads nothing
from the trace and a zoomed-in one only the samples it shows.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from minidet import decimate
from minidet.decimate import Envelope, chunked_minmax, minmax_bins
from minidet.recording import LazyTrace
from minidet.report import writers
from minidet.web.analysis import AnalysisSession

from train_synthetic import synthetic_recording, write_h5_recording  # tests/train (see conftest)

N = 300_007


class Reads:
    def __init__(self, x: np.ndarray) -> None:
        self.x = x
        self.ranges: list[tuple[int, int]] = []
        self.trace = LazyTrace(x.size, self.read, "test trace")

    def read(self, a: int, b: int) -> np.ndarray:
        self.ranges.append((a, b))
        return self.x[a:b]

    def longest(self) -> int:
        return max((b - a for a, b in self.ranges), default=0)


@pytest.fixture(scope="module")
def x() -> np.ndarray:
    x = np.random.default_rng(3).normal(size=N)
    x[123_457] = 40.0
    return x


def test_chunked_minmax_equals_minmax_bins(x: np.ndarray) -> None:
    for width in (1, 7, 32, 1000, N + 5):
        lo, hi = chunked_minmax(Reads(x).trace, width, chunk=10_000)
        elo, ehi = minmax_bins(x, width)
        assert np.array_equal(lo, elo) and np.array_equal(hi, ehi)


@pytest.mark.parametrize("start, stop, pixels", [(0, N, 1400), (12_345, 250_000, 900), (777, 20_000, 1200),
                                                 (N - 1000, N, 333), (100, 2_000, 1400), (5, 9, 1)])
def test_lazy_envelope_answers_like_the_array(x: np.ndarray, monkeypatch, start: int, stop: int,
                                              pixels: int) -> None:
    monkeypatch.setattr(decimate, "BUILD_CHUNK", 16_384)
    reads = Reads(x)
    lazy = Envelope(reads.trace)
    lazy.levels()
    assert reads.longest() <= 16_384  # built piece by piece
    reads.ranges.clear()
    a, b = Envelope(x).slice(start, stop, pixels), lazy.slice(start, stop, pixels)
    assert (a.x0, a.bin_width) == (b.x0, b.bin_width)
    assert np.array_equal(a.lo, b.lo) and np.array_equal(a.hi, b.hi)
    span = stop - start
    if span / pixels >= lazy.factor * decimate.MIN_VALUES_PER_BIN:
        assert reads.ranges == []  # answered from the pyramid alone
    else:
        assert reads.longest() <= span + 2 * b.bin_width and len(reads.ranges) == 1


def test_app_opens_a_result_with_a_long_prediction_lazily(tmp_path: Path, monkeypatch) -> None:
    rec, _ = synthetic_recording(duration_s=2, n_events=10, amplitude=15, noise_sd=1.5)
    data = tmp_path / "data"
    data.mkdir()
    write_h5_recording(data / "cell.h5", rec)
    session = AnalysisSession([data], out_dir=data / "results", state_dir=tmp_path / "state")
    session.open(str(data / "cell.h5"))
    session.analyze(method="deconvolution", settings={"window_size": 600})
    assert session.wait(60)["state"] == "done"
    n = session.recording.n_samples
    prediction = np.abs(np.sin(np.arange(n - 600) / 900.0))  # any trace will do
    session._set_result(dataclasses.replace(session.result, prediction=prediction))
    session.save()

    monkeypatch.setattr(writers, "PREDICTION_IN_MEMORY", 1000)  # treat it as an hour-long one
    fresh = AnalysisSession([data], state_dir=tmp_path / "state")
    state = fresh.open(str(data / "results" / "cell"))
    assert state["result"]["has_prediction"]
    assert isinstance(fresh.result.prediction, LazyTrace)
    expected = Envelope(prediction.astype(np.float32).astype(np.float64))
    for start, stop, pixels in ((0, n, 800), (5_000, 9_000, 1000), (100, 60_000, 500)):
        got = fresh.trace(start, stop, pixels)["prediction"]
        want = fresh._slice_dict(expected.slice(start, min(stop, expected.n), pixels), 4)
        assert got["x0"] == want["x0"] and got["bin"] == want["bin"]
        assert np.array_equal(got["lo"], want["lo"]) and np.array_equal(got.get("hi", got["lo"]),
                                                                        want.get("hi", want["lo"]))
    assert fresh.save(force=True)["folder"]  # written again from the lazy prediction
    saved = writers.read_results(data / "results" / "cell", load_prediction=True).prediction
    np.testing.assert_array_equal(saved, prediction.astype(np.float32))
