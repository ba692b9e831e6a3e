"""Import miniML's Keras model files without TensorFlow.

(About 550 lines: two Keras file layouts (.h5 and .keras) mapped layer by layer onto the
network; splitting them would repeat the mapping.)

Two formats are read with h5py, zipfile and json alone:

* ``.h5`` (Keras 2 "legacy" HDF5): the model config is JSON in the root attribute
  ``model_config``; weights sit under ``model_weights/<layer name>/`` and each layer group lists
  its arrays in the attribute ``weight_names`` (``.../kernel:0``, ``.../bias:0``, ...).
* ``.keras`` (Keras 3 zip): ``config.json`` holds the model config and ``model.weights.h5`` the
  weights, under ``layers/<auto name>/vars/<index>`` in the order the layer created them (the
  ``vars`` group's ``name`` attribute gives the layer name of the config).

The layer list is checked against the miniML architecture option by option (padding, pool
sizes, strides, activations, merge mode, ...); anything :class:`MiniMLNet` cannot reproduce
raises :class:`minidet.errors.ModelFileError` instead of giving silently different outputs.

Layout conversions (Keras -> PyTorch): Conv1D kernel (k, in, out) -> (out, in, k); Dense kernel
(in, out) -> (out, in); LSTM kernel (in, 4h) -> weight_ih (4h, in), recurrent kernel (h, 4h) ->
weight_hh (4h, h), gates in the same order (i, f, c/g, o); Keras' single bias goes to bias_ih and
bias_hh is zero.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import re
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import h5py
import numpy as np
import torch

from ..errors import ModelFileError
from .network import BN_EPSILON, LEAKY_SLOPE, ConvBlockSpec, MiniMLNet

HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
ZIP_SIGNATURE = b"PK\x03\x04"

__all__ = ["KerasModel", "read_keras", "is_keras_file", "sha256_file"]


@dataclass(frozen=True)
class KerasModel:
    """A miniML Keras model read into PyTorch form.

    Attributes
    ----------
    network : MiniMLNet
        The network with the imported weights, in eval mode.
    hyperparameters : dict
        Constructor arguments of :class:`MiniMLNet` (``network.hyperparameters()``).
    source_path : str
        The file that was read.
    source_sha256 : str
        SHA-256 of that file (hex).
    source_format : str
        ``"keras2-h5"`` or ``"keras3-zip"``.
    keras_version : str or None
        Keras version that wrote the file, when it says.
    layer_names : tuple of str
        Names of the Keras layers, in order (for messages and provenance).
    """

    network: MiniMLNet
    hyperparameters: dict
    source_path: str
    source_sha256: str
    source_format: str
    keras_version: str | None
    layer_names: tuple[str, ...] = field(default=())


# ----------------------------------------------------------------------------- helpers
def sha256_file(path: str | Path) -> str:
    """SHA-256 (hex) of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def is_keras_file(path: str | Path) -> bool:
    """True if the file starts with an HDF5 or zip signature (a Keras .h5 or .keras file)."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(8)
    except OSError:
        return False
    return head.startswith(HDF5_SIGNATURE) or head.startswith(ZIP_SIGNATURE)


def _fail(path: str, message: str) -> ModelFileError:
    return ModelFileError(f"{path}: {message}")


def _as_str(value: Any) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


def _close(a: float, b: float, tol: float = 1e-6) -> bool:
    return math.isclose(float(a), float(b), rel_tol=tol, abs_tol=tol)


def _single(value: Any) -> Any:
    """Keras stores kernel_size / strides / pool_size as 1-element lists."""
    if isinstance(value, (list, tuple)):
        if len(value) != 1:
            raise ValueError(f"expected one value, got {value!r}")
        return value[0]
    return value


# ----------------------------------------------------------------------------- config parsing
@dataclass
class _ConvBlockPlan:
    conv: str
    bn: str
    pool: str | None
    spec: ConvBlockSpec
    bn_center: bool = True
    bn_scale: bool = True


@dataclass
class _Plan:
    window_size: int | None = None
    blocks: list[_ConvBlockPlan] = field(default_factory=list)
    bidirectional: str = ""
    lstm_units: int = 0
    lstm_input_dropout: float = 0.0
    dense: str = ""
    dense_units: int = 0
    dropout: float = 0.0
    out: str = ""
    layer_names: list[str] = field(default_factory=list)


def _layer_list(model_config: dict) -> list[dict]:
    cls = model_config.get("class_name")
    if cls not in ("Sequential", "Functional", "Model"):
        raise ValueError(f"top-level model class {cls!r} is not a Sequential model")
    cfg = model_config.get("config")
    layers = cfg if isinstance(cfg, list) else (cfg or {}).get("layers")
    if not isinstance(layers, list) or not layers:
        raise ValueError("model config lists no layers")
    if isinstance(cfg, dict) and cls != "Sequential":
        # A functional model is accepted only if it is a plain chain (the layers in order).
        for prev, layer in zip(layers, layers[1:]):
            nodes = layer.get("inbound_nodes") or []
            text = json.dumps(nodes)
            if prev.get("config", {}).get("name", prev.get("name")) not in text:
                raise ValueError("functional model is not a single chain of layers")
    return layers


def _input_length(layer_cfg: dict) -> int | None:
    for key in ("batch_input_shape", "batch_shape"):
        shape = layer_cfg.get(key)
        if shape:
            break
    else:
        build = layer_cfg.get("build_config") or {}
        shape = build.get("input_shape")
    if shape and len(shape) == 3 and shape[1] is not None:
        if shape[2] not in (1, None):
            raise ValueError(f"input has {shape[2]} channels; miniML networks take 1")
        return int(shape[1])
    return None


def _leaky_slope(cfg: dict) -> float | None:
    for key in ("alpha", "negative_slope"):
        if key in cfg:
            return float(cfg[key])
    return None


def _dense_activation(cfg: dict) -> str:
    """Return 'leaky', 'linear' or 'sigmoid' for a Dense layer's activation."""
    act = cfg.get("activation", "linear")
    if isinstance(act, dict):
        if act.get("class_name") == "LeakyReLU":
            slope = _leaky_slope(act.get("config", {}))
            if slope is None or not _close(slope, LEAKY_SLOPE):
                raise ValueError(f"LeakyReLU activation slope {slope!r} is not 0.3")
            return "leaky"
        act = act.get("config", {}).get("name", act.get("class_name"))
    act = str(act).lower()
    if act in ("linear", "sigmoid"):
        return act
    raise ValueError(f"dense activation {act!r} is not supported (linear, sigmoid, LeakyReLU(0.3))")


