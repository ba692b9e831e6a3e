"""A loaded model (network + metadata) and :func:`load_model`."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import ModelFileError, ParameterError, UnknownModelError
from .keras import is_keras_file, read_keras
from .modelfile import ModelMetadata, read_model_file, save_model_file
from .network import MiniMLNet, minmax_scale, noise_scale
from .zoo import ZOO, bundled_path, is_model_name

DEFAULT_BATCH_SIZE = 512
_PATH_SUFFIXES = (".safetensors", ".h5", ".hdf5", ".keras")


def resolve_device(device: str | torch.device | None) -> torch.device:
    """Turn ``"cpu"``, ``"cuda"``, ``"cuda:1"``, ``"mps"`` or a torch.device into a device.

    Raises ParameterError for an unknown or unavailable device.
    """
    if device is None:
        return torch.device("cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise ParameterError(f"unknown device {device!r} (use 'cpu', 'cuda', 'cuda:N' or 'mps')") from exc
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ParameterError(f"device {device!r} requested but CUDA is not available")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise ParameterError(f"device {device!r}: only {torch.cuda.device_count()} CUDA device(s)")
    elif dev.type == "mps":
        if not (hasattr(torch.backends, "mps") and torch.backends.mps.is_available()):
            raise ParameterError(f"device {device!r} requested but MPS is not available")
    elif dev.type != "cpu":
        raise ParameterError(f"unsupported device {device!r} (use 'cpu', 'cuda' or 'mps')")
    return dev


class MinidetModel:
    """A classifier ready to predict: the network (eval mode), its metadata and a device.

    Attributes
    ----------
    network : MiniMLNet
        The torch module, in eval mode, on :attr:`device`.
    metadata : ModelMetadata
    device : torch.device
    """

    def __init__(self, network: MiniMLNet, metadata: ModelMetadata,
                 device: str | torch.device = "cpu") -> None:
        if not isinstance(network, MiniMLNet):
            raise ParameterError(f"network must be a MiniMLNet, got {type(network).__name__}")
        if not isinstance(metadata, ModelMetadata):
            raise ParameterError(f"metadata must be a ModelMetadata, got {type(metadata).__name__}")
        if network.window_size != metadata.input_size:
            raise ParameterError(f"network input {network.window_size} samples != metadata "
                                 f"input size {metadata.input_size}")
        self.metadata = metadata
        self.device = resolve_device(device)
        self.network = network.to(self.device).eval()
        #: a :class:`~minidet.detection.screen.Screen` distilled from this network (read by
        #: :func:`load_model` from the ``.screen.safetensors`` file beside the model file), or None
        self.screen = None

    # -- properties --------------------------------------------------------------------
    @property
    def name(self) -> str:
        """Short name from the metadata."""
        return self.metadata.name

    @property
    def window_size(self) -> int:
        """Window length in recording samples the model was trained with (metadata)."""
        return self.metadata.window_size

    @property
    def input_size(self) -> int:
        """Network input length in samples; :meth:`predict_windows` takes windows this long."""
        return self.network.window_size

    def __repr__(self) -> str:
        m = self.metadata
        return (f"MinidetModel(name={m.name!r}, window_size={m.window_size}, input_size="
                f"{self.input_size}, training_direction={m.training_direction!r}, "
                f"event_direction={m.event_direction!r}, device='{self.device}')")

    # -- device ------------------------------------------------------------------------
    def to(self, device: str | torch.device) -> "MinidetModel":
        """Move the network to ``device`` (in place) and return self."""
        self.device = resolve_device(device)
        self.network.to(self.device)
        return self

    # -- prediction --------------------------------------------------------------------
    def _check_windows(self, windows: Any) -> np.ndarray:
        arr = np.asarray(windows)
        if arr.dtype == object or not (np.issubdtype(arr.dtype, np.floating)
                                       or np.issubdtype(arr.dtype, np.integer)):
            raise ParameterError(f"windows must be a real numeric array, got dtype {arr.dtype}")
        if arr.ndim != 2 or arr.shape[1] != self.input_size:
            hint = ""
            if arr.ndim == 2 and arr.shape[1] == self.window_size != self.input_size:
                hint = (f"; this model's window is {self.window_size} recording samples: "
                        f"resample by {self.input_size}/{self.window_size} first")
            raise ParameterError(
                f"windows must have shape (n, {self.input_size}) (one raw window of "
                f"{self.input_size} samples per row), got {arr.shape}{hint}")
        if np.issubdtype(arr.dtype, np.floating):
            finite = np.isfinite(arr).all(axis=1)
            if not finite.all():
                bad = np.flatnonzero(~finite)
                raise ParameterError(f"windows hold NaN or infinite samples in {bad.size} row(s), "
                                     f"first at row {int(bad[0])}")
        return arr

    def predict_windows(self, windows: Any, batch_size: int = DEFAULT_BATCH_SIZE,
                        device: str | torch.device | None = None,
                        noise_sd: Any = None) -> np.ndarray:
        """Event probability of each raw window.

        Parameters
        ----------
        windows : array_like, shape (n, input_size)
            Raw samples (any real dtype), one window per row, in the polarity the network was
            trained on (invert beforehand if ``metadata.invert``). Each window is scaled here
            as the network expects (``metadata.input_scaling``): min-max to [0, 1], or by the
            noise SD of its recording.
        batch_size : int
            Windows per forward pass.
        device : str or torch.device, optional
            Run on this device (the network moves there and stays); default :attr:`device`.
        noise_sd : float or array of shape (n,), optional
            Noise-scaled models only, and required there: the noise SD of each window's
            recording (:func:`minidet.noise.recording_noise_sd`).

        Returns
        -------
        numpy.ndarray, shape (n,), float32
            Probabilities in [0, 1].

        Raises
        ------
        ParameterError
            Wrong shape or dtype, NaN or infinite samples, bad batch size or device, a missing
            or bad ``noise_sd`` for a noise-scaled model (or one given to a min-max model).
        """
        arr = self._check_windows(windows)
        noise = self.metadata.input_scaling == "noise"
        if noise:
            if noise_sd is None:
                raise ParameterError(
                    f"model {self.metadata.name!r} scales windows by their recording's noise: pass noise_sd "
                    "(minidet.noise.recording_noise_sd(recording, window_size))")
            sd = np.asarray(noise_sd, dtype=np.float64).reshape(-1)
            if sd.size not in (1, arr.shape[0]) or not np.all(np.isfinite(sd)) or np.any(sd <= 0):
                raise ParameterError(f"noise_sd must be one positive number or one per window "
                                     f"({arr.shape[0]}), got {noise_sd!r}")
            sd = np.broadcast_to(sd, (arr.shape[0],))
        elif noise_sd is not None:
            raise ParameterError(f"model {self.metadata.name!r} min-max scales each window; it takes no noise_sd")
        if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
            raise ParameterError(f"batch_size must be a positive integer, got {batch_size!r}")
        if device is not None:
            self.to(device)
        out = np.empty(arr.shape[0], dtype=np.float32)
        with torch.inference_mode():
            for start in range(0, arr.shape[0], int(batch_size)):
                chunk = arr[start:start + int(batch_size)].astype(np.float64, copy=False)
                if noise:
                    scaled = torch.from_numpy(noise_scale(chunk, sd[start:start + len(chunk)]))
                else:
                    scaled = torch.from_numpy(minmax_scale(chunk).astype(np.float32))
                probs = self.network(scaled.to(self.device))
                out[start:start + len(chunk)] = probs.float().cpu().numpy()
        return out

    # -- saving ------------------------------------------------------------------------
    def save(self, path: str | Path, overwrite: bool = False) -> Path:
        """Write this model as a minidet model file (see :mod:`minidet.model.modelfile`)."""
        # The tensors are copied to the CPU on writing; the network stays where it is.
        return save_model_file(path, self.network, self.metadata, overwrite=overwrite)


def from_keras(path: str | Path, *, name: str | None = None, window_size: int | None = None,
               training_direction: str = "negative", event_direction: str | None = None,
               threshold: float = 0.5, stride: int | None = None, resample: bool = True,
               convolve_win: int | None = 20, gradient_convolve_win: int | None = 40,
               description: str | None = None, license: str = "",
               device: str | torch.device = "cpu") -> MinidetModel:
    """Import a miniML Keras file (``.h5`` or ``.keras``) as a :class:`MinidetModel`.

    Keras files hold no detection settings, so they come from the arguments, whose defaults
    are miniML's: window_size = the network input (600), stride = window_size // 30,
    threshold 0.5, event_direction = training_direction, convolve_win 20,
    gradient_convolve_win 40, resample True.
    """
    km = read_keras(path)
    src = Path(km.source_path)
    if description is None:
        description = (f"Imported from the Keras file {src.name} ({km.source_format}, Keras "
                       f"{km.keras_version or 'unknown'}); detection settings are miniML's defaults.")
    metadata = ModelMetadata(
        name=name or src.stem,
        window_size=km.network.window_size if window_size is None else window_size,
        hyperparameters=km.hyperparameters,
        training_direction=training_direction,
        event_direction=event_direction or training_direction,
        threshold=threshold, stride=stride, resample=resample,
        convolve_win=convolve_win, gradient_convolve_win=gradient_convolve_win,
        description=description, source_file=src.name, source_sha256=km.source_sha256,
        license=license,
    )
    return MinidetModel(km.network, metadata, device=device)


def _looks_like_path(text: str) -> bool:
    return (os.sep in text or "/" in text or text.lower().endswith(_PATH_SUFFIXES)
            or os.path.exists(text))


def load_model(name_or_path: str | os.PathLike, device: str | torch.device = "cpu") -> MinidetModel:
    """Load a classifier by short name, minidet model file or miniML Keras file.

    Parameters
    ----------
    name_or_path : str or path-like
        A bundled model's short name (``gc``, ``gc-mepsp``, ``nmj-wt``, ``nmj-gluriia``,
        ``iglusnfr``, ``zebrafish``; case and ``_`` for ``-`` do not matter), a
        ``.minidet.safetensors`` file, or a Keras ``.h5`` / ``.keras`` file (imported on the
        fly with miniML's default settings). The format is recognised from the file's first
        bytes. A bundled name wins over a file of that name in the current folder.
    device : str or torch.device
        Where the network runs (``"cpu"``, ``"cuda"``, ...).

    Raises
    ------
    UnknownModelError
        A name that is neither a bundled model nor an existing file (lists the known names).
    ModelFileError
        A missing, damaged or mismatched model file (names the path).
    """
    dev = resolve_device(device)
    if isinstance(name_or_path, os.PathLike):
        path = Path(name_or_path)
    elif isinstance(name_or_path, str):
        if not name_or_path.strip():
            raise ParameterError("model name is empty")
        if is_model_name(name_or_path):  # a bundled name wins; write ./gc for a file "gc"
            path = bundled_path(name_or_path)
        elif _looks_like_path(name_or_path):
            path = Path(name_or_path)
        else:
            raise UnknownModelError(
                f"unknown model {name_or_path!r}; bundled models: {', '.join(ZOO)} "
                "(or give the path of a .minidet.safetensors, .h5 or .keras file)")
    else:
        raise ParameterError(f"model must be a name or a path, got {type(name_or_path).__name__}")

    if not path.exists():
        raise ModelFileError(f"model file not found: {path}")
    if not path.is_file():
        raise ModelFileError(f"model path is not a file: {path}")
    if is_keras_file(path):
        return from_keras(path, device=dev)
    network, metadata = read_model_file(path)
    model = MinidetModel(network, metadata, device=dev)
    from ..detection.screen import load_screen, screen_file

    beside = screen_file(str(path))
    if os.path.isfile(beside):
        screen = load_screen(beside)
        if screen.settings.teacher == metadata.name and screen.settings.window_size == metadata.input_size:
            model.screen = screen
    return model
