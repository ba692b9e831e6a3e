"""Window-size suggestion on simulated recordings of known kinetics."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from click.testing import CliRunner

from minidet.cli import main
from minidet.errors import DatasetError
from minidet.recording import Recording
from minidet.train.window import suggest_window
from train_synthetic import GC_DECAY_S, GC_RISE_S, synthetic_recording, write_h5_recording


def expected_window(rise_s: float, decay_s: float, rate: float) -> float:
    """Samples spanning the baseline (15 % of the window), onset to peak and 5 decay taus."""
    peak = rise_s * math.log((rise_s + decay_s) / rise_s)
    return (peak + 5 * decay_s) * rate / 0.85


@pytest.mark.parametrize("speed", [0.5, 4.0], ids=["2x-faster", "4x-slower"])
@pytest.mark.parametrize("rate", [20_000.0, 50_000.0], ids=["20kHz", "50kHz"])
def test_window_within_25_percent_of_event_span(speed: float, rate: float) -> None:
    """minidet.simulation: coloured noise, Poisson onsets (overlaps), kinetics varying +-25 %."""
    from minidet.simulation import SimulationSettings, simulate

    rise, decay = GC_RISE_S * speed, GC_DECAY_S * speed
    settings = SimulationSettings(
        duration_s=max(5.0, 60 * 12 * decay), sampling_rate=rate, event_rate_hz=min(20.0, 1 / (20 * decay)),
        amplitude_median=12.0, noise_sd=1.5, rise_tau_s=rise, decay_tau_s=decay,
    )
    rec, _ = simulate(settings, seed=0)
    s = suggest_window(rec)
    want = expected_window(rise, decay, rate)
    assert abs(s.window_size / want - 1) < 0.25, (s.window_size, want)
    assert s.kinetics.decay_s == pytest.approx(decay, rel=0.25)
    assert s.resample_factor == pytest.approx(s.window_size / 600)
    assert s.kinetics.amplitude < 0


def test_gc_kinetics_suggest_a_window_below_the_gc_600(gc_recording) -> None:
    rec, _ = gc_recording
    s = suggest_window(rec)
    assert 300 <= s.window_size <= 600
    assert s.resample_factor < 1


def test_noise_only_trace_is_a_clear_error() -> None:
    rec = Recording(np.random.default_rng(1).normal(0, 1, 200_000), 20_000.0, source="noise.h5")
    with pytest.raises(DatasetError, match="clear negative events|too fast"):
        suggest_window(rec)


def test_positive_events_need_direction_positive() -> None:
    rec, _ = synthetic_recording(direction=+1.0, duration_s=4, n_events=40)
    s = suggest_window(rec, direction="positive")
    assert s.kinetics.amplitude > 0
    assert abs(s.window_size / expected_window(GC_RISE_S, GC_DECAY_S, 50e3) - 1) < 0.25


def test_cli_window_prints_suggestion_and_writes_png(tmp_path, monkeypatch) -> None:
    rec, _ = synthetic_recording(duration_s=4, n_events=40)
    path = write_h5_recording(tmp_path / "cell.h5", rec)
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(main, ["window", path, "--json"])
    assert result.exit_code == 0, result.output
    out = json.loads(result.output)
    assert out["window_size"] == pytest.approx(expected_window(GC_RISE_S, GC_DECAY_S, 50e3), rel=0.25)
    assert out["resample_factor"] == pytest.approx(out["window_size"] / 600)
    png = tmp_path / "cell.window.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    text = CliRunner().invoke(main, ["window", path, "--no-plot"])
    assert "suggested window" in text.output and "--window-size" in text.output


def test_suggestion_from_picked_events_maps_examples_back(gc_recording) -> None:
    """suggest_window_near: stretches around picked events (overlapping ones merged), the
    kinetics of the whole-recording suggestion, example onsets in the recording's samples,
    and the fitted shape on the average's samples."""
    from minidet.train.window import kinetics_curve, suggest_window_near

    rec, truth = gc_recording
    whole = suggest_window(rec)
    onsets = np.sort(np.asarray(truth, dtype=float))
    picks = [int(o) + 20 for o in onsets[:8]]
    near = suggest_window_near(rec, picks, span_samples=5000)
    assert near.window_size == pytest.approx(whole.window_size, rel=0.3)
    examples = np.asarray(near.kinetics.examples)
    assert examples.size and all(np.min(np.abs(onsets - e)) < 100 for e in examples)  # onsets in the recording
    curve = kinetics_curve(near.kinetics)
    assert curve.shape == near.kinetics.average.shape
    assert np.min(curve) == pytest.approx(near.kinetics.amplitude) and curve[: near.kinetics.onset + 1].max() == 0
    with pytest.raises(Exception, match="no event positions"):
        suggest_window_near(rec, [])
