"""Running the jobs: serially, in local worker processes, or on a Dask distributed cluster."""

from __future__ import annotations

import contextlib
import logging
import math
import os
import secrets
from typing import Any, Callable


from ..errors import ParameterError
from .settings import RecordingJob
from .worker import _init_worker, _run_job

log = logging.getLogger(__name__)


def _cores() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # macOS, Windows
        return max(1, os.cpu_count() or 1)


def _check_count(name: str, value: Any) -> None:
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
        raise ParameterError(f"{name} must be an integer >= 1 or None, got {value!r}")


def resolve_workers(workers: int | None, threads_per_worker: int | None, n_jobs: int,
                    cores: int | None = None) -> tuple[int, int]:
    """``(workers, torch threads per worker)`` for a local run of ``n_jobs`` recordings.

    Defaults: one single-threaded worker per core, never more workers than recordings, and
    the cores shared out among the workers as threads, so that workers x threads <= cores.
    """
    _check_count("workers", workers)
    _check_count("threads_per_worker", threads_per_worker)
    cores = cores or _cores()
    n_jobs = max(1, int(n_jobs))
    if workers is None:
        workers = max(1, cores // (threads_per_worker or 1))
    workers = min(workers, n_jobs)
    if threads_per_worker is None:
        threads_per_worker = max(1, cores // workers)
    if workers * threads_per_worker > cores:
        log.warning("%d workers x %d threads exceed the %d cores: they will compete", workers,
                    threads_per_worker, cores)
    return workers, threads_per_worker


def _failure(job: RecordingJob, exc: BaseException) -> dict[str, Any]:
    return {"name": job.name, "status": "failed", "error_type": type(exc).__name__,
            "error": str(exc) or type(exc).__name__, "traceback": "", "worker": None,
            "elapsed_s": math.nan, "peak_rss_mb": math.nan}


def _run_serial(jobs: list[RecordingJob], threads: int | None, on_record: Callable[[dict], None]) -> None:
    previous = None
    if threads is not None:
        import torch

        previous = torch.get_num_threads()
        torch.set_num_threads(threads)
    try:
        for job in jobs:
            on_record(_run_job(job))
    finally:
        if previous is not None:
            import torch

            torch.set_num_threads(previous)


def _run_local(jobs: list[RecordingJob], workers: int, threads: int, on_record: Callable[[dict], None]) -> None:
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed

    models = sorted({j.model for j in jobs})
    # spawn: a fresh interpreter per worker (forking a process that already runs torch's
    # thread pools can deadlock)
    executor = ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn"),
                                   initializer=_init_worker, initargs=(threads, models))
    futures = {executor.submit(_run_job, job): job for job in jobs}
    try:
        for fut in as_completed(futures):
            try:
                record = fut.result()
            except Exception as exc:  # noqa: BLE001 - a worker that died (out of memory, killed)
                record = _failure(futures[fut], exc)
            on_record(record)
    except BaseException:
        for fut in futures:
            fut.cancel()
        # workers ignore Ctrl-C; stop the ones still computing (their temporary folders are
        # removed by the next run). _processes is the executor's own table of its processes.
        for process in list(getattr(executor, "_processes", {}).values()):
            with contextlib.suppress(Exception):
                process.terminate()
        raise
    finally:
        executor.shutdown(wait=True, cancel_futures=True)


def _run_dask(jobs: list[RecordingJob], client: Any, retries: int, on_record: Callable[[dict], None]) -> None:
    from distributed import as_completed

    token = secrets.token_hex(4)
    futures = {}
    for job in jobs:
        fut = client.submit(_run_job, job, key=f"minidet-batch-{job.name}-{token}", pure=False, retries=retries)
        futures[fut.key] = (fut, job)
    try:
        for fut in as_completed([f for f, _ in futures.values()]):
            job = futures[fut.key][1]
            try:
                record = fut.result()
            except Exception as exc:  # noqa: BLE001 - e.g. KilledWorker after repeated worker deaths
                record = _failure(job, exc)
            on_record(record)
    except BaseException:
        with contextlib.suppress(Exception):
            client.cancel([f for f, _ in futures.values()])
        raise
