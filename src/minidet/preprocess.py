"""Recording-level pre-processing: detrend, high-pass, low-pass, notch, cut.

Every function takes a :class:`~minidet.recording.Recording` and returns a new one; the
input is never changed. Filters run zero-phase (``scipy.signal.sosfiltfilt``) and sweep by
sweep, so nothing leaks across the join between two concatenated sweeps. Each step is
recorded in ``recording.metadata["preprocessing"]`` as a plain dict (``{"step":
"highpass", "cutoff_hz": 1.0, "order": 4}``), which the result files keep, and
:func:`apply_steps` replays such a list on a freshly loaded recording.

>>> from minidet import load, preprocess
>>> rec = load("cell.abf")                                      # doctest: +SKIP
>>> rec = preprocess.notch(rec, frequency_hz=50, harmonics=3)   # doctest: +SKIP
>>> rec = preprocess.cut(rec, start_s=0, stop_s=2)              # doctest: +SKIP
>>> rec.metadata["preprocessing"]                               # doctest: +SKIP
[{'step': 'notch', 'frequency_hz': 50.0, ...}, {'step': 'cut', 'start_s': 0.0, 'stop_s': 2.0}]
"""

from __future__ import annotations

import inspect
import math
from typing import Any, Callable, Iterable, Mapping

import numpy as np
from scipy import signal

from .errors import EmptyTraceError, ParameterError
from .recording import Recording

__all__ = ["STEPS", "apply_steps", "cut", "detrend", "highpass", "lowpass", "notch"]

METADATA_KEY = "preprocessing"


