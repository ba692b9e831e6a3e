"""Prediction trace -> event positions (the point of steepest rise), overlapping events.

This is miniML's localisation step (O'Neill et al., eLife 2025; ``EventDetection.
_get_prediction_peaks``, ``_make_smth_gradient``, ``_get_grad_threshold``,
``_find_event_locations`` and ``_remove_duplicate_locations`` in miniml-detect 1.1.2),
rewritten as pure functions:

1. :func:`candidate_regions` -- peaks of the (max-filtered) prediction trace above the
   threshold and at least ``peak_w`` prediction steps wide; each opens a search region.
2. :func:`smoothed_gradient` -- first derivative of the Hann-filtered trace (in the event
   direction), itself Hann-smoothed; computed chunk by chunk so an hour-long recording
   never needs more than one extra trace-sized array.
3. :func:`gradient_threshold` -- median + 4 robust SD (MAD) of the derivative outside the
   search regions.
4. :func:`steepest_rise_positions` -- derivative peaks above that threshold inside each
   region; several peaks in one region are separate (overlapping) events when their
   prominence is at least ``rel_prom_cutoff`` of the largest; the arg-max otherwise.
5. :func:`merge_near_duplicates` -- positions closer than ``window_size / 100`` merged.

:func:`locate_events` runs all five. Positions are sample indices of the recording.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Callable

import numpy as np
from scipy import signal
from scipy.ndimage import maximum_filter1d

from ..errors import ParameterError
from ..recording import Recording

__all__ = [
    "LocateSettings",
    "Regions",
    "LocateResult",
    "direction_sign",
    "analysis_filter",
    "filter_range",
    "candidate_regions",
    "smoothed_gradient",
    "gradient_threshold",
    "steepest_rise_positions",
    "merge_near_duplicates",
    "locate_events",
]

_DIRECTIONS = ("negative", "positive")


def direction_sign(direction: str) -> int:
    """-1 for ``"negative"``, +1 for ``"positive"``; anything else is a ParameterError."""
    if direction not in _DIRECTIONS:
        raise ParameterError(f"event_direction must be one of {_DIRECTIONS}, got {direction!r}")
    return -1 if direction == "negative" else 1


def _check_hann_size(name: str, value: int, *, zero_means: str) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise ParameterError(f"{name} must be an integer number of samples, got {value!r}")
    # hann(1) and hann(2) are all zeros (division by zero when normalised)
    if value < 0 or value in (1, 2):
        raise ParameterError(f"{name} must be 0 ({zero_means}) or an integer >= 3 samples, got {value!r}")


@dataclass(frozen=True)
class LocateSettings:
    """Settings of the localisation step (units in the names; sizes in samples).

    Parameters
    ----------
    window_size
        The model's window in samples of the recording (>= 30). Sets the search regions
        (start ``window_size / 4`` after the prediction peak's left edge, end
        ``window_size / 2`` after its right edge), the border margins and the merge distance.
    threshold
        Minimum height (and prominence) of a prediction peak, in (0, 1).
    peak_w
        Minimum width of a prediction peak, in prediction steps (>= 1).
    stride
        Samples of the recording between successive prediction windows (> 0);
        ``None`` -> ``round(window_size / 30)`` like miniML.
    convolve_win
        Hann window (samples) of the analysis filter; the derivative is taken of the trace
        filtered with ``2 * convolve_win`` as in miniML. 0 selects a 4th-order Butterworth
        low-pass at ``sampling_rate / (1.5 * filter_factor)`` instead.
    gradient_convolve_win
        Hann window (samples) smoothing the derivative; 0 = none; ``None`` -> ``2 * convolve_win``.
    filter_factor
        Only with ``convolve_win == 0``: low-pass cut-off as a fraction of the sampling rate (> 3).
    rel_prom_cutoff
        Minimum prominence of a second derivative peak in one region, relative to the
        largest there, for it to count as an overlapping event; in (0, 1].
    event_direction
        ``"negative"`` or ``"positive"``: the direction of the events in the recording.
    mad_multiplier
        The derivative threshold is median + ``mad_multiplier`` robust SD (> 0).
    """

    window_size: int = 600
    threshold: float = 0.5
    peak_w: int = 5
    stride: float | None = None
    convolve_win: int = 20
    gradient_convolve_win: int | None = None
    filter_factor: float = 20.0
    rel_prom_cutoff: float = 0.25
    event_direction: str = "negative"
    mad_multiplier: float = 4.0

    def __post_init__(self) -> None:
        if isinstance(self.window_size, bool) or not isinstance(self.window_size, (int, np.integer)) or self.window_size < 30:
            raise ParameterError(f"window_size must be an integer >= 30 samples, got {self.window_size!r}")
        if not (isinstance(self.threshold, (int, float)) and 0 < self.threshold < 1):
            raise ParameterError(f"threshold must be a number in (0, 1), got {self.threshold!r}")
        if isinstance(self.peak_w, bool) or not isinstance(self.peak_w, (int, np.integer)) or self.peak_w < 1:
            raise ParameterError(f"peak_w must be an integer >= 1 (prediction steps), got {self.peak_w!r}")
        if self.stride is not None and not (
            isinstance(self.stride, (int, float, np.number)) and math.isfinite(self.stride) and self.stride > 0
        ):
            raise ParameterError(f"stride must be a positive number of samples or None, got {self.stride!r}")
        _check_hann_size("convolve_win", self.convolve_win, zero_means="Butterworth low-pass")
        if self.gradient_convolve_win is not None:
            _check_hann_size("gradient_convolve_win", self.gradient_convolve_win, zero_means="no smoothing")
        if not (isinstance(self.filter_factor, (int, float)) and math.isfinite(self.filter_factor) and self.filter_factor > 3):
            raise ParameterError(f"filter_factor must be a number > 3 (cut-off below Nyquist), got {self.filter_factor!r}")
        if not (isinstance(self.rel_prom_cutoff, (int, float)) and 0 < self.rel_prom_cutoff <= 1):
            raise ParameterError(f"rel_prom_cutoff must be a number in (0, 1], got {self.rel_prom_cutoff!r}")
        direction_sign(self.event_direction)
        if not (isinstance(self.mad_multiplier, (int, float)) and self.mad_multiplier > 0):
            raise ParameterError(f"mad_multiplier must be a positive number, got {self.mad_multiplier!r}")

    @property
    def sign(self) -> int:
        return direction_sign(self.event_direction)

    @property
    def stride_samples(self) -> float:
        """Prediction step in samples of the recording."""
        return float(self.stride) if self.stride is not None else float(max(1, round(self.window_size / 30)))

    @property
    def smoothing_win(self) -> int:
        """Resolved ``gradient_convolve_win``."""
        return 2 * self.convolve_win if self.gradient_convolve_win is None else int(self.gradient_convolve_win)

    @property
    def add_points(self) -> int:
        """Samples analysed before an event position (a third of the window, as miniML)."""
        return int(self.window_size) // 3

    @property
    def edge_limit(self) -> int:
        """Events need this many samples after their position (window + add_points)."""
        return int(self.window_size) + self.add_points

    def to_dict(self) -> dict:
        return asdict(self)


# ---------------------------------------------------------------------------- filters
def _hann(size: int) -> np.ndarray:
    win = signal.windows.hann(size)
    return win / win.sum()


def analysis_filter(
    x: np.ndarray, *, hann_size: int, cutoff_hz: float | None, sampling_rate: float
) -> np.ndarray:
    """Filter along the last axis as miniML does: Hann-window convolution (``mode="same"``,
    the first and last ``hann_size`` samples left raw) when ``hann_size > 1``, else a
    zero-phase 4th-order Butterworth low-pass at ``cutoff_hz``. Returns a new float64 array.
    """
    x = np.asarray(x, dtype=np.float64)
    if hann_size > 1:
        n = x.shape[-1]
        win = _hann(hann_size).reshape((1,) * (x.ndim - 1) + (-1,))
        if n <= 2 * hann_size:
            return x.copy()
        y = signal.oaconvolve(x, win, mode="same", axes=-1) if x.ndim > 1 else signal.convolve(x, win.ravel(), mode="same")
        y[..., :hann_size] = x[..., :hann_size]
        y[..., -hann_size:] = x[..., -hann_size:]
        return y
    if cutoff_hz is not None:
        sos = signal.butter(4, cutoff_hz, btype="lowpass", output="sos", fs=sampling_rate)
        if x.shape[-1] <= 3 * (2 * len(sos) + 1):
            return x.copy()
        return signal.sosfiltfilt(sos, x, axis=-1)
    return x.copy()


def _filter_margin(hann_size: int, cutoff_hz: float | None, sampling_rate: float) -> int:
    """Samples either side a chunk needs so that filtering it equals filtering the whole trace."""
    if hann_size > 1:
        return 2 * hann_size + 2
    if cutoff_hz is not None:
        # the 4th-order Butterworth impulse response has decayed below 1e-9 after ~40 periods
        return int(math.ceil(40 * sampling_rate / cutoff_hz)) + 32
    return 0


def filter_range(
    samples: np.ndarray,
    start: int,
    stop: int,
    fn: Callable[[np.ndarray], np.ndarray],
    margin: int,
) -> np.ndarray:
    """``fn(samples)[start:stop]`` computed from ``samples[start - margin : stop + margin]``.

    ``fn`` must be local: its output at a sample depends only on inputs within ``margin``
    and on the array's ends only within ``margin`` of them (true of the Hann filters, of
    ``np.gradient`` and, to far below float precision, of the Butterworth filter with the
    margin of :func:`_filter_margin`). At the recording's own ends the slice starts/stops
    there, so the edge treatment is the whole-trace one.
    """
    n = samples.shape[0]
    lo = max(0, start - margin)
    hi = min(n, stop + margin)
    out = fn(samples[lo:hi])
    return out[start - lo : start - lo + (stop - start)]


# ---------------------------------------------------------------------------- regions
@dataclass(frozen=True)
class Regions:
    """Search regions opened by prediction peaks: ``[starts[i], stops[i])`` and the peak
    height ``scores[i]`` (sample indices of the recording)."""

    starts: np.ndarray
    stops: np.ndarray
    scores: np.ndarray

    def __len__(self) -> int:
        return int(self.starts.size)


def _samples_per_step(n_prediction: int, stride: float) -> float:
    # miniML interpolates its P window scores onto round((P - 1) * stride) samples and then
    # scales peak widths and the max filter by that length / P -- slightly below `stride`
    # (19.9997 for stride 20); reproduce the same factor from the trace length.
    n_windows = round(n_prediction / stride) + 1
    return n_prediction / n_windows


def _prominent_peaks(x: np.ndarray, height: float, prominence: float, width: float) -> dict[str, np.ndarray]:
    """``scipy.signal.find_peaks(x, height=, prominence=, width=)`` in O(n + k log k).

    scipy finds each peak's prominence by walking outwards to the nearest strictly higher
    sample, which on a long prediction trace with many near-1 plateaus is O(n) per peak.
    The same numbers come from the candidates alone: the nearest higher sample lies in the
    bump of the nearest higher candidate peak, so the base on each side is the minimum of
    the gaps between the peak and that candidate, found with a monotonic stack. Widths are
    then scipy's ``peak_widths`` (bases only bound its local scan).
    """
    peaks, props = signal.find_peaks(x, height=height)
    heights = props["peak_heights"]
    k = peaks.size
    if k == 0:
        empty = np.zeros(0)
        return {"peaks": peaks, "peak_heights": empty, "prominences": empty,
                "left_ips": empty, "right_ips": empty, "widths": empty}
    # seg[j]: min of x over [peaks[j-1] + 1, peaks[j] + 1) (j = 0: from 0; j = k: to the end)
    seg = np.minimum.reduceat(x, np.concatenate(([0], peaks + 1))).astype(np.float64)
    h = heights.tolist()
    left = [0.0] * k
    stack: list[tuple[float, float]] = []  # (height, min of x since the element below)
    for i in range(k):
        acc = float(seg[i])
        while stack and stack[-1][0] <= h[i]:
            acc = min(acc, stack.pop()[1])
        left[i] = acc
        stack.append((h[i], acc))
    right = [0.0] * k
    stack = []
    for i in range(k - 1, -1, -1):
        acc = float(seg[i + 1])
        while stack and stack[-1][0] <= h[i]:
            acc = min(acc, stack.pop()[1])
        right[i] = acc
        stack.append((h[i], acc))
    prom = heights.astype(np.float64) - np.maximum(np.asarray(left), np.asarray(right))
    keep = prom >= prominence
    peaks, heights, prom = peaks[keep], heights[keep], prom[keep]
    if peaks.size == 0:
        empty = np.zeros(0)
        return {"peaks": peaks, "peak_heights": empty, "prominences": empty,
                "left_ips": empty, "right_ips": empty, "widths": empty}
    bases_l = np.zeros(peaks.size, dtype=np.intp)
    bases_r = np.full(peaks.size, x.size - 1, dtype=np.intp)
    widths, _, left_ips, right_ips = signal.peak_widths(
        x, peaks, rel_height=0.5, prominence_data=(prom, bases_l, bases_r)
    )
    keep = widths >= width
    return {"peaks": peaks[keep], "peak_heights": heights[keep], "prominences": prom[keep],
            "left_ips": left_ips[keep], "right_ips": right_ips[keep], "widths": widths[keep]}


def candidate_regions(prediction: np.ndarray, settings: LocateSettings) -> Regions:
    """Prediction peaks above the threshold -> search regions for the steepest rise.

    ``prediction`` is on the recording's sample grid (index = start of the model window).
    """
    pred = np.asarray(prediction)
    if pred.ndim != 1:
        raise ParameterError(f"prediction must be 1-D, got shape {pred.shape}")
    empty = Regions(np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0))
    if pred.size < 3:
        return empty
    factor = _samples_per_step(pred.size, settings.stride_samples)
    # the max filter bridges the dips between adjacent windows' scores (miniML: 5 steps,
    # origin -2); height and prominence both at the threshold
    size = max(1, int(5 * factor))
    filtered = maximum_filter1d(pred, size=size, origin=max(-(size // 2), -2))
    props = _prominent_peaks(
        filtered,
        height=settings.threshold,
        prominence=settings.threshold,
        width=settings.peak_w * factor,
    )
    if props["peak_heights"].size == 0:
        return empty
    left, right, widths = props["left_ips"], props["right_ips"], props["widths"]
    starts = (left + settings.window_size / 4).astype(np.int64)
    late = starts > right
    starts[late] = (right[late] - widths[late] / 4).astype(np.int64)
    stops = (right + settings.window_size / 2).astype(np.int64)
    return Regions(starts, stops, props["peak_heights"].astype(np.float64))


# ---------------------------------------------------------------------------- derivative
def _gradient_fn(sampling_rate: float, settings: LocateSettings) -> tuple[Callable[[np.ndarray], np.ndarray], int]:
    if settings.convolve_win > 0:
        trace_hann, cutoff = 2 * settings.convolve_win, None
    else:
        trace_hann, cutoff = 0, sampling_rate / (settings.filter_factor * 1.5)
    smooth = settings.smoothing_win
    sign = settings.sign
    dt = 1.0 / sampling_rate

    def fn(x: np.ndarray) -> np.ndarray:
        y = analysis_filter(x, hann_size=trace_hann, cutoff_hz=cutoff, sampling_rate=sampling_rate)
        if sign < 0:
            np.negative(y, out=y)
        g = np.gradient(y, dt) if y.size > 1 else np.zeros_like(y)
        return analysis_filter(g, hann_size=smooth, cutoff_hz=None, sampling_rate=sampling_rate) if smooth > 1 else g

    margin = _filter_margin(trace_hann, cutoff, sampling_rate) + 2 + (2 * smooth + 2 if smooth > 1 else 0)
    return fn, margin


def smoothed_gradient(
    recording: Recording, settings: LocateSettings, *, chunk_size: int = 1 << 20
) -> np.ndarray:
    """Smoothed first derivative (unit/s) of the filtered trace in the event direction.

    Computed in chunks of ``chunk_size`` samples with a margin either side and written into
    one preallocated array, so the result equals the whole-trace computation while the
    temporary memory stays at a few chunks.
    """
    if chunk_size < 1:
        raise ParameterError(f"chunk_size must be >= 1, got {chunk_size!r}")
    x = recording.samples
    fn, margin = _gradient_fn(recording.sampling_rate, settings)
    out = np.empty(x.shape[0], dtype=np.float64)
    for start in range(0, x.shape[0], chunk_size):
        stop = min(x.shape[0], start + chunk_size)
        out[start:stop] = filter_range(x, start, stop, fn, margin)
    return out


def gradient_threshold(gradient: np.ndarray, regions: Regions, multiplier: float = 4.0) -> float:
    """Median + ``multiplier`` * 1.4826 * MAD of the derivative outside the search regions.

    Like miniML's ``np.split`` at ``[s0, e0, s1, e1, ...]``, the event-free stretches are
    ``[0, s0)``, ``[e0, s1)``, ... ``[e_last, n)``.
    """
    n = gradient.shape[0]
    lo = np.concatenate(([0], np.clip(regions.stops, 0, n)))
    hi = np.concatenate((np.clip(regions.starts, 0, n), [n]))
    keep = hi > lo
    # one copy of the event-free samples (views concatenated), then medians in place
    vals = np.concatenate([gradient[a:b] for a, b in zip(lo[keep].tolist(), hi[keep].tolist())]) if keep.any() else None
    if vals is None or vals.size == 0:
        vals = gradient.copy()
    med = float(np.median(vals, overwrite_input=True))
    np.subtract(vals, med, out=vals)
    np.abs(vals, out=vals)
    mad = float(np.median(vals, overwrite_input=True))
    return med + multiplier * 1.4826 * mad


def steepest_rise_positions(
    gradient: np.ndarray,
    regions: Regions,
    threshold: float,
    settings: LocateSettings,
    *,
    n_prediction: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Event positions (sample indices, sorted, unique) and their prediction scores.

    Regions starting within ``window_size`` of the beginning or reaching past the end of
    the prediction trace are dropped, and so are positions within ``window_size +
    add_points`` of the end of the recording (their analysis window would not fit) --
    miniML's border rule.
    """
    n = gradient.shape[0]
    keep = (regions.starts > settings.window_size) & (regions.stops < n_prediction)
    starts, stops, scores = regions.starts[keep], regions.stops[keep], regions.scores[keep]
    last_allowed = n - settings.edge_limit
    positions: list[np.ndarray] = []
    pos_scores: list[np.ndarray] = []
    for start, stop, score in zip(starts.tolist(), stops.tolist(), scores.tolist()):
        seg = gradient[start:stop]
        if seg.size == 0:
            continue
        peaks, props = signal.find_peaks(seg, height=threshold, prominence=threshold)
        if peaks.size > 1:
            prom = props["prominences"]
            peaks = peaks[prom >= settings.rel_prom_cutoff * prom.max()]
        if peaks.size == 0:
            peaks = np.array([int(np.argmax(seg))])
        found = start + peaks
        found = found[found < last_allowed]
        positions.append(found)
        pos_scores.append(np.full(found.size, score))
    if not positions:
        return np.zeros(0, np.int64), np.zeros(0)
    pos = np.concatenate(positions).astype(np.int64)
    sc = np.concatenate(pos_scores)
    # first occurrence of each position keeps its score (miniML skips repeats)
    uniq, first = np.unique(pos, return_index=True)
    return uniq, sc[first]


