"""Finding the recordings of a batch (files, folders, globs, manifests) and naming their result folders."""

from __future__ import annotations

import dataclasses
import glob
import hashlib
import json
import logging
import os
import re
from pathlib import Path
from typing import Sequence


from ..errors import MinidetError, OutputError, ParameterError, RecordingNotFoundError
from .manifest import _Entry, _looks_like_manifest, read_manifest
from .settings import BatchSettings, _SKIPPED_SUFFIXES

log = logging.getLogger(__name__)


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
    from ..io import ReadOptions
    from ..report.writers import jsonable

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
