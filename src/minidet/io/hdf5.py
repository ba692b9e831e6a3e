"""Plain HDF5 files (read with h5py): one dataset holds the trace.

The sampling interval is taken from an attribute of the dataset, its group or the file root:
``sampling`` (s, miniML's convention), ``dt`` (s) or ``sampling_rate`` (Hz). The unit from an
attribute ``unit`` or ``units``. A 2-D dataset is read as sweeps x samples. Integer samples
(int16 as an amplifier's ADC gives them, say) are scaled with the dataset's CF-convention
attributes ``scale_factor`` and ``add_offset`` when it has them:
``value = raw * scale_factor + add_offset`` in float64.

Samples can be read on demand (h5py slices per range, see ``ReadOptions.lazy``). A file cut
short fails to open (HDF5 checks its size against the end its superblock records); a chunked
dataset whose later chunks were never written (the writer crashed) gives the samples before
the first missing chunk, with a warning.
"""

from __future__ import annotations

import math
import os
import threading

import numpy as np

from ..errors import ChannelError, CorruptFileError
from .base import ChannelInfo, FileInfo, ReadOptions, SweepSource, warn_truncated

EXTENSIONS = (".h5", ".hdf5", ".hdf", ".he5")
_SIGNATURE = b"\x89HDF\r\n\x1a\n"


def sniff(path: str) -> bool:
    with open(path, "rb") as fh:
        return fh.read(8) == _SIGNATURE


def _open(path: str):
    import h5py

    try:
        return h5py.File(path, "r")
    except OSError as exc:
        if "truncated file" in str(exc):
            raise CorruptFileError(
                f"{path} is truncated (the file has {os.path.getsize(path)} bytes, fewer than its HDF5 "
                f"superblock records) and cannot be read: {exc}"
            ) from None
        raise CorruptFileError(f"{path} is not a readable HDF5 file (truncated or damaged?): {exc}") from None


def _trace_datasets(h5) -> list[str]:
    import h5py

    found: list[str] = []

    def visit(name, obj):
        if isinstance(obj, h5py.Dataset) and obj.ndim in (1, 2) and obj.size > 1 and obj.dtype.kind in "fiu":
            found.append(name)

    h5.visititems(visit)
    return found


def _attr_chain(h5, dataset):
    """Attribute holders from the dataset up to the root."""
    holders = [dataset]
    parent = dataset.parent
    while True:
        holders.append(parent)
        if parent.name == "/":
            break
        parent = parent.parent
    if h5 not in holders:
        holders.append(h5)
    return holders


def _as_str(value) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, np.ndarray) and value.size == 1:
        return _as_str(value.reshape(-1)[0])
    return str(value)


def _rate_and_unit(h5, dataset) -> tuple[float | None, str | None, str | None]:
    rate = unit = origin = None
    for holder in _attr_chain(h5, dataset):
        attrs = holder.attrs
        if rate is None:
            for key, to_rate in (("sampling_rate", lambda v: v), ("sampling", lambda v: 1.0 / v),
                                 ("dt", lambda v: 1.0 / v)):
                if key in attrs:
                    try:
                        value = float(np.asarray(attrs[key]).reshape(-1)[0])
                        candidate = float(to_rate(value)) if value != 0 else float("nan")
                    except (TypeError, ValueError, ZeroDivisionError):
                        candidate = float("nan")
                    if not math.isfinite(candidate) or candidate <= 0:
                        raise CorruptFileError(
                            f"attribute {key!r} of {holder.name} gives an impossible sampling rate ({attrs[key]!r})"
                        )
                    rate, origin = candidate, f"{holder.name}@{key}"
                    break
        if unit is None:
            for key in ("unit", "units"):
                if key in attrs:
                    unit = _as_str(attrs[key])
                    break
    return rate, unit, origin


