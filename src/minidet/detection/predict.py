"""Sliding-window inference: :func:`predict` turns a :class:`Recording` into the event
probability of every window start, on the recording's own sample grid.

(About 840 lines: sliding windows, the fast coarse/refine schedule and block resampling share
one grid arithmetic; the network itself is in scorer.py.)

How miniML does it (``EventDetection.__predict`` and ``_interpolate_prediction_trace``):
the trace is FFT-resampled by ``600 / window_size`` (``resample_to_600``), inverted when the
event and training directions differ, cut into windows of 600 samples every
``round(stride * 600 / window_size)`` samples (stride default ``round(window_size / 30)``),
each window min-max scaled and scored. The ``n_windows`` scores are then stretched by
linear interpolation onto ``L = round((n_windows - 1) * model_stride / factor)`` samples
with ``np.interp(np.linspace(0, n_windows, L), arange(n_windows), scores)``, so score ``k``
lands at sample ``k * (L - 1) / n_windows``, slightly before ``k * stride``: the last
scores sit about one stride early. For a 30 s, 50 kHz recording at window 600 and stride 20
that is 74,971 scores on 1,499,400 samples. :meth:`Prediction.miniml_layout` reproduces
that array exactly; :attr:`Prediction.values` puts every score at the sample where its
window starts.

What minidet does differently, for speed and bounded memory:

- ``mode="fast"`` (default) scores windows in three steps. (1) Every ``coarse_step``
  network samples (8 strides at stride 20). (2) Every ``refine_step`` samples (4 strides)
  within ``coarse_step`` of a coarse window above ``warm_threshold`` (3e-4; a quiet
  baseline scores 1e-4 to 2e-4). (3) A flood fill: the neighbours of every window above
  ``refine_threshold`` (2e-3), until each run of such windows is scored in full. Windows
  left out get the linear interpolation of their scored neighbours, all below
  ``refine_threshold``. Why this holds the accuracy bound (within 1e-3 of scoring every
  window wherever either exceeds 0.05): every excursion of the prediction that reaches
  0.05 stays above 2e-3 for at least 5 strides, so the 4-stride grid cannot step over
  one, and above 3e-4 for at least 9 strides, so a coarse window falls inside it and the
  grid around it gets scored. Both facts are empirical: ``benchmarks/predict_fast_mode.py``
  replays the selection at every grid phase on public30 and twelve simulated traces (two
  seeds each of noise 1.5 to 5 pA, events of 3 to 60 pA at 3 to 30 per second, decays of
  1.5 and 6 ms) scored in full: narrowest runs 5 and 9 strides, 19-51 % of the windows
  scored, no window off by more than 1e-3. Most excursions are far wider (the slow-decay
  traces set both minima); a 2e-4 warm threshold scores about 8 % more windows (its
  narrowest run is 12 strides), 5e-4 narrows it to 8, no margin left. A 12-stride coarse
  step with a 3e-4 warm threshold failed on a 30 events/s trace.
  ``coarse_step=refine_step`` drops step (2) (a plain 4-stride grid, 27-54 % of the
  windows, resting on the first fact only); ``mode="full"`` scores every window.
- On the CPU, batches are scored on one thread per core, each making single-threaded calls
  (:class:`~minidet.detection.scorer.WindowScorer`: an inference-only rewrite of the
  network, run by ONNX Runtime, or by torch without it); torch's own thread count is
  restored afterwards.
- The recording is walked from start to end, up to ``_SEGMENT_WINDOWS`` windows at a time (the
  fast mode's window set does not depend on it; see :func:`fast_schedule`), so a progress
  bar can show seconds of recording done and the time remaining.
- Windows are gathered batch by batch from the samples, which may be a
  :class:`~minidet.recording.LazyTrace` (read by slices covering only the windows asked
  for); with resampling the trace is resampled block by block (polyphase filter,
  ``scipy.signal.resample_poly``, with margins so that every block is bit-identical to a
  whole-trace run), never as a whole-trace FFT. The result holds the strided scores only
  (4 + 1 bytes per window: 45 MB for an hour at 50 kHz and stride 20);
  :attr:`Prediction.values` is made on first access and :meth:`Prediction.trace` computes
  any piece of it on demand.
"""

from __future__ import annotations

import math
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import cached_property
from fractions import Fraction
from typing import Any

import numpy as np

from .. import DEFAULT_MODEL
from ..errors import ParameterError
from ..params import PARAMS, check, check_fields, default
from ..windows import default_stride, may_resample
from ..recording import LazyTrace, Recording

__all__ = ["DIRECTIONS", "MODES", "PredictSettings", "Prediction", "fast_schedule", "predict", "span_windows",
           "predict_recording"]

DIRECTIONS = PARAMS["event_direction"].choices
MODES = PARAMS["predict_mode"].choices
#: fast mode, level 1: network samples between coarse windows (8 strides of 20)
DEFAULT_COARSE_STEP = 160
#: fast mode, level 2: network samples between windows near a "warm" coarse window (4 strides)
DEFAULT_REFINE_STEP = 80
#: fast mode: a coarse window above this has the level-2 grid scored around it
DEFAULT_WARM_THRESHOLD = 3e-4
#: fast mode: a window above this gets every window within refine_step scored
DEFAULT_REFINE_THRESHOLD = 2e-3
DEFAULT_BATCH_SIZE = default("batch_size")
#: samples of the network's grid resampled at once (resampling only)
DEFAULT_CHUNK_SIZE = 1 << 18
#: show a progress bar by default from this many windows on
_PROGRESS_MIN_WINDOWS = 50_000
#: windows per step of the walk along the recording (26 s at 50 kHz and stride 20), whatever
#: its length (the window set does not depend on it): smaller steps, tried so that the
#: progress bar of a short recording moves 20 times, made the scoring calls smaller and
#: predict about 20 % slower (40 s at 50 kHz: 7.6 s against 6.1 s)
_SEGMENT_WINDOWS = 1 << 16
#: lazy traces: windows closer than this (samples between one's end and the next's start)
#: are read with one slice
_READ_GAP = 4096


