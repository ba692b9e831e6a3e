"""NumPy ``.npy`` arrays and text tables (.csv, .txt, .tsv, .dat with numbers).

A text table has one column (samples; give the sampling rate) or two (time in s, value); a
header line is allowed. A 2-D ``.npy`` array of shape (n, 2) is read as time and value, any
other 2-D array as sweeps x samples. Arrays are never unpickled.
"""

from __future__ import annotations

import dataclasses
import os

import numpy as np

from ..errors import CorruptFileError, EmptyTraceError
from .base import LAZY_THRESHOLD, ChannelInfo, FileInfo, RangeFile, ReadOptions, SweepSource, warn_truncated

NPY_EXTENSIONS = (".npy",)
TEXT_EXTENSIONS = (".csv", ".txt", ".tsv", ".asc")


def _rate_from_time(time: np.ndarray, path: str) -> float:
    steps = np.diff(time)
    if steps.size == 0 or not np.all(np.isfinite(steps)) or np.any(steps <= 0):
        raise CorruptFileError(f"the time column of {path} does not increase steadily")
    dt = float(np.median(steps))
    if np.max(np.abs(steps - dt)) > 1e-3 * dt + 1e-12:
        raise CorruptFileError(f"the time column of {path} is not evenly spaced (median step {dt:g} s)")
    return 1.0 / dt


def _rate_from_time_column(values: np.ndarray, path: str) -> float:
    """:func:`_rate_from_time` of column 0; a long (memory-mapped) one is checked piece by
    piece against the median step of its first 2**20 steps, so it is never copied whole."""
    n = values.shape[0]
    if n <= LAZY_THRESHOLD:
        return _rate_from_time(np.asarray(values[:, 0], dtype=np.float64), path)
    piece = 1 << 20
    rate = _rate_from_time(np.asarray(values[: piece + 1, 0], dtype=np.float64), path)
    dt = 1.0 / rate
    for a in range(piece, n - 1, piece):
        steps = np.diff(np.asarray(values[a:min(n, a + piece + 1), 0], dtype=np.float64))
        if not np.all(np.isfinite(steps)) or np.any(steps <= 0):
            raise CorruptFileError(f"the time column of {path} does not increase steadily")
        if np.max(np.abs(steps - dt)) > 1e-3 * dt + 1e-12:
            raise CorruptFileError(f"the time column of {path} is not evenly spaced (median step {dt:g} s)")
    return rate


def _load_npy(path: str) -> np.ndarray:
    try:
        return np.load(path, allow_pickle=False, mmap_mode="r")
    except ValueError as exc:
        raise CorruptFileError(f"{path} is not a plain numeric .npy array ({exc})") from None
    except (OSError, EOFError) as exc:
        raise CorruptFileError(f"{path} is truncated or damaged: {exc}") from None