def _select(h5, options: ReadOptions, path: str) -> str:
    candidates = _trace_datasets(h5)
    name = options.dataset if options.dataset is not None else options.channel
    if name is not None and not (isinstance(name, str) and name.isdigit() and name not in h5):
        key = str(name).lstrip("/")
        if key not in h5:
            listing = ", ".join(candidates) or "none"
            raise ChannelError(f"dataset {name!r} is not in {path}; trace datasets there: {listing}")
        return key
    if name is not None:  # an index among the trace datasets
        index = int(name)
        if not 0 <= index < len(candidates):
            raise ChannelError(f"dataset index {index} does not exist; trace datasets: {', '.join(candidates)}")
        return candidates[index]
    if not candidates:
        raise ChannelError(f"{path} holds no numeric 1-D or 2-D dataset to read as a trace")
    if len(candidates) > 1:
        raise ChannelError(f"{path} holds several datasets; name one with --dataset: {', '.join(candidates)}")
    return candidates[0]


def describe(path: str, options: ReadOptions) -> FileInfo:
    with _open(path) as h5:
        candidates = _trace_datasets(h5)
        channels = []
        rate = None
        shape = None
        for i, name in enumerate(candidates):
            r, unit, _ = _rate_and_unit(h5, h5[name])
            channels.append(ChannelInfo(i, name, unit))
            if rate is None:
                rate, shape = r, h5[name].shape
        notes = []
        if len(candidates) > 1:
            notes.append("several datasets: choose one with --dataset")
        if channels and channels[0].unit is None:
            notes.append("no unit stored: give --unit (and --scale if the samples need scaling)")
        n_sweeps = 1 if shape is None or len(shape) == 1 else int(shape[0])
        length = None if shape is None else int(shape[-1])
    return FileInfo(
        path=path,
        file_format="HDF5",
        channels=channels,
        n_sweeps=n_sweeps,
        sweep_length_samples=length,
        sampling_rate=rate,
        duration_s=(n_sweeps * length / rate) if rate and length else None,
        notes=notes,
    )


def _scaling(dataset, path: str) -> tuple[float | None, float | None]:
    """CF ``scale_factor`` / ``add_offset`` of the dataset (None where absent)."""
    out = []
    for key in ("scale_factor", "add_offset"):
        if key not in dataset.attrs:
            out.append(None)
            continue
        try:
            value = float(np.asarray(dataset.attrs[key]).reshape(-1)[0])
        except (TypeError, ValueError, IndexError):
            value = float("nan")
        if not math.isfinite(value) or (key == "scale_factor" and value == 0):
            raise CorruptFileError(f"attribute {key!r} of {dataset.name} in {path} is not a usable number "
                                   f"({dataset.attrs[key]!r})")
        out.append(value)
    return out[0], out[1]


