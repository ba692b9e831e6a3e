"""Train an event classifier on a scored dataset: transfer learning or full training.

(About 500 lines: TrainSettings with its checks and train_model's orchestration of one run: the
data, the starting network and the loop live in prepare.py, init.py and loop.py.)

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

This module holds the settings (:class:`TrainSettings`), the entry point
(:func:`train_model`), the result and the model's metadata; the steps live in
:mod:`.prepare` (reading, checking, scaling and splitting the data), :mod:`.init` (the network
to start from) and :mod:`.loop` (the training loop and the held-out evaluation).
"""

from __future__ import annotations

import logging
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from .. import __version__
from ..errors import ParameterError
from ..windows import may_resample
from ..model.modelfile import DIRECTIONS, FILE_SUFFIX, ModelMetadata, save_model_file
from ..model.network import INPUT_SCALINGS, MiniMLNet
from .init import initial_network, load_base
from .loop import evaluate_network, fit_network, resolve_train_device, torch_threads
from .metrics import ClassificationMetrics
from .prepare import DatasetSource, PreparedData, _need, load_training_data, prepare_data

logger = logging.getLogger(__name__)

__all__ = ["TrainSettings", "TrainingResult", "train_model"]

#: Learning rate of transfer learning. miniML's notebook uses a far smaller one and trains for
#: up to 100 epochs; at 1e-4 (batch 64) the LSTM and dense layers move within a few dozen.
TRANSFER_LEARNING_RATE = 1e-4


# ----------------------------------------------------------------------------- settings
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
        Scored snippets in miniML's layout (see :func:`~minidet.train.prepare.load_training_data`).
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
        Bad settings or dataset (see :func:`~minidet.train.prepare.prepare_data`).
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
    base_model = load_base(base) if transfer else None
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
    device = resolve_train_device(settings.device)

    windows, scores, noise_sd, source = load_training_data(dataset)
    input_size = base_model.input_size if transfer else settings.input_size
    if not transfer and not settings.resample:
        input_size = int(np.shape(windows)[-1]) if np.ndim(windows) == 2 else settings.input_size
    data = prepare_data(windows, scores, settings, input_size, settings.training_direction,
                        base_name=base_model.name if transfer else None, noise_sd=noise_sd,
                        input_scaling=scaling)
    logger.info("training on %d windows, validating on %d", data.y_train.size, data.y_val.size)

    with torch_threads(settings.num_threads), torch.random.fork_rng(
            devices=[device.index or 0] if device.type == "cuda" else []):
        torch.manual_seed(settings.seed)
        network = initial_network(base_model, input_size, settings.dropout)
        network.to(device)
        frozen = transfer and not settings.fine_tune
        run = fit_network(network, data, settings, frozen, device, progress, on_epoch)
        metrics, roc = evaluate_network(network, data, device)
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
            "chosen per recording (auto)" if choice.auto else f"{choice.threshold:.4g}") + f" ({choice.rule}).")
    logger.info(choice.sentence())
    return metadata, provenance


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
