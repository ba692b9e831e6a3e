"""Many recordings at once: :func:`run_batch` (and ``minidet batch``).

Inputs are files, folders (searched recursively), glob patterns, or CSV manifests with one
row per recording (``path``, reader options, per-recording detection settings, free labels).
Every recording gets the result folder ``minidet detect`` writes, under
``OUT/recordings/<name>/``; the batch gets three tables, each as CSV and Parquet:

- ``batch_summary``: one row per recording (status, labels, summary statistics, settings
  hash, content hash, where the results are);
- ``batch_events``: every event of every recording, with a ``recording`` column, the
  columns named as in each recording's events.csv (``amplitude_pA``, ``charge_pC``);
- ``batch_failures``: the recordings that failed, with their error.

Resumable and idempotent: a recording's folder is written under a temporary name, its
``_done.json`` marker (content hash of the input, settings hash) last, and renamed into place;
a later run skips a recording whose marker matches the file's content, the settings and the
model, and redoes it otherwise. A crash or Ctrl-C leaves only temporary folders, which the
next run removes. One failing recording never stops the others.

Work runs in local worker processes (the model loaded once per worker, torch threads per
worker chosen so that workers x threads fit the cores), or on a Dask distributed cluster
(``client=`` or ``scheduler="tcp://HOST:PORT"``: one task per recording, with retries; the
inputs and the output folder must be at the same paths on every worker, e.g. a shared file
system).
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import difflib
import glob
import hashlib
import io
import json
import logging
import math
import os
import re
import secrets
import shutil
import socket
import sys
import time
import traceback
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

import numpy as np
import pandas as pd

from . import DEFAULT_MODEL
from .errors import MinidetError, OutputError, ParameterError, RecordingNotFoundError
from .fsutil import pid_alive, sha256_file
from .io import FOLDER_EXTENSIONS, READER_KEYS

__all__ = [
    "BatchResult",
    "BatchSettings",
    "RecordingJob",
    "FOLDER_EXTENSIONS",
    "plan_batch",
    "read_manifest",
    "run_batch",
]

log = logging.getLogger(__name__)

RECORDINGS_DIR = "recordings"
DONE_MARKER = "_done.json"
INDEX_FILE = "_batch_index.json"
LOCK_FILE = "_batch.lock"
SUMMARY_TABLE = "batch_summary"
EVENTS_TABLE = "batch_events"
FAILURES_TABLE = "batch_failures"
MARKER_FORMAT = "minidet-batch-result"
MARKER_VERSION = 1

# the simulator's truth files sit next to its recordings and are not recordings
_SKIPPED_SUFFIXES = (".truth.h5", ".truth.hdf5", ".truth.npz")

# manifest column -> minidet.load option
_READER_COLUMNS = {
    "channel": "channel",
    "sweeps": "sweeps",
    "skip_start": "skip_start_s",
    "skip_start_s": "skip_start_s",
    "dataset": "dataset",
    "sampling_rate": "sampling_rate",
    "scale": "scale",
    "unit": "unit",
}
# settings that change how, not what, is computed: left out of the settings hash so a re-run
# on another device or with another batch size reuses the results
_HASH_EXCLUDED = ("model", "device", "batch_size")
# columns of the batch tables that labels may not take
_TABLE_COLUMNS = ("recording", "status", "path", "error_type", "error", "traceback", "results",
                  "settings_hash", "content_sha256", "model", "model_sha256", "elapsed_s", "worker",
                  "peak_rss_mb", "event", "unit", "sampling_rate_hz", "n_detected", "n_excluded")


def _is_table_column(name: str) -> bool:
    """Would a label of this name clash with a column of the batch tables?"""
    from .detection.pipeline import EVENT_COLUMNS
    from .measure.summary import STAT_MEASURES

    stats = rf"^({'|'.join(STAT_MEASURES)})_(mean|median|sd|cv)$"
    return (name in _TABLE_COLUMNS or name in EVENT_COLUMNS or re.match(stats, name) is not None
            or name in ("count", "duration_s", "frequency_hz", "tau_decay_s", "n_average", "origin"))


def _detect_fields() -> tuple[str, ...]:
    from .detection.pipeline import DetectSettings

    return DetectSettings.field_names()


# ============================================================================ settings
def _pairs(value: Mapping[str, Any] | Iterable[tuple[str, Any]] | None, what: str) -> tuple[tuple[str, Any], ...]:
    if value is None:
        return ()
    items = value.items() if isinstance(value, Mapping) else value
    try:
        pairs = tuple((str(k), v) for k, v in items)
    except (TypeError, ValueError):
        raise ParameterError(f"{what} must be a mapping of names to values, got {value!r}") from None
    return tuple(sorted(pairs))


@dataclass(frozen=True)
class BatchSettings:
    """What every recording of a batch is analysed with (a manifest row may override it).

    Parameters
    ----------
    model
        Bundled model name or model file path.
    detect
        Detection settings (any :class:`~minidet.detection.pipeline.DetectSettings` field but
        ``model``), e.g. ``{"threshold": 0.6}``; the rest comes from the model, as in
        ``minidet detect``. Stored as sorted ``(name, value)`` pairs; see :attr:`overrides`.
    reader
        Options of :func:`minidet.load` (channel, sweeps, skip_start_s, dataset,
        sampling_rate, scale, unit). Stored as pairs; see :attr:`reader_options`.
    plots, nwb, save_prediction
        Also write the figures and report.html, results.nwb, the prediction trace (as
        ``minidet detect --plots --nwb --save-prediction``).
    extensions
        File types picked up when a folder is searched (lower case, with the dot).
    """

    model: str = DEFAULT_MODEL
    detect: tuple[tuple[str, Any], ...] = ()
    reader: tuple[tuple[str, Any], ...] = ()
    plots: bool = False
    nwb: bool = False
    save_prediction: bool = False
    extensions: tuple[str, ...] = FOLDER_EXTENSIONS

    def __post_init__(self) -> None:
        from .detection.pipeline import DetectSettings
        from .io import ReadOptions

        if not isinstance(self.model, str) or not self.model.strip():
            raise ParameterError(f"model must be a model name or file path, got {self.model!r}")
        detect = _pairs(self.detect, "detect")
        reader = _pairs(self.reader, "reader")
        object.__setattr__(self, "detect", detect)
        object.__setattr__(self, "reader", reader)
        names = DetectSettings.field_names()
        unknown = sorted(k for k, _ in detect if k not in names or k == "model")
        if unknown:
            raise ParameterError(
                f"unknown detection setting(s) {unknown}; allowed: "
                f"{', '.join(n for n in names if n != 'model')} (give the model as model=...)")
        DetectSettings(**{k: v for k, v in detect if v is not None})  # validates the values
        unknown = sorted(k for k, _ in reader if k not in READER_KEYS)
        if unknown:
            raise ParameterError(f"unknown reader option(s) {unknown}; allowed: {', '.join(READER_KEYS)}")
        ReadOptions(**dict(reader))
        for name in ("plots", "nwb", "save_prediction"):
            if not isinstance(getattr(self, name), bool):
                raise ParameterError(f"{name} must be True or False, got {getattr(self, name)!r}")
        exts = tuple(self.extensions)
        if not exts or not all(isinstance(e, str) and e.startswith(".") and len(e) > 1 for e in exts):
            raise ParameterError(f"extensions must be file suffixes like '.abf', got {self.extensions!r}")
        object.__setattr__(self, "extensions", tuple(e.lower() for e in exts))

    @property
    def overrides(self) -> dict[str, Any]:
        """The detection settings given (``None`` values dropped) as a dict."""
        return {k: v for k, v in self.detect if v is not None}

    @property
    def reader_options(self) -> dict[str, Any]:
        """The reader options given (``None`` values dropped) as a dict."""
        return {k: v for k, v in self.reader if v is not None}

    @property
    def outputs(self) -> dict[str, bool]:
        return {"plots": self.plots, "nwb": self.nwb, "save_prediction": self.save_prediction}


@dataclass(frozen=True)
class RecordingJob:
    """One recording of a batch, as planned: what to read, with which settings, where to write.

    ``settings`` are the resolved :class:`~minidet.detection.pipeline.DetectSettings` (model
    defaults filled in) as a dict; ``up_to_date`` is true when ``OUT/recordings/<name>``
    already holds a result made from the same content, settings and model.
    """

    name: str
    path: str
    reader: dict
    settings: dict
    model: str
    labels: dict
    origin: str
    content_sha256: str
    model_sha256: str
    settings_hash: str
    out_dir: str
    plots: bool = False
    nwb: bool = False
    save_prediction: bool = False
    up_to_date: bool = False
    torch_threads: int | None = None

    @property
    def result_dir(self) -> Path:
        return Path(self.out_dir) / RECORDINGS_DIR / self.name


# ============================================================================ manifest
@dataclass
class _Entry:
    """A recording found in the inputs, before names and hashes."""

    path: str  # absolute
    name: str  # wanted output name (sanitised), may collide
    reader: dict
    overrides: dict
    labels: dict
    origin: str
    explicit_name: bool = False
    from_manifest: bool = False


def _parse_bool(text: str) -> bool:
    value = text.strip().lower()
    if value in ("1", "true", "yes", "y", "on"):
        return True
    if value in ("0", "false", "no", "n", "off"):
        return False
    raise ValueError(f"not a yes/no value: {text!r}")


def _convert_setting(name: str, text: str) -> Any:
    from .detection.pipeline import DetectSettings

    kind = str(DetectSettings.__dataclass_fields__[name].type)
    if "bool" in kind:
        return _parse_bool(text)
    if "int" in kind:
        number = float(text)
        if not number.is_integer():
            raise ValueError(f"not an integer: {text!r}")
        return int(number)
    if "float" in kind:
        return float(text)
    return text


def _convert_reader(key: str, text: str) -> Any:
    if key in ("skip_start_s", "sampling_rate", "scale"):
        return float(text)
    return text


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _looks_like_manifest(path: str) -> bool:
    """A ``.csv``/``.tsv`` input is a manifest if its header has a ``path`` column, or if its
    first data row holds text (a text recording holds numbers), so that a manifest that
    lacks its ``path`` column is reported as such instead of being read as a recording."""
    if not path.lower().endswith((".csv", ".tsv")):
        return False
    try:
        with open(path, newline="", encoding="utf-8-sig") as fh:
            head = [fh.readline() for _ in range(2)]
    except (OSError, UnicodeDecodeError):
        return False
    delimiter = "\t" if head[0].count("\t") > head[0].count(",") else ","
    rows = list(csv.reader([h for h in head if h.strip()], delimiter=delimiter))
    if not rows:
        return False
    if any(c.strip().lower() == "path" for c in rows[0]):
        return True
    return len(rows) > 1 and any(c.strip() and not _is_number(c.strip()) for c in rows[1])


def read_manifest(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """Read a batch manifest: a CSV (or tab-separated) table, one recording per row.

    Columns (names are case-insensitive; empty cells mean "not given"):

    - ``path`` (required): the recording file, relative to the manifest's folder or absolute;
    - ``name`` (optional): the result folder's name (default: from the path);
    - reader options: ``channel``, ``sweeps``, ``skip_start`` (s), ``dataset``,
      ``sampling_rate`` (Hz), ``scale``, ``unit``;
    - detection settings: any :class:`~minidet.detection.pipeline.DetectSettings` field
      (``model``, ``threshold``, ``window_size``, ``event_direction``, ...);
    - any other column is a free label (``cell``, ``condition``, ``animal``, ...) copied to
      the batch tables.

    Returns one dict per row with keys ``row`` (line number in the file), ``path``
    (absolute), ``name`` (or ``None``), ``reader``, ``overrides`` and ``labels``. Raises
    :class:`ParameterError` for a missing ``path`` column, an empty path, a label column that
    looks like a misspelt setting or an unconvertible value, and
    :class:`RecordingNotFoundError` listing the rows whose files do not exist.
    """
    manifest = Path(path)
    try:
        text = manifest.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise RecordingNotFoundError(f"no such manifest: {manifest}") from None
    except UnicodeDecodeError:
        raise ParameterError(f"manifest {manifest} is not a UTF-8 text file") from None
    lines = text.splitlines()
    first = next((ln for ln in lines if ln.strip()), "")
    delimiter = "\t" if first.count("\t") > first.count(",") else ","
    rows = list(csv.reader(io.StringIO(text), delimiter=delimiter))
    numbered = [(i + 1, r) for i, r in enumerate(rows) if any(c.strip() for c in r)
                and not r[0].lstrip().startswith("#")]
    if not numbered:
        raise ParameterError(f"manifest {manifest} is empty; it needs a header with a 'path' column and one row "
                             "per recording")
    header_line, header = numbered[0]
    columns = [c.strip() for c in header]
    lower = [c.lower() for c in columns]
    if "path" not in lower:
        raise ParameterError(
            f"manifest {manifest}: no 'path' column (columns found: {', '.join(columns) or 'none'}); "
            "the first row must name the columns: path (required), name, reader options (channel, sweeps, "
            "skip_start, dataset, sampling_rate, scale, unit), detection settings (threshold, window_size, ...) "
            "and free labels (cell, condition, ...)")
    dupes = sorted({c for c in lower if lower.count(c) > 1 and c})
    if dupes:
        raise ParameterError(f"manifest {manifest}: column(s) {dupes} appear more than once")
    if "" in lower:
        raise ParameterError(f"manifest {manifest}: column {lower.index('') + 1} of the header has no name")
    settings = set(_detect_fields())
    kinds: dict[str, tuple[str, str]] = {}
    for col, low in zip(columns, lower):
        if low in ("path", "name"):
            kinds[col] = ("meta", low)
        elif low in _READER_COLUMNS:
            kinds[col] = ("reader", _READER_COLUMNS[low])
        elif low in settings:
            kinds[col] = ("setting", low)
        else:
            close = difflib.get_close_matches(low, sorted(settings | set(_READER_COLUMNS)), n=1, cutoff=0.85)
            if close:
                raise ParameterError(f"manifest {manifest}: column {col!r} looks like a misspelt {close[0]!r}; "
                                     f"rename it ({close[0]!r} for the setting, or another name for a label)")
            if _is_table_column(low):
                raise ParameterError(f"manifest {manifest}: label column {col!r} would clash with a column of the "
                                     f"batch tables; rename it (e.g. {col + '_label'!r})")
            kinds[col] = ("label", col)
    base = manifest.resolve().parent
    out: list[dict[str, Any]] = []
    missing: list[str] = []
    for line, cells in numbered[1:]:
        if len(cells) > len(columns):
            extra = [c for c in cells[len(columns):] if c.strip()]
            if extra:
                raise ParameterError(f"manifest {manifest} line {line}: {len(cells)} cells but the header has "
                                     f"{len(columns)} columns")
        values = {col: (cells[i].strip() if i < len(cells) else "") for i, col in enumerate(columns)}
        entry: dict[str, Any] = {"row": line, "path": None, "name": None, "reader": {}, "overrides": {},
                                 "labels": {}}
        for col, text_value in values.items():
            kind, key = kinds[col]
            if kind == "label":
                entry["labels"][key] = text_value
                continue
            if text_value == "":
                continue
            try:
                if kind == "meta":
                    entry[key] = text_value
                elif kind == "reader":
                    entry["reader"][key] = _convert_reader(key, text_value)
                else:
                    entry["overrides"][key] = _convert_setting(key, text_value)
            except ValueError as exc:
                raise ParameterError(f"manifest {manifest} line {line}, column {col!r}: {exc}") from None
        if not entry["path"]:
            raise ParameterError(f"manifest {manifest} line {line}: the path is empty")
        p = Path(os.path.expanduser(entry["path"]))
        p = p if p.is_absolute() else base / p
        entry["path"] = os.path.abspath(p)
        if not os.path.isfile(entry["path"]):
            missing.append(f"line {line}: {entry['path']}")
        model = entry["overrides"].get("model")
        if model is not None and not os.path.isabs(model) and (base / model).is_file():
            from .model.zoo import is_model_name

            if not is_model_name(model):
                entry["overrides"]["model"] = str(base / model)
        out.append(entry)
    if missing:
        shown = "; ".join(missing[:10]) + (f"; and {len(missing) - 10} more" if len(missing) > 10 else "")
        raise RecordingNotFoundError(f"manifest {manifest}: {len(missing)} recording file(s) not found: {shown}")
    if not out:
        raise ParameterError(f"manifest {manifest} has a header but no recordings")
    return out


# ============================================================================ inputs
_UNSAFE = re.compile(r"[^A-Za-z0-9._+@=-]+")


def _safe_name(relative: str, strip_suffix: bool = False) -> str:
    """``sub/dir/cell 1.abf`` -> ``sub__dir__cell_1.abf`` (``strip_suffix``: ``sub__dir__cell_1``,
    as ``minidet detect`` names its folder after the file's stem): one folder name, stable."""
    parts = [p for p in re.split(r"[\\/]+", relative) if p and p != "."]
    if strip_suffix and parts and os.path.splitext(parts[-1])[0]:
        parts[-1] = os.path.splitext(parts[-1])[0]
    parts = [".." if p == ".." else p for p in parts]
    name = "__".join(_UNSAFE.sub("_", p) for p in parts if p != "..") or "recording"
    name = name.lstrip(".") or "recording"
    return name[:150]


def _glob_root(pattern: str) -> str:
    parts = Path(pattern).parts
    fixed: list[str] = []
    for part in parts:
        if re.search(r"[*?\[]", part):
            break
        fixed.append(part)
    return str(Path(*fixed)) if fixed else "."


def _skip_file(name: str, extensions: tuple[str, ...]) -> bool:
    low = name.lower()
    return (name.startswith(".") or low.endswith(_SKIPPED_SUFFIXES)
            or not low.endswith(extensions))


def _walk(folder: str, extensions: tuple[str, ...]) -> list[str]:
    found = []
    for root, dirs, files in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        found += [os.path.join(root, f) for f in sorted(files) if not _skip_file(f, extensions)]
    return found


def _inside(child: str, parent: str) -> bool:
    child, parent = os.path.realpath(child), os.path.realpath(parent)
    return child == parent or child.startswith(parent.rstrip(os.sep) + os.sep)


def _collect(inputs: Sequence[str], out_dir: str, settings: BatchSettings) -> list[_Entry]:
    base_reader = settings.reader_options
    entries: list[_Entry] = []

    def plain(path: str, relative: str, origin: str) -> None:
        entries.append(_Entry(path=os.path.abspath(path), name=_safe_name(relative, strip_suffix=True), reader=dict(base_reader),
                              overrides={}, labels={}, origin=origin))

    def folder(path: str, origin: str) -> None:
        if _inside(out_dir, path):
            raise OutputError(f"the output folder {out_dir} is inside the input folder {path}; results would be "
                              "read as recordings on the next run: put --out outside it")
        files = _walk(path, settings.extensions)
        if not files:
            raise RecordingNotFoundError(f"folder {path} holds no recordings (looked for {', '.join(settings.extensions)})")
        for f in files:
            plain(f, os.path.relpath(f, path), origin)

    for item in inputs:
        text = os.fspath(item)
        if not text.strip():
            raise ParameterError("an input is empty")
        text = os.path.expanduser(text)
        if os.path.isdir(text):
            folder(text, f"folder {text}")
        elif os.path.isfile(text):
            if _looks_like_manifest(text):
                for row in read_manifest(text):
                    reader = {**base_reader, **row["reader"]}
                    name = row["name"]
                    manifest_dir = os.path.dirname(os.path.abspath(text))
                    rel = os.path.relpath(row["path"], manifest_dir)
                    wanted = (_safe_name(name) if name else
                              _safe_name(os.path.basename(row["path"]) if rel.startswith("..") else rel,
                                         strip_suffix=True))
                    entries.append(_Entry(path=row["path"], name=wanted, reader=reader, overrides=row["overrides"],
                                          labels=row["labels"], origin=f"{text} line {row['row']}",
                                          explicit_name=bool(name), from_manifest=True))
            else:
                plain(text, os.path.basename(text), f"file {text}")
        elif re.search(r"[*?\[]", text):
            matches = sorted(glob.glob(text, recursive=True))
            root = _glob_root(text)
            found = 0
            for m in matches:
                if os.path.isdir(m):
                    folder(m, f"pattern {text}")
                    found += 1
                elif os.path.isfile(m) and not os.path.basename(m).startswith("."):
                    plain(m, os.path.relpath(m, root), f"pattern {text}")
                    found += 1
            if not found:
                raise RecordingNotFoundError(f"the pattern {text!r} matches no files")
        else:
            raise RecordingNotFoundError(f"no such file or folder: {text}")
    for e in entries:
        if _inside(e.path, out_dir):
            raise OutputError(f"input {e.path} ({e.origin}) is inside the output folder {out_dir}; "
                              "put --out elsewhere or move the recording")
    if not entries:
        raise ParameterError("no recordings to analyse: give files, folders, patterns or a manifest")
    return entries


def _identity(e: _Entry) -> str:
    """What a result depends on besides the batch settings: the file and the row's options."""
    from .io import ReadOptions
    from .report.writers import jsonable

    try:  # skip_start 0 written out or left empty is the same analysis
        reader = dataclasses.asdict(ReadOptions(**e.reader))
    except (MinidetError, TypeError, ValueError):
        reader = dict(e.reader)  # reported with its origin by _resolve
    payload = {"path": os.path.realpath(e.path), "reader": jsonable(reader), "overrides": jsonable(e.overrides)}
    return json.dumps(payload, sort_keys=True)


def _short_hash(text: str, n: int = 8) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:n]


