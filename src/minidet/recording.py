"""The one in-memory type every pipeline stage takes: :class:`Recording`."""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Any, Callable, Iterator

import numpy as np
from numpy.lib.mixins import NDArrayOperatorsMixin

from .errors import EmptyTraceError, NaNTraceError, ParameterError

__all__ = ["LazyTrace", "Recording", "nan_stretches", "DEFAULT_CHUNK"]

#: samples per piece when a stage walks a trace in pieces (8 MB of float64)
DEFAULT_CHUNK = 1 << 20


class LazyTrace(NDArrayOperatorsMixin):
    """A 1-D float64 trace whose samples are read on demand, piece by piece.

    ``read(start, stop)`` must return the samples ``[start, stop)`` as a 1-D array (any
    real dtype; it is converted to float64) -- from a memory map, an HDF5 dataset, a file
    read at an offset, or anything else. Slicing (``trace[a:b]``, ``trace[i]``) reads only
    what it asks for; ``np.asarray(trace)`` (and any numpy function or arithmetic on the
    whole trace) reads everything into memory, which is fine for short recordings and what
    the long-recording code paths avoid.

    Parameters
    ----------
    n_samples
        Length of the trace (> 0).
    read
        ``read(start, stop) -> array`` for ``0 <= start <= stop <= n_samples``.
    description
        What the samples are (shown in errors and reprs), e.g. ``"HDF5 dataset /trace"``.
    """

    ndim = 1
    dtype = np.dtype(np.float64)

    def __init__(self, n_samples: int, read: Callable[[int, int], np.ndarray], description: str = "lazy trace") -> None:
        n = int(n_samples)
        if n < 0:
            raise ParameterError(f"n_samples must be >= 0, got {n_samples!r}")
        self._n = n
        self._read = read
        self.description = description

    # ------------------------------------------------------------------ array protocol
    @property
    def shape(self) -> tuple[int]:
        return (self._n,)

    @property
    def size(self) -> int:
        return self._n

    @property
    def nbytes(self) -> int:
        """Bytes the trace would take in memory as float64 (none are held)."""
        return 8 * self._n

    def __len__(self) -> int:
        return self._n

    def read(self, start: int, stop: int) -> np.ndarray:
        """Samples ``[start, stop)`` (clipped to the trace) as a new float64 array."""
        start = max(0, min(int(start), self._n))
        stop = max(start, min(int(stop), self._n))
        if stop == start:
            return np.zeros(0, dtype=np.float64)
        out = np.asarray(self._read(start, stop))
        if out.shape != (stop - start,):
            raise EmptyTraceError(
                f"{self.description}: asked for samples {start}-{stop}, got {out.shape[0] if out.ndim else 0}"
            )
        return np.array(out, dtype=np.float64, copy=True) if out.dtype != np.float64 or not out.flags.writeable \
            or not out.flags.owndata else out

    def __getitem__(self, key: Any) -> np.ndarray | float:
        if isinstance(key, (int, np.integer)) and not isinstance(key, bool):
            i = int(key)
            if i < 0:
                i += self._n
            if not 0 <= i < self._n:
                raise IndexError(f"index {key} is out of bounds for a trace of {self._n} samples")
            return float(self.read(i, i + 1)[0])
        if isinstance(key, slice):
            start, stop, step = key.indices(self._n)
            if step == 1:
                return self.read(start, stop)
            if step > 0:
                return self.read(start, stop)[::step]
            return np.asarray(self)[key]
        # fancy indexing: read the covered range once
        idx = np.asarray(key)
        if idx.dtype == bool:
            return np.asarray(self)[idx]
        idx = idx.astype(np.int64)
        if idx.size == 0:
            return np.zeros(idx.shape, dtype=np.float64)
        idx = np.where(idx < 0, idx + self._n, idx)
        if idx.min() < 0 or idx.max() >= self._n:
            raise IndexError(f"index out of bounds for a trace of {self._n} samples")
        lo, hi = int(idx.min()), int(idx.max()) + 1
        return self.read(lo, hi)[idx - lo]

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        out = self.read(0, self._n)
        return out if dtype is None else out.astype(dtype, copy=False)

    def __array_ufunc__(self, ufunc: Any, method: str, *inputs: Any, **kwargs: Any) -> Any:
        inputs = tuple(np.asarray(x) if isinstance(x, LazyTrace) else x for x in inputs)
        if "out" in kwargs:
            kwargs["out"] = tuple(np.asarray(x) if isinstance(x, LazyTrace) else x for x in kwargs["out"])
        return getattr(ufunc, method)(*inputs, **kwargs)

    def astype(self, dtype: Any, copy: bool = True) -> np.ndarray:
        return np.asarray(self).astype(dtype, copy=False)

    def copy(self) -> np.ndarray:
        return np.asarray(self)

    def chunks(self, chunk_size: int = DEFAULT_CHUNK, margin: int = 0) -> Iterator[tuple[int, int, np.ndarray]]:
        """Yield ``(start, stop, samples[start - m0 : stop + m1])`` for consecutive pieces of
        ``chunk_size`` samples, each read with up to ``margin`` samples either side
        (clipped at the ends; ``start - m0`` is where the returned array begins)."""
        return iter_chunks(self, chunk_size, margin)

    def __repr__(self) -> str:
        return f"LazyTrace({self._n} samples, {self.description})"


