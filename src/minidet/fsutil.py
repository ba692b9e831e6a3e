"""Small file-system helpers shared across minidet (standard library only): atomic writes,
a file's SHA-256, whether a process id is alive.

:func:`atomic_path` yields a temporary path next to the destination for libraries that open
files themselves (h5py, matplotlib); :func:`atomic_write` opens that temporary file for
writing and flushes it to disk. Either way the destination is replaced by a rename only when
the block succeeds, so readers see the old file or the complete new one.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import secrets
from pathlib import Path
from typing import Any, Iterator

from .errors import OutputError

__all__ = ["atomic_path", "atomic_write", "pid_alive", "sha256_file"]


def _temp_name(path: Path) -> Path:
    return path.with_name(f".{path.name}.{secrets.token_hex(4)}.part")


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; rename it onto ``path`` when the block succeeds.

    For libraries that open files themselves (h5py, pynwb, matplotlib). If the block raises,
    the temporary file is deleted and ``path`` is left as it was. The temporary name does not
    keep the extension, so tell such libraries the format explicitly
    (``savefig(tmp, format="png")``).
    """
    final = Path(path)
    tmp = _temp_name(final)
    try:
        yield tmp
        if not tmp.exists():
            raise OutputError(f"nothing was written for {final}")
        os.replace(tmp, final)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike[str], mode: str = "w", **open_kwargs: Any) -> Iterator[Any]:
    """Open a temporary file next to ``path`` for writing; rename it onto ``path`` on success.

    ``mode`` is ``"w"`` (text, UTF-8 unless ``encoding`` is given) or ``"wb"``. The data are
    flushed to disk before the rename, so readers see either the old file or the complete new
    one, never a partial file; if the block raises, the temporary file is removed.

    >>> with atomic_write("out/events.csv", newline="") as f:   # doctest: +SKIP
    ...     f.write("a,b\\n")
    """
    if mode not in ("w", "wb", "wt"):
        raise ValueError(f"atomic_write supports modes 'w' and 'wb', got {mode!r}")
    if "b" not in mode:
        open_kwargs.setdefault("encoding", "utf-8")
    final = Path(path)
    with atomic_path(final) as tmp:
        # os.open with 0o666 lets the umask set the permissions, as for an ordinary file
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        with os.fdopen(fd, mode, **open_kwargs) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())


def sha256_file(path: str | os.PathLike[str], chunk: int = 1 << 20) -> str:
    """Hex SHA-256 of a file's bytes, read ``chunk`` bytes at a time."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(chunk), b""):
            digest.update(block)
    return digest.hexdigest()


def pid_alive(pid: int) -> bool:
    """Whether a process ``pid`` runs on this machine (ids <= 0 name no single process: False)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
