"""The miniML classifier network (CNN + bidirectional LSTM) in PyTorch.

The layers, their order and every option match miniML's Keras model (O'Neill et al., eLife
2025) so that its trained weights run unchanged: Keras defaults are reproduced explicitly
(LeakyReLU slope 0.3, BatchNorm epsilon 1e-3, 'same' padding with the extra sample on the
right for even kernels, 'valid' average pooling that drops the remainder).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from ..errors import ParameterError

#: Keras' LeakyReLU default slope (stored as float32 0.3 in miniML's files).
LEAKY_SLOPE = 0.30000001192092896
#: Keras' BatchNormalization default epsilon.
BN_EPSILON = 1e-3


@dataclass(frozen=True)
class ConvBlockSpec:
    """One convolution block: filters, kernel size (samples) and pool size (1: no pooling)."""

    filters: int
    kernel_size: int
    pool_size: int


#: miniML's convolution blocks, in order.
MINIML_CONV_BLOCKS = (
    ConvBlockSpec(32, 9, 3),
    ConvBlockSpec(48, 7, 2),
    ConvBlockSpec(64, 5, 2),
    ConvBlockSpec(80, 3, 1),
)


#: How a window is scaled before the network sees it (a property of the trained network):
#: ``"minmax"`` (miniML: each window to [0, 1] on its own) or ``"noise"`` (minidet: in units of the
#: recording's noise SD, compressed; see :func:`noise_scale`).
INPUT_SCALINGS = ("minmax", "noise")
#: :func:`noise_scale`: samples are divided by this many noise SDs before the asinh.
NOISE_SCALE_SDS = 4.0


def noise_scale(windows: np.ndarray, noise_sd: float | np.ndarray) -> np.ndarray:
    """Scale windows in units of the recording's noise: ``asinh((x - median(x)) / (4 sd)) / 2``.

    Unlike :func:`minmax_scale`, the size of a deflection relative to the noise survives: a
    window of pure noise stays small (about +-0.5) and an event of 2 noise SDs looks
    different from one of 20, which is what lets a network judge small events in noisy
    recordings. The asinh keeps large events (hundreds of SDs) in a range the network can
    use: linear up to a few SDs, logarithmic beyond.

    Parameters
    ----------
    windows : array, shape (n, window_size)
        Raw samples, one window per row, in the network's polarity.
    noise_sd : float or array of shape (n,) or (n, 1)
        Noise SD of the recording each window comes from (same unit as the samples), > 0.

    Returns
    -------
    numpy.ndarray, float32, same shape.
    """
    x = np.asarray(windows, dtype=np.float64)
    sd = np.asarray(noise_sd, dtype=np.float64)
    if sd.ndim == 1:
        sd = sd[:, None]
    if not np.all(np.isfinite(sd)) or np.any(sd <= 0):
        raise ParameterError(f"noise_sd must be positive and finite, got {noise_sd!r}")
    centred = x - np.median(x, axis=-1, keepdims=True)
    return (np.arcsinh(centred / (NOISE_SCALE_SDS * sd)) / 2.0).astype(np.float32)


def minmax_scale(windows: np.ndarray | torch.Tensor) -> np.ndarray | torch.Tensor:
    """Scale every window to [0, 1] on its own: ``(x - min) / (max - min)``.

    Parameters
    ----------
    windows : array or tensor, shape (n, window_size)
        Raw samples, one window per row.

    Returns
    -------
    Same type and shape (float; numpy keeps a float dtype, integers become float64). A flat
    window (max == min) becomes all zeros instead of NaN.
    """
    if isinstance(windows, torch.Tensor):
        x = windows if windows.is_floating_point() else windows.double()
        lo = x.amin(dim=-1, keepdim=True)
        span = x.amax(dim=-1, keepdim=True) - lo
        span = torch.where(span > 0, span, torch.ones_like(span))
        return (x - lo) / span
    x = np.asarray(windows)
    if not np.issubdtype(x.dtype, np.floating):
        x = x.astype(np.float64)
    lo = x.min(axis=-1, keepdims=True)
    span = x.max(axis=-1, keepdims=True) - lo
    span = np.where(span > 0, span, np.ones_like(span))
    return (x - lo) / span


class SamePadConv1d(nn.Module):
    """Conv1d with Keras 'same' padding (for even kernels the extra zero goes on the right)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int) -> None:
        super().__init__()
        self.conv = nn.Conv1d(in_channels, out_channels, kernel_size, padding=0)
        total = kernel_size - 1
        self.pad_left = total // 2
        self.pad_right = total - self.pad_left

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.pad(x, (self.pad_left, self.pad_right)))


