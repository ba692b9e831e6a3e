"""Result files: events.csv, summary.csv, results.h5 and the JSON object, written atomically.

(About 600 lines: every result file (CSV, HDF5, JSON) and its reader back; kept together so that
what is written and what is read stay one schema.)

Every file is written to a temporary file in the destination folder and renamed into place,
so a crash or Ctrl-C never leaves a half-written result behind (:func:`atomic_write`,
:func:`atomic_path`). :func:`prepare_output_dir` checks, before any computation, that the
folder can be written and that no earlier result would be overwritten without ``force``.

Column names in the CSV files carry their units (``amplitude_pA``, ``charge_pC``,
``rise_time_s``); the HDF5 file keeps the plain names of :attr:`DetectionResult.events_all`
and stores each column's unit as an attribute. :func:`read_results` loads an HDF5 result back.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
import secrets
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..errors import OutputError
from ..fsutil import atomic_path, atomic_write

__all__ = [
    "EVENTS_CSV",
    "SUMMARY_CSV",
    "RESULTS_H5",
    "StoredResults",
    "atomic_path",
    "atomic_write",
    "charge_unit",
    "events_table",
    "jsonable",
    "prepare_output_dir",
    "read_results",
    "recording_info",
    "recording_name",
    "result_to_dict",
    "summary_row",
    "to_json",
    "unit_columns",
    "write_events_csv",
    "write_hdf5",
    "write_summary_csv",
]

EVENTS_CSV = "events.csv"
SUMMARY_CSV = "summary.csv"
RESULTS_H5 = "results.h5"
FORMAT_NAME = "minidet-results"
FORMAT_VERSION = 1

#: Event columns and their types, in the order of DetectionResult.events_all.
EVENT_COLUMNS: dict[str, str] = {
    "sample": "int64",
    "time_s": "float64",
    "score": "float64",
    "onset_sample": "int64",
    "onset_time_s": "float64",
    "peak_sample": "int64",
    "peak_time_s": "float64",
    "baseline": "float64",
    "amplitude": "float64",
    "rise_time_s": "float64",
    "half_decay_s": "float64",
    "half_width_s": "float64",
    "charge": "float64",
    "decay_tau_s": "float64",
    "overlapping": "bool",
    "excluded": "bool",
}
_IN_UNIT = ("baseline", "amplitude")  # columns in the recording's unit
_IN_CHARGE_UNIT = ("charge",)  # columns in unit x seconds

# current unit -> the charge unit of (current unit x s)
_CHARGE_UNITS = {"fA": "fC", "pA": "pC", "nA": "nC", "uA": "uC", "µA": "µC", "mA": "mC", "A": "C",
                 "amperes": "coulombs", "ampere": "coulombs"}  # NWB series store SI unit names


# ============================================================================ output folder
def prepare_output_dir(
    out_dir: str | os.PathLike[str], names: list[str] | tuple[str, ...], force: bool = False
) -> bool:
    """Make sure results can be written to ``out_dir`` before any computation starts.

    Creates the folder if needed and writes (and removes) a probe file in it. Raises
    :class:`OutputError` if one of ``names`` already exists there and ``force`` is false, or if
    the folder cannot be created or written. Returns whether the folder was created, so a
    caller can remove it again if the analysis fails (:func:`remove_if_empty`).
    """
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise OutputError(f"output folder {out} exists and is not a folder; pick another with --out")
    if out.is_dir() and not force:
        existing = [n for n in names if (out / n).exists()]
        if existing:
            raise OutputError(
                f"{out} already holds results ({', '.join(existing)}); "
                "use --force to overwrite them or --out to write elsewhere"
            )
    created = not out.exists()
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"cannot create output folder {out}: {exc.strerror or exc}") from None
    probe = out / f".minidet-write-test-{secrets.token_hex(4)}"
    try:
        fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        os.close(fd)
        probe.unlink()
    except OSError as exc:
        if created:
            remove_if_empty(out)
        raise OutputError(f"cannot write in output folder {out}: {exc.strerror or exc}") from None
    return created


def remove_if_empty(folder: str | os.PathLike[str]) -> None:
    """Remove ``folder`` if it exists and is empty (cleanup after a failed run)."""
    with contextlib.suppress(OSError):
        Path(folder).rmdir()


# ============================================================================ names and units
def _clean_unit(unit: str) -> str:
    return re.sub(r"[^\wµ]+", "_", str(unit)).strip("_") or "au"


def charge_unit(unit: str) -> str:
    """Unit of the event charge (the trace's unit x seconds): ``pA`` -> ``pC``, ``mV`` -> ``mV*s``."""
    return _CHARGE_UNITS.get(unit, f"{unit}*s")


def column_unit(column: str, unit: str) -> str | None:
    """Unit of an event column (``None`` for counts, flags and scores)."""
    if column in _IN_UNIT:
        return unit
    if column in _IN_CHARGE_UNIT:
        return charge_unit(unit)
    if column.endswith("_s"):
        return "s"
    if column.endswith("_sample") or column == "sample":
        return "samples"
    return None


def unit_columns(columns: list[str], unit: str) -> dict[str, str]:
    """Map plain event column names to CSV headers that carry the unit (``amplitude_pA``)."""
    u = _clean_unit(unit)
    mapping = {}
    for col in columns:
        if col in _IN_UNIT:
            mapping[col] = f"{col}_{u}"
        elif col in _IN_CHARGE_UNIT:
            mapping[col] = f"{col}_{_clean_unit(charge_unit(unit))}"
        else:
            mapping[col] = col
    return mapping


def _summary_key_with_unit(key: str, unit: str) -> str:
    """``amplitude_mean`` -> ``amplitude_mean_pA``; keys with a unit already are kept."""
    tokens = key.split("_")
    if "cv" in tokens or key.endswith(("_s", "_hz", "_samples")) or key in ("count", "n_events"):
        return key
    if any(t in tokens for t in _IN_UNIT):
        return f"{key}_{_clean_unit(unit)}"
    if any(t in tokens for t in _IN_CHARGE_UNIT):
        return f"{key}_{_clean_unit(charge_unit(unit))}"
    return key


def recording_name(recording: Any) -> str:
    """A short name for a recording: its file's stem, or ``"recording"``."""
    source = getattr(recording, "source", None)
    return Path(source).stem if source else "recording"


# ============================================================================ JSON helpers
def jsonable(value: Any) -> Any:
    """Convert numpy / pandas / Path values to plain JSON types; NaN and inf become ``None``."""
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, (np.bool_,)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        v = float(value)
        return v if math.isfinite(v) else None
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set)):
        return [jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return [jsonable(v) for v in value.tolist()]
    if isinstance(value, (os.PathLike,)):
        return os.fspath(value)
    if isinstance(value, (datetime, pd.Timestamp)):
        return value.isoformat()
    if hasattr(value, "to_dict"):
        return jsonable(value.to_dict())
    if value is pd.NA or value is pd.NaT:
        return None
    return str(value)


def to_json(obj: Any, indent: int | None = 2) -> str:
    """``json.dumps`` of :func:`jsonable` (strict JSON: no NaN)."""
    return json.dumps(jsonable(obj), indent=indent, allow_nan=False)


# ============================================================================ tables
def _typed_events(frame: pd.DataFrame) -> pd.DataFrame:
    """A copy of the events table with the expected dtypes (also when it is empty)."""
    frame = frame.copy()
    for col, dtype in EVENT_COLUMNS.items():
        if col not in frame.columns:
            continue
        if dtype == "bool":
            frame[col] = frame[col].fillna(False).astype(bool)
        elif dtype == "int64" and len(frame) == 0:
            frame[col] = frame[col].astype("int64")
        elif dtype == "float64":
            frame[col] = pd.to_numeric(frame[col], errors="coerce").astype("float64")
    return frame


def _settings_dict(result: Any) -> dict[str, Any]:
    settings = getattr(result, "settings", None)
    if settings is None:
        return {}
    return dict(settings.to_dict()) if hasattr(settings, "to_dict") else dict(vars(settings))


def recording_info(recording: Any) -> dict[str, Any]:
    """Plain-type description of a :class:`~minidet.recording.Recording` (no samples)."""
    return jsonable(
        {
            "name": recording_name(recording),
            "source": recording.source,
            "channel": recording.channel,
            "unit": recording.unit,
            "sampling_rate_hz": recording.sampling_rate,
            "n_samples": recording.n_samples,
            "duration_s": recording.duration_s,
            "n_sweeps": recording.n_sweeps,
            "sweep_starts": np.asarray(recording.sweep_starts).tolist(),
            "metadata": dict(recording.metadata or {}),
        }
    )


def events_table(result: Any, *, kept_only: bool = False, units_in_headers: bool = True) -> pd.DataFrame:
    """The events as one table with an ``event`` column (index in ``events_all``) first.

    With ``units_in_headers`` the columns are renamed ``amplitude_pA``, ``charge_pC`` ... for
    the recording's unit.
    """
    frame = _typed_events(result.events_all)
    if kept_only and "excluded" in frame.columns:
        frame = frame[~frame["excluded"]]
    frame = frame.reset_index(drop=False).rename(columns={"index": "event"})
    if "event" not in frame.columns:  # a named index: keep it and number the rows too
        frame.insert(0, "event", np.arange(len(frame)))
    frame["event"] = frame["event"].astype("int64")
    if units_in_headers:
        frame = frame.rename(columns=unit_columns(list(frame.columns), result.recording.unit))
    return frame


def summary_row(result: Any) -> dict[str, Any]:
    """One row for summary.csv: the recording, counts, then every summary statistic with units."""
    rec = result.recording
    events_all = result.events_all
    n_excluded = int(np.asarray(events_all["excluded"], dtype=bool).sum()) if "excluded" in events_all else 0
    row: dict[str, Any] = {
        "recording": recording_name(rec),
        "source": rec.source,
        "channel": rec.channel,
        "unit": rec.unit,
        "sampling_rate_hz": rec.sampling_rate,
    }
    summary = dict(result.summary)
    row["count"] = summary.pop("count", len(result.events))
    row["frequency_hz"] = summary.pop("frequency_hz", None)
    row["duration_s"] = summary.pop("duration_s", rec.duration_s)
    row["n_detected"] = int(len(events_all))
    row["n_excluded"] = n_excluded
    for key, value in summary.items():
        row[_summary_key_with_unit(key, rec.unit)] = value
    return row


def write_events_csv(result: Any, path: str | os.PathLike[str]) -> Path:
    """Write every detected event (kept and excluded) to a CSV file with units in the headers."""
    table = events_table(result)
    with atomic_write(path, newline="") as handle:
        table.to_csv(handle, index=False, float_format="%.9g")
    return Path(path)


def write_summary_csv(result: Any, path: str | os.PathLike[str]) -> Path:
    """Write the one-row summary (see :func:`summary_row`) to a CSV file."""
    row = {k: (v if not isinstance(v, (dict, list)) else json.dumps(jsonable(v))) for k, v in summary_row(result).items()}
    with atomic_write(path, newline="") as handle:
        pd.DataFrame([row]).to_csv(handle, index=False, float_format="%.9g")
    return Path(path)


def result_to_dict(result: Any) -> dict[str, Any]:
    """The whole result as plain JSON types (what ``minidet detect --json`` prints).

    ``events`` holds the kept events, ``excluded_events`` the ones removed by hand; each has
    an ``event`` number (its row in the full table). NaN becomes ``None``.
    """
    events = events_table(result, units_in_headers=False)
    excluded = events["excluded"].to_numpy(bool) if "excluded" in events else np.zeros(len(events), bool)
    records = events.to_dict(orient="records")
    rec_info = recording_info(result.recording)
    units = {col: column_unit(col, result.recording.unit) for col in events.columns if col != "event"}
    return jsonable(
        {
            "recording": rec_info,
            "settings": _settings_dict(result),
            "model": dict(getattr(result, "model_metadata", None) or {}),
            "summary": dict(result.summary),
            "units": units,
            "events": [r for r, x in zip(records, excluded) if not x],
            "excluded_events": [r for r, x in zip(records, excluded) if x],
        }
    )


# ============================================================================ HDF5
def _set_attrs(group: Any, values: dict[str, Any]) -> None:
    """Store a dict as HDF5 attributes: scalars as they are, anything else as a JSON string.

    The full dict is also stored as JSON in the ``json`` attribute, which is what
    :func:`read_results` reads (so ``None`` and nested values survive the round trip).
    """
    values = jsonable(values)
    for key, value in values.items():
        if isinstance(value, (bool, int, float, str)):
            group.attrs[key] = value
        else:
            group.attrs[key] = json.dumps(value)
    group.attrs["json"] = json.dumps(values)


def _waveforms(result: Any) -> tuple[np.ndarray, np.ndarray]:
    """Waveforms of every event in ``events_all`` (excluded ones too, rows in table order).

    ``DetectionResult.waveforms`` cuts the kept events only, so the excluded ones are
    restored first: the file then holds what is needed to undo an exclusion later.
    """
    events = result.events_all
    excluded = events["excluded"].to_numpy(bool) if "excluded" in events else np.zeros(len(events), bool)
    full = result.restore(np.flatnonzero(excluded)) if excluded.any() else result
    time_s, waves = full.waveforms()
    time_s = np.asarray(time_s, dtype=np.float64)
    waves = np.asarray(waves, dtype=np.float64)
    if waves.ndim != 2:
        waves = waves.reshape(0, time_s.size)
    return time_s, waves


def write_hdf5(result: Any, path: str | os.PathLike[str], *, save_prediction: bool = False) -> Path:
    """Write events, waveforms, average event, settings and metadata to one HDF5 file.

    Layout::

        /                attrs: format, format_version, minidet_version, created, recording
        /events/<col>    one 1-D dataset per column of events_all (attr ``unit``)
        /waveforms       (n_events, n_points) baseline-subtracted, attr ``unit``; rows = events
        /waveforms_time_s
        /average_event, /average_event_time_s   mean of the kept events
        /prediction      (only with save_prediction) attrs sampling_rate_hz
        /settings /model /recording /summary    groups whose attributes hold the values
        /info            how the run went (threshold_source, auto_threshold's table, noise_sd, ...)
    """
    import h5py

    from .. import __version__

    rec = result.recording
    events = _typed_events(result.events_all)
    time_s, waves = _waveforms(result)
    if waves.shape[0] != len(events):
        raise OutputError(
            f"internal mismatch: {waves.shape[0]} waveforms for {len(events)} events; cannot write {path}"
        )
    avg_t, avg = result.average_event() if len(result.events) else (time_s, np.full(time_s.shape, np.nan))
    gz = {"compression": "gzip", "compression_opts": 4, "shuffle": True}
    with atomic_path(path) as tmp:
        with h5py.File(tmp, "w") as h5:
            h5.attrs["format"] = FORMAT_NAME
            h5.attrs["format_version"] = FORMAT_VERSION
            h5.attrs["minidet_version"] = __version__
            h5.attrs["created"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
            h5.attrs["recording"] = recording_name(rec)
            h5.attrs["unit"] = rec.unit
            grp = h5.create_group("events")
            grp.attrs["columns"] = json.dumps(list(events.columns))
            grp.attrs["event_index"] = json.dumps(events.index.tolist())
            for col in events.columns:
                data = events[col].to_numpy()
                if data.dtype == object:
                    data = data.astype(str).astype("S")
                ds = grp.create_dataset(col, data=data)
                unit = column_unit(col, rec.unit)
                if unit:
                    ds.attrs["unit"] = unit
            ds = h5.create_dataset("waveforms", data=waves.astype(np.float32), **(gz if waves.size else {}))
            ds.attrs["unit"] = rec.unit
            ds.attrs["description"] = "one row per event (rows of /events), cut from the original trace, baseline subtracted"
            h5.create_dataset("waveforms_time_s", data=time_s).attrs["unit"] = "s"
            h5.create_dataset("average_event", data=np.asarray(avg, dtype=np.float64)).attrs["unit"] = rec.unit
            h5.create_dataset("average_event_time_s", data=np.asarray(avg_t, dtype=np.float64)).attrs["unit"] = "s"
            if save_prediction and result.prediction is not None:
                pds = _write_trace(h5, "prediction", result.prediction)
                pds.attrs["sampling_rate_hz"] = rec.sampling_rate
                pds.attrs["description"] = "event probability on the recording's sample grid"
            _set_attrs(h5.create_group("settings"), _settings_dict(result))
            _set_attrs(h5.create_group("model"), dict(getattr(result, "model_metadata", None) or {}))
            _set_attrs(h5.create_group("recording"), recording_info(rec))
            _set_attrs(h5.create_group("summary"), dict(result.summary))
            _set_attrs(h5.create_group("info"), dict(getattr(result, "info", None) or {}))
    return Path(path)


#: samples of a trace (the prediction) written or read at once (4 MB of float32)
TRACE_CHUNK = 1 << 20
#: a stored prediction up to this many samples is read into memory by default (128 MB as
#: float64, 45 min at 50 kHz would not be); longer ones are read on demand
PREDICTION_IN_MEMORY = 1 << 24


def _write_trace(h5: Any, name: str, trace: Any) -> Any:
    """Write a 1-D trace (array, :class:`~minidet.recording.LazyTrace` or anything with
    ``__array__``) as a chunked, compressed float32 dataset, piece by piece: an hour-long
    lazily computed prediction never sits in memory whole."""
    from ..recording import LazyTrace, iter_chunks

    if not isinstance(trace, (np.ndarray, LazyTrace)):
        trace = np.asarray(trace)
    n = int(trace.shape[0])
    if n == 0:
        return h5.create_dataset(name, data=np.zeros(0, dtype=np.float32))
    ds = h5.create_dataset(name, shape=(n,), dtype=np.float32, chunks=(min(n, 1 << 16),),
                           compression="gzip", compression_opts=4, shuffle=True)
    for start, stop, piece in iter_chunks(trace, TRACE_CHUNK):
        ds[start:stop] = piece.astype(np.float32)
    return ds


def _stored_trace(path: Path, name: str, n: int) -> Any:
    """A :class:`~minidet.recording.LazyTrace` over dataset ``name`` of the HDF5 file at
    ``path``. The file stays open (read-only) while the trace lives, so replacing or removing
    the file later (saving over a result, clearing a recovery copy) does not cut it off."""
    import threading

    import h5py

    from ..recording import LazyTrace

    handle = h5py.File(path, "r")
    dataset = handle[name]
    lock = threading.Lock()

    def read(start: int, stop: int) -> np.ndarray:
        with lock:
            return dataset[start:stop]

    trace = LazyTrace(n, read, description=f"{name} in {path}")
    trace._file = handle  # keeps the file open as long as the trace
    return trace


@dataclass(frozen=True)
class StoredResults:
    """Results loaded back from ``results.h5`` by :func:`read_results`.

    ``events`` holds every detected event (index: event number; ``excluded`` marks the ones
    removed by hand); :attr:`kept_events` the rest. ``waveforms`` has one row per event.
    ``prediction`` is ``None`` (not stored), a float64 array, or for a long one a
    :class:`~minidet.recording.LazyTrace` reading the file on demand (see :func:`read_results`).
    """

    path: Path
    events: pd.DataFrame
    summary: dict[str, Any]
    settings: dict[str, Any]
    model: dict[str, Any]
    recording: dict[str, Any]
    waveform_time_s: np.ndarray
    waveforms: np.ndarray
    average_time_s: np.ndarray
    average_event: np.ndarray
    prediction: Any = None
    attrs: dict[str, Any] = field(default_factory=dict)
    #: the run's ``info`` (empty in files written before it was stored)
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def kept_events(self) -> pd.DataFrame:
        if "excluded" not in self.events:
            return self.events
        return self.events[~self.events["excluded"].to_numpy(bool)]

    @property
    def kept_waveforms(self) -> np.ndarray:
        """Waveforms of :attr:`kept_events` (rows in the same order)."""
        if "excluded" not in self.events:
            return self.waveforms
        return self.waveforms[~self.events["excluded"].to_numpy(bool)]

    @property
    def unit(self) -> str:
        return str(self.recording.get("unit", ""))


def _read_json_attr(h5: Any, group: str) -> dict[str, Any]:
    if group not in h5:
        return {}
    raw = h5[group].attrs.get("json")
    if raw is None:
        return {k: v for k, v in h5[group].attrs.items()}
    return json.loads(raw if isinstance(raw, str) else raw.decode())


def read_results(path: str | os.PathLike[str], *, load_prediction: bool | None = None) -> StoredResults:
    """Load a result written by ``minidet detect`` (a results folder or its ``results.h5``).

    A stored prediction is read into memory when ``load_prediction`` is true, or when it is
    ``None`` (the default) and the prediction has at most :data:`PREDICTION_IN_MEMORY`
    samples; otherwise :attr:`StoredResults.prediction` is a
    :class:`~minidet.recording.LazyTrace` that reads the file piece by piece on demand (an
    hour at 50 kHz is 1.4 GB as float64). Raises :class:`OutputError` when the file is
    missing or not a minidet result.
    """
    import h5py

    p = Path(path)
    if p.is_dir():
        p = p / RESULTS_H5
    if not p.is_file():
        raise OutputError(f"no minidet result at {p}")
    try:
        h5 = h5py.File(p, "r")
    except OSError as exc:
        raise OutputError(f"cannot read {p} as HDF5: {exc}") from None
    with h5:
        if h5.attrs.get("format") != FORMAT_NAME:
            raise OutputError(f"{p} is not a minidet result file (no format={FORMAT_NAME!r} attribute)")
        grp = h5["events"]
        columns = json.loads(grp.attrs["columns"])
        data = {}
        for col in columns:
            values = grp[col][()]
            if values.dtype.kind == "S":
                values = values.astype(str)
            data[col] = values
        events = pd.DataFrame(data, columns=columns)
        index = json.loads(grp.attrs.get("event_index", "null"))
        if index is not None and len(index) == len(events):
            events.index = pd.Index(index)
        events = _typed_events(events)
        prediction = None
        if "prediction" in h5:
            n_pred = int(h5["prediction"].shape[0])
            if load_prediction or (load_prediction is None and n_pred <= PREDICTION_IN_MEMORY):
                prediction = h5["prediction"][()].astype(np.float64)
            else:
                prediction = _stored_trace(p, "prediction", n_pred)
        return StoredResults(
            path=p,
            events=events,
            summary=_read_json_attr(h5, "summary"),
            settings=_read_json_attr(h5, "settings"),
            model=_read_json_attr(h5, "model"),
            recording=_read_json_attr(h5, "recording"),
            waveform_time_s=h5["waveforms_time_s"][()],
            waveforms=h5["waveforms"][()].astype(np.float64),
            average_time_s=h5["average_event_time_s"][()],
            average_event=h5["average_event"][()],
            prediction=prediction,
            attrs={k: (v.item() if hasattr(v, "item") else v) for k, v in h5.attrs.items()},
            info=_read_json_attr(h5, "info"),
        )
