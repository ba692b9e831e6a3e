"""Prediction trace -> event positions: parity with miniML, chunking, overlaps, borders."""

from __future__ import annotations

import numpy as np
import pytest

from minidet.detection.locate import (
    LocateSettings,
    Regions,
    candidate_regions,
    gradient_threshold,
    locate_events,
    merge_near_duplicates,
    smoothed_gradient,
)
from minidet.errors import ParameterError
from minidet.filters import analysis_filter
from minidet.recording import Recording

RATE = 50_000.0


def biexp_trace(events, amps=None, n=100_000, noise=0.5, tau_rise=2e-4, tau_decay=2e-3, sign=-1, seed=0):
    """Gaussian noise plus difference-of-exponentials events starting at ``events``."""
    rng = np.random.default_rng(seed)
    x = rng.normal(0.0, noise, n)
    t = np.arange(n) / RATE
    amps = [20.0] * len(events) if amps is None else amps
    for s, a in zip(events, amps):
        dt = np.clip(t - s / RATE, 0, None)
        shape = (np.exp(-dt / tau_decay) - np.exp(-dt / tau_rise)) * (dt > 0)
        x += sign * a * shape / shape.max()
    return x


def oracle_prediction(n, events, window=600, height=0.95):
    """Score 0.95 for windows (index = window start) that hold an event's rise."""
    pred = np.zeros(n - window, dtype=np.float32)
    for s in events:
        pred[max(0, s - 450) : max(0, s - 100)] = height
    return pred


@pytest.fixture(scope="module")
def public30(public30_reference):
    return public30_reference


def test_reference_locations_identical_to_miniml(public30):
    rec, ref = public30
    settings = LocateSettings(window_size=600, threshold=0.5, peak_w=5, stride=20, convolve_win=20,
                              gradient_convolve_win=40, rel_prom_cutoff=0.25, event_direction="negative")
    result = locate_events(rec, ref["prediction"], settings)
    np.testing.assert_array_equal(result.positions, ref["event_locations"])
    np.testing.assert_allclose(result.scores, ref["event_scores"], atol=1e-6)
    assert result.gradient_threshold > 0


@pytest.mark.parametrize("convolve_win", [20, 0])
def test_chunked_gradient_equals_whole_trace(convolve_win):
    x = biexp_trace([5_000, 12_000], n=30_000)
    rec = Recording(x, RATE)
    settings = LocateSettings(convolve_win=convolve_win)
    whole = smoothed_gradient(rec, settings, chunk_size=10**9)
    chunked = smoothed_gradient(rec, settings, chunk_size=4_321)
    scale = np.abs(whole).max()
    # Hann: the same numbers; Butterworth (IIR): the margin makes the difference negligible
    np.testing.assert_allclose(chunked, whole, rtol=0, atol=1e-9 * scale)


def test_gradient_matches_direct_formula():
    x = biexp_trace([5_000], n=20_000)
    rec = Recording(x, RATE)
    g = smoothed_gradient(rec, LocateSettings(convolve_win=20, gradient_convolve_win=40), chunk_size=3_000)
    filtered = -analysis_filter(x, hann_size=40, cutoff_hz=None, sampling_rate=RATE)
    direct = analysis_filter(np.gradient(filtered, 1 / RATE), hann_size=40, cutoff_hz=None, sampling_rate=RATE)
    np.testing.assert_allclose(g, direct, rtol=0, atol=1e-9 * np.abs(direct).max())


def test_synthetic_events_found_at_their_rise():
    events = [10_000, 25_000, 40_000, 61_000, 80_000]
    x = biexp_trace(events)
    rec = Recording(x, RATE)
    result = locate_events(rec, oracle_prediction(x.size, events), LocateSettings())
    assert result.positions.size == len(events)
    # steepest rise of a difference of exponentials is at its start; filtering delays it a little
    offsets = result.positions - np.asarray(events)
    assert np.all((offsets >= 0) & (offsets <= 15)), offsets
    np.testing.assert_allclose(result.scores, 0.95, atol=1e-6)


