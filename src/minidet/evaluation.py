"""Detected events against a simulation's truth: one-to-one matching, precision, recall, F1.

(About 600 lines: matching, the metrics, measurement errors and the SNR sweep all read the same
matched pairs.)

A detection matches a true event when it lies within ``[onset - tolerance_before_s, onset +
tolerance_after_s]`` of the event's onset (default -1 ms / +3 ms: detectors place events at
the steepest rise or the peak, after the onset). Each true event matches at most one
detection and vice versa; the matching maximises the number of matched pairs (greedy over
time, optimal for equal windows). Matched pairs give amplitude and rise-time errors;
matched ISOLATED events (no other true event within ``isolated_gap_s`` either side) give
the median relative errors (measured / true - 1) of amplitude, 10-90 % rise time, half
decay and decay time constant, the measurement accuracy apart from overlaps; unmatched detections inside a simulated transient are counted separately.

:func:`read_detections` accepts minidet's results (a results folder, ``events.csv``,
``results.h5``), a CSV of event times (a column ``time_s``/``time``/``t`` in s, or
``sample``), or a ``.npy`` of sample indices. :func:`sweep` simulates a series of SNRs (and
kinetics), runs a detector on each and tabulates F1 against SNR; :func:`plot_sweep` draws it.
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass, field, replace
from typing import Any, Callable, Iterable

import numpy as np
import pandas as pd

from . import DEFAULT_MODEL
from .errors import ParameterError, RecordingNotFoundError
from .simulation import SimulationSettings, Truth, read_truth, simulate

__all__ = [
    "MatchSettings",
    "Detections",
    "Evaluation",
    "read_detections",
    "as_detections",
    "match_events",
    "evaluate",
    "sweep",
    "plot_sweep",
    "make_detector",
]


@dataclass(frozen=True)
class MatchSettings:
    """Matching window around each true onset, in seconds (both >= 0, not both 0).

    ``isolated_gap_s``: a true event is isolated when no other true event starts within
    this many seconds before or after its onset; ``None`` -> 5 x the truth's median decay
    time constant plus 1 ms.
    """

    tolerance_before_s: float = 1e-3
    tolerance_after_s: float = 3e-3
    isolated_gap_s: float | None = None

    def __post_init__(self) -> None:
        for name in ("tolerance_before_s", "tolerance_after_s"):
            v = getattr(self, name)
            if not (isinstance(v, (int, float)) and math.isfinite(v) and v >= 0):
                raise ParameterError(f"{name} must be a finite number of seconds >= 0, got {v!r}")
        g = self.isolated_gap_s
        if g is not None and not (isinstance(g, (int, float)) and not isinstance(g, bool) and math.isfinite(g)
                                  and g > 0):
            raise ParameterError(f"isolated_gap_s must be a finite number of seconds > 0 or None, got {g!r}")
        if self.tolerance_before_s + self.tolerance_after_s <= 0:
            raise ParameterError("the matching window is empty: give tolerance_before_s or tolerance_after_s > 0")


@dataclass(frozen=True, eq=False)
class Detections:
    """Detected events to evaluate.

    ``samples``: positions (float sample indices, sorted), or times in s when
    ``in_seconds`` (converted with the truth's rate by :func:`evaluate`). ``sampling_rate``
    (Hz) and ``n_samples`` of the analysed recording when known (checked against the
    truth). ``amplitude`` (magnitude, unit), ``rise_time_s``, ``half_decay_s`` and
    ``decay_tau_s`` per event when measured.
    """

    samples: np.ndarray
    sampling_rate: float | None = None
    n_samples: int | None = None
    amplitude: np.ndarray | None = None
    rise_time_s: np.ndarray | None = None
    source: str = "memory"
    in_seconds: bool = False
    half_decay_s: np.ndarray | None = None
    decay_tau_s: np.ndarray | None = None

    def __post_init__(self) -> None:
        s = np.asarray(self.samples, dtype=np.float64).reshape(-1)
        if not np.all(np.isfinite(s)):
            raise ParameterError(f"detections from {self.source} hold NaN/inf positions")
        order = np.argsort(s, kind="stable")
        object.__setattr__(self, "samples", s[order])
        for name in _MEASURES:
            v = getattr(self, name)
            if v is not None:
                v = np.asarray(v, dtype=np.float64).reshape(-1)
                if v.size != s.size:
                    raise ParameterError(f"{name} has {v.size} values for {s.size} detections")
                object.__setattr__(self, name, v[order])

    @classmethod
    def from_events(cls, events: pd.DataFrame, sampling_rate: float | None = None, n_samples: int | None = None,
                    source: str = "memory") -> "Detections":
        """From an events table (minidet's columns, or a table of times); excluded rows dropped."""
        frame = _plain_columns(events)
        if "excluded" in frame.columns:
            frame = frame[~frame["excluded"].astype(str).str.lower().isin(("true", "1", "1.0"))]
        if "sample" in frame.columns:
            samples = pd.to_numeric(frame["sample"], errors="coerce").to_numpy(float)
            if sampling_rate is None:
                sampling_rate = _rate_from_columns(frame)
        else:
            times = _time_column(frame, source)
            if sampling_rate is None:
                return cls(np.asarray(times, dtype=float), None, n_samples, _opt(frame, "amplitude"),
                           _opt(frame, "rise_time_s"), source, in_seconds=True,
                           half_decay_s=_opt(frame, "half_decay_s"), decay_tau_s=_opt(frame, "decay_tau_s"))
            samples = times * sampling_rate
        return cls(samples, sampling_rate, n_samples, _opt(frame, "amplitude"), _opt(frame, "rise_time_s"), source,
                   half_decay_s=_opt(frame, "half_decay_s"), decay_tau_s=_opt(frame, "decay_tau_s"))


#: per-event measurements that :func:`evaluate` compares with the truth (same column names)
_MEASURES = ("amplitude", "rise_time_s", "half_decay_s", "decay_tau_s")


def _opt(frame: pd.DataFrame, column: str) -> np.ndarray | None:
    if column not in frame.columns:
        return None
    v = pd.to_numeric(frame[column], errors="coerce").to_numpy(float)
    return np.abs(v) if column == "amplitude" else v


_UNIT_SUFFIX = re.compile(r"^(amplitude|baseline|charge)_.+$")


def _plain_columns(frame: pd.DataFrame) -> pd.DataFrame:
    """``amplitude_pA`` -> ``amplitude`` (events.csv carries units in its headers)."""
    rename = {}
    for col in frame.columns:
        name = str(col).strip()
        m = _UNIT_SUFFIX.match(name)
        if m and m.group(1) not in frame.columns:
            rename[col] = m.group(1)
        elif name != col:
            rename[col] = name
    return frame.rename(columns=rename)


def _time_column(frame: pd.DataFrame, source: str) -> np.ndarray:
    for name in ("time_s", "time", "t", "times", "time_sec", "seconds"):
        if name in frame.columns:
            return pd.to_numeric(frame[name], errors="coerce").to_numpy(float)
    if frame.shape[1] == 1:
        return pd.to_numeric(frame.iloc[:, 0], errors="coerce").to_numpy(float)
    raise ParameterError(
        f"{source}: no column of event times (time_s, time, t) or sample indices (sample); columns: "
        f"{', '.join(map(str, frame.columns))}"
    )


def _rate_from_columns(frame: pd.DataFrame) -> float | None:
    """The sampling rate implied by ``sample`` / ``time_s`` columns, if both are there."""
    if "time_s" not in frame.columns or len(frame) == 0:
        return None
    s = pd.to_numeric(frame["sample"], errors="coerce").to_numpy(float)
    t = pd.to_numeric(frame["time_s"], errors="coerce").to_numpy(float)
    ok = np.isfinite(s) & np.isfinite(t) & (t > 0) & (s > 0)
    if not ok.any():
        return None
    return float(np.median(s[ok] / t[ok]))


def read_detections(path: str, sampling_rate: float | None = None) -> Detections:
    """Read detected events from a file (see the module docstring for the formats).

    ``sampling_rate`` (Hz) converts times to samples for files that store only times;
    without it the truth's rate is used.
    """
    if not os.path.exists(path):
        raise RecordingNotFoundError(f"no such detections file or folder: {path}")
    lower = path.lower()
    if os.path.isdir(path) or lower.endswith((".h5", ".hdf5")):
        folder_csv = os.path.join(path, "events.csv")
        if os.path.isdir(path) and not os.path.exists(os.path.join(path, "results.h5")) \
                and os.path.exists(folder_csv):
            return read_detections(folder_csv, sampling_rate)
        from .report import read_results

        stored = read_results(path)
        rec = stored.recording or {}
        rate = rec.get("sampling_rate_hz", sampling_rate)
        n = rec.get("n_samples")
        return Detections.from_events(stored.events, float(rate) if rate else None,
                                      int(n) if n is not None else None, source=str(stored.path))
    if lower.endswith(".npy"):
        arr = np.load(path, allow_pickle=False)
        if arr.ndim != 1 or arr.dtype.kind not in "iuf":
            raise ParameterError(f"{path} must hold a 1-D array of sample indices, got {arr.dtype} {arr.shape}")
        if arr.dtype.kind == "f" and arr.size and not np.allclose(arr, np.round(arr)):
            raise ParameterError(f"{path} holds non-integer values; a .npy must hold sample indices "
                                 "(save times in seconds as a CSV with a time_s column)")
        return Detections(arr.astype(np.float64), sampling_rate, None, source=path)
    if lower.endswith((".csv", ".txt", ".tsv")):
        sep = {".tsv": "\t", ".txt": r"[,;\s]+"}.get(os.path.splitext(lower)[1], ",")
        try:
            frame = pd.read_csv(path, sep=sep, engine="python")
        except pd.errors.EmptyDataError:
            return Detections(np.zeros(0), sampling_rate, None, source=path)
        header_is_number = len(frame.columns) == 1 and _is_number(str(frame.columns[0]))
        if header_is_number:  # a bare column of times without a header
            frame = pd.read_csv(path, sep=sep, engine="python", header=None, names=["time_s"])
        return Detections.from_events(frame, sampling_rate, None, source=path)
    raise ParameterError(f"cannot read detections from {path}: use a results folder, events.csv, results.h5, "
                         "a CSV of times, or a .npy of sample indices")


def _is_number(text: str) -> bool:
    try:
        float(text)
        return True
    except ValueError:
        return False


def as_detections(obj: Any, sampling_rate: float | None = None) -> Detections:
    """Detections from a :class:`Detections`, a path, a ``DetectionResult`` (kept events), a
    :class:`~minidet.classic.ClassicDetections`, an events DataFrame or an array of sample indices."""
    if isinstance(obj, Detections):
        return obj
    if isinstance(obj, (str, os.PathLike)):
        return read_detections(os.fspath(obj), sampling_rate)
    if hasattr(obj, "events_all") and hasattr(obj, "recording"):
        rec = obj.recording
        return Detections.from_events(obj.events_all, rec.sampling_rate, rec.n_samples, source="detect()")
    if hasattr(obj, "positions") and hasattr(obj, "criterion"):
        return Detections(np.asarray(obj.positions, dtype=float), sampling_rate, None, source=getattr(obj, "method", "classic"))
    if isinstance(obj, pd.DataFrame):
        return Detections.from_events(obj, sampling_rate)
    arr = np.asarray(obj)
    if arr.ndim == 1 and (arr.size == 0 or arr.dtype.kind in "iuf"):
        return Detections(arr.astype(np.float64), sampling_rate)
    raise ParameterError(f"cannot use {type(obj).__name__} as detections")


def match_events(true_samples: np.ndarray, detected_samples: np.ndarray, before: float,
                 after: float) -> tuple[np.ndarray, np.ndarray]:
    """One-to-one matches ``(true_index, detected_index)`` of sorted sample positions.

    Detection ``d`` may match true event ``t`` when ``t - before <= d <= t + after``.
    Taking, for each true event in time order, the earliest still-free detection in its
    window gives a maximum matching, since all windows have the same shape.
    """
    t = np.asarray(true_samples, dtype=np.float64)
    d = np.asarray(detected_samples, dtype=np.float64)
    ti, di = [], []
    j = 0
    nd = d.size
    for i in range(t.size):
        lo, hi = t[i] - before, t[i] + after
        while j < nd and d[j] < lo:
            j += 1
        if j < nd and d[j] <= hi:
            ti.append(i)
            di.append(j)
            j += 1
    return np.asarray(ti, dtype=np.int64), np.asarray(di, dtype=np.int64)


@dataclass(frozen=True, eq=False)
class Evaluation:
    """Result of :func:`evaluate`. Errors are detected minus true; amplitudes in ``unit``."""

    n_true: int
    n_detected: int
    true_positives: int
    false_positives: int
    false_negatives: int
    precision: float
    recall: float
    f1: float
    snr_db: float
    unit: str
    timing_median_s: float
    amplitude_error_median: float
    amplitude_error_mae: float
    amplitude_relative_error_median: float
    rise_time_error_median_s: float
    rise_time_error_mae_s: float
    false_positives_on_transients: int
    n_transients: int
    n_isolated_matched: int = 0
    amplitude_relative_error_isolated: float = float("nan")
    rise_time_relative_error_isolated: float = float("nan")
    half_decay_relative_error_isolated: float = float("nan")
    decay_tau_relative_error_isolated: float = float("nan")
    settings: MatchSettings = field(default_factory=MatchSettings)
    matches: pd.DataFrame = field(default_factory=pd.DataFrame)

    def to_dict(self) -> dict[str, Any]:
        out = {k: getattr(self, k) for k in (
            "n_true", "n_detected", "true_positives", "false_positives", "false_negatives", "precision", "recall",
            "f1", "snr_db", "unit", "timing_median_s", "amplitude_error_median", "amplitude_error_mae",
            "amplitude_relative_error_median", "rise_time_error_median_s", "rise_time_error_mae_s",
            "false_positives_on_transients", "n_transients", "n_isolated_matched",
            "amplitude_relative_error_isolated", "rise_time_relative_error_isolated",
            "half_decay_relative_error_isolated", "decay_tau_relative_error_isolated")}
        out["tolerance_before_s"] = self.settings.tolerance_before_s
        out["tolerance_after_s"] = self.settings.tolerance_after_s
        return {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in out.items()}

    def to_text(self) -> str:
        def f(v: float, scale: float = 1.0, fmt: str = ".3g") -> str:
            return "n/a" if not math.isfinite(v) else format(v * scale, fmt)

        lines = [
            f"true events      {self.n_true}   (SNR {f(self.snr_db, fmt='.1f')} dB)",
            f"detections       {self.n_detected}",
            f"matched          {self.true_positives}   (window -{self.settings.tolerance_before_s * 1e3:g} ms / "
            f"+{self.settings.tolerance_after_s * 1e3:g} ms around the true onset)",
            f"false positives  {self.false_positives}"
            + (f"   ({self.false_positives_on_transients} on {self.n_transients} transients)"
               if self.n_transients else ""),
            f"missed           {self.false_negatives}",
            f"precision        {self.precision:.3f}",
            f"recall           {self.recall:.3f}",
            f"F1               {self.f1:.3f}",
            f"timing           median {f(self.timing_median_s, 1e3)} ms after the true onset",
        ]
        if math.isfinite(self.amplitude_error_mae):
            lines.append(f"amplitude error  median {f(self.amplitude_error_median)} {self.unit}, mean absolute "
                         f"{f(self.amplitude_error_mae)} {self.unit}, median relative "
                         f"{f(self.amplitude_relative_error_median, 100, '.1f')} %")
        if math.isfinite(self.rise_time_error_mae_s):
            lines.append(f"rise-time error  median {f(self.rise_time_error_median_s, 1e3)} ms, mean absolute "
                         f"{f(self.rise_time_error_mae_s, 1e3)} ms")
        iso = [(label, getattr(self, f"{key}_relative_error_isolated")) for label, key in (
            ("amplitude", "amplitude"), ("rise 10-90 %", "rise_time"), ("half decay", "half_decay"),
            ("decay tau", "decay_tau"))]
        if self.n_isolated_matched and any(math.isfinite(v) for _, v in iso):
            lines.append(f"isolated events  {self.n_isolated_matched} matched; median error (measured / true - 1): "
                         + ", ".join(f"{label} {f(v, 100, '+.1f')} %" for label, v in iso))
        return "\n".join(lines)


def _nan_stat(fn: Callable[[np.ndarray], float], v: np.ndarray | None) -> float:
    if v is None:
        return float("nan")
    v = v[np.isfinite(v)]
    return float(fn(v)) if v.size else float("nan")


def evaluate(truth: Truth | str, detections: Any, settings: MatchSettings | None = None,
             sampling_rate: float | None = None) -> Evaluation:
    """Match detections to the truth and score them.

    Parameters
    ----------
    truth
        A :class:`~minidet.simulation.Truth` or the path of a truth file.
    detections
        Anything :func:`as_detections` takes (a path, a ``DetectionResult``, an array of
        sample indices, ...).
    settings
        The matching window (:class:`MatchSettings`).
    sampling_rate
        Hz, for detections given only as times; defaults to the truth's.

    Raises
    ------
    ParameterError
        An empty truth; detections from a recording of another sampling rate or length;
        detections outside the recording.
    """
    settings = settings or MatchSettings()
    if isinstance(truth, (str, os.PathLike)):
        truth = read_truth(os.fspath(truth))
    if truth.n_events == 0:
        raise ParameterError("the truth holds no events: precision, recall and F1 are undefined "
                             "(simulate with a higher event_rate_hz or a longer duration_s)")
    fs = truth.sampling_rate
    det = as_detections(detections, sampling_rate)
    if det.in_seconds:
        det = replace(det, samples=det.samples * (sampling_rate or fs), sampling_rate=sampling_rate,
                      in_seconds=False)
    if det.sampling_rate is not None and not math.isclose(det.sampling_rate, fs, rel_tol=1e-3):
        raise ParameterError(
            f"the detections come from a recording at {det.sampling_rate:g} Hz but the truth is at {fs:g} Hz; "
            "evaluate detections on the simulated recording itself"
        )
    if det.n_samples is not None and det.n_samples != truth.n_samples:
        raise ParameterError(
            f"the detections come from a recording of {det.n_samples} samples ({det.n_samples / fs:g} s) but the "
            f"truth has {truth.n_samples} samples ({truth.duration_s:g} s); evaluate detections on the whole "
            "simulated recording"
        )
    if det.samples.size and (det.samples[0] < -0.5 or det.samples[-1] > truth.n_samples):
        bad = det.samples[-1] if det.samples[-1] > truth.n_samples else det.samples[0]
        raise ParameterError(
            f"a detection at sample {bad:.0f} ({bad / fs:g} s) lies outside the simulated recording "
            f"(0-{truth.duration_s:g} s); are the detections from another recording or sampling rate?"
        )

    ev = truth.events
    onset = ev["onset_sample"].to_numpy(float)
    before, after = settings.tolerance_before_s * fs, settings.tolerance_after_s * fs
    ti, di = match_events(onset, det.samples, before, after)
    tp = int(ti.size)
    n_true, n_det = int(onset.size), int(det.samples.size)
    fp, fn = n_det - tp, n_true - tp
    precision = tp / n_det if n_det else float("nan")
    recall = tp / n_true
    f1 = 2 * tp / (n_true + n_det) if (n_true + n_det) else float("nan")
    if n_det == 0:
        precision = 0.0

    true_amp = ev["amplitude"].to_numpy(float)[ti]
    amp_err = det.amplitude[di] - true_amp if det.amplitude is not None else None
    rel_err = amp_err / true_amp if amp_err is not None else None
    rise_err = None
    if det.rise_time_s is not None and "rise_time_s" in ev:
        rise_err = det.rise_time_s[di] - ev["rise_time_s"].to_numpy(float)[ti]
    timing = (det.samples[di] - onset[ti]) / fs

    gap = settings.isolated_gap_s
    if gap is None:
        gap = 5.0 * float(np.median(ev["decay_tau_s"])) + 1e-3 if "decay_tau_s" in ev else 0.01
    gaps = np.diff(onset) / fs
    isolated = np.ones(n_true, bool)
    isolated[1:] &= gaps > gap
    isolated[:-1] &= gaps > gap
    iso_pairs = isolated[ti]
    iso_errors: dict[str, float] = {}
    for name in _MEASURES:
        measured = getattr(det, name)
        if measured is None or name not in ev:
            iso_errors[name] = float("nan")
            continue
        true_v = ev[name].to_numpy(float)[ti][iso_pairs]
        with np.errstate(divide="ignore", invalid="ignore"):
            iso_errors[name] = _nan_stat(np.median, measured[di][iso_pairs] / true_v - 1.0)

    unmatched = np.ones(n_det, bool)
    unmatched[di] = False
    spans = truth.transient_spans()
    fp_transients = 0
    if spans.size and unmatched.any():
        pos = det.samples[unmatched]
        k = np.searchsorted(spans[:, 0], pos + before, side="right") - 1
        inside = (k >= 0) & (pos <= spans[np.maximum(k, 0), 1] + after)
        fp_transients = int(inside.sum())

    matches = pd.DataFrame({
        "true_index": ti,
        "detected_index": di,
        "true_onset_s": onset[ti] / fs,
        "detected_time_s": det.samples[di] / fs,
        "true_amplitude": true_amp,
        "detected_amplitude": det.amplitude[di] if det.amplitude is not None else np.full(tp, np.nan),
        "isolated": iso_pairs,
    })
    return Evaluation(
        n_true=n_true,
        n_detected=n_det,
        true_positives=tp,
        false_positives=fp,
        false_negatives=fn,
        precision=float(precision),
        recall=float(recall),
        f1=float(f1),
        snr_db=float(truth.snr_db),
        unit=truth.unit,
        timing_median_s=_nan_stat(np.median, timing),
        amplitude_error_median=_nan_stat(np.median, amp_err),
        amplitude_error_mae=_nan_stat(lambda v: np.mean(np.abs(v)), amp_err),
        amplitude_relative_error_median=_nan_stat(np.median, rel_err),
        rise_time_error_median_s=_nan_stat(np.median, rise_err),
        rise_time_error_mae_s=_nan_stat(lambda v: np.mean(np.abs(v)), rise_err),
        false_positives_on_transients=fp_transients,
        n_transients=int(len(truth.transients)),
        n_isolated_matched=int(iso_pairs.sum()),
        amplitude_relative_error_isolated=iso_errors["amplitude"],
        rise_time_relative_error_isolated=iso_errors["rise_time_s"],
        half_decay_relative_error_isolated=iso_errors["half_decay_s"],
        decay_tau_relative_error_isolated=iso_errors["decay_tau_s"],
        settings=settings,
        matches=matches,
    )


# ----------------------------------------------------------------------------- sweeps
def make_detector(method: str = "miniml", model: str = DEFAULT_MODEL, **settings: Any) -> Callable[[Any], Any]:
    """A function ``recording -> detections`` for :func:`sweep`.

    ``"miniml"`` runs :func:`minidet.detect` with ``model`` (settings as its overrides) and
    returns the result with measured amplitudes; the classic methods run
    :func:`minidet.classic.detect_events` (positions only: fast, no kinetics).
    """
    if method in ("miniml", "model"):
        def run_model(recording):
            from .detection.pipeline import detect

            return detect(recording, model, **settings)

        return run_model
    from .classic import detect_events, make_settings

    method_settings = make_settings(method, None, **settings)

    def run_classic(recording):
        return detect_events(recording, method, method_settings)

    return run_classic


def sweep(
    snrs_db: Iterable[float],
    detector: Callable[[Any], Any] | str = "miniml",
    base: SimulationSettings | None = None,
    kinetics_scales: Iterable[float] = (1.0,),
    seed: int = 0,
    match: MatchSettings | None = None,
    progress: Callable[[dict[str, Any]], None] | None = None,
) -> pd.DataFrame:
    """Simulate each SNR (x each kinetics scale), detect, evaluate; one row per pair.

    ``kinetics_scales`` multiply both time constants (2x faster = 0.5, 4.5x slower = 4.5).
    The same ``seed`` gives every condition the same event times and noise. Columns:
    ``snr_db, kinetics_scale, n_true, n_detected, true_positives, false_positives,
    false_negatives, precision, recall, f1, false_positives_on_transients, seconds``.
    """
    import time

    base = base or SimulationSettings()
    det = make_detector(detector) if isinstance(detector, str) else detector
    snrs = [float(s) for s in snrs_db]
    scales = [float(k) for k in kinetics_scales]
    if not snrs:
        raise ParameterError("give at least one SNR")
    for k in scales:
        if not (math.isfinite(k) and k > 0):
            raise ParameterError(f"kinetics scales must be > 0, got {k}")
    rows = []
    for scale in scales:
        for snr in snrs:
            settings = replace(base, snr_db=snr, rise_tau_s=base.rise_tau_s * scale,
                               decay_tau_s=base.decay_tau_s * scale)
            recording, truth = simulate(settings, seed=seed)
            start = time.perf_counter()
            found = det(recording)
            seconds = time.perf_counter() - start
            result = evaluate(truth, found, match)
            row = {"snr_db": snr, "kinetics_scale": scale, **{k: result.to_dict()[k] for k in (
                "n_true", "n_detected", "true_positives", "false_positives", "false_negatives", "precision",
                "recall", "f1", "false_positives_on_transients")}, "seconds": seconds}
            rows.append(row)
            if progress is not None:
                progress(row)
    return pd.DataFrame(rows)


def plot_sweep(table: pd.DataFrame, path: str, title: str | None = None) -> None:
    """F1 against SNR: one panel per ``condition`` (if that column exists), one line per
    ``method`` and kinetics scale."""
    if table.empty or not {"snr_db", "f1"} <= set(table.columns):
        raise ParameterError("nothing to plot: the table needs rows with snr_db and f1")
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    panels = list(dict.fromkeys(table["condition"])) if "condition" in table.columns else [None]
    fig, axes = plt.subplots(1, len(panels), figsize=(3.4 * len(panels) + 1.2, 3.4), dpi=120, squeeze=False,
                             sharey=True)
    keys = [c for c in ("method", "kinetics_scale") if c in table.columns]
    for ax, panel in zip(axes[0], panels):
        part = table if panel is None else table[table["condition"] == panel]
        groups = part.groupby(keys, sort=False) if keys else [((), part)]
        for key, lines in groups:
            key = key if isinstance(key, tuple) else (key,)
            label = ", ".join(f"kinetics x{v:g}" if k == "kinetics_scale" else str(v) for k, v in zip(keys, key))
            lines = lines.sort_values("snr_db")
            ax.plot(lines["snr_db"], lines["f1"], marker="o", label=label or None)
        ax.set_xlabel("SNR (dB)")
        ax.set_ylim(0, 1.02)
        ax.grid(alpha=0.3)
        if panel is not None:
            ax.set_title(str(panel), fontsize=9)
    axes[0][0].set_ylabel("F1")
    if keys:
        axes[0][-1].legend(fontsize=7, loc="lower right")
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