def _is_int(value: Any) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def _is_real(value: Any) -> bool:
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, (bool, np.bool_))


@dataclass(frozen=True)
class PredictSettings:
    """Settings of :func:`predict`; ``None`` means "the model's value".

    Parameters
    ----------
    window_size
        Window length in samples of the recording (>= 30). ``None``: the model's window
        (600 for ``gc``). With ``resample`` the recording is resampled by
        ``input_size / window_size`` so that one window fills the network input.
    stride
        Samples of the recording between window starts, 1 .. window_size. ``None``: the
        model's stride at the model's window size, else ``round(window_size / 30)``
        (:func:`minidet.windows.default_stride`).
    event_direction
        ``"negative"`` or ``"positive"``: polarity of the events in the recording.
        ``None``: the model's (``"negative"`` for ``gc``).
    training_direction
        Polarity of the events the model was trained on; ``None``: from the model file. The
        trace is inverted for scoring when it differs from ``event_direction``.
    resample
        Resample so that ``window_size`` fills the network input (miniML's
        ``resample_to_600``). False: windows of the network's own input size, no resampling
        (``window_size`` must then be that size or ``None``).
    batch_size
        Windows per forward pass (>= 1).
    device
        ``"auto"`` (CUDA if available, else CPU), ``"cpu"``, ``"cuda"``, ``"cuda:N"``.
    mode
        ``"fast"``: coarse pass + refinement where any window may score above
        ``refine_threshold`` (see the module notes); ``"full"``: score every window.
    coarse_step
        Fast mode: network-input samples between coarse windows (>= 1); rounded down to a
        whole number of strides (at least one).
    refine_threshold
        Fast mode: score above which the neighbours of a window are scored, in (0, 0.05).
    chunk_size
        Network-grid samples resampled at once when resampling (>= 4 * input size); bounds
        the memory, never changes the result.
    engine
        ``"fast"``: inference-only float32 rewrite of the network on the CPU; ``"plain"``:
        the network's own forward pass (the float32 reference). Off the CPU always plain.
    """

    window_size: int | None = None
    stride: int | None = None
    event_direction: str | None = None
    training_direction: str | None = None
    resample: bool = default("resample")
    batch_size: int = DEFAULT_BATCH_SIZE
    device: str = default("device")
    mode: str = "fast"
    coarse_step: int = DEFAULT_COARSE_STEP
    refine_step: int = DEFAULT_REFINE_STEP
    warm_threshold: float = DEFAULT_WARM_THRESHOLD
    refine_threshold: float = DEFAULT_REFINE_THRESHOLD
    chunk_size: int = DEFAULT_CHUNK_SIZE
    engine: str = "fast"

    def __post_init__(self) -> None:
        # the declared settings (minidet.params); None here means "the model's"
        check_fields(self, also={"window_size": (None,), "event_direction": (None,)})
        if self.stride is not None and self.window_size is not None and self.stride > self.window_size:
            raise ParameterError(
                f"stride must be from 1 to window_size ({self.window_size}) samples, got {self.stride!r}")
        check("predict_mode", self.mode)
        if not _is_int(self.coarse_step) or self.coarse_step < 1:
            raise ParameterError(
                f"coarse_step must be an integer >= 1 (network samples), got {self.coarse_step!r}")
        if not _is_int(self.refine_step) or self.refine_step < 1:
            raise ParameterError(
                f"refine_step must be an integer >= 1 (network samples), got {self.refine_step!r}")
        if not _is_real(self.refine_threshold) or not 0.0 < float(self.refine_threshold) < 0.05:
            raise ParameterError(
                f"refine_threshold must be in (0, 0.05), got {self.refine_threshold!r}")
        if not _is_real(self.warm_threshold) or not 0.0 < float(self.warm_threshold) <= float(self.refine_threshold):
            raise ParameterError(
                f"warm_threshold must be in (0, refine_threshold={self.refine_threshold}], "
                f"got {self.warm_threshold!r}")
        if not _is_int(self.chunk_size) or self.chunk_size < 1:
            raise ParameterError(
                f"chunk_size must be a positive integer (samples), got {self.chunk_size!r}")
        from .scorer import ENGINES

        if self.engine not in ENGINES:
            raise ParameterError(f"engine must be one of {ENGINES}, got {self.engine!r}")


