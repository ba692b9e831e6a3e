"""The default model's screen (detection/screen.py): the model scores only where it could say "event"."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from minidet.detection.predict import predict
from minidet.detection.screen import (EXACT_ABOVE, FILL_CAP, Screen, audit_windows, dilate, load_screen, save_screen,
                                      screen_file)
from minidet.errors import ModelFileError
from minidet.model import load_model
from minidet.simulation import SimulationSettings, simulate


@pytest.fixture(scope="module")
def model():
    return load_model("gc-robust")


@pytest.fixture(scope="module")
def recording():
    rec, _ = simulate(SimulationSettings(duration_s=4.0, snr_db=12.0, event_rate_hz=6.0), seed=11)
    return rec


@pytest.fixture(scope="module")
def full(model, recording):
    return predict(recording, model, mode="full")


def test_bundled_default_has_a_screen_and_min_max_models_do_not(model):
    assert model.screen is not None
    assert model.screen.settings.teacher == "gc-robust"
    assert 0 < model.screen.settings.threshold < 1
    assert load_model("gc").screen is None


def test_screened_scores_are_the_models_wherever_they_matter(model, recording, full):
    fast = predict(recording, model)  # fast mode: the screen
    info = fast.screen
    assert info is not None and not info["fallback"]
    assert info["scored"] < 0.8  # it skips windows (most of a recording is noise)
    ev = np.asarray(fast.evaluated)
    exact, got = np.asarray(full.scores), np.asarray(fast.scores)
    np.testing.assert_allclose(got[ev], exact[ev], atol=1e-5)
    assert ev[exact > EXACT_ABOVE].all()  # every window the model scores above 0.85 was scored by it
    assert (got[~ev] <= FILL_CAP).all()


def test_default_detection_finds_the_same_events_as_every_window(recording):
    import minidet

    a = minidet.detect(recording, threshold=0.9)
    b = minidet.detect(recording, threshold=0.9, predict_mode="full")
    assert "screen" in a.info and "screen" not in b.info
    from minidet.report.notes import screen_sentence

    assert screen_sentence(a).startswith("The model scored ") and screen_sentence(b) == ""
    np.testing.assert_array_equal(a.events_all["sample"].to_numpy(), b.events_all["sample"].to_numpy())


def test_a_fixed_threshold_below_what_the_screen_keeps_exact_scores_every_window(recording):
    import minidet

    low = minidet.detect(recording, threshold=0.6)
    assert "screen" not in low.info and low.settings.predict_mode == "full"


def test_a_screen_that_misses_falls_back_to_every_window(model, recording, full):
    blind = Screen(model.screen.net, dataclasses.replace(model.screen.settings, threshold=1.0, audit_fraction=0.05))
    broken = load_model("gc-robust")
    broken.screen = blind
    p = predict(recording, broken)
    assert p.screen["fallback"] and p.screen["audit_misses"] > 0
    assert np.asarray(p.evaluated).all()
    np.testing.assert_allclose(np.asarray(p.scores), np.asarray(full.scores), atol=1e-5)


def test_spans_are_screened_inside_the_spans_only(model, recording, full):
    spans = [(20_000, 60_000), (120_000, 150_000)]
    p = predict(recording, model, spans=spans)
    ev = np.asarray(p.evaluated)
    starts = np.asarray(p.window_starts)
    inside = np.zeros(ev.size, bool)
    for a, b in spans:
        inside |= (starts >= a) & (starts < b)
    assert not ev[~inside].any()
    exact = np.asarray(full.scores)
    assert ev[inside & (exact > EXACT_ABOVE)].all()
    np.testing.assert_allclose(np.asarray(p.scores)[ev], exact[ev], atol=1e-5)
    assert (np.asarray(p.scores)[~inside] == 0).all()


def test_full_mode_and_min_max_models_do_not_screen(model, recording, full):
    assert full.screen is None and np.asarray(full.evaluated).all()
    assert predict(recording, "gc").screen is None


def test_screen_file_round_trip_and_errors(model, tmp_path):
    path = tmp_path / "x.screen.safetensors"
    save_screen(str(path), model.screen.net, model.screen.settings)
    again = load_screen(str(path))
    assert again.settings == model.screen.settings
    (tmp_path / "bad.screen.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(ModelFileError):
        load_screen(str(tmp_path / "bad.screen.safetensors"))
    assert screen_file("/a/gc-robust.minidet.safetensors") == "/a/gc-robust.screen.safetensors"


def test_a_screen_beside_another_models_file_is_ignored(model, tmp_path):
    dest = tmp_path / "mine.minidet.safetensors"
    other = load_model("gc")
    other.save(dest)
    save_screen(screen_file(str(dest)), model.screen.net, model.screen.settings)  # teacher gc-robust != gc
    assert load_model(str(dest)).screen is None


def test_audit_and_dilate_helpers():
    mask = np.zeros(20, bool)
    mask[5] = True
    assert np.flatnonzero(dilate(mask, 2)).tolist() == [3, 4, 5, 6, 7]
    a = audit_windows(mask, 0.25, seed=1)
    assert a.size == 5 and 5 not in a and np.all(np.diff(a) > 0)
    assert np.array_equal(a, audit_windows(mask, 0.25, seed=1))


def test_flood_fill_scores_each_touched_stretch_whole():
    from minidet.detection.screen import FILL_REACH, flood_fill

    teacher = np.full(200, 0.1, dtype=np.float32)
    teacher[20:40] = 0.9  # a stretch the seed touches
    teacher[40 + FILL_REACH - 1:50] = 0.6  # joined to it across a gap shorter than the reach
    teacher[120:130] = 0.95  # a stretch no seed touches
    evaluated = np.zeros(200, bool)
    scores = np.zeros(200, dtype=np.float32)

    def run(idx):
        scores[idx] = teacher[idx]
        evaluated[idx] = True

    run(np.array([25]))
    flood_fill(np.array([25]), scores, evaluated, run)
    assert evaluated[20 - FILL_REACH:50 + FILL_REACH].all()
    assert not evaluated[:20 - FILL_REACH].any() and not evaluated[50 + FILL_REACH:].any()
    pool = np.ones(200, bool)
    pool[30:] = False  # the pool limits what it adds
    evaluated[:] = False
    run(np.array([25]))
    flood_fill(np.array([25]), scores, evaluated, run, pool)
    assert evaluated[20 - FILL_REACH:30].all() and not evaluated[30:].any()
