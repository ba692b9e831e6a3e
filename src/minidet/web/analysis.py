"""The analysis app: open a recording, pre-process it, detect events, review them, save.

(About 750 lines: AnalysisSession is one state machine under one lock; what it sends lives
in views.py, its routes in analysis_app.py, its inputs in forms.py.)

:class:`AnalysisSession` is the app's state on the server: the opened recording (as read,
and after the pre-processing steps), the current :class:`~minidet.detection.pipeline.DetectionResult`
with the events removed by hand, the background analysis and its progress. The page in
``static/analysis/`` only draws what the JSON API of :func:`~minidet.web.analysis_app.build_app` sends; a closed tab
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

import dataclasses
import logging
import math
import os
import threading
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterable

import numpy as np

from .. import DEFAULT_MODEL, preprocess
from ..errors import MinidetError, ParameterError
from ..recording import Recording
from ..report import writers
from ..decimate import Envelope, EnvelopeSlice
from ..io import RECORDING_EXTENSIONS
from .server import HTTPError, WebApp

from .forms import detect_overrides, reader_options, stored_reader_options
from .jobs import AnalysisCancelled, Job, _prediction_progress
from .journal import Journal, default_state_dir
from .views import _rounded, event_payload, stats_payload, window_payload

__all__ = ["AnalysisSession", "STATIC_DIR", "default_state_dir", "find_results_file", "models"]

log = logging.getLogger(__name__)

STATIC_DIR = Path(__file__).parent / "static" / "analysis"
MAX_PIXELS = 8000


def _decimals(span: float) -> int:
    """Decimals that keep about six significant digits of values spread over ``span``."""
    if not math.isfinite(span) or span <= 0:
        return 6
    return int(min(12, max(0, 5 - math.floor(math.log10(span)))))


# ============================================================================ reader options


# ============================================================================ progress


# ============================================================================ recovery


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
        with self._lock:
            result = self._require_result()
        return event_payload(result, index, self.decimals)

    def stats(self) -> dict[str, Any]:
        """Summary statistics, the average event with its decay fit, histograms and cumulative
        distributions (amplitude, inter-event interval) of the kept events."""
        with self._lock:
            result = self._require_result()
        return stats_payload(result, self.decimals)

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
        from the stretches around them only (:func:`~minidet.train.window.suggest_window_near`;
        the page sends half its visible span as ``span_samples``). Without, from the first
        minute of the recording.
        """
        from ..train.window import suggest_window, suggest_window_near

        with self._lock:
            rec = self._require_recording()
            result = self.result
        if direction is None:
            direction = result.settings.event_direction if result is not None else "negative"
        if direction not in ("negative", "positive"):
            raise ParameterError(f"direction must be 'negative' or 'positive', got {direction!r}")
        if positions:
            if not isinstance(positions, list) or not all(isinstance(p, (int, float)) and not isinstance(p, bool)
                                                          for p in positions):
                raise ParameterError("positions must be a list of sample numbers")
            try:
                span = float(span_samples) if span_samples is not None else None
            except (TypeError, ValueError):
                raise ParameterError(f"span_samples must be a number, got {span_samples!r}") from None
            suggestion = suggest_window_near(rec, positions, direction=direction, span_samples=span)
        else:
            suggestion = suggest_window(rec, direction=direction)
        return window_payload(suggestion, rec, self.decimals, from_selection=bool(positions))

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