def _written_extent(dataset, path: str) -> int:
    """How many leading sweeps (2-D) or samples (1-D) of ``dataset`` were written: a chunked
    dataset whose writer stopped early lacks its later chunks (they would read as zeros)."""
    import h5py

    full = int(dataset.shape[0])
    dsid = dataset.id
    layout = dsid.get_create_plist().get_layout()
    if layout == h5py.h5d.CONTIGUOUS:
        return full if dsid.get_storage_size() > 0 or dataset.size == 0 else 0
    if layout != h5py.h5d.CHUNKED:
        return full
    chunks = dataset.chunks
    grid = [-(-n // c) for n, c in zip(dataset.shape, chunks)]
    expected = int(np.prod(grid))
    try:
        n_stored = dsid.get_num_chunks()
    except (AttributeError, RuntimeError):  # pragma: no cover - HDF5 without chunk queries
        return full
    if n_stored >= expected:
        return full
    stored: set[tuple[int, ...]] = set()
    if hasattr(dsid, "chunk_iter"):
        dsid.chunk_iter(lambda info: stored.add(tuple(int(x) for x in info.chunk_offset)))
    else:  # pragma: no cover - old HDF5
        for i in range(n_stored):
            stored.add(tuple(int(x) for x in dsid.get_chunk_info(i).chunk_offset))
    # the first missing chunk, in the order a writer going from start to end fills them
    for flat in range(expected):
        index = np.unravel_index(flat, grid)
        offset = tuple(int(i) * int(c) for i, c in zip(index, chunks))
        if offset not in stored:
            return offset[0]
    return full  # pragma: no cover - counted fewer but found all


class DatasetRanges:
    """An HDF5 dataset read piece by piece; the file is opened on first use (again in a
    forked process) and closed by :meth:`close` or when this object goes away."""

    def __init__(self, path: str, name: str, scale_factor: float | None, add_offset: float | None) -> None:
        self.path = path
        self.name = name
        self.scale_factor = scale_factor
        self.add_offset = add_offset
        self._file = None
        self._pid = -1
        self._lock = threading.Lock()

    def _dataset(self):
        if self._file is None or self._pid != os.getpid():
            import h5py

            self._file = h5py.File(self.path, "r")
            self._pid = os.getpid()
        return self._file[self.name]

    def read(self, key) -> np.ndarray:
        with self._lock:
            try:
                raw = self._dataset()[key]
            except OSError as exc:
                raise CorruptFileError(f"{self.path}: dataset {self.name!r} cannot be read (damaged?): {exc}") from None
        if self.scale_factor is None and self.add_offset is None:
            return raw
        out = raw.astype(np.float64)
        if self.scale_factor is not None:
            out *= self.scale_factor
        if self.add_offset is not None:
            out += self.add_offset
        return out

    def close(self) -> None:
        if self._file is not None and self._pid == os.getpid():
            try:
                self._file.close()
            except Exception:  # pragma: no cover - interpreter shutdown
                pass
        self._file = None

    def __del__(self) -> None:
        self.close()


def open_source(path: str, options: ReadOptions) -> SweepSource:
    h5 = _open(path)
    try:
        name = _select(h5, options, path)
        dataset = h5[name]
        if dataset.ndim not in (1, 2) or dataset.dtype.kind not in "fiu":
            raise ChannelError(f"dataset {name!r} in {path} is not a numeric 1-D or 2-D trace")
        rate, unit, origin = _rate_and_unit(h5, dataset)
        scale_factor, add_offset = _scaling(dataset, path)
        shape = tuple(int(n) for n in dataset.shape)
        written = _written_extent(dataset, path)
    finally:
        h5.close()
    if written == 0:
        raise CorruptFileError(f"{path}: no samples of dataset {name!r} were ever written")
    if written < shape[0]:
        if len(shape) == 1:
            warn_truncated(path, f"dataset {name!r}", written, shape[0], rate)
        else:
            warn_truncated(path, f"dataset {name!r} (sweeps x samples)", written * shape[1],
                           shape[0] * shape[1], rate)
    reader = DatasetRanges(path, name, scale_factor, add_offset)
    one_d = len(shape) == 1
    n_sweeps = 1 if one_d else written
    length = written if one_d else shape[1]

    def read_sweep(i: int) -> np.ndarray:
        return reader.read(slice(0, length)) if one_d else reader.read((i, slice(0, length)))

    def read_range(i: int, a: int, b: int) -> np.ndarray:
        return reader.read(slice(a, b)) if one_d else reader.read((i, slice(a, b)))

    metadata: dict = {"dataset": name, "sampling_rate_from": origin}
    if written < shape[0]:
        metadata["truncated_at_sample"] = written if one_d else written * shape[1]
    if scale_factor is not None or add_offset is not None:
        metadata.update({"scale_factor": scale_factor, "add_offset": add_offset})
    return SweepSource(
        n_sweeps=n_sweeps,
        read_sweep=read_sweep,
        sampling_rate=rate,
        unit=unit,
        channel=name,
        file_format="hdf5",
        metadata=metadata,
        sweep_length=lambda i: length,
        read_range=read_range,
        close=reader.close,
    )
