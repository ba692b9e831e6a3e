"""minidet's model file: one safetensors file with the metadata as JSON in its header.

Format (version 1), conventionally named ``<name>.minidet.safetensors``:

* tensors: the :class:`~minidet.model.network.MiniMLNet` state dict (without BatchNorm's
  ``num_batches_tracked`` counters), float32, names as in ``network.state_dict()``;
* header metadata (``__metadata__``, a str -> str map) with one key, ``"minidet"``: the JSON of
  :class:`ModelMetadata` (:meth:`ModelMetadata.to_dict`, keys sorted), whose
  ``format_version`` is the file-format version. One key keeps the header byte-identical from
  run to run (safetensors does not order several metadata keys).

Loading uses ``safetensors.safe_open`` only: nothing is unpickled, so a model file cannot run
code. Every problem (not safetensors, truncated, bad JSON, missing or extra tensor, wrong shape
or dtype, non-finite weights) raises :class:`minidet.errors.ModelFileError` naming the file.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Mapping

import torch
from safetensors import safe_open
from safetensors.torch import save as save_bytes

from .. import __version__
from ..windows import default_stride, may_resample
from ..errors import ModelFileError, OutputError, ParameterError
from ..fsutil import atomic_write
from .network import INPUT_SCALINGS, ConvBlockSpec, MiniMLNet

#: Version 2 adds ``input_scaling``; files of min-max models are still written as version 1
#: (byte for byte as before), so older minidet versions keep reading them.
FORMAT_VERSION = 2
FILE_SUFFIX = ".minidet.safetensors"
ARCHITECTURES = ("miniml-cnn-bilstm",)
DIRECTIONS = ("negative", "positive")
_METADATA_KEY = "minidet"

__all__ = ["ModelMetadata", "save_model_file", "read_model_file", "read_metadata",
           "network_from_hyperparameters", "FILE_SUFFIX", "FORMAT_VERSION"]


def _need(cond: bool, message: str) -> None:
    if not cond:
        raise ParameterError(message)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


@dataclass(frozen=True)
class ModelMetadata:
    """What a minidet model is, how it was trained and the detection defaults it suggests.

    Parameters
    ----------
    name : str
        Short name (e.g. ``"gc"``).
    window_size : int
        Window length in recording samples the model was trained with. With ``resample`` the
        detector resamples a recording by ``input_size / window_size`` so that one window fills
        the network input (miniML's ``resample_to_600``).
    hyperparameters : dict
        :meth:`MiniMLNet.hyperparameters`; ``hyperparameters["window_size"]`` is the network
        input length in samples (600 for miniML's models).
    training_direction : {"negative", "positive"}
        Polarity of the events in the training data; recordings are inverted for prediction
        when it differs from ``event_direction``.
    event_direction : {"negative", "positive"}
        Default polarity of the events in recordings this model is meant for.
    threshold : float
        Suggested minimum peak height of the prediction, in (0, 1).
    stride : int or None
        Default step between windows in recording samples; None means ``round(window_size / 30)``.
    resample : bool
        Whether this model may be resampled, i.e. score windows of any size (the trace is
        resampled so that a window fills the network input). Always true for a network with
        miniML's 600-sample input; false only for a model trained from scratch on another
        window length, which scores windows of its own input size.
    convolve_win, gradient_convolve_win : int or None
        Default Hann-window lengths (samples) for the trace and its derivative; None if unknown.
    smoothing_steps : int
        Default moving average of the prediction, in prediction steps, before its peaks are
        found (1 = none, miniML's models).
    peak_prominence : float or None
        Default minimum prominence of a prediction peak; None = the threshold (miniML).
    auto_threshold : bool
        Detect with ``threshold="auto"`` by default: a threshold chosen for each recording
        from its own inverted trace (:mod:`minidet.detection.autothreshold`); ``threshold``
        is then the level of a confident detection.
    input_scaling : {"minmax", "noise"}
        How windows are scaled for the network, fixed by its training: ``"minmax"`` (miniML's
        models: each window to [0, 1] on its own) or ``"noise"`` (in units of the recording's
        noise SD; :func:`minidet.model.network.noise_scale`).
    description : str
        What the model is for and what it was trained on.
    source_file, source_sha256 : str
        The file it was converted from (or trained from) and its SHA-256 ("" if none).
    license : str
        Licence of the weights.
    provenance : dict
        How a trained model was made (dataset hash and counts, settings, metrics); JSON-ready.
        Empty for converted models.
    architecture : str
        ``"miniml-cnn-bilstm"``.
    minidet_version, format_version
        Writer version and file-format version.
    """

    name: str
    window_size: int = 600
    hyperparameters: Mapping[str, Any] = field(default_factory=dict)
    training_direction: str = "negative"
    event_direction: str = "negative"
    threshold: float = 0.5
    stride: int | None = None
    resample: bool = True
    convolve_win: int | None = 20
    gradient_convolve_win: int | None = 40
    smoothing_steps: int = 1
    peak_prominence: float | None = None
    input_scaling: str = "minmax"
    auto_threshold: bool = False
    description: str = ""
    source_file: str = ""
    source_sha256: str = ""
    license: str = ""
    provenance: Mapping[str, Any] = field(default_factory=dict)
    architecture: str = "miniml-cnn-bilstm"
    minidet_version: str = __version__
    format_version: int | None = None

    def __post_init__(self) -> None:
        _need(isinstance(self.name, str) and self.name.strip() != "",
              f"name must be a non-empty string, got {self.name!r}")
        _need(_is_int(self.window_size) and self.window_size >= 1,
              f"window_size must be a positive integer (samples), got {self.window_size!r}")
        for key in ("training_direction", "event_direction"):
            value = getattr(self, key)
            _need(value in DIRECTIONS, f"{key} must be one of {DIRECTIONS}, got {value!r}")
        _need(isinstance(self.threshold, (int, float)) and not isinstance(self.threshold, bool)
              and 0.0 < float(self.threshold) < 1.0,
              f"threshold must be in (0, 1), got {self.threshold!r}")
        object.__setattr__(self, "threshold", float(self.threshold))
        if self.stride is None:
            object.__setattr__(self, "stride", default_stride(self.window_size))
        _need(_is_int(self.stride) and 1 <= self.stride <= self.window_size,
              f"stride must be an integer in [1, window_size={self.window_size}] samples, "
              f"got {self.stride!r}")
        _need(isinstance(self.resample, bool), f"resample must be true or false, got {self.resample!r}")
        for key in ("convolve_win", "gradient_convolve_win"):
            value = getattr(self, key)
            _need(value is None or (_is_int(value) and value >= 1),
                  f"{key} must be a positive integer (samples) or None, got {value!r}")
        _need(_is_int(self.smoothing_steps) and self.smoothing_steps >= 1,
              f"smoothing_steps must be an integer >= 1 (prediction steps), got {self.smoothing_steps!r}")
        _need(self.peak_prominence is None or (
            isinstance(self.peak_prominence, (int, float)) and not isinstance(self.peak_prominence, bool)
            and 0.0 < float(self.peak_prominence) <= 1.0),
            f"peak_prominence must be in (0, 1] or None, got {self.peak_prominence!r}")
        _need(self.input_scaling in INPUT_SCALINGS,
              f"input_scaling must be one of {INPUT_SCALINGS}, got {self.input_scaling!r}")
        _need(isinstance(self.auto_threshold, bool),
              f"auto_threshold must be true or false, got {self.auto_threshold!r}")
        if self.format_version is None:  # the oldest format that holds this model
            object.__setattr__(self, "format_version", 1 if self._format_1 else 2)
        _need(self.architecture in ARCHITECTURES,
              f"architecture must be one of {ARCHITECTURES}, got {self.architecture!r}")
        _need(_is_int(self.format_version) and 1 <= self.format_version <= FORMAT_VERSION,
              f"format_version {self.format_version!r} is not supported (this minidet reads "
              f"up to {FORMAT_VERSION}; upgrade minidet)")
        _need(self._format_1 or self.format_version >= 2,
              f"input_scaling {self.input_scaling!r} and auto_threshold {self.auto_threshold} need model file "
              f"format 2, got {self.format_version}")
        for key in ("description", "source_file", "source_sha256", "license", "minidet_version"):
            _need(isinstance(getattr(self, key), str), f"{key} must be a string")
        _need(isinstance(self.provenance, Mapping),
              f"provenance must be a mapping, got {type(self.provenance).__name__}")
        try:
            object.__setattr__(self, "provenance", json.loads(json.dumps(dict(self.provenance))))
        except (TypeError, ValueError) as exc:
            raise ParameterError(f"provenance must be JSON-serialisable: {exc}") from None
        _need(isinstance(self.hyperparameters, Mapping),
              f"hyperparameters must be a mapping, got {type(self.hyperparameters).__name__}")
        # Validate by building (cheaply) the network the hyperparameters describe, and store
        # them complete (defaults filled in) so that files are explicit.
        network = network_from_hyperparameters(self.hyperparameters)
        object.__setattr__(self, "hyperparameters", network.hyperparameters())
        # ``resample`` means "this model may be resampled": true for every 600-input network
        # (miniML's rule); files written before the rule (gc-robust, models trained on
        # 600-sample snippets) said false and read as true
        object.__setattr__(self, "resample", may_resample(self.input_size, self.resample))

    @property
    def _format_1(self) -> bool:
        """Whether format 1 can hold this model (no field that format 2 added is in use)."""
        return self.input_scaling == "minmax" and not self.auto_threshold

    @property
    def input_size(self) -> int:
        """Network input length in samples (600 for miniML's models)."""
        return int(self.hyperparameters.get("window_size", 600))

    @property
    def invert(self) -> bool:
        """True if recordings must be inverted before prediction (directions differ)."""
        return self.training_direction != self.event_direction

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict of every field."""
        d = asdict(self)
        d["hyperparameters"] = json.loads(json.dumps(dict(self.hyperparameters)))
        if self.format_version == 1:  # format 1 has neither key: min-max models' files stay as they were
            del d["input_scaling"], d["auto_threshold"]
        return d

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "ModelMetadata":
        """Build from :meth:`to_dict` output; unknown keys raise ParameterError."""
        if not isinstance(data, Mapping):
            raise ParameterError("model metadata must be a JSON object")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        _need(not unknown, f"unknown model metadata field(s): {', '.join(unknown)}")
        _need("name" in data, "model metadata lacks 'name'")
        return cls(**dict(data))

    def replace(self, **changes: Any) -> "ModelMetadata":
        """A copy with some fields changed (validated again)."""
        d = self.to_dict()
        d.update(changes)
        if {"input_scaling", "auto_threshold"} & set(changes) and "format_version" not in changes:
            d.pop("format_version", None)  # chosen again
        return ModelMetadata.from_dict(d)


def network_from_hyperparameters(hp: Mapping[str, Any]) -> MiniMLNet:
    """Build an (untrained) :class:`MiniMLNet` from stored hyperparameters."""
    try:
        kwargs = dict(hp)
        blocks = kwargs.pop("conv_blocks", None)
        if blocks is not None:
            kwargs["conv_blocks"] = tuple(ConvBlockSpec(int(f), int(k), int(p)) for f, k, p in blocks)
        allowed = {"window_size", "lstm_units", "dense_units", "dropout", "lstm_input_dropout",
                   "conv_blocks"}
        extra = sorted(set(kwargs) - allowed)
        if extra:
            raise ParameterError(f"unknown network hyperparameter(s): {', '.join(extra)}")
        return MiniMLNet(**kwargs)
    except ParameterError:
        raise
    except (TypeError, ValueError) as exc:
        raise ParameterError(f"bad network hyperparameters {dict(hp)!r}: {exc}") from exc


def _tensors_for_file(network: MiniMLNet) -> dict[str, torch.Tensor]:
    return {k: v.detach().to("cpu", torch.float32).contiguous().clone()
            for k, v in network.state_dict().items() if not k.endswith("num_batches_tracked")}


def save_model_file(path: str | Path, network: MiniMLNet, metadata: ModelMetadata,
                    *, overwrite: bool = False) -> Path:
    """Write a minidet model file atomically (temp file in the same folder, then rename).

    Parameters
    ----------
    path : str or Path
        Destination, conventionally ``<name>.minidet.safetensors``.
    network : MiniMLNet
        Trained network; its hyperparameters must equal ``metadata.hyperparameters``.
    metadata : ModelMetadata
    overwrite : bool
        Replace an existing file; otherwise an existing file raises OutputError.
    """
    path = Path(path)
    if path.exists() and not overwrite:
        raise OutputError(f"{path} exists; pass overwrite=True (--force) to replace it")
    if dict(metadata.hyperparameters) != json.loads(json.dumps(network.hyperparameters())):
        raise ParameterError("metadata.hyperparameters do not describe this network: "
                             f"{dict(metadata.hyperparameters)} != {network.hyperparameters()}")
    header = {_METADATA_KEY: json.dumps(metadata.to_dict(), sort_keys=True)}
    folder = path.parent if str(path.parent) else Path(".")
    if not folder.is_dir():
        raise OutputError(f"folder does not exist: {folder}")
    # a temporary file in the destination folder, renamed into place (minidet.fsutil)
    blob = save_bytes(_tensors_for_file(network), metadata=header)
    try:
        with atomic_write(path, "wb") as fh:
            fh.write(blob)
    except OSError as exc:
        raise OutputError(f"cannot write {path}: {exc.strerror or exc}") from exc
    return path


def _open_error(path: Path, exc: Exception) -> ModelFileError:
    return ModelFileError(f"{path}: not a readable minidet model file (safetensors): {exc}")


def _check_path(path: str | Path) -> Path:
    path = Path(path)
    if not path.exists():
        raise ModelFileError(f"model file not found: {path}")
    if not path.is_file():
        raise ModelFileError(f"model path is not a file: {path}")
    return path


def _metadata_from_header(path: Path, header: Mapping[str, str] | None) -> ModelMetadata:
    header = header or {}
    if _METADATA_KEY not in header:
        raise ModelFileError(f"{path}: a safetensors file without minidet metadata "
                             "(not written by minidet; convert Keras files with `minidet convert`)")
    try:
        data = json.loads(header[_METADATA_KEY])
        if not isinstance(data, dict):
            raise ModelFileError(f"{path}: model metadata is not a JSON object")
        version = data.get("format_version")
        if not isinstance(version, int) or not 1 <= version <= FORMAT_VERSION:
            raise ModelFileError(f"{path}: model file format {version!r} is not supported "
                                 f"(this minidet reads format 1 to {FORMAT_VERSION}; upgrade minidet)")
        return ModelMetadata.from_dict(data)
    except json.JSONDecodeError as exc:
        raise ModelFileError(f"{path}: model metadata is not valid JSON: {exc}") from exc
    except ParameterError as exc:
        raise ModelFileError(f"{path}: invalid model metadata: {exc}") from exc


def read_metadata(path: str | Path) -> ModelMetadata:
    """Read only the metadata of a minidet model file (no tensors are loaded)."""
    path = _check_path(path)
    try:
        with safe_open(str(path), framework="pt") as fh:
            header = fh.metadata()
    except ModelFileError:
        raise
    except Exception as exc:  # safetensors raises its own error types for damaged files
        raise _open_error(path, exc) from exc
    return _metadata_from_header(path, header)


def read_model_file(path: str | Path) -> tuple[MiniMLNet, ModelMetadata]:
    """Load a minidet model file: the network (eval mode, CPU) and its metadata.

    Raises
    ------
    ModelFileError
        Missing, truncated or malformed file, bad metadata, or tensors that do not match the
        network the metadata describes (missing, unexpected, wrong shape or dtype, NaN).
    """
    path = _check_path(path)
    try:
        with safe_open(str(path), framework="pt") as fh:
            metadata = _metadata_from_header(path, fh.metadata())
            network = network_from_hyperparameters(metadata.hyperparameters)
            expected = {k: v for k, v in network.state_dict().items()
                        if not k.endswith("num_batches_tracked")}
            keys = set(fh.keys())
            missing = sorted(set(expected) - keys)
            extra = sorted(keys - set(expected))
            if missing or extra:
                parts = []
                if missing:
                    parts.append(f"missing tensor(s) {', '.join(missing)}")
                if extra:
                    parts.append(f"unexpected tensor(s) {', '.join(extra)}")
                raise ModelFileError(f"{path}: does not match the network: {'; '.join(parts)}")
            state = {}
            for key, ref in expected.items():
                tensor = fh.get_tensor(key)
                if tuple(tensor.shape) != tuple(ref.shape):
                    raise ModelFileError(f"{path}: tensor {key} has shape {tuple(tensor.shape)}, "
                                         f"the network needs {tuple(ref.shape)}")
                if not tensor.is_floating_point():
                    raise ModelFileError(f"{path}: tensor {key} has dtype {tensor.dtype}, need float")
                if not torch.isfinite(tensor).all():
                    raise ModelFileError(f"{path}: tensor {key} holds NaN or infinite values")
                state[key] = tensor.to(torch.float32)
    except ModelFileError:
        raise
    except ParameterError as exc:
        raise ModelFileError(f"{path}: invalid model metadata: {exc}") from exc
    except Exception as exc:  # safetensors raises its own error types for damaged files
        raise _open_error(path, exc) from exc
    network.load_state_dict(state, strict=False)
    return network.eval(), metadata

