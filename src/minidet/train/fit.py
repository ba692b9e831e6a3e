"""Train an event classifier on a scored dataset: transfer learning or full training.

Two recipes, both miniML's (O'Neill et al., eLife 2025):

* **Transfer learning** (``base`` given): the base model's weights are loaded, its convolution
  and batch-norm layers frozen (batch norm in inference mode, as Keras runs frozen layers), and
  the LSTM and dense layers trained. Defaults: batch 64, dropout 0.5, patience 12; the
  learning rate (1e-4) is larger than miniML's so that training moves within a few dozen
  epochs. Windows are always resampled to the base model's input length (600).
* **Full training** (no base): a new network with Keras' initialisation, Adam with amsgrad,
  learning rate 2e-5, epsilon 1e-8, batch 128, dropout 0.2, up to 100 epochs, early stopping
  after 8 epochs without improvement of the validation loss, restoring the best weights. Before
  each validation, one pass over the training windows sets batch norm's running statistics to
  those of the current weights (Keras validates with lagging running averages, which makes
  the validation loss, early stopping and the saved model unreliable when training takes few
  steps); the training itself is unchanged.

Both use an 80/20 split stratified by class with a fixed seed; score-2 snippets are left out;
each window is min-max scaled to [0, 1]; windows are inverted when the events' direction
differs from the training direction.

Speed: during transfer learning the frozen convolution stack gives the same output for a
window in every epoch, so it runs once per window and its output (80 x 50 values for a
600-sample window) is cached; each epoch then runs only the LSTM and dense layers, which
then take nearly all the time (the LSTM's backward pass as much as its forward pass). With
two threads or more on a CPU, the LSTM's two directions run at the same time, one per thread
(:class:`~minidet.train.fast_lstm.TwoThreadBiLSTM`; ``nn.LSTM`` itself runs them one after the
other and gains nothing from a second thread at batch 64). On a busy machine, OpenMP threads
that spin while waiting make two threads many times slower than one; ``minidet train`` sets
``OMP_WAIT_POLICY=PASSIVE`` before torch loads (see :class:`TrainSettings` ``num_threads``).

A run is deterministic for a given seed, device and thread count. Ctrl-C (KeyboardInterrupt)
ends training after the current batch and keeps the best weights so far.
"""

from __future__ import annotations

import copy
import hashlib
import logging
import math
import os
import time
import warnings
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np
import torch
from torch import nn

from .. import __version__
from ..errors import ParameterError
from ..fsutil import sha256_file
from ..windows import may_resample
from ..model.modelfile import (DIRECTIONS, FILE_SUFFIX, ModelMetadata, network_from_hyperparameters,
                               save_model_file)
from ..model.network import INPUT_SCALINGS, MiniMLNet, minmax_scale, noise_scale
from .fast_lstm import TwoThreadBiLSTM
from .metrics import ClassificationMetrics, evaluate
from .optim import Adam

logger = logging.getLogger(__name__)

__all__ = [
    "DatasetBalanceWarning", "PreparedData", "TrainSettings", "TrainingResult",
    "load_training_data", "prepare_data", "train_model",
]

#: Learning rate of transfer learning. miniML's notebook uses a far smaller one and trains for
#: up to 100 epochs; at 1e-4 (batch 64) the LSTM and dense layers move within a few dozen.
TRANSFER_LEARNING_RATE = 1e-4
#: Balance (events / non-events) outside this range gives a DatasetBalanceWarning.
BALANCE_RANGE = (0.95, 1.05)
#: Fewest snippets of each class: the 20 % held out must hold both classes.
MIN_PER_CLASS = 5
_FEATURE_BATCH = 512


class DatasetBalanceWarning(UserWarning):
    """The dataset's ratio of events to non-events is outside 0.95-1.05."""


# ----------------------------------------------------------------------------- settings
def _need(cond: bool, message: str) -> None:
    if not cond:
        raise ParameterError(message)


def _is_int(value: Any) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def _is_real(value: Any) -> bool:
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)


_DEFAULTS = {
    # name: (transfer learning, full training)
    "learning_rate": (TRANSFER_LEARNING_RATE, 2e-5),
    "batch_size": (64, 128),
    "dropout": (0.5, 0.2),
    "patience": (12, 8),
    "min_delta": (1e-3, 0.0),
}


