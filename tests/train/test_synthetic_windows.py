"""Simulated training windows: labels follow the truth, seeded, bad settings rejected."""

from __future__ import annotations

import numpy as np
import pytest

from minidet.errors import ParameterError
from minidet.simulation import SimulationSettings, simulate
from minidet.train.synthetic import SyntheticSettings, random_spectrum, synthetic_windows

SMALL = SyntheticSettings(n_recordings=3, recording_s=2.0, max_positives_per_recording=15)


@pytest.fixture(scope="module")
def small():
    return synthetic_windows(SMALL, seed=1000)


def test_windows_are_balanced_and_labelled_by_kind(small):
    windows, scores, info = small
    assert windows.shape == (len(info), 600) and windows.dtype == np.float64
    assert scores.sum() == (scores == 0).sum() > 0
    assert set(info["kind"]) <= {"positive", "random", "hard", "transient"}
    assert (scores == (info["kind"] == "positive")).all()


def test_labels_agree_with_the_truth_of_each_recording(small):
    _, scores, info = small
    lo, hi = SMALL.positive_onset_range
    for i, part in info.groupby("recording"):
        rng = np.random.default_rng([1000, i])
        from minidet.train.synthetic import _recording_settings

        _, truth = simulate(_recording_settings(SMALL, rng), seed=1000 + i)
        onsets = np.floor(truth.events["onset_sample"].to_numpy())
        for start, label in zip(part["start"], scores[part.index]):
            rel = onsets - start
            if label == 1:
                assert np.any((rel >= lo) & (rel <= hi))
            else:
                assert not np.any((rel >= 0) & (rel < SMALL.negative_clear_samples))


def test_positive_windows_hold_a_downward_event_after_the_offset(small):
    windows, scores, info = small
    pos = info[scores == 1]
    assert pos["onset_offset"].between(*SMALL.positive_onset_range).all()
    # clean-ish ones: the minimum comes after the onset
    clean = pos[pos["snr_db"] > 12]
    if len(clean):
        x = windows[clean.index]
        assert np.mean(np.argmin(x, axis=1) >= clean["onset_offset"].to_numpy() - 5) > 0.8


def test_same_seed_same_windows_other_seed_other_windows(small):
    again = synthetic_windows(SMALL, seed=1000)
    assert np.array_equal(small[0], again[0]) and np.array_equal(small[1], again[1])
    other = synthetic_windows(SMALL, seed=2000)
    assert other[0].shape != small[0].shape or not np.array_equal(other[0], small[0])


def test_random_spectrum_is_seeded_and_usable():
    a = random_spectrum(np.random.default_rng(3))
    b = random_spectrum(np.random.default_rng(3))
    assert np.array_equal(a.psd, b.psd) and a.name == b.name and a.name.startswith("random(")
    rec, _ = simulate(SimulationSettings(duration_s=0.2, noise_spectrum=a, event_rate_hz=0.0), seed=1)
    assert np.isfinite(rec.samples).all() and rec.samples.std() > 0


@pytest.mark.parametrize("change, match", [
    (dict(n_recordings=0), "n_recordings"),
    (dict(window_size=10), "window_size"),
    (dict(positive_onset_range=(500, 20)), "positive_onset_range"),
    (dict(negative_clear_samples=100), "negative_clear_samples"),
    (dict(snr_db_range=(10, 5)), "snr_db_range"),
    (dict(rise_tau_s_range=(0.0, 1e-3)), "rise_tau_s_range"),
    (dict(decay_tau_s_range=(1e-5, 1e-3)), "decay_tau_s_range"),
    (dict(hard_fraction=0.8, transient_negative_fraction=0.5), "hard_fraction"),
    (dict(transient_fraction=1.5), "transient_fraction"),
    (dict(recording_s=0.01), "recording_s"),
])
def test_impossible_settings_raise_a_clear_error(change, match):
    with pytest.raises(ParameterError, match=match):
        SyntheticSettings(**change)


def test_bad_seed_and_settings_type():
    with pytest.raises(ParameterError, match="seed"):
        synthetic_windows(SMALL, seed=-1)
    with pytest.raises(ParameterError, match="SyntheticSettings"):
        synthetic_windows({"n_recordings": 2})
