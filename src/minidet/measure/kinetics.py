"""Per-event measurements: baseline, peak, amplitude, onset, rise, half decay, half width, charge.

(About 650 lines: both measuring methods (the fit to the unfiltered trace and miniML's filtered
rules) over the same chunked event windows.)

The definitions are miniML's (``EventDetection._get_event_properties`` and
``core/functions.py`` of miniml-detect 1.1.2), computed for all events at once on a 2-D
array of filtered event windows instead of one event at a time. Every event gets a window
of ``add_points`` samples before its position (the steepest rise) and
``window_size + add_points`` after it (``add_points = window_size // 3``), cut from the
trace filtered with the analysis filter (Hann window ``convolve_win``, or a Butterworth
low-pass at ``sampling_rate / filter_factor``) and multiplied by the event direction, so
that every event rises. All rules below refer to that window.

- **peak**: arg-max from the position to ``window_size // 3`` samples later (a fifth of the
  analysis window), or half-way to the next event if it is closer than ``window_size``; the peak
  value is the mean of the ``2 * spacer`` samples around it (``spacer = window_size // 300``).
- **baseline**: mean of ``window_size / 10`` samples ending ``3 x (peak - position)`` before
  the position; when the previous event's peak lies within ``1.2 * add_points`` before the
  position, the mean of ``window_size / 100`` samples around the minimum between that peak
  and the position (the trough between the two events).
- **onset**: the first sample after the last one below baseline + SD/4 before the peak.
- **rise time**: 10-90 % of (peak value - baseline), crossings on the linearly
  interpolated trace from the baseline window to the peak.
- **half decay**: time from the peak to the first sample below half the peak (before the
  next event's rise when that is within ``add_points``; NaN when it is not reached).
- **half width**: time between the half-amplitude crossings, interpolated, the decay
  side smoothed with a 10-sample running mean.
- **charge**: trapezoid integral of (trace - baseline) from the onset to 4 half-decay times
  after the peak. Events whose decay is cut short by the next event are integrated as a
  group up to the last member's end and the charge is shared equally (miniML's rule),
  relative to the baseline before the group.

Departures from miniml-detect 1.1.2, each marked ``DEPARTURE`` in the code: NaN instead of
a made-up value where a crossing is not found (miniML returns a half decay of 0 samples and
a rise time of 0.8 x the whole baseline-to-peak span); the half width uses the same
single-sample peak for both directions; a baseline window of at least one sample (miniML
raises on an empty one); a group of overlapping events is integrated relative to the
baseline before the group, not the last member's baseline (the trough on the previous
event's decay, which loses most of the charge).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

from ..errors import ParameterError
from ..params import PARAMS, check_fields, default
from ..recording import Recording
from ..filters import analysis_filter, direction_sign, filter_margin, filter_range

__all__ = ["MeasureSettings", "KINETICS_COLUMNS", "KINETICS_METHODS", "fit_kinetics", "GATHER_SPAN", "gather_windows", "event_windows", "measure_events"]

#: columns of the table :func:`measure_events` returns, in order
KINETICS_COLUMNS = (
    "onset_sample",
    "peak_sample",
    "baseline",
    "amplitude",
    "rise_time_s",
    "half_decay_s",
    "half_width_s",
    "charge",
    "decay_tau_s",
)

#: ``MeasureSettings.kinetics_method`` values (declared in minidet.params)
KINETICS_METHODS = PARAMS["kinetics_method"].choices


@dataclass(frozen=True)
class MeasureSettings:
    """Settings of the per-event measurements.

    Parameters
    ----------
    window_size
        The model's window in samples of the recording (>= 30); sets the analysis window
        (``window_size // 3`` before the position, ``window_size + window_size // 3`` after).
    convolve_win
        Hann window (samples) of the analysis filter, or 0 for a Butterworth low-pass at
        ``sampling_rate / filter_factor``.
    filter_factor
        Cut-off divisor for ``convolve_win == 0`` (> 2).
    event_direction
        ``"negative"`` or ``"positive"``.
    rise_low, rise_high
        Rise time between these fractions of the amplitude (0 < low < high < 1).
    charge_half_decays
        Charge is integrated up to this many half-decay times after the peak (> 0).
    kinetics_method
        ``"fit"`` (default): amplitude, 10-90 % rise time, half decay and decay time
        constant come from a least-squares fit of ``baseline + a (1 - exp(-t/rise))
        exp(-t/decay)`` to the UNFILTERED trace around each event (:func:`fit_kinetics`),
        so they do not depend on the analysis filter the locator uses; an event whose fit
        fails keeps the filtered values (and no decay tau). ``"filtered"``: miniML's rules
        on the analysis-filtered window for all of them (decay tau NaN).
    """

    window_size: int = default("window_size")
    convolve_win: int = default("convolve_win")
    filter_factor: float = default("filter_factor")
    event_direction: str = default("event_direction")
    rise_low: float = 0.1
    rise_high: float = 0.9
    charge_half_decays: float = 4.0
    kinetics_method: str = default("kinetics_method")

    def __post_init__(self) -> None:
        check_fields(self)  # the declared settings (minidet.params)
        if not (0 < self.rise_low < self.rise_high < 1):
            raise ParameterError(
                f"rise_low and rise_high must satisfy 0 < rise_low < rise_high < 1, got {self.rise_low!r}, {self.rise_high!r}"
            )
        if not (isinstance(self.charge_half_decays, (int, float)) and self.charge_half_decays > 0):
            raise ParameterError(f"charge_half_decays must be a positive number, got {self.charge_half_decays!r}")

    @property
    def add_points(self) -> int:
        return int(self.window_size) // 3

    @property
    def window_length(self) -> int:
        return int(self.window_size) + 2 * self.add_points

    @property
    def sign(self) -> int:
        return direction_sign(self.event_direction)

    def filter_spec(self, sampling_rate: float) -> tuple[int, float | None]:
        """(Hann size, Butterworth cut-off in Hz or None) of the analysis filter."""
        if self.convolve_win > 0:
            return int(self.convolve_win), None
        return 0, sampling_rate / self.filter_factor

    def to_dict(self) -> dict:
        return asdict(self)


# ---------------------------------------------------------------------------- windows
#: at most this many samples are read at once when windows are cut from a lazy recording
GATHER_SPAN = 1 << 22


def gather_windows(samples, starts: np.ndarray, length: int, *, span: int | None = None) -> np.ndarray:
    """``samples[starts[i] + arange(length)]`` as a ``(len(starts), length)`` float64 array.

    ``samples`` is an array, or a lazy trace (:class:`~minidet.recording.LazyTrace`): then
    the windows are read in groups of neighbours, each group's samples read once and at
    most ``span`` samples (default :data:`GATHER_SPAN`; or one window) at a time, never
    the whole trace. Every index must lie inside the trace; ``starts`` in any order.
    """
    span = GATHER_SPAN if span is None else int(span)
    starts = np.asarray(starts, dtype=np.int64)
    offsets = np.arange(length)
    out = np.empty((starts.size, length), dtype=np.float64)
    if starts.size == 0:
        return out
    if isinstance(samples, np.ndarray):
        rows = max(1, span // max(length, 1))  # index arrays of about `span` entries
        for b in range(0, starts.size, rows):
            out[b : b + rows] = samples[starts[b : b + rows, None] + offsets[None, :]]
        return out
    order = np.argsort(starts, kind="stable")
    s = starts[order]
    i = 0
    while i < s.size:
        # the longest run of windows whose samples fit in one read of `span`
        j = int(np.searchsorted(s, s[i] + max(span - length, 0), side="right"))
        j = max(j, i + 1)
        lo, hi = int(s[i]), int(s[j - 1]) + length
        piece = np.asarray(samples[lo:hi], dtype=np.float64)
        out[order[i:j]] = piece[(s[i:j] - lo)[:, None] + offsets[None, :]]
        i = j
    return out


def event_windows(
    recording: Recording,
    starts: np.ndarray,
    length: int,
    settings: MeasureSettings,
    *,
    batch: int = 2048,
) -> np.ndarray:
    """Filtered trace (analysis filter, whole-trace semantics) at ``starts[i] + arange(length)``,
    multiplied by the event direction; shape ``(len(starts), length)``.

    Every window must lie inside the recording. Interior windows are filtered together as
    a 2-D block with a margin either side; windows whose margin reaches an end of the
    recording are filtered one by one from that end, so the result equals filtering the
    whole trace once.
    """
    x = recording.samples
    n = x.shape[0]
    starts = np.asarray(starts, dtype=np.int64)
    out = np.empty((starts.size, length), dtype=np.float64)
    if starts.size == 0:
        return out
    if starts.min() < 0 or starts.max() + length > n:
        raise ParameterError("event windows must lie inside the recording")
    hann, cutoff = settings.filter_spec(recording.sampling_rate)
    margin = filter_margin(hann, cutoff, recording.sampling_rate)

    def fn(seg: np.ndarray) -> np.ndarray:
        return analysis_filter(seg, hann_size=hann, cutoff_hz=cutoff, sampling_rate=recording.sampling_rate)

    interior = (starts - margin >= 0) & (starts + length + margin <= n)
    idx = np.flatnonzero(interior)
    for b in range(0, idx.size, batch):
        rows = idx[b : b + batch]
        block = gather_windows(x, starts[rows] - margin, length + 2 * margin)
        out[rows] = fn(block)[:, margin : margin + length]
    for row in np.flatnonzero(~interior):
        s = int(starts[row])
        out[row] = filter_range(x, s, s + length, fn, margin)
    out *= settings.sign
    return out


# ---------------------------------------------------------------------------- helpers
def _is_positive_int(value: object) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool) and value >= 1


def _masked_mean_std(data: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    cols = np.arange(data.shape[1])
    mask = (cols >= lo[:, None]) & (cols < hi[:, None])
    count = mask.sum(axis=1)
    mean = np.where(mask, data, 0.0).sum(axis=1) / np.maximum(count, 1)
    var = np.where(mask, (data - mean[:, None]) ** 2, 0.0).sum(axis=1) / np.maximum(count, 1)
    mean[count == 0] = np.nan
    return mean, np.sqrt(var)


def _argext_in(data: np.ndarray, lo: np.ndarray, hi: np.ndarray, *, largest: bool) -> np.ndarray:
    """Per row, index of the max (min) of ``data[row, lo:hi]`` (first one on ties)."""
    cols = np.arange(data.shape[1])
    mask = (cols >= lo[:, None]) & (cols < hi[:, None])
    fill = -np.inf if largest else np.inf
    masked = np.where(mask, data, fill)
    return masked.argmax(axis=1) if largest else masked.argmin(axis=1)


def _last_true(mask: np.ndarray) -> np.ndarray:
    """Per row, the last column where ``mask`` holds, or -1."""
    rev = mask[:, ::-1]
    last = mask.shape[1] - 1 - rev.argmax(axis=1)
    return np.where(rev.any(axis=1), last, -1)


def _first_true(mask: np.ndarray) -> np.ndarray:
    """Per row, the first column where ``mask`` holds, or -1."""
    first = mask.argmax(axis=1)
    return np.where(mask.any(axis=1), first, -1)


def _rising_crossing(data: np.ndarray, level: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """Fractional index of the last upward crossing of ``level`` in ``data[row, lo:hi]``:
    the last sample below the level plus the linear interpolation to the next sample,
    which must also lie in ``[lo, hi)``; NaN where there is none."""
    rows = np.arange(data.shape[0])
    cols = np.arange(data.shape[1])
    inside = (cols >= lo[:, None]) & (cols < hi[:, None])
    j = _last_true(inside & (data < level[:, None]))
    ok = (j >= 0) & (j + 1 < hi)
    j1 = np.where(ok, j, 0)
    y1 = data[rows, j1]
    y2 = data[rows, np.minimum(j1 + 1, data.shape[1] - 1)]
    with np.errstate(divide="ignore", invalid="ignore"):
        frac = np.where(y2 != y1, (level - y1) / (y2 - y1), 0.0)
    return np.where(ok, j1 + frac, np.nan)


# ---------------------------------------------------------------------------- measurements
def measure_events(
    recording: Recording,
    positions: np.ndarray,
    settings: MeasureSettings | None = None,
    *,
    batch: int = 4096,
) -> pd.DataFrame:
    """Measure every event at ``positions`` (sample indices of the steepest rise, sorted).

    Returns a table with :data:`KINETICS_COLUMNS`: ``onset_sample`` and ``peak_sample``
    (sample indices), ``baseline`` and ``amplitude`` (recording's unit, signed as the
    recording: a negative event has a negative amplitude), ``rise_time_s``,
    ``half_decay_s``, ``half_width_s`` (seconds) and ``charge`` (unit x s, signed).
    Positions whose analysis window does not fit inside the recording (fewer than
    ``window_size // 3`` samples before or ``window_size + window_size // 3`` after) are
    not measured: their rows hold -1 / NaN. ``batch`` events are measured at a time.
    """
    settings = settings or MeasureSettings()
    if not _is_positive_int(batch):
        raise ParameterError(f"batch must be a positive integer, got {batch!r}")
    pos = np.asarray(positions, dtype=np.int64)
    if pos.ndim != 1:
        raise ParameterError(f"positions must be 1-D, got shape {pos.shape}")
    if pos.size > 1 and np.any(np.diff(pos) <= 0):
        raise ParameterError("positions must be strictly increasing sample indices")
    n = recording.n_samples
    k = pos.size
    A = settings.add_points
    W = int(settings.window_size)
    fs = recording.sampling_rate
    sign = settings.sign

    table = pd.DataFrame(
        {
            "onset_sample": np.full(k, -1, np.int64),
            "peak_sample": np.full(k, -1, np.int64),
            "baseline": np.full(k, np.nan),
            "amplitude": np.full(k, np.nan),
            "rise_time_s": np.full(k, np.nan),
            "half_decay_s": np.full(k, np.nan),
            "half_width_s": np.full(k, np.nan),
            "charge": np.full(k, np.nan),
            "decay_tau_s": np.full(k, np.nan),
        }
    )
    fits = (pos - A >= 0) & (pos + W + A < n)
    sel = np.flatnonzero(fits)
    if sel.size == 0:
        return table
    # neighbours are all detected events, also those whose own window does not fit
    # (their "peak" is then their position)
    diffs_all = np.diff(pos, append=n)
    all_peak_abs = pos.copy()
    parts: dict[str, list[np.ndarray]] = {}
    # blocks of events keep the 2-D temporaries small on long recordings; blocks run in
    # order so that every event sees its predecessor's peak
    for b in range(0, sel.size, batch):
        block = _measure_block(recording, settings, pos, sel[b : b + batch], diffs_all, all_peak_abs)
        for key, value in block.items():
            parts.setdefault(key, []).append(value)
    res = {key: np.concatenate(value) for key, value in parts.items()}

    charge = _charges(recording, settings, pos[sel], res["peak_abs"], res["onset_abs"], res["hd_samples"],
                      res["bsl"], pos, sel)
    table.loc[sel, "onset_sample"] = res["onset_abs"]
    table.loc[sel, "peak_sample"] = res["peak_abs"]
    table.loc[sel, "baseline"] = res["bsl"] * sign
    table.loc[sel, "amplitude"] = res["amp"] * sign
    table.loc[sel, "rise_time_s"] = res["rise"]
    table.loc[sel, "half_decay_s"] = np.where(res["hd_samples"] >= 0, res["hd_samples"] / fs, np.nan)
    table.loc[sel, "half_width_s"] = res["half_width"]
    table.loc[sel, "charge"] = charge * sign
    if settings.kinetics_method == "fit":
        fit = fit_kinetics(recording, pos, sel, settings, rise_time_s=res["rise"],
                           half_decay_s=np.where(res["hd_samples"] >= 0, res["hd_samples"] / fs, np.nan))
        ok = np.isfinite(fit["amplitude"])
        rows = sel[ok]
        table.loc[rows, "amplitude"] = fit["amplitude"][ok] * sign
        table.loc[rows, "rise_time_s"] = fit["rise_time_s"][ok]
        table.loc[rows, "half_decay_s"] = fit["half_decay_s"][ok]
        table.loc[rows, "decay_tau_s"] = fit["decay_tau_s"][ok]
    return table


# ---------------------------------------------------------------------------- kinetic fit
def _kernel(s: np.ndarray, rise: float, decay: float) -> np.ndarray:
    s = np.maximum(s, 0.0)
    return (1.0 - np.exp(-s / rise)) * np.exp(-s / decay)


def fit_kinetics(
    recording: Recording,
    positions: np.ndarray,
    sel: np.ndarray,
    settings: MeasureSettings,
    *,
    rise_time_s: np.ndarray,
    half_decay_s: np.ndarray,
) -> dict[str, np.ndarray]:
    """Amplitude, 10-90 % rise, half decay and decay tau of the events ``positions[sel]``
    from a fit to the unfiltered trace (in the event direction).

    Each event's fit window runs from ``window_size // 3`` samples before its position to
    ``window_size`` after it, or to 2 samples before the next detected event when that is
    closer; when the previous event was fitted, its fitted curve, extrapolated, is
    subtracted first (an event on the decay of another). The model is ``b + a (1 - exp(-(t - t0)/rise)) exp(-(t - t0)/decay)`` for
    ``t > t0`` (``b`` before), the same rise-and-decay shape as the simulator's events and
    miniML's event template; it is fitted by bounded least squares (scipy) started from the
    filtered measurements (``rise_time_s``, ``half_decay_s``). The reported values are those
    of the fitted curve: amplitude = its peak above ``b``; rise time between the
    ``rise_low``/``rise_high`` fractions of it; half decay from its peak to 50 %;
    decay tau = ``decay``. NaN where the fit fails, its window is shorter than
    ``add_points + 8`` samples, or it lands on a bound.
    """
    from scipy.optimize import least_squares

    from ..simulation import event_kinetics

    fs = recording.sampling_rate
    A = settings.add_points
    W = int(settings.window_size)
    n = recording.n_samples
    m = sel.size
    out = {key: np.full(m, np.nan) for key in ("amplitude", "rise_time_s", "half_decay_s", "decay_tau_s")}
    if m == 0:
        return out
    loc = positions[sel]
    nxt = np.where(sel + 1 < positions.size, positions[np.minimum(sel + 1, positions.size - 1)], n)
    stop = np.minimum(np.minimum(loc + W, nxt - 2), n)
    starts = loc - A
    lengths = stop - starts
    x = recording.samples
    rise_lo, rise_hi = float(settings.rise_low), float(settings.rise_high)
    prev: tuple[float, float, float, float] | None = None  # previous fit: absolute t0, a, rise, decay
    for i in range(m):
        length = int(lengths[i])
        fitted_prev, prev = prev, None
        if length < A + 8:
            continue
        y = np.asarray(x[int(starts[i]) : int(stop[i])], dtype=np.float64) * settings.sign
        t = np.arange(length, dtype=np.float64)
        if fitted_prev is not None and i > 0 and sel[i] == sel[i - 1] + 1:
            # the previous event's fitted decay, extrapolated, is taken off (an event on a decay)
            pt0, pa, pr, pd_ = fitted_prev
            y = y - pa * _kernel(t + float(starts[i]) - pt0, pr, pd_)
        rt = rise_time_s[i] * fs
        hd = half_decay_s[i] * fs
        r0 = max(0.5, (rt if np.isfinite(rt) else 5.0) / 2.2)
        d0 = max(2.0 * r0, (hd if np.isfinite(hd) else 4.0 * r0) / np.log(2.0))
        b0 = float(np.median(y[: max(3, A - 2)]))
        k0 = d0 / r0
        a0 = max(float(y.max()) - b0, 1e-12) / float(_kernel(np.array([np.log1p(k0) * r0]), r0, d0)[0])
        lb = np.array([-np.inf, 0.0, 0.0, 0.05, 0.5])
        ub = np.array([np.inf, np.inf, float(length), float(length), 50.0 * length])
        p0 = np.clip(np.array([b0, a0, A - 1.0, r0, d0]), lb + 1e-9, ub - 1e-9)

        def resid(p: np.ndarray) -> np.ndarray:
            return p[0] + p[1] * _kernel(t - p[2], p[3], p[4]) - y

        try:
            fit = least_squares(resid, p0, bounds=(lb, ub), x_scale="jac", max_nfev=200)
        except (ValueError, FloatingPointError):
            continue
        b, a, t0, r, d = fit.x
        if not (fit.success and np.all(np.isfinite(fit.x)) and a > 0 and d > r
                and r < 0.999 * ub[3] and d < 0.999 * ub[4] and r > 1.001 * lb[3]):
            continue
        prev = (float(starts[i]) + t0, a, r, d)
        kin = _fitted_kinetics(r / fs, d / fs, rise_lo, rise_hi, event_kinetics)
        out["amplitude"][i] = a * kin["peak_value"]
        out["rise_time_s"][i] = kin["rise_time_s"]
        out["half_decay_s"][i] = kin["half_decay_s"]
        out["decay_tau_s"][i] = d / fs
    return out


def _fitted_kinetics(rise_tau_s: float, decay_tau_s: float, lo: float, hi: float, event_kinetics) -> dict[str, float]:
    kin = event_kinetics(np.array([rise_tau_s]), np.array([decay_tau_s]))
    res = {key: float(v[0]) for key, v in kin.items()}
    if (lo, hi) != (0.1, 0.9):  # other rise fractions: the crossings of the fitted curve
        from ..simulation import _crossing, _shape

        k = np.array([decay_tau_s / rise_tau_s])
        u_peak = np.log1p(k)
        peak = _shape(u_peak, k)
        u_lo = _crossing(k, np.zeros(1), u_peak, lo * peak)
        u_hi = _crossing(k, np.zeros(1), u_peak, hi * peak)
        res["rise_time_s"] = float((u_hi - u_lo)[0] * rise_tau_s)
    return res


def _measure_block(
    recording: Recording,
    settings: MeasureSettings,
    pos: np.ndarray,
    sel: np.ndarray,
    diffs_all: np.ndarray,
    all_peak_abs: np.ndarray,
) -> dict[str, np.ndarray]:
    """Measurements of the events ``pos[sel]`` (all with a whole analysis window), in the
    event direction. Writes their peaks into ``all_peak_abs``."""
    k = pos.size
    A = settings.add_points
    W = int(settings.window_size)
    L = settings.window_length
    fs = recording.sampling_rate
    loc = pos[sel]
    diffs = diffs_all[sel]
    m = loc.size
    rows = np.arange(m)
    cols = np.arange(L)
    D = event_windows(recording, loc - A, L, settings)

    # -- peak
    right = np.where(diffs < W, diffs // 2, L // 5)
    peak = _argext_in(D, np.full(m, A), A + np.maximum(right, 1), largest=True)
    spacer = max(1, W // 300)
    peak_value = D[rows[:, None], peak[:, None] + np.arange(-spacer, spacer)[None, :]].mean(axis=1)
    peak_abs = loc - A + peak
    all_peak_abs[sel] = peak_abs

    # -- baseline
    dur = int(W * 0.1)
    prev_idx = sel - 1
    has_prev = prev_idx >= 0
    prev_peak_abs = np.where(has_prev, all_peak_abs[np.maximum(prev_idx, 0)], np.iinfo(np.int64).min // 2)
    dd = loc - prev_peak_abs
    close = has_prev & (dd <= A * 1.2)
    lo_close = np.clip(A - dd, 0, A)
    min_close = _argext_in(D, lo_close, np.full(m, A), largest=False)
    bsl_dur = np.where(close, dur // 10, dur)
    far_end = np.maximum(A - (peak - A) * 3, dur)
    bsl_end = np.where(close, min_close + (dur // 10) // 2, far_end)
    bsl_start = np.where(close, np.maximum(0, min_close - (dur // 10) // 2), np.maximum(0, far_end - dur))
    bsl, _ = _masked_mean_std(D, bsl_start, bsl_end)
    above = ~(bsl < D[rows, peak])  # baseline at or above the peak: use the trough instead
    if above.any():
        min_half = _argext_in(D, np.full(m, A // 2), np.full(m, A), largest=False)
        trough = np.where(close, min_close, min_half)
        half = (bsl_dur // 4) // 2
        bsl_start = np.where(above, np.maximum(0, trough - half), bsl_start)
        # DEPARTURE: at least one sample (miniML's window is empty here and it raises)
        bsl_end = np.where(above, np.maximum(trough + half, np.maximum(0, trough - half) + 1), bsl_end)
    bsl, bsl_sd = _masked_mean_std(D, bsl_start, bsl_end)

    # -- onset: first sample after the last one below baseline + SD/4 before the peak
    below = (D < (bsl + 0.25 * bsl_sd)[:, None]) & (cols[None, :] < peak[:, None])
    last_below = _last_true(below)
    onset = last_below + 1
    bad_onset = (last_below < 0) | (onset >= peak)
    onset = np.where(bad_onset, peak - peak // 2, onset)

    # -- rise time on the segment baseline start .. peak (exclusive), as miniML
    amp = peak_value - bsl
    x_lo = _rising_crossing(D, bsl + settings.rise_low * amp, bsl_start, peak)
    x_hi = _rising_crossing(D, bsl + settings.rise_high * amp, bsl_start, peak)
    # DEPARTURE: miniML substitutes 0.8 x (peak - baseline start) when a crossing is missing
    # or out of order; that is not a rise time, so NaN. The crossings are exact linear
    # interpolations (miniML: on a 200 kHz grid, i.e. rounded up to 5 us steps).
    rise = np.where(x_hi > x_lo, (x_hi - x_lo) / fs, np.nan)

    # -- half decay: first sample below half the (single-sample) peak after the peak
    level = bsl + (D[rows, peak] - bsl) / 2
    limit = np.where(diffs < A, diffs + A, L)  # before the next event when it is close
    after = (cols[None, :] >= peak[:, None]) & (cols[None, :] < limit[:, None]) & (D < level[:, None])
    first_below = _first_true(after)
    # DEPARTURE: miniML reports 0 samples when the level is never reached in the window
    hd_samples = np.where(first_below >= 0, first_below - peak, -1)

    # -- half width
    hw_amp = np.abs(D[rows, peak] - bsl)  # DEPARTURE: miniML uses the 4-sample mean for positive events only
    hw_level = bsl + hw_amp / 2
    not_last = sel < k - 1
    hw_len = np.where(not_last & (diffs < L - peak), peak + diffs, L)
    t_rise = _rising_crossing(D, hw_level, np.zeros(m, np.int64), peak + 1)
    # decay side: running mean of 10 samples, D[p-5 .. p+4], only where the window is
    # whole (miniML zero-pads the last 4 samples)
    csum = np.concatenate([np.zeros((m, 1)), np.cumsum(D, axis=1)], axis=1)
    smooth = np.full((m, L), np.nan)
    smooth[:, 5 : L - 4] = (csum[:, 10:] - csum[:, :-10]) / 10.0
    del csum
    use_raw = (hw_len - peak) < 20
    dec = np.where(use_raw[:, None], D, smooth)
    valid = (cols[None, :] >= peak[:, None]) & (cols[None, :] < hw_len[:, None])
    valid &= use_raw[:, None] | (cols[None, :] + 4 < hw_len[:, None])
    fb = _first_true(valid & (dec < hw_level[:, None]))
    j1 = fb - 1
    ok = (fb >= 0) & (j1 >= peak)
    j1c = np.where(ok, j1, 0)
    y1 = dec[rows, j1c]
    y2 = dec[rows, np.minimum(j1c + 1, L - 1)]
    with np.errstate(divide="ignore", invalid="ignore"):
        t_decay = np.where(ok, j1c + np.where(y2 != y1, (hw_level - y1) / (y2 - y1), 0.0), np.nan)
    half_width = (t_decay - t_rise) / fs
    half_width[~(hw_amp > 0) | ~(half_width >= 0)] = np.nan

    return {
        "onset_abs": loc - A + onset,
        "peak_abs": peak_abs,
        "bsl": bsl,
        "amp": amp,
        "rise": rise,
        "hd_samples": hd_samples,
        "half_width": half_width,
    }


def _charges(
    recording: Recording,
    settings: MeasureSettings,
    loc: np.ndarray,
    peak_abs: np.ndarray,
    onset_abs: np.ndarray,
    hd_samples: np.ndarray,
    bsl: np.ndarray,
    all_positions: np.ndarray,
    sel: np.ndarray,
) -> np.ndarray:
    """Charge (unit x s, in the event direction) of every measured event.

    miniML's grouping: an event whose half decay is not reached before the next event,
    or whose integration end (peak + 4 half-decay times) lies beyond the next event's
    position, is integrated together with the following event(s); the group's integral
    from the first member's onset to the last member's end, relative to the first
    member's baseline (miniML: the last member's), is shared equally among the members.
    """
    m = loc.size
    n = recording.n_samples
    fs = recording.sampling_rate
    hann, cutoff = settings.filter_spec(fs)
    margin = filter_margin(hann, cutoff, fs)
    x = recording.samples

    def fn(seg: np.ndarray) -> np.ndarray:
        return analysis_filter(seg, hann_size=hann, cutoff_hz=cutoff, sampling_rate=fs)

    # next detected event (also an unmeasured one) for the grouping rule
    k = all_positions.size
    next_pos = np.where(sel + 1 < k, all_positions[np.minimum(sel + 1, k - 1)], n + 10**9)
    charges = np.full(m, np.nan)
    end_span = settings.charge_half_decays
    group_start = -1
    group_bsl = 0.0
    members: list[int] = []
    for i in range(m):
        if not members:
            group_start = int(onset_abs[i])
            group_bsl = float(bsl[i])
        members.append(i)
        last = i == m - 1
        if hd_samples[i] < 0:
            if not last:
                continue
            # DEPARTURE: the last event without a half decay ends at its window's end
            end = int(loc[i] + settings.window_size + settings.add_points)
        else:
            span = int(end_span * hd_samples[i])
            if not last and next_pos[i] - peak_abs[i] <= span:
                continue
            end = int(peak_abs[i] + span)
        end = min(end, n)
        if end - group_start >= 2:
            # DEPARTURE: relative to the baseline before the group (its first member's);
            # miniML uses the last member's, which for overlapping events is the trough on
            # the previous event's decay, and loses most of the group's charge (two equal
            # events 1.2 ms apart: 7 % of the true charge each; 5 ms apart: 72 %).
            seg = filter_range(x, group_start, end, fn, margin) * settings.sign - group_bsl
            total = float(np.trapezoid(seg, dx=1.0 / fs)) if hasattr(np, "trapezoid") else float(np.trapz(seg, dx=1.0 / fs))
        else:
            total = 0.0
        charges[members] = total / len(members)
        members = []
    return charges
