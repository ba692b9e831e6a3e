"""Prediction trace -> event positions (the point of steepest rise), overlapping events.

(About 850 lines: miniML's localisation in streamed chunks: regions, the smoothed gradient and
the steepest rise must cross chunk borders the same way; filters and order statistics are in
filters.py and order_stats.py.)

This is miniML's localisation step (O'Neill et al., eLife 2025; ``EventDetection.
_get_prediction_peaks``, ``_make_smth_gradient``, ``_get_grad_threshold``,
``_find_event_locations`` and ``_remove_duplicate_locations`` in miniml-detect 1.1.2),
rewritten as pure functions:

1. :func:`candidate_regions` -- peaks of the (max-filtered) prediction trace above the
   threshold and at least ``peak_w`` prediction steps wide; each opens a search region.
2. :func:`smoothed_gradient` -- first derivative of the Hann-filtered trace (in the event
   direction), itself Hann-smoothed; computed in fixed blocks of :data:`GRADIENT_BLOCK`
   samples (with margins), as an array or lazily.
3. :func:`gradient_threshold` -- median + 4 robust SD (MAD) of the derivative outside the
   search regions.
4. :func:`steepest_rise_positions` -- derivative peaks above that threshold inside each
   region; several peaks in one region are separate (overlapping) events when their
   prominence is at least ``rel_prom_cutoff`` of the largest; the arg-max otherwise.
5. :func:`merge_near_duplicates` -- positions closer than ``window_size / 100`` merged.

Hour-long recordings: every step works in bounded memory and gives the whole-trace
result exactly. The prediction (which may be lazy) is walked in chunks: local maxima
from runs of equal values carried across chunk borders, prominences from the minima
between peaks, widths from a window around each peak. The derivative is never held
whole: each value comes from its fixed block, and one walk over it selects the
threshold's median and MAD exactly (brackets from a sample spread over the trace; the
values inside them kept, the others counted; another pass only when a bracket misses,
see :func:`~.order_stats.exact_median`) while keeping, for each search region, only its derivative
peaks until the threshold picks among them.

:func:`locate_events` runs all five. Positions are sample indices of the recording.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Callable

import numpy as np
from scipy import signal
from scipy.ndimage import correlate1d, maximum_filter1d

from ..errors import ParameterError
from ..filters import analysis_filter, direction_sign, filter_margin, filter_range
from ..recording import DEFAULT_CHUNK, LazyTrace, Recording
from ..params import check_fields, default
from ..windows import default_stride
from .order_stats import DeviationZone, Selector, bracket, exact_median

__all__ = [
    "LocateSettings",
    "Regions",
    "LocateResult",
    "direction_sign",
    "candidate_regions",
    "smoothed_prediction",
    "smoothed_gradient",
    "gradient_threshold",
    "GRADIENT_BLOCK",
    "steepest_rise_positions",
    "merge_near_duplicates",
    "locate_events",
]

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
        Minimum height of a prediction peak, in (0, 1); also its minimum prominence unless
        ``peak_prominence`` is given (miniML's rule).
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
        Only with ``convolve_win == 0``: low-pass cut-off as a fraction of the sampling rate (> 2).
    rel_prom_cutoff
        Minimum prominence of a second derivative peak in one region, relative to the
        largest there, for it to count as an overlapping event; in (0, 1].
    event_direction
        ``"negative"`` or ``"positive"``: the direction of the events in the recording.
    mad_multiplier
        The derivative threshold is median + ``mad_multiplier`` robust SD (> 0).
    peak_prominence
        Minimum prominence of a prediction peak, in (0, 1]; ``None`` -> ``threshold``
        (miniML). With a high threshold (0.93) that rule needs the prediction to fall below
        0.07 between two events, so in a burst every event after the first is lost; a
        prominence of 0.5 keeps them. With a given prominence a peak also counts when the
        dip between it and a higher one falls below ``threshold``: a model whose prediction
        stays high in busy stretches (gc-robust after a large compound event) would
        otherwise merge a clear event into the plateau before it.
    smoothing_steps
        Moving average of the prediction over this many prediction steps (window
        strides) before its peaks are found; 1 = none (miniML). Each event is scored by
        the ~20 windows that hold it; averaging neighbouring scores lets an event that
        many windows agree on pass, and a noise dip that only a few windows score high
        fall below the threshold. Integer >= 1.
    """

    window_size: int = default("window_size")
    threshold: float = 0.5
    peak_w: int = default("peak_w")
    stride: float | None = None
    convolve_win: int = default("convolve_win")
    gradient_convolve_win: int | None = default("gradient_convolve_win")
    filter_factor: float = default("filter_factor")
    rel_prom_cutoff: float = default("rel_prom_cutoff")
    event_direction: str = default("event_direction")
    mad_multiplier: float = 4.0
    smoothing_steps: int = default("smoothing_steps")
    peak_prominence: float | None = default("peak_prominence")

    def __post_init__(self) -> None:
        # the declared settings (minidet.params); the threshold is a number by now: 'auto' is
        # resolved before the locator runs
        check_fields(self, also={"threshold": ()}, skip=("stride",))  # stride: the prediction step
        if self.stride is not None and not (
            isinstance(self.stride, (int, float, np.number)) and math.isfinite(self.stride) and self.stride > 0
        ):
            raise ParameterError(f"stride must be a positive number of samples or None, got {self.stride!r}")
        if not (isinstance(self.mad_multiplier, (int, float)) and self.mad_multiplier > 0):
            raise ParameterError(f"mad_multiplier must be a positive number, got {self.mad_multiplier!r}")

    @property
    def sign(self) -> int:
        return direction_sign(self.event_direction)

    @property
    def stride_samples(self) -> float:
        """Prediction step in samples of the recording."""
        return float(self.stride) if self.stride is not None else float(default_stride(self.window_size))

    @property
    def prominence(self) -> float:
        """Resolved minimum prominence of a prediction peak."""
        return float(self.threshold if self.peak_prominence is None else self.peak_prominence)

    @property
    def smoothing_samples(self) -> int:
        """Length (samples of the recording) of the prediction's moving average; 1 = none."""
        if self.smoothing_steps <= 1:
            return 1
        return max(1, int(round(self.smoothing_steps * self.stride_samples)))

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


