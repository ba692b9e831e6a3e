"""Detected events as an NWB table (pynwb).

The events go into a :class:`pynwb.epoch.TimeIntervals` table named ``events`` in a processing
module ``synaptic_events``. Each row is one event: ``start_time`` its onset and ``stop_time``
the point where it has decayed to half its amplitude (its peak when that is unknown), both in
seconds on the NWB file's clock, plus every measured column and a ``timeseries`` reference to
the analysed series (index of the event's first sample and sample count).

- From an NWB input the source file is copied and the table added to the copy; the input is
  never modified, and the events link to the series that was analysed.
- From any other format a new NWB file holds the analysed trace, as a
  ``VoltageClampSeries`` (current units), ``CurrentClampSeries`` (voltage units) or a plain
  ``TimeSeries`` in the recording's unit, with ``conversion`` to SI where the unit allows.
"""

from __future__ import annotations

import shutil
import uuid
import warnings
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import OutputError
from .writers import atomic_path, charge_unit, jsonable, recording_name, to_json, _typed_events

__all__ = ["MODULE_NAME", "TABLE_NAME", "write_nwb", "read_nwb_events", "si_conversion"]

MODULE_NAME = "synaptic_events"
TABLE_NAME = "events"

_PREFIX = {"f": 1e-15, "p": 1e-12, "n": 1e-9, "u": 1e-6, "µ": 1e-6, "μ": 1e-6, "m": 1e-3, "": 1.0, "k": 1e3}

_DESCRIPTIONS = {
    "sample": "sample index of the event (steepest rise) in the analysed trace",
    "time_s": "time of the event (steepest rise) in the analysed trace, s",
    "score": "peak of the model's event probability for this event",
    "onset_sample": "sample index of the event onset in the analysed trace",
    "onset_time_s": "event onset in the analysed trace, s",
    "peak_sample": "sample index of the event peak in the analysed trace",
    "peak_time_s": "event peak in the analysed trace, s",
    "baseline": "baseline before the event, in the unit of the series ({unit})",
    "amplitude": "peak minus baseline, signed, in {unit}",
    "rise_time_s": "10-90 % rise time, s",
    "half_decay_s": "time from peak to half amplitude, s",
    "half_width_s": "width at half amplitude, s",
    "charge": "integral of the baseline-subtracted event, {charge}",
    "overlapping": "another event starts within this one's window",
    "excluded": "removed by hand; not counted in the summary",
}


def si_conversion(unit: str) -> tuple[str | None, float]:
    """``"pA"`` -> ``("A", 1e-12)``; ``"mV"`` -> ``("V", 1e-3)``; other units -> ``(None, 1.0)``."""
    u = str(unit).strip()
    if u.lower() in ("amperes", "ampere", "volts", "volt"):  # NWB's own SI unit names
        return u[0].upper(), 1.0
    if u and u[-1] in ("A", "V") and u[:-1] in _PREFIX:
        return u[-1], _PREFIX[u[:-1]]
    return None, 1.0


#: samples per HDF5 chunk of a streamed trace, and per piece read from it (a multiple)
STREAM_CHUNK = 1 << 16
STREAM_BUFFER = 1 << 20


def _trace_data(trace: Any) -> Any:
    """A 1-D trace as compressed float32 NWB data.

    An in-memory array is handed over as it is; a :class:`~minidet.recording.LazyTrace` (an
    hour-long recording, a prediction computed on demand) through an hdmf
    ``GenericDataChunkIterator`` that reads it :data:`STREAM_BUFFER` samples at a time while
    the file is written, so it never sits in memory whole.
    """
    from hdmf.backends.hdf5.h5_utils import H5DataIO

    from ..recording import LazyTrace

    if isinstance(trace, LazyTrace) and len(trace) > 0:
        return H5DataIO(_lazy_iterator(trace), compression="gzip", compression_opts=4, shuffle=True)
    return H5DataIO(np.asarray(trace, dtype=np.float32), compression="gzip", compression_opts=4, shuffle=True)


