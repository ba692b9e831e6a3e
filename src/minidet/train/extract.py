"""Extract training snippets from recordings by Clements-Bekkers template matching.

(About 530 lines: one extraction recipe: template, three thresholds, noise stretches and the
model-disagreement group share their settings and their per-recording pass.)

The recipe of miniML's training workflow, per recording:

* clear events: detections at a high threshold of the detection criterion (suggested score 1);
* "less nice" events and likely false positives: detections at an intermediate threshold that
  are not clear events (suggested score 2, decided when a person scores them);
* pure noise: windows that a very low threshold leaves untouched, non-overlapping, drawn at
  random, as many as the clear events (suggested score 0).

With a model to disagree with (``minidet extract --disagree-with MODEL``), a fourth group for
active learning: snippets where the model and template matching disagree (category
``CATEGORY_DISAGREE``, suggested score 2, decided by the person): events the model is sure
of (prediction peak >= ``model_sure``) where the criterion stays below the low threshold, and
clear template-matching events the model doubts (event probability < ``model_doubt``). Every
snippet then carries the model's event probability as its prescore.

Template matching runs in O(n log n) (:func:`minidet.classic.template.clements_bekkers`) on a
copy of the trace smoothed with a Hann window (window_size / 30 samples, as miniML does); the
snippets are cut from the unfiltered trace, each ``window_size`` samples long with the event
onset at ``BASELINE_FRACTION`` of the window, and the mean of its first tenth subtracted.

The template follows from the window size (:func:`kinetics_for_window`, the inverse of the
window suggestion in :mod:`minidet.train.window`) unless rise and decay time constants are
given.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from typing import Any, Iterable, NamedTuple

import numpy as np
from scipy import signal

from ..classic.template import clements_bekkers, find_events, peak_time_s
from ..errors import DatasetError, ParameterError
from ..recording import Recording
from .dataset import CATEGORY_CLEAR, CATEGORY_DISAGREE, CATEGORY_INTERMEDIATE, CATEGORY_NOISE, Dataset, merge

__all__ = [
    "BASELINE_FRACTION",
    "RISE_DECAY_RATIO",
    "ExtractSettings",
    "WindowTemplate",
    "criterion_trace",
    "extract",
    "extract_recording",
    "kinetics_for_window",
    "prescore",
    "template_for_window",
    "window_for_kinetics",
]

log = logging.getLogger(__name__)

#: Fraction of a window before the event onset (miniML's granule-cell snippets: ~90 of 600).
BASELINE_FRACTION = 0.15
#: Decay / rise time constant of templates made from a window size alone.
RISE_DECAY_RATIO = 6.0
#: Decay time constants a window holds after the peak.
DECAY_TAUS_IN_WINDOW = 5.0


# ============================================================================ window <-> kinetics
def window_for_kinetics(rise_s: float, decay_s: float, sampling_rate: float) -> int:
    """Samples of a window that holds baseline, rise and five decay time constants.

    ``(peak_time + 5 * decay_s) * sampling_rate / (1 - BASELINE_FRACTION)``, rounded up: the
    event (onset to peak, then five decay time constants) fills the window after a baseline of
    ``BASELINE_FRACTION`` of it.
    """
    span_s = peak_time_s(rise_s, decay_s) + DECAY_TAUS_IN_WINDOW * decay_s
    return int(math.ceil(span_s * sampling_rate / (1.0 - BASELINE_FRACTION)))


def kinetics_for_window(window_size: int) -> tuple[float, float]:
    """(rise, decay) time constants in samples of events that :func:`window_for_kinetics` fits
    into ``window_size`` samples, with decay / rise = ``RISE_DECAY_RATIO``."""
    q = RISE_DECAY_RATIO
    peak_per_decay = math.log(1.0 + q) / q  # peak time / decay tau for rise = decay / q
    decay = window_size * (1.0 - BASELINE_FRACTION) / (DECAY_TAUS_IN_WINDOW + peak_per_decay)
    return decay / q, decay


class WindowTemplate(NamedTuple):
    """A positive-going template (peak 1) and where its onset lies."""

    samples: np.ndarray
    onset: int
    rise_samples: float
    decay_samples: float


def template_for_window(
    window_size: int, rise_samples: float | None = None, decay_samples: float | None = None
) -> WindowTemplate:
    """Template for snippets of ``window_size`` samples.

    Time constants in samples (default :func:`kinetics_for_window`); a zero baseline of half
    the window's pre-event part precedes the onset, and the template ends at five decay time
    constants or at the end of the window, whichever comes first.
    """
    from ..classic.template import template_from_kinetics

    window_size = int(window_size)
    if rise_samples is None or decay_samples is None:
        default_rise, default_decay = kinetics_for_window(window_size)
        rise_samples = default_rise if rise_samples is None else rise_samples
        decay_samples = default_decay if decay_samples is None else decay_samples
    pre = int(round(BASELINE_FRACTION * window_size))
    onset = max(1, pre // 2)
    post = int(min(math.ceil(DECAY_TAUS_IN_WINDOW * float(decay_samples)), window_size - pre))
    post = max(post, 3)
    shape = template_from_kinetics(float(rise_samples), float(decay_samples), 1.0, length=onset + post, baseline=onset)
    return WindowTemplate(shape, onset, float(rise_samples), float(decay_samples))


def criterion_trace(samples: np.ndarray, template: WindowTemplate | np.ndarray) -> np.ndarray:
    """Clements-Bekkers detection criterion of ``template`` along ``samples`` (NaN at the end)."""
    shape = template.samples if isinstance(template, WindowTemplate) else np.asarray(template)
    if samples.size < shape.size:
        return np.zeros(0)
    return clements_bekkers(samples, shape)[2]


# ============================================================================ settings
@dataclass(frozen=True)
class ExtractSettings:
    """How snippets are extracted.

    Parameters
    ----------
    window_size
        Samples per snippet (>= 16).
    rise_s, decay_s
        Template rise and decay time constants (s); default from the window size.
    threshold_high, threshold_mid, threshold_low
        Detection-criterion thresholds (in the event direction) for clear events, "less nice"
        events and candidates, and the limit below which a stretch counts as pure noise;
        ``high > mid > low > 0``. miniML's defaults: 4.5, 3, 1.6.
    direction
        ``"negative"`` (inward currents) or ``"positive"``.
    filter
        Smooth the trace with a Hann window of window_size / 30 samples for matching only.
    noise_per_event
        Pure-noise stretches per clear event from each recording.
    seed
        Seed for drawing the noise stretches.
    model_sure, model_doubt
        With a model to disagree with: a prediction peak at or above ``model_sure`` is an
        event the model is sure of; an event probability below ``model_doubt`` is a clear
        template-matching event the model doubts. ``0 < model_doubt < model_sure < 1``
        (0.1, 0.9).
    """

    window_size: int = 600
    rise_s: float | None = None
    decay_s: float | None = None
    threshold_high: float = 4.5
    threshold_mid: float = 3.0
    threshold_low: float = 1.6
    direction: str = "negative"
    filter: bool = True
    noise_per_event: float = 1.0
    seed: int = 0
    model_sure: float = 0.9
    model_doubt: float = 0.1

    def __post_init__(self) -> None:
        if isinstance(self.window_size, bool) or not isinstance(self.window_size, (int, np.integer)) or self.window_size < 16:
            raise ParameterError(f"window_size must be a whole number of samples >= 16, got {self.window_size!r}")
        for name in ("rise_s", "decay_s"):
            value = getattr(self, name)
            if value is not None and not (math.isfinite(value) and value > 0):
                raise ParameterError(f"{name} must be a positive number of seconds, got {value!r}")
        if self.rise_s is not None and self.decay_s is not None and self.rise_s >= self.decay_s:
            raise ParameterError(f"the rise time constant ({self.rise_s:g} s) must be shorter than the decay ({self.decay_s:g} s)")
        hi, mid, lo = self.threshold_high, self.threshold_mid, self.threshold_low
        if not all(math.isfinite(v) for v in (hi, mid, lo)) or not (hi > mid > lo > 0):
            raise ParameterError(
                f"thresholds must satisfy high > mid > low > 0 (criterion in the event direction), "
                f"got high={hi:g}, mid={mid:g}, low={lo:g}"
            )
        if self.direction not in ("negative", "positive"):
            raise ParameterError(f"direction must be 'negative' or 'positive', got {self.direction!r}")
        if not (math.isfinite(self.noise_per_event) and self.noise_per_event >= 0):
            raise ParameterError(f"noise_per_event must be >= 0, got {self.noise_per_event!r}")
        sure, doubt = self.model_sure, self.model_doubt
        if not all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in (sure, doubt)) \
                or not 0 < doubt < sure < 1:
            raise ParameterError(
                f"model thresholds must satisfy 0 < model_doubt < model_sure < 1, got "
                f"model_doubt={doubt!r}, model_sure={sure!r}")

    def template(self, sampling_rate: float) -> WindowTemplate:
        """The template at ``sampling_rate`` (Hz)."""
        rise = None if self.rise_s is None else self.rise_s * sampling_rate
        decay = None if self.decay_s is None else self.decay_s * sampling_rate
        if rise is not None and decay is None:
            decay = rise * RISE_DECAY_RATIO
        if decay is not None and rise is None:
            rise = decay / RISE_DECAY_RATIO
        return template_for_window(self.window_size, rise, decay)


@dataclass
class RecordingReport:
    """What extraction found in one recording."""

    source: str
    channel: str
    n_clear: int = 0
    n_intermediate: int = 0
    n_noise: int = 0
    n_disagree: int = 0  # of them n_doubted of the n_clear high-threshold detections
    n_doubted: int = 0
    noise_available: int = 0
    max_criterion: float = float("nan")
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


# ============================================================================ extraction
def _hann_smooth(x: np.ndarray, width: int) -> np.ndarray:
    if width < 3:
        return x
    win = signal.windows.hann(width)
    win /= win.sum()
    padded = np.pad(x, (width, width), mode="edge")
    return signal.oaconvolve(padded, win, mode="same")[width:-width]


def extract_recording(recording: Recording, settings: ExtractSettings,
                      model: Any = None) -> tuple[Dataset, RecordingReport]:
    """Snippets from one recording (see the module docstring); suggested scores 1, 2, 0.

    With ``model`` (a loaded model, bundled name or file), the disagreement group too
    (suggested score 2) and every snippet's prescore.

    Raises
    ------
    DatasetError
        The recording (every sweep of it) is shorter than one window.
    """
    W = settings.window_size
    source = recording.source or "memory"
    channel = recording.channel or ""
    report = RecordingReport(source=source, channel=channel)
    if recording.n_samples < W:
        raise DatasetError(
            f"{source} holds {recording.n_samples} samples ({recording.duration_s:.4g} s), fewer than one window "
            f"of {W} samples; choose a smaller --window-size or a longer recording"
        )
    template = settings.template(recording.sampling_rate)
    sign = -1.0 if settings.direction == "negative" else 1.0
    pre = int(round(BASELINE_FRACTION * W))
    base_n = max(1, W // 10)
    min_distance = max(1, W // 10)
    smooth_width = W // 30 if settings.filter else 0

    clear_pos: list[np.ndarray] = []
    mid_pos: list[np.ndarray] = []
    noise_candidates: list[np.ndarray] = []
    crit_full = np.full(recording.n_samples, np.nan)
    for start, stop in recording.sweep_bounds():
        if stop - start < max(W, template.samples.size + 1):
            report.notes.append(f"sweep at sample {start} is shorter than one window; skipped")
            continue
        x = recording.samples[start:stop]
        crit = criterion_trace(_hann_smooth(x, smooth_width), template) * sign
        # the criterion at position i describes an event with onset i + template.onset
        onset_crit = np.full(stop - start, np.nan)
        onset_crit[template.onset:] = crit[: crit.size - template.onset]
        crit_full[start:stop] = onset_crit

        def usable(onsets: np.ndarray) -> np.ndarray:
            first = onsets - pre
            return onsets[(first >= 0) & (first + W <= stop - start)]

        high = usable(find_events(onset_crit, settings.threshold_high, min_distance))
        mid = usable(find_events(onset_crit, settings.threshold_mid, min_distance))
        if high.size:
            near = np.abs(mid[:, None] - high[None, :]).min(axis=1) < min_distance
            mid = mid[~near]
        low = find_events(onset_crit, settings.threshold_low, 1)
        # pure noise: windows with no low-threshold detection within one window of them
        touched = np.zeros(stop - start + 1, dtype=np.int64)
        lo_first = np.clip(low - W - pre, 0, stop - start)
        lo_last = np.clip(low + W, 0, stop - start)
        np.add.at(touched, lo_first, 1)
        np.add.at(touched, lo_last, -1)
        free = np.cumsum(touched)[:-1] == 0
        free[: max(template.onset, 0)] = False  # the criterion is unknown before the first onset
        free[np.isnan(onset_crit)] = False
        noise_candidates.append(start + _tile_free(free, W))
        clear_pos.append(start + high)
        mid_pos.append(start + mid)

    if not clear_pos and not mid_pos:
        raise DatasetError(f"{source}: no sweep is longer than one window of {W} samples")
    if model is not None:
        model = _loaded(model)
        disagree = _model_sure_template_silent(recording, settings, model, crit_full, pre, min_distance)
    else:
        disagree = np.zeros(0, np.int64)
    finite = np.isfinite(crit_full)
    report.max_criterion = float(np.max(crit_full[finite])) if finite.any() else float("nan")
    clear = np.concatenate(clear_pos) if clear_pos else np.zeros(0, np.int64)
    mid = np.concatenate(mid_pos) if mid_pos else np.zeros(0, np.int64)
    noise_all = np.concatenate(noise_candidates) if noise_candidates else np.zeros(0, np.int64)
    report.noise_available = int(noise_all.size)
    n_noise = int(round(settings.noise_per_event * clear.size))
    rng = np.random.default_rng(settings.seed)
    if noise_all.size > n_noise:
        noise_all = np.sort(rng.choice(noise_all, size=n_noise, replace=False))
    elif noise_all.size < n_noise:
        report.notes.append(
            f"only {noise_all.size} event-free stretches for {clear.size} clear events (frequent events or a short trace)"
        )

    starts = np.concatenate([clear - pre, mid - pre, disagree - pre, noise_all]).astype(np.int64)
    categories = np.concatenate([
        np.full(clear.size, CATEGORY_CLEAR), np.full(mid.size, CATEGORY_INTERMEDIATE),
        np.full(disagree.size, CATEGORY_DISAGREE), np.full(noise_all.size, CATEGORY_NOISE)
    ]).astype(np.int8)
    scores = np.where(categories == CATEGORY_CLEAR, 1, np.where(categories == CATEGORY_NOISE, 0, 2))
    snippets = np.stack([recording.samples[s:s + W] for s in starts]) if starts.size else np.zeros((0, W))
    snippets = snippets - snippets[:, :base_n].mean(axis=1, keepdims=True)
    criterion = np.array([
        np.nanmax(crit_full[s:s + W]) if np.isfinite(crit_full[s:s + W]).any() else np.nan for s in starts
    ])
    criterion[categories != CATEGORY_NOISE] = crit_full[starts[categories != CATEGORY_NOISE] + pre]
    order = np.argsort(starts, kind="stable")
    n = starts.size
    dataset = Dataset(
        events=snippets[order],
        scores=scores[order],
        raw_indices=starts[order],
        cell_label=np.full(n, source, dtype=object),
        scored=np.zeros(n, dtype=bool),
        category=categories[order],
        criterion=criterion[order],
        channel=np.full(n, channel, dtype=object),
        sampling_rate=np.full(n, recording.sampling_rate),
        noise_sd=np.full(n, _noise_sd(recording, W)),
        attrs={**_settings_attrs(settings, template), "unit": recording.unit},
    )
    report.n_clear, report.n_intermediate, report.n_noise = int(clear.size), int(mid.size), int(noise_all.size)
    if model is not None:
        dataset.prescore = prescore(dataset, model)
        doubted = (dataset.category == CATEGORY_CLEAR) & (dataset.prescore < settings.model_doubt)
        dataset.category[doubted] = CATEGORY_DISAGREE
        dataset.scores[doubted] = 2
        report.n_disagree = int(disagree.size + doubted.sum())
        report.n_doubted = int(doubted.sum())
        dataset.attrs.update(_model_attrs(model, settings))
    return dataset, report


def _loaded(model: Any) -> Any:
    """A loaded model from a name, a path or a loaded model."""
    if hasattr(model, "predict_windows") and hasattr(model, "metadata"):
        return model
    from .. import load_model

    return load_model(model)


def _model_attrs(model: Any, settings: ExtractSettings) -> dict[str, Any]:
    name = str(getattr(model, "name", "") or getattr(model.metadata, "name", ""))
    return {"prescore_model": name, "disagree_model": name,
            "model_sure": settings.model_sure, "model_doubt": settings.model_doubt}


def _model_sure_template_silent(recording: Recording, settings: ExtractSettings, model: Any,
                                onset_crit: np.ndarray, pre: int, min_distance: int) -> np.ndarray:
    """Onsets (samples) of events ``model`` is sure of where the criterion stays below the low threshold.

    The model's prediction peaks at or above ``settings.model_sure`` (:func:`minidet.detect`
    with that threshold and the extraction's window and direction); an event counts when the
    largest criterion within ``min_distance`` samples of its onset is below
    ``settings.threshold_low`` and its window lies inside one sweep.
    """
    from ..detection.pipeline import detect

    W = settings.window_size
    found = detect(recording, model, threshold=settings.model_sure, window_size=W,
                   event_direction=settings.direction, progress=False)
    events = found.events_all
    if events.empty:
        return np.zeros(0, np.int64)
    onset = events["onset_sample"].to_numpy(dtype=np.float64)
    onset = np.where(np.isfinite(onset), onset, events["sample"].to_numpy(dtype=np.float64))
    onset = np.round(onset[np.isfinite(onset)]).astype(np.int64)
    out = []
    bounds = recording.sweep_bounds()
    for o in np.unique(onset):
        first = o - pre
        if not any(a <= first and first + W <= b for a, b in bounds):
            continue
        near = onset_crit[max(0, o - min_distance):o + min_distance + 1]
        near = near[np.isfinite(near)]
        if near.size and near.max() < settings.threshold_low:
            out.append(o)
    return np.asarray(out, dtype=np.int64)


def _noise_sd(recording: Recording, window_size: int) -> float:
    """The recording's noise SD for noise-scaled models (NaN for a trace without noise)."""
    from ..noise import recording_noise_sd

    try:
        return recording_noise_sd(recording, window_size)
    except ParameterError:
        return float("nan")


