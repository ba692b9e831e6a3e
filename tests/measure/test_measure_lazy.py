"""Measurements and waveforms of a recording read on demand: only slices around events
are read, and the numbers are the in-memory ones."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from minidet.measure import kinetics
from minidet.measure.kinetics import MeasureSettings, event_windows, gather_windows, measure_events
from minidet.measure.summary import cut_waveforms
from lazy_helpers import lazy
from minidet.recording import Recording

RATE = 50_000.0




def test_gather_windows_reads_groups_of_neighbours():
    x = np.arange(100_000, dtype=np.float64)
    starts = np.array([90_000, 5, 10, 50_000, 50_010, 99_900, 7])
    expected = x[starts[:, None] + np.arange(100)[None, :]]
    for span in (1, 150, 5_000):
        got = gather_windows(lazy(x, max_read=max(span, 100)), starts, 100, span=span)
        np.testing.assert_array_equal(got, expected)
    assert gather_windows(lazy(x, 1), np.zeros(0, np.int64), 10).shape == (0, 10)


@pytest.mark.parametrize("convolve_win", [20, 0])
def test_measurements_of_a_lazy_recording_equal_in_memory(convolve_win, monkeypatch):
    monkeypatch.setattr(kinetics, "GATHER_SPAN", 5_000)
    rng = np.random.default_rng(0)
    n = 200_000
    x = rng.normal(0, 0.5, n)
    t = np.arange(800) / RATE
    shape = np.exp(-t / 2e-3) - np.exp(-t / 2e-4)
    positions = np.array([300, 20_000, 20_300, 77_000, 150_000, n - 900])
    for p in positions:
        seg = x[p : p + shape.size]
        seg -= 20 * shape[: seg.size] / shape.max()
    settings = MeasureSettings(convolve_win=convolve_win)
    whole = measure_events(Recording(x, RATE), positions, settings)
    lz = Recording(lazy(x, max_read=20_000), RATE)
    pd.testing.assert_frame_equal(measure_events(lz, positions, settings, batch=2), whole, check_exact=True)
    starts = positions[1:-1] - settings.add_points
    np.testing.assert_array_equal(
        event_windows(lz, starts, settings.window_length, settings),
        event_windows(Recording(x, RATE), starts, settings.window_length, settings),
    )


def test_cut_waveforms_of_a_lazy_recording_equal_in_memory(monkeypatch):
    monkeypatch.setattr(kinetics, "GATHER_SPAN", 2_000)
    x = np.random.default_rng(1).normal(size=50_000)
    pos = np.array([10, 5_000, 5_100, 49_990])  # windows past both ends get NaN there
    bsl = np.array([0.1, -0.2, 0.3, 0.0])
    t0, w0 = cut_waveforms(Recording(x, RATE), pos, bsl, 200, 800)
    t1, w1 = cut_waveforms(Recording(lazy(x, max_read=2_000), RATE), pos, bsl, 200, 800)
    np.testing.assert_array_equal(t0, t1)
    np.testing.assert_array_equal(w0, w1)
    assert np.isnan(w0[0, :190]).all() and np.isfinite(w0[0, 190:]).all()
    assert np.isnan(w0[3, 210:]).all()
    # the in-memory result is the plain definition
    np.testing.assert_array_equal(w0[1], x[4_800:5_800] + 0.2)


def test_mean_waveform_is_the_mean_of_the_waveforms_bit_for_bit(monkeypatch):
    monkeypatch.setattr(kinetics, "GATHER_SPAN", 5_000)
    from minidet.measure.summary import average_waveform, mean_waveform

    rng = np.random.default_rng(3)
    x = rng.normal(size=60_000) * 7.3
    pos = np.sort(rng.choice(np.arange(-50, 60_050), 700, replace=False))
    bsl = rng.normal(size=pos.size)
    rec = Recording(x, RATE)
    t, waves = cut_waveforms(rec, pos, bsl, 200, 800)
    expected = average_waveform(waves)
    for batch in (1, 3, 256, 10_000):
        t1, mean = mean_waveform(Recording(lazy(x, max_read=5_000), RATE), pos, bsl, 200, 800, batch=batch)
        np.testing.assert_array_equal(t1, t)
        np.testing.assert_array_equal(mean, expected)
    _, empty = mean_waveform(rec, np.zeros(0, np.int64), np.zeros(0), 10, 20)
    assert empty.shape == (30,) and np.isnan(empty).all()
