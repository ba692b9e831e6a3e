"""Plain HDF5 files (read with h5py): one dataset holds the trace.

The sampling interval is taken from an attribute of the dataset, its group or the file root:
``sampling`` (s, miniML's convention), ``dt`` (s) or ``sampling_rate`` (Hz). The unit from an
attribute ``unit`` or ``units``. A 2-D dataset is read as sweeps x samples.
"""

from __future__ import annotations

import math

import numpy as np

from ..errors import ChannelError, CorruptFileError
from .base import ChannelInfo, FileInfo, ReadOptions, SweepSource

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


def open_source(path: str, options: ReadOptions) -> SweepSource:
    h5 = _open(path)
    try:
        name = _select(h5, options, path)
        dataset = h5[name]
        if dataset.ndim not in (1, 2) or dataset.dtype.kind not in "fiu":
            raise ChannelError(f"dataset {name!r} in {path} is not a numeric 1-D or 2-D trace")
        rate, unit, origin = _rate_and_unit(h5, dataset)
        try:
            data = dataset[()]
        except OSError as exc:
            raise CorruptFileError(f"{path}: dataset {name!r} cannot be read (damaged?): {exc}") from None
    finally:
        h5.close()
    if data.ndim == 1:
        data = data[np.newaxis, :]
    return SweepSource(
        n_sweeps=int(data.shape[0]),
        read_sweep=lambda i: data[i],
        sampling_rate=rate,
        unit=unit,
        channel=name,
        file_format="hdf5",
        metadata={"dataset": name, "sampling_rate_from": origin},
    )