def _stack_prominences(heights: np.ndarray, seg: np.ndarray) -> np.ndarray:
    """Prominences of peaks of heights ``heights`` (in position order), given ``seg[j]``,
    the minimum of the trace between peak ``j - 1`` and peak ``j`` (``seg[0]``: before the
    first, ``seg[k]``: after the last). The nearest strictly higher sample on each side
    lies in the bump of the nearest higher peak, so each base is the minimum of the gaps
    up to that peak, found with a monotonic stack in O(k)."""
    k = heights.size
    h = heights.tolist()
    sg = np.asarray(seg, dtype=np.float64).tolist()
    left = [0.0] * k
    stack: list[tuple[float, float]] = []  # (height, min of x since the element below)
    for i in range(k):
        acc = sg[i]
        while stack and stack[-1][0] <= h[i]:
            acc = min(acc, stack.pop()[1])
        left[i] = acc
        stack.append((h[i], acc))
    right = [0.0] * k
    stack = []
    for i in range(k - 1, -1, -1):
        acc = sg[i + 1]
        while stack and stack[-1][0] <= h[i]:
            acc = min(acc, stack.pop()[1])
        right[i] = acc
        stack.append((h[i], acc))
    return heights.astype(np.float64) - np.maximum(np.asarray(left), np.asarray(right))


class _FilteredPrediction:
    """The max-filtered prediction, any range of it computed on demand from a prediction
    that may itself be lazy (anything 1-D with ``len`` and slicing).

    ``maximum_filter1d`` only looks ``size`` samples around each output, so a range read
    with that margin either side (clipped at the trace's own ends, where the filter's
    'reflect' edge then applies as on the whole trace) gives exactly the whole-trace values.
    """

    def __init__(self, prediction, size: int, origin: int) -> None:
        self.pred = prediction
        self.n = len(prediction)
        self.size = size
        self.origin = origin
        self.margin = size + abs(origin) + 2

    def __call__(self, start: int, stop: int) -> np.ndarray:
        start, stop = max(0, start), min(self.n, stop)
        lo, hi = max(0, start - self.margin), min(self.n, stop + self.margin)
        piece = np.asarray(self.pred[lo:hi], dtype=np.float64)
        out = maximum_filter1d(piece, size=self.size, origin=self.origin)
        return out[start - lo : stop - lo]


