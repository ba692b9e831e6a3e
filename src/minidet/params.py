"""Every detection setting, declared once: type, unit, range, default, help, and which
model-metadata keys may supply it (after scikit-learn's declared parameter constraints).

Everything else is derived from :data:`PARAMS`:

- the settings classes (``DetectSettings``, ``PredictSettings``, ``LocateSettings``,
  ``MeasureSettings``) take their defaults from it and check their fields with :func:`check`,
  so a bound and its message live here and nowhere else;
- ``minidet detect`` / ``minidet batch`` generate their options from it
  (:func:`minidet.cli.detect_options`), and an API message names the CLI option
  (:func:`cli_patterns`);
- a batch manifest's setting columns and the analysis app's settings form are parsed with
  :meth:`Param.parse`; the app's form takes its bounds and help from :func:`schema`;
- the model's metadata fills a setting through :func:`metadata_keys`.

A new setting is one line here plus its use.

>>> check("threshold", 0.5)
>>> check("window_size", 12)
Traceback (most recent call last):
...
minidet.errors.ParameterError: window_size must be an integer >= 30 samples, got 12
>>> PARAMS["convolve_win"].parse("0")
0
"""

from __future__ import annotations

import functools
import math
import re
from dataclasses import dataclass, fields, replace
from typing import Any

import numpy as np

from . import DEFAULT_MODEL
from .errors import ParameterError
from .windows import MIN_WINDOW_SIZE

__all__ = ["PARAMS", "Param", "check", "check_fields", "cli_patterns", "default", "metadata_keys", "schema"]

#: the value kinds a setting may have
KINDS = ("int", "float", "bool", "choice", "str")
DIRECTIONS = ("negative", "positive")
KINETICS_METHODS = ("fit", "filtered")
PREDICT_MODES = ("fast", "full")
_TRUE = ("1", "true", "yes", "on", "y", "t")
_FALSE = ("0", "false", "no", "off", "n", "f")


