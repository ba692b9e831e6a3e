"""The batch folder's lock (one run at a time) and the removal of a crashed run's leftovers."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import socket
from datetime import datetime, timezone
from pathlib import Path


from ..errors import OutputError
from ..fsutil import pid_alive
from .settings import LOCK_FILE, RECORDINGS_DIR

log = logging.getLogger(__name__)


@contextlib.contextmanager
def _batch_lock(out: Path):
    """Refuse a second batch writing into the same folder at the same time."""
    path = out / LOCK_FILE
    host = socket.gethostname()
    me = {"pid": os.getpid(), "host": host, "started": datetime.now(timezone.utc).isoformat(timespec="seconds")}
    for _ in range(2):
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        except FileExistsError:
            try:
                other = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                other = {}
            alive = other.get("host") == host and pid_alive(int(other.get("pid", -1)))
            if alive or (other.get("host") not in (None, host)):
                raise OutputError(
                    f"another minidet batch (pid {other.get('pid')} on {other.get('host')}, started "
                    f"{other.get('started')}) is writing to {out}; wait for it, or delete {path} if it is gone"
                ) from None
            with contextlib.suppress(OSError):  # stale lock of a process that is gone
                path.unlink()
            continue
        with os.fdopen(fd, "w") as fh:
            json.dump(me, fh)
        break
    else:  # pragma: no cover - the stale lock came back between unlink and open
        raise OutputError(f"cannot take the lock {path}")
    try:
        yield
    finally:
        with contextlib.suppress(OSError):
            path.unlink()


def _remove_leftovers(out: Path) -> None:
    """Temporary result folders of interrupted runs (and of jobs moved to another worker)."""
    folder = out / RECORDINGS_DIR
    if not folder.is_dir():
        return
    for entry in folder.iterdir():
        if entry.name.startswith(".") and (".tmp-" in entry.name or ".old-" in entry.name):
            shutil.rmtree(entry, ignore_errors=True)
