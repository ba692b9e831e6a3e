"""Detection settings that several stages share, each declared once: type, unit, range,
default and help (after scikit-learn's declared parameter constraints).

The settings classes of the stages (``DetectSettings``, ``LocateSettings``,
``MeasureSettings``) check these fields with :func:`check`, so a bound and its message live
here and nowhere else. Settings that one stage alone uses are still checked where they are
used; moving them here is the rest of issue 21 part 3.

>>> check("threshold", 0.5)
>>> check("window_size", 12)
Traceback (most recent call last):
...
minidet.errors.ParameterError: window_size must be an integer >= 30 samples, got 12
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from .errors import ParameterError
from .windows import MIN_WINDOW_SIZE

__all__ = ["PARAMS", "Param", "check"]


@dataclass(frozen=True)
class Param:
    """One setting: ``kind`` ``"int"`` or ``"float"``; the range ``low``..``high`` (either may be
    ``None``), each end open or closed; ``also`` lists other accepted values (``None``, ``"auto"``)."""

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

    def accepts(self, value: Any) -> bool:
        if any(value is a or (isinstance(a, str) and value == a) for a in self.also):
            return True
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
        if self.also:
            others = [repr(a) for a in self.also]
            what += ", " + " or ".join(others) if len(others) == 1 else ", " + ", ".join(others[:-1]) + " or " + others[-1]
        return what


#: the settings several stages share
PARAMS: dict[str, Param] = {p.name: p for p in (
    Param("window_size", "int", "samples", 600,
          "Samples of the recording in one window (miniML's win_size); the trace is resampled so "
          "that it fills the network's input.", low=MIN_WINDOW_SIZE),
    Param("threshold", "float", "", None,
          "Minimum prediction peak for an event, in (0, 1); 'auto': chosen for each recording; "
          "None: the model's.", low=0.0, high=1.0, low_open=True, high_open=True, also=(None, "auto")),
    Param("filter_factor", "float", "", 20.0,
          "Butterworth low-pass cut-off = sampling rate / filter_factor, used where convolve_win is 0; "
          "> 2 keeps the cut-off below Nyquist.", low=2.0, low_open=True),
    Param("rel_prom_cutoff", "float", "", 0.25,
          "Relative prominence, in (0, 1], that separates overlapping events in one prediction peak.",
          low=0.0, high=1.0, low_open=True),
    Param("peak_w", "int", "prediction steps", 5,
          "Minimum width of a prediction peak (miniML's peak_w).", low=1),
)}


def check(name: str, value: Any, *, also: tuple[Any, ...] | None = None) -> None:
    """Raise :class:`~minidet.errors.ParameterError` unless ``value`` is accepted for the
    setting ``name``; ``also`` replaces the declared extra values (e.g. ``()`` where a stage
    needs a number: the locator has no ``'auto'``)."""
    param = PARAMS[name]
    if also is not None:
        param = Param(**{**param.__dict__, "also": also})
    if not param.accepts(value):
        raise ParameterError(f"{name} must be {param.describe()}, got {value!r}")
