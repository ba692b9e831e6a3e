"""Per-recording results: non-overlapping events, event waveforms, the average event and
its decay time constant, and summary statistics of an events table.

Definitions follow miniML (``_get_singular_event_indices``, ``_get_average_event_decay``
and ``EventStats`` in miniml-detect 1.1.2).
"""

from __future__ import annotations

import dataclasses
import math
import warnings

import numpy as np
import pandas as pd
from scipy.optimize import OptimizeWarning, curve_fit

from ..errors import ParameterError
from ..recording import Recording
from .kinetics import gather_windows

__all__ = [
    "STAT_MEASURES",
    "non_overlapping",
    "average_mask",
    "cut_waveforms",
    "average_waveform",
    "mean_waveform",
    "DecayFit",
    "fit_decay",
    "fit_decay_tau",
    "describe",
    "histogram",
    "cumulative",
    "summarize",
]

#: event-table columns summarised by :func:`summarize` (mean / median / sd / cv each)
STAT_MEASURES = ("amplitude", "rise_time_s", "half_decay_s", "half_width_s", "charge", "score", "interval_s")


def non_overlapping(positions: np.ndarray, window_size: int) -> np.ndarray:
    """Boolean mask of events that overlap no other: the next event is more than
    ``1.5 * window_size`` samples later and the previous one more than ``0.5 *
    window_size`` earlier (miniML's rule; the first and last event need only the one
    neighbour they have).
    """
    pos = np.asarray(positions, dtype=np.int64)
    if pos.size == 0:
        return np.zeros(0, dtype=bool)
    gaps = np.diff(pos)
    free_after = np.append(gaps > 1.5 * window_size, True)
    free_before = np.insert(gaps > 0.5 * window_size, 0, True)
    return free_after & free_before


def average_mask(positions: np.ndarray, window_size: int) -> np.ndarray:
    """Events that enter the average: the non-overlapping ones, or all of them when every
    event overlaps another (miniML's fallback)."""
    mask = non_overlapping(positions, window_size)
    if mask.size and not mask.any():
        mask[:] = True
    return mask