@dataclass(frozen=True)
class TrainSettings:
    """Settings of one training run; None means "the recipe's default" (see module doc).

    Parameters
    ----------
    learning_rate : float, optional
        Adam's learning rate (transfer 1e-4, full 2e-5).
    batch_size : int, optional
        Windows per gradient step (transfer 64, full 128).
    dropout : float, optional
        Dropout before the output layer, in [0, 1) (transfer 0.5, full 0.2).
    patience : int, optional
        Epochs without a lower validation loss before training stops (transfer 12, full 8).
    min_delta : float, optional
        Smallest drop of the validation loss that counts as an improvement (transfer 1e-3,
        full 0 as in Keras): transfer learning on clean data keeps lowering the loss by tiny
        amounts for many epochs without changing any decision.
    max_epochs : int
        Upper limit of epochs (100).
    epsilon : float
        Adam's epsilon (1e-8).
    amsgrad : bool
        Adam's AMSGrad variant (True).
    validation_fraction : float
        Fraction held out for validation and the reported metrics (0.2).
    seed : int
        Seed of the split, the shuffling, the initialisation and dropout (1234).
    resample : bool
        Resample windows of another length to the network input (600 samples). Transfer
        learning always needs it when the lengths differ; full training with False keeps the
        dataset's window length as the network input.
    input_size : int
        Network input length for full training with resampling (600).
    event_direction : {"negative", "positive"}
        Direction of the events in the dataset ("negative").
    training_direction : {"negative", "positive"}, optional
        Direction the network learns; windows are inverted when it differs from
        ``event_direction``. Transfer learning: the base model's. Full training: the event
        direction.
    device : str
        "auto" (a CUDA GPU when present, else the CPU), "cpu", "cuda" or "cuda:N".
    cache_features : bool
        Transfer learning only: compute the frozen convolution stack once per window (True).
        False runs the whole network every epoch (same result, slower; for comparison).
    fine_tune : bool
        Transfer learning only: train every layer from the base weights (convolutions and
        batch norm included, batch norm in training mode and recalibrated as in full
        training) instead of freezing the convolution and batch-norm layers (False, miniML's
        recipe). Slower (no cached features) and it needs more data; for preparations far
        from the base model's (other noise, other kinetics).
    input_scaling : {"minmax", "noise"}, optional
        How windows are scaled for the network (see :class:`~minidet.model.ModelMetadata`).
        None: the base model's, or ``"minmax"`` (miniML's) for full training. ``"noise"``
        needs the noise SD of every snippet's recording (datasets made by ``minidet extract``
        carry it) and, from a min-max base model, ``fine_tune``: every layer has to learn the
        new input.
    num_threads : int, optional
        CPU threads for torch during training (restored afterwards); None leaves torch's. With
        two or more, transfer learning on a CPU runs the LSTM's two directions in parallel,
        one thread each (same results to float32 rounding). On a busy machine, spinning
        OpenMP threads make two threads much slower than one: set ``OMP_WAIT_POLICY=PASSIVE``
        before torch is imported (``minidet train`` does) or use 1.
    """

    learning_rate: float | None = None
    batch_size: int | None = None
    dropout: float | None = None
    patience: int | None = None
    min_delta: float | None = None
    max_epochs: int = 100
    epsilon: float = 1e-8
    amsgrad: bool = True
    validation_fraction: float = 0.2
    seed: int = 1234
    resample: bool = True
    input_size: int = 600
    event_direction: str = "negative"
    training_direction: str | None = None
    device: str = "auto"
    cache_features: bool = True
    fine_tune: bool = False
    input_scaling: str | None = None
    num_threads: int | None = None

    def __post_init__(self) -> None:
        if self.learning_rate is not None:
            _need(_is_real(self.learning_rate) and 0 < self.learning_rate < 1,
                  f"learning_rate must be in (0, 1), got {self.learning_rate!r}")
        if self.batch_size is not None:
            _need(_is_int(self.batch_size) and self.batch_size >= 1,
                  f"batch_size must be a positive integer, got {self.batch_size!r}")
        if self.dropout is not None:
            _need(_is_real(self.dropout) and 0 <= self.dropout < 1,
                  f"dropout must be in [0, 1), got {self.dropout!r}")
        if self.patience is not None:
            _need(_is_int(self.patience) and self.patience >= 1,
                  f"patience must be a positive integer (epochs), got {self.patience!r}")
        if self.min_delta is not None:
            _need(_is_real(self.min_delta) and 0 <= self.min_delta < 1,
                  f"min_delta must be in [0, 1), got {self.min_delta!r}")
        _need(_is_int(self.max_epochs) and self.max_epochs >= 1,
              f"max_epochs must be a positive integer, got {self.max_epochs!r}")
        _need(_is_real(self.epsilon) and self.epsilon > 0,
              f"epsilon must be > 0, got {self.epsilon!r}")
        _need(isinstance(self.amsgrad, bool), f"amsgrad must be true or false, got {self.amsgrad!r}")
        _need(_is_real(self.validation_fraction) and 0.05 <= self.validation_fraction <= 0.5,
              f"validation_fraction must be in [0.05, 0.5], got {self.validation_fraction!r}")
        _need(_is_int(self.seed) and self.seed >= 0, f"seed must be an integer >= 0, got {self.seed!r}")
        _need(isinstance(self.resample, bool), f"resample must be true or false, got {self.resample!r}")
        _need(_is_int(self.input_size) and self.input_size >= 12,
              f"input_size must be an integer >= 12 samples, got {self.input_size!r}")
        _need(self.event_direction in DIRECTIONS,
              f"event_direction must be one of {DIRECTIONS}, got {self.event_direction!r}")
        _need(self.training_direction is None or self.training_direction in DIRECTIONS,
              f"training_direction must be one of {DIRECTIONS}, got {self.training_direction!r}")
        _need(isinstance(self.device, str) and self.device.strip() != "",
              f"device must be 'auto', 'cpu', 'cuda' or 'cuda:N', got {self.device!r}")
        _need(isinstance(self.cache_features, bool),
              f"cache_features must be true or false, got {self.cache_features!r}")
        _need(isinstance(self.fine_tune, bool), f"fine_tune must be true or false, got {self.fine_tune!r}")
        _need(self.input_scaling is None or self.input_scaling in INPUT_SCALINGS,
              f"input_scaling must be one of {INPUT_SCALINGS} or None, got {self.input_scaling!r}")
        _need(self.num_threads is None or (_is_int(self.num_threads) and self.num_threads >= 1),
              f"num_threads must be a positive integer or None, got {self.num_threads!r}")

    def resolved(self, transfer: bool) -> "TrainSettings":
        """A copy with every None replaced by the recipe's default (transfer or full)."""
        changes = {k: v[0 if transfer else 1] for k, v in _DEFAULTS.items()
                   if getattr(self, k) is None}
        if self.training_direction is None and not transfer:
            changes["training_direction"] = self.event_direction
        return self.replace(**changes) if changes else self

    def replace(self, **changes: Any) -> "TrainSettings":
        """A copy with some fields changed (validated again)."""
        data = asdict(self)
        unknown = sorted(set(changes) - set(data))
        _need(not unknown, f"unknown training setting(s): {', '.join(unknown)}")
        data.update(changes)
        return TrainSettings(**data)

    def to_dict(self) -> dict:
        """JSON-ready dict."""
        return asdict(self)