def _unique(entries: list[_Entry]) -> list[_Entry]:
    """Drop repeats of one recording found twice by files/folders/patterns; refuse manifest
    rows that would write the same result; give colliding names a short stable hash."""
    seen: dict[str, _Entry] = {}
    kept: list[_Entry] = []
    for e in entries:
        key = _identity(e)
        if key in seen:
            first = seen[key]
            if e.from_manifest or first.from_manifest:
                raise ParameterError(
                    f"{e.origin} and {first.origin} describe the same analysis of {e.path} (same reader options "
                    "and settings), so they would write the same result; remove one or make them differ")
            continue
        seen[key] = e
        kept.append(e)
    groups: dict[str, list[_Entry]] = {}
    for e in kept:
        groups.setdefault(e.name.lower(), []).append(e)
    for group in groups.values():
        if len(group) < 2:
            continue
        explicit = [e for e in group if e.explicit_name]
        if explicit:
            raise ParameterError(
                f"{explicit[0].origin} names its result {explicit[0].name!r}, which "
                f"{next(e for e in group if e is not explicit[0]).origin} also writes; give each row its own name")
        for e in group:
            e.name = f"{e.name}-{_short_hash(_identity(e))}"
    names = [e.name.lower() for e in kept]
    if len(set(names)) != len(names):  # a suffixed name meeting a real one: vanishingly rare
        raise ParameterError("two recordings map to the same result folder name; give names in a manifest")
    return kept


