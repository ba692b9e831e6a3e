"""Pre-processing: known answers on sines, ramps and sweeps; validation; replay."""

from __future__ import annotations

import numpy as np
import pytest

from minidet import preprocess
from minidet.errors import EmptyTraceError, ParameterError
from minidet.recording import Recording

RATE = 10_000.0


def sines(freqs_amps, duration_s=2.0, rate=RATE, offset=0.0, slope=0.0, sweep_starts=None) -> Recording:
    t = np.arange(int(duration_s * rate)) / rate
    x = offset + slope * t
    for f, a in freqs_amps:
        x = x + a * np.sin(2 * np.pi * f * t)
    return Recording(x, rate, unit="pA", sweep_starts=sweep_starts if sweep_starts is not None else [0])


def amplitude_at(x: np.ndarray, f: float, rate: float = RATE) -> float:
    """Amplitude of the sine at ``f`` (projection on sin/cos over whole periods)."""
    t = np.arange(x.size) / rate
    return float(np.hypot(2 * np.mean(x * np.sin(2 * np.pi * f * t)), 2 * np.mean(x * np.cos(2 * np.pi * f * t))))


def middle(x: np.ndarray) -> np.ndarray:
    """Whole seconds away from the ends (filter edge effects)."""
    return x[int(0.5 * RATE):int(1.5 * RATE)]


def test_detrend_removes_line_per_sweep_and_keeps_the_input() -> None:
    rec = sines([(100, 1.0)], offset=5.0, slope=3.0, sweep_starts=[0, 10_000])
    rec.samples[10_000:] += 40.0  # second sweep on another level
    before = rec.samples.copy()
    out = preprocess.detrend(rec)
    assert np.array_equal(rec.samples, before)  # pure: the input is untouched
    for a, b in out.sweep_bounds():
        seg = out.samples[a:b]
        assert abs(seg.mean()) < 1e-9
        assert abs(np.polyfit(np.arange(seg.size), seg, 1)[0]) < 1e-5  # no slope left (the sine's is tiny)
    assert amplitude_at(out.samples[:10_000], 100) == pytest.approx(1.0, abs=0.01)
    const = preprocess.detrend(rec, kind="constant")
    assert abs(const.samples[:10_000].mean()) < 1e-9
    assert out.metadata["preprocessing"] == [{"step": "detrend", "kind": "linear"}]


def test_highpass_and_lowpass_separate_a_slow_and_a_fast_sine() -> None:
    rec = sines([(1.0, 10.0), (200.0, 1.0)])
    hp = preprocess.highpass(rec, cutoff_hz=20)
    assert amplitude_at(middle(hp.samples), 200) == pytest.approx(1.0, rel=0.01)
    assert amplitude_at(middle(hp.samples), 1.0) < 0.01  # 10 -> < 0.01
    lp = preprocess.lowpass(rec, cutoff_hz=20, order=6)
    assert amplitude_at(middle(lp.samples), 200) < 1e-3
    assert amplitude_at(middle(lp.samples), 1.0) == pytest.approx(10.0, rel=0.01)
    # zero phase: the slow sine is not shifted
    t = np.arange(rec.n_samples) / RATE
    assert np.max(np.abs(middle(lp.samples) - middle(10 * np.sin(2 * np.pi * t)))) < 0.05
    assert lp.metadata["preprocessing"] == [{"step": "lowpass", "cutoff_hz": 20.0, "order": 6}]
    assert lp.unit == "pA" and lp.sampling_rate == RATE and lp.n_samples == rec.n_samples


def test_notch_removes_line_noise_and_its_harmonics_only() -> None:
    rec = sines([(50, 2.0), (100, 1.0), (150, 1.0), (73, 1.0)])
    one = preprocess.notch(rec, frequency_hz=50)
    assert amplitude_at(middle(one.samples), 50) < 0.02
    assert amplitude_at(middle(one.samples), 100) == pytest.approx(1.0, rel=0.02)
    three = preprocess.notch(rec, frequency_hz=50, harmonics=3)
    for f in (50, 100, 150):
        assert amplitude_at(middle(three.samples), f) < 0.02
    assert amplitude_at(middle(three.samples), 73) == pytest.approx(1.0, rel=0.02)
    # harmonics at or above Nyquist are skipped, not an error
    preprocess.notch(rec, frequency_hz=2000, harmonics=4)