# ----------------------------------------------------------------------------- data
@dataclass(frozen=True)
class DatasetSource:
    """Where the training windows came from (for the model's provenance)."""

    name: str
    sha256: str
    window_size: int
    unscored: int = 0


def _sha256_arrays(*arrays: np.ndarray) -> str:
    digest = hashlib.sha256()
    for arr in arrays:
        a = np.ascontiguousarray(arr)
        digest.update(str((a.dtype.str, a.shape)).encode())
        digest.update(a.tobytes())
    return digest.hexdigest()


def load_training_data(dataset: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, DatasetSource]:
    """Windows, scores, noise SDs and source description from a dataset file, object or arrays.

    Parameters
    ----------
    dataset : path, Dataset, (windows, scores) pair or (windows, scores, noise_sd) triple
        A dataset file in miniML's layout (read with :func:`minidet.train.dataset.read_dataset`),
        a :class:`minidet.train.dataset.Dataset`, or arrays.

    Returns
    -------
    windows, scores, noise_sd, source
        Snippets not yet scored by a person (a Dataset's ``scored`` is False) get score 2,
        so they are left out like excluded ones; ``source.unscored`` counts them.
        ``noise_sd``: the noise SD of each snippet's recording (NaN where unknown), or None
        when no snippet has one.
    """
    from .dataset import Dataset, read_dataset

    if isinstance(dataset, (str, os.PathLike)):
        path = Path(dataset)
        ds = read_dataset(path)
        name, sha = path.name, sha256_file(path)
    elif isinstance(dataset, Dataset):
        ds = dataset
        name = str(ds.attrs.get("source", "") or "in-memory dataset")
        sha = _sha256_arrays(ds.events, ds.scores, ds.scored)
    elif isinstance(dataset, tuple) and len(dataset) in (2, 3):
        windows, scores = np.asarray(dataset[0]), np.asarray(dataset[1])
        noise = None if len(dataset) == 2 or dataset[2] is None else np.asarray(dataset[2], dtype=np.float64)
        return windows, scores, noise, DatasetSource(
            "in-memory arrays", _sha256_arrays(windows, scores) if noise is None else
            _sha256_arrays(windows, scores, noise),
            int(windows.shape[-1]) if windows.ndim == 2 else 0)
    else:
        raise ParameterError("dataset must be a file path, a Dataset or a (windows, scores) pair or "
                             f"(windows, scores, noise_sd) triple, got {type(dataset).__name__}")
    scores = np.asarray(ds.scores, dtype=np.int64).copy()
    unscored = ~np.asarray(ds.scored, dtype=bool)
    scores[unscored] = 2
    if unscored.any():
        logger.warning("%d snippet(s) are not scored yet and are left out", int(unscored.sum()))
    noise = np.asarray(ds.noise_sd, dtype=np.float64)
    noise = None if not np.isfinite(noise).any() else noise
    return np.asarray(ds.events), scores, noise, DatasetSource(name, sha, ds.window_size, int(unscored.sum()))


@dataclass(frozen=True)
class PreparedData:
    """Scaled network inputs and labels, split into training and validation.

    Attributes
    ----------
    x_train, x_val : float32 arrays, shape (n, input_size)
        Scaled (min-max or by the noise SD; inverted / resampled as needed) windows.
    y_train, y_val : float32 arrays of 0/1
    counts : dict
        Snippets in the file, used, excluded (score 2), events, non-events, per split.
    balance : float
        Events / non-events among the used snippets.
    window_size : int
        Window length of the dataset in recording samples.
    input_size : int
        Network input length after resampling.
    inverted : bool
        Whether windows were inverted.
    """

    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    counts: dict
    balance: float
    window_size: int
    input_size: int
    inverted: bool


