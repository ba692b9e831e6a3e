"""Planning and running a batch: plan_batch, run_batch, BatchResult."""

from __future__ import annotations

import dataclasses
import logging
import os
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import pandas as pd

from ..errors import MinidetError, OutputError, ParameterError, RecordingNotFoundError
from .cache import _HashIndex, _is_up_to_date, _model_file, _read_marker, settings_hash
from .inputs import _collect, _unique
from .lock import _batch_lock, _remove_leftovers
from .manifest import _Entry
from .pool import _check_count, _run_dask, _run_local, _run_serial, resolve_workers
from .settings import BatchSettings, EVENTS_TABLE, FAILURES_TABLE, INDEX_FILE, RecordingJob, SUMMARY_TABLE
from .tables import _build_tables, _write_table
from .worker import _cached_model

log = logging.getLogger(__name__)


def _as_inputs(inputs: str | os.PathLike[str] | Sequence[str | os.PathLike[str]]) -> list[str]:
    if isinstance(inputs, (str, os.PathLike)):
        return [os.fspath(inputs)]
    items = [os.fspath(i) for i in inputs]
    if not items:
        raise ParameterError("no inputs given: name recordings, folders, patterns or a manifest")
    return items


def _abs_out(out_dir: str | os.PathLike[str]) -> Path:
    out = Path(os.path.abspath(os.path.expanduser(os.fspath(out_dir))))
    if out.exists() and not out.is_dir():
        raise OutputError(f"output folder {out} exists and is not a folder; pick another with --out")
    return out


def _prepare_out(out: Path) -> None:
    from ..report.writers import prepare_output_dir

    prepare_output_dir(out, [], force=True)  # creates it and checks it can be written


@dataclass
class _Resolved:
    entry: _Entry
    model: str
    settings: dict


def _resolve(inputs: Any, out: Path, settings: BatchSettings) -> list[_Resolved]:
    """Every check that needs no output folder: inputs, manifest, names, models, settings."""
    from ..detection.pipeline import resolve_settings
    from ..io import ReadOptions

    entries = _unique(_collect(_as_inputs(inputs), str(out), settings))
    metadata: dict[str, dict[str, Any]] = {}
    resolved = []
    for e in entries:
        try:
            ReadOptions(**e.reader)
        except MinidetError as exc:
            raise ParameterError(f"{e.origin}: {exc}") from None
        overrides = {**settings.overrides, **e.overrides}
        model_name = overrides.pop("model", settings.model)
        if model_name not in metadata:
            try:  # an unknown or damaged model fails here, before any work
                metadata[model_name] = _cached_model(model_name).metadata.to_dict()
            except MinidetError as exc:
                raise type(exc)(f"{e.origin}: {exc}") from None
        try:
            values = resolve_settings(None, metadata[model_name], overrides, model_name).to_dict()
        except MinidetError as exc:
            raise ParameterError(f"{e.origin}: {exc}") from None
        resolved.append(_Resolved(e, model_name, values))
    return resolved


def _make_jobs(resolved: list[_Resolved], out: Path, settings: BatchSettings, force: bool) -> list[RecordingJob]:
    index = _HashIndex(out / INDEX_FILE)
    model_sha: dict[str, str] = {}
    jobs: list[RecordingJob] = []
    for r in resolved:
        e = r.entry
        if r.model not in model_sha:
            model_sha[r.model] = index.sha256(str(_model_file(r.model)))
        try:
            content = index.sha256(e.path)
        except OSError as exc:
            raise RecordingNotFoundError(f"{e.origin}: cannot read {e.path}: {exc.strerror or exc}") from None
        job = RecordingJob(
            name=e.name, path=e.path, reader=dict(e.reader), settings=r.settings, model=r.model,
            labels=dict(e.labels), origin=e.origin, content_sha256=content, model_sha256=model_sha[r.model],
            settings_hash=settings_hash(r.settings, model_sha[r.model], e.reader, settings.outputs),
            out_dir=str(out), plots=settings.plots, nwb=settings.nwb, save_prediction=settings.save_prediction,
        )
        jobs.append(dataclasses.replace(job, up_to_date=not force and _is_up_to_date(job)))
    index.save()
    return jobs


def plan_batch(
    inputs: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
    out_dir: str | os.PathLike[str],
    settings: BatchSettings | None = None,
    *,
    force: bool = False,
) -> list[RecordingJob]:
    """Find the recordings, check everything that can be checked, and plan the work.

    Raises before any analysis (and before the output folder is created) for a missing
    input, a bad manifest, an output folder inside an input folder (or an input inside the
    output folder), two manifest rows that would write the same result, an unknown model or
    a bad setting. Then creates ``out_dir``, hashes every input (cached in
    ``OUT/_batch_index.json``) and marks the jobs whose result is already there
    (``up_to_date``; never with ``force``).
    """
    settings = settings or BatchSettings()
    out = _abs_out(out_dir)
    resolved = _resolve(inputs, out, settings)
    _prepare_out(out)
    return _make_jobs(resolved, out, settings, force)