# ============================================================================ hashes
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
        from .report.writers import atomic_write

        with atomic_write(self.path) as fh:
            json.dump({"version": 1, "files": self.entries}, fh, indent=1, sort_keys=True)
        self.changed = False


def _model_file(model: str) -> Path:
    from .model.zoo import bundled_path, is_model_name

    return bundled_path(model) if is_model_name(model) else Path(model)


def settings_hash(settings: Mapping[str, Any], model_sha256: str, reader: Mapping[str, Any],
                  outputs: Mapping[str, Any]) -> str:
    """Short hash of everything a recording's result depends on besides the file content:
    the resolved detection settings (without device and batch size), the model file's
    SHA-256, the reader options and which files are written."""
    from .io import ReadOptions
    from .report.writers import jsonable

    payload = {
        "format": MARKER_VERSION,
        "detect": {k: v for k, v in settings.items() if k not in _HASH_EXCLUDED},
        "model_sha256": model_sha256,
        "reader": dataclasses.asdict(ReadOptions(**dict(reader))),
        "outputs": dict(outputs),
    }
    return hashlib.sha256(json.dumps(jsonable(payload), sort_keys=True).encode()).hexdigest()[:16]


# ============================================================================ per-process state
# Worker processes keep their loaded models here, so each model is read once per process
# (the ProcessPoolExecutor initializer or the first Dask task fills it). Real state of a
# worker, not of the library: the main process only uses it for serial runs.
_MODELS: dict[str, Any] = {}
_THREADS: dict[str, int] = {}


