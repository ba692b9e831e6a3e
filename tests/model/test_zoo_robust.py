"""The bundled gc-robust model: registered, documented, calibrated, and better than gc on noisy events."""

from __future__ import annotations

import numpy as np
import pytest

import minidet
from minidet.evaluation import evaluate
from minidet.model import available_models, list_models, load_model
from minidet.model.zoo import ZOO, bundled_path
from minidet.simulation import SimulationSettings, simulate


def test_gc_robust_is_registered_after_the_miniml_models():
    assert available_models()[-1] == "gc-robust" and ZOO["gc-robust"].source == ""
    assert "gc-robust" in [m.name for m in list_models()]


def test_gc_robust_metadata_and_provenance():
    meta = load_model("gc-robust").metadata
    assert meta.name == "gc-robust" and meta.window_size == 600 and meta.input_size == 600
    assert meta.training_direction == "negative" and meta.event_direction == "negative"
    same = {k: v for k, v in load_model("gc").metadata.hyperparameters.items() if k != "dropout"}
    assert meta.stride == 20 and {k: v for k, v in meta.hyperparameters.items() if k != "dropout"} == same
    prov = meta.provenance
    assert prov["mode"] == "transfer learning" and prov["base_model"]["name"] == "gc"
    assert prov["calibration"]["chosen"] == meta.threshold
    assert min(prov["calibration"]["thresholds"]) <= meta.threshold <= max(prov["calibration"]["thresholds"])
    syn = prov["recipe"]["synthetic"]
    assert syn["seed"] >= 1000 and syn["windows"] > 10_000 and syn["settings"]["window_size"] == 600
    # evaluation seeds (1-3 in benchmarks/accuracy.py) are not training or calibration seeds
    seeds = {r["seed"] for r in prov["calibration"]["recordings"]}
    assert seeds.isdisjoint({1, 2, 3}) and syn["seed"] > 3
    assert "auc" in prov["metrics"] and prov["run"]["epochs_run"] >= 1
    assert 0.5e6 < bundled_path("gc-robust").stat().st_size < 2e6


@pytest.fixture(scope="module")
def noisy():
    settings = SimulationSettings(duration_s=4.0, snr_db=7.0, event_rate_hz=5.0)
    return simulate(settings, seed=77)


def test_gc_robust_finds_more_noisy_events_than_gc(noisy):
    recording, truth = noisy
    gc = evaluate(truth, minidet.detect(recording, "gc"))
    robust = evaluate(truth, minidet.detect(recording, "gc-robust"))
    assert robust.recall > gc.recall + 0.2
    assert robust.f1 > gc.f1 and robust.precision > 0.7


def test_gc_robust_predictions_are_finite_probabilities():
    x = np.random.default_rng(0).normal(size=(8, 600))
    p = load_model("gc-robust").predict_windows(x)
    assert p.shape == (8,) and np.all((p >= 0) & (p <= 1))
