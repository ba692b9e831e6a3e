"""NWB files (read with pynwb): intracellular series (PatchClampSeries and subclasses).

Samples come out as ``data * conversion + offset``. NWB stores SI units (amperes, volts);
those are converted to the units electrophysiologists read (pA, mV) and the Recording says
so, unless ``--unit`` names the unit explicitly (then ``--scale`` applies to the SI values). A series is chosen by
name (``--dataset`` or ``--channel``); with several series and none named, the error lists them.
Each series counts as one sweep; several series of one sweep table can be selected with
``--sweeps`` when they share a name stem (not needed for the common one-series case).
A series stored as a 1-D HDF5 dataset can be read on demand (``ReadOptions.lazy``).
"""

from __future__ import annotations

import warnings

import numpy as np

from ..errors import ChannelError, CorruptFileError
from .base import ChannelInfo, FileInfo, ReadOptions, SweepSource
from .hdf5 import DatasetRanges

EXTENSIONS = (".nwb",)


def _open(path: str):
    from pynwb import NWBHDF5IO

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            io = NWBHDF5IO(path, mode="r", load_namespaces=True)
            nwbfile = io.read()
    except Exception as exc:
        raise CorruptFileError(f"{path} is not a readable NWB file (truncated or damaged?): {exc}") from None
    return io, nwbfile


def _series(nwbfile) -> dict:
    from pynwb.icephys import PatchClampSeries
    from pynwb.base import TimeSeries

    found = {}
    for container in (nwbfile.acquisition, nwbfile.stimulus):
        for name, obj in container.items():
            if isinstance(obj, PatchClampSeries):
                found[name] = obj
    if not found:  # fall back to plain time series in acquisition
        for name, obj in nwbfile.acquisition.items():
            if isinstance(obj, TimeSeries) and getattr(obj, "data", None) is not None:
                found[name] = obj
    return found


_SI_TO_CONVENTIONAL = {
    "amperes": (1e12, "pA"), "ampere": (1e12, "pA"), "a": (1e12, "pA"),
    "volts": (1e3, "mV"), "volt": (1e3, "mV"), "v": (1e3, "mV"),
}


def _conventional_unit(unit: str | None) -> tuple[float, str | None]:
    """Factor and unit that turn SI amperes/volts into pA/mV; other units are kept."""
    if unit is None:
        return 1.0, None
    return _SI_TO_CONVENTIONAL.get(unit.strip().lower(), (1.0, unit))


def _rate(series) -> float | None:
    if series.rate is not None:
        return float(series.rate)
    timestamps = series.timestamps
    if timestamps is not None and len(timestamps) > 1:
        ts = np.asarray(timestamps[: min(len(timestamps), 1000)])
        return float(1.0 / np.median(np.diff(ts)))
    return None


def describe(path: str, options: ReadOptions) -> FileInfo:
    io, nwbfile = _open(path)
    try:
        series = _series(nwbfile)
        channels = [ChannelInfo(i, name, s.unit) for i, (name, s) in enumerate(series.items())]
        first = next(iter(series.values()), None)
        rate = _rate(first) if first is not None else None
        length = int(first.data.shape[0]) if first is not None else None
        notes = [f"{type(s).__name__} {n!r}: {s.data.shape[0]} samples" for n, s in series.items()]
        if len(series) > 1:
            notes.append("several series: choose one with --dataset NAME")
    finally:
        io.close()
    return FileInfo(
        path=path,
        file_format="NWB",
        channels=channels,
        n_sweeps=1,
        sweep_length_samples=length,
        sampling_rate=rate,
        duration_s=(length / rate) if rate and length else None,
        notes=notes,
    )


def open_source(path: str, options: ReadOptions) -> SweepSource:
    io, nwbfile = _open(path)
    try:
        series = _series(nwbfile)
        if not series:
            raise ChannelError(f"{path} holds no intracellular (PatchClampSeries) or time series")
        name = options.dataset if options.dataset is not None else options.channel
        names = list(series)
        if name is None:
            if len(series) > 1:
                raise ChannelError(f"{path} holds several series; name one with --dataset: {', '.join(names)}")
            name = names[0]
        elif str(name) not in series:
            try:
                index = int(name)
                name = names[index] if 0 <= index < len(names) else None
            except (TypeError, ValueError):
                name = None
            if name is None:
                raise ChannelError(f"series {options.dataset or options.channel!r} is not in {path}; "
                                   f"series there: {', '.join(names)}")
        s = series[str(name)]
        conversion, offset = float(s.conversion), float(getattr(s, "offset", 0.0) or 0.0)
        rate = _rate(s)
        unit = s.unit
        factor = 1.0
        if options.unit is None and options.scale is None:
            factor, unit = _conventional_unit(s.unit)

        def convert(raw: np.ndarray) -> np.ndarray:
            out = np.asarray(raw, dtype=np.float64) * conversion + offset
            return out * factor if factor != 1.0 else out

        import h5py

        stored = s.data
        ranged = None
        if isinstance(stored, h5py.Dataset) and stored.ndim == 1 and stored.dtype.kind in "fiu":
            # h5py-backed: samples can be read range by range from the file itself
            ranged = DatasetRanges(stored.file.filename, stored.name, None, None)
            length = int(stored.shape[0])
            data = None
        else:
            data = convert(stored[()])
        meta = {"series": str(name), "series_type": type(s).__name__,
                "session_description": nwbfile.session_description}
        electrode = getattr(s, "electrode", None)
        if electrode is not None:
            meta["electrode"] = electrode.name
    finally:
        io.close()
    if ranged is None:
        return SweepSource(n_sweeps=1, read_sweep=lambda i: data, sampling_rate=rate, unit=unit,
                           channel=str(name), file_format="nwb", metadata=meta)
    return SweepSource(
        n_sweeps=1,
        read_sweep=lambda i: convert(ranged.read(slice(0, length))),
        sampling_rate=rate,
        unit=unit,
        channel=str(name),
        file_format="nwb",
        metadata=meta,
        sweep_length=lambda i: length,
        read_range=lambda i, a, b: convert(ranged.read(slice(a, b))),
        close=ranged.close,
    )
