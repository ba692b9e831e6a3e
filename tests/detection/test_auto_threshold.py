"""threshold="auto": a threshold chosen for each recording from the recording and its inverse."""

from __future__ import annotations

import numpy as np
import pytest
from click.testing import CliRunner

from minidet.cli import main
from minidet.detection.autothreshold import (AUTO_GRID, FLOOR, choose_threshold, mirror_inconsistent,
                                             select_threshold)
from minidet.detection.locate import LocateSettings
from minidet.detection.pipeline import DetectSettings, detect, resolve_settings
from minidet.errors import ParameterError
from minidet.evaluation import evaluate
from minidet.model import load_model
from minidet.simulation import SimulationSettings, simulate

RATE = 50_000.0
SETTINGS = LocateSettings(threshold=0.5, peak_prominence=0.5, stride=20)


def trace(peaks: list[tuple[int, float]], n: int = 2_000_000) -> np.ndarray:
    """A prediction trace: a 600-sample triangular bump of the given height at each position."""
    out = np.full(n, 1e-3, dtype=np.float32)
    ramp = 1.0 - np.abs(np.arange(-300, 301)) / 300.0
    for at, height in peaks:
        out[at - 300:at + 301] = np.maximum(out[at - 300:at + 301], 1e-3 + (height - 1e-3) * ramp)
    return out


def spaced(k: int, start: int, gap: int = 20_000) -> list[int]:
    return [start + i * gap for i in range(k)]


def test_noise_as_high_as_some_detections_raises_the_threshold():
    """From the prior (0.9) up to the lowest threshold that leaves the noise out, no further."""
    events = [(p, 0.995) for p in spaced(20, 10_000)]
    noise = [(p, 0.96) for p in spaced(10, 1_000_000)]
    mirror_noise = [(p, 0.96) for p in spaced(10, 1_500_000)]
    chosen = choose_threshold(trace(events + noise), trace(mirror_noise), SETTINGS, RATE, 0.9)
    assert chosen.threshold == 0.97 and chosen.reason == "estimate" and chosen.prior == 0.9
    grid = list(AUTO_GRID)
    assert chosen.peaks[grid.index(0.9)] == 30 and chosen.peaks[grid.index(0.97)] == 20
    assert chosen.noise_peaks[grid.index(0.9)] == pytest.approx(10 / (1 - chosen.excluded_fraction), abs=0.01)
    assert chosen.noise_peaks[grid.index(0.97)] == 0
    # without the prior (the rule before issue 22): the highest threshold that keeps every event
    old = choose_threshold(trace(events + noise), trace(mirror_noise), SETTINGS, RATE, 0.9, use_prior=False)
    assert old.threshold == 0.995 and old.prior is None


def test_noise_scored_above_099_is_left_below_the_threshold():
    """A network sure of noise it never saw: the grid goes on above 0.99."""
    events = [(p, 0.99995) for p in spaced(20, 10_000)]
    noise = [(p, 0.997) for p in spaced(10, 1_000_000)]
    mirror_noise = [(p, 0.997) for p in spaced(10, 1_500_000)]
    chosen = choose_threshold(trace(events + noise), trace(mirror_noise), SETTINGS, RATE, 0.9)
    assert chosen.threshold == 0.998
    assert chosen.peaks[list(AUTO_GRID).index(chosen.threshold)] == 20


def test_small_events_below_the_floor_are_not_chased():
    """No noise in the inverted trace, 10 small 'events' at 0.62: the estimate would go down to
    0.6, but below FLOOR (or the prior) what the inverted trace cannot see dominates."""
    events = [(p, 0.995) for p in spaced(20, 10_000)] + [(p, 0.62) for p in spaced(10, 1_000_000)]
    chosen = choose_threshold(trace(events), trace([]), SETTINGS, RATE, 0.9)
    assert chosen.threshold == 0.9 and chosen.reason == "prior"
    assert chosen.f1_estimate[list(AUTO_GRID).index(0.6)] == pytest.approx(1.0)
    # events at 0.94 too: from the prior 0.98 down to the floor for them, not below
    more = events + [(p, 0.94) for p in spaced(10, 1_500_000)]
    assert choose_threshold(trace(more), trace([]), SETTINGS, RATE, 0.98).threshold == FLOOR
    assert choose_threshold(trace(events), trace([]), SETTINGS, RATE, 0.9, use_prior=False).threshold == 0.6


def test_inverted_peaks_next_to_confident_events_are_not_noise():
    """An event's decay seen upside down sits just after it: not counted as noise."""
    events = [(p, 0.995) for p in spaced(20, 10_000)] + [(p, 0.62) for p in spaced(10, 1_000_000)]
    echoes = [(p + 200, 0.8) for p in spaced(20, 10_000)]  # 4 ms after each confident event
    chosen = choose_threshold(trace(events), trace(echoes), SETTINGS, RATE, 0.9, use_prior=False)
    assert chosen.threshold == 0.6 and max(chosen.noise_peaks) == 0
    # the same inverted peaks far from any event count
    far = [(p, 0.8) for p in spaced(20, 1_300_000, gap=15_000)]
    assert choose_threshold(trace(events), trace(far), SETTINGS, RATE, 0.9, use_prior=False).threshold > 0.8