def iter_chunks(samples: Any, chunk_size: int = DEFAULT_CHUNK, margin: int = 0) -> Iterator[tuple[int, int, np.ndarray]]:
    """Walk ``samples`` (array or :class:`LazyTrace`) in pieces: yields ``(start, stop,
    piece)`` where ``piece = samples[lo:hi]`` with ``lo = max(0, start - margin)`` and
    ``hi = min(n, stop + margin)``; so ``piece[start - lo : stop - lo]`` is the chunk."""
    if chunk_size < 1:
        raise ParameterError(f"chunk_size must be >= 1, got {chunk_size!r}")
    if margin < 0:
        raise ParameterError(f"margin must be >= 0, got {margin!r}")
    n = int(samples.shape[0])
    for start in range(0, n, chunk_size):
        stop = min(n, start + chunk_size)
        lo, hi = max(0, start - margin), min(n, stop + margin)
        yield start, stop, np.asarray(samples[lo:hi], dtype=np.float64)


def nan_stretches(samples: np.ndarray) -> list[tuple[int, int]]:
    """Return ``[(start, stop), ...]`` sample ranges (stop exclusive) of non-finite samples."""
    if isinstance(samples, LazyTrace):
        return _lazy_nan_stretches(samples)
    bad = ~np.isfinite(samples)
    if not bad.any():
        return []
    padded = np.concatenate(([False], bad, [False])).astype(np.int8)
    edges = np.flatnonzero(np.diff(padded))
    return [(int(a), int(b)) for a, b in zip(edges[::2], edges[1::2])]


def _lazy_nan_stretches(samples: "LazyTrace") -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []
    for start, _, piece in iter_chunks(samples):
        for a, b in nan_stretches(piece):
            a, b = a + start, b + start
            if out and out[-1][1] == a:  # a stretch continuing across the chunk border
                out[-1] = (out[-1][0], b)
            else:
                out.append((a, b))
    return out


