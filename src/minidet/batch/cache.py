"""The up-to-date cache: content and settings hashes, and the done-markers that let a re-run skip a recording."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import time
from pathlib import Path
from typing import Any, Mapping


from ..fsutil import sha256_file
from .settings import DONE_MARKER, MARKER_FORMAT, MARKER_VERSION, RecordingJob, _HASH_EXCLUDED

log = logging.getLogger(__name__)




class _HashIndex:
    """SHA-256 of files, cached by (path, size, mtime) in a JSON file of the output folder."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.entries: dict[str, dict[str, Any]] = {}
        self.changed = False
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            if isinstance(data, dict) and isinstance(data.get("files"), dict):
                self.entries = data["files"]
        except (OSError, ValueError):
            pass

    def sha256(self, path: str) -> str:
        real = os.path.realpath(path)
        st = os.stat(real)
        cached = self.entries.get(real)
        if cached and cached.get("size") == st.st_size and cached.get("mtime_ns") == st.st_mtime_ns:
            return str(cached["sha256"])
        digest = sha256_file(real)
        # a file changed within the clock's resolution of its mtime could change again
        # unseen with the same size and mtime: such a fresh hash is not cached
        if time.time() - st.st_mtime > 2.0:
            self.entries[real] = {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "sha256": digest}
            self.changed = True
        return digest

    def save(self) -> None:
        if not self.changed:
            return
        from ..report.writers import atomic_write

        with atomic_write(self.path) as fh:
            json.dump({"version": 1, "files": self.entries}, fh, indent=1, sort_keys=True)
        self.changed = False


def _model_file(model: str) -> Path:
    from ..model.zoo import bundled_path, is_model_name

    return bundled_path(model) if is_model_name(model) else Path(model)


def settings_hash(settings: Mapping[str, Any], model_sha256: str, reader: Mapping[str, Any],
                  outputs: Mapping[str, Any]) -> str:
    """Short hash of everything a recording's result depends on besides the file content:
    the resolved detection settings (without device and batch size), the model file's
    SHA-256, the reader options and which files are written."""
    from ..io import ReadOptions
    from ..report.writers import jsonable

    payload = {
        "format": MARKER_VERSION,
        "detect": {k: v for k, v in settings.items() if k not in _HASH_EXCLUDED},
        "model_sha256": model_sha256,
        "reader": dataclasses.asdict(ReadOptions(**dict(reader))),
        "outputs": dict(outputs),
    }
    return hashlib.sha256(json.dumps(jsonable(payload), sort_keys=True).encode()).hexdigest()[:16]




def _read_marker(folder: Path) -> dict[str, Any] | None:
    try:
        marker = json.loads((folder / DONE_MARKER).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(marker, dict) or marker.get("format") != MARKER_FORMAT:
        return None
    return marker


def _is_up_to_date(job: RecordingJob) -> bool:
    marker = _read_marker(job.result_dir)
    if marker is None:
        return False
    if marker.get("content_sha256") != job.content_sha256 or marker.get("settings_hash") != job.settings_hash:
        return False
    return all((job.result_dir / name).is_file() for name in marker.get("files", []))