def merge_near_duplicates(positions: np.ndarray, scores: np.ndarray, min_distance: float) -> tuple[np.ndarray, np.ndarray]:
    """Drop every position closer than ``min_distance`` samples to its predecessor
    (miniML: ``window_size / 100``). ``positions`` must be sorted."""
    if positions.size < 2:
        return positions, scores
    drop = np.flatnonzero(np.diff(positions) < min_distance) + 1
    return np.delete(positions, drop), np.delete(scores, drop)


# ---------------------------------------------------------------------------- all steps
@dataclass(frozen=True)
class LocateResult:
    """Event positions (sample indices of the recording), their scores, and the
    intermediate values a report may show."""

    positions: np.ndarray
    scores: np.ndarray
    regions: Regions
    gradient_threshold: float
    gradient: np.ndarray | None = None


def locate_events(
    recording: Recording,
    prediction: np.ndarray,
    settings: LocateSettings | None = None,
    *,
    keep_gradient: bool = False,
) -> LocateResult:
    """Prediction trace -> event positions (steepest rise) of one recording.

    Parameters
    ----------
    recording
        The recording the prediction was computed on.
    prediction
        Model scores on the recording's sample grid (index = start of the window); may be
        shorter than the recording (by about one window, as miniML's).
    settings
        :class:`LocateSettings`; defaults if ``None``.
    keep_gradient
        Keep the smoothed derivative (unit/s, trace-sized) in the result.
    """
    settings = settings or LocateSettings()
    prediction = np.asarray(prediction)
    if prediction.ndim != 1:
        raise ParameterError(f"prediction must be 1-D, got shape {prediction.shape}")
    if prediction.size > recording.n_samples:
        raise ParameterError(
            f"prediction has {prediction.size} samples, more than the recording's {recording.n_samples}"
        )
    regions = candidate_regions(prediction, settings)
    gradient = smoothed_gradient(recording, settings)
    thr = gradient_threshold(gradient, regions, settings.mad_multiplier)
    pos, sc = steepest_rise_positions(gradient, regions, thr, settings, n_prediction=prediction.size)
    pos, sc = merge_near_duplicates(pos, sc, settings.window_size / 100)
    return LocateResult(pos, sc, regions, thr, gradient if keep_gradient else None)