def test_positive_direction_mirrors_negative():
    events = [10_000, 30_000, 52_000]
    x = biexp_trace(events)
    pred = oracle_prediction(x.size, events)
    neg = locate_events(Recording(x, RATE), pred, LocateSettings(event_direction="negative"))
    pos = locate_events(Recording(-x, RATE), pred, LocateSettings(event_direction="positive"))
    np.testing.assert_array_equal(neg.positions, pos.positions)


def test_overlapping_events_in_one_region_are_separated():
    # second event 4 ms after the first, inside the same prediction peak
    x = biexp_trace([20_000, 20_200], amps=[20.0, 20.0], noise=0.2)
    pred = oracle_prediction(x.size, [20_000])
    pred[20_000 - 450 : 20_200 - 100] = 0.95
    result = locate_events(Recording(x, RATE), pred, LocateSettings())
    assert result.positions.size == 2
    np.testing.assert_allclose(result.positions, [20_000, 20_200], atol=15)


def test_rel_prom_cutoff_drops_a_small_second_rise():
    x = biexp_trace([20_000, 20_200], amps=[30.0, 4.0], noise=0.05)
    pred = np.zeros(x.size - 600, dtype=np.float32)
    pred[20_000 - 450 : 20_200 - 100] = 0.95
    rec = Recording(x, RATE)
    strict = locate_events(rec, pred, LocateSettings(rel_prom_cutoff=0.5))
    loose = locate_events(rec, pred, LocateSettings(rel_prom_cutoff=0.05))
    assert strict.positions.size == 1
    assert loose.positions.size == 2


def test_no_prediction_peak_gives_no_event():
    x = biexp_trace([20_000])
    result = locate_events(Recording(x, RATE), np.full(x.size - 600, 0.1, np.float32), LocateSettings())
    assert result.positions.size == 0 and result.scores.size == 0
    assert len(result.regions) == 0


def test_threshold_and_width_select_prediction_peaks():
    pred = np.zeros(20_000, dtype=np.float32)
    pred[2_000:2_300] = 0.9   # wide, high: kept
    pred[6_000:6_001] = 0.9   # one sample: after the 5-step max filter still < 5 steps wide
    pred[10_000:10_400] = 0.4  # below threshold
    regions = candidate_regions(pred, LocateSettings(peak_w=5, stride=20))
    assert len(regions) == 1
    narrow = candidate_regions(pred, LocateSettings(peak_w=1, stride=20))
    assert len(narrow) == 2
    # region: from a quarter window after the left edge to half a window after the right
    # edge, both edges of the max-filtered peak (99 samples: 51 earlier, 46 later)
    assert regions.starts[0] == pytest.approx(2_000 - 51 + 150, abs=2)
    assert regions.stops[0] == pytest.approx(2_300 + 46 + 300, abs=2)


def test_border_events_are_dropped():
    n = 100_000
    events = [400, 30_000, n - 700]
    x = biexp_trace(events, n=n)
    pred = oracle_prediction(n, events)
    # the last event's windows lie beyond the prediction trace; give it a region anyway
    result = locate_events(Recording(x, RATE), pred, LocateSettings())
    np.testing.assert_allclose(result.positions, [30_000], atol=15)


def test_gradient_threshold_uses_event_free_stretches():
    rng = np.random.default_rng(3)
    g = rng.normal(0, 1, 200_000)
    g[50_000:60_000] += 1_000.0  # inside a region: ignored
    regions = Regions(np.array([49_000]), np.array([61_000]), np.array([0.9]))
    thr = gradient_threshold(g.copy(), regions, 4.0)
    assert thr == pytest.approx(4.0, abs=0.15)
    # the input is not modified
    g2 = g.copy()
    gradient_threshold(g2, regions, 4.0)
    np.testing.assert_array_equal(g, g2)


def test_merge_near_duplicates_keeps_the_first():
    pos, sc = merge_near_duplicates(np.array([100, 103, 200, 205, 300]), np.arange(5.0), 6)
    np.testing.assert_array_equal(pos, [100, 200, 300])
    np.testing.assert_array_equal(sc, [0.0, 2.0, 4.0])