def _tile_free(free: np.ndarray, width: int) -> np.ndarray:
    """Start indices of non-overlapping windows of ``width`` inside the True runs of ``free``."""
    padded = np.concatenate(([False], free, [False])).astype(np.int8)
    edges = np.flatnonzero(np.diff(padded))
    starts = []
    for a, b in zip(edges[::2], edges[1::2]):
        if b - a >= width:
            starts.append(np.arange(a, b - width + 1, width))
    return np.concatenate(starts).astype(np.int64) if starts else np.zeros(0, np.int64)


def _settings_attrs(settings: ExtractSettings, template: WindowTemplate) -> dict[str, Any]:
    return {
        "created_by": "minidet extract",
        "window_size": settings.window_size,
        "direction": settings.direction,
        "threshold_high": settings.threshold_high,
        "threshold_mid": settings.threshold_mid,
        "threshold_low": settings.threshold_low,
        "template_rise_samples": template.rise_samples,
        "template_decay_samples": template.decay_samples,
        "template_rise_s": settings.rise_s if settings.rise_s is not None else float("nan"),
        "template_decay_s": settings.decay_s if settings.decay_s is not None else float("nan"),
        "baseline_fraction": BASELINE_FRACTION,
        "matching_filter": bool(settings.filter),
    }


def extract(
    recordings: Iterable[Recording],
    settings: ExtractSettings,
    disagree_with: Any = None,
) -> tuple[Dataset, list[RecordingReport]]:
    """Extract from several recordings into one dataset.

    ``recordings`` is a sequence of :class:`Recording` or an iterable yielding them (so the CLI
    can load one file at a time). ``disagree_with``: a model (bundled name, file or loaded
    model) whose disagreements with template matching become a fourth group (module docstring).

    Raises
    ------
    DatasetError
        No recording yields a clear event at the high threshold (the message names the largest
        criterion seen, so the threshold can be set below it).
    """
    parts: list[Dataset] = []
    reports: list[RecordingReport] = []
    model = _loaded(disagree_with) if disagree_with is not None else None
    for recording in recordings:  # type: ignore[union-attr]
        part, report = extract_recording(recording, settings, model)
        parts.append(part)
        reports.append(report)
    if not parts:
        raise ParameterError("extract needs at least one recording")
    if sum(r.n_clear for r in reports) == 0:
        best = max(reports, key=lambda r: -np.inf if math.isnan(r.max_criterion) else r.max_criterion)
        raise DatasetError(
            f"no event reached the high threshold {settings.threshold_high:g} in "
            f"{'any of the ' + str(len(reports)) + ' recordings' if len(reports) > 1 else best.source} "
            f"(largest criterion {best.max_criterion:.3g} in {best.source}); lower --threshold-high, check "
            f"--direction ({settings.direction}) or the template (--rise-ms/--decay-ms, --window-size)"
        )
    dataset = merge(parts) if len(parts) > 1 else parts[0]
    dataset.attrs.pop("merged_from", None)
    dataset.attrs.update(_settings_attrs(settings, settings.template(1.0)))
    if model is not None:
        dataset.attrs.update(_model_attrs(model, settings))
    # template time constants in samples differ between files of different rates when given in s
    rates = np.unique(dataset.sampling_rate[np.isfinite(dataset.sampling_rate)])
    if settings.rise_s is not None or settings.decay_s is not None:
        if rates.size != 1:
            dataset.attrs.pop("template_rise_samples", None)
            dataset.attrs.pop("template_decay_samples", None)
        else:
            t = settings.template(float(rates[0]))
            dataset.attrs["template_rise_samples"] = t.rise_samples
            dataset.attrs["template_decay_samples"] = t.decay_samples
    return dataset, reports


