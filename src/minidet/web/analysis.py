"""The analysis app: open a recording, pre-process it, detect events, review them, save.

:class:`AnalysisSession` is the app's state on the server: the opened recording (as read,
and after the pre-processing steps), the current :class:`~minidet.detection.pipeline.DetectionResult`
with the events removed by hand, the background analysis and its progress. The page in
``static/analysis/`` only draws what the JSON API of :func:`build_app` sends; a closed tab
loses nothing, and reopening it shows the same state.

Unsaved work also survives the server: after every analysis the result is written to a
recovery folder in the per-user state folder (``results.h5`` written by the same writer as
``minidet detect``, with the prediction), and every exclusion or restoration rewrites a small
``edits.json`` there, atomically. Opening the same recording again (same file, same reader
options) offers that work back until it is saved or discarded.

Saving writes the files ``minidet detect`` writes (events.csv, summary.csv, results.h5, with
the events removed by hand marked ``excluded``), each atomically, into a folder inside the
folders the user opened. No request reads or writes a path outside them
(:meth:`minidet.web.server.WebApp.allowed_path`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import io
import json
import logging
import math
import os
import threading
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

import numpy as np

from .. import DEFAULT_MODEL, preprocess
from ..errors import MinidetError, OutputError, ParameterError
from ..recording import Recording
from ..report import writers
from ..decimate import Envelope, EnvelopeSlice
from ..io import READER_KEYS, RECORDING_EXTENSIONS
from .server import HTTPError, Request, WebApp

__all__ = ["AnalysisSession", "STATIC_DIR", "build_app", "default_state_dir"]

log = logging.getLogger(__name__)

STATIC_DIR = Path(__file__).parent / "static" / "analysis"
MAX_PIXELS = 8000
VIEWER_POINTS = 4000
EDITS_FILE = "edits.json"
SNAPSHOT_FILE = "results.h5"
SAVED_DIR = "saved"  # in the state folder: where each recording's results were last saved

# settings the page may send, with their types (everything detect takes)
_INT_SETTINGS = ("window_size", "stride", "convolve_win", "gradient_convolve_win", "peak_w", "smoothing_steps",
                 "batch_size")
_FLOAT_SETTINGS = ("threshold", "filter_factor", "rel_prom_cutoff", "peak_prominence")
_STR_SETTINGS = ("event_direction", "training_direction", "device")
_HISTOGRAMS = (  # column, label, factor (to the shown unit), unit ("" -> the recording's)
    ("amplitude", "amplitude", 1.0, ""),
    ("rise_time_s", "10-90% rise", 1e3, "ms"),
    ("half_decay_s", "half decay", 1e3, "ms"),
    ("charge", "charge", 1.0, "charge"),
    ("interval_s", "interval", 1e3, "ms"),
    ("score", "score", 1.0, ""),
)
_CUMULATIVE = (("amplitude", "amplitude", 1.0, ""), ("interval_s", "inter-event interval", 1e3, "ms"))
CUMULATIVE_POINTS = 1000  # points of a cumulative distribution sent to the page (rank-spaced)


def default_state_dir() -> Path:
    """Where unsaved work is kept: ``$MINIDET_STATE_DIR``, else ``$XDG_STATE_HOME/minidet/app``,
    else ``~/.local/state/minidet/app``."""
    if os.environ.get("MINIDET_STATE_DIR"):
        return Path(os.environ["MINIDET_STATE_DIR"])
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "minidet" / "app"


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _decimals(span: float) -> int:
    """Decimals that keep about six significant digits of values spread over ``span``."""
    if not math.isfinite(span) or span <= 0:
        return 6
    return int(min(12, max(0, 5 - math.floor(math.log10(span)))))


def _rounded(values: np.ndarray, decimals: int) -> np.ndarray:
    return np.round(np.asarray(values, dtype=np.float64), decimals)


# ============================================================================ reader options
def reader_options(raw: Any) -> dict[str, Any]:
    """Reader options from the page (strings or numbers; empty means unset) for :func:`minidet.load`."""
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise ParameterError("reader options must be an object")
    unknown = sorted(set(raw) - set(READER_KEYS))
    if unknown:
        raise ParameterError(f"unknown reader option(s) {unknown}; allowed: {', '.join(READER_KEYS)}")
    out: dict[str, Any] = {}
    for key in READER_KEYS:
        value = raw.get(key)
        if value is None or (isinstance(value, str) and not value.strip()):
            continue
        if key in ("skip_start_s", "sampling_rate", "scale"):
            try:
                value = float(value)
            except (TypeError, ValueError):
                raise ParameterError(f"{key} must be a number, got {value!r}") from None
            if key == "skip_start_s" and value == 0:
                continue
        elif key == "sweeps" and isinstance(value, list):
            if not all(isinstance(v, int) and not isinstance(v, bool) for v in value):
                raise ParameterError(f"sweeps must be a spec like '0-3,5' or a list of integers, got {value!r}")
        elif key == "channel" and isinstance(value, int) and not isinstance(value, bool):
            value = str(value)
        elif not isinstance(value, str):
            raise ParameterError(f"{key} must be text, got {value!r}")
        else:
            value = value.strip()
        out[key] = value
    return out


def detect_overrides(raw: Any) -> dict[str, Any]:
    """Detection settings from the page (empty or missing: the model's default)."""
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise ParameterError("settings must be an object")
    from ..detection.pipeline import DetectSettings

    names = set(DetectSettings.field_names()) - {"model"}
    unknown = sorted(set(raw) - names)
    if unknown:
        raise ParameterError(f"unknown setting(s) {unknown}; allowed: {', '.join(sorted(names))}")
    out: dict[str, Any] = {}
    for key, value in raw.items():
        if value is None or (isinstance(value, str) and not value.strip()):
            continue
        if key in _INT_SETTINGS:
            try:
                number = float(value)
            except (TypeError, ValueError):
                raise ParameterError(f"{key} must be a whole number, got {value!r}") from None
            if isinstance(value, bool) or not number.is_integer():
                raise ParameterError(f"{key} must be a whole number, got {value!r}")
            out[key] = int(number)
        elif key == "threshold" and isinstance(value, str) and value.strip().lower() == "auto":
            out[key] = "auto"
        elif key in _FLOAT_SETTINGS:
            try:
                out[key] = float(value)
            except (TypeError, ValueError):
                raise ParameterError(f"{key} must be a number, got {value!r}") from None
        elif key == "resample":
            if not isinstance(value, bool):
                raise ParameterError(f"resample must be true or false, got {value!r}")
            out[key] = value
        else:
            out[key] = str(value)
    return out


# ============================================================================ progress
class AnalysisCancelled(Exception):
    """Raised inside the analysis thread when the person cancels it."""


@dataclasses.dataclass
class Job:
    """The background analysis: what it is doing and how far it got."""

    state: str = "idle"  # idle | running | done | error | cancelled
    stage: str = ""
    done: int = 0
    total: int = 0
    message: str = ""
    started: float = 0.0
    finished: float = 0.0
    cancel: threading.Event = dataclasses.field(default_factory=threading.Event)

    def report(self, done: int, total: int | None) -> None:
        self.done, self.total = int(done), int(total or 0)
        if self.cancel.is_set():
            raise AnalysisCancelled()

    def to_dict(self) -> dict[str, Any]:
        fraction = None
        if self.state == "done":
            fraction = 1.0
        elif self.total > 0:
            fraction = min(1.0, self.done / self.total)
        end = self.finished if self.state != "running" else time.monotonic()
        return {
            "state": self.state,
            "stage": self.stage,
            "done": self.done,
            "total": self.total,
            "fraction": fraction,
            "message": self.message,
            "elapsed_s": round(end - self.started, 2) if self.started else 0.0,
        }


_TQDM_LOCK = threading.Lock()


@contextlib.contextmanager
def _prediction_progress(job: Job) -> Iterator[None]:
    """Route the prediction's progress bar (tqdm) to ``job`` while the block runs.

    :func:`minidet.detection.predict.predict` reports its progress through ``tqdm.auto.tqdm``
    and takes no callback, so the bar class is replaced by a silent subclass for the
    duration of one analysis (the app runs one at a time). If the prediction stops using
    tqdm, the page shows the stage without a fraction; nothing else changes.
    """
    try:
        import tqdm.auto as tqdm_auto
    except ImportError:  # pragma: no cover - tqdm is a dependency
        yield
        return

    original = tqdm_auto.tqdm

    class ReportingBar(original):  # type: ignore[misc, valid-type]
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            kwargs["file"] = io.StringIO()
            kwargs["disable"] = False
            super().__init__(*args, **kwargs)
            # the bar's name: "predict", or "auto threshold (inverted)" for the second pass
            desc = kwargs.get("desc") or (args[1] if len(args) > 1 else None)
            job.stage = "predicting" if desc in (None, "", "predict") else str(desc)
            job.report(self.n, self.total)

        def update(self, n: float | None = 1) -> Any:
            out = super().update(n)
            job.report(self.n, self.total)
            return out

        def refresh(self, *args: Any, **kwargs: Any) -> Any:
            out = super().refresh(*args, **kwargs)
            job.total = int(self.total or 0)
            return out

    with _TQDM_LOCK:
        tqdm_auto.tqdm = ReportingBar
        try:
            yield
        finally:
            tqdm_auto.tqdm = original


# ============================================================================ recovery
class Journal:
    """Unsaved work on one recording (file + reader options) in the per-user state folder.

    ``results.h5``: the last analysis as :func:`minidet.report.writers.write_hdf5` writes it
    (with the prediction); ``edits.json``: the events excluded by hand since, whether that
    state was saved and where. Both are replaced atomically.
    """

    def __init__(self, state_dir: Path, source: Path, reader: dict[str, Any]) -> None:
        key = json.dumps({"source": str(source), "reader": reader}, sort_keys=True)
        digest = hashlib.sha256(key.encode()).hexdigest()[:20]
        self.folder = Path(state_dir) / digest
        # where this recording's results were last saved (outlives the unsaved work)
        self.saved_path = Path(state_dir) / SAVED_DIR / f"{digest}.json"
        self.source = source
        self.reader = reader

    def remember_saved(self, folder: Path) -> None:
        """Note the results folder the work was saved into, for the next opening."""
        try:
            self.saved_path.parent.mkdir(parents=True, exist_ok=True)
            with writers.atomic_write(self.saved_path) as handle:
                handle.write(json.dumps({"source": str(self.source), "reader": self.reader, "folder": str(folder),
                                         "saved": _now()}))
        except OSError as exc:  # only the offer on reopening is lost
            log.warning("could not note where %s was saved: %s", self.source, exc)

    def saved_folder(self) -> Path | None:
        try:
            data = json.loads(self.saved_path.read_text(encoding="utf-8"))
            return Path(data["folder"])
        except (OSError, ValueError, KeyError, TypeError):
            return None

    @property
    def edits_path(self) -> Path:
        return self.folder / EDITS_FILE

    @property
    def snapshot_path(self) -> Path:
        return self.folder / SNAPSHOT_FILE

    def _fingerprint(self) -> dict[str, Any]:
        st = self.source.stat()
        return {"size": st.st_size, "mtime_ns": st.st_mtime_ns}

    def write_snapshot(self, result: Any, steps: list[dict[str, Any]]) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        writers.write_hdf5(result, self.snapshot_path, save_prediction=True)
        self.write_edits(result, steps, saved_to=None)

    def write_edits(self, result: Any, steps: list[dict[str, Any]], saved_to: str | None) -> None:
        excluded = np.flatnonzero(result.events_all["excluded"].to_numpy(bool)).tolist()
        data = {
            "version": 1,
            "source": str(self.source),
            "reader": self.reader,
            "file": self._fingerprint(),
            "steps": steps,
            "n_events": int(len(result.events_all)),
            "excluded": excluded,
            "settings": result.settings.to_dict(),
            "saved_to": saved_to,
            "updated": _now(),
        }
        self.folder.mkdir(parents=True, exist_ok=True)
        with writers.atomic_write(self.edits_path) as handle:
            handle.write(json.dumps(writers.jsonable(data), indent=1))

    def read(self) -> dict[str, Any] | None:
        """The kept work if there is unsaved work for the file as it is now, else None."""
        try:
            data = json.loads(self.edits_path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        if not isinstance(data, dict) or data.get("saved_to") or not self.snapshot_path.is_file():
            return None
        try:
            if data.get("file") != self._fingerprint():
                log.info("recovery: %s changed since the kept analysis; not offering it", self.source)
                return None
        except OSError:
            return None
        return data

    def clear(self) -> None:
        for path in (self.edits_path, self.snapshot_path):
            try:
                path.unlink()
            except FileNotFoundError:
                pass
            except OSError as exc:  # the work was saved; a stale copy is only offered again
                log.warning("could not remove %s: %s", path, exc)
        with contextlib.suppress(OSError):
            self.folder.rmdir()


# ============================================================================ the session
def find_results_file(path: Path) -> Path | None:
    """``path``'s results.h5 if ``path`` is a results folder or a minidet results file."""
    if path.is_dir():
        candidate = path / writers.RESULTS_H5
        return candidate if candidate.is_file() else None
    if path.suffix.lower() in (".h5", ".hdf5") and path.is_file():
        import h5py

        try:
            with h5py.File(path, "r") as h5:
                if h5.attrs.get("format") == writers.FORMAT_NAME:
                    return path
        except OSError:
            return None
    return None


def stored_reader_options(stored: Any) -> dict[str, Any]:
    """The reader options a stored result was read with (exact when the app wrote it)."""
    rec = stored.recording
    meta = rec.get("metadata") or {}
    if isinstance(meta.get("reader_options"), dict):
        return dict(meta["reader_options"])
    options: dict[str, Any] = {}
    if rec.get("channel"):
        options["channel"] = rec["channel"]
    if meta.get("sweeps") is not None:
        options["sweeps"] = [int(s) for s in meta["sweeps"]]
    if meta.get("skip_start_s"):
        options["skip_start_s"] = float(meta["skip_start_s"])
    if meta.get("scale") is not None:
        options["scale"] = float(meta["scale"])
        options["unit"] = rec.get("unit")
    return options


class AnalysisSession:
    """Everything the analysis app holds between requests.

    Parameters
    ----------
    roots
        The folders the person opened: every path a request names must lie inside one.
    out_dir
        Default parent of results folders (``<out_dir>/<recording name>``).
    state_dir
        Where unsaved work is kept (:func:`default_state_dir`).
    """

    def __init__(self, roots: Iterable[str | os.PathLike[str]], out_dir: str | os.PathLike[str] | None = None,
                 state_dir: str | os.PathLike[str] | None = None) -> None:
        self.roots = [Path(r).resolve() for r in roots]
        if not self.roots:
            raise ParameterError("the analysis app needs at least one folder to open files from")
        self.out_dir = Path(out_dir).resolve() if out_dir else self.roots[0] / "minidet-results"
        self.state_dir = Path(state_dir) if state_dir else default_state_dir()
        self.allowed_path: Callable[[str | Path], Path] = WebApp("analysis", allowed_roots=self.roots).allowed_path
        self._lock = threading.RLock()
        self.job = Job()
        self._thread: threading.Thread | None = None
        self.result_id = 0  # tells the page when the result (not only its exclusions) changed
        self._reset()

    # ------------------------------------------------------------------ state
    def _reset(self) -> None:
        self.source: Path | None = None
        self.reader: dict[str, Any] = {}
        self.original: Recording | None = None
        self.recording: Recording | None = None
        self.steps: list[dict[str, Any]] = []
        self.envelope: Envelope | None = None
        self.decimals = 6
        self.result: Any = None
        self.prediction_envelope: Envelope | None = None
        self.history: list[tuple[np.ndarray, np.ndarray]] = []
        self.unsaved = 0  # edits since the last save
        self.analysis_saved = True  # False after an analysis until it is saved
        self.saved_to: Path | None = None
        self.opened_from: Path | None = None
        self.journal: Journal | None = None
        self.offer: dict[str, Any] | None = None
        self.saved_results: dict[str, Any] | None = None  # results folder found for this recording
        self.result_origin: str | None = None  # "analysis" | "results" | "recovered"
        self.generation = 0
        self.snapshot_current = False

    def _require_recording(self) -> Recording:
        if self.recording is None:
            raise HTTPError(409, "open a recording first")
        return self.recording

    def _require_result(self) -> Any:
        if self.result is None:
            raise HTTPError(409, "analyze the recording first")
        return self.result

    def _require_idle(self) -> None:
        if self.job.state == "running":
            raise HTTPError(409, "an analysis is running; wait for it or cancel it")

    def state(self) -> dict[str, Any]:
        """What the page needs to draw itself after a (re)load."""
        with self._lock:
            rec = self.recording
            result = self.result
            out: dict[str, Any] = {
                "open": rec is not None,
                "roots": [str(r) for r in self.roots],
                "job": self.job.to_dict(),
                "steps": self.steps,
                "reader": self.reader,
                "offer": self.offer,
                "saved_results": self.saved_results,
                "unsaved": self.unsaved,
                "dirty": result is not None and (self.unsaved > 0 or not self.analysis_saved),
                "can_undo": bool(self.history),
                "saved_to": str(self.saved_to) if self.saved_to else None,
                "out_dir": str(self.default_out()) if rec is not None else str(self.out_dir),
                "recording": None,
                "result": None,
            }
            if rec is not None:
                info = writers.recording_info(rec)
                info.pop("metadata", None)
                info["sweep_starts"] = info["sweep_starts"][:1000]
                info["source"] = str(self.source)
                info["original_duration_s"] = self.original.duration_s if self.original is not None else None
                out["recording"] = info
            if result is not None:
                out["result"] = {
                    "id": self.result_id,
                    "n_events": int(len(result.events_all)),
                    "n_kept": int(result.count),
                    "settings": result.settings.to_dict(),
                    "model": writers.jsonable(result.model_metadata),
                    "method": (result.info or {}).get("method", "miniml"),
                    # the threshold was chosen for the recording: Analyze should choose it again
                    "threshold_auto": bool((result.info or {}).get("auto_threshold")),
                    "has_prediction": result.prediction is not None,
                    "opened_from": str(self.opened_from) if self.opened_from else None,
                    "origin": self.result_origin,
                    "charge_unit": writers.charge_unit(rec.unit) if rec is not None else "",
                }
            return out

    def default_out(self) -> Path:
        if self.saved_to is not None:
            return self.saved_to
        if self.opened_from is not None:
            return self.opened_from
        name = writers.recording_name(self.original) if self.original is not None else "recording"
        return self.out_dir / name

    # ------------------------------------------------------------------ files
    def list_files(self, folder: str | None) -> dict[str, Any]:
        """Folders, recordings and results folders in ``folder`` (one of the opened folders)."""
        if not folder:
            return {"folder": None, "parent": None,
                    "entries": [{"name": str(r), "path": str(r), "kind": "folder"} for r in self.roots]}
        path = self.allowed_path(folder)
        if not path.is_dir():
            raise HTTPError(404, f"{folder} is not a folder")
        entries = []
        try:
            children = sorted(path.iterdir(), key=lambda p: (not p.is_dir(), p.name.lower()))
        except OSError as exc:
            raise HTTPError(403, f"cannot list {path}: {exc.strerror or exc}") from None
        for child in children:
            if child.name.startswith("."):
                continue
            if child.is_dir():
                kind = "results" if (child / writers.RESULTS_H5).is_file() else "folder"
            elif child.suffix.lower() in RECORDING_EXTENSIONS:
                kind = "results" if child.name == writers.RESULTS_H5 else "recording"
            else:
                continue
            entry = {"name": child.name, "path": str(child), "kind": kind}
            if child.is_file():
                entry["size"] = child.stat().st_size
            entries.append(entry)
        parent = path.parent if any(path != r and r in path.parents for r in self.roots) else None
        return {"folder": str(path), "parent": str(parent) if parent else None, "entries": entries}

    def describe(self, path: str, options: Any) -> dict[str, Any]:
        from ..io import describe

        target = self.allowed_path(path)
        return describe(target, **reader_options(options)).to_dict()

    # ------------------------------------------------------------------ opening
    def open(self, path: str | Path, options: Any = None) -> dict[str, Any]:
        """Open a recording (with reader options) or a results folder / results.h5."""
        target = self.allowed_path(path)
        if not target.exists():
            raise HTTPError(404, f"no such file or folder: {target}")
        with self._lock:
            self._require_idle()
            results_file = find_results_file(target)
            if results_file is not None:
                self._open_results(results_file)
            elif target.is_dir():
                raise HTTPError(400, f"{target} is a folder without results.h5; pick a recording or a results folder")
            else:
                self._open_recording(target, reader_options(options), steps=[])
            return self.state()

    def _load(self, source: Path, reader: dict[str, Any], steps: list[dict[str, Any]]) -> tuple[Recording, Recording]:
        from ..io import load

        try:
            original = load(source, **reader)
        except TypeError as exc:  # unknown reader option
            raise ParameterError(str(exc)) from None
        metadata = dict(original.metadata)
        metadata["reader_options"] = reader
        original = dataclasses.replace(original, metadata=metadata)
        return original, preprocess.apply_steps(original, steps)

    def _install(self, source: Path, reader: dict[str, Any], original: Recording, processed: Recording,
                 steps: list[dict[str, Any]]) -> None:
        self._reset()
        self.source, self.reader, self.original, self.steps = source, reader, original, list(steps)
        self._set_recording(processed)
        self.journal = Journal(self.state_dir, source, reader)
        self.offer = self._offer()
        self.saved_results = self._find_saved_results()

    def _set_recording(self, processed: Recording) -> None:
        self.recording = processed
        self.envelope = Envelope(processed.samples)
        top = self.envelope.slice(0, processed.n_samples, 64)
        span = float(np.max(top.hi) - np.min(top.lo)) if top.lo.size else 0.0
        self.decimals = _decimals(span)
        self.generation += 1

    def _open_recording(self, source: Path, reader: dict[str, Any], steps: list[dict[str, Any]]) -> None:
        original, processed = self._load(source, reader, steps)
        self._install(source, reader, original, processed, steps)

    def _open_results(self, results_file: Path) -> None:
        stored = writers.read_results(results_file)
        source_name = stored.recording.get("source")
        if not source_name:
            raise HTTPError(400, f"{results_file} does not say which recording it comes from")
        try:
            source = self.allowed_path(source_name)
        except HTTPError:
            raise HTTPError(403, f"the recording of these results, {source_name}, is outside the folders opened "
                                 "in this session; start minidet app with --root pointing at its folder") from None
        if not source.is_file():
            raise HTTPError(404, f"the recording of these results, {source}, is not there any more")
        reader = stored_reader_options(stored)
        steps = list((stored.recording.get("metadata") or {}).get("preprocessing") or [])
        original, processed = self._load(source, reader, steps)
        self._install(source, reader, original, processed, steps)
        self._adopt(stored, excluded=None)
        self.result_origin = "results"
        self.opened_from = results_file.parent
        self.saved_to = results_file.parent
        self.saved_results = None

    def _adopt(self, stored: Any, excluded: Iterable[int] | None) -> None:
        """Make a stored result (read from results.h5) the current one, on the current recording."""
        from ..detection.pipeline import EVENT_COLUMNS, DetectionResult, DetectSettings

        rec = self._require_recording()
        n_stored = stored.recording.get("n_samples")
        if n_stored is not None and int(n_stored) != rec.n_samples:
            raise HTTPError(409, f"the stored result was made on {n_stored} samples but the recording now has "
                                 f"{rec.n_samples} (changed file, reader options or pre-processing?)")
        names = DetectSettings.field_names()
        settings = DetectSettings(**{k: v for k, v in stored.settings.items() if k in names})
        events = stored.events.reset_index(drop=True)
        events = events[[c for c in EVENT_COLUMNS if c in events.columns]].copy()
        if excluded is not None:
            flags = np.zeros(len(events), bool)
            idx = np.asarray(list(excluded), dtype=np.int64)
            flags[idx[(idx >= 0) & (idx < len(events))]] = True
            events["excluded"] = flags
        prediction = stored.prediction
        if prediction is not None and prediction.size > rec.n_samples:
            prediction = None
        name = stored.model.get("name")
        method = name if name in _classic_names() else "miniml"
        result = DetectionResult(recording=rec, settings=settings, model_metadata=dict(stored.model),
                                 prediction=prediction, events_all=events,
                                 info={**dict(getattr(stored, "info", None) or {}), "method": method})
        self._set_result(result)

    def _set_result(self, result: Any) -> None:
        self.result = result
        self.result_id += 1
        self.prediction_envelope = Envelope(result.prediction) if result.prediction is not None else None
        if self.prediction_envelope is not None:
            self.prediction_envelope.levels()  # one pass now, so that panning never waits for it
        self.history = []
        self.unsaved = 0
        self.snapshot_current = False  # the recovery folder does not hold this result yet

    def _results_candidates(self) -> list[Path]:
        """Where results of the open recording may be: where the app last saved them, the
        app's default folder for it, and ``minidet-results/<name>`` next to the recording and
        in the current folder (where ``minidet detect`` writes without ``--out``)."""
        name = writers.recording_name(self.original)
        remembered = self.journal.saved_folder() if self.journal is not None else None
        out = ([remembered] if remembered is not None else []) + [self.out_dir / name]
        if self.source is not None:
            out.append(self.source.parent / "minidet-results" / name)
        out.append(Path.cwd() / "minidet-results" / name)
        unique: list[Path] = []
        for p in out:
            if p.resolve() not in unique:
                unique.append(p.resolve())
        return unique

    def _find_saved_results(self) -> dict[str, Any] | None:
        """The saved results of the open recording (same file, same reader options), if any.

        Results written by the app record the reader options exactly; for those of
        ``minidet detect`` only the file is compared (opening them reads the recording with
        the options they record).
        """
        if self.source is None:
            return None
        for folder in self._results_candidates():
            try:
                folder = self.allowed_path(folder)
            except HTTPError:
                continue
            results_file = find_results_file(folder)
            if results_file is None:
                continue
            try:
                stored = writers.read_results(results_file, load_prediction=False)
                source = stored.recording.get("source")
                if not source or Path(source).resolve() != self.source.resolve():
                    continue
                meta = stored.recording.get("metadata") or {}
                if isinstance(meta.get("reader_options"), dict) and meta["reader_options"] != self.reader:
                    continue
                mtime = results_file.stat().st_mtime
            except (MinidetError, OSError, KeyError, ValueError) as exc:
                log.info("not offering %s: %s", results_file, exc)
                continue
            excluded = stored.events["excluded"].to_numpy(bool) if "excluded" in stored.events else np.zeros(0, bool)
            return {
                "folder": str(results_file.parent),
                "updated": datetime.fromtimestamp(mtime, timezone.utc).isoformat(timespec="seconds"),
                "n_events": int(len(stored.events)),
                "n_kept": int(len(stored.events) - excluded.sum()),
                "model": stored.settings.get("model") or stored.model.get("name"),
                "steps": list(meta.get("preprocessing") or []),
            }
        return None

    def _offer(self) -> dict[str, Any] | None:
        data = self.journal.read() if self.journal is not None else None
        if data is None:
            return None
        return {
            "updated": data.get("updated"),
            "n_events": data.get("n_events"),
            "n_excluded": len(data.get("excluded") or []),
            "steps": data.get("steps") or [],
            "model": (data.get("settings") or {}).get("model"),
        }

    # ------------------------------------------------------------------ recovery
    def restore_offer(self) -> dict[str, Any]:
        """Bring back the unsaved work kept for this recording."""
        with self._lock:
            self._require_idle()
            journal = self.journal
            data = journal.read() if journal is not None else None
            if data is None or self.source is None:
                raise HTTPError(409, "there is no kept work for this recording")
            steps = list(data.get("steps") or [])
            if steps != self.steps:
                processed = preprocess.apply_steps(self.original, steps)
                self.steps = steps
                self._set_recording(processed)
            stored = writers.read_results(journal.snapshot_path)
            self._adopt(stored, excluded=data.get("excluded") or [])
            self.result_origin = "recovered"
            self.snapshot_current = True
            self.analysis_saved = False
            self.unsaved = len(data.get("excluded") or [])
            self.offer = None
            return self.state()

    def discard_offer(self) -> dict[str, Any]:
        with self._lock:
            if self.journal is not None and self.offer is not None:
                self.journal.clear()
            self.offer = None
            return self.state()

    def _journal_edits(self) -> None:
        """Keep the current exclusions in the recovery folder (with the result, the first time)."""
        if self.journal is None or self.result is None:
            return
        try:
            if self.snapshot_current:
                self.journal.write_edits(self.result, self.steps, saved_to=None)
            else:
                self.journal.write_snapshot(self.result, self.steps)
                self.snapshot_current = True
            self.offer = None
        except OSError as exc:  # the edit itself stands; say so in the log
            log.warning("could not keep the edit in %s: %s", self.journal.folder, exc)

    # ------------------------------------------------------------------ pre-processing
    def set_steps(self, steps: Any, discard: bool = False) -> dict[str, Any]:
        """Replace the pre-processing steps (applied to the recording as read, in order)."""
        if not isinstance(steps, list):
            raise ParameterError("steps must be a list of {step: name, ...} objects")
        with self._lock:
            self._require_idle()
            if self.original is None:
                raise HTTPError(409, "open a recording first")
            if self.state()["dirty"] and not discard:
                raise HTTPError(409, "changing the pre-processing discards the analysis and its unsaved edits; "
                                     "save first or confirm")
            processed = preprocess.apply_steps(self.original, steps)
            self.steps = [dict(s) for s in processed.metadata.get(preprocess.METADATA_KEY, [])]
            self._set_recording(processed)
            self.result = None
            self.result_origin = None
            self.prediction_envelope = None
            self.history = []
            self.unsaved = 0
            self.analysis_saved = True
            self.opened_from = None
            self.saved_to = None
            return self.state()

    # ------------------------------------------------------------------ the trace
    def _slice_dict(self, piece: EnvelopeSlice, decimals: int) -> dict[str, Any]:
        out: dict[str, Any] = {"x0": piece.x0, "bin": piece.bin_width, "lo": _rounded(piece.lo, decimals)}
        if not piece.full_resolution:
            out["hi"] = _rounded(piece.hi, decimals)
        return out

    def trace(self, start: int, stop: int, pixels: int) -> dict[str, Any]:
        """Min/max envelope (or samples) of the trace and the prediction in ``[start, stop)``."""
        with self._lock:
            rec = self._require_recording()
            envelope, prediction, decimals = self.envelope, self.prediction_envelope, self.decimals
        if not 1 <= pixels <= MAX_PIXELS:
            raise ParameterError(f"pixels must be from 1 to {MAX_PIXELS}, got {pixels}")
        if stop <= start:
            raise ParameterError(f"stop must be after start, got {start}-{stop}")
        start, stop = max(0, start), min(rec.n_samples, stop)
        out = {"start": start, "stop": stop, "trace": self._slice_dict(envelope.slice(start, stop, pixels), decimals)}
        if prediction is not None and start < prediction.n:
            out["prediction"] = self._slice_dict(prediction.slice(start, min(stop, prediction.n), pixels), 4)
        return out

    # ------------------------------------------------------------------ analysis
    def analyze(self, model: Any = DEFAULT_MODEL, settings: Any = None, method: str = "miniml") -> dict[str, Any]:
        """Start ``detect`` on the current recording in a background thread."""
        from ..classic import METHODS
        from ..detection.pipeline import DetectSettings

        if method != "miniml" and method not in METHODS:
            raise ParameterError(f"method must be 'miniml' or one of {', '.join(sorted(METHODS))}, got {method!r}")
        if not isinstance(model, str) or not model.strip():
            raise ParameterError(f"model must be a bundled model name or a model file, got {model!r}")
        model = model.strip()
        overrides = detect_overrides(settings)
        if method == "miniml":
            from ..model.zoo import is_model_name

            if not is_model_name(model):
                model = str(self.allowed_path(model))
        DetectSettings(model=model, **overrides)  # report bad values now, not from the thread
        with self._lock:
            self._require_idle()
            rec = self._require_recording()
            self.job = job = Job(state="running", stage="loading the model" if method == "miniml" else method,
                                 started=time.monotonic())
            generation = self.generation
            self._thread = threading.Thread(target=self._run, args=(job, rec, generation, model, overrides, method),
                                            name="minidet-analysis", daemon=True)
            self._thread.start()
            return job.to_dict()

    def _run(self, job: Job, rec: Recording, generation: int, model: str, overrides: dict[str, Any],
             method: str) -> None:
        from ..detection.pipeline import detect

        try:
            with _prediction_progress(job):
                if method == "miniml":
                    result = detect(rec, model, progress=True, **overrides)
                else:
                    result = detect(rec, method=method, **overrides)
                    result = dataclasses.replace(result, info={**result.info, "method": method})
            if job.cancel.is_set():
                raise AnalysisCancelled()
            job.stage = "keeping a recovery copy"
            with self._lock:
                if generation != self.generation:
                    raise AnalysisCancelled()
                self._set_result(result)
                self.result_origin = "analysis"
                self.analysis_saved = False
                self.opened_from = None
                self.saved_to = None
                self.offer = None
                self._journal_edits()
                job.stage = f"{result.count} events"
                job.state = "done"
        except AnalysisCancelled:
            job.state, job.stage = "cancelled", "cancelled"
        except MinidetError as exc:
            job.state, job.message = "error", str(exc)
        except Exception as exc:  # a bug: report it on the page, keep the server alive
            log.exception("analysis failed")
            job.state, job.message = "error", f"internal error: {exc}"
        finally:
            job.finished = time.monotonic()

    def cancel(self) -> dict[str, Any]:
        self.job.cancel.set()
        return self.job.to_dict()

    def wait(self, timeout: float | None = None) -> dict[str, Any]:
        """Block until the running analysis ends (for tests and scripts)."""
        thread = self._thread
        if thread is not None:
            thread.join(timeout)
        return self.job.to_dict()

    # ------------------------------------------------------------------ events
    def events(self) -> dict[str, Any]:
        """Every event (kept and excluded) as columns, index = event number."""
        with self._lock:
            result = self._require_result()
        table = result.events_all
        rec = result.recording
        cols = ("sample", "time_s", "amplitude", "rise_time_s", "half_decay_s", "charge", "score",
                "onset_sample", "peak_sample", "excluded", "overlapping")
        out: dict[str, Any] = {"n": len(table), "unit": rec.unit, "charge_unit": writers.charge_unit(rec.unit)}
        for col in cols:
            values = table[col].to_numpy()
            if values.dtype.kind == "f":
                values = _rounded(values, 9 if col.endswith("_s") or col == "charge" else 5)
            out[col] = values
        return out

    def set_excluded(self, indices: Any, excluded: bool) -> dict[str, Any]:
        """Exclude (``excluded=True``) or restore events by number; journaled at once."""
        if not isinstance(indices, list) or not all(isinstance(i, int) and not isinstance(i, bool) for i in indices):
            raise ParameterError(f"indices must be a list of event numbers, got {indices!r}")
        with self._lock:
            self._require_idle()
            result = self._require_result()
            before = result.events_all["excluded"].to_numpy(bool)
            idx = np.asarray(indices, dtype=np.int64)
            new = result.exclude(idx) if excluded else result.restore(idx)
            changed = idx[before[idx] != bool(excluded)] if idx.size else idx
            if changed.size:
                self.history.append((changed, before[changed].copy()))
                self.result = new
                self.unsaved += 1
                self._journal_edits()
            return self._edit_answer(changed)

    def undo(self) -> dict[str, Any]:
        with self._lock:
            self._require_idle()
            result = self._require_result()
            if not self.history:
                raise HTTPError(409, "nothing to undo")
            idx, previous = self.history.pop()
            result = result.exclude(idx[previous]) if previous.any() else result
            result = result.restore(idx[~previous]) if (~previous).any() else result
            self.result = result
            self.unsaved = max(0, self.unsaved - 1)
            self._journal_edits()
            return self._edit_answer(idx)

    def _edit_answer(self, changed: np.ndarray) -> dict[str, Any]:
        excluded = self.result.events_all["excluded"].to_numpy(bool)
        return {
            "changed": changed.tolist(),
            "excluded": excluded[changed].tolist(),
            "n_kept": int(self.result.count),
            "unsaved": self.unsaved,
            "dirty": True,
            "can_undo": bool(self.history),
        }

    def event_detail(self, index: int) -> dict[str, Any]:
        """One event's raw and analysis-filtered trace with baseline, onset, peak and half decay."""
        from ..filters import analysis_filter, filter_range

        with self._lock:
            result = self._require_result()
        table = result.events_all
        if not 0 <= index < len(table):
            raise HTTPError(404, f"event {index} does not exist (0-{len(table) - 1})")
        row = table.iloc[index]
        rec, settings = result.recording, result.settings
        fs = rec.sampling_rate
        w = int(settings.window_size)
        pos = int(row["sample"])
        a, b = max(0, pos - w // 3), min(rec.n_samples, pos + w + w // 3)
        hann = int(settings.convolve_win)
        cutoff = None if hann > 1 else fs / float(settings.filter_factor)
        margin = 2 * hann + 2 if hann > 1 else int(math.ceil(40 * fs / cutoff)) + 32
        filtered = filter_range(rec.samples, a, b, lambda x: analysis_filter(x, hann_size=hann, cutoff_hz=cutoff,
                                                                             sampling_rate=fs), margin)
        raw = rec.samples[a:b]
        step = max(1, int(math.ceil((b - a) / VIEWER_POINTS)))
        t_ms = (np.arange(a, b, step) - pos) / fs * 1e3
        baseline, amplitude = float(row["baseline"]), float(row["amplitude"])

        def ms(sample: float) -> float | None:
            return None if not math.isfinite(sample) or sample < 0 else (sample - pos) / fs * 1e3

        peak_t = ms(float(row["peak_sample"]))
        half = float(row["half_decay_s"])
        neighbours = table["sample"].to_numpy()
        near = np.flatnonzero((neighbours >= a) & (neighbours < b) & (np.arange(len(table)) != index))
        return {
            "index": index,
            "t_ms": _rounded(t_ms, 4),
            "raw": _rounded(raw[::step], self.decimals),
            "filtered": _rounded(filtered[::step], self.decimals),
            "unit": rec.unit,
            "time_s": float(row["time_s"]),
            "excluded": bool(row["excluded"]),
            "overlapping": bool(row["overlapping"]),
            "score": float(row["score"]),
            "measures": {k: writers.jsonable(row[k]) for k in ("amplitude", "rise_time_s", "half_decay_s",
                                                                "half_width_s", "charge")},
            "markers": {
                "baseline": baseline,
                "position_ms": 0.0,
                "onset_ms": ms(float(row["onset_sample"])),
                "peak_ms": peak_t,
                "peak": baseline + amplitude,
                "half_decay_ms": peak_t + half * 1e3 if peak_t is not None and math.isfinite(half) else None,
                "half": baseline + amplitude / 2,
            },
            "neighbours_ms": [((int(neighbours[j]) - pos) / fs * 1e3) for j in near],
        }

    def stats(self) -> dict[str, Any]:
        """Summary statistics, the average event with its decay fit, histograms and cumulative
        distributions (amplitude, inter-event interval) of the kept events."""
        from ..detection.locate import direction_sign
        from ..measure.summary import fit_decay

        with self._lock:
            result = self._require_result()
        rec = result.recording
        summary = dict(result.summary)
        kept = result.events
        t, avg = result.average_event() if len(kept) else (np.zeros(0), np.zeros(0))
        columns = {col: kept[col].to_numpy(np.float64) for col, *_ in _HISTOGRAMS if col in kept.columns}
        times = np.sort(kept["time_s"].to_numpy(np.float64))
        columns["interval_s"] = np.diff(times)
        histograms = []
        for col, label, factor, unit in _HISTOGRAMS:
            values = columns.get(col, np.zeros(0)) * factor
            values = values[np.isfinite(values)]
            unit = rec.unit if unit == "" and col == "amplitude" else writers.charge_unit(rec.unit) if unit == "charge" else unit
            if values.size:
                bins = int(min(40, max(5, math.ceil(math.sqrt(values.size)))))
                lo, hi = float(values.min()), float(values.max())
                if hi <= lo:
                    lo, hi = lo - 0.5 * (abs(lo) or 1), hi + 0.5 * (abs(hi) or 1)
                counts, edges = np.histogram(values, bins=bins, range=(lo, hi))
            else:
                counts, edges = np.zeros(0, np.int64), np.zeros(0)
            histograms.append({"column": col, "label": label, "unit": unit, "counts": counts,
                               "edges": _rounded(edges, 9), "n": int(values.size)})
        average: dict[str, Any] = {"t_ms": _rounded(np.asarray(t) * 1e3, 4), "y": _rounded(avg, self.decimals),
                                   "fit": None}
        fit = fit_decay(avg, rec.sampling_rate, result.settings.window_size, int(summary.get("n_average") or 0),
                        direction_sign(result.settings.event_direction)) if len(kept) else None
        if fit is not None and fit.tau_s > 0:  # the fit behind summary's tau_decay_s
            average["fit"] = {"t_ms": _rounded(np.asarray(t)[fit.start:] * 1e3, 4),
                              "y": _rounded(fit.curve(avg.size, rec.sampling_rate), self.decimals),
                              "tau_ms": fit.tau_s * 1e3}
        cumulative = []
        for col, label, factor, unit in _CUMULATIVE:
            values = np.sort(columns.get(col, np.zeros(0)) * factor)
            values = values[np.isfinite(values)]
            n = int(values.size)
            fraction = np.arange(1, n + 1) / max(1, n)
            if values.size > CUMULATIVE_POINTS:  # evenly spaced in rank, the last one kept
                pick = np.unique(np.linspace(0, values.size - 1, CUMULATIVE_POINTS).round().astype(np.int64))
                values, fraction = values[pick], fraction[pick]
            cumulative.append({"column": col, "label": label, "unit": rec.unit if unit == "" else unit,
                               "values": _rounded(values, 9), "fraction": _rounded(fraction, 6),
                               "n": n})
        return {
            "summary": writers.jsonable(summary),
            "n_kept": int(result.count),
            "n_events": int(len(result.events_all)),
            "unit": rec.unit,
            "charge_unit": writers.charge_unit(rec.unit),
            "average": average,
            "histograms": histograms,
            "cumulative": cumulative,
        }

    # ------------------------------------------------------------------ saving
    def save(self, folder: str | None = None, force: bool = False, plots: bool = False) -> dict[str, Any]:
        """Write the result files into ``folder`` (inside the opened folders), atomically."""
        from .. import report

        with self._lock:
            self._require_idle()
            result = self._require_result()
            target = self.allowed_path(folder) if folder else self.allowed_path(self.default_out())
            own = target in (self.saved_to, self.opened_from)
            report.prepare_output_dir(target, report.output_files(plots=plots), force=force or own)
            written = report.write_results(result, target, plots=plots, save_prediction=result.prediction is not None)
            self.saved_to = target
            self.saved_results = None
            self.unsaved = 0
            self.analysis_saved = True
            if self.journal is not None:
                self.journal.clear()
                self.journal.remember_saved(target)
                self.snapshot_current = False
            out = self.state()
            out["written"] = sorted(written)
            out["folder"] = str(target)
            return out

    # ------------------------------------------------------------------ window size
    def suggest_window(self, positions: Any = None, direction: str | None = None,
                       span_samples: Any = None) -> dict[str, Any]:
        """The window-size helper (:func:`minidet.train.window.suggest_window`).

        With ``positions`` (samples the person clicked on events) the kinetics are estimated
        from the stretches around them only: ``span_samples`` either side (the page sends
        half its visible span), at least 0.25 s and at most 2.5 s, which leaves the template
        ladder room for decay time constants up to 1/40 of a stretch. Without, from the
        first minute of the recording.
        """
        from ..train.window import suggest_window

        with self._lock:
            rec = self._require_recording()
            result = self.result
        if direction is None:
            direction = result.settings.event_direction if result is not None else "negative"
        if direction not in ("negative", "positive"):
            raise ParameterError(f"direction must be 'negative' or 'positive', got {direction!r}")
        fs = rec.sampling_rate
        offsets = None
        if positions:
            if not isinstance(positions, list) or not all(isinstance(p, (int, float)) and not isinstance(p, bool)
                                                          for p in positions):
                raise ParameterError("positions must be a list of sample numbers")
            pos = np.unique(np.clip(np.asarray(positions, dtype=np.int64), 0, rec.n_samples - 1))
            try:
                span = float(span_samples) if span_samples is not None else 0.0
            except (TypeError, ValueError):
                raise ParameterError(f"span_samples must be a number, got {span_samples!r}") from None
            half = int(min(2.5 * fs, max(span, 0.25 * fs)))
            stretches: list[list[int]] = []
            for p in pos:
                a, b = max(0, int(p) - half), min(rec.n_samples, int(p) + half)
                if stretches and a <= stretches[-1][1]:
                    stretches[-1][1] = max(stretches[-1][1], b)
                else:
                    stretches.append([a, b])
            pieces = [rec.samples[a:b] for a, b in stretches]
            starts = np.cumsum([0] + [p.size for p in pieces[:-1]])
            sub = Recording(np.concatenate(pieces), fs, unit=rec.unit, source=rec.source, sweep_starts=starts)
            offsets = (starts, np.asarray([a for a, _ in stretches]))
            suggestion = suggest_window(sub, direction=direction, min_events=int(min(5, max(2, pos.size))),
                                        max_duration_s=None)
        else:
            suggestion = suggest_window(rec, direction=direction)
        k = suggestion.kinetics
        examples = np.asarray(k.examples, dtype=np.int64)
        if offsets is not None and examples.size:
            starts, origins = offsets
            which = np.searchsorted(starts, examples, side="right") - 1
            examples = examples - starts[which] + origins[which]
        t_ms = (np.arange(k.average.size) - k.onset) / fs * 1e3
        rise, decay = k.rise_s * fs, k.decay_s * fs
        tt = np.arange(k.average.size) - k.onset
        fit = np.where(tt >= 0, (1 - np.exp(-np.maximum(tt, 0) / rise)) * np.exp(-np.maximum(tt, 0) / decay), 0.0)
        fit = fit / fit.max() * k.amplitude if fit.max() > 0 else fit
        out = suggestion.to_dict()
        out.update({
            "text": suggestion.to_text(rec.unit),
            "from_selection": offsets is not None,
            "examples": examples[:50],
            "average": {"t_ms": _rounded(t_ms, 4), "y": _rounded(k.average, self.decimals),
                        "fit": _rounded(fit, self.decimals)},
            "window_start_ms": -suggestion.onset_in_window / fs * 1e3,
            "window_stop_ms": (suggestion.window_size - suggestion.onset_in_window) / fs * 1e3,
            "unit": rec.unit,
        })
        return out

    def close(self) -> None:
        """Stop a running analysis (unsaved work stays in the recovery folder)."""
        self.job.cancel.set()


def _classic_names() -> set[str]:
    from ..classic import METHODS

    return set(METHODS)


def models() -> list[dict[str, Any]]:
    """The bundled models and their defaults, for the settings panel."""
    from ..model.zoo import list_models

    keys = ("name", "window_size", "threshold", "stride", "training_direction", "event_direction",
            "convolve_win", "gradient_convolve_win", "smoothing_steps", "peak_prominence", "resample", "description")
    out = []
    for meta in list_models():
        d = meta.to_dict()
        if meta.auto_threshold:  # chosen per recording; the field's placeholder says so
            d["threshold"] = "auto"
        out.append({k: d.get(k) for k in keys})
    return out


# ============================================================================ the app
def build_app(session: AnalysisSession) -> WebApp:
    """The analysis app's routes (JSON API) and its static page."""
    app = WebApp("analysis", static={"/static/analysis/": STATIC_DIR}, allowed_roots=session.roots)
    session.allowed_path = app.allowed_path
    app.redirects["/"] = "/static/analysis/index.html"

    def api(method: str, pattern: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        """A route whose user errors (bad values, unreadable files) answer 400 with the message."""
        register = app.route(method, pattern)

        def decorator(fn: Callable[..., Any]) -> Callable[..., Any]:
            def handler(request: Request, **params: Any) -> Any:
                try:
                    return fn(request, **params)
                except OutputError as exc:
                    raise HTTPError(409, str(exc)) from None
                except MinidetError as exc:
                    raise HTTPError(400, str(exc)) from None
                except OSError as exc:  # an unreadable file or folder the person picked
                    raise HTTPError(400, f"{exc.strerror or exc}: {exc.filename}" if exc.filename else str(exc)) from None
            return register(handler)

        return decorator

    def query_int(request: Request, name: str, default: int | None = None) -> int:
        value = request.query.get(name)
        if value is None:
            if default is None:
                raise HTTPError(400, f"{name} is missing")
            return default
        try:
            return int(float(value))
        except ValueError:
            raise HTTPError(400, f"{name} must be a number, got {value!r}") from None

    @api("GET", "/api/state")
    def state(request: Request) -> dict[str, Any]:
        return session.state()

    @api("GET", "/api/models")
    def model_list(request: Request) -> dict[str, Any]:
        from ..classic import METHODS

        return {"models": models(), "default": DEFAULT_MODEL, "methods": ["miniml", *sorted(METHODS)]}

    @api("GET", "/api/files")
    def files(request: Request) -> dict[str, Any]:
        return session.list_files(request.query.get("folder"))

    @api("POST", "/api/describe")
    def describe(request: Request) -> dict[str, Any]:
        body = request.json()
        return session.describe(str(body.get("path", "")), body.get("reader"))

    @api("POST", "/api/open")
    def open_(request: Request) -> dict[str, Any]:
        body = request.json()
        path = body.get("path")
        if not isinstance(path, str) or not path:
            raise HTTPError(400, "send {\"path\": \"...\", \"reader\": {...}}")
        return session.open(path, body.get("reader"))

    @api("POST", "/api/preprocess")
    def preprocess_(request: Request) -> dict[str, Any]:
        body = request.json()
        return session.set_steps(body.get("steps"), discard=bool(body.get("discard")))

    @api("GET", "/api/trace")
    def trace(request: Request) -> dict[str, Any]:
        return session.trace(query_int(request, "start"), query_int(request, "stop"),
                             query_int(request, "pixels", 1000))

    @api("POST", "/api/analyze")
    def analyze(request: Request) -> dict[str, Any]:
        body = request.json()
        return session.analyze(body.get("model", DEFAULT_MODEL), body.get("settings"), str(body.get("method", "miniml")))

    @api("GET", "/api/progress")
    def progress(request: Request) -> dict[str, Any]:
        return session.job.to_dict()

    @api("POST", "/api/cancel")
    def cancel(request: Request) -> dict[str, Any]:
        return session.cancel()

    @api("GET", "/api/events")
    def events(request: Request) -> dict[str, Any]:
        return session.events()

    @api("GET", "/api/event/<int:index>")
    def event(request: Request, index: int) -> dict[str, Any]:
        return session.event_detail(index)

    @api("POST", "/api/exclude")
    def exclude(request: Request) -> dict[str, Any]:
        body = request.json()
        return session.set_excluded(body.get("indices"), bool(body.get("excluded", True)))

    @api("POST", "/api/undo")
    def undo(request: Request) -> dict[str, Any]:
        return session.undo()

    @api("GET", "/api/stats")
    def stats(request: Request) -> dict[str, Any]:
        return session.stats()

    @api("POST", "/api/save")
    def save(request: Request) -> dict[str, Any]:
        body = request.json()
        folder = body.get("folder")
        if folder is not None and not isinstance(folder, str):
            raise HTTPError(400, "folder must be a path")
        return session.save(folder or None, force=bool(body.get("force")), plots=bool(body.get("plots")))

    @api("POST", "/api/recover")
    def recover(request: Request) -> dict[str, Any]:
        action = request.json().get("action")
        if action == "restore":
            return session.restore_offer()
        if action == "discard":
            return session.discard_offer()
        raise HTTPError(400, "action must be 'restore' or 'discard'")

    @api("POST", "/api/window")
    def window(request: Request) -> dict[str, Any]:
        body = request.json()
        return session.suggest_window(body.get("positions"), body.get("direction"), body.get("span_samples"))

    @api("POST", "/api/quit")
    def quit_(request: Request) -> dict[str, Any]:
        session.close()
        app.shutdown_requested.set()
        return {"closed": True, "dirty": session.state()["dirty"]}

    return app


def roots_for(path: str | os.PathLike[str] | None, extra: Iterable[str | os.PathLike[str]] = ()) -> list[Path]:
    """The folders ``minidet app PATH --root ...`` opens: PATH's folder (PATH itself when it is a
    folder), the folder of the recording a results folder was made from, and ``extra``."""
    roots: list[Path] = []
    if path is not None:
        p = Path(path).resolve()
        roots.append(p if p.is_dir() else p.parent)
        results = find_results_file(p)
        if results is not None:
            with contextlib.suppress(MinidetError, OSError, KeyError):
                source = writers.read_results(results).recording.get("source")
                if source:
                    roots.append(Path(source).resolve().parent)
    roots += [Path(r).resolve() for r in extra]
    unique: list[Path] = []
    for r in roots:
        if r not in unique:
            unique.append(r)
    return unique
