"""What every reader returns, and the steps shared by all of them.

A reader opens one file format and hands back a :class:`SweepSource` for one channel: the
number of sweeps, a function that reads one sweep, the sampling rate and the unit. The shared
code in :func:`build_recording` then selects sweeps, drops the start of each sweep, scales and
concatenates, so every format behaves the same way for the same options.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np

from ..errors import ChannelError, EmptyTraceError, ParameterError, SweepError
from ..recording import Recording

__all__ = [
    "ChannelInfo",
    "FileInfo",
    "ReadOptions",
    "SweepSource",
    "build_recording",
    "parse_sweeps",
    "pick_channel",
]


@dataclass(frozen=True)
class ReadOptions:
    """Options shared by every reader (the CLI's reader options).

    Parameters
    ----------
    channel
        Channel name or 0-based index (``"1"`` counts as an index when no channel has that name).
    sweeps
        Sweeps to read, as a spec (``"0-3,5"``) or a sequence of 0-based indices; ``None``: all.
    skip_start_s
        Seconds dropped at the start of every sweep (a test pulse, say).
    dataset
        HDF5 dataset path, or NWB series name.
    sampling_rate
        Hz, for files that store none (.npy, one-column text, HDF5 without attributes).
    scale
        Factor the samples are multiplied by; needs ``unit`` to name the result.
    unit
        Unit of the samples (after ``scale``).
    """

    channel: str | int | None = None
    sweeps: str | Sequence[int] | None = None
    skip_start_s: float = 0.0
    dataset: str | None = None
    sampling_rate: float | None = None
    scale: float | None = None
    unit: str | None = None

    def __post_init__(self) -> None:
        if self.skip_start_s is None:
            object.__setattr__(self, "skip_start_s", 0.0)
        if not math.isfinite(float(self.skip_start_s)) or self.skip_start_s < 0:
            raise ParameterError(f"skip_start_s must be >= 0 seconds, got {self.skip_start_s!r}")
        if self.sampling_rate is not None:
            rate = float(self.sampling_rate)
            if not math.isfinite(rate) or rate <= 0:
                raise ParameterError(f"sampling_rate must be a positive number of Hz, got {self.sampling_rate!r}")
        if self.scale is not None:
            scale = float(self.scale)
            if not math.isfinite(scale) or scale == 0:
                raise ParameterError(f"scale must be a finite, non-zero factor, got {self.scale!r}")
            if not self.unit:
                raise ParameterError(
                    f"scale={self.scale!r} needs a unit naming the scaled samples (e.g. --scale 1e12 --unit pA)"
                )
        if self.unit is not None and not str(self.unit).strip():
            raise ParameterError("unit must not be empty")


@dataclass(frozen=True)
class SweepSource:
    """One channel of one file, as a reader hands it over."""

    n_sweeps: int
    read_sweep: Callable[[int], np.ndarray]
    sampling_rate: float | None
    unit: str | None
    channel: str
    file_format: str
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ChannelInfo:
    index: int
    name: str
    unit: str | None


@dataclass(frozen=True)
class FileInfo:
    """What ``minidet info`` shows about a file."""

    path: str
    file_format: str
    channels: list[ChannelInfo]
    n_sweeps: int
    sweep_length_samples: int | None
    sampling_rate: float | None
    duration_s: float | None
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "format": self.file_format,
            "channels": [{"index": c.index, "name": c.name, "unit": c.unit} for c in self.channels],
            "n_sweeps": self.n_sweeps,
            "sweep_length_samples": self.sweep_length_samples,
            "sweep_length_s": (
                self.sweep_length_samples / self.sampling_rate
                if self.sweep_length_samples and self.sampling_rate
                else None
            ),
            "sampling_rate_hz": self.sampling_rate,
            "duration_s": self.duration_s,
            "notes": list(self.notes),
        }

    def to_text(self) -> str:
        d = self.to_dict()
        lines = [f"file:           {self.path}", f"format:         {self.file_format}"]
        lines.append(f"channels:       {len(self.channels)}")
        for c in self.channels:
            lines.append(f"  [{c.index}] {c.name} ({c.unit or 'unit unknown'})")
        rate = f"{self.sampling_rate:g} Hz" if self.sampling_rate else "not stored (give --sampling-rate)"
        lines.append(f"sampling rate:  {rate}")
        if self.sweep_length_samples is not None:
            length = f"{self.sweep_length_samples} samples"
            if d["sweep_length_s"] is not None:
                length += f" ({d['sweep_length_s']:.4g} s)"
            lines.append(f"sweeps:         {self.n_sweeps} x {length}")
        else:
            lines.append(f"sweeps:         {self.n_sweeps} (of different lengths)")
        if self.duration_s is not None:
            lines.append(f"duration:       {self.duration_s:.4f} s")
        for note in self.notes:
            lines.append(f"note:           {note}")
        return "\n".join(lines)


_SPEC = re.compile(r"^\s*(\d+)\s*(?:-\s*(\d+)\s*)?$")


def parse_sweeps(spec: str | Sequence[int] | None, n_sweeps: int) -> list[int]:
    """Turn ``"0-3,5"`` (or a list of ints, or None for all) into sorted-as-given sweep indices.

    Raises :class:`SweepError` for malformed specs and sweeps that do not exist.
    """
    if spec is None or (isinstance(spec, str) and spec.strip().lower() in ("", "all")):
        return list(range(n_sweeps))
    if isinstance(spec, str):
        indices: list[int] = []
        for part in spec.split(","):
            m = _SPEC.match(part)
            if not m:
                raise SweepError(f"cannot read sweep selection {spec!r}: use e.g. '0-3,5' (0-based)")
            a = int(m.group(1))
            b = int(m.group(2)) if m.group(2) is not None else a
            if b < a:
                raise SweepError(f"sweep range {part.strip()!r} runs backwards")
            indices.extend(range(a, b + 1))
    else:
        try:
            indices = [int(i) for i in spec]
        except (TypeError, ValueError):
            raise SweepError(f"sweeps must be integers, got {spec!r}") from None
    if not indices:
        raise SweepError("the sweep selection is empty")
    bad = [i for i in indices if i < 0 or i >= n_sweeps]
    if bad:
        raise SweepError(
            f"sweep {bad[0]} does not exist: the file has {n_sweeps} sweep(s), numbered 0-{n_sweeps - 1}"
        )
    if len(set(indices)) != len(indices):
        raise SweepError(f"sweep selection {spec!r} names a sweep twice")
    return indices


def pick_channel(channel: str | int | None, names: Sequence[str], what: str = "channel") -> int:
    """Index of ``channel`` among ``names`` (by name first, then as a 0-based index)."""
    if not names:
        raise ChannelError(f"the file holds no {what}s")
    if channel is None:
        return 0
    if isinstance(channel, str) and channel in names:
        return list(names).index(channel)
    try:
        index = int(channel)
    except (TypeError, ValueError):
        index = None
    if index is not None and 0 <= index < len(names):
        return index
    listing = ", ".join(f"[{i}] {n}" for i, n in enumerate(names))
    raise ChannelError(f"{what} {channel!r} does not exist; the file has: {listing}")


def build_recording(source: SweepSource, options: ReadOptions, path: str) -> Recording:
    """Select sweeps, drop their starts, scale and concatenate into a :class:`Recording`."""
    rate = options.sampling_rate if source.sampling_rate is None else source.sampling_rate
    if options.sampling_rate is not None and source.sampling_rate is not None:
        # An explicit rate overrides the file's only when the file has none; a conflicting one
        # is almost always a mistake, so say so rather than silently pick one.
        if not math.isclose(options.sampling_rate, source.sampling_rate, rel_tol=1e-9):
            raise ParameterError(
                f"--sampling-rate {options.sampling_rate:g} Hz conflicts with the {source.sampling_rate:g} Hz "
                f"stored in {path}"
            )
    if rate is None:
        raise ParameterError(f"{path} stores no sampling rate: give one (--sampling-rate in Hz)")
    rate = float(rate)
    if not math.isfinite(rate) or rate <= 0:
        raise ParameterError(f"sampling rate must be > 0 Hz, got {rate!r} from {path}")

    sweeps = parse_sweeps(options.sweeps, source.n_sweeps)
    skip = int(round(options.skip_start_s * rate))
    pieces: list[np.ndarray] = []
    starts: list[int] = []
    total = 0
    for i in sweeps:
        data = np.asarray(source.read_sweep(i), dtype=np.float64).reshape(-1)
        if skip >= data.size:
            raise EmptyTraceError(
                f"--skip-start {options.skip_start_s:g} s removes all of sweep {i} "
                f"({data.size / rate:.4g} s long) in {path}"
            )
        data = data[skip:]
        starts.append(total)
        total += data.size
        pieces.append(data)
    samples = pieces[0] if len(pieces) == 1 else np.concatenate(pieces)
    if samples.size == 0:
        raise EmptyTraceError(f"the trace in {path} holds no samples")
    unit = source.unit
    if options.scale is not None:
        samples = samples * float(options.scale)
    if options.unit is not None:
        unit = options.unit
    metadata = dict(source.metadata)
    metadata.update(
        {
            "format": source.file_format,
            "sweeps": sweeps,
            "skip_start_s": float(options.skip_start_s),
            "scale": options.scale,
        }
    )
    recording = Recording(
        samples=samples,
        sampling_rate=rate,
        unit=unit or "a.u.",
        source=str(path),
        channel=source.channel,
        sweep_starts=np.asarray(starts, dtype=np.int64),
        metadata=metadata,
    )
    return recording.check_finite()
