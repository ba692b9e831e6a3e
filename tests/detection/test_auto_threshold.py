"""threshold="auto": a threshold chosen for each recording from the recording and its inverse."""

from __future__ import annotations

import numpy as np
import pytest
from click.testing import CliRunner

from minidet.cli import main
from minidet.detection.autothreshold import AUTO_GRID, choose_threshold
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
    events = [(p, 0.995) for p in spaced(20, 10_000)]
    noise = [(p, 0.75) for p in spaced(10, 1_000_000)]
    mirror_noise = [(p, 0.75) for p in spaced(10, 1_500_000)]
    chosen = choose_threshold(trace(events + noise), trace(mirror_noise), SETTINGS, RATE, 0.9)
    assert chosen.threshold == 0.995  # the highest that keeps every event
    grid = list(AUTO_GRID)
    assert chosen.peaks[grid.index(0.7)] == 30 and chosen.peaks[grid.index(0.8)] == 20
    assert chosen.noise_peaks[grid.index(0.7)] == pytest.approx(10 / (1 - chosen.excluded_fraction), abs=0.01)
    assert chosen.noise_peaks[grid.index(0.8)] == 0


def test_noise_scored_above_099_is_left_below_the_threshold():
    """A network sure of noise it never saw: the grid goes on above 0.99."""
    events = [(p, 0.99995) for p in spaced(20, 10_000)]
    noise = [(p, 0.997) for p in spaced(10, 1_000_000)]
    mirror_noise = [(p, 0.997) for p in spaced(10, 1_500_000)]
    chosen = choose_threshold(trace(events + noise), trace(mirror_noise), SETTINGS, RATE, 0.9)
    assert chosen.threshold >= 0.998
    assert chosen.peaks[list(AUTO_GRID).index(chosen.threshold)] == 20


def test_without_noise_peaks_small_real_events_are_kept():
    events = [(p, 0.995) for p in spaced(20, 10_000)] + [(p, 0.62) for p in spaced(10, 1_000_000)]
    chosen = choose_threshold(trace(events), trace([]), SETTINGS, RATE, 0.9)
    assert chosen.threshold == 0.6
    assert chosen.f1_estimate[list(AUTO_GRID).index(0.6)] == pytest.approx(1.0)


def test_inverted_peaks_next_to_confident_events_are_not_noise():
    """An event's decay seen upside down sits just after it: not counted as noise."""
    events = [(p, 0.995) for p in spaced(20, 10_000)] + [(p, 0.62) for p in spaced(10, 1_000_000)]
    echoes = [(p + 200, 0.8) for p in spaced(20, 10_000)]  # 4 ms after each confident event
    chosen = choose_threshold(trace(events), trace(echoes), SETTINGS, RATE, 0.9)
    assert chosen.threshold == 0.6 and max(chosen.noise_peaks) == 0
    # the same inverted peaks far from any event count
    far = [(p, 0.8) for p in spaced(20, 1_300_000, gap=15_000)]
    assert choose_threshold(trace(events), trace(far), SETTINGS, RATE, 0.9).threshold > 0.8


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