def test_an_inverted_trace_that_is_not_the_noise_keeps_the_prior():
    """Outward blips: mirrored, they look like events, and the inverted trace has far more
    confident peaks than the recording has uncertain ones. The estimate would climb to the
    top of the grid; the model's level is kept and the reason recorded."""
    events = [(p, 0.995) for p in spaced(20, 10_000)]
    blips = [(p, 0.9999) for p in spaced(60, 1_050_000, gap=15_000)]
    chosen = choose_threshold(trace(events), trace(blips), SETTINGS, RATE, 0.98)
    assert chosen.threshold == 0.98 and chosen.reason == "inverted trace inconsistent"
    assert choose_threshold(trace(events), trace(blips), SETTINGS, RATE, 0.98, use_prior=False).threshold == 0.9999
    grid = np.asarray(AUTO_GRID)
    assert mirror_inconsistent(grid, chosen.peaks, chosen.noise_peaks, 0.98)
    assert not mirror_inconsistent(grid, chosen.peaks, np.zeros(grid.size), 0.98)


def test_select_threshold_with_a_prior_takes_the_closest_tie():
    grid = np.asarray(AUTO_GRID)
    peaks = np.where(grid < 0.95, 30, 20)  # 10 noise peaks up to 0.93, all seen inverted
    noise = np.where(grid < 0.95, 10.0, 0.0)
    k, f1 = select_threshold(peaks, noise, grid, prior=0.99)
    assert grid[k] == 0.99  # every threshold from 0.95 up ties; the prior is one of them
    k, _ = select_threshold(peaks, noise, grid, prior=0.9)
    assert grid[k] == 0.95  # the closest of the ties to 0.9
    k, _ = select_threshold(peaks, noise, grid)
    assert grid[k] == 0.9999  # no prior: the highest tie
    with pytest.raises(ValueError, match="differ in length"):
        select_threshold(peaks, noise[:-1], grid)


@pytest.fixture(scope="module")
def noisy():
    return simulate(SimulationSettings(duration_s=6.0, snr_db=6.5, event_rate_hz=5.0), seed=21)


def test_gc_robust_chooses_its_threshold_per_recording(noisy):
    recording, truth = noisy
    meta = load_model("gc-robust").metadata
    assert meta.auto_threshold and resolve_settings(None, meta.to_dict(), {}, "gc-robust").threshold == "auto"
    result = detect(recording, "gc-robust")
    auto = result.info["auto_threshold"]
    assert result.settings.threshold == auto["threshold"] in AUTO_GRID
    assert auto["reference"] == max(0.9, meta.threshold)
    assert len(auto["peaks"]) == len(auto["noise_peaks"]) == len(AUTO_GRID)
    # a fixed threshold still works, and auto is at least as good here
    fixed = detect(recording, "gc-robust", threshold=meta.threshold)
    assert "auto_threshold" not in fixed.info
    assert evaluate(truth, result).f1 >= evaluate(truth, fixed).f1 - 0.02
    # any model can use it
    gc = detect(recording, "gc", threshold="auto")
    assert gc.info["auto_threshold"]["reference"] == 0.9


def test_auto_needs_the_model_to_score_and_bad_values_fail(noisy):
    recording, _ = noisy
    pred = np.zeros(recording.n_samples - 599)
    with pytest.raises(ParameterError, match="pass a number as threshold"):
        detect(recording, "gc-robust", prediction=pred)
    detect(recording, "gc-robust", prediction=pred, threshold=0.9)  # fine with a number
    for bad in ("Auto", "high", 1.0, 0.0):
        with pytest.raises(ParameterError, match="threshold must be"):
            DetectSettings(threshold=bad)
    with pytest.raises(ParameterError, match="chosen by detect"):
        DetectSettings(threshold="auto").locate_settings()


def test_cli_threshold_auto(noisy, tmp_path):
    recording, _ = noisy
    path = tmp_path / "rec.h5"
    _write(recording, path)
    r = CliRunner().invoke(main, ["detect", str(path), "--model", "gc", "--threshold", "auto", "--out",
                                  str(tmp_path / "out")])
    assert r.exit_code == 0, r.output
    r = CliRunner().invoke(main, ["detect", str(path), "--threshold", "often", "--out", str(tmp_path / "o2")])
    assert r.exit_code == 2 and "--threshold must be a number in (0, 1) or 'auto', got 'often'" in r.output


def _write(recording, path):
    import h5py

    with h5py.File(path, "w") as f:
        d = f.create_dataset("trace", data=np.asarray(recording.samples))
        d.attrs["sampling_rate"] = recording.sampling_rate
        d.attrs["unit"] = "pA"


def test_the_two_passes_name_their_progress_bars(noisy, monkeypatch):
    import minidet.detection.predict as predict_module

    labels = []
    real = predict_module.predict

    def spy(*args, **kwargs):
        labels.append((kwargs.get("event_direction"), kwargs.get("progress_label")))
        return real(*args, **kwargs)

    monkeypatch.setattr(predict_module, "predict", spy)
    detect(noisy[0], "gc-robust", threshold="auto")
    assert [label for _, label in labels] == ["predict", "auto threshold (inverted)"]
    assert labels[0][0] != labels[1][0]