def _check(cond: bool, message: str) -> None:
    if not cond:
        raise ValueError(message)


def _parse_config(model_config: dict) -> _Plan:
    """Check the Keras layer list against the miniML architecture and collect its sizes."""
    layers = _layer_list(model_config)
    plan = _Plan()
    top = model_config.get("config")
    if isinstance(top, dict) and top.get("build_input_shape"):
        plan.window_size = _input_length({"batch_input_shape": top["build_input_shape"]})

    items = [(lyr.get("class_name"), lyr.get("config", {})) for lyr in layers]
    names = [cfg.get("name", "?") for _, cfg in items]
    plan.layer_names = names
    i = 0
    n = len(items)

    def peek(offset: int = 0) -> str | None:
        return items[i + offset][0] if i + offset < n else None

    if peek() == "InputLayer":
        plan.window_size = _input_length(items[0][1]) or plan.window_size
        i += 1
    if plan.window_size is None and i < n:
        plan.window_size = _input_length(items[i][1]) or _input_length(layers[i])

    # convolution blocks
    while peek() == "Conv1D":
        cls, conv = items[i]
        where = f"layer {conv.get('name')!r}"
        _check(conv.get("padding") == "same", f"{where}: padding {conv.get('padding')!r} (need 'same')")
        _check(_single(conv.get("strides", [1])) == 1, f"{where}: strides must be 1")
        _check(_single(conv.get("dilation_rate", [1])) == 1, f"{where}: dilation must be 1")
        _check(conv.get("groups", 1) == 1, f"{where}: groups must be 1")
        _check(conv.get("data_format", "channels_last") == "channels_last",
               f"{where}: data_format must be channels_last")
        _check(conv.get("use_bias", True) is True, f"{where}: use_bias must be true")
        _check(_dense_activation(conv) == "linear", f"{where}: activation must be linear")
        filters = int(conv["filters"])
        kernel = int(_single(conv["kernel_size"]))
        i += 1
        _check(peek() == "BatchNormalization", f"{where}: expected BatchNormalization after Conv1D")
        bn = items[i][1]
        _check(_close(bn.get("epsilon", 1e-3), BN_EPSILON),
               f"layer {bn.get('name')!r}: epsilon {bn.get('epsilon')} (need 0.001)")
        axis = bn.get("axis", -1)
        axis = _single(axis) if isinstance(axis, (list, tuple)) else axis
        _check(axis in (-1, 2), f"layer {bn.get('name')!r}: axis {axis} (need the channel axis)")
        bn_name = bn["name"]
        center, scale = bool(bn.get("center", True)), bool(bn.get("scale", True))
        i += 1
        _check(peek() == "LeakyReLU", f"layer {bn_name!r}: expected LeakyReLU after BatchNormalization")
        slope = _leaky_slope(items[i][1])
        _check(slope is not None and _close(slope, LEAKY_SLOPE),
               f"layer {items[i][1].get('name')!r}: LeakyReLU slope {slope} (need 0.3)")
        i += 1
        pool_name, pool = None, 1
        if peek() == "AveragePooling1D":
            pcfg = items[i][1]
            pool = int(_single(pcfg["pool_size"]))
            stride = pcfg.get("strides")
            stride = pool if stride is None else int(_single(stride))
            _check(stride == pool, f"layer {pcfg.get('name')!r}: strides {stride} != pool size {pool}")
            _check(pcfg.get("padding", "valid") == "valid",
                   f"layer {pcfg.get('name')!r}: padding must be 'valid'")
            pool_name = pcfg.get("name")
            i += 1
        plan.blocks.append(_ConvBlockPlan(conv["name"], bn_name, pool_name,
                                          ConvBlockSpec(filters, kernel, pool), center, scale))
    _check(bool(plan.blocks), "no Conv1D layers where the miniML network starts")

    # bidirectional LSTM
    _check(peek() == "Bidirectional", f"expected Bidirectional(LSTM) after the conv blocks, got {peek()!r}")
    bcfg = items[i][1]
    plan.bidirectional = bcfg["name"]
    _check(bcfg.get("merge_mode") == "sum", f"Bidirectional merge_mode {bcfg.get('merge_mode')!r} (need 'sum')")
    inner = bcfg.get("layer", {})
    _check(inner.get("class_name") == "LSTM", f"Bidirectional wraps {inner.get('class_name')!r}, not LSTM")
    lstm = inner.get("config", {})
    _check(not lstm.get("return_sequences", False), "LSTM return_sequences must be false")
    _check(not lstm.get("go_backwards", False), "forward LSTM must not go backwards")
    _check(lstm.get("activation", "tanh") == "tanh", f"LSTM activation {lstm.get('activation')!r} (need tanh)")
    _check(lstm.get("recurrent_activation", "sigmoid") == "sigmoid",
           f"LSTM recurrent_activation {lstm.get('recurrent_activation')!r} (need sigmoid)")
    _check(lstm.get("use_bias", True) is True, "LSTM use_bias must be true")
    plan.lstm_units = int(lstm["units"])
    plan.lstm_input_dropout = float(lstm.get("dropout", 0.0))
    i += 1

    # dense + LeakyReLU
    _check(peek() == "Dense", f"expected Dense after the LSTM, got {peek()!r}")
    dcfg = items[i][1]
    plan.dense, plan.dense_units = dcfg["name"], int(dcfg["units"])
    act = _dense_activation(dcfg)
    i += 1
    if act == "linear":
        _check(peek() == "LeakyReLU", f"layer {plan.dense!r}: expected LeakyReLU activation")
        slope = _leaky_slope(items[i][1])
        _check(slope is not None and _close(slope, LEAKY_SLOPE), f"LeakyReLU slope {slope} (need 0.3)")
        i += 1
    else:
        _check(act == "leaky", f"layer {plan.dense!r}: activation {act!r} (need LeakyReLU)")

    if peek() == "Dropout":
        plan.dropout = float(items[i][1].get("rate", 0.0))
        i += 1

    _check(peek() == "Dense", f"expected the output Dense layer, got {peek()!r}")
    ocfg = items[i][1]
    _check(int(ocfg["units"]) == 1, f"output layer has {ocfg['units']} units (need 1)")
    _check(_dense_activation(ocfg) == "sigmoid", "output layer activation must be sigmoid")
    plan.out = ocfg["name"]
    i += 1
    _check(i == n, f"unexpected layers after the output: {names[i:]}")
    _check(plan.window_size is not None, "the config does not give the input length")
    return plan