def test_filters_do_not_leak_across_sweeps() -> None:
    x = np.zeros(20_000)
    x[10_000:] = 100.0  # a step exactly at the sweep join
    rec = Recording(x, RATE, sweep_starts=[0, 10_000])
    out = preprocess.lowpass(rec, cutoff_hz=50)
    assert np.allclose(out.samples[:10_000], 0.0) and np.allclose(out.samples[10_000:], 100.0)
    whole = preprocess.lowpass(Recording(x, RATE), cutoff_hz=50)
    assert not np.allclose(whole.samples[:10_000], 0.0)  # without the sweep it would ring
    # a very short sweep is filtered with a shorter pad instead of failing
    preprocess.notch(Recording(np.random.default_rng(0).normal(size=30), RATE, sweep_starts=[0, 10, 28]), 50)


def test_cut_removes_a_stretch_and_adjusts_sweep_starts() -> None:
    x = np.arange(30_000, dtype=float)
    rec = Recording(x, RATE, sweep_starts=[0, 10_000, 20_000])
    out = preprocess.cut(rec, start_s=0.5, stop_s=1.5)  # samples 5000..14999, across a sweep start
    assert out.n_samples == 20_000
    assert out.samples[4999] == 4999 and out.samples[5000] == 15_000
    assert out.sweep_starts.tolist() == [0, 5_000, 10_000]  # join at 5000, old 20000 -> 10000
    assert out.metadata["preprocessing"][-1] == {"step": "cut", "start_s": 0.5, "stop_s": 1.5,
                                                  "start_sample": 5000, "stop_sample": 15000}
    start = preprocess.cut(rec, 0, 1.0)  # from the start: no join
    assert start.sweep_starts.tolist() == [0, 10_000] and start.samples[0] == 10_000
    end = preprocess.cut(rec, 2.5, 99)  # to (beyond) the end
    assert end.n_samples == 25_000 and end.sweep_starts.tolist() == [0, 10_000, 20_000]
    inner = preprocess.cut(Recording(x, RATE), 1.0, 1.2)
    assert inner.sweep_starts.tolist() == [0, 10_000] and inner.n_samples == 28_000


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda r: preprocess.highpass(r, 0), "cutoff_hz"),
        (lambda r: preprocess.highpass(r, 5000), "Nyquist"),
        (lambda r: preprocess.lowpass(r, "10"), "cutoff_hz must be a number"),
        (lambda r: preprocess.lowpass(r, 10, order=0), "order"),
        (lambda r: preprocess.lowpass(r, 10, order=2.0), "order"),
        (lambda r: preprocess.notch(r, 50, harmonics=0), "harmonics"),
        (lambda r: preprocess.notch(r, 50, quality=-1), "quality"),
        (lambda r: preprocess.notch(r, float("nan")), "finite"),
        (lambda r: preprocess.detrend(r, kind="quadratic"), "kind"),
        (lambda r: preprocess.cut(r, -1, 1), "start_s"),
        (lambda r: preprocess.cut(r, 3, 4), "start_s"),
        (lambda r: preprocess.cut(r, 1, 1), "stop_s"),
        (lambda r: preprocess.cut(r, 1, 1.00001), "holds no sample"),
        (lambda r: preprocess.highpass(r.samples, 10), "Recording"),
    ],
)
def test_bad_parameters_name_the_value(call, message) -> None:
    with pytest.raises(ParameterError, match=message):
        call(sines([(10, 1)]))


def test_cutting_everything_is_an_empty_trace() -> None:
    with pytest.raises(EmptyTraceError):
        preprocess.cut(sines([(10, 1)]), 0, 2)


def test_apply_steps_replays_the_recorded_steps() -> None:
    rec = sines([(1.0, 10.0), (50, 2.0), (200.0, 1.0)], offset=3, slope=1)
    done = preprocess.cut(preprocess.notch(preprocess.highpass(preprocess.detrend(rec), 0.5), 50, harmonics=2), 0.2, 0.4)
    replayed = preprocess.apply_steps(rec, done.metadata["preprocessing"])
    assert np.array_equal(replayed.samples, done.samples)
    assert replayed.sweep_starts.tolist() == done.sweep_starts.tolist()
    assert replayed.metadata["preprocessing"] == done.metadata["preprocessing"]
    assert "preprocessing" not in rec.metadata
    with pytest.raises(ParameterError, match="unknown step 'smooth'"):
        preprocess.apply_steps(rec, [{"step": "smooth"}])
    with pytest.raises(ParameterError, match=r"unknown argument\(s\) \['cutoff'\]"):
        preprocess.apply_steps(rec, [{"step": "highpass", "cutoff": 1}])
    with pytest.raises(ParameterError, match="missing"):
        preprocess.apply_steps(rec, [{"step": "cut", "start_s": 1}])