def smoothed_prediction(prediction, size: int):
    """The prediction's centred moving average over ``size`` samples, computed on demand.

    A lazy trace (same length) whose every range is read with ``size`` samples of margin
    either side, so it equals ``correlate1d(whole, ones(size) / size)`` ('reflect' at the
    trace's own ends) to the last bit: the sum for each output runs over the same inputs in
    the same order whatever piece it is read in. ``size <= 1`` returns the prediction.
    """
    size = int(size)
    if size <= 1:
        return prediction
    pred = _as_trace(prediction)
    n = len(pred)
    weights = np.full(size, 1.0 / size)
    margin = size + 2

    def read(start: int, stop: int) -> np.ndarray:
        lo, hi = max(0, start - margin), min(n, stop + margin)
        piece = np.asarray(pred[lo:hi], dtype=np.float64)
        return correlate1d(piece, weights, mode="reflect")[start - lo : stop - lo]

    return LazyTrace(n, read, description=f"prediction averaged over {size} samples")


def _peaks_and_gaps(filt: _FilteredPrediction, height: float, chunk_size: int):
    """Pass 1 over the filtered prediction: scipy's local maxima (plateaus: the middle
    sample, rounded down; plateaus touching an end are no peaks) at or above ``height``,
    their heights, and the minimum of the trace between successive ones (``k + 1`` values,
    see :func:`_stack_prominences`). Works on runs of equal values carried across chunk
    borders, so a plateau split by a border is one run."""
    n = filt.n
    peaks: list[int] = []
    heights: list[float] = []
    gaps: list[float] = []
    open_start = -1  # the run still open at the end of the last chunk
    open_val = 0.0
    prev_val = math.inf  # value of the run before it (+inf: none, so no peak)
    cur = math.inf  # min of closed runs since the last peak
    for start in range(0, n, chunk_size):
        f = filt(start, min(n, start + chunk_size))
        change = np.flatnonzero(f[1:] != f[:-1]) + 1
        starts = np.concatenate(([0], change)) + start
        vals = f[starts - start]
        if open_start >= 0 and vals[0] == open_val:
            starts[0] = open_start  # the open run goes on
            pv = prev_val
        elif open_start >= 0:
            starts = np.concatenate(([open_start], starts))
            vals = np.concatenate(([open_val], vals))
            pv = prev_val
        else:
            pv = math.inf
        r = vals.size
        if r >= 2:
            v = vals[:-1]  # closed runs
            before = np.concatenate(([pv], vals[:-2]))
            after = vals[1:]
            is_peak = (before < v) & (after < v) & (v >= height)
            hits = np.flatnonzero(is_peak)
            mid = (starts[hits] + starts[hits + 1] - 1) // 2
            prev = 0
            for j, p in zip(hits.tolist(), mid.tolist()):
                if j > prev:
                    cur = min(cur, float(v[prev:j].min()))
                gaps.append(cur)
                peaks.append(p)
                heights.append(float(v[j]))
                cur = math.inf
                prev = j + 1
            if prev < r - 1:
                cur = min(cur, float(v[prev:].min()))
            prev_val = float(vals[-2])
        else:
            prev_val = pv
        open_start, open_val = int(starts[-1]), float(vals[-1])
    gaps.append(min(cur, open_val))
    return np.asarray(peaks, dtype=np.intp), np.asarray(heights, dtype=np.float64), np.asarray(gaps)


