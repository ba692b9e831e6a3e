"""What every reader returns, and the steps shared by all of them.

A reader opens one file format and hands back a :class:`SweepSource` for one channel: the
number of sweeps, a function that reads one sweep, the sampling rate and the unit. The shared
code in :func:`build_recording` then selects sweeps, drops the start of each sweep, scales and
concatenates, so every format behaves the same way for the same options.
"""

from __future__ import annotations

import math
import os
import re
import threading
import warnings
from dataclasses import dataclass, field, fields
from typing import Any, Callable, Sequence

import numpy as np

from ..errors import ChannelError, CorruptFileError, EmptyTraceError, ParameterError, SweepError
from ..recording import LazyTrace, Recording

__all__ = [
    "ChannelInfo",
    "FileInfo",
    "LAZY_THRESHOLD",
    "READER_KEYS",
    "RangeFile",
    "ReadOptions",
    "SweepSource",
    "TruncatedFileWarning",
    "build_recording",
    "parse_sweeps",
    "pick_channel",
    "warn_truncated",
]

#: with ``ReadOptions.lazy=None``, traces longer than this (samples) are read on demand
#: (2**25 samples: 11 min at 50 kHz, 256 MiB as float64); shorter ones are read into memory.
LAZY_THRESHOLD = 1 << 25


class TruncatedFileWarning(UserWarning):
    """The file ends before its header says it should; only the part before that is read."""


def warn_truncated(path: str, what: str, n_readable: int, n_expected: int, rate: float | None) -> None:
    """Warn that ``path`` ends early, naming the sample (and time) where its samples end."""
    when = f" (t = {n_readable / rate:.4f} s)" if rate else ""
    warnings.warn(
        f"{path} is truncated: {what} ends at sample {n_readable}{when} of the {n_expected} its header "
        f"announces; reading the {n_readable} samples before that",
        TruncatedFileWarning,
        stacklevel=4,
    )


class RangeFile:
    """Reads byte ranges of a file on demand (``os.pread``: no shared file position, so it is
    safe across threads and forked processes, and nothing stays mapped into memory)."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._fd: int | None = None
        self._pid = -1
        self._lock = threading.Lock()

    def _descriptor(self) -> int:
        if self._fd is None or self._pid != os.getpid():
            self._fd = os.open(self.path, os.O_RDONLY | getattr(os, "O_BINARY", 0))
            self._pid = os.getpid()
        return self._fd

    def read(self, offset: int, dtype: Any, count: int) -> np.ndarray:
        """``count`` items of ``dtype`` starting at byte ``offset`` (read-only array)."""
        dtype = np.dtype(dtype)
        nbytes = int(count) * dtype.itemsize
        if nbytes <= 0:
            return np.zeros(0, dtype=dtype)
        parts: list[bytes] = []
        done = 0
        with self._lock:
            fd = self._descriptor()
            while done < nbytes:
                if hasattr(os, "pread"):
                    chunk = os.pread(fd, nbytes - done, offset + done)
                else:  # pragma: no cover - platforms without pread
                    os.lseek(fd, offset + done, os.SEEK_SET)
                    chunk = os.read(fd, nbytes - done)
                if not chunk:
                    break
                parts.append(chunk)
                done += len(chunk)
        if done < nbytes:
            raise CorruptFileError(
                f"{self.path} ended while reading: {done} of {nbytes} bytes at byte {offset} "
                "(was the file cut or changed after it was opened?)"
            )
        buf = parts[0] if len(parts) == 1 else b"".join(parts)
        return np.frombuffer(buf, dtype=dtype, count=count)

    def close(self) -> None:
        if self._fd is not None and self._pid == os.getpid():
            try:
                os.close(self._fd)
            except OSError:  # pragma: no cover
                pass
        self._fd = None

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:  # pragma: no cover - interpreter shutdown
            pass


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
    lazy
        Read the samples on demand (a :class:`~minidet.recording.LazyTrace`) instead of into
        memory: ``True`` forces it where the format allows (ABF, HDF5, .npy), ``False`` reads
        everything into memory, ``None`` (default) is lazy only for traces longer than
        :data:`LAZY_THRESHOLD` samples. The samples are the same either way.
    """

    channel: str | int | None = None
    sweeps: str | Sequence[int] | None = None
    skip_start_s: float = 0.0
    dataset: str | None = None
    sampling_rate: float | None = None
    scale: float | None = None
    unit: str | None = None
    lazy: bool | None = None

    def __post_init__(self) -> None:
        if self.lazy is not None and not isinstance(self.lazy, (bool, np.bool_)):
            raise ParameterError(f"lazy must be True, False or None, got {self.lazy!r}")
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
            if not self.unit and abs(scale) != 1.0:  # inverting (-1) keeps the unit
                raise ParameterError(
                    f"scale={self.scale!r} needs a unit naming the scaled samples (e.g. --scale 1e12 --unit pA)"
                )
        if self.unit is not None and not str(self.unit).strip():
            raise ParameterError("unit must not be empty")



