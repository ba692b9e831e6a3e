"""Noise-scaled models: windows divided by the recording's noise SD instead of min-max scaled.

The network here is gc's, saved as a noise-scaled model: it was not trained for that input,
but the plumbing (noise SD, scaling, every engine, fast mode, resampling, metadata) is the
same for any network.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from minidet.detection.pipeline import detect
from minidet.detection.predict import predict
from minidet.detection.scorer import WindowScorer
from minidet.errors import ParameterError
from minidet.model import load_model
from minidet.model.modelfile import read_metadata, save_model_file
from minidet.model.network import noise_scale
from minidet.noise import recording_noise_sd
from minidet.recording import Recording
from minidet.simulation import SimulationSettings, simulate


@pytest.fixture(scope="module")
def noise_model(tmp_path_factory):
    gc = load_model("gc")
    path = tmp_path_factory.mktemp("models") / "ns.minidet.safetensors"
    save_model_file(path, gc.network, gc.metadata.replace(name="ns", input_scaling="noise"))
    return path


@pytest.fixture(scope="module")
def recording():
    settings = SimulationSettings(duration_s=3.0, sampling_rate=50_000.0, event_rate_hz=8.0, snr_db=12.0)
    rec, _ = simulate(settings, seed=11)
    return Recording(np.asarray(rec.samples) * 7.0 + 40.0, rec.sampling_rate)  # any unit, any offset


def test_the_file_says_format_2_and_gc_stays_format_1(noise_model):
    meta = read_metadata(noise_model)
    assert meta.input_scaling == "noise" and meta.format_version == 2
    gc = load_model("gc").metadata
    assert gc.input_scaling == "minmax" and gc.format_version == 1
    assert "input_scaling" not in gc.to_dict()  # min-max files are written as before
    assert meta.replace(input_scaling="minmax").format_version == 1


def test_scores_are_the_network_on_noise_scaled_windows(noise_model, recording):
    model = load_model(noise_model)
    p = predict(recording, model, mode="full")
    sd = recording_noise_sd(recording, 600)
    assert p.noise_sd == pytest.approx(sd)
    x = np.asarray(recording.samples)
    idx = np.arange(0, p.n_windows, 97)
    windows = np.stack([x[k * 20:k * 20 + 600] for k in idx])
    # events are negative-going and gc was trained on negative events: no inversion
    expected = model.predict_windows(windows, noise_sd=sd)
    np.testing.assert_allclose(p.scores[idx], expected, atol=1e-5)
    with torch.inference_mode():
        plain = model.network(torch.from_numpy(noise_scale(windows, sd))).numpy().reshape(-1)
    np.testing.assert_allclose(p.scores[idx], plain, atol=1e-5)
    # the noise SD, not the unit, sets the scale: the same trace in other units scores the same
    other = Recording(x / 7.0, recording.sampling_rate)
    np.testing.assert_allclose(predict(other, model, mode="full").scores, p.scores, atol=2e-5)


def test_every_engine_and_fast_mode_agree(noise_model, recording):
    model = load_model(noise_model)
    full = predict(recording, model, mode="full").scores
    for engine in ("fast", "plain"):
        fast = predict(recording, model, mode="fast", engine=engine).scores
        assert np.abs(fast - full).max() < 1e-3
    windows = noise_scale(np.random.default_rng(0).normal(size=(30, 600)), 1.0)
    net = model.network
    onnx = WindowScorer(net, torch.device("cpu"), minmax=False)
    torch_fast = WindowScorer(net, torch.device("cpu"), backend="torch", minmax=False)
    plain = WindowScorer(net, torch.device("cpu"), engine="plain", minmax=False)
    assert onnx.backend == "onnxruntime"
    np.testing.assert_allclose(onnx(windows), plain(windows), atol=1e-5)
    np.testing.assert_allclose(torch_fast(windows), plain(windows), atol=1e-5)


def test_detect_reports_the_noise_sd_and_resamples(noise_model, recording):
    result = detect(recording, str(noise_model))
    assert result.info["noise_sd"] == pytest.approx(recording_noise_sd(recording, 600))
    assert "noise_sd" not in detect(recording, "gc").info
    # another window: measured with a moving average of 4 windows of the recording
    resampled = detect(recording, str(noise_model), window_size=300)
    assert resampled.info["noise_sd"] == pytest.approx(recording_noise_sd(recording, 300))


def test_a_flat_trace_and_missing_noise_sd_are_clear_errors(noise_model):
    flat = Recording(np.full(30_000, 2.0), 50_000.0)
    with pytest.raises(ParameterError, match="has no noise"):
        detect(flat, str(noise_model))
    model = load_model(noise_model)
    w = np.random.default_rng(1).normal(size=(4, 600))
    with pytest.raises(ParameterError, match="pass noise_sd"):
        model.predict_windows(w)
    for bad in (0.0, [1.0, 2.0], np.nan):
        with pytest.raises(ParameterError, match="noise_sd must be"):
            model.predict_windows(w, noise_sd=bad)
    assert model.predict_windows(w, noise_sd=[1.0, 1.0, 2.0, 2.0]).shape == (4,)
    with pytest.raises(ParameterError, match="takes no noise_sd"):
        load_model("gc").predict_windows(w, noise_sd=1.0)


def test_a_bad_input_scaling_is_refused(noise_model):
    meta = load_model("gc").metadata
    with pytest.raises(ParameterError, match="input_scaling must be one of"):
        meta.replace(input_scaling="zscore")
