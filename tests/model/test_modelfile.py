"""minidet model files: metadata validation, round trip, and refusal of damaged files."""

from __future__ import annotations

import json
import struct

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from minidet.errors import ModelFileError, OutputError, ParameterError
from minidet.model import MiniMLNet, ModelMetadata, load_model, read_metadata, read_model_file, save_model_file


def small_net(seed: int = 0) -> MiniMLNet:
    torch.manual_seed(seed)
    net = MiniMLNet(window_size=120, lstm_units=8, dense_units=16, dropout=0.3)
    with torch.no_grad():  # non-trivial BatchNorm statistics, so a round trip checks them
        for block in net.blocks:
            block.bn.running_mean.uniform_(-1, 1)
            block.bn.running_var.uniform_(0.5, 2)
    return net.eval()


def meta_for(net: MiniMLNet, **kw) -> ModelMetadata:
    return ModelMetadata(name="tiny", window_size=net.window_size,
                         hyperparameters=net.hyperparameters(), **kw)


@pytest.fixture()
def saved(tmp_path):
    net = small_net()
    path = save_model_file(tmp_path / "tiny.minidet.safetensors", net,
                           meta_for(net, description="test", event_direction="positive"))
    return path, net


def test_metadata_defaults_follow_miniml():
    m = ModelMetadata(name="x")
    assert (m.window_size, m.stride, m.threshold, m.resample) == (600, 20, 0.5, True)
    assert (m.convolve_win, m.gradient_convolve_win) == (20, 40)
    assert m.input_size == 600 and m.hyperparameters["lstm_units"] == 96
    assert m.format_version == 1 and not m.invert
    assert ModelMetadata(name="x", window_size=3000).stride == 100
    assert ModelMetadata(name="x", event_direction="positive").invert
    assert ModelMetadata.from_dict(m.to_dict()) == m
    with pytest.raises(Exception):
        m.name = "y"  # frozen


@pytest.mark.parametrize("kwargs, words", [
    ({"name": ""}, "name"),
    ({"window_size": 0}, "window_size"),
    ({"window_size": 600.0}, "window_size"),
    ({"training_direction": "up"}, "training_direction"),
    ({"event_direction": "Negative"}, "event_direction"),
    ({"threshold": 1.0}, "threshold"),
    ({"threshold": float("nan")}, "threshold"),
    ({"stride": 0}, "stride"),
    ({"stride": 601}, "stride"),
    ({"resample": "yes"}, "resample"),
    ({"convolve_win": 0}, "convolve_win"),
    ({"architecture": "resnet"}, "architecture"),
    ({"format_version": 99}, "format_version"),
    ({"hyperparameters": {"lstm_units": 8, "colour": "red"}}, "colour"),
    ({"hyperparameters": {"dropout": 2.0}}, "dropout"),
])
def test_metadata_validation(kwargs, words):
    with pytest.raises(ParameterError, match=words):
        ModelMetadata(**{"name": "x", **kwargs})


def test_metadata_from_dict_rejects_unknown_fields():
    d = ModelMetadata(name="x").to_dict()
    d["colour"] = "red"
    with pytest.raises(ParameterError, match="colour"):
        ModelMetadata.from_dict(d)


def test_round_trip_keeps_weights_and_metadata(saved):
    path, net = saved
    loaded, meta = read_model_file(path)
    assert meta.name == "tiny" and meta.event_direction == "positive"
    assert meta.window_size == 120 and meta.stride == 4
    assert not loaded.training
    x = torch.rand(5, 120)
    with torch.no_grad():
        assert torch.equal(loaded(x), net(x))
    assert read_metadata(path) == meta
    model = load_model(path)
    assert model.metadata == meta and model.window_size == 120
    assert model.predict_windows(np.random.default_rng(0).normal(size=(3, 120))).shape == (3,)


def test_file_holds_only_tensors_and_json(saved):
    path, _ = saved
    raw = path.read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + n])
    meta = json.loads(header["__metadata__"]["minidet"])
    assert meta["format_version"] == 1 and meta["architecture"] == "miniml-cnn-bilstm"
    assert all(v["dtype"] == "F32" for k, v in header.items() if k != "__metadata__")
    assert not any("num_batches_tracked" in k for k in header)


def test_save_refuses_to_overwrite(saved):
    path, net = saved
    with pytest.raises(OutputError, match="exists"):
        save_model_file(path, net, meta_for(net))
    save_model_file(path, net, meta_for(net, threshold=0.7), overwrite=True)
    assert read_metadata(path).threshold == 0.7
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temp file left


def test_save_refuses_metadata_of_another_network(tmp_path):
    net = small_net()
    with pytest.raises(ParameterError, match="hyperparameters"):
        save_model_file(tmp_path / "x.safetensors", net, ModelMetadata(name="x"))