def _half_crossings(filt: _FilteredPrediction, peaks: np.ndarray, heights: np.ndarray, prom: np.ndarray,
                    chunk_size: int) -> tuple[np.ndarray, np.ndarray]:
    """``scipy.signal.peak_widths(x, peaks, 0.5, (prom, 0, n - 1))``'s ``left_ips`` and
    ``right_ips`` (same arithmetic), scanning only near each peak: a window around it that
    doubles until both crossings (or the trace's ends) lie inside it."""
    n = filt.n
    left_ips = np.empty(peaks.size)
    right_ips = np.empty(peaks.size)
    # peaks of one chunk share one read of the chunk (with a margin); wider ones read more
    span = 4096
    piece_lo, piece_hi, piece = 0, 0, np.zeros(0)
    for i, (p, hp, pr) in enumerate(zip(peaks.tolist(), heights.tolist(), prom.tolist())):
        line = hp - pr * 0.5
        w = span
        while True:
            a, b = max(0, p - w), min(n, p + w + 1)
            if not (piece_lo <= a and b <= piece_hi):
                c0 = (p // chunk_size) * chunk_size
                lo, hi = max(0, min(a, c0 - span)), min(n, max(b, c0 + chunk_size + span))
                piece_lo, piece_hi, piece = lo, hi, filt(lo, hi)
            x = piece[a - piece_lo : b - piece_lo]
            q = p - a
            # left: the last sample at or below the line before the peak (scipy's walk)
            stop_l = np.flatnonzero(~(line < x[: q + 1]))
            stop_r = np.flatnonzero(~(line < x[q:]))
            have_l = stop_l.size > 0 or a == 0
            have_r = stop_r.size > 0 or b == n
            if have_l and have_r:
                break
            w *= 2
        il = int(stop_l[-1]) if stop_l.size else 0
        ir = q + int(stop_r[0]) if stop_r.size else x.size - 1
        left = float(il + a)
        if x[il] < line:
            left += (line - x[il]) / (x[il + 1] - x[il])
        right = float(ir + a)
        if x[ir] < line:
            right -= (line - x[ir]) / (x[ir - 1] - x[ir])
        left_ips[i], right_ips[i] = left, right
    return left_ips, right_ips


def _as_trace(prediction):
    """A 1-D prediction to walk in pieces: an ndarray or anything with ``len`` and slicing
    (:class:`~minidet.recording.LazyTrace`); a :class:`~minidet.detection.predict.Prediction`
    gives its lazy full-grid trace when it has one."""
    if isinstance(prediction, np.ndarray):
        return prediction
    trace = getattr(prediction, "trace", None)
    if callable(trace) and not isinstance(prediction, LazyTrace):
        return trace()
    if (hasattr(prediction, "__getitem__") and hasattr(prediction, "shape")
                                              and getattr(prediction, "ndim", None) == 1):
        return prediction
    return np.asarray(prediction)


def _check_prediction(pred) -> int:
    ndim = getattr(pred, "ndim", 1)
    if ndim != 1:
        raise ParameterError(f"prediction must be 1-D, got shape {getattr(pred, 'shape', None)}")
    return len(pred)


def candidate_regions(prediction, settings: LocateSettings, *, chunk_size: int = DEFAULT_CHUNK) -> Regions:
    """Prediction peaks above the threshold -> search regions for the steepest rise.

    ``prediction`` is on the recording's sample grid (index = start of the model window):
    an array or anything 1-D with ``len`` and slicing (a lazy trace), walked in pieces of
    ``chunk_size`` samples. The result equals miniML's whole-trace computation
    (``maximum_filter1d`` and ``scipy.signal.find_peaks`` with height, prominence and width)
    exactly, whatever ``chunk_size``: peaks are found on runs of equal values carried across
    chunk borders, prominences from the minima between peaks (:func:`_stack_prominences`),
    and widths by scanning only around each remaining peak.
    """
    if isinstance(chunk_size, bool) or not isinstance(chunk_size, (int, np.integer)) or chunk_size < 1:
        raise ParameterError(f"chunk_size must be an integer >= 1, got {chunk_size!r}")
    pred = _as_trace(prediction)
    n = _check_prediction(pred)
    empty = Regions(np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0))
    if n < 3:
        return empty
    factor = _samples_per_step(n, settings.stride_samples)
    # the max filter bridges the dips between adjacent windows' scores (miniML: 5 steps,
    # origin -2); height at the threshold, prominence at peak_prominence (miniML: the threshold)
    size = max(1, int(5 * factor))
    filt = _FilteredPrediction(pred, size, max(-(size // 2), -2))
    peaks, heights, gaps = _peaks_and_gaps(filt, settings.threshold, int(chunk_size))
    if peaks.size == 0:
        return empty
    prom = _stack_prominences(heights, gaps)
    keep = prom >= settings.prominence
    if settings.peak_prominence is not None:
        # a given prominence (not miniML's rule): a peak is also its own when the dip that
        # parts it from a higher one falls below the threshold
        keep |= heights - prom < settings.threshold
    peaks, heights, prom = peaks[keep], heights[keep], prom[keep]
    if peaks.size == 0:
        return empty
    left, right = _half_crossings(filt, peaks, heights, prom, int(chunk_size))
    widths = right - left
    keep = widths >= settings.peak_w * factor
    left, right, widths, heights = left[keep], right[keep], widths[keep], heights[keep]
    if heights.size == 0:
        return empty
    starts = (left + settings.window_size / 4).astype(np.int64)
    late = starts > right
    starts[late] = (right[late] - widths[late] / 4).astype(np.int64)
    stops = (right + settings.window_size / 2).astype(np.int64)
    return Regions(starts, stops, heights.astype(np.float64))


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

    margin = filter_margin(trace_hann, cutoff, sampling_rate) + 2 + (2 * smooth + 2 if smooth > 1 else 0)
    return fn, margin


#: samples per block of the smoothed derivative. Every value of the derivative is computed
#: from its block (with margins), whoever asks for it, so the whole-trace array, a lazy
#: trace and any chunked walk hold the same numbers to the last bit.
GRADIENT_BLOCK = 1 << 20


class _GradientSource:
    """The smoothed derivative, block by block, with a few recent blocks kept."""

    def __init__(self, recording: Recording, settings: LocateSettings, block: int, cache_blocks: int = 8) -> None:
        self.x = recording.samples
        self.n = recording.n_samples
        self.fn, self.margin = _gradient_fn(recording.sampling_rate, settings)
        self.block = int(block)
        self.cache_blocks = max(1, int(cache_blocks))
        self._cache: dict[int, np.ndarray] = {}

    def _block(self, j: int) -> np.ndarray:
        out = self._cache.get(j)
        if out is None:
            start = j * self.block
            out = filter_range(self.x, start, min(self.n, start + self.block), self.fn, self.margin)
            if len(self._cache) >= self.cache_blocks:
                self._cache.pop(next(iter(self._cache)))
            self._cache[j] = out
        else:  # most recently used last
            self._cache[j] = self._cache.pop(j)
        return out

    def read(self, start: int, stop: int) -> np.ndarray:
        j0, j1 = start // self.block, (stop - 1) // self.block
        parts = [self._block(j)[max(start - j * self.block, 0) : min(stop - j * self.block, self.block)]
                 for j in range(j0, j1 + 1)]
        return parts[0].copy() if len(parts) == 1 else np.concatenate(parts)

    def approx(self, start: int, stop: int) -> np.ndarray:
        """The derivative on ``[start, stop)`` filtered as one piece: equal to :meth:`read`
        up to rounding; for estimates only."""
        return filter_range(self.x, start, stop, self.fn, self.margin)


class _GradientTrace(LazyTrace):
    """The lazy derivative; its source also gives quick estimates (:meth:`_GradientSource.approx`)."""

    def __init__(self, source: _GradientSource) -> None:
        super().__init__(source.n, source.read, "smoothed gradient")
        self.source = source


def smoothed_gradient(
    recording: Recording, settings: LocateSettings, *, chunk_size: int = GRADIENT_BLOCK, lazy: bool = False
) -> np.ndarray | LazyTrace:
    """Smoothed first derivative (unit/s) of the filtered trace in the event direction.

    Computed in blocks of ``chunk_size`` samples with a margin either side, so the result
    equals the whole-trace computation while the temporary memory stays at a few blocks.
    ``lazy=True`` returns a :class:`~minidet.recording.LazyTrace` that computes the blocks
    a slice needs when it is read (the same numbers; a few recent blocks are kept), instead
    of a trace-sized array.
    """
    if isinstance(chunk_size, bool) or not isinstance(chunk_size, (int, np.integer)) or chunk_size < 1:
        raise ParameterError(f"chunk_size must be an integer >= 1, got {chunk_size!r}")
    source = _GradientSource(recording, settings, chunk_size)
    if lazy:
        return _GradientTrace(source)
    out = np.empty(source.n, dtype=np.float64)
    for j in range(0, -(-source.n // source.block)):
        start = j * source.block
        out[start : start + source.block] = filter_range(
            source.x, start, min(source.n, start + source.block), source.fn, source.margin)
    return out


def _event_free_stretches(n: int, regions: Regions) -> tuple[np.ndarray, np.ndarray]:
    """miniML's ``np.split`` at ``[s0, e0, s1, e1, ...]``: ``[0, s0)``, ``[e0, s1)``, ...
    ``[e_last, n)``, empty ones dropped (the whole trace when all are empty)."""
    lo = np.concatenate(([0], np.clip(regions.stops, 0, n))).astype(np.int64)
    hi = np.concatenate((np.clip(regions.starts, 0, n), [n])).astype(np.int64)
    keep = hi > lo
    if not keep.any():
        return np.zeros(1, np.int64), np.full(1, n, np.int64)
    return lo[keep], hi[keep]


def _stretch_values(piece: np.ndarray, start: int, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """The values of ``piece`` (samples ``[start, start + len)``) inside the stretches
    ``[lo, hi)``, each sample as often as stretches cover it (order not kept)."""
    stop = start + piece.size
    a = np.maximum(lo, start)
    b = np.minimum(hi, stop)
    use = b > a
    if not use.any():
        return piece[:0]
    a, b = a[use] - start, b[use] - start
    if a.size == 1:
        return piece[a[0] : b[0]]
    count = np.zeros(piece.size + 1, np.int64)
    np.add.at(count, a, 1)
    np.add.at(count, b, -1)
    count = np.cumsum(count[:-1])
    return piece[count == 1] if count.max() <= 1 else np.repeat(piece, count)


def _threshold_sample(grad, lo: np.ndarray, hi: np.ndarray, n: int, *, pieces: int = 1024,
                      piece: int = 1024) -> np.ndarray:
    """About ``pieces * piece`` derivative values spread over the event-free stretches, for
    the brackets of :func:`~.order_stats.exact_median` (estimates: any rounding is fine)."""
    source = grad.source if isinstance(grad, _GradientTrace) else None
    read = source.approx if source is not None else (lambda a, b: np.asarray(grad[a:b], dtype=np.float64))
    whole = n <= pieces * piece
    if source is not None and n <= source.block * source.cache_blocks:
        read, whole = source.read, True  # all blocks fit the cache: the exact values, computed once
    if whole:
        return _stretch_values(read(0, n), 0, lo, hi)
    out = []
    for s in np.linspace(0, n - piece, pieces).astype(np.int64).tolist():
        out.append(_stretch_values(read(s, s + piece), s, lo, hi).copy())
    return np.concatenate(out)


def _streamed_threshold(gradient, regions: Regions, multiplier: float, step: int,
                        visit: Callable[[int, np.ndarray], None] | None = None,
                        span: tuple[int, int] | None = None) -> float:
    """:func:`gradient_threshold` of a gradient walked in pieces of ``step`` samples:
    median and MAD selected exactly, both in one pass when the sample's brackets hold
    them (more passes otherwise). ``visit(start, piece)`` sees every piece of that pass,
    which covers at least ``span``."""
    n = len(gradient)
    lo, hi = _event_free_stretches(n, regions)
    n_values = int((hi - lo).sum())
    first, last = int(lo.min()), int(hi.max())
    if span is not None:
        first, last = min(first, max(0, span[0])), max(last, min(n, span[1]))

    def pieces(transform=None):
        def walk():
            for start in range(first, last, step):
                g = np.asarray(gradient[start : min(last, start + step)], dtype=np.float64)
                vals = _stretch_values(g, start, lo, hi)
                yield vals if transform is None else transform(vals)
        return walk

    sample = _threshold_sample(gradient, lo, hi, n)
    srt = np.sort(sample)
    k1 = (n_values - 1) // 2
    sel = Selector(*bracket(srt, k1, n_values, 0.004))
    zone = None
    if srt.size and math.isfinite(sel.lo) and math.isfinite(sel.hi):
        dev = np.sort(np.abs(srt - srt[min(srt.size - 1, (srt.size - 1) // 2)]))
        tl, th = bracket(dev, k1, n_values, 0.004)
        if math.isfinite(th):
            width = sel.hi - sel.lo
            zone = DeviationZone(sel.lo, sel.hi, max(0.0, tl - width) if math.isfinite(tl) else 0.0, th + width)
    for start in range(first, last, step):
        g = np.asarray(gradient[start : min(last, start + step)], dtype=np.float64)
        if visit is not None:
            visit(start, g)
        vals = _stretch_values(g, start, lo, hi)
        if vals.size:
            sel.feed(vals)
            if zone is not None:
                zone.feed(vals)
    med = sel.median(n_values)
    if med is None:  # the bracket missed: passes of their own
        med = exact_median(pieces(), n_values, sample, slack=0.032)
    mad = zone.mad(med, n_values) if zone is not None and math.isfinite(med) else None
    if mad is None:

        def deviation(vals: np.ndarray) -> np.ndarray:
            out = np.subtract(vals, med)
            return np.abs(out, out=out)

        mad = exact_median(pieces(deviation), n_values, deviation(sample))
    return med + multiplier * 1.4826 * mad


def gradient_threshold(gradient, regions: Regions, multiplier: float = 4.0, *,
                       chunk_size: int | None = None) -> float:
    """Median + ``multiplier`` * 1.4826 * MAD of the derivative outside the search regions.

    Like miniML's ``np.split`` at ``[s0, e0, s1, e1, ...]``, the event-free stretches are
    ``[0, s0)``, ``[e0, s1)``, ... ``[e_last, n)``. ``gradient`` is an array, or a lazy
    trace (:func:`smoothed_gradient` with ``lazy=True``, or anything 1-D with ``len`` and
    slicing); a lazy one, or any with ``chunk_size`` given, is walked in pieces of
    ``chunk_size`` samples (default :data:`GRADIENT_BLOCK`) and the median and MAD are
    selected exactly (see :func:`~.order_stats.exact_median`): the same number as the whole-array way.
    """
    n = len(gradient)
    if chunk_size is None and isinstance(gradient, np.ndarray):
        lo, hi = _event_free_stretches(n, regions)
        # one copy of the event-free samples (views concatenated), then medians in place
        vals = np.concatenate([gradient[a:b] for a, b in zip(lo.tolist(), hi.tolist())])
        med = float(np.median(vals, overwrite_input=True))
        np.subtract(vals, med, out=vals)
        np.abs(vals, out=vals)
        mad = float(np.median(vals, overwrite_input=True))
        return med + multiplier * 1.4826 * mad
    step = GRADIENT_BLOCK if chunk_size is None else chunk_size
    if isinstance(step, bool) or not isinstance(step, (int, np.integer)) or step < 1:
        raise ParameterError(f"chunk_size must be an integer >= 1, got {chunk_size!r}")
    return _streamed_threshold(gradient, regions, multiplier, int(step))


def _rise_candidates(seg: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """Every local maximum of a region's derivative, its height and prominence, and the
    arg-max: all :func:`_select_rises` needs once the threshold is known (scipy's
    prominence of a peak does not depend on which other peaks are kept)."""
    peaks, _ = signal.find_peaks(seg)
    prom = signal.peak_prominences(seg, peaks)[0] if peaks.size else np.zeros(0)
    return peaks, seg[peaks], prom, int(np.argmax(seg))


def _select_rises(cand: tuple[np.ndarray, np.ndarray, np.ndarray, int], threshold: float,
                  rel_prom_cutoff: float) -> np.ndarray:
    """``find_peaks(seg, height=threshold, prominence=threshold)``, the overlapping-event
    rule, and the arg-max when nothing is left."""
    peaks, heights, prom, amax = cand
    keep = (heights >= threshold) & (prom >= threshold)
    peaks, prom = peaks[keep], prom[keep]
    if peaks.size > 1:
        peaks = peaks[prom >= rel_prom_cutoff * prom.max()]
    if peaks.size == 0:
        peaks = np.array([amax])
    return peaks


def _searched_regions(regions: Regions, settings: LocateSettings, n_prediction: int):
    keep = (regions.starts > settings.window_size) & (regions.stops < n_prediction)
    return regions.starts[keep], regions.stops[keep], regions.scores[keep]


def _positions(starts, stops, scores, cands, threshold: float, settings: LocateSettings, n: int):
    last_allowed = n - settings.edge_limit
    positions: list[np.ndarray] = []
    pos_scores: list[np.ndarray] = []
    for start, stop, score, cand in zip(starts.tolist(), stops.tolist(), scores.tolist(), cands):
        if cand is None:  # an empty region
            continue
        found = start + _select_rises(cand, threshold, settings.rel_prom_cutoff)
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


class _RegionCollector:
    """Gathers each searched region's derivative from the pieces of a walk and keeps only
    its :func:`_rise_candidates` (a few values) once it is complete."""

    def __init__(self, starts: np.ndarray, stops: np.ndarray) -> None:
        self.starts, self.stops = starts, stops
        self.cands: list = [None] * starts.size
        self.buffers: dict[int, tuple[np.ndarray, list[int]]] = {}
        self.todo = np.flatnonzero(stops > starts)
        self.order = self.todo[np.argsort(starts[self.todo], kind="stable")]
        self.next = 0  # regions in self.order before this one have been opened

    def __call__(self, start: int, g: np.ndarray) -> None:
        stop = start + g.size
        # open the regions that start before this piece ends
        while self.next < self.order.size and self.starts[self.order[self.next]] < stop:
            i = int(self.order[self.next])
            self.buffers[i] = (np.empty(int(self.stops[i] - self.starts[i])), [0])
            self.next += 1
        done = []
        for i, (buf, filled) in self.buffers.items():
            a, b = max(int(self.starts[i]), start), min(int(self.stops[i]), stop)
            if b > a:
                buf[a - int(self.starts[i]) : b - int(self.starts[i])] = g[a - start : b - start]
                filled[0] += b - a
            if filled[0] == buf.size:
                self.cands[i] = _rise_candidates(buf)
                done.append(i)
        for i in done:
            del self.buffers[i]

    @property
    def complete(self) -> bool:
        return self.next == self.order.size and not self.buffers


def steepest_rise_positions(
    gradient,
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
    miniML's border rule. ``gradient``: an array or a lazy trace (only the regions are read).
    """
    starts, stops, scores = _searched_regions(regions, settings, n_prediction)
    cands = []
    for start, stop in zip(starts.tolist(), stops.tolist()):
        seg = np.asarray(gradient[start:stop], dtype=np.float64)
        cands.append(_rise_candidates(seg) if seg.size else None)
    return _positions(starts, stops, scores, cands, threshold, settings, len(gradient))


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
    #: the smoothed derivative (trace-sized array), only with ``keep_gradient=True``
    gradient: np.ndarray | None = None


def locate_events(
    recording: Recording,
    prediction,
    settings: LocateSettings | None = None,
    *,
    keep_gradient: bool = False,
    chunk_size: int = DEFAULT_CHUNK,
) -> LocateResult:
    """Prediction trace -> event positions (steepest rise) of one recording.

    Memory stays bounded whatever the recording's length: the prediction and the
    recording may be lazy (:class:`~minidet.recording.LazyTrace`) and are walked in pieces
    of ``chunk_size`` samples; the derivative is never held whole (computed in blocks of
    :data:`GRADIENT_BLOCK` when needed), and its threshold is selected exactly. The result
    is the same, to the last bit, as computing every step on whole arrays.

    Parameters
    ----------
    recording
        The recording the prediction was computed on (in memory or lazy).
    prediction
        Model scores on the recording's sample grid (index = start of the window); may be
        shorter than the recording (by about one window, as miniML's). An array, a lazy
        trace, or a :class:`~minidet.detection.predict.Prediction`.
    settings
        :class:`LocateSettings`; defaults if ``None``.
    keep_gradient
        Keep the smoothed derivative (unit/s) in the result, as a trace-sized array.
    chunk_size
        Samples per piece when walking the prediction and the derivative (>= 1).
    """
    settings = settings or LocateSettings()
    if isinstance(chunk_size, bool) or not isinstance(chunk_size, (int, np.integer)) or chunk_size < 1:
        raise ParameterError(f"chunk_size must be an integer >= 1, got {chunk_size!r}")
    pred = _as_trace(prediction)
    n_pred = _check_prediction(pred)
    if n_pred > recording.n_samples:
        raise ParameterError(
            f"prediction has {n_pred} samples, more than the recording's {recording.n_samples}"
        )
    pred = smoothed_prediction(pred, settings.smoothing_samples)
    regions = candidate_regions(pred, settings, chunk_size=chunk_size)
    gradient = smoothed_gradient(recording, settings, chunk_size=GRADIENT_BLOCK, lazy=True)
    # one walk over the derivative: the threshold's median and MAD, and each searched
    # region's derivative peaks (kept until the threshold is known)
    starts, stops, scores = _searched_regions(regions, settings, n_pred)
    collect = _RegionCollector(starts, stops)
    span = (int(starts.min()), int(stops.max())) if starts.size else None
    thr = _streamed_threshold(gradient, regions, settings.mad_multiplier, int(chunk_size), collect, span)
    if not collect.complete:  # pragma: no cover - the walk covers every region
        raise RuntimeError("internal error: a search region was not covered by the walk")
    pos, sc = _positions(starts, stops, scores, collect.cands, thr, settings, len(gradient))
    pos, sc = merge_near_duplicates(pos, sc, settings.window_size / 100)
    return LocateResult(pos, sc, regions, thr, np.asarray(gradient) if keep_gradient else None)