@pytest.mark.parametrize(
    "kwargs, name",
    [
        ({"window_size": 10}, "window_size"),
        ({"threshold": 1.0}, "threshold"),
        ({"threshold": 0}, "threshold"),
        ({"peak_w": 0}, "peak_w"),
        ({"stride": -1}, "stride"),
        ({"convolve_win": 2}, "convolve_win"),
        ({"convolve_win": 2.5}, "convolve_win"),
        ({"gradient_convolve_win": 1}, "gradient_convolve_win"),
        ({"filter_factor": 1.0}, "filter_factor"),
        ({"rel_prom_cutoff": 0.0}, "rel_prom_cutoff"),
        ({"event_direction": "down"}, "event_direction"),
    ],
)
def test_settings_validation_names_the_value(kwargs, name):
    with pytest.raises(ParameterError, match=name):
        LocateSettings(**kwargs)


def test_prediction_longer_than_recording_is_refused():
    rec = Recording(np.zeros(1_000), RATE)
    with pytest.raises(ParameterError, match="prediction"):
        locate_events(rec, np.zeros(2_000), LocateSettings())


def test_chunked_peaks_prominences_and_widths_equal_scipy():
    from scipy import signal

    from minidet.detection.locate import _FilteredPrediction, _half_crossings, _peaks_and_gaps, _stack_prominences

    rng = np.random.default_rng(7)
    for t in range(150):
        x = rng.random(int(rng.integers(5, 300)))
        if t % 3 == 0:
            x = np.round(x * 4) / 4  # ties and plateaus
        if t % 5 == 0:
            x = np.repeat(x, 3)
        filt = _FilteredPrediction(x, 1, 0)  # a max filter of one sample: x itself
        for height in (0.5, 0.1, 0.3):
            expected, props = signal.find_peaks(x, height=height)
            for chunk in (1, 4, 1_000):
                peaks, heights, gaps = _peaks_and_gaps(filt, height, chunk)
                np.testing.assert_array_equal(peaks, expected)
                np.testing.assert_array_equal(heights, props["peak_heights"])
                if peaks.size == 0:
                    continue
                prom = _stack_prominences(heights, gaps)
                np.testing.assert_array_equal(prom, signal.peak_prominences(x, peaks)[0])
                bases = (np.zeros(peaks.size, np.intp), np.full(peaks.size, x.size - 1, np.intp))
                _, _, left, right = signal.peak_widths(x, peaks, 0.5, (prom, *bases))
                mine = _half_crossings(filt, peaks, heights, prom, chunk)
                np.testing.assert_array_equal(mine[0], left)
                np.testing.assert_array_equal(mine[1], right)


def test_candidate_regions_are_linear_in_time():
    # many equal plateaus: scipy's prominence walk would be quadratic here
    n = 3_000_000
    pred = np.zeros(n, np.float32)
    for s in range(1_000, n - 1_000, 2_000):
        pred[s : s + 300] = 0.99
    import time

    t0 = time.perf_counter()
    regions = candidate_regions(pred, LocateSettings())
    assert len(regions) == (n - 2_000) // 2_000
    assert time.perf_counter() - t0 < 5.0


def test_a_dip_below_the_threshold_parts_peaks_when_the_prominence_is_given():
    """gc-robust after a compound event: a long plateau near 1, a dip to 0.69, then a clear event's
    peak at 0.9998. At threshold 0.999 with prominence 0.5 the dip (below the threshold) parts
    them; miniML's rule (prominence = threshold) keeps only the higher peak, as before."""
    n = 60_000
    pred = np.full(n, 0.01)
    pred[10_000:30_000] = 1.0           # the plateau
    pred[30_000:30_400] = 0.69          # the dip: 0.31 below the next peak
    pred[30_400:31_400] = 0.9998        # the event's peak
    given = candidate_regions(pred, LocateSettings(threshold=0.999, peak_prominence=0.5, stride=20))
    assert given.starts.size == 2 and given.starts[1] > 30_000
    assert given.stops[1] > 31_400
    # a dip that stays above the threshold does not part them
    high = pred.copy()
    high[30_000:30_400] = 0.9995
    assert candidate_regions(high, LocateSettings(threshold=0.999, peak_prominence=0.5, stride=20)).starts.size == 1
    # miniML's rule is unchanged: at 0.95 the second peak (prominence 0.31) is not its own
    assert candidate_regions(pred, LocateSettings(threshold=0.95, stride=20)).starts.size == 1
    assert candidate_regions(pred, LocateSettings(threshold=0.95, peak_prominence=0.5, stride=20)).starts.size == 2
