"""The batch tables (batch_summary, batch_events, batch_failures) as CSV and Parquet."""

from __future__ import annotations

import contextlib
import logging
import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..errors import MinidetError
from .settings import DONE_MARKER, RECORDINGS_DIR, RecordingJob

log = logging.getLogger(__name__)


def _summary_columns(jobs: list[RecordingJob], markers: dict[str, dict]) -> list[str]:
    keys: list[str] = []
    for job in jobs:
        for k in (markers.get(job.name) or {}).get("summary", {}):
            if k not in keys and k != "unit":
                keys.append(k)
    return keys


def _label_columns(jobs: list[RecordingJob]) -> list[str]:
    labels: list[str] = []
    for job in jobs:
        for k in job.labels:
            if k not in labels:
                labels.append(k)
    return labels


def _build_tables(jobs: list[RecordingJob], records: dict[str, dict], out: Path
                  ) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    from ..detection.pipeline import EVENT_COLUMNS
    from ..report.writers import _summary_key_with_unit, read_results, unit_columns

    markers = {name: rec.get("marker") for name, rec in records.items() if rec.get("marker")}
    labels = _label_columns(jobs)
    summary_keys = _summary_columns(jobs, markers)
    rows, failures, event_frames = [], [], []
    event_units: list[str] = []
    for job in jobs:
        rec = records.get(job.name, {"status": "not run"})
        marker = markers.get(job.name) or {}
        events = None
        if rec["status"] != "failed" and marker:
            try:
                events = read_results(job.result_dir).events.copy()
            except (MinidetError, OSError, KeyError, ValueError) as exc:  # damaged since it was written
                with contextlib.suppress(OSError):  # so that the next run redoes it
                    (job.result_dir / DONE_MARKER).unlink()
                rec = {**rec, "status": "failed", "error_type": type(exc).__name__,
                       "error": f"the stored result cannot be read ({exc}); the next run redoes it"}
                marker = {}
        row: dict[str, Any] = {"recording": job.name, "status": rec["status"], "path": job.path}
        row.update({k: job.labels.get(k, "") for k in labels})
        summary = marker.get("summary", {})
        # the column names of summary.csv: the unit in the name (amplitude_mean_pA)
        row.update({_summary_key_with_unit(k, marker.get("unit") or "") if marker.get("unit") else k: summary.get(k)
                    for k in summary_keys})
        row.update({
            "unit": marker.get("unit"),
            "sampling_rate_hz": marker.get("sampling_rate_hz"),
            "n_detected": marker.get("n_detected"),
            "n_excluded": marker.get("n_excluded"),
            "model": job.model,
            "settings_hash": job.settings_hash,
            "content_sha256": job.content_sha256,
            "model_sha256": job.model_sha256,
            "results": os.path.join(RECORDINGS_DIR, job.name) if marker else None,
            "elapsed_s": marker.get("elapsed_s", rec.get("elapsed_s")),
            "worker": marker.get("worker", rec.get("worker")),
            "peak_rss_mb": rec.get("peak_rss_mb"),
            "error_type": rec.get("error_type"),
            "error": rec.get("error"),
        })
        rows.append(row)
        if rec["status"] == "failed":
            failures.append({"recording": job.name, "path": job.path, **{k: job.labels.get(k, "") for k in labels},
                             "origin": job.origin, "error_type": rec.get("error_type"), "error": rec.get("error"),
                             "traceback": rec.get("traceback", "")})
        elif events is not None:
            events.insert(0, "event", events.index.to_numpy(np.int64))
            events.insert(0, "recording", job.name)
            for i, k in enumerate(labels):
                events.insert(1 + i, k, job.labels.get(k, ""))
            events["unit"] = marker.get("unit")
            # the column names of events.csv: the unit in the name (amplitude_pA, charge_pC)
            events = events.rename(columns=unit_columns(list(EVENT_COLUMNS), marker.get("unit") or ""))
            event_frames.append(events.reset_index(drop=True))
            event_units.append(marker.get("unit") or "")
    recordings = pd.DataFrame(rows)
    fixed = ["recording", "status", "path", *labels, "unit", "sampling_rate_hz", "n_detected", "n_excluded", "model",
             "settings_hash", "content_sha256", "model_sha256", "results", "elapsed_s", "worker", "peak_rss_mb",
             "error_type", "error"]
    summary_columns = [c for c in recordings.columns if c not in fixed]
    for k in summary_columns + ["sampling_rate_hz", "n_detected", "n_excluded", "elapsed_s", "peak_rss_mb"]:
        if k in recordings:
            recordings[k] = pd.to_numeric(recordings[k], errors="coerce")
    # recordings in other units add their own columns (amplitude_mV next to amplitude_pA);
    # without any result there is no unit to name, and the columns keep their plain names
    event_columns: list[str] = [] if event_units else list(EVENT_COLUMNS)
    for unit in event_units:
        event_columns += [c for c in unit_columns(list(EVENT_COLUMNS), unit).values() if c not in event_columns]
    columns = ["recording", *labels, "event", *event_columns, "unit"]
    nonempty = [f for f in event_frames if len(f)]
    if nonempty:
        events = pd.concat(nonempty, ignore_index=True).reindex(columns=columns)
    else:
        from ..detection.pipeline import empty_events

        events = empty_events()
        if event_units:
            events = events.rename(columns=unit_columns(list(EVENT_COLUMNS), event_units[0]))
        events.insert(0, "event", np.zeros(0, np.int64))
        events.insert(0, "recording", pd.Series([], dtype=object))
        for i, k in enumerate(labels):
            events.insert(1 + i, k, pd.Series([], dtype=object))
        events["unit"] = pd.Series([], dtype=object)
        events = events[columns]
    failure_columns = ["recording", "path", *labels, "origin", "error_type", "error", "traceback"]
    failures_df = pd.DataFrame(failures, columns=failure_columns)
    return recordings, events, failures_df


def _write_table(frame: pd.DataFrame, out: Path, stem: str) -> dict[str, Path]:
    from ..report.writers import atomic_path, atomic_write

    csv_path, parquet_path = out / f"{stem}.csv", out / f"{stem}.parquet"
    with atomic_write(csv_path, newline="") as fh:
        frame.to_csv(fh, index=False, float_format="%.9g")
    written = {csv_path.name: csv_path}
    try:
        import pyarrow  # noqa: F401
    except ImportError:
        log.warning("pyarrow is not installed: %s not written", parquet_path.name)
        return written
    with atomic_path(parquet_path) as tmp:
        frame.to_parquet(tmp, index=False, engine="pyarrow")
    written[parquet_path.name] = parquet_path
    return written