# ----------------------------------------------------------------------------- weight readers
class _Keras2Weights:
    """Weights of a Keras 2 HDF5 file: ``model_weights/<layer>/`` with ``weight_names``."""

    def __init__(self, root: h5py.Group) -> None:
        self.root = root

    def arrays(self, layer: str) -> list[tuple[str, np.ndarray]]:
        if layer not in self.root:
            raise ValueError(f"no weights for layer {layer!r}")
        group = self.root[layer]
        names = group.attrs.get("weight_names")
        if names is None:
            found: list[str] = []
            group.visititems(lambda n, o: found.append(n) if isinstance(o, h5py.Dataset) else None)
            names = found
        return [(_as_str(n), np.asarray(group[_as_str(n)][()])) for n in names]

    @staticmethod
    def _key(name: str) -> str:
        return name.rsplit("/", 1)[-1].split(":")[0]

    def named(self, layer: str) -> dict[str, np.ndarray]:
        return {self._key(n): a for n, a in self.arrays(layer)}

    def conv(self, layer: str) -> tuple[np.ndarray, np.ndarray]:
        w = self.named(layer)
        return w["kernel"], w["bias"]

    dense = conv

    def batchnorm(self, layer: str, center: bool, scale: bool) -> dict[str, np.ndarray]:
        return self.named(layer)

    def lstm(self, layer: str) -> dict[str, dict[str, np.ndarray]]:
        arrays = self.arrays(layer)
        out: dict[str, dict[str, np.ndarray]] = {"forward": {}, "backward": {}}
        for k, (name, arr) in enumerate(arrays):
            direction = ("backward" if "backward" in name else "forward" if "forward" in name
                         else ("forward" if k < len(arrays) // 2 else "backward"))
            out[direction][self._key(name)] = arr
        return out


class _Keras3Weights:
    """Weights of a Keras 3 ``model.weights.h5``: ``layers/<auto name>/vars/<index>``."""

    def __init__(self, root: h5py.Group, layer_classes: list[tuple[str, str]]) -> None:
        self.root = root
        layers = root.get("layers")
        if layers is None:
            raise ValueError("model.weights.h5 has no 'layers' group")
        self.groups: dict[str, h5py.Group] = {}
        for key in layers:
            vars_group = layers[key].get("vars")
            label = _as_str(vars_group.attrs.get("name", "")) if vars_group is not None else ""
            if label:
                self.groups[label] = layers[key]
        # Fallback: Keras 3 names the groups snake_case(class name) with a counter per name.
        counts: dict[str, int] = {}
        for name, cls in layer_classes:
            if name in self.groups:
                continue
            # Conv1D -> conv1d, BatchNormalization -> batch_normalization, Dense -> dense
            base = re.sub(r"(?<!^)(?=[A-Z])", "_", cls).lower().replace("1_d", "1d")
            idx = counts.get(base, 0)
            counts[base] = idx + 1
            key = base if idx == 0 else f"{base}_{idx}"
            if key in layers:
                self.groups[name] = layers[key]

    def _vars(self, group: h5py.Group) -> list[np.ndarray]:
        v = group.get("vars")
        if v is None:
            return []
        return [np.asarray(v[str(k)][()]) for k in range(len(v))]

    def _group(self, layer: str) -> h5py.Group:
        if layer not in self.groups:
            raise ValueError(f"no weights for layer {layer!r}")
        return self.groups[layer]

    def conv(self, layer: str) -> tuple[np.ndarray, np.ndarray]:
        v = self._vars(self._group(layer))
        if len(v) != 2:
            raise ValueError(f"layer {layer!r} holds {len(v)} arrays (need kernel, bias)")
        return v[0], v[1]

    dense = conv

    def batchnorm(self, layer: str, center: bool, scale: bool) -> dict[str, np.ndarray]:
        v = self._vars(self._group(layer))
        keys = (["gamma"] if scale else []) + (["beta"] if center else []) + ["moving_mean", "moving_variance"]
        if len(v) != len(keys):
            raise ValueError(f"layer {layer!r} holds {len(v)} arrays (need {', '.join(keys)})")
        return dict(zip(keys, v))

    def lstm(self, layer: str) -> dict[str, dict[str, np.ndarray]]:
        group = self._group(layer)
        out = {}
        for direction in ("forward", "backward"):
            sub = group.get(f"{direction}_layer")
            cell = sub.get("cell") if sub is not None else None
            v = self._vars(cell) if cell is not None else []
            if len(v) != 3:
                raise ValueError(f"layer {layer!r}: {direction} LSTM holds {len(v)} arrays "
                                 "(need kernel, recurrent_kernel, bias)")
            out[direction] = dict(zip(("kernel", "recurrent_kernel", "bias"), v))
        return out


# ----------------------------------------------------------------------------- conversion
def _state_dict(plan: _Plan, weights: Any) -> dict[str, torch.Tensor]:
    sd: dict[str, np.ndarray] = {}
    for b, block in enumerate(plan.blocks):
        kernel, bias = weights.conv(block.conv)
        sd[f"blocks.{b}.conv.conv.weight"] = np.transpose(kernel, (2, 1, 0))
        sd[f"blocks.{b}.conv.conv.bias"] = bias
        bn = weights.batchnorm(block.bn, block.bn_center, block.bn_scale)
        n = block.spec.filters
        sd[f"blocks.{b}.bn.weight"] = bn.get("gamma", np.ones(n, np.float32))
        sd[f"blocks.{b}.bn.bias"] = bn.get("beta", np.zeros(n, np.float32))
        sd[f"blocks.{b}.bn.running_mean"] = bn["moving_mean"]
        sd[f"blocks.{b}.bn.running_var"] = bn["moving_variance"]
    lstm = weights.lstm(plan.bidirectional)
    for direction, suffix in (("forward", "l0"), ("backward", "l0_reverse")):
        cell = lstm[direction]
        sd[f"lstm.weight_ih_{suffix}"] = cell["kernel"].T
        sd[f"lstm.weight_hh_{suffix}"] = cell["recurrent_kernel"].T
        sd[f"lstm.bias_ih_{suffix}"] = cell["bias"]
        sd[f"lstm.bias_hh_{suffix}"] = np.zeros_like(cell["bias"])
    kernel, bias = weights.dense(plan.dense)
    sd["dense.weight"], sd["dense.bias"] = kernel.T, bias
    kernel, bias = weights.dense(plan.out)
    sd["out.weight"], sd["out.bias"] = kernel.T, bias
    return {k: torch.from_numpy(np.ascontiguousarray(v, dtype=np.float32)) for k, v in sd.items()}


def _build(plan: _Plan, weights: Any) -> MiniMLNet:
    net = MiniMLNet(window_size=plan.window_size, lstm_units=plan.lstm_units,
                    dense_units=plan.dense_units, dropout=plan.dropout,
                    lstm_input_dropout=plan.lstm_input_dropout,
                    conv_blocks=tuple(b.spec for b in plan.blocks))
    sd = _state_dict(plan, weights)
    expected = net.state_dict()
    for key, tensor in sd.items():
        if tuple(expected[key].shape) != tuple(tensor.shape):
            raise ValueError(f"weight {key} has shape {tuple(tensor.shape)}, "
                             f"the network needs {tuple(expected[key].shape)}")
        if not torch.isfinite(tensor).all():
            raise ValueError(f"weight {key} holds NaN or infinite values")
    net.load_state_dict(sd, strict=False)  # num_batches_tracked stays at its default
    return net.eval()


def _read_h5(path: str) -> tuple[dict, Callable[[_Plan], Any], str | None, Any]:
    fh = h5py.File(path, "r")
    raw = fh.attrs.get("model_config")
    if raw is None:
        fh.close()
        raise ValueError("the HDF5 file holds no 'model_config' (a weights-only file?); "
                         "save the whole Keras model")
    config = json.loads(_as_str(raw))
    root = fh["model_weights"] if "model_weights" in fh else fh
    version = fh.attrs.get("keras_version")
    return config, (lambda plan: _Keras2Weights(root)), (_as_str(version) if version is not None else None), fh


def _read_zip(path: str) -> tuple[dict, Callable[[_Plan], Any], str | None, Any]:
    with zipfile.ZipFile(path) as zf:
        names = set(zf.namelist())
        for needed in ("config.json", "model.weights.h5"):
            if needed not in names:
                raise ValueError(f"the .keras archive has no {needed}")
        config = json.loads(zf.read("config.json"))
        weights_bytes = zf.read("model.weights.h5")
        meta = json.loads(zf.read("metadata.json")) if "metadata.json" in names else {}
    fh = h5py.File(io.BytesIO(weights_bytes), "r")
    classes = [(lyr.get("config", {}).get("name", ""), lyr.get("class_name", ""))
               for lyr in _layer_list(config)]
    return config, (lambda plan: _Keras3Weights(fh, classes)), meta.get("keras_version"), fh


def read_keras(path: str | Path) -> KerasModel:
    """Read a miniML Keras model file (``.h5`` Keras 2 or ``.keras`` Keras 3) into PyTorch.

    Parameters
    ----------
    path : str or Path
        The Keras file. The format is recognised from its first bytes, not its name.

    Returns
    -------
    KerasModel
        The network (eval mode) and where it came from.

    Raises
    ------
    ModelFileError
        Missing file, not a Keras file, damaged file, or an architecture or option the miniML
        network cannot reproduce (the message names the layer and the option).
    """
    path = str(path)
    p = Path(path)
    if not p.exists():
        raise ModelFileError(f"model file not found: {path}")
    if not p.is_file():
        raise ModelFileError(f"model path is not a file: {path}")
    with open(p, "rb") as fh:
        head = fh.read(8)
    if head.startswith(HDF5_SIGNATURE):
        reader, fmt = _read_h5, "keras2-h5"
    elif head.startswith(ZIP_SIGNATURE):
        reader, fmt = _read_zip, "keras3-zip"
    else:
        raise _fail(path, "not a Keras model file (neither HDF5 nor a .keras zip archive)")
    handle = None
    try:
        config, make_weights, version, handle = reader(path)
        plan = _parse_config(config)
        network = _build(plan, make_weights(plan))
    except ModelFileError:
        raise
    except (OSError, KeyError, ValueError, TypeError, IndexError, AttributeError,
            zipfile.BadZipFile, json.JSONDecodeError, RuntimeError) as exc:
        raise _fail(path, f"cannot import the Keras model: {exc}") from exc
    finally:
        if handle is not None:
            handle.close()
    return KerasModel(network=network, hyperparameters=network.hyperparameters(),
                      source_path=path, source_sha256=sha256_file(path), source_format=fmt,
                      keras_version=version, layer_names=tuple(plan.layer_names))