def _stratified_split(y: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    val = []
    for cls in (0, 1):
        idx = np.flatnonzero(y == cls)
        idx = idx[rng.permutation(idx.size)]
        k = min(max(int(round(fraction * idx.size)), 1), idx.size - 1)
        val.append(idx[:k])
    val_idx = np.sort(np.concatenate(val))
    train_mask = np.ones(y.size, dtype=bool)
    train_mask[val_idx] = False
    return np.flatnonzero(train_mask), val_idx


def _resample(windows: np.ndarray, length: int) -> np.ndarray:
    # Fourier resampling, as miniML (scipy.signal.resample) does for training data.
    from scipy.signal import resample

    return resample(windows, length, axis=1)


def _direction_hint(windows: np.ndarray, labels: np.ndarray) -> str | None:
    """Which way the average event goes ("negative"/"positive"), None if unclear."""
    events = windows[labels == 1]
    if events.shape[0] < 3:
        return None
    mean = events.mean(axis=0)
    base = np.median(mean)
    up, down = mean.max() - base, base - mean.min()
    if max(up, down) <= 0:
        return None
    if up > 1.5 * down:
        return "positive"
    if down > 1.5 * up:
        return "negative"
    return None


def prepare_data(windows: np.ndarray, scores: np.ndarray, settings: TrainSettings,
                 input_size: int, training_direction: str,
                 base_name: str | None = None, noise_sd: np.ndarray | None = None,
                 input_scaling: str = "minmax") -> PreparedData:
    """Check a dataset and turn it into scaled, labelled, split network inputs.

    Parameters
    ----------
    windows : array, shape (n, window_size)
        Raw snippets (any unit), one per row.
    scores : array of int, shape (n,)
        0 no event, 1 event, 2 excluded (left out).
    settings : TrainSettings
        Resolved settings (direction, resampling, split).
    input_size : int
        Network input length (the base model's for transfer learning).
    training_direction : {"negative", "positive"}
    base_name : str, optional
        Name of the base model (transfer learning), for messages.
    noise_sd : array of shape (n,), optional
        Noise SD of each snippet's recording; needed for ``input_scaling="noise"``.
    input_scaling : {"minmax", "noise"}
        How windows are scaled (see :class:`~minidet.model.ModelMetadata`).

    Raises
    ------
    ParameterError
        Wrong shapes, unknown scores, NaN or infinite samples in used snippets, one class
        only, too few snippets for the split, a window length the base model cannot take.
    """
    x = np.asarray(windows)
    s = np.asarray(scores)
    _need(x.ndim == 2 and x.shape[0] > 0 and x.shape[1] > 0,
          f"windows must be a 2-D array (snippets x samples), got shape {x.shape}")
    _need(x.dtype != object and (np.issubdtype(x.dtype, np.floating) or np.issubdtype(x.dtype, np.integer)),
          f"windows must be numeric, got dtype {x.dtype}")
    _need(s.ndim == 1 and s.shape[0] == x.shape[0],
          f"scores must have one value per snippet ({x.shape[0]}), got shape {s.shape}")
    _need(s.dtype != object and (np.issubdtype(s.dtype, np.integer) or np.issubdtype(s.dtype, np.floating)),
          f"scores must be numeric (0, 1 or 2), got dtype {s.dtype}")
    if np.issubdtype(s.dtype, np.floating):
        _need(bool(np.all(np.isfinite(s))) and bool(np.all(s == np.round(s))),
              "scores must be whole numbers 0, 1 or 2")
    s = s.astype(np.int64)
    unknown = np.setdiff1d(np.unique(s), [0, 1, 2])
    _need(unknown.size == 0, f"scores must be 0 (no event), 1 (event) or 2 (excluded); found "
          f"{unknown[:5].tolist()}")
    keep = s != 2
    n_excluded = int((~keep).sum())
    x = x[keep].astype(np.float64, copy=False)
    y = s[keep]
    sd = None
    if input_scaling == "noise":
        _need(noise_sd is not None,
              "a noise-scaled model needs the noise SD of every snippet's recording, and this dataset has "
              "none (miniML's files and those of older minidet versions); extract the snippets again with "
              "`minidet extract`, or train a min-max model (--input-scaling minmax)")
        sd_all = np.asarray(noise_sd, dtype=np.float64).reshape(-1)
        _need(sd_all.shape[0] == s.shape[0],
              f"noise_sd must have one value per snippet ({s.shape[0]}), got {sd_all.shape[0]}")
        sd = sd_all[keep]
        bad = ~(np.isfinite(sd) & (sd > 0))
        if bad.any():
            rows = np.flatnonzero(keep)[bad]
            raise ParameterError(
                f"{rows.size} snippet(s) have no usable noise SD (NaN or <= 0), first at row {int(rows[0])}; "
                "extract them again with `minidet extract` or score them 2 to leave them out")
    if x.shape[0]:
        finite = np.isfinite(x).all(axis=1)
        if not finite.all():
            rows = np.flatnonzero(keep)[~finite]
            raise ParameterError(
                f"{rows.size} snippet(s) hold NaN or infinite samples, first at row {int(rows[0])} "
                "(fix or score them 2 to leave them out)")
    n_events = int((y == 1).sum())
    n_non = int((y == 0).sum())
    if n_events == 0 or n_non == 0:
        have = "events (score 1)" if n_non == 0 else "non-events (score 0)"
        raise ParameterError(
            f"the dataset holds only one class: {max(n_events, n_non)} {have} and no "
            f"{'non-events (score 0)' if n_non == 0 else 'events (score 1)'} "
            f"({n_excluded} excluded); a classifier needs examples of both")
    if min(n_events, n_non) < MIN_PER_CLASS:
        raise ParameterError(
            f"too few snippets for a {1 - settings.validation_fraction:.0%}/"
            f"{settings.validation_fraction:.0%} split: {n_events} events and {n_non} non-events; "
            f"need at least {MIN_PER_CLASS} of each")
    balance = n_events / n_non
    lo, hi = BALANCE_RANGE
    if not lo <= balance <= hi:
        warnings.warn(
            f"dataset is unbalanced: {n_events} events and {n_non} non-events (ratio "
            f"{balance:.3f}, recommended {lo}-{hi}); the model will lean towards the larger class",
            DatasetBalanceWarning, stacklevel=3)

    window_size = int(x.shape[1])
    hint = _direction_hint(x, y)
    if hint is not None and hint != settings.event_direction:
        warnings.warn(
            f"the average event in the dataset goes {hint}, but event_direction is "
            f"{settings.event_direction!r}; set event_direction={hint!r} if that is right",
            UserWarning, stacklevel=3)
    inverted = settings.event_direction != training_direction
    if inverted:
        x = -x
    if window_size != input_size:
        if not settings.resample:
            what = f"the base model {base_name!r}" if base_name else "the network"
            raise ParameterError(
                f"{what} takes windows of {input_size} samples but the dataset's windows have "
                f"{window_size}; allow resampling (drop --no-resample) so that each window is "
                f"resampled to {input_size} samples")
        x = _resample(x, input_size)
    x = noise_scale(x, sd) if sd is not None else minmax_scale(x).astype(np.float32)
    y = y.astype(np.float32)
    train_idx, val_idx = _stratified_split(y, settings.validation_fraction, settings.seed)
    counts = {
        "snippets": int(s.size), "used": int(y.size), "excluded": n_excluded,
        "events": n_events, "non_events": n_non,
        "train": int(train_idx.size), "train_events": int(y[train_idx].sum()),
        "validation": int(val_idx.size), "validation_events": int(y[val_idx].sum()),
    }
    return PreparedData(x[train_idx], y[train_idx], x[val_idx], y[val_idx], counts,
                        float(balance), window_size, int(input_size), inverted)


# ----------------------------------------------------------------------------- network
def keras_init_(network: MiniMLNet) -> MiniMLNet:
    """Initialise a new network as Keras does (in place): Glorot-uniform kernels, zero biases,
    orthogonal recurrent kernels and a forget-gate bias of 1 in the LSTM."""
    for module in network.modules():
        if isinstance(module, (nn.Conv1d, nn.Linear)):
            nn.init.xavier_uniform_(module.weight)
            nn.init.zeros_(module.bias)
        elif isinstance(module, nn.LSTM):
            h = module.hidden_size
            for name, param in module.named_parameters():
                if name.startswith("weight_ih"):
                    # Keras draws the (input, 4h) kernel as one Glorot matrix.
                    nn.init.xavier_uniform_(param)
                elif name.startswith("weight_hh"):
                    for gate in range(4):
                        nn.init.orthogonal_(param.data[gate * h:(gate + 1) * h])
                elif name.startswith("bias_ih"):
                    nn.init.zeros_(param)
                    param.data[h:2 * h] = 1.0
                elif name.startswith("bias_hh"):
                    nn.init.zeros_(param)
    return network


def conv_features(network: MiniMLNet, windows: torch.Tensor) -> torch.Tensor:
    """Output of the convolution blocks, shape (n, channels, length), for scaled windows."""
    x = windows.unsqueeze(1)
    for block in network.blocks:
        x = block(x)
    return x


def head_logits(network: MiniMLNet, features: torch.Tensor,
                bilstm: Callable[[torch.Tensor], torch.Tensor] | None = None) -> torch.Tensor:
    """Logits from convolution features: LSTM input dropout, BiLSTM (summed), dense layers.

    Mirrors :meth:`MiniMLNet.logits` after the convolution blocks (a test checks that they
    agree), so that the cached convolution output can be fed in directly. ``bilstm``, if
    given, replaces ``network.lstm``: it takes time-major input (length, n, channels) and
    returns ``h_n`` (a :class:`~minidet.train.fast_lstm.TwoThreadBiLSTM` of ``network.lstm``).
    """
    x = network.lstm_input_dropout(features)
    if bilstm is None:
        _, (h_n, _) = network.lstm(x.transpose(1, 2).contiguous())
    else:
        h_n = bilstm(x.permute(2, 0, 1).contiguous())
    x = h_n[0] + h_n[1]
    x = network.dropout(network.dense_act(network.dense(x)))
    return network.out(x).squeeze(-1)


def _resolve_train_device(device: str) -> torch.device:
    from ..model.core import resolve_device

    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return resolve_device(device)


@contextmanager
def _torch_threads(n: int | None) -> Iterator[None]:
    if n is None:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(int(n))
    try:
        yield
    finally:
        torch.set_num_threads(before)


# ----------------------------------------------------------------------------- result
@dataclass
class TrainingResult:
    """A trained classifier with everything needed to save and report it.

    Attributes
    ----------
    network : MiniMLNet
        Best weights, eval mode, on the CPU.
    metadata : ModelMetadata
        Window size, directions, suggested threshold, provenance.
    metrics : ClassificationMetrics
        On the held-out (validation) windows, with the best weights.
    roc : dict
        ROC curve on the held-out windows (fpr, tpr, thresholds).
    history : dict
        Per epoch: ``loss``, ``val_loss``, ``accuracy``, ``val_accuracy``, ``seconds``.
    provenance : dict
        Dataset (name, SHA-256, counts), base model, settings, metrics, run summary.
    """

    network: MiniMLNet
    metadata: ModelMetadata
    metrics: ClassificationMetrics
    roc: dict
    history: dict
    provenance: dict
    settings: TrainSettings
    best_epoch: int
    epochs_run: int
    stopped_early: bool
    interrupted: bool
    seconds: float
    device: str

    def save(self, path: str | os.PathLike, overwrite: bool = False) -> Path:
        """Write the model file (temp file + rename; an existing file needs ``overwrite``)."""
        return save_model_file(path, self.network, self.metadata, overwrite=overwrite)

    def summary(self) -> str:
        """A few lines for the terminal."""
        m = self.metrics
        c = self.provenance["dataset"]["counts"]
        stop = ("interrupted" if self.interrupted else
                f"early stop after {self.epochs_run}" if self.stopped_early else
                f"{self.epochs_run} epochs")
        return "\n".join([
            f"{self.provenance['mode']} on {c['used']} snippets ({c['events']} events, "
            f"{c['non_events']} non-events, {c['excluded']} excluded); balance "
            f"{self.provenance['dataset']['balance']:.2f}",
            f"epochs: best {self.best_epoch} ({stop}); {self.seconds:.1f} s on {self.device}",
            f"held-out ({m.n} windows): accuracy {m.accuracy:.3f}, AUC {m.auc:.3f}, "
            f"MCC {m.mcc:.3f} at threshold {m.threshold:.3f} "
            f"(accuracy {m.accuracy_at_threshold:.3f})",
            *([_threshold_sentence(self.provenance["threshold"])] if "threshold" in self.provenance else []),
        ])


def _threshold_sentence(choice: dict) -> str:
    from .calibrate import ThresholdChoice

    return ThresholdChoice.from_dict(choice).sentence()


# ----------------------------------------------------------------------------- training
def _load_base(base: Any):
    from ..model.core import MinidetModel, load_model

    if isinstance(base, MinidetModel):
        return base
    return load_model(base)


def _scaled_hann(value: int | None, factor: float) -> int | None:
    if value is None:
        return None
    return max(1, int(round(value * factor)))


def _default_name(output: str | os.PathLike | None) -> str:
    if output is None:
        return "trained"
    name = Path(output).name
    for suffix in (FILE_SUFFIX, ".safetensors"):
        if name.endswith(suffix):
            return name[: -len(suffix)] or "trained"
    return Path(name).stem or "trained"


def train_model(dataset: Any, base: Any = None, settings: TrainSettings | None = None, *,
                name: str | None = None, progress: bool = True,
                on_epoch: Callable[[int, dict], None] | None = None,
                threshold: float | str | None = None,
                calibrate_on: Any = "dataset") -> TrainingResult:
    """Train a classifier: transfer learning from ``base`` or full training without one.

    Parameters
    ----------
    dataset : path, (windows, scores) pair or dataset object
        Scored snippets in miniML's layout (see :func:`load_training_data`).
    base : str, path or MinidetModel, optional
        Base model for transfer learning: a bundled name (``"gc"``), a model file, or a loaded
        model. None: full training from scratch.
    settings : TrainSettings, optional
        Defaults: the recipe's (see :class:`TrainSettings`).
    name : str, optional
        Short name stored in the model's metadata (default "trained").
    progress : bool
        Show a progress bar (one step per epoch) on stderr.
    on_epoch : callable, optional
        Called after every epoch with (epoch number, that epoch's figures).
    threshold : float or "auto", optional
        The detection threshold the model stores. None: chosen for continuous recordings
        (:mod:`minidet.train.calibrate`): a base model's per-recording threshold is kept, else
        the best estimated F1 on the training recordings, else on the held-out snippets
        weighted as a recording (never the balanced snippets' ROC optimum alone).
    calibrate_on : "dataset", sequence or None
        Continuous recordings the threshold is chosen (and precision and recall estimated) on:
        ``"dataset"``, the files the dataset's snippets came from where they can be read;
        paths, (path, channel) pairs or Recordings; None or ``()``: none.

    Returns
    -------
    TrainingResult
        Call :meth:`TrainingResult.save` to write the model file and
        :func:`minidet.train.report.write_report` for the report.

    Raises
    ------
    ParameterError
        Bad settings or dataset (see :func:`prepare_data`).
    KeyboardInterrupt
        Only if interrupted before the first epoch ended (nothing to keep).
    """
    settings = TrainSettings() if settings is None else settings
    if not isinstance(settings, TrainSettings):
        raise ParameterError(f"settings must be a TrainSettings, got {type(settings).__name__}")
    transfer = base is not None
    if settings.fine_tune and not transfer:
        raise ParameterError("fine_tune trains a base model's layers; give a base model (--from), "
                             "or leave fine_tune off for full training")
    base_model = _load_base(base) if transfer else None
    settings = settings.resolved(transfer)
    if transfer:
        base_dir = base_model.metadata.training_direction
        if settings.training_direction is not None and settings.training_direction != base_dir:
            raise ParameterError(
                f"the base model {base_model.name!r} was trained on {base_dir} events; transfer "
                f"learning keeps its training direction (got training_direction="
                f"{settings.training_direction!r}); set event_direction to the direction of your "
                "events and they are inverted as needed")
        settings = settings.replace(training_direction=base_dir)
    base_scaling = base_model.metadata.input_scaling if transfer else "minmax"
    scaling = settings.input_scaling or base_scaling
    if transfer and scaling != base_scaling and not settings.fine_tune:
        raise ParameterError(
            f"the base model {base_model.name!r} takes {base_scaling}-scaled windows; to learn "
            f"{scaling}-scaled ones every layer must be trained: add fine_tune (--fine-tune)")
    settings = settings.replace(input_scaling=scaling)
    device = _resolve_train_device(settings.device)

    windows, scores, noise_sd, source = load_training_data(dataset)
    input_size = base_model.input_size if transfer else settings.input_size
    if not transfer and not settings.resample:
        input_size = int(np.shape(windows)[-1]) if np.ndim(windows) == 2 else settings.input_size
    data = prepare_data(windows, scores, settings, input_size, settings.training_direction,
                        base_name=base_model.name if transfer else None, noise_sd=noise_sd,
                        input_scaling=scaling)
    logger.info("training on %d windows, validating on %d", data.y_train.size, data.y_val.size)

    with _torch_threads(settings.num_threads), torch.random.fork_rng(
            devices=[device.index or 0] if device.type == "cuda" else []):
        torch.manual_seed(settings.seed)
        if transfer:
            hp = dict(base_model.network.hyperparameters())
            hp["dropout"] = float(settings.dropout)
            network = network_from_hyperparameters(hp)
            network.load_state_dict(base_model.network.state_dict())
        else:
            network = keras_init_(MiniMLNet(input_size, dropout=float(settings.dropout)))
        network.to(device)
        frozen = transfer and not settings.fine_tune
        run = _fit(network, data, settings, frozen, device, progress, on_epoch)
        metrics, roc = _evaluate(network, data, device)
    network = network.to("cpu").eval()
    metadata, provenance = _build_metadata(
        network, data, settings, source, base_model, metrics, run, name, device)
    metadata, provenance = _calibrate(network, metadata, provenance, roc, metrics, base_model,
                                      threshold, dataset, calibrate_on, progress)
    return TrainingResult(
        network=network, metadata=metadata, metrics=metrics, roc=roc,
        history=run["history"], provenance=provenance, settings=settings,
        best_epoch=run["best_epoch"], epochs_run=run["epochs_run"],
        stopped_early=run["stopped_early"], interrupted=run["interrupted"],
        seconds=run["seconds"], device=str(device))


def _calibrate(network: MiniMLNet, metadata: ModelMetadata, provenance: dict, roc: dict,
               metrics: ClassificationMetrics, base_model: Any, threshold: Any, dataset: Any,
               calibrate_on: Any, progress: bool) -> tuple[ModelMetadata, dict]:
    """The detection threshold for continuous recordings (see :mod:`.calibrate`)."""
    from .calibrate import choose_model_threshold, dataset_recordings

    if isinstance(calibrate_on, str) and calibrate_on == "dataset":
        recordings = dataset_recordings(dataset)
    elif calibrate_on is None:
        recordings = []
    elif isinstance(calibrate_on, (str, os.PathLike)):
        recordings = [calibrate_on]
    else:
        recordings = list(calibrate_on)
    choice = choose_model_threshold(
        network, metadata, roc, float(metrics.threshold),
        base_metadata=base_model.metadata if base_model is not None else None,
        threshold=threshold, recordings=recordings, progress=progress)
    provenance = {**provenance, "threshold": choice.to_dict()}
    metadata = metadata.replace(
        threshold=choice.threshold, auto_threshold=choice.auto, smoothing_steps=choice.smoothing_steps,
        peak_prominence=choice.peak_prominence, provenance=provenance,
        description=metadata.description + " Detection threshold " + (
            f"chosen per recording (auto)" if choice.auto else f"{choice.threshold:.4g}") + f" ({choice.rule}).")
    logger.info(choice.sentence())
    return metadata, provenance


def _set_train_mode(network: MiniMLNet, frozen: bool) -> None:
    network.train()
    if frozen:
        # Frozen batch norm runs in inference mode (running statistics unchanged).
        for block in network.blocks:
            block.eval()


def _batched_features(network: MiniMLNet, x: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return torch.cat([conv_features(network, x[i:i + _FEATURE_BATCH])
                          for i in range(0, x.shape[0], _FEATURE_BATCH)]).contiguous()


def _fit(network: MiniMLNet, data: PreparedData, settings: TrainSettings, frozen: bool,
         device: torch.device, progress: bool,
         on_epoch: Callable[[int, dict], None] | None) -> dict:
    start = time.perf_counter()
    x_train = torch.from_numpy(data.x_train).to(device)
    y_train = torch.from_numpy(data.y_train).to(device)
    x_val = torch.from_numpy(data.x_val).to(device)
    y_val = torch.from_numpy(data.y_val).to(device)

    if frozen:
        for p in network.blocks.parameters():
            p.requires_grad_(False)
    params = [p for p in network.parameters() if p.requires_grad]
    # Frozen convolutions on a CPU: the fused Adam step (one kernel per tensor instead of a dozen;
    # the same update to float32 rounding) saves about 1 ms per batch. optim.Adam runs
    # torch.optim.Adam's arithmetic without importing torch's compiler (1.5-2.5 s).
    optimizer = Adam(params, lr=settings.learning_rate, eps=settings.epsilon,
                     amsgrad=settings.amsgrad, fused=frozen and device.type == "cpu")
    loss_fn = nn.BCEWithLogitsLoss()

    cached = frozen and settings.cache_features
    if cached:
        network.eval()
        in_train, in_val = _batched_features(network, x_train), _batched_features(network, x_val)
    else:
        in_train, in_val = x_train, x_val
    # Frozen convolutions on a CPU with two threads or more: the LSTM's two directions run at
    # the same time, one per thread, each with one intra-op thread (see fast_lstm).
    two_threads = frozen and device.type == "cpu" and torch.get_num_threads() >= 2
    bilstm = TwoThreadBiLSTM(network.lstm) if two_threads else None
    if cached:
        forward = lambda inputs: head_logits(network, inputs, bilstm)  # noqa: E731
    else:
        forward = lambda inputs: head_logits(network, conv_features(network, inputs), bilstm)  # noqa: E731

    generator = torch.Generator(device="cpu").manual_seed(settings.seed)
    n = in_train.shape[0]
    history: dict[str, list] = {"loss": [], "val_loss": [], "accuracy": [], "val_accuracy": [],
                                "seconds": []}
    best_loss, best_epoch, best_state, waited = math.inf, 0, None, 0
    stopped_early = interrupted = False

    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=settings.max_epochs, desc="training", unit="epoch", leave=True)
    threads_before = torch.get_num_threads()
    try:
        if two_threads:
            torch.set_num_threads(1)
        for epoch in range(1, settings.max_epochs + 1):
            t0 = time.perf_counter()
            _set_train_mode(network, frozen)
            order = torch.randperm(n, generator=generator).to(device)
            total, correct = 0.0, 0
            for i in range(0, n, settings.batch_size):
                idx = order[i:i + settings.batch_size]
                optimizer.zero_grad(set_to_none=True)
                logits = forward(in_train[idx])
                loss = loss_fn(logits, y_train[idx])
                loss.backward()
                optimizer.step()
                total += float(loss.detach()) * idx.numel()
                correct += int(((logits.detach() >= 0) == (y_train[idx] >= 0.5)).sum())
            if not frozen:
                _recalibrate_batchnorm(network, x_train)
            network.eval()
            with torch.no_grad():
                val_logits = torch.cat([forward(in_val[i:i + _FEATURE_BATCH])
                                        for i in range(0, in_val.shape[0], _FEATURE_BATCH)])
                val_loss = float(loss_fn(val_logits, y_val))
                val_acc = float(((val_logits >= 0) == (y_val >= 0.5)).float().mean())
            figures = {"loss": total / n, "accuracy": correct / n, "val_loss": val_loss,
                       "val_accuracy": val_acc, "seconds": time.perf_counter() - t0}
            for key, value in figures.items():
                history[key].append(value)
            if val_loss < best_loss - settings.min_delta or best_state is None:
                best_loss, best_epoch, waited = val_loss, epoch, 0
                best_state = copy.deepcopy(network.state_dict())
            else:
                waited += 1
            if bar is not None:
                bar.set_postfix(loss=f"{figures['loss']:.3f}", val_loss=f"{val_loss:.3f}",
                                val_acc=f"{val_acc:.3f}", best=best_epoch, refresh=False)
                bar.update(1)
            if on_epoch is not None:
                on_epoch(epoch, figures)
            if waited >= settings.patience:
                stopped_early = True
                break
    except KeyboardInterrupt:
        if best_state is None:
            raise
        interrupted = True
        logger.warning("training interrupted; keeping the best model so far (epoch %d)", best_epoch)
    finally:
        torch.set_num_threads(threads_before)
        if bilstm is not None:
            bilstm.close()
        if bar is not None:
            bar.close()
    network.load_state_dict(best_state)
    network.eval()
    return {"history": history, "best_epoch": best_epoch, "epochs_run": len(history["loss"]),
            "stopped_early": stopped_early, "interrupted": interrupted,
            "seconds": time.perf_counter() - start, "best_val_loss": best_loss}


def _recalibrate_batchnorm(network: MiniMLNet, x_train: torch.Tensor) -> None:
    """Set batch norm's running statistics to the exact mean and variance of the training
    windows under the final weights. The running averages (momentum 0.01, as Keras' 0.99) lag
    behind the weights when training takes few steps, which shifts the probabilities of a
    short full training in inference mode; one extra pass over the training data fixes that."""
    norms = [m for m in network.modules() if isinstance(m, nn.BatchNorm1d)]
    momenta = [m.momentum for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # cumulative average over the pass
    network.train()
    with torch.no_grad():
        for i in range(0, x_train.shape[0], _FEATURE_BATCH):
            conv_features(network, x_train[i:i + _FEATURE_BATCH])
    for m, momentum in zip(norms, momenta):
        m.momentum = momentum
    network.eval()


def _evaluate(network: MiniMLNet, data: PreparedData,
              device: torch.device) -> tuple[ClassificationMetrics, dict]:
    network.eval()
    x = torch.from_numpy(data.x_val).to(device)
    with torch.no_grad():
        probs = torch.cat([torch.sigmoid(head_logits(network, conv_features(network, x[i:i + _FEATURE_BATCH])))
                           for i in range(0, x.shape[0], _FEATURE_BATCH)]).float().cpu().numpy()
    return evaluate(data.y_val.astype(np.int64), probs)


def _build_metadata(network: MiniMLNet, data: PreparedData, settings: TrainSettings,
                    source: DatasetSource, base_model: Any, metrics: ClassificationMetrics,
                    run: dict, name: str | None, device: torch.device) -> tuple[ModelMetadata, dict]:
    transfer = base_model is not None
    mode = ("fine-tuning" if settings.fine_tune else "transfer learning") if transfer else "full training"
    if transfer:
        bm = base_model.metadata
        factor = data.window_size / bm.window_size
        convolve = _scaled_hann(bm.convolve_win, factor)
        gradient = _scaled_hann(bm.gradient_convolve_win, factor)
        base_info = {"name": bm.name, "source_file": bm.source_file,
                     "source_sha256": bm.source_sha256, "window_size": bm.window_size}
        license_text = bm.license
    else:
        factor = data.window_size / 600
        convolve, gradient = _scaled_hann(20, factor), _scaled_hann(40, factor)
        base_info = None
        license_text = ""
    provenance = {
        "trained_by": f"minidet {__version__} train",
        "mode": mode,
        "base_model": base_info,
        "dataset": {"name": source.name, "sha256": source.sha256,
                    "counts": {**data.counts, "unscored": source.unscored},
                    "balance": round(data.balance, 4), "window_size": data.window_size,
                    "inverted": data.inverted},
        "settings": settings.to_dict(),
        "metrics": metrics.to_dict(),
        "run": {"best_epoch": run["best_epoch"], "epochs_run": run["epochs_run"],
                "stopped_early": run["stopped_early"], "interrupted": run["interrupted"],
                "seconds": round(run["seconds"], 2), "device": str(device),
                "best_val_loss": round(run["best_val_loss"], 6)},
    }
    sentence = (f"Trained with minidet ({mode}{' from ' + repr(base_info['name']) if transfer else ''}) "
                f"on {source.name}: {data.counts['used']} snippets ({data.counts['events']} events, "
                f"{data.counts['non_events']} non-events), window {data.window_size} samples"
                f"{', inverted' if data.inverted else ''}; held-out accuracy {metrics.accuracy:.3f}, "
                f"AUC {metrics.auc:.3f}, MCC {metrics.mcc:.3f}.")
    kwargs: dict[str, Any] = dict(
        name=name or "trained",
        window_size=int(data.window_size),
        hyperparameters=network.hyperparameters(),
        training_direction=settings.training_direction,
        event_direction=settings.event_direction,
        threshold=float(metrics.threshold),
        # "may be resampled": a 600-input network (every transfer-learned one) takes any
        # window, as miniML; one trained from scratch on its own window length keeps it
        resample=transfer or may_resample(data.input_size, data.window_size != data.input_size),
        convolve_win=convolve, gradient_convolve_win=gradient,
        input_scaling=settings.input_scaling or "minmax",
        source_file=source.name, source_sha256=source.sha256,
        license=license_text,
    )
    kwargs["description"] = sentence
    kwargs["provenance"] = provenance
    return ModelMetadata(**kwargs), provenance