def _cached_model(model: str) -> Any:
    if model not in _MODELS:
        from .model import load_model

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
    from . import report  # noqa: F401 - imported once here rather than in the first job
    from .detection import pipeline  # noqa: F401
    from .io import load  # noqa: F401

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


# ============================================================================ one recording
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
        from . import report
        from .detection.pipeline import DetectSettings, detect
        from .io import load
        from .report.writers import atomic_write, jsonable, summary_row

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


# ============================================================================ planning
def _as_inputs(inputs: str | os.PathLike[str] | Sequence[str | os.PathLike[str]]) -> list[str]:
    if isinstance(inputs, (str, os.PathLike)):
        return [os.fspath(inputs)]
    items = [os.fspath(i) for i in inputs]
    if not items:
        raise ParameterError("no inputs given: name recordings, folders, patterns or a manifest")
    return items


def _abs_out(out_dir: str | os.PathLike[str]) -> Path:
    out = Path(os.path.abspath(os.path.expanduser(os.fspath(out_dir))))
    if out.exists() and not out.is_dir():
        raise OutputError(f"output folder {out} exists and is not a folder; pick another with --out")
    return out


def _prepare_out(out: Path) -> None:
    from .report.writers import prepare_output_dir

    prepare_output_dir(out, [], force=True)  # creates it and checks it can be written


