"""One recording in a worker process: the per-process model cache and thread setting, the run, publishing its folder."""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import secrets
import shutil
import socket
import sys
import time
import traceback
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Sequence


from ..errors import MinidetError
from .settings import DONE_MARKER, MARKER_FORMAT, MARKER_VERSION, RecordingJob

log = logging.getLogger(__name__)


# Worker processes keep their loaded models here, so each model is read once per process
# (the ProcessPoolExecutor initializer or the first Dask task fills it). Real state of a
# worker, not of the library: the main process only uses it for serial runs.
_MODELS: dict[str, Any] = {}
_THREADS: dict[str, int] = {}


def _cached_model(model: str) -> Any:
    if model not in _MODELS:
        from ..model import load_model

        _MODELS[model] = load_model(model)
    return _MODELS[model]


def _set_torch_threads(threads: int | None) -> None:
    if threads is None or _THREADS.get("torch") == threads:
        return
    import torch

    torch.set_num_threads(int(threads))
    _THREADS["torch"] = int(threads)


def _init_worker(threads: int, models: Sequence[str]) -> None:
    """ProcessPoolExecutor initializer: ignore Ctrl-C (the main process stops the pool), set
    the thread count before torch starts, load the models once."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[var] = str(threads)
    import torch

    torch.set_num_threads(threads)
    with contextlib.suppress(RuntimeError):
        torch.set_num_interop_threads(1)
    _THREADS["torch"] = threads
    from .. import report  # noqa: F401 - imported once here rather than in the first job
    from ..detection import pipeline  # noqa: F401
    from ..io import load  # noqa: F401

    for model in models:
        _cached_model(model)


def _peak_rss_mb() -> float:
    """Peak resident memory of this process so far, MiB.

    Linux: VmHWM of /proc/self/status, which starts afresh at exec (``ru_maxrss`` would carry
    the RSS of the parent that spawned a worker). Elsewhere ``ru_maxrss``."""
    with contextlib.suppress(OSError, ValueError):
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024  # kB
    try:
        import resource
    except ImportError:  # Windows
        return math.nan
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 1024  # bytes on macOS, KiB on Linux


def _publish(tmp: Path, final: Path) -> None:
    """Move a finished result folder into place; an older one is moved aside and removed."""
    for attempt in range(5):
        trash = final.with_name(f".{final.name}.old-{secrets.token_hex(4)}")
        try:
            if final.exists():
                os.rename(final, trash)
            os.rename(tmp, final)
        except OSError:
            if attempt == 4:
                raise
            time.sleep(0.05 * (attempt + 1))  # another attempt of the same job was publishing
            continue
        finally:
            if trash.exists():
                shutil.rmtree(trash, ignore_errors=True)
        return


def _run_job(job: RecordingJob) -> dict[str, Any]:
    """Analyse one recording and publish its result folder. Never raises for a bad
    recording: the error goes into the returned record."""
    started = time.perf_counter()
    worker = f"{socket.gethostname()}:{os.getpid()}"
    record: dict[str, Any] = {"name": job.name, "worker": worker}
    tmp: Path | None = None
    try:
        from .. import report
        from ..detection.pipeline import DetectSettings, detect
        from ..io import load
        from ..report.writers import atomic_write, jsonable, summary_row

        _set_torch_threads(job.torch_threads)
        model = _cached_model(job.model)
        recording = load(job.path, **job.reader)
        result = detect(recording, model, settings=DetectSettings(**job.settings))
        final = job.result_dir
        final.parent.mkdir(parents=True, exist_ok=True)
        tmp = final.with_name(f".{final.name}.tmp-{secrets.token_hex(4)}")
        tmp.mkdir()
        written = report.write_results(result, tmp, plots=job.plots, nwb=job.nwb,
                                       save_prediction=job.save_prediction)
        row = summary_row(result)
        marker = {
            "format": MARKER_FORMAT,
            "format_version": MARKER_VERSION,
            "name": job.name,
            "path": job.path,
            "content_sha256": job.content_sha256,
            "settings_hash": job.settings_hash,
            "model": job.model,
            "model_sha256": job.model_sha256,
            "settings": job.settings,
            "reader": job.reader,
            "summary": dict(result.summary),
            "unit": recording.unit,
            "sampling_rate_hz": recording.sampling_rate,
            "n_detected": row["n_detected"],
            "n_excluded": row["n_excluded"],
            "files": sorted(written),
            "elapsed_s": time.perf_counter() - started,
            "worker": worker,
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        }
        with atomic_write(tmp / DONE_MARKER) as fh:  # last: its presence means complete
            fh.write(json.dumps(jsonable(marker), indent=1))
        _publish(tmp, final)
        tmp = None
        record.update(status="done", marker=jsonable(marker))
    except Exception as exc:  # noqa: BLE001 - one bad recording must not stop the batch
        record.update(status="failed", error_type=type(exc).__name__, error=str(exc) or type(exc).__name__,
                      traceback="" if isinstance(exc, MinidetError) else traceback.format_exc(limit=8))
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
    record["elapsed_s"] = time.perf_counter() - started
    record["peak_rss_mb"] = _peak_rss_mb()
    return record
