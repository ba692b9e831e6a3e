"""The analysis filter (miniML's) and filtering a range of a long trace exactly.

:func:`analysis_filter` is the Hann-window (or Butterworth low-pass) filter that localisation
(:mod:`minidet.detection.locate`) takes the derivative of and kinetics
(:mod:`minidet.measure.kinetics`) measures on; :func:`filter_range` computes a filter's output
on ``[start, stop)`` from that range plus a :func:`filter_margin`, so chunked work equals
filtering the whole trace. numpy and scipy.signal only.
"""

from __future__ import annotations

import math
from typing import Callable

import numpy as np
from scipy import signal

from .params import check

__all__ = ["analysis_filter", "direction_sign", "filter_margin", "filter_range", "hann_window"]


_SIGNS = {"negative": -1, "positive": 1}


def direction_sign(direction: str) -> int:
    """-1 for ``"negative"``, +1 for ``"positive"``; anything else is a ParameterError."""
    sign = _SIGNS.get(direction) if isinstance(direction, str) else None
    if sign is None:  # read per event: the declared check (and its message) only for a bad value
        check("event_direction", direction)
    return sign


def hann_window(size: int) -> np.ndarray:
    """The normalised Hann window of ``size`` samples (sums to 1)."""
    win = signal.windows.hann(size)
    return win / win.sum()


def analysis_filter(
    x: np.ndarray, *, hann_size: int, cutoff_hz: float | None, sampling_rate: float
) -> np.ndarray:
    """Filter along the last axis as miniML does: Hann-window convolution (``mode="same"``,
    the first and last ``hann_size`` samples left raw) when ``hann_size > 1``, else a
    zero-phase 4th-order Butterworth low-pass at ``cutoff_hz``. Returns a new float64 array.
    """
    x = np.asarray(x, dtype=np.float64)
    if hann_size > 1:
        n = x.shape[-1]
        win = hann_window(hann_size).reshape((1,) * (x.ndim - 1) + (-1,))
        if n <= 2 * hann_size:
            return x.copy()
        y = signal.oaconvolve(x, win, mode="same", axes=-1) if x.ndim > 1 else signal.convolve(x, win.ravel(), mode="same")
        y[..., :hann_size] = x[..., :hann_size]
        y[..., -hann_size:] = x[..., -hann_size:]
        return y
    if cutoff_hz is not None:
        sos = signal.butter(4, cutoff_hz, btype="lowpass", output="sos", fs=sampling_rate)
        if x.shape[-1] <= 3 * (2 * len(sos) + 1):
            return x.copy()
        return signal.sosfiltfilt(sos, x, axis=-1)
    return x.copy()


def filter_margin(hann_size: int, cutoff_hz: float | None, sampling_rate: float) -> int:
    """Samples either side a chunk needs so that filtering it equals filtering the whole trace."""
    if hann_size > 1:
        return 2 * hann_size + 2
    if cutoff_hz is not None:
        # the 4th-order Butterworth impulse response has decayed below 1e-9 after ~40 periods
        return int(math.ceil(40 * sampling_rate / cutoff_hz)) + 32
    return 0


def filter_range(
    samples: np.ndarray,
    start: int,
    stop: int,
    fn: Callable[[np.ndarray], np.ndarray],
    margin: int,
) -> np.ndarray:
    """``fn(samples)[start:stop]`` computed from ``samples[start - margin : stop + margin]``.

    ``fn`` must be local: its output at a sample depends only on inputs within ``margin``
    and on the array's ends only within ``margin`` of them (true of the Hann filters, of
    ``np.gradient`` and, to far below float precision, of the Butterworth filter with the
    margin of :func:`filter_margin`). At the recording's own ends the slice starts/stops
    there, so the edge treatment is the whole-trace one.
    """
    n = samples.shape[0]
    lo = max(0, start - margin)
    hi = min(n, stop + margin)
    out = fn(samples[lo:hi])
    return out[start - lo : start - lo + (stop - start)]