# ============================================================================ pre-scoring
def prescore(dataset: Dataset, model_name: Any) -> np.ndarray:
    """A model's event probability for each snippet of ``dataset`` (model: name, file or loaded).

    Snippets are resampled to the network's input size (when the window differs) and inverted
    when the dataset's event direction differs from the model's training direction. The
    baseline subtraction does not matter: the model min-max scales every window, or (a
    noise-scaled model) subtracts its median and divides by the snippet's ``noise_sd``;
    snippets without one get NaN.
    """
    model = _loaded(model_name)
    windows = np.asarray(dataset.events, dtype=np.float64)
    if windows.shape[0] == 0:
        return np.zeros(0)
    if windows.shape[1] != model.input_size:
        g = math.gcd(model.input_size, windows.shape[1])
        windows = signal.resample_poly(windows, model.input_size // g, windows.shape[1] // g, axis=1)
    direction = str(dataset.attrs.get("direction", "negative"))
    if direction != model.metadata.training_direction:
        windows = -windows
    if model.metadata.input_scaling == "noise":
        sd = np.asarray(dataset.noise_sd, dtype=np.float64)
        ok = np.isfinite(sd) & (sd > 0)
        out = np.full(windows.shape[0], np.nan)
        if ok.any():
            out[ok] = model.predict_windows(windows[ok], noise_sd=sd[ok])
        return out
    return model.predict_windows(windows).astype(np.float64)