# ---------------------------------------------------------------------------- checks
def _number(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise ParameterError(f"{name} must be a number, got {value!r}")
    value = float(value)
    if not math.isfinite(value):
        raise ParameterError(f"{name} must be finite, got {value!r}")
    return value


def _integer(name: str, value: Any, lo: int, hi: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or not lo <= value <= hi:
        raise ParameterError(f"{name} must be an integer from {lo} to {hi}, got {value!r}")
    return int(value)


def _frequency(name: str, value: Any, recording: Recording) -> float:
    f = _number(name, value)
    nyquist = recording.sampling_rate / 2
    if not 0 < f < nyquist:
        raise ParameterError(
            f"{name} must be above 0 and below the Nyquist frequency ({nyquist:g} Hz at "
            f"{recording.sampling_rate:g} Hz sampling), got {value!r}"
        )
    return f


def _check_recording(recording: Any) -> Recording:
    if not isinstance(recording, Recording):
        raise ParameterError(f"recording must be a minidet Recording, got {type(recording).__name__}")
    return recording


def _with_step(recording: Recording, samples: np.ndarray, step: dict[str, Any], **changes: Any) -> Recording:
    metadata = dict(recording.metadata)
    metadata[METADATA_KEY] = list(metadata.get(METADATA_KEY, [])) + [step]
    return recording.with_samples(samples, metadata=metadata, **changes)


def _per_sweep(recording: Recording, fn: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
    out = np.empty_like(recording.samples)
    for a, b in recording.sweep_bounds():
        out[a:b] = fn(recording.samples[a:b])
    return out


def _sosfiltfilt(sos: np.ndarray, x: np.ndarray) -> np.ndarray:
    # sosfiltfilt pads each end by up to 3 x the filter's length; a shorter sweep gets the
    # longest pad it allows (a sweep of 1-2 samples is left as it is)
    if x.size < 3:
        return x.copy()
    default = 3 * (2 * len(sos) + 1 - min((sos[:, 2] == 0).sum(), (sos[:, 5] == 0).sum()))
    return signal.sosfiltfilt(sos, x, padlen=min(default, x.size - 1))


def _butter(recording: Recording, kind: str, cutoff_hz: Any, order: Any) -> Recording:
    recording = _check_recording(recording)
    cutoff = _frequency("cutoff_hz", cutoff_hz, recording)
    order = _integer("order", order, 1, 10)
    sos = signal.butter(order, cutoff, btype=kind, output="sos", fs=recording.sampling_rate)
    samples = _per_sweep(recording, lambda x: _sosfiltfilt(sos, x))
    return _with_step(recording, samples, {"step": f"{kind}", "cutoff_hz": cutoff, "order": order})


# ---------------------------------------------------------------------------- steps
def detrend(recording: Recording, kind: str = "linear") -> Recording:
    """Remove a straight line (``kind="linear"``) or the mean (``"constant"``) from each sweep.

    A least-squares fit per sweep (``scipy.signal.detrend``); the samples stay in the
    recording's unit, centred on zero.
    """
    recording = _check_recording(recording)
    if kind not in ("linear", "constant"):
        raise ParameterError(f"kind must be 'linear' or 'constant', got {kind!r}")
    samples = _per_sweep(recording, lambda x: signal.detrend(x, type=kind))
    return _with_step(recording, samples, {"step": "detrend", "kind": kind})


def highpass(recording: Recording, cutoff_hz: float, order: int = 4) -> Recording:
    """Zero-phase Butterworth high-pass at ``cutoff_hz`` (Hz, 0 < f < Nyquist), per sweep.

    Removes slow drift; a cut-off well below the events' frequency content (about 1 Hz for
    mEPSCs) leaves their shape intact. ``order`` 1-10 (applied twice: forward and back).
    """
    return _butter(recording, "highpass", cutoff_hz, order)


def lowpass(recording: Recording, cutoff_hz: float, order: int = 4) -> Recording:
    """Zero-phase Butterworth low-pass at ``cutoff_hz`` (Hz, 0 < f < Nyquist), per sweep."""
    return _butter(recording, "lowpass", cutoff_hz, order)


def notch(recording: Recording, frequency_hz: float = 50.0, harmonics: int = 1, quality: float = 30.0) -> Recording:
    """Remove line noise: zero-phase notch filters at ``frequency_hz`` and its multiples.

    Parameters
    ----------
    frequency_hz
        The line frequency (50 Hz in Europe, 60 Hz in the Americas).
    harmonics
        How many frequencies to remove: 1 = the line frequency only, 3 = it and its 2nd and
        3rd multiple (multiples at or above the Nyquist frequency are skipped).
    quality
        Quality factor of each notch (frequency / bandwidth, > 0); 30 removes a band of
        about 1.7 Hz at 50 Hz.
    """
    recording = _check_recording(recording)
    f0 = _frequency("frequency_hz", frequency_hz, recording)
    harmonics = _integer("harmonics", harmonics, 1, 1000)
    q = _number("quality", quality)
    if q <= 0:
        raise ParameterError(f"quality must be > 0, got {quality!r}")
    nyquist = recording.sampling_rate / 2
    freqs = [k * f0 for k in range(1, harmonics + 1) if k * f0 < nyquist]
    sections = [signal.tf2sos(*signal.iirnotch(f, q, fs=recording.sampling_rate)) for f in freqs]
    sos = np.concatenate(sections, axis=0)
    samples = _per_sweep(recording, lambda x: _sosfiltfilt(sos, x))
    step = {"step": "notch", "frequency_hz": f0, "harmonics": harmonics, "quality": q}
    return _with_step(recording, samples, step)


def cut(recording: Recording, start_s: float, stop_s: float) -> Recording:
    """Remove the stretch from ``start_s`` to ``stop_s`` (seconds from the trace's start).

    Samples ``round(start_s * rate)`` up to (not including) ``round(stop_s * rate)`` are
    removed; ``stop_s`` beyond the end cuts to the end. Everything after the stretch moves
    ``stop_s - start_s`` earlier; sweep starts inside the stretch are dropped, the later
    ones shift, and the join becomes a sweep start of its own (the trace is discontinuous
    there, so filters and plots treat it as a boundary).

    Raises
    ------
    ParameterError
        ``start_s`` < 0 or beyond the end, or ``stop_s`` <= ``start_s``.
    EmptyTraceError
        Nothing would be left.
    """
    recording = _check_recording(recording)
    start = _number("start_s", start_s)
    stop = _number("stop_s", stop_s)
    rate, n = recording.sampling_rate, recording.n_samples
    if not 0 <= start < recording.duration_s:
        raise ParameterError(f"start_s must be from 0 to below the duration ({recording.duration_s:g} s), got {start_s!r}")
    if stop <= start:
        raise ParameterError(f"stop_s must be after start_s ({start:g} s), got {stop_s!r}")
    a = int(round(start * rate))
    b = min(n, int(round(stop * rate)))
    if b <= a:
        raise ParameterError(
            f"the stretch {start:g}-{stop:g} s holds no sample at {rate:g} Hz; cut at least {1 / rate:g} s"
        )
    if a == 0 and b == n:
        raise EmptyTraceError(f"cutting {start:g}-{stop:g} s would leave nothing of the {recording.duration_s:g} s trace")
    samples = np.concatenate([recording.samples[:a], recording.samples[b:]])
    old = recording.sweep_starts
    starts = np.concatenate([old[old < a], [a] if 0 < a < samples.size else [], old[old >= b] - (b - a)])
    starts = np.unique(starts.astype(np.int64))
    starts = starts[starts < samples.size]
    if starts.size == 0 or starts[0] != 0:
        starts = np.concatenate([[0], starts])
    step = {"step": "cut", "start_s": start, "stop_s": stop, "start_sample": a, "stop_sample": b}
    return _with_step(recording, samples, step, sweep_starts=starts)


# ---------------------------------------------------------------------------- replay
#: step name -> function; the dict keys of a recorded step other than "step" (and the
#: informational ``start_sample``/``stop_sample`` of a cut) are its keyword arguments
STEPS: dict[str, Callable[..., Recording]] = {
    "detrend": detrend,
    "highpass": highpass,
    "lowpass": lowpass,
    "notch": notch,
    "cut": cut,
}
_INFO_KEYS = {"cut": {"start_sample", "stop_sample"}}


def apply_steps(recording: Recording, steps: Iterable[Mapping[str, Any]]) -> Recording:
    """Apply recorded steps (``[{"step": "highpass", "cutoff_hz": 1.0}, ...]``) in order.

    Raises :class:`ParameterError` for an unknown step or argument, naming the allowed ones.
    """
    out = _check_recording(recording)
    for i, raw in enumerate(steps):
        if not isinstance(raw, Mapping) or "step" not in raw:
            raise ParameterError(f"step {i} must be a dict with a 'step' name, got {raw!r}")
        name = raw["step"]
        fn = STEPS.get(name) if isinstance(name, str) else None
        if fn is None:
            raise ParameterError(f"step {i}: unknown step {name!r}; allowed: {', '.join(STEPS)}")
        kwargs = {k: v for k, v in raw.items() if k != "step" and k not in _INFO_KEYS.get(name, ())}
        params = inspect.signature(fn).parameters
        allowed = [p for p in params if p != "recording"]
        required = [p for p in allowed if params[p].default is inspect.Parameter.empty]
        unknown = sorted(set(kwargs) - set(allowed))
        missing = [p for p in required if p not in kwargs]
        if unknown or missing:
            problem = f"unknown argument(s) {unknown}" if unknown else f"missing argument(s) {missing}"
            raise ParameterError(f"step {i} ({name}): {problem}; arguments: {', '.join(allowed)}")
        out = fn(out, **kwargs)
    return out