#: the reader options a batch manifest or the analysis app may set, in :class:`ReadOptions`'
#: order (``lazy`` is left out: it says how to read, not what, and those callers choose it)
READER_KEYS = tuple(f.name for f in fields(ReadOptions) if f.name != "lazy")

@dataclass(frozen=True)
class SweepSource:
    """One channel of one file, as a reader hands it over.

    ``read_sweep(i)`` returns sweep ``i`` whole. Readers that can read part of a sweep also
    give ``sweep_length(i)`` (samples in sweep ``i``) and ``read_range(i, a, b)`` (samples
    ``[a, b)`` of sweep ``i``, the same values ``read_sweep(i)[a:b]`` holds); then the
    recording can be read on demand (:attr:`ReadOptions.lazy`). ``close()``, where given,
    releases the file once everything was read into memory.
    """

    n_sweeps: int
    read_sweep: Callable[[int], np.ndarray]
    sampling_rate: float | None
    unit: str | None
    channel: str
    file_format: str
    metadata: dict[str, Any] = field(default_factory=dict)
    sweep_length: Callable[[int], int] | None = None
    read_range: Callable[[int, int, int], np.ndarray] | None = None
    close: Callable[[], None] | None = None

    @property
    def can_read_ranges(self) -> bool:
        return self.sweep_length is not None and self.read_range is not None


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
    #: format-specific structure of the file (HEKA: groups -> series -> traces); in the JSON only
    contents: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        d = {
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
        if self.contents is not None:
            d["contents"] = self.contents
        return d

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
    lazy = _want_lazy(source, options, sweeps, skip)
    if lazy:
        samples, starts = _lazy_samples(source, sweeps, skip, options, rate, path)
    else:
        try:
            samples, starts = _eager_samples(source, sweeps, skip, options, rate, path)
        finally:
            if source.close is not None:
                source.close()
    unit = source.unit
    if options.scale is not None and not lazy:
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


def _skip_error(options: ReadOptions, sweep: int, length: int, rate: float, path: str) -> EmptyTraceError:
    return EmptyTraceError(
        f"--skip-start {options.skip_start_s:g} s removes all of sweep {sweep} "
        f"({length / rate:.4g} s long) in {path}"
    )


def _want_lazy(source: SweepSource, options: ReadOptions, sweeps: list[int], skip: int) -> bool:
    if options.lazy is False or not source.can_read_ranges:
        return False
    if options.lazy:
        return True
    assert source.sweep_length is not None
    total = sum(max(0, int(source.sweep_length(i)) - skip) for i in sweeps)
    return total > LAZY_THRESHOLD


def _eager_samples(source: SweepSource, sweeps: list[int], skip: int, options: ReadOptions, rate: float,
                   path: str) -> tuple[np.ndarray, list[int]]:
    pieces: list[np.ndarray] = []
    starts: list[int] = []
    total = 0
    for i in sweeps:
        data = np.asarray(source.read_sweep(i), dtype=np.float64).reshape(-1)
        if skip >= data.size:
            raise _skip_error(options, i, data.size, rate, path)
        data = data[skip:]
        starts.append(total)
        total += data.size
        pieces.append(data)
    samples = pieces[0] if len(pieces) == 1 else np.concatenate(pieces)
    if samples.size == 0:
        raise EmptyTraceError(f"the trace in {path} holds no samples")
    return samples, starts


def _lazy_samples(source: SweepSource, sweeps: list[int], skip: int, options: ReadOptions, rate: float,
                  path: str) -> tuple[LazyTrace, list[int]]:
    """The selected sweeps (each without its first ``skip`` samples), scaled, concatenated and
    read on demand: the same float64 values :func:`_eager_samples` and the scaling give."""
    assert source.sweep_length is not None and source.read_range is not None
    lengths = []
    for i in sweeps:
        n = int(source.sweep_length(i))
        if skip >= n:
            raise _skip_error(options, i, n, rate, path)
        lengths.append(n - skip)
    bounds = np.concatenate(([0], np.cumsum(lengths))).astype(np.int64)
    read_range = source.read_range
    scale = None if options.scale is None else float(options.scale)
    picked = list(sweeps)

    def read(start: int, stop: int) -> np.ndarray:
        out = np.empty(stop - start, dtype=np.float64)
        k = int(np.searchsorted(bounds, start, side="right")) - 1
        pos = start
        while pos < stop:
            first, end = int(bounds[k]), min(int(bounds[k + 1]), stop)
            out[pos - start:end - start] = read_range(picked[k], skip + pos - first, skip + end - first)
            pos = end
            k += 1
        if scale is not None:
            out *= scale
        return out

    what = f"{source.file_format} {os.path.basename(path)} [{source.channel}]"
    return LazyTrace(int(bounds[-1]), read, description=what), bounds[:-1].tolist()