def _lazy_iterator(trace: Any) -> Any:
    from hdmf.data_utils import GenericDataChunkIterator

    class LazyTraceIterator(GenericDataChunkIterator):
        """Hands hdmf pieces of a LazyTrace as float32."""

        def __init__(self, source: Any) -> None:
            self.source = source
            n = len(source)
            chunk = min(n, STREAM_CHUNK)
            buffer = min(-(-n // chunk) * chunk, max(chunk, STREAM_BUFFER // chunk * chunk))
            super().__init__(chunk_shape=(chunk,), buffer_shape=(buffer,), display_progress=False)

        def _get_data(self, selection: tuple[slice, ...]) -> np.ndarray:
            sel = selection[0]
            return self.source[sel.start or 0: sel.stop].astype(np.float32)

        def _get_maxshape(self) -> tuple[int, ...]:
            return (len(self.source),)

        def _get_dtype(self) -> np.dtype:
            return np.dtype(np.float32)

    return LazyTraceIterator(trace)


def _new_series(nwbfile: Any, recording: Any, name: str) -> Any:
    from pynwb.base import TimeSeries
    from pynwb.icephys import CurrentClampSeries, VoltageClampSeries

    base, factor = si_conversion(recording.unit)
    data = _trace_data(recording.samples)
    common = dict(name=name, data=data, rate=float(recording.sampling_rate), starting_time=0.0,
                  conversion=float(factor),
                  description=f"trace analysed by minidet: {recording_name(recording)}, channel "
                              f"{recording.channel!r}, in {recording.unit} (x conversion = SI)",
                  comments=f"sweep starts (samples): {np.asarray(recording.sweep_starts).tolist()}")
    if base in ("A", "V"):
        device = nwbfile.create_device(name="amplifier", description="unknown; converted by minidet")
        electrode = nwbfile.create_icephys_electrode(name="electrode", device=device,
                                                      description="unknown; converted by minidet")
        cls = VoltageClampSeries if base == "A" else CurrentClampSeries
        series = cls(electrode=electrode, gain=1.0, **common)
    else:
        series = TimeSeries(unit=str(recording.unit), **common)
    nwbfile.add_acquisition(series)
    return series


def _series_clock(series: Any, first_index: int) -> tuple[float | None, float | None, np.ndarray | None]:
    """(starting time of sample ``first_index``, rate, timestamps) of a series."""
    if series.rate is not None:
        start = float(series.starting_time or 0.0) + first_index / float(series.rate)
        return start, float(series.rate), None
    timestamps = np.asarray(series.timestamps[()], dtype=np.float64)
    return None, None, timestamps


def _add_events_table(nwbfile: Any, result: Any, series: Any, first_index: int) -> str:
    """Build the events table and add it to the ``synaptic_events`` module; return its name."""
    from hdmf.common import VectorData, VectorIndex
    from pynwb.base import TimeSeriesReference, TimeSeriesReferenceVectorData
    from pynwb.epoch import TimeIntervals

    rec = result.recording
    events = _typed_events(result.events_all)
    n = len(events)
    start_time, rate, timestamps = _series_clock(series, first_index)

    def clock(samples: np.ndarray) -> np.ndarray:
        samples = np.asarray(samples, dtype=np.float64)
        if timestamps is None:
            return start_time + samples / rate
        idx = np.clip(np.nan_to_num(samples, nan=0).astype(np.int64) + first_index, 0, timestamps.size - 1)
        return np.where(np.isfinite(samples), timestamps[idx], np.nan)

    sample = events["sample"].to_numpy(np.float64) if n else np.zeros(0)
    onset = events["onset_sample"].to_numpy(np.float64) if "onset_sample" in events else sample
    onset = np.where(np.isfinite(onset), onset, sample)
    peak = events["peak_sample"].to_numpy(np.float64) if "peak_sample" in events else sample
    peak = np.where(np.isfinite(peak), peak, sample)
    half = events["half_decay_s"].to_numpy(np.float64) if "half_decay_s" in events else np.zeros(n)
    stop = peak + np.where(np.isfinite(half), half, 0.0) * rec.sampling_rate
    stop = np.maximum(stop, onset)
    start_t = clock(onset)
    stop_t = clock(stop)
    idx_start = onset.astype(np.int64) + first_index
    counts = np.maximum(np.ceil(stop - onset).astype(np.int64), 1)

    unit = rec.unit
    charge = charge_unit(unit)
    columns = [
        VectorData(name="start_time", description="event onset on the file's clock, s", data=start_t),
        VectorData(name="stop_time", description="event peak + half-decay time on the file's clock, s",
                   data=stop_t),
    ]
    if n:  # (hdmf cannot write an empty reference column: an empty table simply has no links)
        refs = TimeSeriesReferenceVectorData(
            name="timeseries", description="the analysed series: first sample of the event and sample count",
            data=[TimeSeriesReference(int(i), int(c), series) for i, c in zip(idx_start, counts)],
        )
        columns += [refs, VectorIndex(name="timeseries_index", data=np.arange(1, n + 1), target=refs)]
    for col in events.columns:
        values = events[col].to_numpy()
        if values.dtype == object:
            values = values.astype(str)
        desc = _DESCRIPTIONS.get(col, col).format(unit=unit, charge=charge)
        columns.append(VectorData(name=col, description=desc, data=values))

    module = nwbfile.processing.get(MODULE_NAME)
    if module is None:
        module = nwbfile.create_processing_module(
            name=MODULE_NAME, description="synaptic events detected by minidet (miniML method)"
        )
    name = TABLE_NAME
    k = 1
    while name in module.data_interfaces:
        name = f"{TABLE_NAME}_{k}"
        k += 1
    settings = result.settings.to_dict() if hasattr(result.settings, "to_dict") else {}
    table = TimeIntervals(
        name=name,
        description=(f"synaptic events in {series.name!r} found by minidet; amplitude and baseline in {unit}, "
                     f"charge in {charge}; settings: {to_json(settings, indent=None)}"),
        columns=columns,
        id=events.index.to_numpy(np.int64),
    )
    module.add(table)
    return name


def _add_prediction(nwbfile: Any, result: Any, series: Any, first_index: int) -> None:
    from pynwb.base import TimeSeries

    if result.prediction is None:
        return
    start_time, rate, timestamps = _series_clock(series, first_index)
    data = _trace_data(result.prediction)
    module = nwbfile.processing[MODULE_NAME]
    name = "event_probability"
    k = 1
    while name in module.data_interfaces:
        name = f"event_probability_{k}"
        k += 1
    kwargs: dict[str, Any] = {}
    if timestamps is None:
        kwargs.update(rate=float(result.recording.sampling_rate), starting_time=float(start_time))
    else:
        kwargs.update(timestamps=timestamps[first_index: first_index + len(result.prediction)])
    module.add(TimeSeries(name=name, data=data, unit="probability",
                          description="model output: probability that an event starts here", **kwargs))


def _is_nwb_source(recording: Any) -> bool:
    meta = recording.metadata or {}
    return (
        str(meta.get("format", "")).lower() == "nwb"
        and recording.source is not None
        and Path(recording.source).is_file()
    )


def write_nwb(result: Any, path: str | Path, *, save_prediction: bool = False) -> Path:
    """Write the events (and, for non-NWB inputs, the analysed trace) to an NWB file at ``path``.

    From an NWB input the file is a copy of the input plus the events table; the input is not
    touched. The file appears at ``path`` only when complete.
    """
    from pynwb import NWBHDF5IO, NWBFile

    rec = result.recording
    path = Path(path)
    meta = rec.metadata or {}
    with atomic_path(path) as tmp:
        with warnings.catch_warnings():
            # pynwb/hdmf warn about optional metadata we do not have; keep stderr for real messages
            warnings.simplefilter("ignore")
            if _is_nwb_source(rec):
                if Path(rec.source).resolve() == path.resolve():
                    raise OutputError(f"the NWB output {path} would replace the input; choose another --out")
                shutil.copyfile(rec.source, tmp)
                with NWBHDF5IO(str(tmp), mode="a", load_namespaces=True) as io:
                    nwbfile = io.read()
                    series_name = meta.get("series", rec.channel)
                    series = nwbfile.acquisition.get(series_name)
                    if series is None:
                        series = nwbfile.stimulus.get(series_name)
                    if series is None:
                        raise OutputError(f"series {series_name!r} is no longer in {rec.source}; cannot link events")
                    first = int(round(float(meta.get("skip_start_s", 0.0) or 0.0) * rec.sampling_rate))
                    _add_events_table(nwbfile, result, series, first)
                    if save_prediction:
                        _add_prediction(nwbfile, result, series, first)
                    io.write(nwbfile)
            else:
                nwbfile = NWBFile(
                    session_description=f"minidet analysis of {recording_name(rec)}",
                    identifier=str(uuid.uuid4()),
                    session_start_time=datetime.now(timezone.utc),
                    notes=("converted by minidet from " + str(rec.source or "memory")
                           + "; session_start_time is the time of conversion, not of the recording; "
                           + "recording metadata: " + to_json(jsonable(meta), indent=None)),
                    source_script="minidet",
                    source_script_file_name="minidet",
                )
                series = _new_series(nwbfile, rec, name=str(rec.channel or "trace").replace("/", "_") or "trace")
                _add_events_table(nwbfile, result, series, 0)
                if save_prediction:
                    _add_prediction(nwbfile, result, series, 0)
                with NWBHDF5IO(str(tmp), mode="w") as io:
                    io.write(nwbfile)
    return path


def read_nwb_events(path: str | Path, table: str = TABLE_NAME):
    """Read an events table back from an NWB file as a pandas DataFrame (``id`` as index).

    The ``timeseries`` column is replaced by ``series`` (the linked series' name),
    ``series_idx_start`` and ``series_count``.
    """
    from pynwb import NWBHDF5IO

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with NWBHDF5IO(str(path), mode="r", load_namespaces=True) as io:
            nwbfile = io.read()
            module = nwbfile.processing.get(MODULE_NAME)
            if module is None or table not in module.data_interfaces:
                raise OutputError(f"{path} holds no {MODULE_NAME}/{table} table")
            frame = module[table].to_dataframe(index=True)
            if "timeseries" in frame.columns:
                refs = frame.pop("timeseries")
                frame["series"] = [r[0].timeseries.name if len(r) else None for r in refs]
                frame["series_idx_start"] = [r[0].idx_start if len(r) else -1 for r in refs]
                frame["series_count"] = [r[0].count if len(r) else 0 for r in refs]
            return frame
