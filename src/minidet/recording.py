"""The one in-memory type every pipeline stage takes: :class:`Recording`."""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from .errors import EmptyTraceError, NaNTraceError, ParameterError

__all__ = ["Recording", "nan_stretches"]


def nan_stretches(samples: np.ndarray) -> list[tuple[int, int]]:
    """Return ``[(start, stop), ...]`` sample ranges (stop exclusive) of non-finite samples."""
    bad = ~np.isfinite(samples)
    if not bad.any():
        return []
    padded = np.concatenate(([False], bad, [False])).astype(np.int8)
    edges = np.flatnonzero(np.diff(padded))
    return [(int(a), int(b)) for a, b in zip(edges[::2], edges[1::2])]


@dataclass(frozen=True)
class Recording:
    """A single-channel trace with the metadata every stage needs.

    Parameters
    ----------
    samples
        1-D float64 array in ``unit``. No scaling is ever applied downstream.
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
        samples = np.asarray(self.samples)
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
        return (
            f"Recording({self.n_samples} samples, {self.sampling_rate:g} Hz, {self.duration_s:.3f} s, "
            f"unit={self.unit!r}, channel={self.channel!r}, sweeps={self.n_sweeps}, source={self.source!r})"
        )