@dataclass
class _Resolved:
    entry: _Entry
    model: str
    settings: dict


def _resolve(inputs: Any, out: Path, settings: BatchSettings) -> list[_Resolved]:
    """Every check that needs no output folder: inputs, manifest, names, models, settings."""
    from .detection.pipeline import resolve_settings
    from .io import ReadOptions

    entries = _unique(_collect(_as_inputs(inputs), str(out), settings))
    metadata: dict[str, dict[str, Any]] = {}
    resolved = []
    for e in entries:
        try:
            ReadOptions(**e.reader)
        except MinidetError as exc:
            raise ParameterError(f"{e.origin}: {exc}") from None
        overrides = {**settings.overrides, **e.overrides}
        model_name = overrides.pop("model", settings.model)
        if model_name not in metadata:
            try:  # an unknown or damaged model fails here, before any work
                metadata[model_name] = _cached_model(model_name).metadata.to_dict()
            except MinidetError as exc:
                raise type(exc)(f"{e.origin}: {exc}") from None
        try:
            values = resolve_settings(None, metadata[model_name], overrides, model_name).to_dict()
        except MinidetError as exc:
            raise ParameterError(f"{e.origin}: {exc}") from None
        resolved.append(_Resolved(e, model_name, values))
    return resolved


def _make_jobs(resolved: list[_Resolved], out: Path, settings: BatchSettings, force: bool) -> list[RecordingJob]:
    index = _HashIndex(out / INDEX_FILE)
    model_sha: dict[str, str] = {}
    jobs: list[RecordingJob] = []
    for r in resolved:
        e = r.entry
        if r.model not in model_sha:
            model_sha[r.model] = index.sha256(str(_model_file(r.model)))
        try:
            content = index.sha256(e.path)
        except OSError as exc:
            raise RecordingNotFoundError(f"{e.origin}: cannot read {e.path}: {exc.strerror or exc}") from None
        job = RecordingJob(
            name=e.name, path=e.path, reader=dict(e.reader), settings=r.settings, model=r.model,
            labels=dict(e.labels), origin=e.origin, content_sha256=content, model_sha256=model_sha[r.model],
            settings_hash=settings_hash(r.settings, model_sha[r.model], e.reader, settings.outputs),
            out_dir=str(out), plots=settings.plots, nwb=settings.nwb, save_prediction=settings.save_prediction,
        )
        jobs.append(dataclasses.replace(job, up_to_date=not force and _is_up_to_date(job)))
    index.save()
    return jobs


