"""Snippet extraction by template matching."""

from __future__ import annotations

import json

import h5py
import numpy as np
import pytest
from click.testing import CliRunner

from minidet.cli import main
from minidet.errors import DatasetError, ParameterError
from minidet.recording import Recording
from minidet.train.dataset import (CATEGORY_CLEAR, CATEGORY_DISAGREE, CATEGORY_INTERMEDIATE, CATEGORY_NOISE,
                                   read_dataset)
from minidet.train.extract import ExtractSettings, extract, extract_recording
from train_synthetic import synthetic_recording, write_h5_recording

W = 600
PRE = 90  # onset position in the window (15 %)


def mixed_recording(seed: int = 0):
    """Big and small events: some clear, some only above the intermediate threshold."""
    rec, onsets = synthetic_recording(duration_s=8, n_events=60, amplitude=10, noise_sd=2.0, seed=seed)
    return rec, onsets


def test_categories_match_the_truth() -> None:
    rec, onsets = mixed_recording()
    ds, report = extract_recording(rec, ExtractSettings(window_size=W))
    assert report.n_clear > 20 and report.n_noise == report.n_clear
    clear = ds.raw_indices[ds.category == CATEGORY_CLEAR] + PRE
    # every clear event is a true event, its onset within 0.5 ms
    dist = np.abs(clear[:, None] - onsets[None, :]).min(axis=1)
    assert np.all(dist <= 25), dist.max()
    # noise stretches hold no true onset and do not overlap each other or any event snippet
    noise = np.sort(ds.raw_indices[ds.category == CATEGORY_NOISE])
    for start in noise:
        assert not np.any((onsets >= start - 100) & (onsets < start + W))
    assert np.all(np.diff(noise) >= W)
    events = ds.raw_indices[ds.category != CATEGORY_NOISE]
    assert np.all(np.abs(noise[:, None] - events[None, :]).min(axis=1) >= W)
    # suggested scores: 1 clear, 2 intermediate, 0 noise; nothing scored by a person yet
    assert set(ds.scores[ds.category == CATEGORY_CLEAR]) == {1}
    assert set(ds.scores[ds.category == CATEGORY_NOISE]) == {0}
    assert set(ds.scores[ds.category == CATEGORY_INTERMEDIATE]) <= {2}
    assert not ds.scored.any()
    assert np.all(ds.criterion[ds.category == CATEGORY_CLEAR] >= 4.5)


