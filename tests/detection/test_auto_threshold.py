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


# ------------------------------------------------------------------ the sampled inverted pass
def test_inverted_pieces_tile_the_recording_spread_in_any_prefix():
    from minidet.detection.autothreshold import PIECE_S, inverted_pieces

    n = int(600 * RATE) + 1234  # 10 min and a bit
    pieces = inverted_pieces(n, RATE, 600)
    piece = int(PIECE_S * RATE)
    assert len(pieces) == 120 and sorted(pieces)[0] == (0, piece) and sorted(pieces)[-1][1] == n
    assert sum(b - a for a, b in pieces) == n and len(set(pieces)) == 120
    # the first 8 pieces lie in 8 different eighths of the recording
    assert len({a * 8 // n for a, _ in pieces[:8]}) == 8
    # a piece holds at least 100 windows, whatever the window
    long_window = inverted_pieces(n, RATE, 6000)
    assert long_window[0][1] - long_window[0][0] == 600_000
    assert inverted_pieces(1000, RATE, 600) == [(0, 1000)]


def _sampled(events, mirror, n, first_s):
    """choose_threshold_sampled on synthetic traces; its pieces read from the whole mirror."""
    from minidet.detection.autothreshold import _peaks, choose_threshold_sampled

    whole = trace(mirror, n)
    mpos, mheight = _peaks(whole, SETTINGS, 0.5)
    asked = []

    def mirror_peaks(pieces):
        asked.append(list(pieces))
        keep = np.zeros(mpos.size, dtype=bool)
        for a, b in pieces:
            keep |= (mpos >= a) & (mpos < b)
        return mpos[keep], mheight[keep]

    return choose_threshold_sampled(trace(events, n), mirror_peaks, SETTINGS, RATE, 0.9, first_s, 600), asked


def test_sampled_pass_stops_when_the_choice_is_clear():
    """Confident events and noise far below them: a first sample settles the choice."""
    n = 30_000_000  # 10 min at 50 kHz
    events = [(p, 0.9995) for p in spaced(600, 10_000, 49_000)]
    mirror = [(p, 0.6) for p in spaced(300, 30_000, 99_000)]
    whole = choose_threshold(trace(events, n), trace(mirror, n), SETTINGS, RATE, 0.9)
    chosen, asked = _sampled(events, mirror, n, 30.0)
    assert len(asked) == 1 and len(asked[0]) == 6  # 30 s: six 5 s pieces, nothing more
    assert 0 < chosen.inverted_fraction < 0.06 and whole.inverted_fraction == 1.0
    assert chosen.threshold == whole.threshold and chosen.peaks == whole.peaks
    # the noise count is the sampled one scaled to the whole
    k = list(AUTO_GRID).index(0.5)
    assert chosen.noise_peaks[k] == pytest.approx(whole.noise_peaks[k], rel=0.5)


def test_sampled_pass_scores_on_while_the_choice_is_close():
    """Noise peaks as high as a share of the recording's peaks: the choice hangs on their count,
    so the pass doubles until it has scored everything, and then it is the whole pass's."""
    n = 6_000_000  # 2 min
    events = [(p, 0.995) for p in spaced(100, 10_000, 40_000)]
    noise = [(p, 0.96) for p in spaced(40, 4_010_000, 49_000)]
    # 24 inverted peaks: about where 0.95 and 0.97 are estimated as good as each other
    mirror = [(p, 0.96) for p in spaced(24, 30_000, 240_000)]
    whole = choose_threshold(trace(events + noise, n), trace(mirror, n), SETTINGS, RATE, 0.9)
    chosen, asked = _sampled(events + noise, mirror, n, 10.0)
    assert [len(a) for a in asked] == [2, 2, 4, 8, 8]  # 10 s, doubling, to all 24 pieces
    assert chosen.inverted_fraction == 1.0 and chosen.threshold == whole.threshold
    assert chosen.noise_peaks == whole.noise_peaks


def test_sampled_consistency_check_allows_for_the_sample():
    grid = np.asarray(AUTO_GRID)
    peaks = np.where(grid < 0.999, 60, 40)  # 20 spare peaks
    noise = np.full(grid.size, 40.0)        # 20 more than spare: 4.4 SDs whole
    assert mirror_inconsistent(grid, peaks, noise, 0.98)
    # the same count from a quarter of the mirror, scaled up, is not evidence enough
    assert not mirror_inconsistent(grid, peaks, noise, 0.98, inverted_fraction=0.25)


def test_predict_scores_only_the_spans():
    from minidet.detection.predict import predict

    recording, _ = simulate(SimulationSettings(duration_s=3.0, snr_db=12.0, event_rate_hz=5.0), seed=3)
    full = predict(recording, "gc-robust", mode="full")
    spans = [(10_000, 40_000), (100_000, 101_000)]
    part = predict(recording, "gc-robust", spans=spans, mode="full")  # fast mode: the screen, in the spans
    inside = np.zeros(full.scores.size, dtype=bool)
    for a, b in spans:
        inside |= (full.window_starts >= a) & (full.window_starts < b)
    assert np.array_equal(part.evaluated, inside) and part.spans == tuple(spans)
    np.testing.assert_allclose(part.scores[inside], full.scores[inside], atol=1e-6)
    assert not part.scores[~inside].any()
    assert part.noise_sd == full.noise_sd  # the whole recording's, not the spans'


def test_detect_samples_the_inverted_pass_of_a_long_recording(monkeypatch):
    import minidet.detection.predict as predict_module
    from minidet.report.notes import threshold_sentence

    spans = []
    real = predict_module.predict

    def spy(*args, **kwargs):
        spans.append(kwargs.get("spans"))
        return real(*args, **kwargs)

    monkeypatch.setattr(predict_module, "predict", spy)
    recording, truth = simulate(SimulationSettings(duration_s=21.0, snr_db=20.0, event_rate_hz=5.0), seed=4)
    result = detect(recording, "gc-robust", auto_inverted_s=5.0)
    auto = result.info["auto_threshold"]
    whole = detect(recording, "gc-robust", auto_inverted_s=0)
    assert spans[0] is None and spans[1] is not None and spans[-1] is None
    # every sampled call scores 5 s pieces, each with its margins of two windows
    assert all(b - a in (5 * 50_000 + 2 * 1200, 5 * 50_000 + 1200) for call in spans[1:-2] for a, b in call)
    assert 0 < auto["inverted_fraction"] <= 1 and whole.info["auto_threshold"]["inverted_fraction"] == 1.0
    if auto["inverted_fraction"] < 1:
        assert "of its length" in threshold_sentence(result)
    assert "of its length" not in threshold_sentence(whole)
    found, every = evaluate(truth, result), evaluate(truth, whole)
    assert found.f1 >= every.f1 - 0.01 and found.f1 > 0.9
    with pytest.raises(ParameterError, match="auto_inverted_s"):
        DetectSettings(auto_inverted_s=-1.0)
