"""Many recordings at once: :func:`run_batch` (and ``minidet batch``).

Inputs are files, folders (searched recursively), glob patterns, or CSV manifests with one
row per recording (``path``, reader options, per-recording detection settings, free labels).
Every recording gets the result folder ``minidet detect`` writes, under
``OUT/recordings/<name>/``; the batch gets three tables, each as CSV and Parquet:

- ``batch_summary``: one row per recording (status, labels, summary statistics, settings
  hash, content hash, where the results are);
- ``batch_events``: every event of every recording, with a ``recording`` column, the
  columns named as in each recording's events.csv (``amplitude_pA``, ``charge_pC``);
- ``batch_failures``: the recordings that failed, with their error.

Resumable and idempotent: a recording's folder is written under a temporary name, its
``_done.json`` marker (content hash of the input, settings hash) last, and renamed into place;
a later run skips a recording whose marker matches the file's content, the settings and the
model, and redoes it otherwise. A crash or Ctrl-C leaves only temporary folders, which the
next run removes. One failing recording never stops the others.

Work runs in local worker processes (the model loaded once per worker, torch threads per
worker chosen so that workers x threads fit the cores), or on a Dask distributed cluster
(``client=`` or ``scheduler="tcp://HOST:PORT"``: one task per recording, with retries; the
inputs and the output folder must be at the same paths on every worker, e.g. a shared file
system).

Modules, one job each: :mod:`.settings` (constants, BatchSettings, RecordingJob),
:mod:`.manifest` (CSV manifests), :mod:`.inputs` (finding recordings, naming folders),
:mod:`.cache` (hashes and done-markers), :mod:`.worker` (one recording in a worker),
:mod:`.pool` (serial, local processes, Dask), :mod:`.tables` (the batch tables),
:mod:`.lock` (one run per folder), :mod:`.run` (plan_batch, run_batch).
"""

from __future__ import annotations

from .manifest import read_manifest
from .pool import resolve_workers
from .run import BatchResult, plan_batch, run_batch
from .settings import (DONE_MARKER, EVENTS_TABLE, FAILURES_TABLE, FOLDER_EXTENSIONS, INDEX_FILE, LOCK_FILE,
                       RECORDINGS_DIR, SUMMARY_TABLE, BatchSettings, RecordingJob)
from .cache import settings_hash

__all__ = [
    "BatchResult",
    "BatchSettings",
    "RecordingJob",
    "DONE_MARKER",
    "EVENTS_TABLE",
    "FAILURES_TABLE",
    "FOLDER_EXTENSIONS",
    "INDEX_FILE",
    "LOCK_FILE",
    "RECORDINGS_DIR",
    "SUMMARY_TABLE",
    "plan_batch",
    "read_manifest",
    "resolve_workers",
    "run_batch",
    "settings_hash",
]
