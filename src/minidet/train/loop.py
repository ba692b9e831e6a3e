"""The training loop: mini-batch Adam on binary cross-entropy with early stopping on the
validation loss, keeping the best weights (:func:`fit_network`), and the held-out evaluation
(:func:`evaluate_network`).

With frozen convolutions (transfer learning) their output is computed once per window and
cached (:func:`conv_features`; each epoch runs only :func:`head_logits`), and on a CPU with two
threads or more the LSTM's two directions run one per thread
(:class:`~minidet.train.fast_lstm.TwoThreadBiLSTM`). Full training recalibrates batch norm's
running statistics before each validation (see :mod:`minidet.train.fit`).
"""

from __future__ import annotations

import copy
import logging
import math
import time
from contextlib import contextmanager
from typing import TYPE_CHECKING, Callable, Iterator

import numpy as np
import torch
from torch import nn

from ..model.network import MiniMLNet
from .fast_lstm import TwoThreadBiLSTM
from .metrics import ClassificationMetrics, evaluate
from .optim import Adam
from .prepare import PreparedData

if TYPE_CHECKING:
    from .fit import TrainSettings

logger = logging.getLogger(__name__)

__all__ = ["conv_features", "evaluate_network", "fit_network", "head_logits", "resolve_train_device",
           "torch_threads"]

_FEATURE_BATCH = 512


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


def resolve_train_device(device: str) -> torch.device:
    from ..model.core import resolve_device

    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return resolve_device(device)


@contextmanager
def torch_threads(n: int | None) -> Iterator[None]:
    if n is None:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(int(n))
    try:
        yield
    finally:
        torch.set_num_threads(before)


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


def fit_network(network: MiniMLNet, data: PreparedData, settings: TrainSettings, frozen: bool,
                device: torch.device, progress: bool,
                on_epoch: Callable[[int, dict], None] | None) -> dict:
    """Train ``network`` on ``data`` (``frozen``: convolutions and their batch norm fixed);
    returns the history and run figures, with the best weights loaded and in eval mode."""
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


def evaluate_network(network: MiniMLNet, data: PreparedData,
                     device: torch.device) -> tuple[ClassificationMetrics, dict]:
    """Metrics and ROC of ``network`` on the held-out windows."""
    network.eval()
    x = torch.from_numpy(data.x_val).to(device)
    with torch.no_grad():
        probs = torch.cat([torch.sigmoid(head_logits(network, conv_features(network, x[i:i + _FEATURE_BATCH])))
                           for i in range(0, x.shape[0], _FEATURE_BATCH)]).float().cpu().numpy()
    return evaluate(data.y_val.astype(np.int64), probs)