def test_truncated_file(saved):
    path, _ = saved
    data = path.read_bytes()
    for cut in (4, 100, len(data) // 2, len(data) - 1):
        path.write_bytes(data[:cut])
        with pytest.raises(ModelFileError, match="tiny.minidet.safetensors"):
            load_model(path)


def test_garbage_and_empty_files(tmp_path):
    for content in (b"", b"\x00" * 64, b"hello world, not a model at all", b"\xff" * 8 + b"{}"):
        path = tmp_path / "bad.safetensors"
        path.write_bytes(content)
        with pytest.raises(ModelFileError):
            load_model(path)


def test_missing_file_names_the_path(tmp_path):
    with pytest.raises(ModelFileError, match="not found.*nope.minidet.safetensors"):
        load_model(tmp_path / "nope.minidet.safetensors")
    with pytest.raises(ModelFileError, match="not a file"):
        load_model(tmp_path)


def _rewrite(path, tensors, metadata):
    save_file(tensors, str(path), metadata=metadata)


def _contents(path):
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as fh:
        return {k: fh.get_tensor(k) for k in fh.keys()}, fh.metadata()


def test_missing_extra_and_misshapen_tensors(saved):
    path, _ = saved
    tensors, header = _contents(path)

    t = dict(tensors)
    del t["out.bias"]
    _rewrite(path, t, header)
    with pytest.raises(ModelFileError, match="missing tensor.*out.bias"):
        read_model_file(path)

    t = dict(tensors, extra=torch.zeros(3))
    _rewrite(path, t, header)
    with pytest.raises(ModelFileError, match="unexpected tensor.*extra"):
        read_model_file(path)

    t = dict(tensors)
    t["dense.weight"] = torch.zeros(16, 9)
    _rewrite(path, t, header)
    with pytest.raises(ModelFileError, match=r"dense.weight has shape \(16, 9\).*\(16, 8\)"):
        read_model_file(path)

    t = dict(tensors)
    t["dense.bias"] = torch.full((16,), float("nan"))
    _rewrite(path, t, header)
    with pytest.raises(ModelFileError, match="NaN"):
        read_model_file(path)

    t = dict(tensors)
    t["dense.bias"] = torch.zeros(16, dtype=torch.int32)
    _rewrite(path, t, header)
    with pytest.raises(ModelFileError, match="dtype"):
        read_model_file(path)


def test_bad_metadata(saved):
    path, _ = saved
    tensors, header = _contents(path)
    _rewrite(path, tensors, None)
    with pytest.raises(ModelFileError, match="without minidet metadata"):
        read_model_file(path)
    _rewrite(path, tensors, {"minidet": "{not json"})
    with pytest.raises(ModelFileError, match="not valid JSON"):
        read_model_file(path)
    meta = json.loads(header["minidet"])
    _rewrite(path, tensors, {"minidet": json.dumps(dict(meta, format_version=3))})
    with pytest.raises(ModelFileError, match="format 3 is not supported"):
        read_model_file(path)
    # format 1 cannot hold a noise-scaled model
    _rewrite(path, tensors, {"minidet": json.dumps(dict(meta, input_scaling="noise"))})
    with pytest.raises(ModelFileError, match="need model file format 2"):
        read_model_file(path)
    _rewrite(path, tensors, {"minidet": json.dumps(dict(meta, auto_threshold=True))})
    with pytest.raises(ModelFileError, match="need model file format 2"):
        read_model_file(path)
    _rewrite(path, tensors, {"minidet": json.dumps(dict(meta, auto_threshold="yes", format_version=2))})
    with pytest.raises(ModelFileError, match="auto_threshold must be true or false"):
        read_model_file(path)
    _rewrite(path, tensors, {"minidet": json.dumps(dict(meta, input_scaling="zscore", format_version=2))})
    with pytest.raises(ModelFileError, match="input_scaling must be one of"):
        read_model_file(path)
    _rewrite(path, tensors, {"minidet": json.dumps(dict(meta, threshold=3))})
    with pytest.raises(ModelFileError, match="threshold"):
        read_model_file(path)
    # Metadata describing another network than the tensors hold.
    _rewrite(path, tensors, {"minidet": json.dumps(dict(meta, hyperparameters={}))})
    with pytest.raises(ModelFileError, match="shape|missing"):
        read_model_file(path)


def test_loading_never_unpickles(saved, monkeypatch):
    import pickle

    def forbidden(*args, **kwargs):
        raise AssertionError("a model file was unpickled")

    monkeypatch.setattr(torch, "load", forbidden)
    monkeypatch.setattr(pickle, "load", forbidden)
    monkeypatch.setattr(pickle, "loads", forbidden)
    path, _ = saved
    assert load_model(path).name == "tiny"
    assert load_model("gc").name == "gc"