@dataclass(frozen=True)
class Prediction:
    """Event probability of every window start of a recording.

    ``np.asarray(prediction)`` is :attr:`values`. Only the strided :attr:`scores` are held;
    the full-grid :attr:`values` (one float32 per sample, 720 MB for an hour at 50 kHz) are
    made on first access and kept, and :meth:`trace` gives the same numbers piece by piece
    without ever holding them all.

    Attributes
    ----------
    values : numpy.ndarray, float32, shape (n_samples - window_size + 1,)
        ``values[j]``: probability that the window of ``window_size`` samples starting at
        sample ``j`` holds an event (at miniML's position in the window). Windows are scored
        every :attr:`stride` samples; values in between are linear interpolations, and the
        last ``< stride`` samples, after the last scored window, repeat its score. Computed
        on first access (cached).
    window_starts : numpy.ndarray, float64, shape (n_windows,)
        Sample (of the recording) where each scored window starts: ``k * stride`` (computed
        on first access).
    scores : numpy.ndarray, float32, shape (n_windows,)
        Probability of each window at the stride (miniML's raw prediction); where
        :attr:`evaluated` is False, interpolated from scored neighbours (fast mode).
    evaluated : numpy.ndarray, bool, shape (n_windows,)
        Which windows the network scored.
    window_size : int
        Window length in samples of the recording.
    stride : float
        Samples of the recording between window starts (``model_stride / factor``; an integer
        unless resampling makes it fractional).
    model_stride : int
        Stride in samples of the network's grid.
    factor : float
        Resampling factor ``input_size / window_size`` (1.0 without resampling).
    sampling_rate : float
        Of the recording (Hz).
    inverted : bool
        Whether the trace was inverted for scoring.
    mode : str
        ``"fast"`` or ``"full"``.
    n_values : int
        Length of :attr:`values`: ``n_samples - window_size + 1``.
    up, down : int
        The resampling factor as a reduced fraction ``up / down`` (1, 1 without resampling).
    noise_sd : float or None
        The recording's noise SD (its unit) that windows were divided by, for a noise-scaled
        model (:func:`minidet.noise.recording_noise_sd`); None for min-max models.
    spans : tuple of (start, stop) or None
        Sample ranges whose windows alone were scored (``predict(..., spans=...)``); every
        other score is 0, not interpolated. None: the whole recording.
    screen : dict or None
        What the model's screen did (:mod:`.screen`; fast mode of a model that has one):
        ``threshold``, ``kept`` (share of the windows the screen kept), ``scored`` (share
        the model scored: kept, flood fill and audit), ``audit_fraction``, ``audited``,
        ``audit_misses`` (audited windows, outside what the kept windows' flood fill
        reached, that scored above 0.85) and ``fallback`` (True: there was one, so every
        window was scored). None: no screen was used.
    """

    scores: np.ndarray
    evaluated: np.ndarray
    window_size: int
    stride: float
    model_stride: int
    factor: float
    sampling_rate: float
    inverted: bool
    mode: str
    n_values: int
    up: int = 1
    down: int = 1
    noise_sd: float | None = None
    spans: tuple[tuple[int, int], ...] | None = None
    screen: dict | None = None

    @cached_property
    def values(self) -> np.ndarray:
        out = np.empty(self.n_values, dtype=np.float32)
        block = 1 << 20
        for j0 in range(0, self.n_values, block):
            j1 = min(self.n_values, j0 + block)
            out[j0:j1] = _fill_range(self.scores, j0, j1, self.model_stride, self.up, self.down)
        return out

    @cached_property
    def window_starts(self) -> np.ndarray:
        return np.arange(self.scores.size, dtype=np.float64) * self.stride

    def values_range(self, start: int, stop: int) -> np.ndarray:
        """``values[start:stop]`` (clipped) as float32, computed from the scores alone."""
        start = max(0, min(int(start), self.n_values))
        stop = max(start, min(int(stop), self.n_values))
        cached = self.__dict__.get("values")
        if cached is not None:
            return cached[start:stop].copy()
        return _fill_range(self.scores, start, stop, self.model_stride, self.up, self.down)

    def trace(self) -> LazyTrace:
        """:attr:`values` as a :class:`~minidet.recording.LazyTrace` (float64 of the same
        float32 numbers), computed piece by piece from the scores for whatever is sliced."""
        return LazyTrace(self.n_values, lambda a, b: self.values_range(a, b).astype(np.float64),
                         description=f"prediction ({self.n_windows} windows every {self.stride:g} samples)")

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        return self.values if dtype is None else self.values.astype(dtype)

    def __len__(self) -> int:
        return int(self.n_values)

    @property
    def n_windows(self) -> int:
        return int(self.scores.size)

    @property
    def n_evaluated(self) -> int:
        """Windows the network actually scored."""
        return int(np.count_nonzero(self.evaluated))

    @property
    def time_s(self) -> np.ndarray:
        """Start time (s) of the window of each of :attr:`values`."""
        return np.arange(self.n_values) / self.sampling_rate

    def miniml_layout(self) -> np.ndarray:
        """The scores as miniML's ``EventDetection.prediction`` lays them out (float64).

        Length ``round((n_windows - 1) * model_stride / factor)``, made with
        ``np.interp(np.linspace(0, n_windows, length), arange(n_windows), scores)``: the
        same array miniML 1.1.2 produces from the same scores.
        """
        n = self.scores.size
        length = round((n - 1) * self.model_stride / self.factor)
        grid = np.linspace(0, n, length)
        return np.interp(grid, np.arange(n), self.scores)

    def __repr__(self) -> str:
        return (f"Prediction({self.n_values} samples, {self.n_windows} windows every "
                f"{self.stride:g} samples, {self.n_evaluated} scored, mode={self.mode!r}, "
                f"window_size={self.window_size})")