@dataclass(frozen=True, eq=False)
class BatchResult:
    """What a batch produced.

    Attributes
    ----------
    out_dir
        The output folder.
    jobs
        The planned recordings (see :class:`RecordingJob`).
    recordings
        One row per recording: ``recording`` (its result folder's name), ``status``
        (``done``: analysed now; ``cached``: result from an earlier run reused; ``failed``),
        labels, summary statistics, ``settings_hash``, ``content_sha256``, ``results``.
    events
        Every event of the recordings that have results, with ``recording``, labels and
        ``unit``; the columns are named as in events.csv, with the unit (``amplitude_pA``).
    failures
        The failed recordings with ``error_type`` and ``error``.
    files
        Table file name -> path.
    """

    out_dir: Path
    jobs: list[RecordingJob]
    recordings: pd.DataFrame
    events: pd.DataFrame
    failures: pd.DataFrame
    files: dict[str, Path] = field(default_factory=dict)

    @property
    def n_failed(self) -> int:
        return int((self.recordings["status"] == "failed").sum())

    @property
    def n_done(self) -> int:
        return int((self.recordings["status"] == "done").sum())

    @property
    def n_cached(self) -> int:
        return int((self.recordings["status"] == "cached").sum())

    @property
    def ok(self) -> bool:
        """True when no recording failed."""
        return self.n_failed == 0

    def __repr__(self) -> str:
        return (f"BatchResult({len(self.recordings)} recordings: {self.n_done} done, {self.n_cached} cached, "
                f"{self.n_failed} failed; {len(self.events)} events; out_dir={str(self.out_dir)!r})")


def run_batch(
    inputs: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
    out_dir: str | os.PathLike[str],
    settings: BatchSettings | None = None,
    *,
    workers: int | None = None,
    threads_per_worker: int | None = None,
    client: Any = None,
    scheduler: str | None = None,
    retries: int = 2,
    force: bool = False,
    progress: bool = True,
) -> BatchResult:
    """Detect events in many recordings; write per-recording results and batch tables.

    Parameters
    ----------
    inputs
        Recording files, folders (searched recursively for :data:`FOLDER_EXTENSIONS`), glob
        patterns (``"data/**/*.abf"``), and CSV manifests (see :func:`read_manifest`).
    out_dir
        Output folder: ``recordings/<name>/`` per recording (the files ``minidet detect``
        writes plus ``_done.json``), ``batch_summary``, ``batch_events`` and
        ``batch_failures`` as ``.csv`` and ``.parquet``. Must not lie inside an input folder.
    settings
        :class:`BatchSettings` (model, detection settings, reader options, extra outputs).
    workers
        Local worker processes; ``None``: one per core (at most one per recording); ``1``:
        run in this process.
    threads_per_worker
        Torch threads per worker; ``None``: the cores shared out among the workers. With a
        Dask cluster, set in each task when given (else the cluster's setting stands).
    client
        A ``dask.distributed.Client``: one task per recording on its cluster.
    scheduler
        Address of a Dask scheduler (``tcp://HOST:PORT``) to connect to instead of ``client``.
    retries
        Dask only: how often a task whose worker raised is tried again (a task on a worker
        that dies is rescheduled by the scheduler in any case).
    force
        Redo every recording, even those with an up-to-date result.
    progress
        Show a progress bar over the recordings (stderr).

    Returns
    -------
    BatchResult
        Its ``ok`` is False when some recording failed (``failures`` says why); the others
        are complete. Errors in the inputs or settings raise before any work starts.
    """
    if client is not None and scheduler is not None:
        raise ParameterError("give either client or scheduler, not both")
    if (client is not None or scheduler is not None) and workers is not None:
        raise ParameterError("workers is for local runs; a Dask cluster has its own workers")
    if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
        raise ParameterError(f"retries must be an integer >= 0, got {retries!r}")
    if scheduler is not None and not (isinstance(scheduler, str) and re.match(r"^[a-z]+://.+", scheduler)):
        raise ParameterError(f"scheduler must be an address like tcp://HOST:PORT, got {scheduler!r}")
    settings = settings or BatchSettings()
    _check_count("workers", workers)  # bad values fail before the planning
    _check_count("threads_per_worker", threads_per_worker)

    out = _abs_out(out_dir)
    resolved = _resolve(inputs, out, settings)
    _prepare_out(out)
    with _batch_lock(out):
        jobs = _make_jobs(resolved, out, settings, force)
        _remove_leftovers(out)
        todo = [j for j in jobs if not j.up_to_date]
        records: dict[str, dict] = {}
        for job in jobs:
            if job.up_to_date:
                records[job.name] = {"name": job.name, "status": "cached", "marker": _read_marker(job.result_dir)}

        from tqdm.auto import tqdm

        bar = tqdm(total=len(jobs), initial=len(jobs) - len(todo), unit="rec", desc="recordings",
                   disable=not progress, file=sys.stderr, dynamic_ncols=True)
        failed = 0

        def on_record(record: dict) -> None:
            nonlocal failed
            records[record["name"]] = record
            if record["status"] == "failed":
                failed += 1
                log.info("%s failed: %s", record["name"], record.get("error"))
                bar.set_postfix(failed=failed)
            bar.update(1)

        try:
            if todo:
                if client is not None or scheduler is not None:
                    own = None
                    if client is None:
                        try:
                            from distributed import Client
                        except ImportError:
                            raise ParameterError("--scheduler needs the 'distributed' package: "
                                                 "pip install distributed") from None

                        client = own = Client(scheduler)
                    try:
                        if threads_per_worker is not None:
                            todo = [dataclasses.replace(j, torch_threads=threads_per_worker) for j in todo]
                        _run_dask(todo, client, retries, on_record)
                    finally:
                        if own is not None:
                            own.close()
                else:
                    n_workers, threads = resolve_workers(workers, threads_per_worker, len(todo))
                    if n_workers == 1:
                        _run_serial(todo, threads, on_record)
                    else:
                        _run_local(todo, n_workers, threads, on_record)
        finally:
            bar.close()
        _remove_leftovers(out)

        recordings, events, failures = _build_tables(jobs, records, out)
        files: dict[str, Path] = {}
        for frame, stem in ((recordings, SUMMARY_TABLE), (events, EVENTS_TABLE), (failures, FAILURES_TABLE)):
            files.update(_write_table(frame, out, stem))
    return BatchResult(out_dir=out, jobs=jobs, recordings=recordings, events=events, failures=failures, files=files)
