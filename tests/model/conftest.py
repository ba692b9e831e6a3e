"""Fixtures for the model tests: miniML's Keras files and TensorFlow's reference outputs
(both in ../shared; the tests that need them skip when it is absent)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

SHARED = Path(__file__).resolve().parents[3] / "shared"

# short name -> (Keras file relative to shared/models/miniml, key of TensorFlow's output)
MINIML_MODELS = {
    "gc": ("GC_lstm_model.h5", "pred_GC_lstm_model"),
    "gc-mepsp": ("transfer_learning/GC_mEPSP/lstm_transfer.h5", "pred_GC_mEPSP"),
    "nmj-wt": ("transfer_learning/NMJ_wt/lstm_transfer.h5", "pred_NMJ_wt"),
    "nmj-gluriia": ("transfer_learning/NMJ_GluRIIA/lstm_transfer.h5", "pred_NMJ_GluRIIA"),
    "iglusnfr": ("transfer_learning/iGluSnFR/lstm_transfer.h5", "pred_iGluSnFR"),
    "zebrafish": ("transfer_learning/zebrafish/lstm_transfer.h5", "pred_zebrafish"),
}


@pytest.fixture(scope="session")
def reference() -> dict:
    """windows_raw, windows_scaled (256 x 600) and TensorFlow's pred_* for each model."""
    path = SHARED / "reference" / "keras_model_outputs.npz"
    if not path.is_file():
        pytest.skip(f"reference outputs not found: {path}")
    with np.load(path) as data:
        return {k: data[k] for k in data.files}


@pytest.fixture(scope="session")
def miniml_file():
    """Function: short name (or 'keras3') -> path of miniML's Keras file; skips if absent."""

    def get(name: str) -> Path:
        rel = "GC_model_keras3.keras" if name == "keras3" else MINIML_MODELS[name][0]
        path = SHARED / "models" / "miniml" / rel
        if not path.is_file():
            pytest.skip(f"miniML model not found: {path}")
        return path

    return get


@pytest.fixture(scope="session")
def reference_key():
    """Function: short name -> key of TensorFlow's probabilities in the reference file."""
    return lambda name: MINIML_MODELS[name][1]


@pytest.fixture(autouse=True)
def _one_torch_thread():
    """Small batches run faster on one thread, and the machine is shared: use one here."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
