"""Training: settings, data checks, full training, transfer learning, model files, report, CLI.

Everything runs on tiny datasets and few epochs; full training uses short windows (no
resampling) so that it reaches 0.95 held-out accuracy in seconds.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from click.testing import CliRunner

import minidet
from minidet.cli import main
from minidet.errors import ModelFileError, OutputError, ParameterError
from minidet.model import load_model
from minidet.train.fit import TrainSettings, train_model
from minidet.train.loop import conv_features, head_logits
from minidet.train.prepare import DatasetBalanceWarning, prepare_data
from minidet.train.report import report_paths, write_report

GC_EXAMPLE = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "miniml" / "gc_training_example.h5"


def synthetic(n_per_class: int, length: int = 120, seed: int = 0, direction: str = "negative",
              amplitude: tuple[float, float] = (4.0, 8.0)) -> tuple[np.ndarray, np.ndarray]:
    """Windows with one event (rise 2 %, decay 12 % of the window) or noise only; sd 1."""
    rng = np.random.default_rng(seed)
    t = np.arange(length)
    windows, labels = [], []
    for label in (1, 0):
        for _ in range(n_per_class):
            w = rng.normal(0, 1, length)
            w = np.convolve(w, np.ones(3) / 3, mode="same") * 1.7  # slightly coloured noise
            if label:
                onset = rng.integers(int(0.2 * length), int(0.4 * length))
                s = np.clip(t - onset, 0, None)
                shape = (1 - np.exp(-s / (0.02 * length))) * np.exp(-s / (0.12 * length))
                sign = -1 if direction == "negative" else 1
                w = w + sign * rng.uniform(*amplitude) * shape / shape.max()
            windows.append(w)
            labels.append(label)
    order = rng.permutation(len(labels))
    return np.asarray(windows)[order], np.asarray(labels)[order]


def write_miniml_file(path: Path, windows: np.ndarray, scores: np.ndarray) -> Path:
    with h5py.File(path, "w") as fh:
        fh["events"] = windows.astype(np.float64)
        fh["scores"] = scores.astype(np.int64)
        fh["raw_indices"] = np.arange(len(scores), dtype=np.int64) * 1000
        fh["cell_label"] = np.array([b"test.abf"] * len(scores))
    return path


FAST_TL = dict(max_epochs=2, device="cpu", num_threads=1)


@pytest.fixture(autouse=True)
def _one_torch_thread():
    # Tiny batches gain nothing from a second thread, and on a busy machine two threads
    # spin-wait for each other; the tests stay fast with one.
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


# ----------------------------------------------------------------------------- settings
def test_defaults_follow_miniml_recipes():
    full = TrainSettings().resolved(transfer=False)
    assert (full.learning_rate, full.batch_size, full.dropout, full.patience) == (2e-5, 128, 0.2, 8)
    assert (full.epsilon, full.amsgrad, full.max_epochs, full.validation_fraction) == (1e-8, True, 100, 0.2)
    tl = TrainSettings().resolved(transfer=True)
    assert (tl.batch_size, tl.dropout, tl.patience) == (64, 0.5, 12)
    # overrides win over recipe defaults
    assert TrainSettings(batch_size=7).resolved(True).batch_size == 7


@pytest.mark.parametrize("kwargs, match", [
    ({"learning_rate": 0}, "learning_rate"), ({"batch_size": 0}, "batch_size"),
    ({"dropout": 1.0}, "dropout"), ({"patience": 0}, "patience"),
    ({"validation_fraction": 0.9}, "validation_fraction"), ({"event_direction": "up"}, "event_direction"),
    ({"num_threads": 0}, "num_threads"), ({"max_epochs": 1.5}, "max_epochs"),
])
def test_bad_settings(kwargs, match):
    with pytest.raises(ParameterError, match=match):
        TrainSettings(**kwargs)


def test_cuda_requested_without_gpu():
    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    x, y = synthetic(10)
    with pytest.raises(ParameterError, match="CUDA"):
        train_model((x, y), settings=TrainSettings(device="cuda"))


# ----------------------------------------------------------------------------- data checks
def _prep(x, y, **kw):
    settings = TrainSettings(**kw).resolved(False)
    return prepare_data(x, y, settings, x.shape[-1], settings.training_direction)


def test_score_2_left_out_and_split_stratified():
    x, y = synthetic(40)
    y = y.copy()
    y[np.flatnonzero(y == 1)[:5]] = 2
    y[np.flatnonzero(y == 0)[:5]] = 2
    data = _prep(x, y)
    c = data.counts
    assert c["excluded"] == 10 and c["used"] == 70 and c["events"] == 35
    assert c["train"] + c["validation"] == 70
    assert data.y_val.sum() == 7 and data.y_val.size == 14
    assert data.x_train.min() >= 0 and data.x_train.max() <= 1  # min-max scaled


def test_one_class_is_refused():
    x, _ = synthetic(20)
    with pytest.raises(ParameterError, match="only one class"):
        _prep(x, np.ones(len(x), int))
    y = np.r_[np.ones(20, int), np.full(20, 2)]
    with pytest.raises(ParameterError, match="only one class"):
        _prep(x, y)


def test_too_few_snippets():
    x, y = synthetic(4)
    with pytest.raises(ParameterError, match="too few snippets"):
        _prep(x, y)


def test_nan_is_refused_but_not_in_excluded_rows():
    x, y = synthetic(20)
    x = x.copy()
    x[3, 5] = np.nan
    with pytest.raises(ParameterError, match="NaN"):
        _prep(x, y)
    y = y.copy()
    y[3] = 2
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DatasetBalanceWarning)
        _prep(x, y)  # the NaN snippet is excluded


def test_unknown_scores_and_shapes():
    x, y = synthetic(20)
    with pytest.raises(ParameterError, match="0 \\(no event\\), 1 \\(event\\) or 2"):
        _prep(x, np.where(y == 1, 3, 0))
    with pytest.raises(ParameterError, match="one value per snippet"):
        _prep(x, y[:-1])
    with pytest.raises(ParameterError, match="2-D"):
        _prep(x[0], y[:1])


def test_balance_warning():
    x, y = synthetic(30)
    with warnings.catch_warnings():
        warnings.simplefilter("error", DatasetBalanceWarning)
        _prep(x, y)  # 1.00: no warning
    y = y.copy()
    y[np.flatnonzero(y == 1)[:6]] = 2  # 24 events, 30 non-events
    with pytest.warns(DatasetBalanceWarning, match="24 events and 30 non-events"):
        _prep(x, y)


def test_inversion_and_resampling():
    x, y = synthetic(20, length=300, direction="positive")
    settings = TrainSettings(event_direction="positive").resolved(True).replace(training_direction="negative")
    data = prepare_data(x, y, settings, 600, "negative")
    assert data.inverted and data.x_train.shape[1] == 600 and data.window_size == 300
    # inverted events go down: the mean event window dips below its start
    events = np.r_[data.x_train[data.y_train == 1], data.x_val[data.y_val == 1]]
    mean = events.mean(axis=0)
    assert mean.min() < mean[:100].mean() - 0.2


def test_base_window_mismatch_without_resampling():
    x, y = synthetic(20, length=300)
    with pytest.raises(ParameterError, match="takes windows of 600 samples.*300"):
        train_model((x, y), base="gc", settings=TrainSettings(resample=False, **FAST_TL))


def test_event_direction_hint_warns():
    x, y = synthetic(20, direction="positive")
    with pytest.warns(UserWarning, match="goes positive"):
        _prep(x, y)


# ----------------------------------------------------------------------------- training
def test_head_matches_network_forward():
    net = load_model("gc").network.eval()
    x = torch.rand(5, 600)
    with torch.no_grad():
        np.testing.assert_allclose(head_logits(net, conv_features(net, x)).numpy(),
                                   net.logits(x).numpy(), rtol=1e-5, atol=1e-5)


def test_full_training_reaches_095_held_out():
    x, y = synthetic(120, length=120, seed=1, amplitude=(3.0, 7.0))
    settings = TrainSettings(resample=False, learning_rate=3e-3, batch_size=32, max_epochs=12,
                             patience=12, device="cpu", num_threads=1)
    result = train_model((x, y), settings=settings, progress=False)
    assert result.metrics.accuracy >= 0.95, result.summary()
    assert result.network.window_size == 120
    assert result.metadata.window_size == 120 and result.metadata.resample is False
    assert result.provenance["mode"] == "full training"
    assert len(result.history["loss"]) == result.epochs_run


def test_transfer_learning_cached_equals_uncached_and_is_deterministic():
    x, y = synthetic(12, length=600, seed=2)
    base = load_model("gc")
    runs = [train_model((x, y), base=base, settings=TrainSettings(cache_features=c, **FAST_TL),
                        progress=False) for c in (True, True, False)]
    h = [r.history for r in runs]
    assert h[0]["loss"] == h[1]["loss"] and h[0]["val_loss"] == h[1]["val_loss"]  # same seed
    np.testing.assert_allclose(h[0]["loss"], h[2]["loss"], rtol=1e-4)
    np.testing.assert_allclose(h[0]["val_loss"], h[2]["val_loss"], rtol=1e-4)
    sd0, sd_base = runs[0].network.state_dict(), base.network.state_dict()
    for key, value in sd_base.items():
        if key.startswith("blocks."):  # conv and batch norm (incl. running stats) frozen
            assert torch.equal(sd0[key], value), key
    assert not torch.equal(sd0["lstm.weight_hh_l0"], sd_base["lstm.weight_hh_l0"])
    assert runs[0].network.dropout_rate == 0.5


def test_transfer_learning_with_two_threads_is_deterministic_and_matches_one():
    # Two threads: the LSTM's directions run in parallel (fast_lstm.TwoThreadBiLSTM).
    x, y = synthetic(12, length=600, seed=2)
    base = load_model("gc")
    runs = [train_model((x, y), base=base, settings=TrainSettings(**{**FAST_TL, "num_threads": t}),
                        progress=False) for t in (2, 2, 1)]
    h = [r.history for r in runs]
    assert h[0]["loss"] == h[1]["loss"] and h[0]["val_loss"] == h[1]["val_loss"]
    np.testing.assert_allclose(h[0]["loss"], h[2]["loss"], rtol=1e-4)
    np.testing.assert_allclose(h[0]["val_loss"], h[2]["val_loss"], rtol=1e-4)
    assert torch.get_num_threads() == 1  # restored
    sd0, sd2 = runs[0].network.state_dict(), runs[2].network.state_dict()
    torch.testing.assert_close(sd0["lstm.weight_hh_l0_reverse"], sd2["lstm.weight_hh_l0_reverse"],
                               rtol=1e-4, atol=1e-6)


def test_fine_tuning_trains_every_layer_and_needs_a_base():
    x, y = synthetic(12, length=600, seed=2)
    base = load_model("gc")
    settings = TrainSettings(fine_tune=True, **FAST_TL)
    runs = [train_model((x, y), base=base, settings=settings, progress=False) for _ in range(2)]
    assert runs[0].history["loss"] == runs[1].history["loss"]  # deterministic
    sd, sd_base = runs[0].network.state_dict(), base.network.state_dict()
    assert not torch.equal(sd["blocks.0.conv.conv.weight"], sd_base["blocks.0.conv.conv.weight"])
    # batch norm trained and its statistics recalibrated on the training windows
    assert not torch.equal(sd["blocks.0.bn.running_mean"], sd_base["blocks.0.bn.running_mean"])
    assert not torch.equal(sd["lstm.weight_hh_l0"], sd_base["lstm.weight_hh_l0"])
    assert runs[0].provenance["mode"] == "fine-tuning"
    assert runs[0].provenance["settings"]["fine_tune"] is True
    with pytest.raises(ParameterError, match="fine_tune"):
        train_model((x, y), settings=settings, progress=False)
    with pytest.raises(ParameterError, match="fine_tune"):
        TrainSettings(fine_tune="yes")


def test_interrupt_keeps_best_model():
    x, y = synthetic(12, length=600, seed=3)

    def stop(epoch, figures):
        if epoch == 2:
            raise KeyboardInterrupt

    result = train_model((x, y), base="gc", settings=TrainSettings(max_epochs=10, device="cpu",
                                                                   num_threads=1),
                         progress=False, on_epoch=stop)
    assert result.interrupted and result.epochs_run == 2
    assert result.best_epoch in (1, 2)


def test_model_file_carries_metadata_and_loads(tmp_path):
    x, y = synthetic(12, length=300, seed=4, direction="positive")
    result = train_model((x, y), base="gc", name="mepsp-test",
                         settings=TrainSettings(event_direction="positive", **FAST_TL), progress=False)
    path = result.save(tmp_path / "m.minidet.safetensors")
    model = minidet.load_model(str(path))
    m = model.metadata
    assert (m.name, m.window_size, model.input_size) == ("mepsp-test", 300, 600)
    assert (m.training_direction, m.event_direction, m.invert) == ("negative", "positive", True)
    assert m.resample is True
    # in-memory snippets: no recording to choose on, so the snippets weighted as a recording
    # would be (never below the balanced snippets' ROC optimum)
    choice = m.provenance["threshold"]
    assert choice["rule"] == "snippets" and not m.auto_threshold
    assert m.threshold == pytest.approx(choice["threshold"]) and m.threshold >= result.metrics.threshold - 1e-9
    assert m.source_sha256 == result.provenance["dataset"]["sha256"]
    prov = m.provenance
    assert prov["dataset"]["counts"]["events"] == 12
    assert prov["settings"]["batch_size"] == 64 and prov["base_model"]["name"] == "gc"
    assert "accuracy" in prov["metrics"]
    # same weights back
    for k, v in result.network.state_dict().items():
        if not k.endswith("num_batches_tracked"):
            assert torch.equal(model.network.state_dict()[k], v), k
    with pytest.raises((ModelFileError, OutputError), match="exists"):
        result.save(path)
    result.save(path, overwrite=True)

    png, js = write_report(result, path)
    assert (png, js) == report_paths(path) and png.name == "m.report.png"
    data = json.loads(js.read_text())
    assert data["metrics"]["n"] == result.metrics.n
    assert len(data["history"]["val_loss"]) == result.epochs_run
    assert png.read_bytes()[:4] == b"\x89PNG"
    with pytest.raises(OutputError, match="exists"):
        write_report(result, path)


@pytest.mark.skipif(not GC_EXAMPLE.exists(), reason="../shared/data/miniml/gc_training_example.h5 missing")
def test_transfer_learning_on_real_gc_snippets():
    result = train_model(GC_EXAMPLE, base="gc", settings=TrainSettings(max_epochs=3, device="cpu",
                                                                       num_threads=1),
                         progress=False)
    c = result.provenance["dataset"]["counts"]
    assert (c["events"], c["non_events"], c["excluded"]) == (86, 86, 358)
    assert c["validation"] == 34
    assert result.metrics.accuracy >= 0.9
    assert result.provenance["dataset"]["name"] == "gc_training_example.h5"


# ----------------------------------------------------------------------------- CLI
def test_cli_train_writes_model_and_report(tmp_path):
    x, y = synthetic(12, length=600, seed=5)
    ds = write_miniml_file(tmp_path / "ds.h5", x, y)
    out = tmp_path / "tl.minidet.safetensors"
    args = ["train", str(ds), "--out", str(out), "--from", "gc", "--epochs", "1", "--threads", "1",
            "--device", "cpu", "--no-progress"]
    r = CliRunner().invoke(main, args)
    assert r.exit_code == 0, r.output
    assert "held-out" in r.output and out.exists()
    assert (tmp_path / "tl.report.png").exists() and (tmp_path / "tl.report.json").exists()
    assert minidet.load_model(str(out)).metadata.name == "tl"
    r = CliRunner().invoke(main, args)
    assert r.exit_code == 2 and "exists; use --force" in r.output
    r = CliRunner().invoke(main, args + ["--force"])
    assert r.exit_code == 0, r.output


def test_cli_train_bad_datasets(tmp_path):
    x, y = synthetic(12, length=600, seed=6)
    one = write_miniml_file(tmp_path / "one.h5", x, np.ones_like(y))
    r = CliRunner().invoke(main, ["train", str(one), "--out", str(tmp_path / "a.minidet.safetensors")])
    assert r.exit_code == 2 and "only one class" in r.output
    xn = x.copy()
    xn[0, 0] = np.nan
    nan = write_miniml_file(tmp_path / "nan.h5", xn, y)
    r = CliRunner().invoke(main, ["train", str(nan), "--out", str(tmp_path / "b.minidet.safetensors")])
    assert r.exit_code == 2 and "NaN" in r.output
    few = write_miniml_file(tmp_path / "few.h5", x[:6], np.array([0, 1, 0, 1, 0, 1]))
    r = CliRunner().invoke(main, ["train", str(few), "--out", str(tmp_path / "c.minidet.safetensors")])
    assert r.exit_code == 2 and "too few snippets" in r.output
    r = CliRunner().invoke(main, ["train", str(tmp_path / "missing.h5"), "--out", str(tmp_path / "d.safetensors")])
    assert r.exit_code == 2
    short = write_miniml_file(tmp_path / "short.h5", x[:, :300], y)
    r = CliRunner().invoke(main, ["train", str(short), "--out", str(tmp_path / "e.minidet.safetensors"),
                                  "--from", "gc", "--no-resample"])
    assert r.exit_code == 2 and "600 samples" in r.output
    r = CliRunner().invoke(main, ["train", str(short), "--out", str(tmp_path / "f.minidet.safetensors"),
                                  "--fine-tune"])
    assert r.exit_code == 2 and "give a base model (--from)" in r.output
