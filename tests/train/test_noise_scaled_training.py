"""Training noise-scaled models: the noise SD travels from extraction to the model file."""

from __future__ import annotations

import numpy as np
import pytest
from click.testing import CliRunner

from minidet.cli import main
from minidet.errors import ParameterError
from minidet.model import load_model
from minidet.model.network import noise_scale
from minidet.noise import recording_noise_sd
from minidet.train.dataset import read_dataset, write_dataset
from minidet.train.extract import ExtractSettings, extract_recording, prescore
from minidet.train.fit import TrainSettings, train_model
from minidet.train.prepare import prepare_data
from minidet.train.synthetic import SPECTRUM_FAMILIES, SyntheticSettings, synthetic_windows
from train_synthetic import noise_scaled_windows as windows

FAST = dict(max_epochs=1, device="cpu", num_threads=1)  # one torch thread while training (restored after)


def test_extraction_stores_the_recordings_noise_sd_and_it_round_trips(gc_recording, tmp_path):
    rec, _ = gc_recording
    ds, _ = extract_recording(rec, ExtractSettings())
    assert ds.n > 0
    np.testing.assert_allclose(ds.noise_sd, recording_noise_sd(rec, 600))
    assert ds.noise_sd[0] == pytest.approx(1.5, rel=0.1)  # the simulated noise SD
    path = write_dataset(tmp_path / "ds.h5", ds)
    np.testing.assert_array_equal(read_dataset(path).noise_sd, ds.noise_sd)
    # a subset keeps them; a dataset without them (miniML's) reads as NaN
    assert read_dataset(path).subset(np.array([0])).noise_sd.shape == (1,)
    import h5py

    with h5py.File(path, "a") as f:
        del f["noise_sd"]
    assert np.isnan(read_dataset(path).noise_sd).all()


def test_prepare_data_scales_by_the_noise_and_refuses_without_it():
    x, y, sd = windows()
    settings = TrainSettings(input_scaling="noise").resolved(False)
    data = prepare_data(x, y, settings, 600, "negative", noise_sd=sd, input_scaling="noise")
    # every prepared window is one of the inputs noise-scaled (the split shuffles them)
    scaled = noise_scale(x, sd)
    first = data.x_train[0]
    assert np.min(np.abs(scaled - first).max(axis=1)) < 1e-6
    with pytest.raises(ParameterError, match="needs the noise SD"):
        prepare_data(x, y, settings, 600, "negative", input_scaling="noise")
    bad = sd.copy()
    bad[3] = np.nan
    with pytest.raises(ParameterError, match="no usable noise SD.*row 3"):
        prepare_data(x, y, settings, 600, "negative", noise_sd=bad, input_scaling="noise")
    # ... unless that snippet is excluded (score 2)
    y2 = y.copy()
    y2[3] = 2
    y2[np.flatnonzero(y == 0)[0]] = 2  # (and one non-event, to stay balanced)
    prepare_data(x, y2, settings, 600, "negative", noise_sd=bad, input_scaling="noise")
    with pytest.raises(ParameterError, match="one value per snippet"):
        prepare_data(x, y, settings, 600, "negative", noise_sd=sd[:-1], input_scaling="noise")
    with pytest.raises(ParameterError, match="input_scaling must be one of"):
        TrainSettings(input_scaling="zscore")


def test_fine_tuning_gc_into_a_noise_scaled_model(tmp_path):
    x, y, sd = windows(16, seed=1)
    settings = TrainSettings(fine_tune=True, input_scaling="noise", **FAST)
    result = train_model((x, y, sd), base="gc", settings=settings, progress=False, name="ns")
    assert result.metadata.input_scaling == "noise" and result.metadata.format_version == 2
    assert result.provenance["settings"]["input_scaling"] == "noise"
    path = result.save(tmp_path / "ns.minidet.safetensors")
    model = load_model(path)
    assert model.metadata.input_scaling == "noise"
    assert model.predict_windows(x[:3], noise_sd=sd[:3]).shape == (3,)
    # changing the input needs every layer trained, and the noise SDs
    with pytest.raises(ParameterError, match="fine_tune"):
        train_model((x, y, sd), base="gc", settings=TrainSettings(input_scaling="noise", **FAST), progress=False)
    with pytest.raises(ParameterError, match="needs the noise SD"):
        train_model((x, y), base="gc", settings=settings, progress=False)
    # transfer learning from a noise-scaled model keeps its scaling (frozen layers are fine)
    again = train_model((x, y, sd), base=model, settings=TrainSettings(**FAST), progress=False)
    assert again.metadata.input_scaling == "noise"
    # full training picks min-max unless told
    assert train_model((x, y), settings=TrainSettings(**FAST), progress=False).metadata.input_scaling == "minmax"


def test_cli_train_input_scaling(gc_recording, tmp_path):
    rec, _ = gc_recording
    ds, _ = extract_recording(rec, ExtractSettings())
    ds.scores[ds.scores == 2] = 0
    ds.scored[:] = True
    path = write_dataset(tmp_path / "ds.h5", ds)
    out = tmp_path / "ns.minidet.safetensors"
    base = ["train", str(path), "--out", str(out), "--from", "gc", "--epochs", "1", "--threads", "1",
            "--device", "cpu", "--no-progress", "--no-report"]
    r = CliRunner().invoke(main, base + ["--input-scaling", "noise"])
    assert r.exit_code == 2 and "--fine-tune" in r.output
    r = CliRunner().invoke(main, base + ["--input-scaling", "noise", "--fine-tune"])
    assert r.exit_code == 0, r.output
    model = load_model(out)
    assert model.metadata.input_scaling == "noise"
    # pre-scoring a dataset with a noise-scaled model uses each snippet's noise SD
    p = prescore(ds, str(out))
    assert p.shape == (ds.n,) and np.isfinite(p).all()
    r = CliRunner().invoke(main, base + ["--input-scaling", "zscore"])
    assert r.exit_code == 2


def test_synthetic_windows_carry_noise_sd_and_spectrum_families():
    s = SyntheticSettings(n_recordings=2, recording_s=1.0, spectrum_family="patch-clamp")
    x, y, info = synthetic_windows(s, seed=3)
    assert info["spectrum"].str.startswith("patch-clamp(").all()
    assert (info["noise_sd"] > 0).all()
    assert info.groupby("recording")["noise_sd"].nunique().eq(1).all()
    assert set(SPECTRUM_FAMILIES) == {"pink-lowpass", "patch-clamp", "mixed"}
    # the mixture draws from both families
    names = [SPECTRUM_FAMILIES["mixed"](np.random.default_rng(k)).name for k in range(40)]
    assert any(n.startswith("patch-clamp(") for n in names) and any(n.startswith("random(") for n in names)
    assert all(n.startswith(("patch-clamp(", "random(")) for n in names)
    with pytest.raises(ParameterError, match="spectrum_family"):
        SyntheticSettings(spectrum_family="gc")
    # the default family is the one gc-robust's first version was trained on
    assert SyntheticSettings().spectrum_family == "pink-lowpass"
