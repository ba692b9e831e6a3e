"""Unsaved work kept in the per-user state folder, so that a closed tab or a killed server loses
nothing.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from ..report import writers

__all__ = ["Journal", "default_state_dir"]

log = logging.getLogger(__name__)


EDITS_FILE = "edits.json"

SNAPSHOT_FILE = "results.h5"

SAVED_DIR = "saved"  # in the state folder: where each recording's results were last saved

def default_state_dir() -> Path:
    """Where unsaved work is kept: ``$MINIDET_STATE_DIR``, else ``$XDG_STATE_HOME/minidet/app``,
    else ``~/.local/state/minidet/app``."""
    if os.environ.get("MINIDET_STATE_DIR"):
        return Path(os.environ["MINIDET_STATE_DIR"])
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "minidet" / "app"

def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")

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
