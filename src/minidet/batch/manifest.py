"""Batch manifests: a CSV/TSV table, one recording per row (path, reader options, settings, labels)."""

from __future__ import annotations

import csv
import difflib
import io
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any


from ..errors import ParameterError, RecordingNotFoundError
from ..params import PARAMS
from .settings import _READER_COLUMNS, _is_table_column

log = logging.getLogger(__name__)


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
    """A manifest cell of a detection-setting column, as the declared type (minidet.params)."""
    from ..params import PARAMS

    return PARAMS[name].parse(text)


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
    settings = set(PARAMS)  # the declared detection settings (DetectSettings' fields)
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
            from ..model.zoo import is_model_name

            if not is_model_name(model):
                entry["overrides"]["model"] = str(base / model)
        out.append(entry)
    if missing:
        shown = "; ".join(missing[:10]) + (f"; and {len(missing) - 10} more" if len(missing) > 10 else "")
        raise RecordingNotFoundError(f"manifest {manifest}: {len(missing)} recording file(s) not found: {shown}")
    if not out:
        raise ParameterError(f"manifest {manifest} has a header but no recordings")
    return out