def plan_batch(
    inputs: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
    out_dir: str | os.PathLike[str],
    settings: BatchSettings | None = None,
    *,
    force: bool = False,
) -> list[RecordingJob]:
    """Find the recordings, check everything that can be checked, and plan the work.

    Raises before any analysis (and before the output folder is created) for a missing
    input, a bad manifest, an output folder inside an input folder (or an input inside the
    output folder), two manifest rows that would write the same result, an unknown model or
    a bad setting. Then creates ``out_dir``, hashes every input (cached in
    ``OUT/_batch_index.json``) and marks the jobs whose result is already there
    (``up_to_date``; never with ``force``).
    """
    settings = settings or BatchSettings()
    out = _abs_out(out_dir)
    resolved = _resolve(inputs, out, settings)
    _prepare_out(out)
    return _make_jobs(resolved, out, settings, force)


# ============================================================================ running
def _cores() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # macOS, Windows
        return max(1, os.cpu_count() or 1)


def _check_count(name: str, value: Any) -> None:
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
        raise ParameterError(f"{name} must be an integer >= 1 or None, got {value!r}")


def resolve_workers(workers: int | None, threads_per_worker: int | None, n_jobs: int,
                    cores: int | None = None) -> tuple[int, int]:
    """``(workers, torch threads per worker)`` for a local run of ``n_jobs`` recordings.

    Defaults: one single-threaded worker per core, never more workers than recordings, and
    the cores shared out among the workers as threads, so that workers x threads <= cores.
    """
    _check_count("workers", workers)
    _check_count("threads_per_worker", threads_per_worker)
    cores = cores or _cores()
    n_jobs = max(1, int(n_jobs))
    if workers is None:
        workers = max(1, cores // (threads_per_worker or 1))
    workers = min(workers, n_jobs)
    if threads_per_worker is None:
        threads_per_worker = max(1, cores // workers)
    if workers * threads_per_worker > cores:
        log.warning("%d workers x %d threads exceed the %d cores: they will compete", workers,
                    threads_per_worker, cores)
    return workers, threads_per_worker


def _failure(job: RecordingJob, exc: BaseException) -> dict[str, Any]:
    return {"name": job.name, "status": "failed", "error_type": type(exc).__name__,
            "error": str(exc) or type(exc).__name__, "traceback": "", "worker": None,
            "elapsed_s": math.nan, "peak_rss_mb": math.nan}


def _run_serial(jobs: list[RecordingJob], threads: int | None, on_record: Callable[[dict], None]) -> None:
    previous = None
    if threads is not None:
        import torch

        previous = torch.get_num_threads()
        torch.set_num_threads(threads)
    try:
        for job in jobs:
            on_record(_run_job(job))
    finally:
        if previous is not None:
            import torch

            torch.set_num_threads(previous)


def _run_local(jobs: list[RecordingJob], workers: int, threads: int, on_record: Callable[[dict], None]) -> None:
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed

    models = sorted({j.model for j in jobs})
    # spawn: a fresh interpreter per worker (forking a process that already runs torch's
    # thread pools can deadlock)
    executor = ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn"),
                                   initializer=_init_worker, initargs=(threads, models))
    futures = {executor.submit(_run_job, job): job for job in jobs}
    try:
        for fut in as_completed(futures):
            try:
                record = fut.result()
            except Exception as exc:  # noqa: BLE001 - a worker that died (out of memory, killed)
                record = _failure(futures[fut], exc)
            on_record(record)
    except BaseException:
        for fut in futures:
            fut.cancel()
        # workers ignore Ctrl-C; stop the ones still computing (their temporary folders are
        # removed by the next run). _processes is the executor's own table of its processes.
        for process in list(getattr(executor, "_processes", {}).values()):
            with contextlib.suppress(Exception):
                process.terminate()
        raise
    finally:
        executor.shutdown(wait=True, cancel_futures=True)


def _run_dask(jobs: list[RecordingJob], client: Any, retries: int, on_record: Callable[[dict], None]) -> None:
    from distributed import as_completed

    token = secrets.token_hex(4)
    futures = {}
    for job in jobs:
        fut = client.submit(_run_job, job, key=f"minidet-batch-{job.name}-{token}", pure=False, retries=retries)
        futures[fut.key] = (fut, job)
    try:
        for fut in as_completed([f for f, _ in futures.values()]):
            job = futures[fut.key][1]
            try:
                record = fut.result()
            except Exception as exc:  # noqa: BLE001 - e.g. KilledWorker after repeated worker deaths
                record = _failure(job, exc)
            on_record(record)
    except BaseException:
        with contextlib.suppress(Exception):
            client.cancel([f for f, _ in futures.values()])
        raise


# ============================================================================ tables
def _summary_columns(jobs: list[RecordingJob], markers: dict[str, dict]) -> list[str]:
    keys: list[str] = []
    for job in jobs:
        for k in (markers.get(job.name) or {}).get("summary", {}):
            if k not in keys and k != "unit":
                keys.append(k)
    return keys


def _label_columns(jobs: list[RecordingJob]) -> list[str]:
    labels: list[str] = []
    for job in jobs:
        for k in job.labels:
            if k not in labels:
                labels.append(k)
    return labels


def _build_tables(jobs: list[RecordingJob], records: dict[str, dict], out: Path
                  ) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    from .detection.pipeline import EVENT_COLUMNS
    from .report.writers import _summary_key_with_unit, read_results, unit_columns

    markers = {name: rec.get("marker") for name, rec in records.items() if rec.get("marker")}
    labels = _label_columns(jobs)
    summary_keys = _summary_columns(jobs, markers)
    rows, failures, event_frames = [], [], []
    event_units: list[str] = []
    for job in jobs:
        rec = records.get(job.name, {"status": "not run"})
        marker = markers.get(job.name) or {}
        events = None
        if rec["status"] != "failed" and marker:
            try:
                events = read_results(job.result_dir).events.copy()
            except (MinidetError, OSError, KeyError, ValueError) as exc:  # damaged since it was written
                with contextlib.suppress(OSError):  # so that the next run redoes it
                    (job.result_dir / DONE_MARKER).unlink()
                rec = {**rec, "status": "failed", "error_type": type(exc).__name__,
                       "error": f"the stored result cannot be read ({exc}); the next run redoes it"}
                marker = {}
        row: dict[str, Any] = {"recording": job.name, "status": rec["status"], "path": job.path}
        row.update({k: job.labels.get(k, "") for k in labels})
        summary = marker.get("summary", {})
        # the column names of summary.csv: the unit in the name (amplitude_mean_pA)
        row.update({_summary_key_with_unit(k, marker.get("unit") or "") if marker.get("unit") else k: summary.get(k)
                    for k in summary_keys})
        row.update({
            "unit": marker.get("unit"),
            "sampling_rate_hz": marker.get("sampling_rate_hz"),
            "n_detected": marker.get("n_detected"),
            "n_excluded": marker.get("n_excluded"),
            "model": job.model,
            "settings_hash": job.settings_hash,
            "content_sha256": job.content_sha256,
            "model_sha256": job.model_sha256,
            "results": os.path.join(RECORDINGS_DIR, job.name) if marker else None,
            "elapsed_s": marker.get("elapsed_s", rec.get("elapsed_s")),
            "worker": marker.get("worker", rec.get("worker")),
            "peak_rss_mb": rec.get("peak_rss_mb"),
            "error_type": rec.get("error_type"),
            "error": rec.get("error"),
        })
        rows.append(row)
        if rec["status"] == "failed":
            failures.append({"recording": job.name, "path": job.path, **{k: job.labels.get(k, "") for k in labels},
                             "origin": job.origin, "error_type": rec.get("error_type"), "error": rec.get("error"),
                             "traceback": rec.get("traceback", "")})
        elif events is not None:
            events.insert(0, "event", events.index.to_numpy(np.int64))
            events.insert(0, "recording", job.name)
            for i, k in enumerate(labels):
                events.insert(1 + i, k, job.labels.get(k, ""))
            events["unit"] = marker.get("unit")
            # the column names of events.csv: the unit in the name (amplitude_pA, charge_pC)
            events = events.rename(columns=unit_columns(list(EVENT_COLUMNS), marker.get("unit") or ""))
            event_frames.append(events.reset_index(drop=True))
            event_units.append(marker.get("unit") or "")
    recordings = pd.DataFrame(rows)
    fixed = ["recording", "status", "path", *labels, "unit", "sampling_rate_hz", "n_detected", "n_excluded", "model",
             "settings_hash", "content_sha256", "model_sha256", "results", "elapsed_s", "worker", "peak_rss_mb",
             "error_type", "error"]
    summary_columns = [c for c in recordings.columns if c not in fixed]
    for k in summary_columns + ["sampling_rate_hz", "n_detected", "n_excluded", "elapsed_s", "peak_rss_mb"]:
        if k in recordings:
            recordings[k] = pd.to_numeric(recordings[k], errors="coerce")
    # recordings in other units add their own columns (amplitude_mV next to amplitude_pA);
    # without any result there is no unit to name, and the columns keep their plain names
    event_columns: list[str] = [] if event_units else list(EVENT_COLUMNS)
    for unit in event_units:
        event_columns += [c for c in unit_columns(list(EVENT_COLUMNS), unit).values() if c not in event_columns]
    columns = ["recording", *labels, "event", *event_columns, "unit"]
    nonempty = [f for f in event_frames if len(f)]
    if nonempty:
        events = pd.concat(nonempty, ignore_index=True).reindex(columns=columns)
    else:
        from .detection.pipeline import empty_events

        events = empty_events()
        if event_units:
            events = events.rename(columns=unit_columns(list(EVENT_COLUMNS), event_units[0]))
        events.insert(0, "event", np.zeros(0, np.int64))
        events.insert(0, "recording", pd.Series([], dtype=object))
        for i, k in enumerate(labels):
            events.insert(1 + i, k, pd.Series([], dtype=object))
        events["unit"] = pd.Series([], dtype=object)
        events = events[columns]
    failure_columns = ["recording", "path", *labels, "origin", "error_type", "error", "traceback"]
    failures_df = pd.DataFrame(failures, columns=failure_columns)
    return recordings, events, failures_df


def _write_table(frame: pd.DataFrame, out: Path, stem: str) -> dict[str, Path]:
    from .report.writers import atomic_path, atomic_write

    csv_path, parquet_path = out / f"{stem}.csv", out / f"{stem}.parquet"
    with atomic_write(csv_path, newline="") as fh:
        frame.to_csv(fh, index=False, float_format="%.9g")
    written = {csv_path.name: csv_path}
    try:
        import pyarrow  # noqa: F401
    except ImportError:
        log.warning("pyarrow is not installed: %s not written", parquet_path.name)
        return written
    with atomic_path(parquet_path) as tmp:
        frame.to_parquet(tmp, index=False, engine="pyarrow")
    written[parquet_path.name] = parquet_path
    return written


# ============================================================================ the batch
@dataclass(frozen=True, eq=False)
class BatchResult:
    """What a batch produced.

    Attributes
    ----------
    out_dir
        The output folder.
    jobs
        The planned recordings (see :class:`RecordingJob`).
    recordings
        One row per recording: ``recording`` (its result folder's name), ``status``
        (``done``: analysed now; ``cached``: result from an earlier run reused; ``failed``),
        labels, summary statistics, ``settings_hash``, ``content_sha256``, ``results``.
    events
        Every event of the recordings that have results, with ``recording``, labels and
        ``unit``; the columns are named as in events.csv, with the unit (``amplitude_pA``).
    failures
        The failed recordings with ``error_type`` and ``error``.
    files
        Table file name -> path.
    """

    out_dir: Path
    jobs: list[RecordingJob]
    recordings: pd.DataFrame
    events: pd.DataFrame
    failures: pd.DataFrame
    files: dict[str, Path] = field(default_factory=dict)

    @property
    def n_failed(self) -> int:
        return int((self.recordings["status"] == "failed").sum())

    @property
    def n_done(self) -> int:
        return int((self.recordings["status"] == "done").sum())

    @property
    def n_cached(self) -> int:
        return int((self.recordings["status"] == "cached").sum())

    @property
    def ok(self) -> bool:
        """True when no recording failed."""
        return self.n_failed == 0

    def __repr__(self) -> str:
        return (f"BatchResult({len(self.recordings)} recordings: {self.n_done} done, {self.n_cached} cached, "
                f"{self.n_failed} failed; {len(self.events)} events; out_dir={str(self.out_dir)!r})")


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


def run_batch(
    inputs: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
    out_dir: str | os.PathLike[str],
    settings: BatchSettings | None = None,
    *,
    workers: int | None = None,
    threads_per_worker: int | None = None,
    client: Any = None,
    scheduler: str | None = None,
    retries: int = 2,
    force: bool = False,
    progress: bool = True,
) -> BatchResult:
    """Detect events in many recordings; write per-recording results and batch tables.

    Parameters
    ----------
    inputs
        Recording files, folders (searched recursively for :data:`FOLDER_EXTENSIONS`), glob
        patterns (``"data/**/*.abf"``), and CSV manifests (see :func:`read_manifest`).
    out_dir
        Output folder: ``recordings/<name>/`` per recording (the files ``minidet detect``
        writes plus ``_done.json``), ``batch_summary``, ``batch_events`` and
        ``batch_failures`` as ``.csv`` and ``.parquet``. Must not lie inside an input folder.
    settings
        :class:`BatchSettings` (model, detection settings, reader options, extra outputs).
    workers
        Local worker processes; ``None``: one per core (at most one per recording); ``1``:
        run in this process.
    threads_per_worker
        Torch threads per worker; ``None``: the cores shared out among the workers. With a
        Dask cluster, set in each task when given (else the cluster's setting stands).
    client
        A ``dask.distributed.Client``: one task per recording on its cluster.
    scheduler
        Address of a Dask scheduler (``tcp://HOST:PORT``) to connect to instead of ``client``.
    retries
        Dask only: how often a task whose worker raised is tried again (a task on a worker
        that dies is rescheduled by the scheduler in any case).
    force
        Redo every recording, even those with an up-to-date result.
    progress
        Show a progress bar over the recordings (stderr).

    Returns
    -------
    BatchResult
        Its ``ok`` is False when some recording failed (``failures`` says why); the others
        are complete. Errors in the inputs or settings raise before any work starts.
    """
    if client is not None and scheduler is not None:
        raise ParameterError("give either client or scheduler, not both")
    if (client is not None or scheduler is not None) and workers is not None:
        raise ParameterError("workers is for local runs; a Dask cluster has its own workers")
    if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
        raise ParameterError(f"retries must be an integer >= 0, got {retries!r}")
    if scheduler is not None and not (isinstance(scheduler, str) and re.match(r"^[a-z]+://.+", scheduler)):
        raise ParameterError(f"scheduler must be an address like tcp://HOST:PORT, got {scheduler!r}")
    settings = settings or BatchSettings()
    _check_count("workers", workers)  # bad values fail before the planning
    _check_count("threads_per_worker", threads_per_worker)

    out = _abs_out(out_dir)
    resolved = _resolve(inputs, out, settings)
    _prepare_out(out)
    with _batch_lock(out):
        jobs = _make_jobs(resolved, out, settings, force)
        _remove_leftovers(out)
        todo = [j for j in jobs if not j.up_to_date]
        records: dict[str, dict] = {}
        for job in jobs:
            if job.up_to_date:
                records[job.name] = {"name": job.name, "status": "cached", "marker": _read_marker(job.result_dir)}

        from tqdm.auto import tqdm

        bar = tqdm(total=len(jobs), initial=len(jobs) - len(todo), unit="rec", desc="recordings",
                   disable=not progress, file=sys.stderr, dynamic_ncols=True)
        failed = 0

        def on_record(record: dict) -> None:
            nonlocal failed
            records[record["name"]] = record
            if record["status"] == "failed":
                failed += 1
                log.info("%s failed: %s", record["name"], record.get("error"))
                bar.set_postfix(failed=failed)
            bar.update(1)

        try:
            if todo:
                if client is not None or scheduler is not None:
                    own = None
                    if client is None:
                        try:
                            from distributed import Client
                        except ImportError:
                            raise ParameterError("--scheduler needs the 'distributed' package: "
                                                 "pip install distributed") from None

                        client = own = Client(scheduler)
                    try:
                        if threads_per_worker is not None:
                            todo = [dataclasses.replace(j, torch_threads=threads_per_worker) for j in todo]
                        _run_dask(todo, client, retries, on_record)
                    finally:
                        if own is not None:
                            own.close()
                else:
                    n_workers, threads = resolve_workers(workers, threads_per_worker, len(todo))
                    if n_workers == 1:
                        _run_serial(todo, threads, on_record)
                    else:
                        _run_local(todo, n_workers, threads, on_record)
        finally:
            bar.close()
        _remove_leftovers(out)

        recordings, events, failures = _build_tables(jobs, records, out)
        files: dict[str, Path] = {}
        for frame, stem in ((recordings, SUMMARY_TABLE), (events, EVENTS_TABLE), (failures, FAILURES_TABLE)):
            files.update(_write_table(frame, out, stem))
    return BatchResult(out_dir=out, jobs=jobs, recordings=recordings, events=events, failures=failures, files=files)