def cut_waveforms(
    recording: Recording,
    positions: np.ndarray,
    baselines: np.ndarray,
    pre: int,
    post: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Raw trace around each position minus that event's baseline.

    Returns ``(time_s, waves)``: ``time_s`` from ``-pre / sampling_rate`` (the position is
    0) and ``waves`` of shape ``(events, pre + post)`` in the recording's unit and polarity
    (a negative event points down). Samples outside the recording are NaN.
    """
    if pre < 0 or post < 1:
        raise ParameterError(f"pre must be >= 0 and post >= 1 samples, got pre={pre!r}, post={post!r}")
    pos = np.asarray(positions, dtype=np.int64)
    offsets = np.arange(-pre, post)
    time_s = offsets / recording.sampling_rate
    if pos.size == 0:
        return time_s, np.zeros((0, offsets.size))
    n = recording.n_samples
    bsl = np.asarray(baselines, dtype=np.float64)
    whole = (pos - pre >= 0) & (pos + post <= n)
    # windows inside the trace are read in groups (a lazy recording is never read whole)
    if whole.all():
        waves = gather_windows(recording.samples, pos - pre, pre + post)
    else:
        waves = np.empty((pos.size, offsets.size), dtype=np.float64)
        waves[whole] = gather_windows(recording.samples, pos[whole] - pre, pre + post)
        # the few at its ends: what lies inside, NaN elsewhere
        for row in np.flatnonzero(~whole).tolist():
            idx = pos[row] + offsets
            inside = (idx >= 0) & (idx < n)
            waves[row] = np.nan
            if inside.any():
                lo, hi = int(idx[inside][0]), int(idx[inside][-1]) + 1
                waves[row, inside] = recording.read(lo, hi)
    waves -= bsl[:, None]
    return time_s, waves


def mean_waveform(
    recording: Recording,
    positions: np.ndarray,
    baselines: np.ndarray,
    pre: int,
    post: int,
    *,
    batch: int = 1024,
) -> tuple[np.ndarray, np.ndarray]:
    """``(time_s, average_waveform(cut_waveforms(...)))`` without holding every waveform:
    ``batch`` events at a time, summed in event order as ``np.nanmean`` sums them, so the
    numbers are the same to the last bit."""
    if isinstance(batch, bool) or not isinstance(batch, (int, np.integer)) or batch < 1:
        raise ParameterError(f"batch must be a positive integer, got {batch!r}")
    pos = np.asarray(positions, dtype=np.int64)
    bsl = np.asarray(baselines, dtype=np.float64)
    time_s, _ = cut_waveforms(recording, pos[:0], bsl[:0], pre, post)
    if pos.size == 0:
        return time_s, np.full(time_s.size, np.nan)
    total = np.zeros(time_s.size)
    count = np.zeros(time_s.size, dtype=np.intp)
    for b in range(0, pos.size, batch):
        _, waves = cut_waveforms(recording, pos[b : b + batch], bsl[b : b + batch], pre, post)
        nan = np.isnan(waves)
        waves[nan] = 0.0
        for row in waves:
            total += row
        count += (~nan).sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return time_s, total / count


def average_waveform(waves: np.ndarray) -> np.ndarray:
    """Mean over events (NaN-padded samples ignored); all-NaN when there are no events."""
    if waves.shape[0] == 0:
        return np.full(waves.shape[1], np.nan)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanmean(waves, axis=0)


def _exp_decay(t: np.ndarray, amp: float, tau: float, offset: float) -> np.ndarray:
    return amp * np.exp(-(t - t[0]) / tau) + offset


@dataclasses.dataclass(frozen=True)
class DecayFit:
    """A single exponential fitted to the decay of an average event.

    ``y = event_sign * (amplitude * exp(-(t - t[start]) / tau_s) + offset)`` for samples
    ``start`` to the end of the waveform, ``t`` in seconds from its first sample;
    ``amplitude`` and ``offset`` in the waveform's unit.
    """

    tau_s: float
    amplitude: float
    offset: float
    start: int
    event_sign: int

    def curve(self, n_samples: int, sampling_rate: float) -> np.ndarray:
        """The fitted curve on samples ``start .. n_samples - 1`` (the waveform's sign)."""
        t = (np.arange(self.start, n_samples) - self.start) / sampling_rate
        return self.event_sign * (self.amplitude * np.exp(-t / self.tau_s) + self.offset)


def fit_decay(
    average: np.ndarray,
    sampling_rate: float,
    window_size: int,
    n_events: int,
    event_sign: int = 1,
) -> DecayFit | None:
    """A single exponential fitted to the decay of the average event (see :func:`fit_decay_tau`);
    None when it cannot be fitted."""
    y = np.asarray(average, dtype=np.float64) * event_sign
    if y.size == 0 or not np.all(np.isfinite(y)):
        return None
    dt = 1.0 / sampling_rate
    if n_events < 4:
        peak = int(np.argmax(np.convolve(y, np.ones(5) / 5, mode="same")))
    else:
        peak = int(np.argmax(y))
    start = peak + int(0.01 * window_size)
    if start > y.size - int(0.2 * window_size) or y.size - start < 4:
        return None
    t = np.arange(y.size) * dt
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", OptimizeWarning)
            popt, _ = curve_fit(
                _exp_decay,
                t[start:],
                y[start:],
                p0=[float(np.max(y)) + 1, y.size / 50 * dt, 0.0],
                bounds=([0, 0, -np.inf], [np.inf, 1e3, np.inf]),
            )
    except (RuntimeError, ValueError):
        return None
    return DecayFit(tau_s=float(popt[1]), amplitude=float(popt[0]), offset=float(popt[2]), start=start,
                    event_sign=1 if event_sign >= 0 else -1)


def fit_decay_tau(
    average: np.ndarray,
    sampling_rate: float,
    window_size: int,
    n_events: int,
    event_sign: int = 1,
) -> float:
    """Decay time constant (s) of a single exponential fitted to the average event.

    As miniML: the fit starts ``window_size // 100`` samples after the maximum (in the
    event direction; of a 5-sample running mean when fewer than 4 events were averaged)
    and runs to the end of the waveform; ``amp * exp(-(t - t0) / tau) + offset`` with
    amp >= 0 and 0 <= tau <= 1000 s. NaN when the fit cannot start early enough (less
    than ``0.2 * window_size`` samples left) or does not converge.
    """
    fit = fit_decay(average, sampling_rate, window_size, n_events, event_sign)
    return fit.tau_s if fit is not None else math.nan


def histogram(values: np.ndarray, max_bins: int = 40, min_bins: int = 5) -> tuple[np.ndarray, np.ndarray]:
    """Counts and edges of the finite ``values``: sqrt(n) bins between ``min_bins`` and
    ``max_bins`` over their range (one unit-wide range around a single value); empty arrays
    for no values."""
    values = np.asarray(values, dtype=np.float64)
    values = values[np.isfinite(values)]
    if not values.size:
        return np.zeros(0, np.int64), np.zeros(0)
    bins = int(min(max_bins, max(min_bins, math.ceil(math.sqrt(values.size)))))
    lo, hi = float(values.min()), float(values.max())
    if hi <= lo:
        lo, hi = lo - 0.5 * (abs(lo) or 1), hi + 0.5 * (abs(hi) or 1)
    return np.histogram(values, bins=bins, range=(lo, hi))


def cumulative(values: np.ndarray, max_points: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The empirical cumulative distribution of the finite ``values``: sorted values and the
    fraction at or below each; with ``max_points``, that many points evenly spaced in rank
    (the first and last kept)."""
    values = np.sort(np.asarray(values, dtype=np.float64))
    values = values[np.isfinite(values)]
    fraction = np.arange(1, values.size + 1) / max(1, values.size)
    if max_points is not None and values.size > max_points:
        pick = np.unique(np.linspace(0, values.size - 1, max_points).round().astype(np.int64))
        values, fraction = values[pick], fraction[pick]
    return values, fraction


def describe(values: np.ndarray) -> dict[str, float]:
    """mean, median, sd (n - 1) and cv (|sd / mean|) of the finite values; NaN where undefined."""
    v = np.asarray(values, dtype=np.float64)
    v = v[np.isfinite(v)]
    if v.size == 0:
        return {"mean": math.nan, "median": math.nan, "sd": math.nan, "cv": math.nan}
    mean = float(v.mean())
    sd = float(v.std(ddof=1)) if v.size > 1 else math.nan
    cv = abs(sd / mean) if mean != 0 and math.isfinite(sd) else math.nan
    return {"mean": mean, "median": float(np.median(v)), "sd": sd, "cv": cv}


def summarize(events: pd.DataFrame, duration_s: float, *, tau_decay_s: float = math.nan, n_average: int = 0) -> dict:
    """Statistics of an events table (one row per kept event, sorted by position).

    Keys: ``count``, ``duration_s``, ``frequency_hz`` (count / duration), then
    ``<measure>_<stat>`` for every measure in :data:`STAT_MEASURES` and stat in mean,
    median, sd, cv (``interval_s`` is between successive peaks, as miniML), and
    ``tau_decay_s`` / ``n_average`` as given.
    """
    count = int(len(events))
    out: dict = {
        "count": count,
        "duration_s": float(duration_s),
        "frequency_hz": count / duration_s if duration_s > 0 else math.nan,
    }
    for measure in STAT_MEASURES:
        if measure == "interval_s":
            values = np.diff(events["peak_time_s"].to_numpy(dtype=np.float64)) if count > 1 else np.zeros(0)
        elif measure in events:
            values = events[measure].to_numpy(dtype=np.float64)
        else:
            values = np.zeros(0)
        for stat, value in describe(values).items():
            out[f"{measure}_{stat}"] = value
    out["tau_decay_s"] = float(tau_decay_s)
    out["n_average"] = int(n_average)
    return out