@dataclass(frozen=True)
class Param:
    """One setting.

    ``kind`` is one of :data:`KINDS`; numbers have the range ``low``..``high`` (either may be
    ``None``), each end open or closed; ``choices`` are a ``"choice"``'s values; ``also`` lists
    other accepted values (``None``, ``"auto"``, ``0``); ``accepted`` replaces the generated
    description of the accepted values where the generated one would not say what they mean.
    ``metadata`` are the keys of a model file's metadata that may supply the setting (first
    found wins); ``when_unset`` says what an unset value (``None``, an option left out) means
    where that is not the model's value or the default; ``cli`` is false for a setting the
    command line does not offer.
    """

    name: str
    kind: str
    unit: str
    default: Any
    help: str
    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False
    also: tuple[Any, ...] = ()
    choices: tuple[str, ...] = ()
    accepted: str = ""
    metadata: tuple[str, ...] = ()
    when_unset: str = ""
    cli: bool = True

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"{self.name}: kind {self.kind!r} is not one of {KINDS}")
        if (self.kind == "choice") != bool(self.choices):
            raise ValueError(f"{self.name}: a 'choice' setting, and only one, has choices")

    # ------------------------------------------------------------------ checking
    def _is_also(self, value: Any) -> bool:
        for a in self.also:
            if value is a or (isinstance(a, str) and value == a):
                return True
            if (isinstance(a, (int, float)) and not isinstance(a, bool) and isinstance(value, (int, np.integer))
                    and not isinstance(value, (bool, np.bool_)) and value == a):
                return True
        return False

    def accepts(self, value: Any) -> bool:
        if self._is_also(value):
            return True
        if self.kind == "bool":
            return isinstance(value, (bool, np.bool_))
        if self.kind == "choice":
            return isinstance(value, str) and value in self.choices
        if self.kind == "str":
            return isinstance(value, str) and bool(value.strip())
        if isinstance(value, (bool, np.bool_)):
            return False
        if self.kind == "int" and not isinstance(value, (int, np.integer)):
            return False
        if self.kind == "float" and not (isinstance(value, (int, float, np.integer, np.floating))
                                         and math.isfinite(float(value))):
            return False
        if self.low is not None and (value <= self.low if self.low_open else value < self.low):
            return False
        if self.high is not None and (value >= self.high if self.high_open else value > self.high):
            return False
        return True

    def describe(self) -> str:
        """The accepted values in words, as the error message gives them."""
        if self.accepted:
            return self.accepted
        if self.kind == "bool":
            what = "True or False"
        elif self.kind == "choice":
            return _or_list([repr(c) for c in self.choices + self.also])
        elif self.kind == "str":
            what = "a non-empty text"
        else:
            what = "an integer" if self.kind == "int" else "a number"
            if self.low is not None and self.high is not None:
                what += (f" in {'(' if self.low_open else '['}{self.low:g}, {self.high:g}"
                         f"{')' if self.high_open else ']'}")
            elif self.low is not None:
                what += f" {'>' if self.low_open else '>='} {self.low:g}"
            elif self.high is not None:
                what += f" {'<' if self.high_open else '<='} {self.high:g}"
            if self.unit:
                what += f" {self.unit}"
        if len(self.also) == 1:
            what += f" or {self.also[0]!r}"
        elif self.also:
            what += ", " + _or_list([repr(a) for a in self.also])
        return what

    # ------------------------------------------------------------------ parsing
    def parse(self, value: Any) -> Any:
        """The setting's value from text (a CLI option, a manifest cell, a form field) or a JSON
        value, checked; :class:`~minidet.errors.ParameterError` names the setting and what it
        takes. ``None`` or an empty text is ``None`` (the caller leaves the setting to the model)."""
        if value is None:
            return None
        if isinstance(value, str):
            if not value.strip():
                return None
            value = self.from_text(value)
        elif self.kind == "int" and isinstance(value, (float, np.floating)) and float(value).is_integer():
            value = int(value)
        check(self.name, value)
        return value

    def _from_text(self, text: str) -> Any:
        fail = ParameterError(f"{self.name} must be {self.describe()}, got {text!r}")
        if self.kind == "bool":
            low = text.lower()
            if low in _TRUE:
                return True
            if low in _FALSE:
                return False
            raise fail
        if self.kind in ("choice", "str"):
            return text
        try:
            number = float(text)
        except ValueError:
            raise fail from None
        if self.kind == "int":
            if not number.is_integer():
                raise fail
            return int(number)
        return number

    # ------------------------------------------------------------------ the command line
    @property
    def option(self) -> str:
        """The command-line option: ``--window-size``."""
        return "--" + self.name.replace("_", "-")

    def option_help(self) -> str:
        """The option's help: the help text, the unit, and what leaving it out means."""
        text = self.help
        if self.unit and self.kind in ("int", "float"):
            text += f" Unit: {self.unit}."
        if self.when_unset:
            unset = self.when_unset
        elif self.metadata:
            unset = "model default"
        else:
            unset = f"{self.default:g}" if isinstance(self.default, float) else str(self.default)
        return f"{text} [{unset}]"

    def from_text(self, text: str) -> Any:
        """The typed value of a command-line text, unchecked against the range (the settings
        class checks it with the rest); ``None`` for an unset value."""
        text = text.strip()
        for a in self.also:
            if a is None and text.lower() == "none":
                return None
            if isinstance(a, str) and text.lower() == a.lower():
                return a
        return self._from_text(text)


