"""Average event, decay time constant, overlap rule and statistics."""

from __future__ import annotations

import math

import h5py
import numpy as np
import pandas as pd
import pytest

from minidet.errors import ParameterError
from minidet.measure import MeasureSettings, measure_events
from minidet.measure.summary import (
    STAT_MEASURES,
    average_mask,
    average_waveform,
    cut_waveforms,
    describe,
    fit_decay_tau,
    non_overlapping,
    summarize,
)
from minidet.recording import Recording

RATE = 50_000.0


def test_non_overlapping_rule():
    w = 600
    # gaps: 1000 (> 1.5 w), 400 (< 0.5 w? no: 400 > 300), 950, 200
    pos = np.array([1_000, 2_000, 2_400, 3_350, 3_550])
    mask = non_overlapping(pos, w)
    # 0: next 1000 > 900 -> free; 1: next 400 < 900 -> overlapping; 2: prev 400 > 300,
    # next 950 > 900 -> free; 3: next 200 -> overlapping; 4: prev 200 < 300 -> overlapping
    np.testing.assert_array_equal(mask, [True, False, True, False, False])
    assert non_overlapping(np.array([5]), w).tolist() == [True]
    assert non_overlapping(np.zeros(0, np.int64), w).size == 0


def test_average_mask_uses_all_when_every_event_overlaps():
    pos = np.array([1_000, 1_100, 1_200])
    assert not non_overlapping(pos, 600).any()
    assert average_mask(pos, 600).all()


def test_cut_waveforms_subtracts_baseline_and_pads_with_nan():
    rec = Recording(np.arange(1_000, dtype=float), RATE)
    t, w = cut_waveforms(rec, np.array([5, 500, 995]), np.array([1.0, 2.0, 3.0]), pre=10, post=20)
    assert w.shape == (3, 30)
    assert t[0] == pytest.approx(-10 / RATE) and t[10] == 0
    np.testing.assert_allclose(w[1], np.arange(490, 520) - 2.0)
    assert np.isnan(w[0, :5]).all() and np.isfinite(w[0, 5:]).all()
    assert np.isnan(w[2, 15:]).all()
    with pytest.raises(ParameterError):
        cut_waveforms(rec, np.array([5]), np.array([0.0]), pre=-1, post=10)


def test_average_waveform_ignores_nan_and_handles_no_event():
    w = np.array([[1.0, np.nan], [3.0, 4.0]])
    np.testing.assert_allclose(average_waveform(w), [2.0, 4.0])
    assert np.isnan(average_waveform(np.zeros((0, 4)))).all()


@pytest.mark.parametrize("tau", [1e-3, 3e-3, 8e-3])
def test_fit_decay_tau_recovers_a_known_time_constant(tau):
    n, start = 1_000, 200
    t = (np.arange(n) - start) / RATE
    dt = np.clip(t, 0, None)
    shape = (np.exp(-dt / tau) - np.exp(-dt / 5e-5)) * (t > 0)
    avg = -12.0 * shape / shape.max() + 0.01 * np.random.default_rng(1).normal(size=n)
    fitted = fit_decay_tau(avg, RATE, window_size=600, n_events=20, event_sign=-1)
    assert fitted == pytest.approx(tau, rel=0.03)


def test_fit_decay_tau_is_nan_without_room_to_fit():
    avg = np.zeros(1_000)
    avg[-50] = -5.0  # peak near the end
    assert math.isnan(fit_decay_tau(avg, RATE, 600, 10, event_sign=-1))
    assert math.isnan(fit_decay_tau(np.full(1_000, np.nan), RATE, 600, 10))


def test_describe():
    d = describe(np.array([1.0, 2.0, 3.0, np.nan]))
    assert d["mean"] == 2.0 and d["median"] == 2.0
    assert d["sd"] == pytest.approx(1.0)
    assert d["cv"] == pytest.approx(0.5)
    one = describe(np.array([4.0]))
    assert one["mean"] == 4.0 and math.isnan(one["sd"]) and math.isnan(one["cv"])
    assert all(math.isnan(v) for v in describe(np.zeros(0)).values())


