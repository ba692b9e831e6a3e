"""Classic detectors on simulated recordings with known events; registry and settings."""

from dataclasses import replace

import numpy as np
import pytest

from minidet.classic import METHODS, detect_events, make_settings
from minidet.classic import base, template
from minidet.classic.deconvolution import deconvolve
from minidet.errors import ParameterError
from minidet.evaluation import evaluate
from minidet.simulation import SimulationSettings, simulate

GC = SimulationSettings(duration_s=10.0, sampling_rate=50_000, snr_db=13.0, event_rate_hz=8.0)


@pytest.fixture(scope="module")
def gc_recording():
    return simulate(GC, seed=21)


@pytest.mark.parametrize("method", sorted(METHODS))
def test_finds_gc_events(gc_recording, method):
    rec, truth = gc_recording
    found = detect_events(rec, method)
    result = evaluate(truth, found)
    assert result.f1 > 0.9, (method, result.to_text())
    # steepest-rise positions lie just after the true onset
    assert -0.1e-3 < result.timing_median_s < 0.3e-3
    assert found.positions.dtype == np.int64 and np.all(np.diff(found.positions) > 0)
    assert found.criterion.shape == found.positions.shape
    assert np.all(found.criterion >= found.threshold - 1e-9)


@pytest.mark.parametrize("method", sorted(METHODS))
def test_positive_events_at_another_rate(method):
    s = SimulationSettings(duration_s=8.0, sampling_rate=10_000, snr_db=14.0, event_direction="positive",
                           rise_tau_s=0.5e-3, decay_tau_s=4e-3, event_rate_hz=5.0, noise_spectrum="white")
    rec, truth = simulate(s, seed=3)
    kinetics = {"rise_tau_s": 0.5e-3, "decay_tau_s": 4e-3} if method != "threshold" else {}
    found = detect_events(rec, method, {"event_direction": "positive", **kinetics})
    assert evaluate(truth, found).f1 > 0.8
    wrong = detect_events(rec, method, {"event_direction": "negative", **kinetics})
    assert evaluate(truth, wrong).true_positives < 0.2 * truth.n_events


def test_registry_and_settings_errors(gc_recording):
    rec, _ = gc_recording
    assert sorted(METHODS) == ["deconvolution", "template", "threshold"]
    for cls in METHODS.values():
        cls.Settings()  # defaults are valid
    with pytest.raises(ParameterError, match="unknown classic method"):
        detect_events(rec, "wavelet")
    with pytest.raises(ParameterError, match="unknown setting"):
        make_settings("template", {"thresh": 3})
    with pytest.raises(ParameterError, match="longer than rise"):
        make_settings("deconvolution", rise_tau_s=2e-3, decay_tau_s=1e-3)
    with pytest.raises(ParameterError, match="threshold"):
        make_settings("template", threshold=-1)
    with pytest.raises(ParameterError, match="event_direction"):
        make_settings("threshold", event_direction="up")
    with pytest.raises(ParameterError, match="Nyquist"):
        detect_events(rec, "threshold", lowpass_hz=40_000.0)
    s = make_settings("template", {"threshold": 3.0}, min_distance_s=1e-3)
    assert s.threshold == 3.0 and s.min_distance_s == 1e-3
    assert make_settings("template", s).threshold == 3.0


def test_transients_raise_false_positives_of_threshold_detector():
    rec, truth = simulate(replace(GC, duration_s=6.0, transient_rate_hz=3.0, transient_kinds=("spike",)), seed=5)
    result = evaluate(truth, detect_events(rec, "threshold"))
    assert result.false_positives_on_transients > 0


def test_blockwise_equals_whole(monkeypatch):
    rng = np.random.default_rng(0)
    x = rng.normal(size=30_000)
    kernel = rng.normal(size=51)
    whole = np.convolve(x, kernel, mode="same")
    pieces = base.blockwise(x, lambda s: np.convolve(s, kernel, mode="same"), margin=60, block=4096)
    np.testing.assert_allclose(pieces[100:-100], whole[100:-100], atol=1e-10)
    e = template.template_from_kinetics(0.3e-3, 2e-3, 20_000, baseline=3)
    full = template.clements_bekkers(x, e)
    monkeypatch.setattr(template, "_BLOCK", 5_000)
    blocked = template.clements_bekkers(x, e)
    for a, b in zip(full, blocked):
        np.testing.assert_allclose(a, b, rtol=1e-7, atol=1e-9, equal_nan=True)


def test_deconvolution_turns_events_into_peaks_at_onsets():
    fs = 20_000
    e = template.template_from_kinetics(0.3e-3, 2e-3, fs)
    x = np.zeros(40_000)
    onsets = [5_000, 5_300, 20_000]
    for o in onsets:
        x[o:o + e.size] += e
    d = deconvolve(x, e, fs, lowpass_hz=1000.0, highpass_hz=1.0)
    peaks = template.find_events(d, 0.5 * d.max(), 10)
    assert peaks.tolist() == onsets


def test_gaussian_fit_ignores_the_event_tail():
    rng = np.random.default_rng(2)
    v = np.concatenate([rng.normal(0.5, 2.0, 200_000), rng.uniform(8, 40, 5_000)])
    mu, sd = base.gaussian_fit_sd(v)
    assert mu == pytest.approx(0.5, abs=0.05) and sd == pytest.approx(2.0, rel=0.03)


def test_detect_pipeline_with_classic_method(gc_recording):
    from minidet.detection.pipeline import EVENT_COLUMNS, detect

    rec, truth = gc_recording
    result = detect(rec, method="deconvolution")
    assert tuple(result.events_all.columns) == EVENT_COLUMNS
    assert result.info["method"] == "deconvolution" and result.prediction is None
    assert np.all(result.events_all["score"] >= 4.0)
    ev = evaluate(truth, result)
    assert ev.f1 > 0.9
    assert abs(ev.amplitude_relative_error_median) < 0.2
    assert np.all(result.events_all["amplitude"] < 0)