def _fill_range(scores: np.ndarray, j0: int, j1: int, model_stride: int, up: int, down: int) -> np.ndarray:
    """Full-grid values ``[j0, j1)``: the scores (one every ``model_stride * down / up``
    recording samples) linearly interpolated onto every window start, float32. Every element
    depends only on its own index, so any cut into ranges gives the same numbers."""
    n = scores.size
    if j1 <= j0:
        return np.zeros(0, dtype=np.float32)
    if (model_stride * down) % up == 0:
        s = (model_stride * down) // up
        j = np.arange(j0, j1)
        k = np.minimum(j // s, n - 1)
        k1 = np.minimum(k + 1, n - 1)
        frac = ((j - k * s) / s).astype(np.float32)
        frac[k == n - 1] = 0.0
        a = scores[k]
        return a + (scores[k1] - a) * frac
    step = model_stride * down / up
    # the scores that bracket [j0, j1), with a margin; np.interp on them equals np.interp on all
    k0 = max(0, int(j0 // step) - 2)
    k1 = min(n, int(j1 // step) + 3)
    starts = np.arange(k0, k1, dtype=np.float64) * step
    return np.interp(np.arange(j0, j1, dtype=np.float64), starts,
                     scores[k0:k1]).astype(np.float32)


# ------------------------------------------------------------------------------ geometry
@dataclass(frozen=True)
class _Plan:
    n_samples: int
    window_size: int  # recording samples
    input_size: int  # network samples
    up: int
    down: int
    model_stride: int
    n_model: int  # samples on the network's grid
    n_windows: int
    invert: bool

    @property
    def factor(self) -> float:
        return self.up / self.down

    @property
    def resampled(self) -> bool:
        return self.up != self.down


def _plan(n_samples: int, settings: PredictSettings, metadata: Any, input_size: int) -> _Plan:
    model_window = int(getattr(metadata, "window_size", input_size))
    window = int(settings.window_size) if settings.window_size is not None else model_window
    allowed = may_resample(input_size, bool(getattr(metadata, "resample", True)))
    if window != input_size and not allowed:
        raise ParameterError(
            f"this model scores windows of its own {input_size} samples and may not be "
            f"resampled (it was trained from scratch on {input_size}-sample windows), but "
            f"window_size={window}; use window_size={input_size} (or None)")
    if settings.resample:
        ratio = Fraction(input_size, window)
    else:
        if window != input_size:
            raise ParameterError(
                f"resample=False scores windows of the network's own {input_size} samples, "
                f"but window_size={window}; use window_size={input_size} (or None), or "
                f"resample=True to resample {window}-sample windows onto {input_size}")
        ratio = Fraction(1)
    if window > n_samples:
        raise ParameterError(
            f"window_size={window} samples is longer than the recording ({n_samples} samples); "
            f"use a window of at most {n_samples} samples or a longer recording")
    if settings.stride is not None:
        stride = int(settings.stride)
    else:
        # the model's own stride at its own window; miniML's round(window / 30) at any other
        model_stride_meta = getattr(metadata, "stride", None)
        stride = int(model_stride_meta) if model_stride_meta and window == model_window else default_stride(window)
    if not 1 <= stride <= window:
        raise ParameterError(f"stride must be from 1 to window_size ({window}) samples, got {stride}")
    model_stride = round(stride * float(ratio))
    if model_stride < 1:
        raise ParameterError(
            f"stride={stride} samples becomes {stride * float(ratio):.3g} samples after "
            f"resampling by {input_size}/{window}: use stride >= {math.ceil(0.5 / float(ratio))}")
    up, down = ratio.numerator, ratio.denominator
    n_model = -(-n_samples * up // down)  # ceil: what resample_poly makes of the whole trace
    n_windows = (n_model - input_size) // model_stride + 1
    if n_windows < 1:  # pragma: no cover - window <= n_samples guarantees n_model >= input
        raise ParameterError(f"the recording is too short for one {window}-sample window")
    return _Plan(n_samples, window, input_size, up, down, model_stride, n_model, n_windows,
                 invert=False)


# ------------------------------------------------------------------------------ windows
class _WindowSource:
    """Raw float32 windows of the (resampled, inverted) trace on the network's grid."""

    def __init__(self, samples: np.ndarray, plan: _Plan, chunk_size: int) -> None:
        self.x = samples
        self.plan = plan
        self.sign = -1.0 if plan.invert else 1.0
        self.offsets = np.arange(plan.input_size)
        self.noise_sd: float | None = None  # set for noise-scaled models: windows come out scaled
        if plan.resampled:
            from scipy.signal import resample_poly  # noqa: F401  (fail early if missing)

            self.block = max(int(chunk_size), 4 * plan.input_size)
            up, down = plan.up, plan.down
            # resample_poly's filter reaches 10 * max(up, down) upsampled samples each side
            self.margin = -(-10 * max(up, down) // up) + 2
            self.pad = -(-self.margin // down) * down  # edge padding, a whole number of `down`
            self.cache: dict[int, np.ndarray] = {}
            self.lock = threading.Lock()

    def windows(self, idx: np.ndarray) -> np.ndarray:
        """Windows starting at network samples ``idx * model_stride`` (idx ascending)."""
        plan = self.plan
        starts = idx.astype(np.int64) * plan.model_stride
        if not plan.resampled and isinstance(self.x, np.ndarray):
            out = self.x[starts[:, None] + self.offsets].astype(np.float32)
        elif not plan.resampled:
            # a lazy trace: one slice per run of windows less than _READ_GAP samples apart
            # (fewer, larger reads; at most batch * (_READ_GAP + input_size) samples at once)
            out = np.empty((idx.size, plan.input_size), dtype=np.float32)
            breaks = np.flatnonzero(np.diff(starts) > plan.input_size + _READ_GAP) + 1
            for rows in np.split(np.arange(idx.size), breaks):
                a = int(starts[rows[0]])
                piece = self.x[a:int(starts[rows[-1]]) + plan.input_size]
                out[rows] = piece[(starts[rows] - a)[:, None] + self.offsets]
        else:
            out = np.empty((idx.size, plan.input_size), dtype=np.float32)
            blocks = starts // self.block
            for b in np.unique(blocks):
                rows = np.flatnonzero(blocks == b)
                blk = self._block(int(b))
                local = starts[rows] - b * self.block
                inside = local + plan.input_size <= blk.size
                if inside.any():
                    out[rows[inside]] = blk[local[inside, None] + self.offsets]
                for i in rows[~inside]:  # windows reaching into the next block
                    out[i] = self._model_samples(int(starts[i]), int(starts[i]) + plan.input_size)
        if self.sign < 0:
            np.negative(out, out=out)
        if self.noise_sd is not None:
            from ..model.network import noise_scale

            out = noise_scale(out, self.noise_sd)
        return out

    def samples(self, m0: int, m1: int) -> np.ndarray:
        """Network-grid samples ``[m0, m1)`` as float64, in the network's polarity (not scaled)."""
        if not self.plan.resampled:
            out = np.asarray(self.x[m0:m1], dtype=np.float64)
        else:
            parts, a = [], m0
            while a < m1:
                b = min(m1, (a // self.block + 1) * self.block)
                parts.append(self._model_samples(a, b))
                a = b
            out = np.concatenate(parts).astype(np.float64) if parts else np.zeros(0)
        return -out if self.sign < 0 else out

    # -- resampling ---------------------------------------------------------------------
    def _model_samples(self, m0: int, m1: int) -> np.ndarray:
        b0 = m0 // self.block
        blk = self._block(b0)
        lo = m0 - b0 * self.block
        if m1 - b0 * self.block <= blk.size:
            return blk[lo:lo + (m1 - m0)]
        nxt = self._block(b0 + 1)
        head = blk[lo:]
        return np.concatenate([head, nxt[:m1 - m0 - head.size]])

    def _block(self, b: int) -> np.ndarray:
        with self.lock:  # batches may be scored on several threads
            blk = self.cache.get(b)
            if blk is None:
                if len(self.cache) >= 3:
                    self.cache.pop(min(self.cache))
                m0 = b * self.block
                m1 = min((b + 1) * self.block, self.plan.n_model)
                blk = self._resample(m0, m1).astype(np.float32)
                self.cache[b] = blk
            return blk

    def _resample(self, m0: int, m1: int) -> np.ndarray:
        """Network-grid samples [m0, m1), bit-identical however the trace is cut in blocks.

        The trace is extended by ``pad`` edge values on both sides (a multiple of ``down``
        so that the grids stay aligned), and each block is resampled from a slice of that
        extended trace that starts at a multiple of ``down`` and reaches ``margin`` input
        samples beyond the block on both sides, or to the extended trace's end.
        """
        from scipy.signal import resample_poly

        plan = self.plan
        up, down, pad, n = plan.up, plan.down, self.pad, plan.n_samples
        # extended-trace input range
        first = (m0 * down) // up + pad - self.margin
        ea = max(0, (first // down) * down)
        eb = min(n + 2 * pad, -(-(m1 * down) // up) + pad + self.margin + 1)
        # gather the extended slice [ea, eb): index e <-> recording sample e - pad (clamped)
        src = np.clip(np.arange(ea, eb) - pad, 0, n - 1)
        if ea >= pad and eb <= n + pad:
            seg = self.x[ea - pad:eb - pad]
        else:
            seg = self.x[src]
        y = resample_poly(seg, up, down)
        # local output l <-> extended output l + ea*up/down <-> network sample l + (ea-pad)*up/down
        shift = (ea - pad) * up // down
        return y[m0 - shift:m1 - shift]


# ------------------------------------------------------------------------------ scoring
def _score_windows(idx: np.ndarray, source: _WindowSource, scorer: Any, batch_size: int,
                   scores: np.ndarray, pool: Any = None, workers: int = 1) -> None:
    """Score windows ``idx`` into ``scores[idx]``, in batches of at most ``batch_size``, cut
    into at least ``workers`` parts (when there are that many windows) so every thread works."""
    n_parts = max(-(-idx.size // batch_size), min(workers, -(-idx.size // 8)))
    parts = np.array_split(idx, n_parts) if n_parts > 1 else [idx]

    def one(part: np.ndarray) -> None:
        scores[part] = scorer(source.windows(part))

    if pool is None or len(parts) == 1:
        for part in parts:
            one(part)
    else:
        list(pool.map(one, parts))


def fast_schedule(n_windows: int, coarse: int, refine: int, warm_threshold: float,
                  refine_threshold: float, score: Any, segment: int | None = None,
                  done: Any = None) -> tuple[np.ndarray, np.ndarray]:
    """Which windows the fast mode scores, and their scores.

    Parameters
    ----------
    n_windows
        Windows at the stride, numbered 0 .. n_windows - 1.
    coarse, refine
        Level-1 and level-2 grid steps, in windows (``refine <= coarse``).
    warm_threshold, refine_threshold
        See :class:`PredictSettings`.
    score
        ``score(idx) -> scores of windows idx`` (ascending int64 indices, never scored
        before), float32.
    segment
        Windows per step of the walk along the recording (``None``: all at once). The set
        of windows scored does not depend on it (see below); it bounds how far apart the
        windows of one ``score`` call lie, and lets ``done`` report progress.
    done
        ``done(k)`` is called after the windows before ``k`` are final (``None``: not called).

    Returns
    -------
    evaluated : bool array (n_windows,)
        Windows that were scored.
    scores : float32 array (n_windows,)
        Their scores; 0 elsewhere (the caller interpolates).

    The windows scored are the smallest set that holds (1) every ``coarse``-th window and
    the last; (2) every ``refine``-th window within ``coarse`` windows of a level-1 window
    above ``warm_threshold``; (3) both neighbours of every scored window above
    ``refine_threshold``. The walk takes the recording ``segment`` windows at a time: level 1
    up to ``coarse`` beyond the segment (all that level 2 inside it depends on), level 2
    inside it, then the flood fill (3) from every scored window in it, wherever the fill
    leads (also back into earlier segments). Every window it scores belongs to that
    smallest set and the set it ends with is closed under (1)-(3), so it is the same set
    whatever ``segment`` is. ``benchmarks/predict_fast_mode.py`` replays this function on
    traces scored in full to check that it misses nothing above 0.05.
    """
    n = int(n_windows)
    coarse = max(1, int(coarse))
    refine = max(1, min(int(refine), coarse))
    scores = np.zeros(n, dtype=np.float32)
    evaluated = np.zeros(n, dtype=bool)
    seg = n if segment is None else max(1, int(segment))

    def run(idx: np.ndarray) -> None:
        idx = idx[~evaluated[idx]]
        if idx.size:
            scores[idx] = score(idx)
            evaluated[idx] = True

    def level1(a: int, b: int) -> np.ndarray:  # level-1 windows in [a, b)
        idx = np.arange(-(-a // coarse) * coarse, b, coarse, dtype=np.int64)
        return np.r_[idx, n - 1] if a <= n - 1 < b and (n - 1) % coarse else idx

    l1_end = 0  # level 1 is scored on [0, l1_end)
    for s0 in range(0, n, seg):
        s1 = min(n, s0 + seg)
        hi = min(n, s1 + coarse + 1)
        if hi > l1_end:
            run(level1(l1_end, hi))
            l1_end = hi
        if refine < coarse:
            near = level1(max(0, s0 - coarse), hi)
            warm = near[scores[near] > warm_threshold]
            if warm.size:
                grid = np.arange(-(-s0 // refine) * refine, s1, refine, dtype=np.int64)
                # distance from each grid window to the nearest warm level-1 window
                pos = np.searchsorted(warm, grid)
                left = np.abs(grid - warm[np.maximum(pos - 1, 0)])
                right = np.abs(warm[np.minimum(pos, warm.size - 1)] - grid)
                run(grid[np.minimum(left, right) <= coarse])
        # flood fill: runs of windows above refine_threshold at least `refine` windows long
        # hold a grid window, so each is found wherever the grid was scored, then scored in full
        todo = np.flatnonzero(evaluated[s0:s1]) + s0
        while todo.size:
            hot = todo[scores[todo] > refine_threshold]
            if hot.size == 0:
                break
            nb = np.unique(np.r_[hot - 1, hot + 1])
            nb = nb[(nb >= 0) & (nb < n)]
            todo = nb[~evaluated[nb]]
            run(todo)
        if done is not None:
            done(s1)
    return evaluated, scores


def _fill_gaps(scores: np.ndarray, evaluated: np.ndarray, block: int = 1 << 20) -> None:
    """Interpolate the scores of the windows not scored from their scored neighbours, in
    place, a block at a time (the same numbers as one ``np.interp`` over everything)."""
    idx = np.flatnonzero(evaluated)
    n = scores.size
    for b0 in range(0, n, block):
        b1 = min(n, b0 + block)
        gaps = np.flatnonzero(~evaluated[b0:b1]) + b0
        if gaps.size == 0:
            continue
        i0 = max(0, int(np.searchsorted(idx, b0)) - 1)
        i1 = min(idx.size, int(np.searchsorted(idx, b1)) + 1)
        near = idx[i0:i1]
        scores[gaps] = np.interp(gaps, near, scores[near]).astype(np.float32)


def _resolve_device(device: str) -> Any:
    import torch

    from ..model import resolve_device

    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return resolve_device(device)


def span_windows(spans: Any, step: float, n_windows: int) -> np.ndarray:
    """Ascending indices of the windows (``k * step`` samples from the start) that start inside
    any of ``spans`` (``(start, stop)`` sample ranges, stop excluded)."""
    parts = []
    for a, b in spans:
        k0 = max(0, math.ceil(float(a) / step - 1e-9))
        k1 = min(n_windows, math.ceil(float(b) / step - 1e-9))
        if k1 > k0:
            parts.append(np.arange(k0, k1, dtype=np.int64))
    return np.unique(np.concatenate(parts)) if parts else np.zeros(0, dtype=np.int64)


def _screened(screen: Any, source: _WindowSource, plan: _Plan, noise_sd: float, chosen: np.ndarray | None,
              n: int, score: Any, done: Any, n_bar: int, threads: int = 1) -> tuple[np.ndarray, np.ndarray, dict]:
    """Fast mode with a screen (:mod:`.screen`): the screen scores the windows (all, or
    ``chosen``); the model scores those it keeps and, by :func:`~.screen.flood_fill`, every
    stretch above :data:`~.screen.FLOOD_ABOVE` they touch; then an audit sample of the rest,
    and all of them if an audited window scores above :data:`~.screen.EXACT_ABOVE` (a
    stretch the screen missed)."""
    from .screen import EXACT_ABOVE, FILL_CAP, audit_windows, dilate, flood_fill

    st = screen.settings
    pool = np.ones(n, dtype=bool) if chosen is None else np.zeros(n, dtype=bool)
    if chosen is not None:
        pool[chosen] = True
    runs = [(0, n)] if chosen is None else _runs(chosen)
    rough = np.zeros(n, dtype=np.float32)
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(max(1, int(threads)))  # one convolution over long pieces: all cores
    try:
        for k0, k1 in runs:
            rough[k0:k1] = screen.scores(source.samples, plan.n_model, k0, k1, noise_sd)
    finally:
        torch.set_num_threads(before)
    keep = dilate(rough > st.threshold, st.dilation) & pool
    scores = np.zeros(n, dtype=np.float32)
    evaluated = np.zeros(n, dtype=bool)
    first = np.flatnonzero(keep).astype(np.int64)

    def run(idx: np.ndarray, report: bool = False) -> None:  # score idx in segments
        for s0 in range(0, idx.size, _SEGMENT_WINDOWS):
            part = idx[s0:s0 + _SEGMENT_WINDOWS]
            score(part, scores)
            evaluated[part] = True
            if report:  # the bar walks over the first (largest) part of the work
                done(min(n_bar - 1, int(n_bar * (s0 + part.size) / idx.size)))

    run(first, report=True)
    # every stretch of the prediction above FLOOD_ABOVE that holds a kept window is scored
    # whole (the locator's max filter spans 5 windows; a stretch cut short would split one
    # prediction peak into two, and threshold="auto" counts peaks from FLOOD_ABOVE up)
    flood_fill(first, scores, evaluated, run, pool)
    # the audit: windows the flood did not reach; one above EXACT_ABOVE is a stretch missed
    audit = audit_windows(evaluated | ~pool, st.audit_fraction, seed=n)
    run(audit)
    misses = int(np.count_nonzero(scores[audit] > EXACT_ABOVE))
    if misses:  # the screen is not to be trusted here: the full pass
        run(np.flatnonzero(pool & ~evaluated))
    else:  # audited stretches above FLOOD_ABOVE (below EXACT_ABOVE) are scored whole too
        flood_fill(audit, scores, evaluated, run, pool)
    left = pool & ~evaluated
    scores[left] = np.minimum(rough[left], FILL_CAP)
    done(n_bar)
    info = {"threshold": float(st.threshold), "audit_fraction": float(st.audit_fraction),
            "kept": float(keep.sum() / max(1, pool.sum())),
            "audited": int(audit.size), "audit_misses": misses, "fallback": bool(misses),
            "scored": float(evaluated.sum() / max(1, pool.sum()))}
    return evaluated, scores, info


def _runs(idx: np.ndarray) -> list[tuple[int, int]]:
    """``(k0, k1)`` ranges of consecutive values of the ascending ``idx``."""
    if idx.size == 0:
        return []
    breaks = np.flatnonzero(np.diff(idx) != 1) + 1
    return [(int(r[0]), int(r[-1]) + 1) for r in np.split(idx, breaks)]


def predict_recording(recording: Recording, model: Any, settings: PredictSettings,
                      progress: bool | None = None, progress_label: str = "predict",
                      spans: Any = None) -> Prediction:
    """:func:`predict` with the settings in one :class:`PredictSettings`; ``progress_label``
    names the progress bar (its tqdm ``desc``); ``spans``: see :func:`predict`."""
    if not isinstance(recording, Recording):
        raise ParameterError(f"recording must be a minidet Recording, got {type(recording).__name__}")
    if not isinstance(settings, PredictSettings):
        raise ParameterError(f"settings must be PredictSettings, got {type(settings).__name__}")
    recording.check_finite()
    device = _resolve_device(settings.device)
    if isinstance(model, str) or hasattr(model, "__fspath__"):
        from ..model import load_model

        model = load_model(model, device=device)
    network = getattr(model, "network", None)
    metadata = getattr(model, "metadata", None)
    if network is None or metadata is None:
        raise ParameterError(
            f"model must be a model name, a model file path or a loaded MinidetModel, got {type(model).__name__}")
    input_size = int(network.window_size)

    plan = _plan(recording.n_samples, settings, metadata, input_size)
    event_dir = settings.event_direction or getattr(metadata, "event_direction", "negative")
    train_dir = settings.training_direction or getattr(metadata, "training_direction", "negative")
    plan = _Plan(**{**plan.__dict__, "invert": event_dir != train_dir})

    from .scorer import WindowScorer

    scaling = getattr(metadata, "input_scaling", "minmax")
    scorer = WindowScorer(network, device, engine=settings.engine, minmax=scaling == "minmax")
    source = _WindowSource(recording.samples, plan, settings.chunk_size)
    noise_sd = None
    if scaling == "noise":
        from ..noise import recording_noise_sd

        noise_sd = recording_noise_sd(recording, plan.window_size)
        source.noise_sd = noise_sd

    n = plan.n_windows
    segment = _SEGMENT_WINDOWS
    k1 = max(1, settings.coarse_step // plan.model_stride)
    k = max(1, min(k1, settings.refine_step // plan.model_stride))
    step = plan.model_stride * plan.down / plan.up  # recording samples between windows
    duration = recording.n_samples / recording.sampling_rate
    chosen = None if spans is None else span_windows(spans, step, n)
    n_bar = n  # windows the bar walks through
    if chosen is not None:
        n_bar = chosen.size
        duration = chosen.size * step / recording.sampling_rate  # the bar counts the spans' seconds

    bar = None
    show = progress if progress is not None else (n >= _PROGRESS_MIN_WINDOWS and sys.stderr.isatty())
    if show:
        from tqdm.auto import tqdm

        # Progress in seconds of the recording, walked from start to end: the total is known
        # up front, so the time remaining means something. In a log file (no terminal) every
        # refresh is a new line: refresh rarely there.
        bar = tqdm(total=round(duration, 1), unit="s", desc=progress_label, leave=False,
                   bar_format="{desc}: {percentage:3.0f}%|{bar}| {n:.1f}/{total:.1f} s of recording "
                              "[{elapsed}<{remaining}]",
                   mininterval=0.1 if sys.stderr.isatty() else 10.0)

    def done(k_done: int) -> None:
        if bar is not None:
            at = duration if k_done >= n_bar else round(min(duration, k_done * step / recording.sampling_rate), 1)
            if at > bar.n:
                bar.update(at - bar.n)

    # On the CPU, batches run on one Python thread per core, each with one torch thread:
    # torch ops release the GIL, and single-threaded ops never wait at OpenMP barriers,
    # which made 2-thread runs several times slower on a busy machine.
    import torch

    workers = torch.get_num_threads() if device.type == "cpu" else 1
    pool = ThreadPoolExecutor(max_workers=workers) if workers > 1 else None
    torch_threads = torch.get_num_threads()

    if pool is not None:
        torch.set_num_threads(1)
    screen = getattr(model, "screen", None)
    use_screen = (screen is not None and scaling == "noise" and settings.mode == "fast"
                  and plan.model_stride == screen.settings.stride and input_size == screen.settings.window_size)
    screen_info = None
    try:
        if use_screen:
            evaluated, scores, screen_info = _screened(
                screen, source, plan, noise_sd, chosen, n,
                lambda idx, out: _score_windows(idx, source, scorer, int(settings.batch_size), out, pool, workers),
                done, n_bar, torch_threads)
        elif chosen is not None or settings.mode == "full" or k1 == 1:
            # every window, or every window inside the spans (the rest stay 0, unscored)
            if chosen is None:
                evaluated = np.ones(n, dtype=bool)
            else:
                evaluated = np.zeros(n, dtype=bool)
                evaluated[chosen] = True
            scores = np.zeros(n, dtype=np.float32)
            for s0 in range(0, n_bar, segment):
                s1 = min(n_bar, s0 + segment)
                _score_windows(np.arange(s0, s1) if chosen is None else chosen[s0:s1], source, scorer,
                               int(settings.batch_size), scores, pool, workers)
                done(s1)
        else:
            out = np.zeros(n, dtype=np.float32)

            def score(idx: np.ndarray) -> np.ndarray:
                _score_windows(idx, source, scorer, int(settings.batch_size), out, pool, workers)
                return out[idx]

            evaluated, scores = fast_schedule(n, k1, k, float(settings.warm_threshold),
                                              float(settings.refine_threshold), score,
                                              segment=segment, done=done)
            del out
    finally:
        if pool is not None:
            pool.shutdown()
            torch.set_num_threads(torch_threads)
        if bar is not None:
            bar.close()

    if chosen is None and screen_info is None and not evaluated.all():
        _fill_gaps(scores, evaluated)

    return Prediction(
        scores=scores,
        evaluated=evaluated,
        window_size=plan.window_size,
        stride=step,
        model_stride=plan.model_stride,
        factor=plan.factor,
        sampling_rate=recording.sampling_rate,
        inverted=plan.invert,
        mode=settings.mode,
        n_values=recording.n_samples - plan.window_size + 1,
        up=plan.up,
        down=plan.down,
        noise_sd=noise_sd,
        spans=None if spans is None else tuple((int(a), int(b)) for a, b in spans),
        screen=screen_info,
    )



def predict(recording: Recording, model: Any = DEFAULT_MODEL, window_size: int | None = None,
            stride: int | None = None, event_direction: str | None = None,
            training_direction: str | None = None, resample: bool = True,
            batch_size: int = DEFAULT_BATCH_SIZE, device: str = "auto",
            progress: bool | None = None, mode: str = "fast",
            coarse_step: int = DEFAULT_COARSE_STEP,
            refine_step: int = DEFAULT_REFINE_STEP,
            warm_threshold: float = DEFAULT_WARM_THRESHOLD,
            refine_threshold: float = DEFAULT_REFINE_THRESHOLD,
            chunk_size: int = DEFAULT_CHUNK_SIZE, engine: str = "fast",
            progress_label: str = "predict", spans: Any = None) -> Prediction:
    """Event probability of every window start of ``recording``.

    Parameters
    ----------
    recording
        The trace (its samples must be finite).
    model
        A bundled model's short name (``"gc"``), a model file path, or a loaded
        :class:`~minidet.model.MinidetModel`.
    window_size, stride, event_direction, training_direction, resample, batch_size, device,
    mode, coarse_step, refine_step, warm_threshold, refine_threshold, chunk_size, engine
        See :class:`PredictSettings` (``None``: the model's value).
    progress
        Show a progress bar; ``None``: only for long work (>= 50,000 windows) on a terminal.
    progress_label
        The bar's name (``"predict"``; the inverted pass of ``threshold="auto"`` passes
        ``"auto threshold (inverted)"``).
    spans
        ``(start, stop)`` sample ranges: score every window that starts in them and no other
        (scores 0 elsewhere; the fast mode of a model with a screen, :mod:`.screen`, scores
        only the windows of the spans the screen keeps), for a sample of a long recording (the
        inverted pass of ``threshold="auto"``); ``None``: the whole recording. A noise-scaled model
        still divides by the noise SD of the whole recording.

    Returns
    -------
    Prediction
        ``np.asarray(result)`` is a float32 array of ``n_samples - window_size + 1``
        probabilities, one per window start (sample ``j`` <-> the window
        ``[j, j + window_size)``); see :class:`Prediction` for the raw strided scores and
        :meth:`Prediction.miniml_layout` for miniML's array.

    Raises
    ------
    ParameterError
        A setting out of range, a window longer than the recording, a bad model argument.
    NaNTraceError
        NaN or infinite samples (the message says where).
    UnknownModelError, ModelFileError
        From :func:`minidet.model.load_model`.
    """
    settings = PredictSettings(
        window_size=window_size, stride=stride, event_direction=event_direction,
        training_direction=training_direction, resample=resample, batch_size=batch_size,
        device=device, mode=mode, coarse_step=coarse_step, refine_step=refine_step,
        warm_threshold=warm_threshold, refine_threshold=refine_threshold,
        chunk_size=chunk_size, engine=engine)
    return predict_recording(recording, model, settings, progress=progress, progress_label=progress_label,
                             spans=spans)
