"""Importing miniML's Keras files: outputs equal TensorFlow's, bad files are refused."""

from __future__ import annotations

import json
import shutil
import zipfile

import h5py
import numpy as np
import pytest
import torch

from minidet.errors import ModelFileError
from minidet.model import MinidetModel, ModelMetadata, load_model, read_keras


TOL = 1e-4
NAMES = ["gc", "gc-mepsp", "nmj-wt", "nmj-gluriia", "iglusnfr", "zebrafish"]


@pytest.fixture(scope="module")
def imported(miniml_file):
    cache = {}

    def get(name):
        if name not in cache:
            cache[name] = read_keras(miniml_file(name))
        return cache[name]

    return get


@pytest.fixture(scope="session")
def gc_keras_path(miniml_file):
    return miniml_file("gc")


@pytest.mark.parametrize("name", NAMES)
def test_imported_model_matches_tensorflow(name, imported, reference, reference_key, miniml_file):
    km = imported(name)
    expected = reference[reference_key(name)]
    with torch.no_grad():
        from_scaled = km.network(torch.from_numpy(reference["windows_scaled"])).numpy()
    assert np.max(np.abs(from_scaled - expected)) < TOL
    # Raw windows, min-max scaling inside predict_windows.
    model = MinidetModel(km.network, ModelMetadata(name=name, hyperparameters=km.hyperparameters))
    from_raw = model.predict_windows(reference["windows_raw"], batch_size=100)
    assert from_raw.shape == (256,) and from_raw.dtype == np.float32
    assert np.max(np.abs(from_raw - expected)) < TOL


def test_load_model_imports_keras_files_with_miniml_defaults(miniml_file, reference):
    model = load_model(str(miniml_file("gc")))
    m = model.metadata
    assert (m.name, m.window_size, m.stride, m.threshold) == ("GC_lstm_model", 600, 20, 0.5)
    assert (m.training_direction, m.event_direction, m.resample) == ("negative", "negative", True)
    assert (m.convolve_win, m.gradient_convolve_win) == (20, 40)
    assert m.source_file == "GC_lstm_model.h5" and len(m.source_sha256) == 64
    assert not model.network.training
    probs = model.predict_windows(reference["windows_raw"][:32])
    assert np.max(np.abs(probs - reference["pred_GC_lstm_model"][:32])) < TOL


def test_transfer_models_keep_their_dropout(imported):
    assert imported("gc").hyperparameters["dropout"] == pytest.approx(0.2)
    assert imported("nmj-wt").hyperparameters["dropout"] == pytest.approx(0.5)
    assert imported("nmj-wt").hyperparameters["lstm_input_dropout"] == pytest.approx(0.5)
    assert imported("gc").network.window_size == 600
    assert imported("gc").source_format == "keras2-h5"


def test_keras3_file_is_a_retrained_gc_model(reference, miniml_file):
    """GC_model_keras3.keras holds other weights than GC_lstm_model.h5 (no TF reference of its
    own), so it is held to the GC model's decisions, not to 1e-4: a wrong weight layout (gate
    or BatchNorm order) would destroy the agreement."""
    keras3 = miniml_file("keras3")
    model = load_model(keras3)
    assert model.metadata.name == "GC_model_keras3"
    probs = model.predict_windows(reference["windows_raw"])
    gc = reference["pred_GC_lstm_model"]
    assert np.corrcoef(probs, gc)[0, 1] > 0.95
    assert np.mean((probs > 0.5) == (gc > 0.5)) > 0.97
    assert read_keras(keras3).source_format == "keras3-zip"


def _edit_h5_config(src, dst, edit):
    shutil.copyfile(src, dst)
    with h5py.File(dst, "r+") as fh:
        config = json.loads(fh.attrs["model_config"])
        edit(config["config"]["layers"])
        fh.attrs["model_config"] = json.dumps(config)
    return dst


@pytest.mark.parametrize("edit, words", [
    (lambda L: L[1]["config"].update(padding="valid"), "padding"),
    (lambda L: L[4]["config"].update(strides=[1]), "strides"),
    (lambda L: L[3]["config"].update(alpha=0.1), "slope"),
    (lambda L: L[2]["config"].update(epsilon=1e-5), "epsilon"),
    (lambda L: L[16]["config"].update(merge_mode="concat"), "merge_mode"),
    (lambda L: L[16]["config"]["layer"]["config"].update(return_sequences=True), "return_sequences"),
    (lambda L: L[16]["config"]["layer"]["config"].update(recurrent_activation="hard_sigmoid"),
     "recurrent_activation"),
    (lambda L: L[-1]["config"].update(activation="softmax"), "activation"),
    (lambda L: L.pop(2), "BatchNormalization"),
])
def test_unsupported_keras_options_are_refused(tmp_path, gc_keras_path, edit, words):
    path = _edit_h5_config(gc_keras_path, tmp_path / "edited.h5", edit)
    with pytest.raises(ModelFileError, match=words):
        read_keras(path)


def test_wrong_weight_shape_is_refused(tmp_path, gc_keras_path):
    path = _edit_h5_config(gc_keras_path, tmp_path / "edited.h5",
                           lambda L: L[1]["config"].update(filters=16))
    with pytest.raises(ModelFileError, match="shape"):
        read_keras(path)


def test_weights_only_h5_is_refused(tmp_path, gc_keras_path):
    path = tmp_path / "weights.h5"
    shutil.copyfile(gc_keras_path, path)
    with h5py.File(path, "r+") as fh:
        del fh.attrs["model_config"]
    with pytest.raises(ModelFileError, match="model_config"):
        read_keras(path)


def test_damaged_keras_files_raise_model_file_error(tmp_path, gc_keras_path):
    truncated = tmp_path / "truncated.h5"
    truncated.write_bytes(gc_keras_path.read_bytes()[:50_000])
    with pytest.raises(ModelFileError, match="truncated.h5"):
        read_keras(truncated)
    text = tmp_path / "model.h5"
    text.write_text("not a model")
    with pytest.raises(ModelFileError, match="not a Keras model file"):
        read_keras(text)
    with pytest.raises(ModelFileError, match="not found"):
        read_keras(tmp_path / "missing.keras")
    archive = tmp_path / "empty.keras"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("config.json", "{}")
    with pytest.raises(ModelFileError, match="model.weights.h5"):
        read_keras(archive)


def test_keras3_weights_found_without_layer_name_attributes(tmp_path, miniml_file, reference):
    """Older Keras 3 files may lack the ``name`` attribute on ``vars``; the importer then
    derives the group names (conv1d, conv1d_1, ...) from the layer classes."""
    import io

    src = miniml_file("keras3")
    with zipfile.ZipFile(src) as zf:
        members = {n: zf.read(n) for n in zf.namelist()}
    buf = io.BytesIO()
    with h5py.File(io.BytesIO(members["model.weights.h5"]), "r") as old, h5py.File(buf, "w") as new:
        for key in old:
            old.copy(key, new)

        def strip(name, obj):
            if "name" in obj.attrs:
                del obj.attrs["name"]

        new.visititems(strip)
    members["model.weights.h5"] = buf.getvalue()
    stripped = tmp_path / "stripped.keras"
    with zipfile.ZipFile(stripped, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    x = torch.from_numpy(reference["windows_scaled"][:16])
    with torch.no_grad():
        assert torch.equal(read_keras(stripped).network(x), read_keras(src).network(x))
