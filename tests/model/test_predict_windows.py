"""MinidetModel.predict_windows: scaling inside, shapes, dtypes and bad input."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from minidet.errors import ParameterError
from minidet.model import load_model


@pytest.fixture(scope="module")
def gc():
    return load_model("gc")


@pytest.fixture(scope="module")
def windows():
    return np.random.default_rng(3).normal(size=(40, 600)).astype(np.float32)


def test_scale_and_offset_do_not_matter(gc, windows):
    p = gc.predict_windows(windows)
    assert p.shape == (40,) and p.dtype == np.float32
    assert np.all((p >= 0) & (p <= 1))
    np.testing.assert_allclose(gc.predict_windows(windows.astype(np.float64) * 1e-12 + 5.0), p, atol=1e-5)


def test_batch_size_does_not_change_the_result(gc, windows):
    np.testing.assert_allclose(gc.predict_windows(windows, batch_size=7),
                               gc.predict_windows(windows, batch_size=1000), atol=1e-6)


def test_integer_input_and_empty_input(gc):
    ints = np.random.default_rng(0).integers(-500, 500, size=(3, 600), dtype=np.int16)
    assert gc.predict_windows(ints).shape == (3,)
    assert gc.predict_windows(np.empty((0, 600))).shape == (0,)


def test_flat_window_gives_a_number(gc):
    p = gc.predict_windows(np.zeros((2, 600)))
    assert np.all(np.isfinite(p))


def test_detects_a_negative_event_but_not_its_inverse(gc):
    t = np.arange(600.0)
    event = -(1 - np.exp(-(t - 200) / 3)) * np.exp(-(t - 200) / 40)
    event[t < 200] = 0
    noise = np.random.default_rng(1).normal(scale=0.1, size=(8, 600))
    window = event / -event.min() + noise
    assert gc.predict_windows(window).mean() > 0.5
    assert gc.predict_windows(-window).mean() < 0.1
    assert gc.predict_windows(noise).mean() < 0.1


@pytest.mark.parametrize("bad, words", [
    (np.zeros((3, 599)), r"shape \(n, 600\).*\(3, 599\)"),
    (np.zeros(600), r"shape \(n, 600\)"),
    (np.zeros((2, 3, 600)), r"shape \(n, 600\)"),
    (np.array([["a"] * 600]), "numeric"),
    (np.zeros((2, 600), dtype=complex), "numeric"),
])
def test_bad_shapes_and_dtypes(gc, bad, words):
    with pytest.raises(ParameterError, match=words):
        gc.predict_windows(bad)


def test_nan_and_inf_name_the_row(gc, windows):
    bad = windows.copy()
    bad[5, 10] = np.nan
    with pytest.raises(ParameterError, match="NaN or infinite.*row 5"):
        gc.predict_windows(bad)
    bad[5, 10] = 0
    bad[7, 0] = -np.inf
    with pytest.raises(ParameterError, match="row 7"):
        gc.predict_windows(bad)


def test_window_of_the_recording_length_gets_a_hint():
    mepsp = load_model("gc-mepsp")
    assert (mepsp.window_size, mepsp.input_size) == (3000, 600)
    with pytest.raises(ParameterError, match="resample by 600/3000"):
        mepsp.predict_windows(np.zeros((1, 3000)))


@pytest.mark.parametrize("batch_size", [0, -1, 2.5, True])
def test_bad_batch_size(gc, windows, batch_size):
    with pytest.raises(ParameterError, match="batch_size"):
        gc.predict_windows(windows, batch_size=batch_size)


def test_bad_device(gc, windows):
    with pytest.raises(ParameterError, match="device"):
        gc.predict_windows(windows, device="tpu")
    with pytest.raises(ParameterError, match="device"):
        load_model("gc", device="banana")
    if not torch.cuda.is_available():
        with pytest.raises(ParameterError, match="CUDA is not available"):
            load_model("gc", device="cuda")


def test_repr_and_properties(gc):
    assert "gc" in repr(gc) and gc.input_size == 600 and gc.window_size == 600
    assert str(gc.device) == "cpu"