def _load_text(path: str) -> tuple[np.ndarray, list[str] | None]:
    import pandas as pd

    with open(path, "r", errors="replace") as fh:
        first = fh.readline()
    sep = "\t" if "\t" in first else ("," if "," in first else (";" if ";" in first else r"\s+"))
    try:
        float(first.replace(",", " ").replace(";", " ").split()[0])
        header = None
    except (ValueError, IndexError):
        header = 0
    try:
        frame = pd.read_csv(path, sep=sep, header=header, engine="c" if sep != r"\s+" else "python")
    except (pd.errors.EmptyDataError, pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise CorruptFileError(f"{path} is not a table of numbers: {exc}") from None
    if frame.empty:
        raise EmptyTraceError(f"{path} holds no samples")
    try:
        values = frame.apply(pd.to_numeric, errors="raise").to_numpy(dtype=np.float64)
    except (ValueError, TypeError) as exc:
        raise CorruptFileError(f"{path} holds text where numbers should be: {exc}") from None
    names = [str(c) for c in frame.columns] if header == 0 else None
    return values, names


def _source_from_array(values: np.ndarray, names: list[str] | None, path: str, fmt: str) -> SweepSource:
    if values.ndim == 1:
        data, rate, channel = values[np.newaxis, :], None, "0"
    elif values.ndim == 2 and values.shape[1] == 1:
        data, rate, channel = values[:, 0][np.newaxis, :], None, names[0] if names else "0"
    elif values.ndim == 2 and values.shape[1] == 2:
        rate = _rate_from_time_column(values, path)
        data, channel = values[:, 1][np.newaxis, :], names[1] if names else "1"
    elif values.ndim == 2 and fmt == "npy":
        data, rate, channel = values, None, "0"
    else:
        raise CorruptFileError(
            f"{path} has shape {values.shape}: expected one column (samples) or two (time in s, value)"
        )
    return SweepSource(
        n_sweeps=int(data.shape[0]),
        read_sweep=lambda i: np.asarray(data[i], dtype=np.float64),
        sampling_rate=rate,
        unit=None,
        channel=channel,
        file_format=fmt,
    )


def _npy_header(path: str) -> tuple[tuple[int, ...], bool, np.dtype, int] | None:
    """``(shape, fortran_order, dtype, data offset)`` of a .npy file; None if it has none
    numpy's public functions read (then ``np.load`` reports what is wrong)."""
    fmt = np.lib.format
    try:
        with open(path, "rb") as fh:
            version = fmt.read_magic(fh)
            if version == (1, 0):
                shape, fortran, dtype = fmt.read_array_header_1_0(fh)
            elif version == (2, 0):
                shape, fortran, dtype = fmt.read_array_header_2_0(fh)
            else:
                return None
            return tuple(int(n) for n in shape), bool(fortran), np.dtype(dtype), fh.tell()
    except (ValueError, OSError, EOFError, TypeError):
        return None


def open_npy(path: str, options: ReadOptions) -> SweepSource:
    """A .npy array, memory-mapped; ranges are read from the file without mapping it (so a
    long trace read on demand never stays resident). A file shorter than its header says gives
    the complete samples (rows) before the cut, with a warning."""
    header = _npy_header(path)
    if header is None or header[2].hasobject or header[2].kind not in "fiu" or len(header[0]) not in (1, 2):
        return _source_from_array(_load_npy(path), None, path, "npy")
    shape, fortran, dtype, offset = header
    truncated_at = None
    row = 1 if len(shape) == 1 else shape[1]
    expected = int(np.prod(shape))
    available = max(0, (os.path.getsize(path) - offset) // dtype.itemsize)
    if available < expected:
        if fortran and len(shape) == 2 and shape[1] > 1:
            raise CorruptFileError(f"{path} is truncated: it holds {available} of the {expected} values its "
                                   "header announces (a column-major array cut off cannot be read in part)")
        rows = available // row if row else 0
        if rows == 0:
            raise CorruptFileError(f"{path} is truncated: it holds {available} of the {expected} values its "
                                   "header announces, not one complete sample")
        if len(shape) == 2 and shape[1] > 2:  # sweeps x samples: whole sweeps are kept
            n_samples, n_expected = rows * row, expected
        else:  # samples, or (time, value) rows
            n_samples, n_expected = rows, shape[0]
        warn_truncated(path, "its data", n_samples, n_expected, options.sampling_rate)
        shape = (rows,) + tuple(shape[1:])
        truncated_at = n_samples
    if 0 in shape:
        return _source_from_array(_load_npy(path), None, path, "npy")
    values = np.memmap(path, dtype=dtype, mode="r", offset=offset, shape=shape,
                       order="F" if fortran else "C")
    source = _source_from_array(values, None, path, "npy")
    if truncated_at is not None:
        source = dataclasses.replace(source, metadata={**source.metadata, "truncated_at_sample": truncated_at})
    if fortran and len(shape) == 2 and shape[1] > 1:
        return source  # column-major sweeps or (time, value) pairs: read into memory
    file = RangeFile(path)
    size = dtype.itemsize
    if len(shape) == 1 or shape[1] == 1:
        length = shape[0]

        def read_range(i: int, a: int, b: int) -> np.ndarray:
            return file.read(offset + a * size, dtype, b - a)
    elif shape[1] == 2:
        length = shape[0]

        def read_range(i: int, a: int, b: int) -> np.ndarray:
            return file.read(offset + 2 * a * size, dtype, 2 * (b - a))[1::2]
    else:
        length = shape[1]

        def read_range(i: int, a: int, b: int) -> np.ndarray:
            return file.read(offset + (i * length + a) * size, dtype, b - a)

    return dataclasses.replace(source, sweep_length=lambda i: length, read_range=read_range, close=file.close)


def open_text(path: str, options: ReadOptions) -> SweepSource:
    values, names = _load_text(path)
    return _source_from_array(values, names, path, "text")


def _describe(source: SweepSource, path: str, label: str) -> FileInfo:
    length = int(source.sweep_length(0)) if source.sweep_length is not None else int(source.read_sweep(0).size)
    rate = source.sampling_rate
    notes = [] if rate else ["no time column: give --sampling-rate"]
    notes.append("no unit stored: give --unit")
    return FileInfo(
        path=path,
        file_format=label,
        channels=[ChannelInfo(0, source.channel, None)],
        n_sweeps=source.n_sweeps,
        sweep_length_samples=length,
        sampling_rate=rate,
        duration_s=(source.n_sweeps * length / rate) if rate else None,
        notes=notes,
    )


def describe_npy(path: str, options: ReadOptions) -> FileInfo:
    return _describe(open_npy(path, options), path, "NumPy array (.npy)")


def describe_text(path: str, options: ReadOptions) -> FileInfo:
    return _describe(open_text(path, options), path, "text table")
