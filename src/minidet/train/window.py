"""Suggest a window size from a recording's event kinetics.

miniML classifies windows of 600 samples; the window must hold a whole event (for granule-cell
mEPSCs at 50 kHz: 600 samples, 12 ms), and a recording whose events are slower or faster, or
sampled at another rate, is resampled so that its window fits the 600-point input.

:func:`estimate_kinetics` finds the event shape without knowing it beforehand:

1. Clements-Bekkers template matching with a ladder of templates (decay time constants from
   2 samples to 100 ms, rise = decay / 6). Each criterion trace is divided by its robust
   standard deviation (the noise level), which makes the criteria of different templates
   comparable; the template whose clearest detections stand out most is the matched filter
   closest to the events.
   A detection counts only above 6 robust SD and above the most extreme value of the
   criterion in the opposite direction, which noise alone reaches.
2. The clearest isolated events of that template are aligned at their onsets and averaged,
   and ``A (1 - exp(-t/rise)) exp(-t/decay)`` is fitted to the average; the fitted template
   detects and aligns the events once more and the fit is repeated.

:func:`suggest_window` turns the kinetics into a window (:func:`window_for_kinetics`: baseline,
onset to peak, five decay time constants) and the resampling factor for a 600-point model.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from scipy import optimize

from ..classic.template import clements_bekkers, find_events, peak_time_s, template_from_kinetics
from ..errors import DatasetError, ParameterError
from ..recording import Recording
from .extract import BASELINE_FRACTION, DECAY_TAUS_IN_WINDOW, RISE_DECAY_RATIO, window_for_kinetics

__all__ = ["Kinetics", "WindowSuggestion", "estimate_kinetics", "kinetics_curve", "plot_window", "suggest_window",
           "suggest_window_near"]

MODEL_INPUT = 600  #: input samples of miniML's models


@dataclass(frozen=True)
class Kinetics:
    """Event kinetics estimated from a recording (times in seconds).

    ``rise_s`` and ``decay_s`` are the time constants of the fitted shape
    ``(1 - exp(-t/rise)) exp(-t/decay)``; ``rise_time_s`` its 10-90 % rise time,
    ``peak_time_s`` onset to peak; ``duration_s`` onset to five decay time constants past the
    peak. ``average`` is the aligned average of ``n_events`` clearest events (in the
    recording's unit, onset at index ``onset``), ``examples`` a few of them with their
    onset sample in the recording.
    """

    rise_s: float
    decay_s: float
    rise_time_s: float
    peak_time_s: float
    duration_s: float
    amplitude: float
    n_events: int
    sampling_rate: float
    average: np.ndarray = field(repr=False)
    onset: int = 0
    examples: np.ndarray = field(repr=False, default_factory=lambda: np.zeros(0, np.int64))


@dataclass(frozen=True)
class WindowSuggestion:
    """A window size (samples) for a recording, and what it implies for a 600-point model."""

    window_size: int
    sampling_rate: float
    kinetics: Kinetics
    model_input: int = MODEL_INPUT

    @property
    def window_s(self) -> float:
        return self.window_size / self.sampling_rate

    @property
    def resample_factor(self) -> float:
        """Recording samples per model sample (> 1: the trace is downsampled for prediction)."""
        return self.window_size / self.model_input

    @property
    def onset_in_window(self) -> int:
        return int(round(BASELINE_FRACTION * self.window_size))

    def to_dict(self) -> dict[str, Any]:
        k = self.kinetics
        return {
            "window_size": self.window_size,
            "window_s": self.window_s,
            "sampling_rate": self.sampling_rate,
            "resample_factor": self.resample_factor,
            "model_input": self.model_input,
            "rise_tau_s": k.rise_s,
            "decay_tau_s": k.decay_s,
            "rise_time_10_90_s": k.rise_time_s,
            "peak_time_s": k.peak_time_s,
            "duration_s": k.duration_s,
            "amplitude": k.amplitude,
            "n_events": k.n_events,
        }

    def to_text(self, unit: str = "") -> str:
        k = self.kinetics
        ms = 1e3
        lines = [
            f"events: {k.n_events} clearest, amplitude {k.amplitude:.3g} {unit}".rstrip(),
            f"rise tau {k.rise_s * ms:.3g} ms (10-90 % rise {k.rise_time_s * ms:.3g} ms, onset to peak "
            f"{k.peak_time_s * ms:.3g} ms), decay tau {k.decay_s * ms:.3g} ms, duration {k.duration_s * ms:.3g} ms",
            f"suggested window: {self.window_size} samples = {self.window_s * ms:.3g} ms at {self.sampling_rate:g} Hz "
            f"(baseline {BASELINE_FRACTION:.0%}, onset to peak, {DECAY_TAUS_IN_WINDOW:g} decay time constants)",
            f"resampling for a {self.model_input}-point model: factor {self.resample_factor:.3g} "
            f"({'down' if self.resample_factor > 1 else 'up'}sample the trace by {self.model_input}/{self.window_size})",
            f"extract with: --window-size {self.window_size} --rise-ms {k.rise_s * ms:.3g} --decay-ms {k.decay_s * ms:.3g}",
        ]
        return "\n".join(lines)


# ============================================================================ estimation
def _robust_sd(x: np.ndarray) -> float:
    x = x[:: max(1, x.size // 200_000)]  # a subsample estimates the spread as well
    x = x[np.isfinite(x)]
    if x.size == 0:
        return float("nan")
    return float(1.4826 * np.median(np.abs(x - np.median(x))))


def _template(rise: float, decay: float) -> tuple[np.ndarray, int]:
    """Template in samples with a baseline of one decay time constant (at least 2 samples)."""
    onset = max(2, int(round(decay)))
    length = onset + max(int(math.ceil(DECAY_TAUS_IN_WINDOW * decay)), 4)
    return template_from_kinetics(rise, decay, 1.0, length=length, baseline=onset), onset


def _zcrit(x: np.ndarray, template: np.ndarray) -> np.ndarray:
    crit = clements_bekkers(x, template)[2]
    sd = _robust_sd(crit)
    return crit / sd if sd > 0 else crit * 0.0


def _event_shape(t: np.ndarray, amp: float, t0: float, rise: float, decay: float, offset: float) -> np.ndarray:
    tt = np.maximum(t - t0, 0.0)
    return amp * (1.0 - np.exp(-tt / rise)) * np.exp(-tt / decay) + offset


def _fit_average(avg: np.ndarray, onset: int, rise: float, decay: float) -> tuple[float, float, float, float]:
    """Fit the event shape to ``avg`` (samples); return (amplitude, onset, rise, decay) in samples."""
    t = np.arange(avg.size, dtype=float)
    peak_gain = 1.0 / max(np.max(_event_shape(t, 1.0, onset, rise, decay, 0.0)), 1e-12)
    p0 = [float(np.max(avg)) * peak_gain, float(onset), rise, decay, 0.0]
    span = float(avg.size)
    lower = [0.0, 0.0, 0.05, 0.3, -np.inf]
    upper = [np.inf, span, span, 10 * span, np.inf]
    p0 = [min(max(v, lo + 1e-9), hi - 1e-9) if np.isfinite(hi) else max(v, lo + 1e-9) for v, lo, hi in zip(p0, lower, upper)]
    try:
        popt, _ = optimize.curve_fit(_event_shape, t, avg, p0=p0, bounds=(lower, upper), maxfev=20000)
    except (RuntimeError, ValueError):
        return p0[0], p0[1], rise, decay
    amp, t0, r, d, _ = popt
    if r > d:  # the two time constants of this shape can swap; the decay is the slower one
        r, d = d, r
    return float(amp), float(t0), float(r), float(d)


def _clear_events(z: np.ndarray, onset: int, isolation: int, threshold: float, max_events: int) -> tuple[np.ndarray, np.ndarray]:
    """Onsets and z of the clearest detections with no other detection within ``isolation``.

    Noise reaches the criterion as far in the opposite direction as in the event direction, so
    a detection must also beat the most extreme opposite value (heavy tails of short templates).
    """
    finite = z[np.isfinite(z)]
    if finite.size:
        threshold = max(threshold, float(np.max(-finite)))
    peaks = find_events(z, threshold, max(1, isolation // 4))
    if peaks.size == 0:
        return peaks, np.zeros(0)
    heights = z[peaks]
    isolated = np.ones(peaks.size, dtype=bool)
    if peaks.size > 1:
        gaps = np.diff(peaks)
        isolated[1:] &= gaps > isolation
        isolated[:-1] &= gaps > isolation
    peaks, heights = peaks[isolated], heights[isolated]
    order = np.argsort(heights)[::-1][:max_events]
    return peaks[order] + onset, heights[order]


def _average(x: np.ndarray, onsets: np.ndarray, pre: int, post: int) -> tuple[np.ndarray, np.ndarray]:
    keep = onsets[(onsets - pre >= 0) & (onsets + post <= x.size)]
    if keep.size == 0:
        return np.zeros(0), keep
    segs = np.stack([x[o - pre:o + post] for o in keep])
    segs = segs - segs[:, :pre].mean(axis=1, keepdims=True)
    return segs.mean(axis=0), keep


def estimate_kinetics(
    recording: Recording,
    direction: str = "negative",
    max_events: int = 50,
    min_events: int = 5,
    threshold: float = 6.0,
    max_duration_s: float | None = 60.0,
) -> Kinetics:
    """Rise and decay of a recording's events, from its clearest template-matched events.

    Parameters
    ----------
    recording
        The trace; each sweep is matched separately, the first ``max_duration_s`` seconds of
        the trace at most (``None``: all of it; a minute holds enough clear events, and the
        ladder of templates costs about 1 s per 10 s of 50 kHz trace).
    direction
        ``"negative"`` or ``"positive"`` events.
    max_events
        Clearest isolated events averaged for the fit.
    min_events
        Fewer clear events than this is an error.
    threshold
        Detection threshold in robust standard deviations of the criterion trace.

    Raises
    ------
    DatasetError
        Too few clear events to estimate kinetics, or a trace too short to try.
    """
    if direction not in ("negative", "positive"):
        raise ParameterError(f"direction must be 'negative' or 'positive', got {direction!r}")
    rate = recording.sampling_rate
    limit = recording.n_samples if max_duration_s is None else int(max_duration_s * rate)
    x_full = recording.samples[:limit] * (-1.0 if direction == "negative" else 1.0)
    bounds = [(a, min(b, limit)) for a, b in recording.sweep_bounds() if a < limit]
    sweeps = [x_full[a:b] for a, b in bounds]
    longest = max(s.size for s in sweeps)

    # 1. a ladder of templates; keep the one whose clearest detections stand out most
    max_decay = min(0.1 * rate, longest / 40)
    min_decay = 2.0
    if max_decay <= min_decay:
        raise DatasetError(
            f"{recording.source or 'the trace'} is too short ({longest} samples per sweep) to estimate event kinetics"
        )
    ladder = np.geomspace(min_decay, max_decay, max(2, int(math.log(max_decay / min_decay) / math.log(1.35)) + 1))
    best: tuple[float, float] | None = None
    for decay_full in ladder:
        # slow templates are tried on a block-averaged trace (>= 8 samples per decay constant)
        q = max(1, int(decay_full // 8))
        decay = decay_full / q
        rise = decay / RISE_DECAY_RATIO
        template, onset = _template(rise, decay)
        heights = []
        for s in sweeps:
            if q > 1:
                s = s[: s.size // q * q].reshape(-1, q).mean(axis=1)
            if s.size <= template.size * 2:
                continue
            z = _zcrit(s, template)
            _, h = _clear_events(z, onset, template.size, threshold, max_events)
            heights.append(h)
        h = np.sort(np.concatenate(heights))[::-1] if heights else np.zeros(0)
        if h.size < min_events:
            continue
        score = float(np.median(h[: max_events // 2 or 1]))
        if best is None or score > best[0]:
            best = (score, decay_full)
    if best is None:
        raise DatasetError(
            f"found fewer than {min_events} clear {direction} events in {recording.source or 'the trace'} "
            f"(criterion above {threshold:g} robust SD and above anything noise reaches in the opposite direction); check --direction, or the trace holds too few events"
        )

    # 2. average the clearest events, fit, and repeat with the fitted template
    decay = best[1]
    rise = decay / RISE_DECAY_RATIO
    amp = 0.0
    avg = np.zeros(0)
    avg_pre = 0
    examples = np.zeros(0, np.int64)
    n_used = 0
    for _ in range(2):
        template, onset = _template(rise, decay)
        pre = max(int(round(3 * decay)), 10)
        post = max(int(round(10 * decay)), 20)
        sums = []
        count = 0
        first_onsets: list[np.ndarray] = []
        for (a, _b), s in zip(bounds, sweeps):
            if s.size <= template.size * 2:
                continue
            z = _zcrit(s, template)
            onsets, _ = _clear_events(z, onset, template.size + pre, threshold, max_events)
            mean, used = _average(s, onsets, pre, post)
            if used.size:
                sums.append(mean * used.size)
                count += used.size
                first_onsets.append(a + used)
        if count < min_events:
            break
        avg = np.sum(sums, axis=0) / count
        avg_pre = pre
        examples = np.concatenate(first_onsets)[:max_events]
        n_used = count
        amp, t0, rise_fit, decay_fit = _fit_average(avg, pre, rise, decay)
        rise, decay = max(rise_fit, 0.05), max(decay_fit, rise_fit * 1.01, 0.3)
    if n_used < min_events:
        raise DatasetError(f"found fewer than {min_events} isolated clear events in {recording.source or 'the trace'}")
    if decay < 3.0:
        raise DatasetError(
            f"the clearest {direction} events in {recording.source or 'the trace'} decay within {decay:.2g} samples "
            f"({decay / rate * 1e3:.3g} ms): too fast to be synaptic events at {rate:g} Hz, more likely noise spikes "
            "or artefacts; check --direction and the recording"
        )
    rise_s, decay_s = rise / rate, decay / rate
    t = np.linspace(0, peak_time_s(rise_s, decay_s), 2000)
    shape = (1 - np.exp(-t / rise_s)) * np.exp(-t / decay_s)
    shape /= shape.max()
    rise_time = float(t[np.argmax(shape >= 0.9)] - t[np.argmax(shape >= 0.1)])
    peak_s = peak_time_s(rise_s, decay_s)
    sign = -1.0 if direction == "negative" else 1.0
    return Kinetics(
        rise_s=rise_s,
        decay_s=decay_s,
        rise_time_s=rise_time,
        peak_time_s=peak_s,
        duration_s=peak_s + DECAY_TAUS_IN_WINDOW * decay_s,
        amplitude=sign * float(np.max(avg)),
        n_events=n_used,
        sampling_rate=rate,
        average=sign * avg,
        onset=avg_pre,
        examples=np.sort(examples),
    )


def suggest_window(recording: Recording, direction: str = "negative", **kwargs: Any) -> WindowSuggestion:
    """Estimate the kinetics (:func:`estimate_kinetics`) and the window that holds an event."""
    kinetics = estimate_kinetics(recording, direction=direction, **kwargs)
    window = window_for_kinetics(kinetics.rise_s, kinetics.decay_s, recording.sampling_rate)
    return WindowSuggestion(window_size=window, sampling_rate=recording.sampling_rate, kinetics=kinetics)



def suggest_window_near(recording: Recording, positions: Any, direction: str = "negative",
                        span_samples: float | None = None) -> WindowSuggestion:
    """The suggestion from the stretches around events a person picked (``positions``,
    samples): ``span_samples`` either side, at least 0.25 s and at most 2.5 s, which leaves
    the template ladder room for decay time constants up to 1/40 of a stretch; overlapping
    stretches are merged. The kinetics' ``examples`` are onsets in ``recording``."""
    fs = recording.sampling_rate
    pos = np.unique(np.clip(np.asarray(positions, dtype=np.int64), 0, recording.n_samples - 1))
    if pos.size == 0:
        raise ParameterError("no event positions were given")
    half = int(min(2.5 * fs, max(float(span_samples or 0.0), 0.25 * fs)))
    stretches: list[list[int]] = []
    for p in pos:
        a, b = max(0, int(p) - half), min(recording.n_samples, int(p) + half)
        if stretches and a <= stretches[-1][1]:
            stretches[-1][1] = max(stretches[-1][1], b)
        else:
            stretches.append([a, b])
    pieces = [np.asarray(recording.samples[a:b], dtype=np.float64) for a, b in stretches]
    starts = np.cumsum([0] + [piece.size for piece in pieces[:-1]])
    sub = Recording(np.concatenate(pieces), fs, unit=recording.unit, source=recording.source, sweep_starts=starts)
    suggestion = suggest_window(sub, direction=direction, min_events=int(min(5, max(2, pos.size))),
                                max_duration_s=None)
    k = suggestion.kinetics
    examples = np.asarray(k.examples, dtype=np.int64)
    if examples.size:  # onsets in the joined stretches -> onsets in the recording
        origins = np.asarray([a for a, _ in stretches], dtype=np.int64)
        which = np.searchsorted(starts, examples, side="right") - 1
        examples = examples - starts[which] + origins[which]
    return dataclasses.replace(suggestion, kinetics=dataclasses.replace(k, examples=examples))


def kinetics_curve(kinetics: Kinetics) -> np.ndarray:
    """The fitted shape ``(1 - exp(-t/rise)) exp(-t/decay)`` on the samples of
    ``kinetics.average`` (onset at ``kinetics.onset``), scaled to its amplitude."""
    fs = kinetics.sampling_rate
    t = np.arange(kinetics.average.size) - kinetics.onset
    shape = _event_shape(t.astype(np.float64), 1.0, 0.0, kinetics.rise_s * fs, kinetics.decay_s * fs, 0.0)
    return shape / shape.max() * kinetics.amplitude if shape.max() > 0 else shape


# ============================================================================ figure
def plot_window(suggestion: WindowSuggestion, recording: Recording, path: str | Path, n_examples: int = 3) -> Path:
    """PNG: the clearest events overlaid with their average and fit, and a few single events
    in their context, each with the suggested window drawn."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    from ..fsutil import atomic_path

    k = suggestion.kinetics
    rate = recording.sampling_rate
    W = suggestion.window_size
    pre_w = suggestion.onset_in_window
    ms = 1e3 / rate
    n_examples = min(n_examples, k.examples.size)
    fig = plt.figure(figsize=(10, 6.5), dpi=100)
    grid = fig.add_gridspec(2, max(n_examples, 1), height_ratios=[1.4, 1])
    ax = fig.add_subplot(grid[0, :])
    left, right = k.onset - pre_w, k.onset - pre_w + W
    span = max(right, k.average.size) - min(left, 0)
    lo = min(left, 0) - int(0.1 * span)
    hi = max(right, k.average.size) + int(0.1 * span)
    t_ms = (np.arange(lo, hi) - k.onset) * ms
    for onset in k.examples[:15]:
        a, b = onset + lo - k.onset, onset + hi - k.onset
        if a < 0 or b > recording.n_samples:
            continue
        seg = recording.samples[a:b]
        seg = seg - seg[k.onset - lo - pre_w // 2 - 1 : k.onset - lo].mean() if pre_w > 2 else seg - seg[0]
        ax.plot(t_ms, seg, color="0.6", lw=0.5, alpha=0.5)
    ax.plot((np.arange(k.average.size) - k.onset) * ms, k.average, color="black", lw=2, label=f"average of {k.n_events}")
    tf = np.arange(k.average.size)
    rise, decay = k.rise_s * rate, k.decay_s * rate
    fit = np.where(tf >= k.onset, (1 - np.exp(-(tf - k.onset) / rise)) * np.exp(-(tf - k.onset) / decay), 0.0)
    if fit.max() > 0:
        ax.plot((tf - k.onset) * ms, fit / fit.max() * k.amplitude, color="tab:red", lw=1.2, ls="--",
                label=f"fit: rise tau {k.rise_s * 1e3:.3g} ms, decay tau {k.decay_s * 1e3:.3g} ms")
    ax.axvspan((left - k.onset) * ms, (right - k.onset) * ms, color="tab:blue", alpha=0.08)
    for edge in (left, right):
        ax.axvline((edge - k.onset) * ms, color="tab:blue", ls=":", lw=1.5)
    ax.set_title(
        f"suggested window: {W} samples = {suggestion.window_s * 1e3:.3g} ms at {rate / 1e3:g} kHz "
        f"(resampling factor {suggestion.resample_factor:.3g} for a {suggestion.model_input}-point model)",
        fontsize=10,
    )
    ax.set_xlabel("time from onset (ms)")
    ax.set_ylabel(recording.unit)
    ax.legend(loc="lower right" if k.amplitude < 0 else "upper right", fontsize=8, frameon=False)
    for i in range(n_examples):
        onset = int(k.examples[i * max(1, k.examples.size // n_examples)])
        ax_i = fig.add_subplot(grid[1, i])
        a, b = max(0, onset - pre_w - W // 2), min(recording.n_samples, onset - pre_w + W + W // 2)
        ax_i.plot((np.arange(a, b) - onset) * ms, recording.samples[a:b], color="black", lw=0.7)
        ax_i.axvspan(-pre_w * ms, (W - pre_w) * ms, color="tab:blue", alpha=0.1)
        for edge in (-pre_w, W - pre_w):
            ax_i.axvline(edge * ms, color="tab:blue", ls=":", lw=1.2)
        ax_i.set_title(f"event at {onset / rate:.3f} s", fontsize=9)
        ax_i.set_xlabel("ms")
        if i == 0:
            ax_i.set_ylabel(recording.unit)
    fig.tight_layout()
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)
    return path
