"""Min/max reductions of long traces for drawing (numpy only): the analysis app's zoomable
envelopes, the report's trace figure and the scoring app's context view all use these.

:func:`minmax_bins` and :func:`chunked_minmax` give the minimum and maximum of consecutive
bins (the latter reading a lazily read trace in pieces); :func:`minmax_points` gives at most
``max_points`` (index, value) pairs, each bin's minimum and maximum in the order they occur.

Min/max envelopes of long traces for drawing, at any zoom, in bounded time:

A screen pixel column shows the minimum and maximum of the samples it covers, which draws
exactly like the full trace (no spike is lost). :class:`Envelope` answers a request for
``[start, stop)`` at ``pixels`` columns from a small pyramid of precomputed min/max levels
(bins of 32, 1024, 32768 ... samples), so one request reads at most about
``8 x 32 x pixels`` values of one level whatever the zoom, also on an hour of 50 kHz data,
and its columns are at most 1/8 wider than asked for.
Below about two samples per pixel the samples themselves are returned.

Bins are aligned to multiples of their width from sample 0, so the columns do not shimmer
while the view pans.

The trace may be a :class:`~minidet.recording.LazyTrace` (an hour-long recording read on
demand): the pyramid is then built in one pass over pieces of :data:`BUILD_CHUNK` samples
(:func:`chunked_minmax`), never holding the trace, and a request reads only the pyramid level
it needs, or at most about ``2 x pixels`` samples from the file when zoomed in that far.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["BUILD_CHUNK", "Envelope", "EnvelopeSlice", "chunked_minmax", "minmax_bins", "minmax_points"]

#: samples read at once while a lazily read trace is reduced (8 MB of float64)
BUILD_CHUNK = 1 << 20

FULL_RESOLUTION_BELOW = 2.0  #: samples per pixel below which the samples are sent as they are
MIN_VALUES_PER_BIN = 8  #: a level is read only with at least this many of its values per column


def _reduce(x: np.ndarray, width: int, fn) -> np.ndarray:
    n_full = x.size // width
    out = fn(x[: n_full * width].reshape(n_full, width), axis=1)
    if x.size > n_full * width:
        out = np.append(out, fn(x[n_full * width:]))
    return out


def minmax_bins(x: np.ndarray, width: int) -> tuple[np.ndarray, np.ndarray]:
    """Minimum and maximum of consecutive bins of ``width`` samples (the last may be shorter).

    Vectorised: the whole bins are one reshape, the partial last bin is reduced separately.
    """
    x = np.asarray(x)
    if width < 1:
        raise ValueError(f"width must be >= 1, got {width}")
    return _reduce(x, width, np.min), _reduce(x, width, np.max)


def minmax_points(samples: np.ndarray, max_points: int) -> tuple[np.ndarray, np.ndarray]:
    """At most ``max_points`` (index, value) pairs that draw like the full trace.

    Bins of equal width; each contributes its minimum and maximum, in the order they occur,
    so spikes survive. Returns (sample indices, values); a short trace comes back whole.
    """
    x = np.asarray(samples, dtype=np.float64)
    n = x.size
    if n <= max_points or max_points < 4:
        return np.arange(n), x
    width = int(np.ceil(n / (max_points // 2)))
    n_bins = int(np.ceil(n / width))  # every bin holds samples (the last may be short)
    pad = n_bins * width - n
    padded = np.concatenate([x, np.full(pad, np.nan)]) if pad else x
    blocks = padded.reshape(n_bins, width)
    imin = np.nanargmin(blocks, axis=1)
    imax = np.nanargmax(blocks, axis=1)
    first = np.minimum(imin, imax)
    second = np.maximum(imin, imax)
    base = np.arange(n_bins) * width
    idx = np.stack([base + first, base + second], axis=1).reshape(-1)
    return idx, x[idx]


def _as_trace(samples: Any) -> Any:
    """``samples`` as something with ``shape`` and slicing: arrays and lazy traces as they
    are, anything else through ``np.asarray``."""
    from .recording import LazyTrace

    if isinstance(samples, (np.ndarray, LazyTrace)):
        return samples
    return np.asarray(samples)


def chunked_minmax(samples: Any, width: int, chunk: int | None = None,
                   ignore_nan: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """:func:`minmax_bins` of an array or :class:`~minidet.recording.LazyTrace`, read in pieces.

    Each piece is a whole number of bins of ``width`` samples (about ``chunk`` samples), so no
    bin straddles two pieces and the answer equals ``minmax_bins(np.asarray(samples), width)``
    (``chunk`` defaults to :data:`BUILD_CHUNK`);
    memory holds one piece and the result only. With ``ignore_nan`` a bin's NaN samples are
    skipped (the bin is NaN only when all its samples are).
    """
    chunk = BUILD_CHUNK if chunk is None else int(chunk)
    fmin, fmax = (np.fmin.reduce, np.fmax.reduce) if ignore_nan else (np.min, np.max)
    if width < 1:
        raise ValueError(f"width must be >= 1, got {width}")
    samples = _as_trace(samples)
    n = int(samples.shape[0])
    n_bins = -(-n // width)
    lo = np.empty(n_bins, dtype=np.float64)
    hi = np.empty(n_bins, dtype=np.float64)
    step = width * max(1, chunk // width)
    for start in range(0, n, step):
        piece = np.asarray(samples[start: min(n, start + step)], dtype=np.float64)
        a = start // width
        plo, phi = _reduce(piece, width, fmin), _reduce(piece, width, fmax)
        lo[a: a + plo.size], hi[a: a + phi.size] = plo, phi
    return lo, hi


@dataclass(frozen=True)
class EnvelopeSlice:
    """What to draw for ``[start, stop)``.

    ``bin_width == 1``: ``lo`` holds the samples from ``x0`` on (``hi`` is the same array).
    Otherwise bin ``i`` covers samples ``x0 + i * bin_width`` up to the next bin's start
    (the last bin ends at the trace's end) and ``lo``/``hi`` are its minimum and maximum.
    """

    x0: int
    bin_width: int
    lo: np.ndarray
    hi: np.ndarray

    @property
    def full_resolution(self) -> bool:
        return self.bin_width == 1


class Envelope:
    """A trace with a lazily built min/max pyramid.

    Parameters
    ----------
    samples
        The 1-D trace (kept by reference, not copied): an array or a
        :class:`~minidet.recording.LazyTrace`, which is never read whole.
    factor
        Each pyramid level bins ``factor`` values of the level below (>= 2).
    """

    def __init__(self, samples: Any, factor: int = 32) -> None:
        self.samples = _as_trace(samples)
        if self.samples.ndim != 1:
            raise ValueError(f"samples must be 1-D, got shape {self.samples.shape}")
        if factor < 2:
            raise ValueError(f"factor must be >= 2, got {factor}")
        self.factor = int(factor)
        self._levels: list[tuple[int, np.ndarray, np.ndarray]] | None = None
        self._lock = threading.Lock()

    @property
    def n(self) -> int:
        return int(self.samples.shape[0])

    def levels(self) -> list[tuple[int, np.ndarray, np.ndarray]]:
        """``[(bin width in samples, minima, maxima), ...]``, coarsest last (built on first use)."""
        with self._lock:
            if self._levels is None:
                width = self.factor
                lo, hi = chunked_minmax(self.samples, width)
                levels = [(width, lo, hi)]
                while lo.size > 2 * self.factor:
                    width *= self.factor
                    lo, hi = _reduce(lo, self.factor, np.min), _reduce(hi, self.factor, np.max)
                    levels.append((width, lo, hi))
                self._levels = levels
            return self._levels

    def slice(self, start: int, stop: int, pixels: int) -> EnvelopeSlice:
        """The envelope of ``samples[start:stop]`` at about ``pixels`` columns.

        ``start``/``stop`` are clipped to the trace. The bin width is the smallest whole number
        of samples that gives at most ``pixels`` bins, rounded up to a multiple of the bin
        width of the pyramid level it is read from; that level is the coarsest one with at
        least :data:`MIN_VALUES_PER_BIN` values per bin, so a bin is at most 1/8 wider.
        """
        n = self.n
        start = max(0, min(int(start), n))
        stop = max(start, min(int(stop), n))
        pixels = max(1, int(pixels))
        span = stop - start
        if span == 0:
            return EnvelopeSlice(start, 1, self.samples[0:0], self.samples[0:0])
        per_pixel = span / pixels
        if per_pixel < FULL_RESOLUTION_BELOW:
            seg = self.samples[start:stop]
            return EnvelopeSlice(start, 1, seg, seg)
        width = int(math.ceil(per_pixel))
        # the coarsest level that still has MIN_VALUES_PER_BIN values per requested bin
        source_width, lo, hi = 1, self.samples, self.samples
        if width >= self.factor * MIN_VALUES_PER_BIN:
            for level_width, level_lo, level_hi in self.levels():
                if level_width * MIN_VALUES_PER_BIN > width:
                    break
                source_width, lo, hi = level_width, level_lo, level_hi
        k = int(math.ceil(width / source_width))  # source values per output bin
        width = k * source_width
        first = start // width  # aligned bins covering [start, stop)
        last = (stop - 1) // width + 1
        a, b = first * k, min(last * k, lo.shape[0])
        if hi is lo:  # the samples themselves: read them once
            seg = np.asarray(lo[a:b], dtype=np.float64)
            out_lo = _reduce(seg, k, np.min)
            out_hi = out_lo if k == 1 else _reduce(seg, k, np.max)
        else:
            out_lo, out_hi = _reduce(lo[a:b], k, np.min), _reduce(hi[a:b], k, np.max)
        return EnvelopeSlice(first * width, width, out_lo, out_hi)
