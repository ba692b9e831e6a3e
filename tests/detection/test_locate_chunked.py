"""Localisation in bounded memory: chunked walks give the whole-trace results exactly."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import signal
from scipy.ndimage import maximum_filter1d

from minidet.detection import locate
from minidet.detection.locate import (
    LocateSettings,
    Regions,
    candidate_regions,
    gradient_threshold,
    locate_events,
    merge_near_duplicates,
    smoothed_gradient,
    steepest_rise_positions,
)
from minidet.detection.order_stats import exact_median
from minidet.errors import ParameterError
from lazy_helpers import lazy
from minidet.recording import LazyTrace, Recording




def scipy_regions(pred: np.ndarray, settings: LocateSettings) -> Regions:
    """The whole-trace computation, straight from scipy (miniML's)."""
    factor = locate._samples_per_step(pred.size, settings.stride_samples)
    size = max(1, int(5 * factor))
    filtered = maximum_filter1d(np.asarray(pred, np.float64), size=size, origin=max(-(size // 2), -2))
    _, p = signal.find_peaks(filtered, height=settings.threshold, prominence=settings.threshold,
                             width=settings.peak_w * factor)
    starts = (p["left_ips"] + settings.window_size / 4).astype(np.int64)
    late = starts > p["right_ips"]
    starts[late] = (p["right_ips"][late] - p["widths"][late] / 4).astype(np.int64)
    stops = (p["right_ips"] + settings.window_size / 2).astype(np.int64)
    return Regions(starts, stops, p["peak_heights"])


def assert_regions_equal(a: Regions, b: Regions) -> None:
    for key in ("starts", "stops", "scores"):
        np.testing.assert_array_equal(getattr(a, key), getattr(b, key))


def random_prediction(rng: np.random.Generator, n: int) -> np.ndarray:
    """Plateaus, ties, ramps and noise: what makes local maxima and widths tricky."""
    steps = rng.integers(1, 40, n // 5)
    levels = rng.choice([0.0, 0.2, 0.5, 0.55, 0.7, 0.9, 0.9, 1.0], steps.size)
    x = np.repeat(levels, steps)[:n]
    x = np.pad(x, (0, n - x.size))
    x = x + np.where(rng.random(n) < 0.3, np.round(rng.normal(0, 0.05, n), 2), 0.0)
    return np.clip(x, 0, 1).astype(np.float32)


@pytest.mark.parametrize("seed", range(6))
def test_candidate_regions_chunked_equal_scipy(seed):
    rng = np.random.default_rng(seed)
    pred = random_prediction(rng, int(rng.integers(500, 4_000)))
    settings = LocateSettings(window_size=60, threshold=0.5, peak_w=int(rng.integers(1, 4)), stride=2)
    ref = scipy_regions(pred, settings)
    assert len(ref) > 0
    for chunk in (1, 2, 7, 64, 999, 10**6):
        assert_regions_equal(candidate_regions(pred, settings, chunk_size=chunk), ref)
        assert_regions_equal(candidate_regions(lazy(pred), settings, chunk_size=chunk), ref)


def test_candidate_regions_plateaus_across_borders_and_ends():
    pred = np.zeros(3_000, np.float32)
    pred[:400] = 0.9          # touches the start: reflect edge of the max filter, no peak
    pred[1_000:1_600] = 0.8   # a wide plateau split by many chunk borders
    pred[1_300] = 0.95        # a higher sample inside it
    pred[2_500:] = 0.9        # touches the end: no peak
    settings = LocateSettings(window_size=60, stride=2, peak_w=2)
    ref = scipy_regions(pred, settings)
    for chunk in (3, 50, 299, 5_000):
        assert_regions_equal(candidate_regions(lazy(pred), settings, chunk_size=chunk), ref)


def test_wide_peaks_widths_grow_their_window():
    # a plateau far wider than the first scan window around a peak
    pred = np.zeros(40_000, np.float32)
    pred[5_000:30_000] = 0.9
    pred[17_000] = 0.99
    settings = LocateSettings(window_size=600, stride=20)
    assert_regions_equal(candidate_regions(lazy(pred), settings, chunk_size=1_000), scipy_regions(pred, settings))


@pytest.mark.parametrize("n", [1, 2, 3, 10, 11, 1_000, 1_001])
def test_exact_median_equals_numpy(n):
    rng = np.random.default_rng(n)
    for values in (rng.normal(size=n), np.round(rng.normal(size=n), 1), np.full(n, 3.0)):
        def chunks(step=7):
            return (values[i : i + step] for i in range(0, n, step))

        expected = np.median(values)
        assert exact_median(chunks, n) == expected
        assert exact_median(chunks, n, values[::3]) == expected
        # a sample that misleads the bracket: it is widened until it holds the median
        assert exact_median(chunks, n, values[::3] + 100) == expected
        assert exact_median(chunks, n, np.sort(values)[: max(1, n // 10)]) == expected


def test_exact_median_refuses_a_wrong_count():
    with pytest.raises(ParameterError):
        exact_median(lambda: iter([np.ones(3)]), 4)
    with pytest.raises(ParameterError):
        exact_median(lambda: iter([]), 0)


@pytest.fixture(scope="module")
def public30(public30_reference):
    rec, ref = public30_reference
    return rec, ref["prediction"]


SETTINGS = LocateSettings(window_size=600, threshold=0.5, peak_w=5, stride=20, convolve_win=20,
                          gradient_convolve_win=40, rel_prom_cutoff=0.25, event_direction="negative")


def whole_trace_locate(rec: Recording, pred: np.ndarray, settings: LocateSettings):
    """Every step on whole arrays: scipy's peaks, the whole derivative, np.median."""
    regions = scipy_regions(pred, settings)
    gradient = smoothed_gradient(rec, settings)
    thr = gradient_threshold(gradient, regions, settings.mad_multiplier)
    pos, sc = steepest_rise_positions(gradient, regions, thr, settings, n_prediction=pred.size)
    pos, sc = merge_near_duplicates(pos, sc, settings.window_size / 100)
    return regions, thr, pos, sc


def test_lazy_chunked_locate_equals_whole_trace(public30):
    rec, pred = public30
    regions, thr, pos, sc = whole_trace_locate(rec, pred, SETTINGS)
    assert pos.size > 50
    lazy_rec = Recording(lazy(rec.samples, max_read=(1 << 20) + 4_096), rec.sampling_rate)
    for chunk in (997, 40_000, 1 << 20):
        res = locate_events(lazy_rec, lazy(pred), SETTINGS, chunk_size=chunk)
        assert res.gradient_threshold == thr
        assert_regions_equal(res.regions, regions)
        np.testing.assert_array_equal(res.positions, pos)
        np.testing.assert_array_equal(res.scores, sc)
        assert res.gradient is None


def test_gradient_threshold_streamed_equals_whole(public30):
    rec, pred = public30
    regions = scipy_regions(pred, SETTINGS)
    block = 100_003
    whole = smoothed_gradient(rec, SETTINGS, chunk_size=block)
    expected = gradient_threshold(whole, regions, 4.0)
    lazy_grad = smoothed_gradient(Recording(lazy(rec.samples), rec.sampling_rate), SETTINGS,
                                  chunk_size=block, lazy=True)
    assert isinstance(lazy_grad, LazyTrace)
    for chunk in (4_321, 65_536):
        assert gradient_threshold(lazy_grad, regions, 4.0, chunk_size=chunk) == expected
        assert gradient_threshold(whole, regions, 4.0, chunk_size=chunk) == expected
    # no region at all, and regions covering everything (then all samples count)
    none = Regions(np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0))
    assert gradient_threshold(lazy_grad, none, 4.0) == gradient_threshold(whole, none, 4.0)
    full = Regions(np.array([0]), np.array([whole.size]), np.array([0.9]))
    assert gradient_threshold(lazy_grad, full, 4.0) == gradient_threshold(whole, full, 4.0)


def test_overlapping_regions_count_samples_as_np_split_does():
    rng = np.random.default_rng(5)
    g = rng.normal(size=5_000)
    # stop of one region beyond the start of the next, and a late start: stretches overlap
    regions = Regions(np.array([1_000, 1_200, 3_000]), np.array([2_500, 1_900, 3_100]), np.ones(3))
    assert gradient_threshold(lazy(g), regions, 4.0, chunk_size=333) == gradient_threshold(g, regions, 4.0)


def test_lazy_gradient_slices_are_the_array_bit_for_bit():
    rng = np.random.default_rng(2)
    rec = Recording(rng.normal(size=50_000).cumsum(), 20_000.0)
    for settings in (SETTINGS, LocateSettings(convolve_win=0)):
        whole = smoothed_gradient(rec, settings, chunk_size=6_000)
        lz = smoothed_gradient(rec, settings, chunk_size=6_000, lazy=True)
        for a, b in [(0, 50_000), (5_990, 6_010), (17_000, 31_000), (49_999, 50_000)]:
            np.testing.assert_array_equal(lz[a:b], whole[a:b])


def test_keep_gradient_returns_the_array(public30):
    rec, pred = public30
    res = locate_events(rec, pred, SETTINGS, keep_gradient=True)
    np.testing.assert_array_equal(res.gradient, smoothed_gradient(rec, SETTINGS))


def test_chunk_size_is_validated(public30):
    rec, pred = public30
    with pytest.raises(ParameterError, match="chunk_size"):
        locate_events(rec, pred, SETTINGS, chunk_size=0)
    with pytest.raises(ParameterError, match="chunk_size"):
        candidate_regions(pred, SETTINGS, chunk_size=1.5)


def test_threshold_median_and_mad_in_one_pass_or_exact_after_a_miss(public30, monkeypatch):
    rec, pred = public30
    regions = scipy_regions(pred, SETTINGS)
    whole = smoothed_gradient(rec, SETTINGS)
    expected = gradient_threshold(whole, regions, 4.0)
    calls = []
    real = locate.exact_median
    monkeypatch.setattr(locate, "exact_median", lambda *a, **k: calls.append(1) or real(*a, **k))
    # a fair sample: median and MAD both come from the one pass
    assert gradient_threshold(whole, regions, 4.0, chunk_size=50_000) == expected
    assert calls == []
    # misleading samples: the brackets miss, extra passes still give the exact values
    real_sample = locate._threshold_sample
    for shift, scale in ((1e6, 1.0), (0.0, 50.0), (0.0, 0.01)):
        monkeypatch.setattr(locate, "_threshold_sample",
                            lambda *a, s=shift, k=scale, **kw: real_sample(*a, **kw) * k + s)
        assert gradient_threshold(whole, regions, 4.0, chunk_size=50_000) == expected
    assert len(calls) >= 3
