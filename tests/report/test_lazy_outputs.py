"""Result files of a lazily read recording and a lazily computed prediction (issue 11).

The writers must give the same files as for in-memory data while reading the trace and the
prediction only piece by piece (no read of the whole trace), and a failure half-way must
leave no new file behind.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import h5py
import numpy as np
import pytest
from report_fakes import make_result

from minidet import decimate, report
from minidet.errors import EmptyTraceError
from minidet.recording import LazyTrace, Recording
from minidet.report import nwb as nwb_module
from minidet.report import plots, writers

PIECE = 4096  # small pieces, so that "never whole" is visible on a 20 000-sample trace


class Reads:
    """A LazyTrace over ``x`` that records every range asked for."""

    def __init__(self, x: np.ndarray, fail_after: int | None = None) -> None:
        self.x = x
        self.ranges: list[tuple[int, int]] = []
        self.fail_after = fail_after
        self.trace = LazyTrace(x.size, self.read, "test trace")

    def read(self, a: int, b: int) -> np.ndarray:
        if self.fail_after is not None and b > self.fail_after:
            raise EmptyTraceError(f"the file ends at sample {self.fail_after}")
        self.ranges.append((a, b))
        return self.x[a:b]

    @property
    def longest(self) -> int:
        return max((b - a for a, b in self.ranges), default=0)


@pytest.fixture
def small_pieces(monkeypatch) -> None:
    monkeypatch.setattr(writers, "TRACE_CHUNK", PIECE)
    monkeypatch.setattr(decimate, "BUILD_CHUNK", PIECE)
    monkeypatch.setattr(nwb_module, "STREAM_CHUNK", 1024)
    monkeypatch.setattr(nwb_module, "STREAM_BUFFER", PIECE)


def lazy_twin(result, fail_after: int | None = None):
    samples = Reads(np.asarray(result.recording.samples), fail_after)
    prediction = Reads(np.asarray(result.prediction))
    rec = dataclasses.replace(result.recording, samples=samples.trace)
    assert rec.is_lazy
    return dataclasses.replace(result, recording=rec, prediction=prediction.trace), samples, prediction


def test_lazy_result_files_match_in_memory(tmp_path: Path, small_pieces) -> None:
    eager = make_result()
    lazy, samples, prediction = lazy_twin(eager)
    a = report.write_results(eager, tmp_path / "eager", nwb=True, save_prediction=True)
    b = report.write_results(lazy, tmp_path / "lazy", nwb=True, save_prediction=True)
    assert sorted(a) == sorted(b)
    n = eager.recording.n_samples
    # read in pieces only: nothing asked for the whole trace or the whole prediction
    assert 0 < samples.longest <= PIECE < n
    assert 0 < prediction.longest <= PIECE < len(eager.prediction)
    for name in (report.EVENTS_CSV, report.SUMMARY_CSV):
        assert a[name].read_bytes() == b[name].read_bytes()
    with h5py.File(a[report.RESULTS_H5]) as ha, h5py.File(b[report.RESULTS_H5]) as hb:
        for key in ("prediction", "waveforms", "average_event", "events/sample", "events/amplitude"):
            np.testing.assert_array_equal(ha[key][()], hb[key][()])
        assert hb["prediction"].chunks is not None and hb["prediction"].compression == "gzip"
    with h5py.File(a[report.NWB_FILE]) as ha, h5py.File(b[report.NWB_FILE]) as hb:
        series = "acquisition/mini_data/data"
        np.testing.assert_array_equal(ha[series][()], hb[series][()])
        assert hb[series].shape == (n,)
        pred = "processing/synaptic_events/event_probability/data"
        np.testing.assert_array_equal(ha[pred][()], hb[pred][()])
    np.testing.assert_allclose(hb_read := report.read_results(tmp_path / "lazy").prediction,
                               eager.prediction.astype(np.float32))
    assert isinstance(hb_read, np.ndarray)  # short: in memory by default
    assert report.to_json(report.result_to_dict(eager)) == report.to_json(report.result_to_dict(lazy))


def test_lazy_plots_draw_the_same_data(tmp_path: Path, small_pieces) -> None:
    eager = make_result()
    lazy, samples, prediction = lazy_twin(eager)
    for y_eager, y_lazy in ((eager.recording.samples, lazy.recording.samples), (eager.prediction, lazy.prediction)):
        te, ve = plots.minmax_decimate(y_eager, 300, 10_000.0)
        tl, vl = plots.minmax_decimate(y_lazy, 300, 10_000.0)
        np.testing.assert_array_equal(te, tl)
        np.testing.assert_array_equal(ve, vl)
    pos = np.array([19_999, 5, 12_000, 5, 4096, 4095])
    np.testing.assert_array_equal(plots.values_at(lazy.recording.samples, pos, chunk=4096),
                                  eager.recording.samples[pos])
    samples.ranges.clear()
    written = report.write_results(lazy, tmp_path, plots=True)
    assert {"trace.png", "events.png", "histograms.png", "report.html"} <= set(written)
    assert samples.longest <= PIECE


def test_minmax_decimate_skips_nan_like_nanmin() -> None:
    y = np.arange(100.0)
    y[10:20] = np.nan
    _, v = plots.minmax_decimate(y, 10, 1.0)
    assert np.isnan(v[2:4]).all()  # a bin of NaN only
    y[25] = np.nan
    _, v = plots.minmax_decimate(y, 10, 1.0)
    assert v[4:6].tolist() == [20.0, 29.0]


def test_long_stored_prediction_is_read_on_demand(tmp_path: Path, monkeypatch) -> None:
    result = make_result()
    report.write_results(result, tmp_path, save_prediction=True)
    monkeypatch.setattr(writers, "PREDICTION_IN_MEMORY", 1000)
    stored = report.read_results(tmp_path)
    assert isinstance(stored.prediction, LazyTrace)
    expected = result.prediction.astype(np.float32).astype(np.float64)
    np.testing.assert_array_equal(stored.prediction[100:5000], expected[100:5000])
    (tmp_path / "results.h5").unlink()  # e.g. a recovery copy cleared after saving
    np.testing.assert_array_equal(stored.prediction[-10:], expected[-10:])
    report.write_results(result, tmp_path, save_prediction=True)
    loaded = report.read_results(tmp_path, load_prediction=True).prediction
    assert isinstance(loaded, np.ndarray)
    np.testing.assert_array_equal(loaded, expected)


def _listing(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def test_recording_that_ends_early_leaves_no_file(tmp_path: Path, small_pieces) -> None:
    lazy, _, _ = lazy_twin(make_result(), fail_after=15_000)
    out = tmp_path / "out"
    with pytest.raises(EmptyTraceError, match="ends at sample 15000"):
        report.write_results(lazy, out, plots=True, nwb=True, save_prediction=True)
    assert list(out.iterdir()) == []  # nothing new, no staging folder left


def test_failure_half_way_keeps_the_old_results(tmp_path: Path, monkeypatch) -> None:
    report.write_results(make_result(), tmp_path, plots=True)
    before = _listing(tmp_path)

    def broken(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(plots, "plot_histograms", broken)
    with pytest.raises(OSError, match="No space"):
        report.write_results(make_result(events=[3000, 9000]), tmp_path, plots=True)
    assert _listing(tmp_path) == before