class ConvBlock(nn.Module):
    """Conv1D ('same') -> BatchNorm -> LeakyReLU -> AvgPool ('valid'; skipped if pool 1)."""

    def __init__(self, in_channels: int, spec: ConvBlockSpec) -> None:
        super().__init__()
        self.conv = SamePadConv1d(in_channels, spec.filters, spec.kernel_size)
        # Keras momentum 0.99 for the running statistics is torch momentum 0.01.
        self.bn = nn.BatchNorm1d(spec.filters, eps=BN_EPSILON, momentum=0.01)
        self.act = nn.LeakyReLU(LEAKY_SLOPE)
        self.pool = (nn.AvgPool1d(spec.pool_size, stride=spec.pool_size, ceil_mode=False)
                     if spec.pool_size > 1 else nn.Identity())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(self.act(self.bn(self.conv(x))))


class MiniMLNet(nn.Module):
    """miniML's event classifier: 4 conv blocks, a BiLSTM (directions summed), 2 dense layers.

    Parameters
    ----------
    window_size : int
        Samples per input window (600 for miniML's models). The network itself works for any
        length that survives the pooling (>= 12 samples); the value is kept for checks.
    lstm_units : int
        Units per LSTM direction (96).
    dense_units : int
        Units of the hidden dense layer (128).
    dropout : float
        Dropout rate before the output layer (0.2 in miniML's base model).
    lstm_input_dropout : float
        Dropout on the LSTM inputs during training, one mask per sample and feature for all
        time steps as in Keras' ``LSTM(dropout=...)`` (0.2 in miniML). No effect in eval mode.

    Notes
    -----
    ``forward`` takes min-max scaled windows, shape (n, window_size), and returns
    probabilities, shape (n,). ``logits`` returns the pre-sigmoid values (for training with
    ``BCEWithLogitsLoss``).
    """

    def __init__(self, window_size: int = 600, lstm_units: int = 96, dense_units: int = 128,
                 dropout: float = 0.2, lstm_input_dropout: float = 0.2,
                 conv_blocks: tuple[ConvBlockSpec, ...] = MINIML_CONV_BLOCKS) -> None:
        super().__init__()
        min_len = int(np.prod([b.pool_size for b in conv_blocks]))
        if int(window_size) != window_size or window_size < max(min_len, 1):
            raise ParameterError(
                f"window_size must be an integer >= {min_len} samples, got {window_size!r}")
        for name, rate in (("dropout", dropout), ("lstm_input_dropout", lstm_input_dropout)):
            if not 0.0 <= rate < 1.0:
                raise ParameterError(f"{name} must be in [0, 1), got {rate!r}")
        self.window_size = int(window_size)
        self.lstm_units = int(lstm_units)
        self.dense_units = int(dense_units)
        self.dropout_rate = float(dropout)
        self.lstm_input_dropout_rate = float(lstm_input_dropout)
        self.conv_blocks_spec = tuple(conv_blocks)

        blocks = []
        in_ch = 1
        for spec in conv_blocks:
            blocks.append(ConvBlock(in_ch, spec))
            in_ch = spec.filters
        self.blocks = nn.ModuleList(blocks)
        # Dropout1d zeroes whole channels of (n, C, L): the same mask at every time step.
        self.lstm_input_dropout = nn.Dropout1d(lstm_input_dropout)
        self.lstm = nn.LSTM(in_ch, lstm_units, batch_first=True, bidirectional=True)
        self.dense = nn.Linear(lstm_units, dense_units)
        self.dense_act = nn.LeakyReLU(LEAKY_SLOPE)
        self.dropout = nn.Dropout(dropout)
        self.out = nn.Linear(dense_units, 1)

    def hyperparameters(self) -> dict:
        """The constructor arguments, JSON-ready (stored in minidet model files)."""
        return {
            "window_size": self.window_size,
            "lstm_units": self.lstm_units,
            "dense_units": self.dense_units,
            "dropout": self.dropout_rate,
            "lstm_input_dropout": self.lstm_input_dropout_rate,
            "conv_blocks": [[b.filters, b.kernel_size, b.pool_size] for b in self.conv_blocks_spec],
        }

    def logits(self, windows: torch.Tensor) -> torch.Tensor:
        """Pre-sigmoid outputs, shape (n,), for scaled windows of shape (n, L)."""
        x = windows.unsqueeze(1)  # (n, 1, L): channels first
        for block in self.blocks:
            x = block(x)
        x = self.lstm_input_dropout(x)
        # h_n holds the last output of each direction: forward at t = L-1, backward at t = 0,
        # which is what Keras' Bidirectional(return_sequences=False) returns.
        _, (h_n, _) = self.lstm(x.transpose(1, 2))
        x = h_n[0] + h_n[1]  # merge_mode="sum"
        x = self.dropout(self.dense_act(self.dense(x)))
        return self.out(x).squeeze(-1)

    def forward(self, windows: torch.Tensor) -> torch.Tensor:
        """Event probabilities, shape (n,), for min-max scaled windows of shape (n, L)."""
        return torch.sigmoid(self.logits(windows))
