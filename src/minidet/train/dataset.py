"""Training datasets: scored snippets in miniML's HDF5 layout, plus minidet's provenance.

(About 560 lines: one file format: the miniML layout, minidet's sidecar, the lock and the merge
must agree on every field.)

A dataset file holds, like the files miniML's extraction script writes and its training
notebooks read:

``events``       (n, window_size) float64, each snippet with its pre-event baseline subtracted
``scores``       (n,) int64: 0 no event, 1 event, 2 exclude
``raw_indices``  (n,) int64: sample index of the snippet's first sample in its recording
``cell_label``   (n,) bytes: the recording each snippet comes from

minidet adds, as extra datasets that miniML ignores:

``scored``         (n,) bool: a person has scored the snippet (``scores`` is the extractor's
                   suggestion until then; a file without it counts as scored)
``category``       (n,) int8: how the extractor found it: 1 high threshold, 2 intermediate
                   threshold, 0 pure-noise stretch, 3 model and template matching disagree
                   (``minidet extract --disagree-with``), -1 unknown (a miniML file)
``criterion``      (n,) float64: Clements-Bekkers detection criterion at the snippet (NaN: none)
``prescore``       (n,) float64: a model's event probability (NaN: not pre-scored)
``channel``        (n,) bytes: channel of the source recording
``sampling_rate``  (n,) float64: Hz of the source recording (NaN: unknown)
``noise_sd``       (n,) float64: noise SD of the source recording in its unit, as noise-scaled
                   models measure it (:func:`minidet.noise.recording_noise_sd`; NaN: unknown)
``review_rank``    (n,) int64: the position at which a scoring session presents the snippet
                   (``minidet score --order``; -1 everywhere: extraction order)

and attributes on the root (``format``, ``window_size``, template and thresholds, ``cursor``).

Scoring sessions do not rewrite the file on every key press: they write the complete
scores to a small sidecar file (``DATASET.h5.scores.json``) atomically, and fold it into the
HDF5 file (again atomically) shortly after. :func:`read_dataset` applies a pending sidecar, so
nothing a person scored is lost when a session is killed between the two.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import DatasetError, DatasetLockedError, OutputError, ParameterError
from ..fsutil import atomic_path, atomic_write, pid_alive

__all__ = [
    "CATEGORY_CLEAR",
    "CATEGORY_DISAGREE",
    "CATEGORY_INTERMEDIATE",
    "CATEGORY_NOISE",
    "CATEGORY_UNKNOWN",
    "Dataset",
    "DatasetLock",
    "check_unlocked",
    "merge",
    "read_dataset",
    "sidecar_path",
    "write_dataset",
    "write_sidecar",
]

log = logging.getLogger(__name__)

FORMAT_NAME = "minidet-training-data"
FORMAT_VERSION = 1

SCORE_NAMES = {0: "no event", 1: "event", 2: "exclude"}
CATEGORY_UNKNOWN, CATEGORY_NOISE, CATEGORY_CLEAR, CATEGORY_INTERMEDIATE, CATEGORY_DISAGREE = -1, 0, 1, 2, 3
CATEGORY_NAMES = {
    CATEGORY_UNKNOWN: "unknown",
    CATEGORY_NOISE: "noise stretch",
    CATEGORY_CLEAR: "high threshold",
    CATEGORY_INTERMEDIATE: "intermediate threshold",
    CATEGORY_DISAGREE: "model / template disagreement",
}

_REQUIRED = ("events", "scores")
_EXTRA_DEFAULTS: dict[str, Any] = {
    "scored": True,
    "category": CATEGORY_UNKNOWN,
    "criterion": np.nan,
    "prescore": np.nan,
    "channel": "",
    "sampling_rate": np.nan,
    "noise_sd": np.nan,
    "review_rank": -1,
}
_EXTRA_DTYPES = {
    "scored": np.bool_,
    "category": np.int8,
    "criterion": np.float64,
    "prescore": np.float64,
    "sampling_rate": np.float64,
    "noise_sd": np.float64,
    "review_rank": np.int64,
}
SIDECAR_SUFFIX = ".scores.json"
LOCK_SUFFIX = ".lock"


# ============================================================================ the data
@dataclass
class Dataset:
    """Snippets with scores and provenance; arrays all of length ``n``.

    ``events`` is (n, window_size) float64 in the recording's unit; the other arrays are
    described in the module docstring. ``attrs`` holds file-level settings (``window_size``,
    template time constants in seconds, thresholds, ``cursor``, ...).
    """

    events: np.ndarray
    scores: np.ndarray
    raw_indices: np.ndarray
    cell_label: np.ndarray
    scored: np.ndarray | None = None
    category: np.ndarray | None = None
    criterion: np.ndarray | None = None
    prescore: np.ndarray | None = None
    channel: np.ndarray | None = None
    sampling_rate: np.ndarray | None = None
    noise_sd: np.ndarray | None = None
    review_rank: np.ndarray | None = None
    attrs: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.events = _check_events(np.asarray(self.events), "events")
        n = self.events.shape[0]
        self.scores = _check_scores(np.asarray(self.scores), n)
        self.raw_indices = _check_1d(np.asarray(self.raw_indices), n, "raw_indices", integer=True).astype(np.int64)
        self.cell_label = _as_str_array(self.cell_label, n, "cell_label")
        for name, default in _EXTRA_DEFAULTS.items():
            value = getattr(self, name)
            if value is None:
                value = np.full(n, default, dtype=_EXTRA_DTYPES.get(name, object))
            elif name == "channel":
                value = _as_str_array(value, n, name)
            else:
                value = _check_1d(np.asarray(value), n, name, integer=name in ("category", "review_rank"))
                value = value.astype(_EXTRA_DTYPES[name])
            setattr(self, name, value)
        self.attrs = dict(self.attrs)
        self.attrs["window_size"] = self.window_size

    # ------------------------------------------------------------------ properties
    @property
    def n(self) -> int:
        return int(self.events.shape[0])

    @property
    def window_size(self) -> int:
        """Samples per snippet."""
        return int(self.events.shape[1])

    @property
    def cursor(self) -> int:
        """Index of the snippet a scoring session showed last (0 for a new dataset)."""
        value = int(self.attrs.get("cursor", 0))
        return min(max(value, 0), max(self.n - 1, 0))

    def counts(self) -> dict[str, int]:
        """Snippets per score (of all, scored or not) and how many are still unscored."""
        out = {SCORE_NAMES[s]: int(np.sum(self.scores == s)) for s in (0, 1, 2)}
        out["unscored"] = int(np.sum(~self.scored))
        out["total"] = self.n
        return out

    def per_source(self) -> list[dict[str, Any]]:
        """One row per (source file, channel): snippets per score and unscored."""
        rows = []
        keys = list(zip(self.cell_label.tolist(), self.channel.tolist()))
        for key in dict.fromkeys(keys):
            mask = np.array([k == key for k in keys])
            row = {"source": key[0], "channel": key[1], "n": int(mask.sum())}
            for s in (0, 1, 2):
                row[SCORE_NAMES[s]] = int(np.sum(self.scores[mask] == s))
            row["unscored"] = int(np.sum(~self.scored[mask]))
            rows.append(row)
        return rows

    def subset(self, index: np.ndarray) -> "Dataset":
        """A new dataset with the snippets at ``index`` (in that order)."""
        index = np.asarray(index, dtype=np.int64)
        arrays = {name: getattr(self, name)[index] for name in _ARRAYS}
        attrs = dict(self.attrs)
        attrs["cursor"] = 0
        return Dataset(**arrays, attrs=attrs)

    def fingerprint(self) -> str:
        """Identifies the snippets (not the scores): a sidecar only applies to its own dataset."""
        digest = hashlib.sha1()
        digest.update(repr(self.events.shape).encode())
        digest.update(np.ascontiguousarray(self.raw_indices).tobytes())
        digest.update("\0".join(self.cell_label.tolist()).encode("utf-8", "replace"))
        digest.update(np.ascontiguousarray(self.events[:, :: max(1, self.window_size // 16)]).tobytes())
        return digest.hexdigest()[:16]


_ARRAYS = ("events", "scores", "raw_indices", "cell_label") + tuple(_EXTRA_DEFAULTS)


# ============================================================================ validation
def _check_events(events: np.ndarray, name: str) -> np.ndarray:
    if events.ndim != 2 or events.shape[1] < 2:
        raise DatasetError(f"'{name}' must be a 2-D array (snippets x window samples), got shape {events.shape}")
    if not np.issubdtype(events.dtype, np.floating):
        raise DatasetError(f"'{name}' must hold floating-point samples, got dtype {events.dtype}")
    if events.shape[0] and not np.all(np.isfinite(events)):
        bad = int(np.flatnonzero(~np.all(np.isfinite(events), axis=1))[0])
        raise DatasetError(f"'{name}' holds NaN or infinite samples (first in snippet {bad})")
    return events.astype(np.float64, copy=False)


def _check_1d(values: np.ndarray, n: int, name: str, integer: bool = False) -> np.ndarray:
    if values.ndim != 1 or values.shape[0] != n:
        raise DatasetError(f"'{name}' must be 1-D with one value per snippet ({n}), got shape {values.shape}")
    if values.dtype.kind not in "biuf":
        raise DatasetError(f"'{name}' must be numeric, got dtype {values.dtype}")
    if integer and values.dtype.kind == "f":
        if not np.all(np.isfinite(values)) or np.any(values != np.round(values)):
            raise DatasetError(f"'{name}' must hold whole numbers, got dtype {values.dtype} with fractions")
    return values


def _check_scores(scores: np.ndarray, n: int) -> np.ndarray:
    scores = _check_1d(scores, n, "scores", integer=True).astype(np.int64)
    bad = np.flatnonzero((scores < 0) | (scores > 2))
    if bad.size:
        raise DatasetError(
            f"scores[{bad[0]}] is {scores[bad[0]]} ({bad.size} score(s) outside 0-2); a score must be "
            "0 (no event), 1 (event) or 2 (exclude)"
        )
    return scores


def _as_str_array(values: Any, n: int, name: str) -> np.ndarray:
    arr = np.asarray(values)
    if arr.ndim != 1 or arr.shape[0] != n:
        raise DatasetError(f"'{name}' must be 1-D with one entry per snippet ({n}), got shape {arr.shape}")
    if arr.dtype.kind not in "SUO":
        raise DatasetError(f"'{name}' must hold text, got dtype {arr.dtype}")
    out = [v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v) for v in arr.tolist()]
    return np.array(out, dtype=object)


def _encode(labels: np.ndarray) -> np.ndarray:
    encoded = [str(v).encode("utf-8") for v in labels.tolist()]
    width = max([len(e) for e in encoded] + [1])
    return np.array(encoded, dtype=f"S{width}")


# ============================================================================ reading
def read_dataset(path: str | os.PathLike[str], apply_pending: bool = True) -> Dataset:
    """Read a dataset file (minidet's or miniML's layout) and check it.

    Parameters
    ----------
    path
        The HDF5 file.
    apply_pending
        Apply scores that a scoring session wrote to the sidecar but not yet into the file.

    Raises
    ------
    DatasetError
        The file is not HDF5, lacks ``events``/``scores``, or an array has the wrong shape,
        dtype or (for scores) a value outside {0, 1, 2}.
    """
    import h5py

    path = Path(path)
    if not path.exists():
        from ..errors import RecordingNotFoundError

        raise RecordingNotFoundError(f"no such dataset file: {path}")
    try:
        handle = h5py.File(path, "r")
    except OSError as exc:
        raise DatasetError(f"{path} is not a readable HDF5 file ({exc})") from None
    with handle:
        missing = [name for name in _REQUIRED if name not in handle]
        if missing:
            raise DatasetError(
                f"{path} is not a training dataset: it lacks {', '.join(repr(m) for m in missing)} "
                f"(it holds {sorted(handle.keys())})"
            )
        arrays: dict[str, Any] = {}
        for name in _ARRAYS:
            if name in handle:
                obj = handle[name]
                if not isinstance(obj, h5py.Dataset):
                    raise DatasetError(f"'{name}' in {path} is a group, not an array")
                arrays[name] = obj[()]
        events = np.asarray(arrays["events"])
        n = events.shape[0] if events.ndim else 0
        if "raw_indices" not in arrays:  # optional in miniML's layout: only events and scores train
            arrays["raw_indices"] = np.full(n, -1, dtype=np.int64)
        if "cell_label" not in arrays:
            arrays["cell_label"] = np.full(n, "", dtype=object)
        attrs = {k: _plain(v) for k, v in handle.attrs.items()}
    try:
        dataset = Dataset(**arrays, attrs=attrs)
    except DatasetError as exc:
        raise DatasetError(f"{path}: {exc}") from None
    if apply_pending:
        _apply_sidecar(path, dataset)
    return dataset


def _plain(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return value


# ============================================================================ writing
def write_dataset(
    path: str | os.PathLike[str],
    dataset: Dataset,
    force: bool = False,
    lock: "DatasetLock | None" = None,
) -> Path:
    """Write ``dataset`` to ``path`` atomically (temporary file, then rename).

    Refuses to replace an existing file unless ``force``, and any file another scoring
    session holds (unless ``lock`` is that session's own lock). A sidecar of earlier scores
    is removed once the new file is in place, since the file now holds them.
    """
    import h5py

    path = Path(path)
    if path.exists() and not force:
        raise OutputError(f"{path} exists; pass --force to replace it")
    if lock is None or lock.path != lock_path(path):
        check_unlocked(path)
    if not path.parent.is_dir():
        raise OutputError(f"cannot write {path}: folder {path.parent} does not exist")
    with atomic_path(path) as tmp:
        with h5py.File(tmp, "w") as f:
            f.create_dataset("events", data=dataset.events.astype(np.float64))
            f.create_dataset("scores", data=dataset.scores.astype(np.int64))
            f.create_dataset("raw_indices", data=dataset.raw_indices.astype(np.int64))
            f.create_dataset("cell_label", data=_encode(dataset.cell_label))
            f.create_dataset("scored", data=dataset.scored.astype(np.bool_))
            f.create_dataset("category", data=dataset.category.astype(np.int8))
            f.create_dataset("criterion", data=dataset.criterion.astype(np.float64))
            f.create_dataset("prescore", data=dataset.prescore.astype(np.float64))
            f.create_dataset("channel", data=_encode(dataset.channel))
            f.create_dataset("sampling_rate", data=dataset.sampling_rate.astype(np.float64))
            f.create_dataset("noise_sd", data=dataset.noise_sd.astype(np.float64))
            f.create_dataset("review_rank", data=dataset.review_rank.astype(np.int64))
            attrs = dict(dataset.attrs)
            attrs.update(format=FORMAT_NAME, format_version=FORMAT_VERSION, window_size=dataset.window_size)
            for key, value in attrs.items():
                if value is None:
                    continue
                f.attrs[key] = value
            f.flush()
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
    side = sidecar_path(path)
    with contextlib.suppress(FileNotFoundError):
        side.unlink()
    return path


# ============================================================================ sidecar
def sidecar_path(path: str | os.PathLike[str]) -> Path:
    path = Path(path)
    return path.with_name(path.name + SIDECAR_SUFFIX)


def write_sidecar(path: str | os.PathLike[str], dataset: Dataset, fingerprint: str | None = None) -> Path:
    """Write the complete scores, ``scored`` flags and cursor next to ``path``, atomically.

    A few kB for thousands of snippets (one character per score), so it can be written on
    every key press; :func:`read_dataset` applies it, :func:`write_dataset` removes it.
    """
    side = sidecar_path(path)
    payload = {
        "format": FORMAT_NAME + "-scores",
        "fingerprint": fingerprint or dataset.fingerprint(),
        "n": dataset.n,
        "scores": "".join(map(str, dataset.scores.tolist())),
        "scored": "".join("1" if s else "0" for s in dataset.scored.tolist()),
        "cursor": dataset.cursor,
        "written": time.time(),
    }
    data = json.dumps(payload).encode()
    with atomic_write(side, "wb") as fh:
        fh.write(data)
    return side


def _apply_sidecar(path: Path, dataset: Dataset) -> bool:
    side = sidecar_path(path)
    try:
        payload = json.loads(side.read_text())
    except FileNotFoundError:
        return False
    except (OSError, ValueError) as exc:
        log.warning("ignoring unreadable scores sidecar %s (%s)", side, exc)
        return False
    if payload.get("n") != dataset.n or payload.get("fingerprint") != dataset.fingerprint():
        log.warning("ignoring scores sidecar %s: it belongs to another version of the dataset", side)
        return False
    scores = np.frombuffer(str(payload["scores"]).encode(), dtype=np.uint8) - ord("0")
    scored = np.frombuffer(str(payload["scored"]).encode(), dtype=np.uint8) == ord("1")
    if scores.size != dataset.n or scored.size != dataset.n or np.any(scores > 2):
        log.warning("ignoring malformed scores sidecar %s", side)
        return False
    dataset.scores = scores.astype(np.int64)
    dataset.scored = scored.copy()
    dataset.attrs["cursor"] = int(payload.get("cursor", 0))
    dataset.attrs["_pending_sidecar"] = True
    return True


# ============================================================================ lock
def lock_path(path: str | os.PathLike[str]) -> Path:
    path = Path(path)
    return path.with_name(path.name + LOCK_SUFFIX)


class DatasetLock:
    """A lock file next to a dataset so that only one scoring session writes it.

    The file (``DATASET.h5.lock``) holds the owner's pid, host and start time; the owner
    touches it every few seconds (:meth:`heartbeat`). A lock is stale, and is taken over,
    when its process no longer runs on this host, or when it has not been touched for
    ``stale_after_s`` seconds (a session on another host that died).
    """

    def __init__(self, dataset_path: str | os.PathLike[str], stale_after_s: float = 120.0) -> None:
        self.dataset_path = Path(dataset_path)
        self.path = lock_path(dataset_path)
        self.stale_after_s = float(stale_after_s)
        self.token = os.urandom(8).hex()
        self.held = False

    def acquire(self) -> "DatasetLock":
        info = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "started": time.strftime("%Y-%m-%d %H:%M:%S"),
            "token": self.token,
        }
        for _ in range(3):
            try:
                fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
            except FileExistsError:
                other = read_lock(self.path)
                if other is not None and not self._is_stale(other):
                    raise DatasetLockedError(_locked_message(self.dataset_path, other, self.path)) from None
                log.warning("removing a stale lock %s (%s)", self.path, other)
                with contextlib.suppress(FileNotFoundError):
                    self.path.unlink()
                continue
            except OSError as exc:
                raise OutputError(f"cannot create the lock file {self.path}: {exc.strerror}") from None
            with os.fdopen(fd, "w") as fh:
                json.dump(info, fh)
            self.held = True
            return self
        raise DatasetLockedError(f"could not take the lock {self.path}; another session keeps creating it")

    def _is_stale(self, other: dict[str, Any]) -> bool:
        if other.get("host") == socket.gethostname() and isinstance(other.get("pid"), int):
            if not pid_alive(other["pid"]):
                return True
        age = other.get("_age_s")
        return age is not None and age > self.stale_after_s

    def heartbeat(self) -> None:
        if self.held:
            with contextlib.suppress(OSError):
                os.utime(self.path)

    def release(self) -> None:
        if not self.held:
            return
        other = read_lock(self.path)
        if other is not None and other.get("token") == self.token:
            with contextlib.suppress(FileNotFoundError):
                self.path.unlink()
        self.held = False

    def __enter__(self) -> "DatasetLock":
        return self.acquire()

    def __exit__(self, *exc: Any) -> None:
        self.release()


def read_lock(path: Path) -> dict[str, Any] | None:
    """The lock file's content plus ``_age_s`` (seconds since its last heartbeat), or None."""
    try:
        text = path.read_text()
        age = time.time() - path.stat().st_mtime
    except FileNotFoundError:
        return None
    try:
        info = json.loads(text)
        if not isinstance(info, dict):
            raise ValueError
    except ValueError:
        info = {}
    info["_age_s"] = age
    return info


def _locked_message(dataset: Path, info: dict[str, Any], lock: Path) -> str:
    who = f"pid {info.get('pid', '?')} on {info.get('host', '?')}, since {info.get('started', '?')}"
    return (
        f"{dataset} is open in another scoring session ({who}); close that session first, "
        f"or delete {lock} if that session no longer runs"
    )


def check_unlocked(path: str | os.PathLike[str]) -> None:
    """Raise :class:`DatasetLockedError` if a live scoring session holds ``path``."""
    lock = DatasetLock(path)
    info = read_lock(lock.path)
    if info is not None and not lock._is_stale(info):
        raise DatasetLockedError(_locked_message(Path(path), info, lock.path))


# ============================================================================ merge
def merge(datasets: list[Dataset]) -> Dataset:
    """Concatenate datasets of one window size; provenance and scores travel along."""
    if not datasets:
        raise ParameterError("merge needs at least one dataset")
    sizes = sorted({d.window_size for d in datasets})
    if len(sizes) > 1:
        raise DatasetError(
            f"cannot merge datasets of different window sizes {sizes}; extract them again with one --window-size"
        )
    arrays = {name: np.concatenate([getattr(d, name) for d in datasets]) for name in _ARRAYS}
    attrs = {k: v for k, v in datasets[0].attrs.items() if not k.startswith("_")}
    attrs["cursor"] = 0
    for key in list(attrs):
        if key in ("cursor", "window_size", "format", "format_version"):
            continue
        if any(d.attrs.get(key) != attrs[key] for d in datasets[1:]):
            del attrs[key]  # settings that differ between the inputs describe none of them
    attrs["merged_from"] = len(datasets)
    # each input's scoring order ranks only its own snippets: the merged file starts afresh
    arrays["review_rank"] = np.full(arrays["events"].shape[0], -1, dtype=np.int64)
    for key in ("score_order", "score_order_seed", "score_order_model"):
        attrs.pop(key, None)
    return Dataset(**arrays, attrs=attrs)