def _or_list(items: list[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " or " + items[-1]


#: every detection setting
PARAMS: dict[str, Param] = {p.name: p for p in (
    Param("model", "str", "", DEFAULT_MODEL,
          "Bundled model name or path of a model file (.safetensors, miniML .h5/.keras).",
          accepted="a model name or file path"),
    Param("window_size", "int", "samples", 600,
          "Samples of the recording in one window (one event and its surroundings, miniML's "
          "win_size); the trace is resampled so that it fills the network's input.",
          low=MIN_WINDOW_SIZE, metadata=("window_size",)),
    Param("stride", "int", "samples", None,
          "Step between prediction windows.", low=1, also=(None,), metadata=("stride",),
          when_unset="the model's at its own window, else round(window size / 30) as miniML"),
    Param("threshold", "float", "", None,
          "Minimum prediction peak for an event, in (0, 1), or 'auto': chosen for each recording from "
          "its inverted trace (a second pass, on long recordings only as much of it as the choice needs: "
          "see auto_inverted_s).",
          low=0.0, high=1.0, low_open=True, high_open=True, also=(None, "auto"),
          metadata=("threshold", "model_threshold")),
    Param("event_direction", "choice", "", "negative", "Direction of the events in the recording.",
          choices=DIRECTIONS, metadata=("event_direction",)),
    Param("training_direction", "choice", "", None,
          "Direction of the events the model was trained on; the trace is inverted for scoring "
          "when it differs from the events' direction.",
          choices=DIRECTIONS, also=(None,), metadata=("training_direction",)),
    Param("resample", "bool", "", True,
          "Resample the trace so that one window fills the model's input (needed for a window other "
          "than the input size; miniML's resample_to_600).",
          metadata=("resample", "resample_to_600"), when_unset="on for models that may be resampled: "
          "every 600-sample-input model"),
    Param("convolve_win", "int", "samples", 20,
          "Hann filter width that places each event at the steepest rise and measures with "
          "the 'filtered' kinetics method; 0: Butterworth low-pass at sampling rate / filter factor.",
          low=3, also=(0,), accepted="0 (Butterworth low-pass) or an integer >= 3 samples",
          metadata=("convolve_win",)),
    Param("gradient_convolve_win", "int", "samples", None,
          "Hann filter width of the derivative; 0: none.",
          low=3, also=(0, None), accepted="0 (no smoothing), None (2 x convolve_win) or an integer >= 3 samples",
          metadata=("gradient_convolve_win",), when_unset="the model's, else 2 x the filter width"),
    Param("filter_factor", "float", "", 20.0,
          "Butterworth low-pass cut-off = sampling rate / this, used where the filter width is 0; "
          "> 2 keeps the cut-off below Nyquist.", low=2.0, low_open=True),
    Param("rel_prom_cutoff", "float", "", 0.25,
          "Relative prominence, in (0, 1], that separates overlapping events in one prediction peak.",
          low=0.0, high=1.0, low_open=True),
    Param("peak_w", "int", "prediction steps", 5,
          "Minimum width of a prediction peak (miniML's peak_w).", low=1),
    Param("smoothing_steps", "int", "prediction steps", 1,
          "Average the prediction over this many window steps before finding its peaks (1 = none, as miniML).",
          low=1, metadata=("smoothing_steps",)),
    Param("peak_prominence", "float", "", None,
          "Minimum prominence of a prediction peak, in (0, 1].",
          low=0.0, high=1.0, low_open=True, also=(None,), metadata=("peak_prominence",),
          when_unset="the model's, else the threshold (miniML)"),
    Param("batch_size", "int", "windows", 128, "Windows per forward pass of the network.", low=1),
    Param("device", "str", "", "auto", "Torch device: auto, cpu, cuda, cuda:N or mps.",
          accepted="'auto', 'cpu', 'cuda', 'cuda:N' or 'mps'"),
    Param("predict_mode", "choice", "", "fast",
          "'fast': coarse windows, refined where any may score above 0.002 (the same events); "
          "'full': every window, as miniML.", choices=PREDICT_MODES),
    Param("auto_inverted_s", "float", "s", 30.0,
          "Seconds of the inverted recording that threshold='auto' scores first, in pieces of 5 s spread "
          "evenly over the recording (noise counts scaled to the whole); it scores more, doubling, until "
          "the choice is settled (its events agree with the whole pass's choice by F1 >= 0.995 in 99 % of "
          "the plausible counts). 0, or a recording not longer: all of it at once.", low=0.0),
    Param("kinetics_method", "choice", "", "fit",
          "How amplitude, rise, half decay and decay tau are measured: 'fit' (a rise-and-decay fit to "
          "the unfiltered trace) or 'filtered' (miniML's rules on the trace filtered for placing events).",
          choices=KINETICS_METHODS),
)}


def default(name: str) -> Any:
    """The declared default of setting ``name`` (for the settings classes' fields)."""
    return PARAMS[name].default


def check(name: str, value: Any, *, also: tuple[Any, ...] | None = None) -> None:
    """Raise :class:`~minidet.errors.ParameterError` unless ``value`` is accepted for the
    setting ``name``; ``also`` replaces the declared extra values (e.g. ``()`` where a stage
    needs a number: the locator has no ``'auto'``)."""
    param = PARAMS[name]
    if also is not None:
        param = replace(param, also=also, accepted="" if param.also else param.accepted)
    if not param.accepts(value):
        raise ParameterError(f"{name} must be {param.describe()}, got {value!r}")


def check_fields(settings: Any, *, also: dict[str, tuple[Any, ...]] | None = None,
                 skip: tuple[str, ...] = ()) -> None:
    """Check every field of the dataclass ``settings`` that is a declared setting, in field
    order; ``also`` replaces a setting's extra values (see :func:`check`); ``skip`` names
    fields that share a declared name but not its meaning (the locator's fractional stride)."""
    also = also or {}
    for f in fields(settings):
        if f.name in PARAMS and f.name not in skip:
            check(f.name, getattr(settings, f.name), also=also.get(f.name))


def metadata_keys() -> dict[str, tuple[str, ...]]:
    """Setting name -> the model-metadata keys that may supply it."""
    return {p.name: p.metadata for p in PARAMS.values() if p.metadata}


def integer_settings() -> tuple[str, ...]:
    """The settings whose values are whole numbers (a model file may store them as floats)."""
    return tuple(p.name for p in PARAMS.values() if p.kind == "int")


def schema() -> list[dict[str, Any]]:
    """The declarations as JSON-able rows (for the analysis app's form and the docs)."""
    rows = []
    for p in PARAMS.values():
        rows.append({"name": p.name, "kind": p.kind, "unit": p.unit, "default": p.default, "help": p.help,
                     "low": p.low, "high": p.high, "low_open": p.low_open, "high_open": p.high_open,
                     "also": list(p.also), "choices": list(p.choices), "accepted": p.describe(),
                     "from_model": bool(p.metadata), "when_unset": p.when_unset, "option": p.option})
    return rows


@functools.lru_cache(maxsize=1)
def cli_patterns() -> tuple[tuple[re.Pattern[str], str], ...]:
    """Rewrites of API messages into command-line terms: ``window_size=643`` ->
    ``--window-size 643``, ``threshold must be ..., None or 'auto'`` -> ``--threshold must be
    ... or 'auto'`` (on the command line an option left out is what ``None`` means)."""
    out: list[tuple[re.Pattern[str], str]] = [
        (re.compile(r"\bresample=False\b"), "--no-resample"),
        (re.compile(r"\bresample=True\b"), "--resample"),
        (re.compile(r"\bwindow_size=None\b"), "no --window-size"),
    ]
    for p in PARAMS.values():
        out.append((re.compile(rf"\b{p.name}=(?=[\d'\-])"), p.option + " "))
        out.append((re.compile(rf"(?<![-\w]){p.name} must be (.*?), None or "), rf"{p.option} must be \1 or "))
        out.append((re.compile(rf"(?<![-\w]){p.name} must be (.*?) or None\b"), rf"{p.option} must be \1"))
        out.append((re.compile(rf"(?<![-\w]){p.name} must be (.*?), None \([^)]*\) or "), rf"{p.option} must be \1 or "))
        out.append((re.compile(rf"(?<![-\w]){p.name}\b(?= must)"), p.option))
    out.append((re.compile(r"(?<![-\w])window_size\b"), "--window-size"))
    return tuple(out)
