"""Bundled models: loadable by short name, equal to miniML's TensorFlow outputs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import minidet
from minidet.errors import UnknownModelError
from minidet.model import available_models, list_models, load_model
from minidet.model.zoo import bundled_path

NAMES = ["gc", "gc-mepsp", "nmj-wt", "nmj-gluriia", "iglusnfr", "zebrafish"]


def test_registry_lists_the_six_models():
    assert available_models() == NAMES + ["gc-robust"]  # gc-robust: tests/model/test_zoo_robust.py


@pytest.mark.parametrize("name", NAMES)
def test_bundled_model_matches_tensorflow(name, reference, reference_key):
    model = minidet.load_model(name)
    assert model.name == name and not model.network.training
    probs = model.predict_windows(reference["windows_raw"])
    assert np.max(np.abs(probs - reference[reference_key(name)])) < 1e-4


def test_bundled_files_are_small_float32_package_data():
    folder = bundled_path("gc").parent
    assert folder.name == "models" and folder.parent.name == "minidet"
    assert (folder / "LICENSE-miniML").read_text().startswith("MIT License")
    for name in NAMES:
        size = bundled_path(name).stat().st_size
        assert 0.5e6 < size < 2e6


def test_metadata_of_bundled_models():
    meta = {m.name: m for m in list_models() if m.name in NAMES}
    assert list(meta) == NAMES
    assert all(m.training_direction == "negative" for m in meta.values())
    assert meta["gc-mepsp"].event_direction == "positive" and meta["gc-mepsp"].invert
    assert meta["gc-mepsp"].window_size == 3000 and meta["gc-mepsp"].stride == 100
    assert meta["gc"].window_size == 600 and meta["gc"].stride == 20
    assert meta["iglusnfr"].event_direction == "positive"
    for m in meta.values():
        assert m.input_size == 600 and m.threshold == 0.5
        assert m.license.startswith("MIT") and len(m.source_sha256) == 64
        assert m.source_file.startswith("miniML/models/")
    assert meta["gc"].hyperparameters["dropout"] == 0.2
    assert meta["zebrafish"].hyperparameters["dropout"] == 0.5


def test_names_are_forgiving_about_case_and_underscores():
    assert load_model("NMJ_wt").name == "nmj-wt"


def test_unknown_name_lists_known_names():
    with pytest.raises(UnknownModelError, match="gc, gc-mepsp, nmj-wt, nmj-gluriia, iglusnfr, zebrafish"):
        load_model("purkinje")
    with pytest.raises(UnknownModelError):
        bundled_path("purkinje")


def test_package_never_reads_shared_at_run_time():
    src = Path(minidet.__file__).parent
    for py in src.rglob("*.py"):
        assert "shared/" not in py.read_text(), py