def test_snippets_are_baseline_subtracted_windows_with_provenance() -> None:
    rec, _ = mixed_recording()
    ds, _ = extract_recording(rec, ExtractSettings(window_size=W))
    assert ds.events.shape[1] == W and ds.events.dtype == np.float64
    for i in range(0, ds.n, 7):
        raw = rec.samples[ds.raw_indices[i]:ds.raw_indices[i] + W]
        np.testing.assert_allclose(ds.events[i], raw - raw[:W // 10].mean())
    assert set(ds.cell_label) == {"synthetic.h5"} and set(ds.channel) == {"Im"}
    assert np.all(ds.sampling_rate == 50_000.0)


def test_intermediate_threshold_adds_less_nice_events() -> None:
    rec, _ = mixed_recording()
    strict = extract_recording(rec, ExtractSettings(window_size=W, threshold_mid=4.0))[1]
    loose = extract_recording(rec, ExtractSettings(window_size=W, threshold_mid=2.0))[1]
    assert loose.n_intermediate > strict.n_intermediate


def test_template_override_is_recorded() -> None:
    rec, _ = mixed_recording()
    ds, _ = extract([rec], ExtractSettings(window_size=W, rise_s=0.3e-3, decay_s=1.5e-3))
    assert ds.attrs["template_decay_samples"] == pytest.approx(75.0)
    assert ds.attrs["template_rise_s"] == pytest.approx(0.3e-3)


def test_extraction_is_fast_on_long_traces() -> None:
    """O(n log n): two minutes at 50 kHz (6 M samples) in a few seconds."""
    import time

    rng = np.random.default_rng(0)
    rec = Recording(rng.normal(0, 1, 6_000_000), 50_000.0, source="long")
    t0 = time.perf_counter()
    with pytest.raises(DatasetError):  # pure noise: no clear event
        extract([rec], ExtractSettings(window_size=W))
    assert time.perf_counter() - t0 < 30


def test_too_short_recording() -> None:
    rec = Recording(np.zeros(500), 50_000.0, source="short.abf")
    with pytest.raises(DatasetError, match="short.abf holds 500 samples.*fewer than one window of 600"):
        extract([rec], ExtractSettings(window_size=W))


def test_thresholds_that_find_nothing() -> None:
    rec, _ = mixed_recording()
    with pytest.raises(DatasetError, match=r"no event reached the high threshold 500 .*largest criterion"):
        extract([rec], ExtractSettings(window_size=W, threshold_high=500, threshold_mid=400))


@pytest.mark.parametrize("kwargs", [
    {"threshold_high": 2.0, "threshold_mid": 3.0},
    {"window_size": 8},
    {"direction": "up"},
    {"rise_s": 2e-3, "decay_s": 1e-3},
])
def test_bad_settings(kwargs) -> None:
    with pytest.raises(ParameterError):
        ExtractSettings(**kwargs)


def test_cli_extract_many_recordings(tmp_path) -> None:
    paths = []
    for k in range(2):
        rec, _ = synthetic_recording(duration_s=4, n_events=30, amplitude=10, noise_sd=2.0, seed=k)
        paths.append(write_h5_recording(tmp_path / f"cell{k}.h5", rec))
    out = tmp_path / "ds.h5"
    result = CliRunner().invoke(main, ["extract", *paths, "--window-size", "600", "--out", str(out), "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert len(report["recordings"]) == 2
    ds = read_dataset(out)
    assert set(ds.cell_label) == set(paths)
    with h5py.File(out, "r") as f:  # miniML's layout
        assert f["events"].shape == (ds.n, 600) and f["events"].dtype == np.float64
        assert f["scores"].dtype == np.int64 and f["raw_indices"].dtype == np.int64
        assert f["cell_label"].dtype.kind == "S"
    # the file is not overwritten without --force
    before = out.read_bytes()
    again = CliRunner().invoke(main, ["extract", *paths, "--window-size", "600", "--out", str(out)])
    assert again.exit_code == 2 and "exists" in again.output
    assert out.read_bytes() == before
    short = tmp_path / "short.h5"
    write_h5_recording(short, Recording(np.zeros(100), 50e3))
    bad = CliRunner().invoke(main, ["extract", str(short), "--window-size", "600", "--out", str(tmp_path / "x.h5")])
    assert bad.exit_code == 2 and "fewer than one window" in bad.output
    assert not (tmp_path / "x.h5").exists()


def test_cli_extract_prescore(tmp_path) -> None:
    pytest.importorskip("torch")
    rec, _ = synthetic_recording(duration_s=3, n_events=15, amplitude=15, noise_sd=1.5)
    path = write_h5_recording(tmp_path / "cell.h5", rec)
    out = tmp_path / "ds.h5"
    result = CliRunner().invoke(main, ["extract", path, "--window-size", "600", "--out", str(out), "--prescore", "gc"])
    assert result.exit_code == 0, result.output
    ds = read_dataset(out)
    assert np.all(np.isfinite(ds.prescore)) and ds.attrs["prescore_model"] == "gc"
    clear = ds.category == CATEGORY_CLEAR
    noise = ds.category == CATEGORY_NOISE
    assert np.median(ds.prescore[clear]) > 0.8 > 0.2 > np.median(ds.prescore[noise])


# ---------------------------------------------------------------------- disagreement with a model
def _big_and_small_events() -> tuple[Recording, np.ndarray, np.ndarray]:
    """30 large and 30 small granule-cell events in one 10 s trace (noise SD ~2.1 pA)."""
    big, on_big = synthetic_recording(n_events=30, amplitude=60, seed=1)
    small, on_small = synthetic_recording(n_events=30, amplitude=10, seed=2)
    rec = Recording(samples=big.samples + small.samples, sampling_rate=50e3, unit="pA", source="mix.h5", channel="Im")
    return rec, on_big, on_small


def test_disagreement_adds_events_the_model_is_sure_of_below_the_low_threshold() -> None:
    pytest.importorskip("torch")
    rec, on_big, on_small = _big_and_small_events()
    # thresholds at which the small events' criterion (about 9-13) stays mostly below the low one
    settings = ExtractSettings(window_size=600, threshold_high=16, threshold_mid=13, threshold_low=11)
    plain, _ = extract_recording(rec, settings)
    assert not (plain.category == CATEGORY_DISAGREE).any() and not np.isfinite(plain.prescore).any()
    ds, report = extract_recording(rec, settings, model="gc")
    found = ds.category == CATEGORY_DISAGREE
    assert report.n_disagree == found.sum() >= 3 and report.n_doubted == 0
    pre = int(round(0.15 * 600))
    onsets = ds.raw_indices[found] + pre
    # each is a true small event, none a large one; the person decides (suggested 2)
    assert all(np.min(np.abs(on_small - o)) <= 5 for o in onsets)
    assert all(np.min(np.abs(on_big - o)) > 600 // 10 for o in onsets)
    assert (ds.scores[found] == 2).all() and (ds.criterion[found] < 11).all()
    assert (ds.prescore[found] >= 0.5).all()
    # the template-matching groups are those of the plain extraction, now with the model's score
    for c in (CATEGORY_CLEAR, CATEGORY_INTERMEDIATE):
        assert np.array_equal(ds.raw_indices[ds.category == c], plain.raw_indices[plain.category == c])
    assert np.isfinite(ds.prescore).all() and ds.attrs["disagree_model"] == "gc"


def test_disagreement_marks_clear_events_the_model_doubts() -> None:
    pytest.importorskip("torch")
    rec, _, _ = _big_and_small_events()
    plain, _ = extract_recording(rec, ExtractSettings(window_size=600))
    settings = ExtractSettings(window_size=600, model_doubt=0.5)
    ds, report = extract_recording(rec, settings, model="gc")
    was_clear = np.isin(ds.raw_indices, plain.raw_indices[plain.category == CATEGORY_CLEAR])
    doubted = was_clear & (ds.prescore < 0.5)
    assert report.n_doubted == doubted.sum() >= 1
    assert (ds.category[doubted] == CATEGORY_DISAGREE).all() and (ds.scores[doubted] == 2).all()
    assert (ds.category[was_clear & ~doubted] == CATEGORY_CLEAR).all()


def test_cli_extract_disagree_with(tmp_path) -> None:
    pytest.importorskip("torch")
    rec, _, _ = _big_and_small_events()
    path = write_h5_recording(tmp_path / "mix.h5", rec)
    out = tmp_path / "ds.h5"
    args = ["extract", path, "--window-size", "600", "--out", str(out), "--threshold-high", "16",
            "--threshold-mid", "13", "--threshold-low", "11", "--disagree-with", "gc"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    ds = read_dataset(out)
    n = int((ds.category == CATEGORY_DISAGREE).sum())
    assert n >= 3 and f"{n} where gc disagrees" in result.output
    bad = CliRunner().invoke(main, args[:-2] + ["--disagree-with", "gc", "--model-sure", "0.05", "--force"])
    assert bad.exit_code == 2 and "--model-doubt" in bad.output and bad.output.strip().count("\n") == 0
    both = CliRunner().invoke(main, args + ["--prescore", "gc", "--force"])
    assert both.exit_code == 2 and "exclude each other" in both.output
