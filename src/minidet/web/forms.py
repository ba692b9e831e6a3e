"""What the analysis page sends, read as the API's arguments: reader options and detection settings
(parsed with their declarations in minidet.params).
"""

from __future__ import annotations

from typing import Any

from ..errors import ParameterError
from ..io import READER_KEYS
from ..params import PARAMS

__all__ = ["READER_KEYS", "detect_overrides", "reader_options", "stored_reader_options"]



def reader_options(raw: Any) -> dict[str, Any]:
    """Reader options from the page (strings or numbers; empty means unset) for :func:`minidet.load`."""
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise ParameterError("reader options must be an object")
    unknown = sorted(set(raw) - set(READER_KEYS))
    if unknown:
        raise ParameterError(f"unknown reader option(s) {unknown}; allowed: {', '.join(READER_KEYS)}")
    out: dict[str, Any] = {}
    for key in READER_KEYS:
        value = raw.get(key)
        if value is None or (isinstance(value, str) and not value.strip()):
            continue
        if key in ("skip_start_s", "sampling_rate", "scale"):
            try:
                value = float(value)
            except (TypeError, ValueError):
                raise ParameterError(f"{key} must be a number, got {value!r}") from None
            if key == "skip_start_s" and value == 0:
                continue
        elif key == "sweeps" and isinstance(value, list):
            if not all(isinstance(v, int) and not isinstance(v, bool) for v in value):
                raise ParameterError(f"sweeps must be a spec like '0-3,5' or a list of integers, got {value!r}")
        elif key == "channel" and isinstance(value, int) and not isinstance(value, bool):
            value = str(value)
        elif not isinstance(value, str):
            raise ParameterError(f"{key} must be text, got {value!r}")
        else:
            value = value.strip()
        out[key] = value
    return out

def detect_overrides(raw: Any) -> dict[str, Any]:
    """Detection settings from the page (empty or missing: the model's default)."""
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise ParameterError("settings must be an object")
    names = set(PARAMS) - {"model"}  # the declared detection settings (DetectSettings' fields)
    unknown = sorted(set(raw) - names)
    if unknown:
        raise ParameterError(f"unknown setting(s) {unknown}; allowed: {', '.join(sorted(names))}")
    out: dict[str, Any] = {}
    for key, value in raw.items():
        parsed = PARAMS[key].parse(value)  # the declared type, range and message (minidet.params)
        if parsed is not None:
            out[key] = parsed
    return out


def stored_reader_options(stored: Any) -> dict[str, Any]:
    """The reader options a stored result was read with (exact when the app wrote it)."""
    rec = stored.recording
    meta = rec.get("metadata") or {}
    if isinstance(meta.get("reader_options"), dict):
        return dict(meta["reader_options"])
    options: dict[str, Any] = {}
    if rec.get("channel"):
        options["channel"] = rec["channel"]
    if meta.get("sweeps") is not None:
        options["sweeps"] = [int(s) for s in meta["sweeps"]]
    if meta.get("skip_start_s"):
        options["skip_start_s"] = float(meta["skip_start_s"])
    if meta.get("scale") is not None:
        options["scale"] = float(meta["scale"])
        options["unit"] = rec.get("unit")
    return options
