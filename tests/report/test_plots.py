"""Figures and the HTML report are written, show what they should, and survive odd inputs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("matplotlib")

from minidet import report  # noqa: E402
from minidet.report.html import write_html_report  # noqa: E402
from minidet.report.plots import inter_event_intervals_s, minmax_decimate, write_plots  # noqa: E402
from report_fakes import make_result  # noqa: E402

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def test_minmax_decimate_keeps_extremes() -> None:
    y = np.zeros(100_000)
    y[12_345] = -50.0  # a single-sample spike must survive decimation
    y[77_000] = 30.0
    t, d = minmax_decimate(y, 1000, rate=1000.0)
    assert d.size == t.size <= 2 * 1000 + 2
    assert d.min() == -50.0 and d.max() == 30.0
    assert np.all(np.diff(t) >= 0) and t[0] >= 0 and t[-1] <= 100.0
    short = np.arange(10.0)
    t2, d2 = minmax_decimate(short, 1000, rate=10.0)
    np.testing.assert_array_equal(d2, short)


def test_inter_event_intervals_skip_sweep_boundaries() -> None:
    import dataclasses

    result = make_result()  # events at 2000, 5000, 8000, 12000, 16000 samples, 10 kHz
    np.testing.assert_allclose(inter_event_intervals_s(result), [0.3, 0.3, 0.4, 0.4])
    rec = dataclasses.replace(result.recording, sweep_starts=np.array([0, 10000]))
    np.testing.assert_allclose(inter_event_intervals_s(dataclasses.replace(result, recording=rec)), [0.3, 0.3, 0.4])


def test_pngs_and_report_are_written(tmp_path: Path) -> None:
    result = make_result().exclude([1])
    images = write_plots(result, tmp_path)
    assert sorted(images) == ["events.png", "histograms.png", "trace.png"]
    for path in images.values():
        data = path.read_bytes()
        assert data[:8] == PNG_MAGIC and len(data) > 10_000
    page = write_html_report(result, tmp_path / "report.html", images=images, files=["events.csv"])
    text = page.read_text()
    assert text.count("data:image/png;base64,") == 3
    assert "cell1" in text and "window_size" in text and 'href="events.csv"' in text
    assert "Excluded by hand" in text


def test_plots_without_events_or_prediction(tmp_path: Path) -> None:
    result = make_result(events=[], with_prediction=False)
    written = report.write_results(result, tmp_path, plots=True)
    assert {"trace.png", "events.png", "histograms.png", "report.html"} <= set(written)
    assert "No events were found" in (tmp_path / "report.html").read_text()


def test_long_trace_plot_is_quick(tmp_path: Path) -> None:
    import time

    from minidet.report.plots import plot_trace
    from report_fakes import FakeResult

    base = make_result()
    rec = base.recording.with_samples(np.tile(base.recording.samples, 150))  # 5 min at 10 kHz
    result = FakeResult(recording=rec, events_all=base.events_all, prediction=np.zeros(rec.n_samples))
    start = time.perf_counter()
    plot_trace(result, tmp_path / "trace.png")
    assert time.perf_counter() - start < 10
    assert (tmp_path / "trace.png").stat().st_size < 400_000


def test_trace_plot_marks_sweep_boundaries(tmp_path: Path, monkeypatch) -> None:
    """A multi-sweep recording: one dotted line where each sweep joins the next, in both panels."""
    import matplotlib.axes

    from minidet.recording import Recording
    from minidet.report.plots import plot_trace, sweep_boundaries_s
    from report_fakes import FakeResult

    base = make_result()
    n = base.recording.n_samples
    rec = Recording(np.tile(base.recording.samples, 3), base.recording.sampling_rate, unit="pA",
                    sweep_starts=[0, n, 2 * n])
    np.testing.assert_allclose(sweep_boundaries_s(rec), [n / rec.sampling_rate, 2 * n / rec.sampling_rate])
    assert sweep_boundaries_s(base.recording).size == 0
    drawn = []
    original = matplotlib.axes.Axes.axvline
    monkeypatch.setattr(matplotlib.axes.Axes, "axvline",
                        lambda self, x=0, *a, **k: (drawn.append(x), original(self, x, *a, **k))[1])
    result = FakeResult(recording=rec, events_all=base.events_all, prediction=np.zeros(rec.n_samples))
    plot_trace(result, tmp_path / "trace.png")
    assert sorted(drawn) == pytest.approx(sorted(list(sweep_boundaries_s(rec)) * 2))
    assert (tmp_path / "trace.png").stat().st_size > 10_000
