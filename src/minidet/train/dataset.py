"""Training datasets: scored snippets in miniML's HDF5 layout, plus minidet's provenance.

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
from typing import Any, Iterator

import numpy as np

from ..errors import DatasetError, DatasetLockedError, OutputError, ParameterError

__all__ = [
    "CATEGORY_CLEAR",
    "CATEGORY_DISAGREE",
    "CATEGORY_INTERMEDIATE",
    "CATEGORY_NOISE",
    "CATEGORY_UNKNOWN",
    "GROUPS",
    "RATIO_PRESETS",
    "Dataset",
    "DatasetLock",
    "check_unlocked",
    "merge",
    "parse_ratio",
    "read_dataset",
    "rebalance",
    "sidecar_path",
    "split_groups",
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

#: The four groups of the seed workflow, in the order of a ratio "a:b:c:d".
GROUPS = ("nice", "less_nice", "false_positive", "noise")

#: Ratios nice : less nice : false positives : pure noise from miniML's training notes.
RATIO_PRESETS = {
    "liberal": (100, 500, 50, 550),
    "more-restrictive": (300, 300, 50, 550),
    "intermediate": (300, 300, 300, 300),
    "restrictive": (300, 300, 500, 100),
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
@contextlib.contextmanager
def _atomic_path(final: Path) -> Iterator[Path]:
    """A temporary path next to ``final``, renamed onto it when the block succeeds."""
    tmp = final.with_name(f".{final.name}.{os.getpid()}.{time.monotonic_ns()}.tmp")
    try:
        yield tmp
        os.replace(tmp, final)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


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
    with _atomic_path(path) as tmp:
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
    with _atomic_path(side) as tmp:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
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


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


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
            if not _pid_alive(other["pid"]):
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


# ============================================================================ rebalance
def parse_ratio(text: str) -> tuple[float, float, float, float]:
    """``"300:300:50:550"`` or a preset name (:data:`RATIO_PRESETS`) -> four non-negative numbers."""
    key = text.strip().lower()
    if key in RATIO_PRESETS:
        return tuple(float(v) for v in RATIO_PRESETS[key])  # type: ignore[return-value]
    parts = key.replace(",", ":").split(":")
    try:
        values = tuple(float(p) for p in parts)
    except ValueError:
        values = ()
    if len(values) != 4 or any(not np.isfinite(v) or v < 0 for v in values) or sum(values) <= 0:
        raise ParameterError(
            f"ratio must be nice:less-nice:false-positives:noise, four numbers >= 0 (e.g. 300:300:50:550), "
            f"or one of {', '.join(RATIO_PRESETS)}; got {text!r}"
        )
    return values  # type: ignore[return-value]


def split_groups(
    dataset: Dataset,
    split_by: str = "auto",
    event_split: float | None = None,
    noise_split: float | None = None,
) -> tuple[dict[str, np.ndarray], str]:
    """Sort scored snippets into the four groups of the seed workflow.

    Events (score 1) are "nice" or "less nice"; non-events (score 0) are "false positives"
    (something an event detector picks up) or "pure noise". Score 2 and unscored snippets
    belong to no group.

    split_by
        ``category``: by how the extractor found them (high threshold = nice; found by a
        threshold at all = false positive). ``criterion``: by the Clements-Bekkers
        criterion (stored, or computed on the snippet with the window's template), nice at or
        above ``event_split`` (default: the file's high threshold, else the median of the
        events), false positive at or above ``noise_split`` (default: the low threshold,
        else the median of the non-events). ``prescore``: by a model's probability, nice /
        false positive at or above 0.5 (the model would call it an event). ``auto``: category
        where every snippet has one, else prescore where every snippet has one, else criterion.

    Returns the groups (index arrays) and a sentence saying how they were split.
    """
    usable = dataset.scored & (dataset.scores != 2)
    events = usable & (dataset.scores == 1)
    nonevents = usable & (dataset.scores == 0)
    method = split_by
    if method == "auto":
        if np.all(dataset.category[usable] >= 0):
            method = "category"
        elif np.all(np.isfinite(dataset.prescore[usable])):
            method = "prescore"
        else:
            method = "criterion"
    if method == "category":
        if np.any(dataset.category[usable] < 0):
            raise DatasetError("some snippets have no extraction category (a miniML file?); split by criterion or prescore")
        clear = dataset.category == CATEGORY_CLEAR
        eventlike = dataset.category > 0
        how = "by extraction category: nice = found by the high threshold, false positive = found by a threshold"
    elif method == "prescore":
        if not np.all(np.isfinite(dataset.prescore[usable])):
            raise DatasetError("some snippets have no prescore; extract with --prescore MODEL or split by criterion")
        e_at = 0.5 if event_split is None else float(event_split)
        n_at = 0.5 if noise_split is None else float(noise_split)
        clear = dataset.prescore >= e_at
        eventlike = dataset.prescore >= n_at
        how = f"by prescore: nice = events with prescore >= {e_at:g}, false positive = non-events with prescore >= {n_at:g}"
    elif method == "criterion":
        crit = dataset.criterion.copy()
        computed = ~np.isfinite(crit)
        if computed.any():
            crit[computed] = snippet_criterion(dataset.events[computed], dataset.attrs)
        e_at = event_split if event_split is not None else dataset.attrs.get("threshold_high")
        n_at = noise_split if noise_split is not None else dataset.attrs.get("threshold_low")
        e_note = n_note = ""
        if e_at is None:
            e_at = float(np.median(crit[events])) if events.any() else np.inf
            e_note = " (the events' median)"
        if n_at is None:
            n_at = float(np.median(crit[nonevents])) if nonevents.any() else np.inf
            n_note = " (the non-events' median)"
        clear = crit >= e_at
        eventlike = crit >= n_at
        source = "computed on the snippets" if computed.all() else "stored" if not computed.any() else "stored or computed"
        how = (
            f"by template-matching criterion ({source}): nice = events with criterion >= {e_at:.3g}{e_note}, "
            f"false positive = non-events with criterion >= {n_at:.3g}{n_note}"
        )
    else:
        raise ParameterError(f"split_by must be auto, category, criterion or prescore, got {split_by!r}")
    groups = {
        "nice": np.flatnonzero(events & clear),
        "less_nice": np.flatnonzero(events & ~clear),
        "false_positive": np.flatnonzero(nonevents & eventlike),
        "noise": np.flatnonzero(nonevents & ~eventlike),
    }
    return groups, how


def snippet_criterion(events: np.ndarray, attrs: dict[str, Any]) -> np.ndarray:
    """Largest Clements-Bekkers criterion of each snippet, in the event direction.

    The template comes from the file's template settings or, failing those, from the
    window size (:func:`minidet.train.extract.template_for_window`).
    """
    from .extract import _hann_smooth, criterion_trace, template_for_window

    window = events.shape[1]
    direction = str(attrs.get("direction", "negative"))
    rise = attrs.get("template_rise_samples")
    decay = attrs.get("template_decay_samples")
    template = template_for_window(window, rise_samples=rise, decay_samples=decay)
    sign = -1.0 if direction == "negative" else 1.0
    smooth = window // 30 if bool(attrs.get("matching_filter", True)) else 0  # as extraction matches
    out = np.empty(events.shape[0])
    for i, snippet in enumerate(events):
        crit = criterion_trace(_hann_smooth(snippet, smooth), template) * sign
        finite = crit[np.isfinite(crit)]
        out[i] = float(finite.max()) if finite.size else np.nan
    return out


#: the group that takes over a missing group's share: events stay events, non-events non-events
PARTNER = {"nice": "less_nice", "less_nice": "nice", "false_positive": "noise", "noise": "false_positive"}


def rebalance(
    dataset: Dataset,
    ratio: tuple[float, float, float, float],
    seed: int = 0,
    split_by: str = "auto",
    event_split: float | None = None,
    noise_split: float | None = None,
    include_unscored: bool = False,
    counts: bool = False,
) -> tuple[Dataset, dict[str, Any]]:
    """Subsample scored snippets to ``ratio`` = nice : less nice : false positives : noise.

    ``ratio`` is read as proportions (``counts=False``): as many snippets are kept as the
    scarcest group allows at those proportions, e.g. ``300:300:300:300`` keeps equal numbers of
    each, however many that is. With ``counts=True`` the numbers are how many snippets of each
    group to keep (fewer where a group has fewer, said in the report's notes). A group the ratio
    asks for that the dataset lacks gives its share to its partner (nice <-> less nice, false
    positives <-> noise), so events and non-events keep the ratio's balance, as the seed
    workflow asks. Each group is drawn at random with ``seed``; score-2 snippets are dropped,
    since training excludes them.

    Returns the new dataset and a report: available and kept per group, the ratio used, the
    kept events : non-events balance, how the groups were split and notes on what was changed.

    Raises
    ------
    DatasetError
        Snippets are unscored (unless ``include_unscored``), or the dataset lacks both events
        or both kinds of non-events that the ratio asks for.
    """
    unscored = int(np.sum(~dataset.scored))
    if unscored and not include_unscored:
        raise DatasetError(
            f"{unscored} of {dataset.n} snippets are not scored yet; score them (minidet score) "
            "or pass --include-unscored to treat the extractor's suggestions as scores"
        )
    if len(ratio) != 4 or any(not np.isfinite(v) or v < 0 for v in ratio) or sum(ratio) <= 0:
        raise DatasetError(f"ratio must be four non-negative numbers, not all 0, got {ratio!r}")
    work = dataset
    if include_unscored and unscored:
        work = dataset.subset(np.arange(dataset.n))
        work.scored[:] = True
    groups, how = split_groups(work, split_by, event_split, noise_split)
    available = {g: int(groups[g].size) for g in GROUPS}
    wanted = dict(zip(GROUPS, (float(v) for v in ratio)))
    notes: list[str] = []
    for g in GROUPS:
        partner = PARTNER[g]
        if wanted[g] > 0 and available[g] == 0:
            if available[partner] == 0:
                kind = "events" if g in ("nice", "less_nice") else "non-events"
                raise DatasetError(
                    f"the ratio asks for {kind} but the dataset has none (available: {_fmt_counts(available)}; "
                    f"split {how})"
                )
            notes.append(f"no {g.replace('_', ' ')} snippets: their share ({wanted[g]:g}) goes to "
                         f"{partner.replace('_', ' ')}")
            wanted[partner] += wanted[g]
            wanted[g] = 0.0
    rng = np.random.default_rng(seed)
    keep: dict[str, int] = {}
    if counts:
        for g in GROUPS:
            keep[g] = min(int(round(wanted[g])), available[g])
            if keep[g] < int(round(wanted[g])):
                notes.append(f"{g.replace('_', ' ')}: {int(round(wanted[g]))} asked, {available[g]} available")
    else:
        scale = min(available[g] / wanted[g] for g in GROUPS if wanted[g] > 0)
        for g in GROUPS:
            keep[g] = int(np.floor(scale * wanted[g] + 1e-9))
    chosen = [np.sort(rng.choice(groups[g], size=keep[g], replace=False)) for g in GROUPS if keep[g]]
    index = np.sort(np.concatenate(chosen)) if chosen else np.zeros(0, dtype=np.int64)
    out = work.subset(index)
    used = ":".join(f"{wanted[g]:g}" for g in GROUPS)
    out.attrs["rebalanced_ratio"] = used
    out.attrs["rebalanced_split"] = how
    events = keep["nice"] + keep["less_nice"]
    non_events = keep["false_positive"] + keep["noise"]
    report = {
        "available": available,
        "kept": keep,
        "ratio": used,
        "mode": "counts" if counts else "proportions",
        "events": events,
        "non_events": non_events,
        "balance": round(events / non_events, 4) if non_events else None,
        "dropped_excluded": int(np.sum(work.scores == 2)),
        "split": how,
        "notes": notes,
        "n": out.n,
    }
    return out, report


def _fmt_counts(counts: dict[str, int]) -> str:
    return ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in counts.items())
