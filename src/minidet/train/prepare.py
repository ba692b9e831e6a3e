"""Training data: read scored snippets (file, Dataset or arrays), check them and turn them into
scaled, labelled network inputs split 80/20 by class (:func:`prepare_data`).

Score-2 snippets are left out; windows are inverted when the events' direction differs from
the training direction, resampled to the network's input length when needed, and scaled
(min-max per window, or by the recording's noise SD). :func:`minidet.train.fit.train_model`
runs this before training.
"""

from __future__ import annotations

import hashlib
import logging
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import ParameterError
from ..fsutil import sha256_file
from ..model.network import minmax_scale, noise_scale

if TYPE_CHECKING:
    from .fit import TrainSettings

logger = logging.getLogger(__name__)

__all__ = [
    "BALANCE_RANGE", "DatasetBalanceWarning", "DatasetSource", "MIN_PER_CLASS", "PreparedData",
    "load_training_data", "prepare_data",
]

#: Balance (events / non-events) outside this range gives a DatasetBalanceWarning.
BALANCE_RANGE = (0.95, 1.05)
#: Fewest snippets of each class: the 20 % held out must hold both classes.
MIN_PER_CLASS = 5


class DatasetBalanceWarning(UserWarning):
    """The dataset's ratio of events to non-events is outside 0.95-1.05."""


def _need(cond: bool, message: str) -> None:
    if not cond:
        raise ParameterError(message)


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
