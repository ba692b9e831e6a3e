"""The recording's noise SD (what noise-scaled models divide by) and the noise scaling itself."""

from __future__ import annotations

import numpy as np
import pytest

from minidet.errors import ParameterError
from minidet.model.network import NOISE_SCALE_SDS, noise_scale
from minidet.noise import NOISE_SD_SEGMENTS, estimate_noise_sd, recording_noise_sd
from minidet.recording import Recording
from minidet.simulation import SimulationSettings, simulate


def _sd(x: np.ndarray, detrend: int = 2401) -> float:
    return estimate_noise_sd(lambda a, b: x[a:b], x.size, detrend)


def test_white_noise_sd_is_found():
    x = np.random.default_rng(0).normal(0.0, 2.5, 500_000)
    assert _sd(x) == pytest.approx(2.5, rel=0.02)


def test_events_drift_and_offset_barely_move_it():
    """Events (5/s, 10x the noise), a slow drift and an offset: the robust SD stays near the
    noise SD, where the plain SD of the trace is far off."""
    settings = SimulationSettings(duration_s=20.0, sampling_rate=50_000.0, event_rate_hz=5.0, snr_db=20.0,
                                  noise_spectrum="white", noise_sd=1.0, drift_sd=5.0)
    rec, _ = simulate(settings, seed=4)
    x = np.asarray(rec.samples) + 300.0
    assert np.std(x) > 1.5
    assert _sd(x) == pytest.approx(1.0, rel=0.06)


def test_recording_noise_sd_uses_four_windows_and_rejects_a_flat_trace():
    rng = np.random.default_rng(1)
    x = rng.normal(0, 0.7, 200_000)
    rec = Recording(x, 50_000.0)
    assert recording_noise_sd(rec, 600) == _sd(x, 4 * 600 + 1)
    flat = Recording(np.full(20_000, 3.0), 50_000.0)
    with pytest.raises(ParameterError, match="has no noise"):
        recording_noise_sd(flat, 600)


def test_long_traces_read_a_bounded_number_of_segments():
    rng = np.random.default_rng(2)
    x = rng.normal(0, 1.3, 3_000_000)
    reads = []

    def read(a, b):
        reads.append((a, b))
        return x[a:b]

    sd = estimate_noise_sd(read, x.size, 601)
    assert len(reads) == NOISE_SD_SEGMENTS
    assert sum(b - a for a, b in reads) == NOISE_SD_SEGMENTS * 20 * 601 < x.size
    assert sd == pytest.approx(1.3, rel=0.03)
    # the same trace read whole from memory gives nearly the same answer
    assert _sd(x[:500_000], 601) == pytest.approx(sd, rel=0.03)


def test_nan_samples_are_left_out_and_too_few_samples_fail():
    x = np.random.default_rng(3).normal(0, 1.0, 100_000)
    x[1000:5000] = np.nan
    assert np.isfinite(_sd(x))
    with pytest.raises(ParameterError, match="fewer than"):
        _sd(np.array([1.0, np.nan, 2.0]), 601)
    with pytest.raises(ParameterError, match="detrend_samples"):
        _sd(x, 1)


def test_noise_scale_keeps_the_size_relative_to_the_noise():
    w = np.zeros((3, 600))
    w[0, 400:] = -2.0  # a 2-SD step (in the last third: the median stays 0)
    w[1, 400:] = -20.0  # a 20-SD step
    w[2] = 7.0  # flat at an offset
    out = noise_scale(w, 1.0)
    assert out.dtype == np.float32 and out.shape == w.shape
    # the median is subtracted: the flat window is all zeros, the steps start at 0
    assert np.all(out[2] == 0) and out[0, 0] == 0 and out[1, 0] == 0
    assert out[0, -1] == pytest.approx(np.arcsinh(-2.0 / NOISE_SCALE_SDS) / 2, rel=1e-6)
    assert out[1, -1] == pytest.approx(np.arcsinh(-20.0 / NOISE_SCALE_SDS) / 2, rel=1e-6)
    # min-max scaling would make the two steps identical; here the bigger one is bigger
    assert out[1, -1] < out[0, -1] < 0
    # one SD per window, and the unit does not matter once the SD is in the same unit
    per_window = noise_scale(w * 1e-12, np.array([1e-12, 1e-12, 1e-12]))
    np.testing.assert_allclose(per_window, out, atol=1e-6)
    for bad in (0.0, -1.0, np.nan, np.array([1.0, 0.0, 1.0])):
        with pytest.raises(ParameterError, match="noise_sd"):
            noise_scale(w, bad)