@dataclass(frozen=True)
class Recording:
    """A single-channel trace with the metadata every stage needs.

    Parameters
    ----------
    samples
        1-D float64 array in ``unit``, or a :class:`LazyTrace` that reads them on demand
        (long recordings: stages that may meet one walk it in pieces with
        :meth:`chunks` / :meth:`read`). No scaling is ever applied downstream.
    sampling_rate
        Samples per second (Hz), > 0.
    unit
        Physical unit of the samples, e.g. ``"pA"`` or ``"mV"``.
    source
        Path of the file it was read from (``None`` for generated data).
    channel
        Channel name (ABF ADC name, NWB series name, HDF5 dataset path ...).
    sweep_starts
        Sample indices at which each concatenated sweep starts; ``[0]`` for a gap-free trace.
    metadata
        Free-form extra information from the reader (format, file comment, ...).
    """

    samples: np.ndarray
    sampling_rate: float
    unit: str = "pA"
    source: str | None = None
    channel: str | None = None
    sweep_starts: np.ndarray = field(default_factory=lambda: np.zeros(1, dtype=np.int64))
    metadata: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        samples = self.samples
        if not isinstance(samples, LazyTrace):
            samples = np.asarray(samples)
            if samples.ndim != 1:
                raise ParameterError(f"samples must be 1-D, got shape {samples.shape}")
            if samples.dtype != np.float64:
                samples = samples.astype(np.float64)
        object.__setattr__(self, "samples", samples)
        rate = float(self.sampling_rate)
        if not math.isfinite(rate) or rate <= 0:
            raise ParameterError(f"sampling_rate must be a positive number of Hz, got {self.sampling_rate!r}")
        object.__setattr__(self, "sampling_rate", rate)
        starts = np.asarray(self.sweep_starts, dtype=np.int64).reshape(-1)
        if starts.size == 0:
            starts = np.zeros(1, dtype=np.int64)
        if starts[0] != 0 or np.any(np.diff(starts) <= 0) or starts[-1] >= max(samples.size, 1):
            raise ParameterError(
                f"sweep_starts must begin at 0 and increase strictly inside the trace, got {starts.tolist()}"
            )
        object.__setattr__(self, "sweep_starts", starts)
        if samples.size == 0:
            raise EmptyTraceError(f"the trace from {self.source or 'memory'} holds no samples")

    # ------------------------------------------------------------------ properties
    @property
    def n_samples(self) -> int:
        return int(self.samples.size)

    @property
    def is_lazy(self) -> bool:
        """True when the samples are read on demand (a :class:`LazyTrace`)."""
        return isinstance(self.samples, LazyTrace)

    def read(self, start: int, stop: int) -> np.ndarray:
        """Samples ``[start, stop)`` (clipped to the trace) as a float64 array; a view for
        in-memory recordings, a fresh array for lazy ones -- do not write into it."""
        start = max(0, min(int(start), self.n_samples))
        stop = max(start, min(int(stop), self.n_samples))
        return self.samples[start:stop]

    def chunks(self, chunk_size: int = DEFAULT_CHUNK, margin: int = 0) -> Iterator[tuple[int, int, np.ndarray]]:
        """Walk the trace in pieces; see :func:`iter_chunks`."""
        return iter_chunks(self.samples, chunk_size, margin)

    def in_memory(self) -> "Recording":
        """This recording with every sample read into memory (self if they already are)."""
        if not self.is_lazy:
            return self
        return replace(self, samples=np.asarray(self.samples))

    @property
    def duration_s(self) -> float:
        """Length of the trace in seconds."""
        return self.n_samples / self.sampling_rate

    @property
    def dt_s(self) -> float:
        """Sampling interval in seconds."""
        return 1.0 / self.sampling_rate

    @property
    def n_sweeps(self) -> int:
        return int(self.sweep_starts.size)

    @property
    def time_s(self) -> np.ndarray:
        """Time of each sample in seconds from the start of the (concatenated) trace."""
        return np.arange(self.n_samples) / self.sampling_rate

    # ------------------------------------------------------------------ helpers
    def check_finite(self) -> "Recording":
        """Raise :class:`NaNTraceError` naming where NaN/inf stretches are; return self."""
        stretches = nan_stretches(self.samples)
        if not stretches:
            return self
        n_bad = sum(b - a for a, b in stretches)
        if n_bad == self.n_samples:
            raise NaNTraceError(f"the trace from {self.source or 'memory'} holds only NaN/inf samples")
        shown = ", ".join(
            f"{a / self.sampling_rate:.4f}-{b / self.sampling_rate:.4f} s" for a, b in stretches[:5]
        )
        more = f" and {len(stretches) - 5} more" if len(stretches) > 5 else ""
        raise NaNTraceError(
            f"the trace holds {n_bad} NaN/inf samples in {len(stretches)} stretch(es): {shown}{more}; "
            "cut them out or interpolate before analysis"
        )

    def with_samples(self, samples: np.ndarray, **changes: Any) -> "Recording":
        """A copy with new samples (same length unless sweep_starts is also given)."""
        return replace(self, samples=samples, **changes)

    def sweep_bounds(self) -> list[tuple[int, int]]:
        """``[(start, stop), ...]`` of every sweep, stop exclusive."""
        ends = np.append(self.sweep_starts[1:], self.n_samples)
        return [(int(a), int(b)) for a, b in zip(self.sweep_starts, ends)]

    def __repr__(self) -> str:  # keep the array out of the repr
        lazy = ", lazy" if self.is_lazy else ""
        return (
            f"Recording({self.n_samples} samples{lazy}, {self.sampling_rate:g} Hz, {self.duration_s:.3f} s, "
            f"unit={self.unit!r}, channel={self.channel!r}, sweeps={self.n_sweeps}, source={self.source!r})"
        )
