"""The scoring app: a person scores training snippets one at a time in the browser.

:class:`ScoringSession` owns the dataset while it is open: it holds the lock file, keeps the
scores in memory, and makes every change durable at once: the complete scores go to a small
sidecar file, written atomically (:func:`minidet.train.dataset.write_sidecar`, a few kB), and
the HDF5 file itself is rewritten atomically half a second after the last change and when
the session ends. A killed server, a crash or a closed tab therefore lose nothing, and the
next session (or :func:`~minidet.train.dataset.read_dataset`) picks the scores and the
position up again.

:func:`build_app` puts the session behind a JSON API for the page in ``static/scoring/``.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import OrderedDict
from pathlib import Path
from typing import Any, Iterable

import numpy as np

from ..decimate import minmax_points
from ..errors import MinidetError, ParameterError
from ..train.active import ORDERS, presentation_order, review_ranks
from ..train.dataset import (
    CATEGORY_NAMES,
    Dataset,
    DatasetLock,
    read_dataset,
    write_dataset,
    write_sidecar,
)
from .server import HTTPError, Request, WebApp

__all__ = ["ScoringSession", "build_app", "STATIC_DIR"]

log = logging.getLogger(__name__)

STATIC_DIR = Path(__file__).parent / "static" / "scoring"
CONTEXT_WINDOWS = 5  # context shown: this many windows around the snippet
CONTEXT_POINTS = 3000


class ScoringSession:
    """An open dataset being scored.

    Parameters
    ----------
    path
        The dataset file (minidet's or miniML's layout).
    recordings
        Folders to look for the source recordings in (for the context view), besides the
        stored path and the dataset's folder.
    fold_delay_s
        Seconds after the last change before the HDF5 file is rewritten.
    order
        ``"extraction"``, ``"uncertainty"`` or ``"random"`` (:mod:`minidet.train.active`):
        the order to present snippets in, stored in the file; None keeps the stored order
        (extraction order for a new dataset).
    model
        With ``order="uncertainty"``: the model (bundled name or file) whose event
        probability ranks the snippets; it replaces the dataset's prescore. Without it the
        stored prescore is used.
    seed
        With ``order="random"``: the permutation's seed.

    Raises
    ------
    DatasetLockedError
        Another session holds the dataset.
    DatasetError
        The file is not a valid dataset.
    ParameterError
        An unknown order, a model without ``order="uncertainty"``, or ``"uncertainty"``
        without a model's score.
    """

    def __init__(self, path: str | os.PathLike[str], recordings: Iterable[str | os.PathLike[str]] = (),
                 fold_delay_s: float = 0.5, order: str | None = None, model: str | None = None,
                 seed: int = 0) -> None:
        if order is not None and order not in ORDERS:
            raise ParameterError(f"order must be one of {', '.join(ORDERS)}, got {order!r}")
        if model is not None and order != "uncertainty":
            raise ParameterError("a model ranks the snippets only with order 'uncertainty' (--order uncertainty)")
        self.path = Path(path).resolve()
        self.dataset: Dataset = read_dataset(self.path)  # validate before taking the lock
        self.lock = DatasetLock(self.path).acquire()
        try:
            self.dataset = read_dataset(self.path)  # again, now that nobody else writes it
            self.fingerprint = self.dataset.fingerprint()
            self.recording_dirs = [Path(p).resolve() for p in recordings]
            self.fold_delay_s = float(fold_delay_s)
            self._mutex = threading.RLock()
            self._undo: list[tuple[int, int, bool]] = []
            self._dirty = False
            self._fold_timer: threading.Timer | None = None
            self._recordings: OrderedDict[tuple[str, str], Any] = OrderedDict()
            self._closed = False
            self.stats = {"changes": 0, "sidecar_writes_s": [], "folds_s": []}
            if self.dataset.attrs.pop("_pending_sidecar", False):
                self._fold()  # scores from a session that ended without folding them in
            if order is not None:
                self._choose_order(order, model, int(seed))
            self.order = presentation_order(self.dataset)
            self._position = np.empty(self.dataset.n, dtype=np.int64)
            self._position[self.order] = np.arange(self.dataset.n)
            self._heartbeat = threading.Thread(target=self._beat, name="lock-heartbeat", daemon=True)
            self._heartbeat.start()
        except BaseException:
            self.lock.release()
            raise

    def _choose_order(self, order: str, model: str | None, seed: int) -> None:
        """Rank the snippets in ``order``, store it in the file, start at the first unscored one."""
        ds = self.dataset
        if model is not None:
            from ..train.extract import prescore

            ds.prescore = prescore(ds, model)
            ds.attrs["prescore_model"] = str(model)
        ds.review_rank = review_ranks(ds, order, seed)
        ds.attrs["score_order"] = order
        ds.attrs["score_order_seed"] = seed
        ds.attrs["score_order_model"] = str(ds.attrs.get("prescore_model", "")) if order == "uncertainty" else ""
        sequence = presentation_order(ds)
        unscored = sequence[~ds.scored[sequence]]
        ds.attrs["cursor"] = int(unscored[0]) if unscored.size else (int(sequence[0]) if ds.n else 0)
        self._fold()

    # ------------------------------------------------------------------ persistence
    def _beat(self) -> None:
        while not self._closed:
            self.lock.heartbeat()
            time.sleep(10)

    def _persist(self) -> None:
        """Make the current scores durable now (sidecar) and schedule the HDF5 rewrite."""
        t0 = time.perf_counter()
        write_sidecar(self.path, self.dataset, self.fingerprint)
        self.stats["sidecar_writes_s"].append(time.perf_counter() - t0)
        self._dirty = True
        if self._fold_timer is not None:
            self._fold_timer.cancel()
        self._fold_timer = threading.Timer(self.fold_delay_s, self._fold_if_dirty)
        self._fold_timer.daemon = True
        self._fold_timer.start()

    def _fold_if_dirty(self) -> None:
        with self._mutex:
            if self._dirty and not self._closed:
                self._fold()

    def _fold(self) -> None:
        t0 = time.perf_counter()
        write_dataset(self.path, self.dataset, force=True, lock=self.lock)
        self.stats["folds_s"].append(time.perf_counter() - t0)
        self._dirty = False

    def close(self) -> None:
        """Write pending changes into the file and release the lock."""
        with self._mutex:
            if self._closed:
                return
            if self._fold_timer is not None:
                self._fold_timer.cancel()
            try:
                if self._dirty:
                    self._fold()
            finally:
                self._closed = True
                self.lock.release()

    # ------------------------------------------------------------------ queries
    def _check_open(self) -> None:
        if self._closed:
            raise HTTPError(409, "this scoring session has ended; start minidet score again")

    def _check_index(self, index: int) -> int:
        if not 0 <= index < self.dataset.n:
            raise HTTPError(404, f"snippet {index} does not exist (0-{self.dataset.n - 1})")
        return index

    def state(self) -> dict[str, Any]:
        ds = self.dataset
        return {
            "file": str(self.path),
            "name": self.path.name,
            "n": ds.n,
            "window_size": ds.window_size,
            "cursor": ds.cursor,
            "order": self.order,
            "order_kind": str(ds.attrs.get("score_order", "extraction")),
            "order_model": str(ds.attrs.get("score_order_model", "")),
            "counts": self.counts(),
            "can_undo": bool(self._undo),
            "baseline_fraction": float(ds.attrs.get("baseline_fraction", 0.15)),
            "direction": ds.attrs.get("direction", "negative"),
            "unit": ds.attrs.get("unit", ""),
        }

    def counts(self) -> dict[str, int]:
        ds = self.dataset
        scored = ds.scored
        return {
            "event": int(np.sum(scored & (ds.scores == 1))),
            "no_event": int(np.sum(scored & (ds.scores == 0))),
            "exclude": int(np.sum(scored & (ds.scores == 2))),
            "unscored": int(np.sum(~scored)),
            "total": ds.n,
        }

    def snippet(self, index: int) -> dict[str, Any]:
        ds = self.dataset
        i = self._check_index(index)
        rate = float(ds.sampling_rate[i])
        return {
            "index": i,
            "samples": np.round(ds.events[i], 6),
            "score": int(ds.scores[i]),
            "scored": bool(ds.scored[i]),
            "category": CATEGORY_NAMES.get(int(ds.category[i]), "unknown"),
            "criterion": float(ds.criterion[i]),
            "prescore": float(ds.prescore[i]),
            "source": ds.cell_label[i],
            "channel": ds.channel[i],
            "raw_index": int(ds.raw_indices[i]),
            "sampling_rate": rate if np.isfinite(rate) else None,
        }

    def find(self, kind: str, start: int, step: int = 1) -> int | None:
        """Next snippet after ``start`` (wrapping around) in the session's order that is
        ``unscored`` or ``unclear`` (score 2)."""
        ds = self.dataset
        if kind == "unscored":
            mask = ~ds.scored
        elif kind == "unclear":
            mask = ds.scores == 2
        else:
            raise HTTPError(400, f"kind must be 'unscored' or 'unclear', got {kind!r}")
        if not mask.any():
            return None
        here = int(self._position[start]) if 0 <= start < ds.n else 0
        order = self.order[(here + step * np.arange(1, ds.n + 1)) % ds.n]
        hits = order[mask[order]]
        return int(hits[0])

    # ------------------------------------------------------------------ changes
    def set_score(self, index: int, score: int) -> dict[str, Any]:
        if score not in (0, 1, 2):
            raise HTTPError(400, f"score must be 0 (no event), 1 (event) or 2 (exclude), got {score!r}")
        with self._mutex:
            self._check_open()
            i = self._check_index(index)
            ds = self.dataset
            self._undo.append((i, int(ds.scores[i]), bool(ds.scored[i])))
            ds.scores[i] = score
            ds.scored[i] = True
            ds.attrs["cursor"] = i
            self.stats["changes"] += 1
            self._persist()
            return {"index": i, "score": score, "scored": True, "counts": self.counts(), "can_undo": True}

    def undo(self) -> dict[str, Any]:
        with self._mutex:
            self._check_open()
            if not self._undo:
                raise HTTPError(409, "nothing to undo")
            i, score, scored = self._undo.pop()
            self.dataset.scores[i] = score
            self.dataset.scored[i] = scored
            self.dataset.attrs["cursor"] = i
            self._persist()
            return {"index": i, "score": score, "scored": scored, "counts": self.counts(), "can_undo": bool(self._undo)}

    def set_cursor(self, index: int) -> dict[str, Any]:
        with self._mutex:
            self._check_open()
            i = self._check_index(index)
            if i != self.dataset.cursor:
                self.dataset.attrs["cursor"] = i
                self._persist()
            return {"cursor": i}

    # ------------------------------------------------------------------ context
    def _source_path(self, source: str) -> Path | None:
        stored = Path(source)
        candidates = [stored] if stored.is_absolute() else [self.path.parent / stored, Path.cwd() / stored]
        candidates += [folder / stored.name for folder in self.recording_dirs]
        candidates.append(self.path.parent / stored.name)
        for candidate in candidates:
            if candidate.is_file():
                return candidate
        return None

    def _recording(self, source: str, channel: str) -> Any:
        key = (source, channel)
        if key in self._recordings:
            self._recordings.move_to_end(key)
            return self._recordings[key]
        path = self._source_path(source)
        recording = None
        if path is not None:
            import json

            from ..io import load

            try:  # read as at extraction (sweeps, skip-start, scale ...), the stored channel name first
                options = json.loads(str(self.dataset.attrs.get("reader_options", "{}")))
            except ValueError:
                options = {}
            if channel:
                options["channel"] = channel
            try:
                recording = load(path, **options)
            except (MinidetError, OSError, ValueError) as exc:
                log.info("context: cannot read %s (%s)", path, exc)
                recording = exc
        self._recordings[key] = recording
        while len(self._recordings) > 3:
            self._recordings.popitem(last=False)
        return recording

    def context(self, index: int) -> dict[str, Any]:
        """The source recording around snippet ``index`` (min/max decimated), if at hand."""
        ds = self.dataset
        i = self._check_index(index)
        source, channel, start = ds.cell_label[i], ds.channel[i], int(ds.raw_indices[i])
        if not source or start < 0:
            return {"available": False, "reason": "the dataset does not say where this snippet comes from"}
        with self._mutex:
            recording = self._recording(source, channel)
        if recording is None:
            return {"available": False, "reason": f"source not found: {source} (pass --recordings FOLDER)"}
        if isinstance(recording, Exception):
            return {"available": False, "reason": f"cannot read {source}: {recording}"}
        W = ds.window_size
        x = recording.samples
        if start + W > x.size:
            return {"available": False, "reason": f"{source} is shorter than this snippet's position"}
        segment = x[start:start + W]
        n_base = max(1, W // 10)
        if not np.allclose(segment - segment[:n_base].mean(), ds.events[i], rtol=1e-4, atol=1e-6 * (np.ptp(segment) + 1)):
            return {"available": False, "reason": f"{source} does not hold this snippet at sample {start} "
                                                  "(read with other options at extraction?)"}
        half = (CONTEXT_WINDOWS * W) // 2
        a = max(0, start + W // 2 - half)
        b = min(x.size, a + CONTEXT_WINDOWS * W)
        a = max(0, b - CONTEXT_WINDOWS * W)
        idx, values = minmax_points(x[a:b], CONTEXT_POINTS)
        return {
            "available": True,
            "start": a,
            "x": (idx + a),
            "y": np.round(values, 6),
            "window_start": start,
            "window_stop": start + W,
            "sampling_rate": recording.sampling_rate,
            "unit": recording.unit,
        }


def build_app(session: ScoringSession) -> WebApp:
    """The scoring app's routes (JSON API) and its static page."""
    app = WebApp("scoring", static={"/static/scoring/": STATIC_DIR}, allowed_roots=[session.path.parent])
    app.redirects["/"] = "/static/scoring/index.html"

    @app.route("GET", "/api/state")
    def state(request: Request) -> dict[str, Any]:
        return session.state()

    @app.route("GET", "/api/snippet/<int:index>")
    def snippet(request: Request, index: int) -> dict[str, Any]:
        return session.snippet(index)

    @app.route("GET", "/api/context/<int:index>")
    def context(request: Request, index: int) -> dict[str, Any]:
        return session.context(index)

    @app.route("GET", "/api/find/<str:kind>")
    def find(request: Request, kind: str) -> dict[str, Any]:
        try:
            start = int(request.query.get("from", session.dataset.cursor))
        except ValueError:
            raise HTTPError(400, "from must be a snippet index") from None
        step = -1 if request.query.get("direction") == "back" else 1
        return {"index": session.find(kind, start, step)}

    @app.route("POST", "/api/score")
    def score(request: Request) -> dict[str, Any]:
        body = request.json()
        index, value = body.get("index"), body.get("score")
        if not isinstance(index, int) or not isinstance(value, int) or isinstance(value, bool):
            raise HTTPError(400, "send {\"index\": int, \"score\": 0|1|2}")
        return session.set_score(index, value)

    @app.route("POST", "/api/undo")
    def undo(request: Request) -> dict[str, Any]:
        return session.undo()

    @app.route("POST", "/api/cursor")
    def cursor(request: Request) -> dict[str, Any]:
        index = request.json().get("index")
        if not isinstance(index, int):
            raise HTTPError(400, "send {\"index\": int}")
        return session.set_cursor(index)

    @app.route("POST", "/api/quit")
    def quit_(request: Request) -> dict[str, Any]:
        session.close()
        app.shutdown_requested.set()
        return {"closed": True, "counts": session.counts()}

    return app