def test_summarize_counts_frequency_and_intervals():
    events = pd.DataFrame(
        {
            "peak_time_s": [0.1, 0.3, 0.6],
            "amplitude": [-10.0, -20.0, -30.0],
            "rise_time_s": [1e-4, 2e-4, np.nan],
            "half_decay_s": [1e-3] * 3,
            "half_width_s": [2e-3] * 3,
            "charge": [-0.01] * 3,
            "score": [0.9, 0.8, 0.7],
        }
    )
    s = summarize(events, 10.0, tau_decay_s=0.002, n_average=3)
    assert s["count"] == 3 and s["frequency_hz"] == pytest.approx(0.3) and s["duration_s"] == 10.0
    assert s["amplitude_mean"] == -20.0 and s["amplitude_cv"] == pytest.approx(0.5)
    assert s["interval_s_mean"] == pytest.approx(0.25) and s["interval_s_median"] == pytest.approx(0.25)
    assert s["rise_time_s_mean"] == pytest.approx(1.5e-4)
    assert s["tau_decay_s"] == 0.002 and s["n_average"] == 3
    for m in STAT_MEASURES:
        for stat in ("mean", "median", "sd", "cv"):
            assert f"{m}_{stat}" in s
    empty = summarize(events.iloc[:0], 10.0)
    assert empty["count"] == 0 and empty["frequency_hz"] == 0 and math.isnan(empty["amplitude_mean"])


def test_reference_average_event_tau_matches_miniml(shared):
    with h5py.File(shared / "reference" / "public30.h5") as f:
        x = f["mini_data"][:] * 1e12
    ref = dict(np.load(shared / "reference" / "public30_miniml.npz"))
    rec = Recording(x, RATE)
    loc = ref["event_locations"]
    table = measure_events(rec, loc, MeasureSettings())
    _, waves = cut_waveforms(rec, loc, table["baseline"].to_numpy(), pre=200, post=800)
    mask = average_mask(loc, 600)
    tau = fit_decay_tau(average_waveform(waves[mask]), RATE, 600, int(mask.sum()), event_sign=-1)
    assert tau == pytest.approx(float(ref["avg_tau_decay"]), rel=1e-6)


def test_fit_decay_gives_the_curve_it_fitted():
    from minidet.measure.summary import fit_decay

    t = np.arange(1_500) / RATE
    avg = np.where(t >= 0.002, -10.0 * np.exp(-(t - 0.002) / 3e-3), 0.0) - 0.5
    fit = fit_decay(avg, RATE, window_size=600, n_events=20, event_sign=-1)
    assert fit.tau_s == pytest.approx(3e-3, rel=0.02) == fit_decay_tau(avg, RATE, 600, 20, event_sign=-1)
    curve = fit.curve(avg.size, RATE)
    assert curve.size == avg.size - fit.start and np.max(np.abs(curve - avg[fit.start:])) < 0.1
    assert fit_decay(np.full(1_000, np.nan), RATE, 600, 10) is None


def test_histogram_and_cumulative_distribution() -> None:
    from minidet.measure.summary import cumulative, histogram

    values = np.r_[np.arange(100.0), np.nan, np.inf]
    counts, edges = histogram(values)
    assert counts.sum() == 100 and len(counts) == 10 and edges[0] == 0 and edges[-1] == 99
    assert [len(histogram(np.arange(float(n)))[0]) for n in (4, 2000)] == [5, 40]  # sqrt(n), 5..40 bins
    counts, edges = histogram(np.full(3, 2.0))  # one value: a unit-wide range around it
    assert counts.sum() == 3 and edges[0] == 1.0 and edges[-1] == 3.0
    assert histogram(np.zeros(0))[0].size == 0
    v, f = cumulative(values)
    assert v.size == 100 and f[0] == 0.01 and f[-1] == 1.0 and np.all(np.diff(v) >= 0)
    v, f = cumulative(np.arange(5000.0), max_points=1000)
    assert v.size == 1000 and v[0] == 0 and v[-1] == 4999 and f[-1] == 1.0
