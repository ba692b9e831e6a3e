"""``detect``: recording -> prediction -> event positions -> measurements, in one call,
and :class:`DetectionResult`, the one object every report, file writer and plot reads.

(About 680 lines: DetectSettings, their resolution against the model, detect and
DetectionResult: the one object every writer and plot reads.)

The events live in one table (:attr:`DetectionResult.events_all`); removing events by
hand sets its ``excluded`` column in a new result, and every statistic is computed from
the kept rows when asked for.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from dataclasses import asdict, dataclass, field
from functools import cached_property
from typing import Any, Iterable

import numpy as np
import pandas as pd

from .. import DEFAULT_MODEL
from ..errors import ParameterError
from ..params import check_fields, default, metadata_keys, integer_settings
from ..windows import default_stride
from ..measure.kinetics import MeasureSettings, measure_events
from ..measure.summary import average_mask, cut_waveforms, fit_decay_tau, mean_waveform, non_overlapping, summarize
from ..recording import LazyTrace, Recording
from ..filters import direction_sign
from .locate import LocateSettings, locate_events

__all__ = ["DetectSettings", "DetectionResult", "EVENT_COLUMNS", "detect", "empty_events"]

log = logging.getLogger(__name__)

#: columns of :attr:`DetectionResult.events_all`, in order
EVENT_COLUMNS = (
    "sample",
    "time_s",
    "score",
    "onset_sample",
    "onset_time_s",
    "peak_sample",
    "peak_time_s",
    "baseline",
    "amplitude",
    "rise_time_s",
    "half_decay_s",
    "half_width_s",
    "charge",
    "decay_tau_s",
    "overlapping",
    "excluded",
)

#: classic detectors work on the whole trace in memory: a lazy recording up to this many
#: samples (512 MB of float64, about 22 min at 50 kHz) is read in for them, a longer one refused
CLASSIC_MAX_LAZY_SAMPLES = 1 << 26
#: ``threshold="auto"``: the threshold is chosen for each recording (:mod:`.autothreshold`)
AUTO = "auto"
#: ... and inverted-trace peaks near detections above max(this, the model's threshold) are not noise
AUTO_REFERENCE = 0.9

_INT_COLUMNS = ("sample", "onset_sample", "peak_sample")
_BOOL_COLUMNS = ("overlapping", "excluded")

# model metadata keys that supply defaults for DetectSettings fields
_METADATA_KEYS = metadata_keys()  # setting -> the model-metadata keys that may supply it


@dataclass(frozen=True)
class DetectSettings:
    """Every setting of :func:`detect`, validated in one place.

    Parameters
    ----------
    model
        Short name of a bundled model or a model file path.
    window_size
        Model window in samples of the recording (>= 30).
    stride
        Samples between successive model windows (1 .. window_size); ``None`` ->
        ``round(window_size / 30)`` as miniML.
    threshold
        Minimum prediction peak, in (0, 1); ``"auto"``: chosen for each recording from the
        recording and its inverse (:mod:`minidet.detection.autothreshold`; it scores the
        recording twice); ``None`` -> the model's (``"auto"`` for a model with
        ``auto_threshold``, 0.5 if it has none).
    event_direction
        ``"negative"`` or ``"positive"``: the events' direction in the recording.
    training_direction
        Direction of the events the model was trained on; ``None`` -> the model's.
    resample
        Resample so that ``window_size`` becomes the model's 600 samples (miniML's
        ``resample_to_600``).
    convolve_win
        Hann window (samples) of the analysis filter; 0 -> Butterworth low-pass at
        ``sampling_rate / filter_factor``.
    gradient_convolve_win
        Hann window smoothing the derivative; 0 = none; ``None`` -> ``2 * convolve_win``.
    filter_factor
        Low-pass cut-off divisor, only with ``convolve_win == 0`` (> 2).
    rel_prom_cutoff
        Relative prominence (0, 1] for a second steepest rise in one region to count as
        an overlapping event.
    peak_w
        Minimum prediction peak width in prediction steps (>= 1).
    smoothing_steps
        Moving average of the prediction over this many prediction steps before its
        peaks are found (>= 1; 1 = none, as miniML). A model may carry its own.
    peak_prominence
        Minimum prominence of a prediction peak, in (0, 1]; ``None`` -> ``threshold``
        (miniML). A model may carry its own.
    batch_size
        Windows per forward pass (>= 1); 128 keeps memory flat on a CPU (512 held ~0.5 GB more for no gain).
    device
        ``"auto"``, ``"cpu"``, ``"cuda"``, ``"cuda:N"`` or ``"mps"``.
    kinetics_method
        How amplitude, rise time, half decay and decay tau are measured: ``"fit"`` (a
        rise-and-decay fit to the unfiltered trace around each event, independent of the
        analysis filter ``convolve_win`` that places the events) or ``"filtered"``
        (miniML's rules on the ``convolve_win``-filtered trace); see
        :class:`~minidet.measure.kinetics.MeasureSettings`.
    auto_inverted_s
        Seconds of the inverted recording that ``threshold="auto"`` scores first (pieces of
        :data:`~minidet.detection.autothreshold.PIECE_S` spread evenly over the recording);
        more, doubling, until the choice is settled
        (:func:`~minidet.detection.autothreshold.choose_threshold_sampled`). 0, or a recording
        not longer: all of it at once.
    predict_mode
        ``"fast"``: the network scores coarse windows and refines around any that score
        above 0.002 (same events, a fraction of the work); ``"full"``: every window, as
        miniML. See :mod:`minidet.detection.predict`.
    """

    model: str = default("model")
    window_size: int = default("window_size")
    stride: int | None = default("stride")
    threshold: float | str | None = default("threshold")
    event_direction: str = default("event_direction")
    training_direction: str | None = default("training_direction")
    resample: bool = default("resample")
    convolve_win: int = default("convolve_win")
    gradient_convolve_win: int | None = default("gradient_convolve_win")
    filter_factor: float = default("filter_factor")
    rel_prom_cutoff: float = default("rel_prom_cutoff")
    peak_w: int = default("peak_w")
    smoothing_steps: int = default("smoothing_steps")
    peak_prominence: float | None = default("peak_prominence")
    batch_size: int = default("batch_size")
    device: str = default("device")
    predict_mode: str = default("predict_mode")
    auto_inverted_s: float = default("auto_inverted_s")
    kinetics_method: str = default("kinetics_method")

    def __post_init__(self) -> None:
        check_fields(self)  # every field is declared in minidet.params
        if self.stride is not None and self.stride > self.window_size:
            raise ParameterError(
                f"stride must be an integer from 1 to window_size ({self.window_size}) samples or None, got {self.stride!r}"
            )

    # ------------------------------------------------------------------ derived
    @property
    def stride_samples(self) -> int:
        """The stride in samples of the recording (resolved default)."""
        return int(self.stride) if self.stride is not None else default_stride(self.window_size)

    @property
    def prediction_step(self) -> float:
        """Samples of the recording between prediction values before interpolation:
        the stride after resampling to 600-sample windows, mapped back (miniML)."""
        factor = 600 / self.window_size if self.resample else 1.0
        return max(1, round(self.stride_samples * factor)) / factor

    def locate_settings(self) -> LocateSettings:
        if self.threshold == AUTO:
            raise ParameterError("threshold='auto' is chosen by detect(); these settings hold no threshold yet")
        return LocateSettings(
            window_size=int(self.window_size),
            threshold=float(self.threshold if self.threshold is not None else 0.5),
            peak_w=int(self.peak_w),
            stride=self.prediction_step,
            convolve_win=int(self.convolve_win),
            gradient_convolve_win=self.gradient_convolve_win,
            filter_factor=float(self.filter_factor),
            rel_prom_cutoff=float(self.rel_prom_cutoff),
            event_direction=self.event_direction,
            smoothing_steps=int(self.smoothing_steps),
            peak_prominence=None if self.peak_prominence is None else float(self.peak_prominence),
        )

    def measure_settings(self) -> MeasureSettings:
        return MeasureSettings(
            window_size=int(self.window_size),
            convolve_win=int(self.convolve_win),
            filter_factor=float(self.filter_factor),
            event_direction=self.event_direction,
            kinetics_method=self.kinetics_method,
        )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def field_names(cls) -> tuple[str, ...]:
        return tuple(f.name for f in dataclasses.fields(cls))


def _metadata_dict(model: Any) -> dict[str, Any]:
    meta = getattr(model, "metadata", None)
    if meta is None:
        return {}
    if isinstance(meta, dict):
        return dict(meta)
    if dataclasses.is_dataclass(meta):
        return asdict(meta)
    to_dict = getattr(meta, "to_dict", None)
    if callable(to_dict):
        return dict(to_dict())
    return dict(vars(meta))


def resolve_settings(
    settings: DetectSettings | None, metadata: dict[str, Any], overrides: dict[str, Any], model_name: str | None
) -> DetectSettings:
    """Settings actually used: defaults < model metadata < ``settings`` < ``overrides``.

    Without ``settings`` the model's metadata supplies window size, threshold,
    directions, stride, resampling and filter windows; with ``settings`` its values are
    taken as given and the metadata only fills what it leaves ``None``. The result has
    ``threshold``, ``training_direction``, ``stride`` and ``gradient_convolve_win``
    filled in.
    """
    names = DetectSettings.field_names()
    unknown = sorted(set(overrides) - set(names))
    if unknown:
        raise ParameterError(f"unknown setting(s) {unknown}; allowed: {', '.join(names)}")
    values: dict[str, Any] = {}
    meta_values: dict[str, Any] = {}
    for name, keys in _METADATA_KEYS.items():
        for key in keys:
            if metadata.get(key) is not None:
                meta_values[name] = metadata[key]
                break
    if metadata.get("auto_threshold"):
        meta_values["threshold"] = AUTO
    if settings is None:
        values.update(meta_values)
        if model_name is not None:
            values["model"] = model_name
    else:
        values.update(settings.to_dict())
        for name in ("threshold", "training_direction", "stride", "gradient_convolve_win", "peak_prominence"):
            if values.get(name) is None and name in meta_values:
                values[name] = meta_values[name]
    values.update(overrides)
    # the model's stride belongs to the model's window: at another window size (and no
    # stride given) the stride is miniML's round(window_size / 30)
    explicit_stride = "stride" in overrides or (settings is not None and settings.stride is not None)
    if not explicit_stride and values.get("window_size") != meta_values.get("window_size"):
        values["stride"] = None
    # metadata may carry numpy / float types for integer fields
    for name in integer_settings():
        v = values.get(name)
        if isinstance(v, (float, np.floating, np.integer)) and not isinstance(v, bool) and float(v).is_integer():
            values[name] = int(v)
    base = DetectSettings(**{k: v for k, v in values.items() if k in names})
    filled = {
        "threshold": base.threshold if base.threshold is not None else 0.5,
        "training_direction": base.training_direction or "negative",
        "stride": base.stride_samples,
        "gradient_convolve_win": (
            base.gradient_convolve_win if base.gradient_convolve_win is not None else 2 * base.convolve_win
        ),
    }
    return dataclasses.replace(base, **filled)


def empty_events() -> pd.DataFrame:
    """An events table with no rows and the right columns and dtypes."""
    data: dict[str, Any] = {}
    for col in EVENT_COLUMNS:
        if col in _INT_COLUMNS:
            data[col] = np.zeros(0, np.int64)
        elif col in _BOOL_COLUMNS:
            data[col] = np.zeros(0, bool)
        else:
            data[col] = np.zeros(0, np.float64)
    return pd.DataFrame(data, columns=list(EVENT_COLUMNS))


def _events_table(recording: Recording, positions: np.ndarray, scores: np.ndarray, kinetics: pd.DataFrame,
                  window_size: int) -> pd.DataFrame:
    fs = recording.sampling_rate
    if positions.size == 0:
        return empty_events()

    def times(samples: np.ndarray) -> np.ndarray:
        s = np.asarray(samples, dtype=np.float64)
        return np.where(s >= 0, s / fs, np.nan)

    table = pd.DataFrame(
        {
            "sample": positions.astype(np.int64),
            "time_s": positions / fs,
            "score": scores.astype(np.float64),
            "onset_sample": kinetics["onset_sample"].to_numpy(np.int64),
            "onset_time_s": times(kinetics["onset_sample"].to_numpy()),
            "peak_sample": kinetics["peak_sample"].to_numpy(np.int64),
            "peak_time_s": times(kinetics["peak_sample"].to_numpy()),
            "baseline": kinetics["baseline"].to_numpy(np.float64),
            "amplitude": kinetics["amplitude"].to_numpy(np.float64),
            "rise_time_s": kinetics["rise_time_s"].to_numpy(np.float64),
            "half_decay_s": kinetics["half_decay_s"].to_numpy(np.float64),
            "half_width_s": kinetics["half_width_s"].to_numpy(np.float64),
            "charge": kinetics["charge"].to_numpy(np.float64),
            "decay_tau_s": kinetics["decay_tau_s"].to_numpy(np.float64),
            "overlapping": ~non_overlapping(positions, window_size),
            "excluded": np.zeros(positions.size, bool),
        },
        columns=list(EVENT_COLUMNS),
    )
    return table


@dataclass(frozen=True, eq=False)
class DetectionResult:
    """Events found in one recording, their measurements, and how they were found.

    Attributes
    ----------
    recording
        The analysed recording.
    settings
        The settings actually used (model defaults filled in).
    model_metadata
        The model's metadata (name, window size, threshold, ...).
    prediction
        Model scores on the recording's sample grid (index = start of a model window;
        about one window shorter than the recording, as miniML's), or ``None`` (classic
        methods). A 1-D float array, or -- when :func:`detect` ran the model, or was given
        one -- a :class:`~minidet.recording.LazyTrace` whose values are computed from the
        per-window scores when read: slice it (``prediction[a:b]``) or walk it in pieces
        (:func:`~minidet.recording.iter_chunks`); ``np.asarray(prediction)`` makes the
        whole trace-sized float64 array (1.4 GB for an hour at 50 kHz).
    events_all
        One row per detected event, columns :data:`EVENT_COLUMNS`, index 0..n-1; rows
        removed by hand have ``excluded`` True.
    info
        Intermediate values worth reporting (``gradient_threshold`` in unit/s,
        ``n_regions`` prediction peaks above threshold, ``threshold_source``: ``"given"``,
        ``"model"`` or ``"default"``, and with ``threshold="auto"`` ``auto_threshold``: the
        chosen threshold and the table it was chosen from).

    Excluding events (:meth:`exclude`) changes what the statistics, the average event and
    the ``overlapping`` flags are computed from; the other per-event measurements keep the
    values they got at detection, with all detected events as neighbours (as miniML's
    ``delete_events``).
    """

    recording: Recording
    settings: DetectSettings
    model_metadata: dict = field(default_factory=dict)
    prediction: np.ndarray | LazyTrace | None = None
    events_all: pd.DataFrame = field(default_factory=empty_events)
    info: dict = field(default_factory=dict)

    # ------------------------------------------------------------------ tables
    @property
    def events(self) -> pd.DataFrame:
        """The kept events (``events_all`` without excluded rows; index = position in events_all)."""
        return self.events_all[~self.events_all["excluded"].to_numpy(bool)].copy()

    @property
    def count(self) -> int:
        return int((~self.events_all["excluded"].to_numpy(bool)).sum())

    @cached_property
    def summary(self) -> dict[str, Any]:
        """Statistics of the kept events: ``count``, ``duration_s``, ``frequency_hz``,
        ``<measure>_<mean|median|sd|cv>`` for amplitude, rise_time_s, half_decay_s,
        half_width_s, charge, score and interval_s, ``tau_decay_s`` of the average
        event, ``n_average`` (events in it) and ``unit``."""
        kept = self.events
        mask = average_mask(kept["sample"].to_numpy(), self.settings.window_size)
        _, avg = self.average_event()
        tau = fit_decay_tau(
            avg,
            self.recording.sampling_rate,
            self.settings.window_size,
            int(mask.sum()),
            direction_sign(self.settings.event_direction),
        ) if len(kept) else math.nan
        out = summarize(kept, self.recording.duration_s, tau_decay_s=tau, n_average=int(mask.sum()))
        out["unit"] = self.recording.unit
        return out

    # ------------------------------------------------------------------ editing
    def _check_indices(self, indices: Iterable[int]) -> np.ndarray:
        idx = np.asarray(list(indices) if not isinstance(indices, (int, np.integer)) else [indices])
        if idx.size == 0:
            return idx.astype(np.int64)
        if idx.dtype == bool or not np.issubdtype(idx.dtype, np.integer):
            raise ParameterError(f"event indices must be integers, got {idx.tolist()!r}")
        n = len(self.events_all)
        bad = idx[(idx < 0) | (idx >= n)]
        if bad.size:
            raise ParameterError(f"event indices {bad.tolist()} do not exist: there are {n} events, numbered 0-{n - 1}"
                                 if n else f"event indices {bad.tolist()} do not exist: no events were detected, "
                                 "so none can be excluded")
        return idx.astype(np.int64)

    def _with_excluded(self, idx: np.ndarray, value: bool) -> "DetectionResult":
        table = self.events_all.copy()
        excluded = table["excluded"].to_numpy(bool).copy()
        excluded[idx] = value
        table["excluded"] = excluded
        # overlap is judged among the kept events (an excluded false positive no longer
        # makes its neighbour overlapping); excluded rows keep their last value
        kept = ~excluded
        overlapping = table["overlapping"].to_numpy(bool).copy()
        overlapping[kept] = ~non_overlapping(table["sample"].to_numpy()[kept], self.settings.window_size)
        table["overlapping"] = overlapping
        return dataclasses.replace(self, events_all=table)

    def exclude(self, indices: Iterable[int] | int) -> "DetectionResult":
        """A new result with events ``indices`` (positions in ``events_all``) excluded."""
        return self._with_excluded(self._check_indices(indices), True)

    def restore(self, indices: Iterable[int] | int) -> "DetectionResult":
        """A new result with events ``indices`` (positions in ``events_all``) kept again."""
        return self._with_excluded(self._check_indices(indices), False)

    # ------------------------------------------------------------------ waveforms
    def _default_window(self) -> tuple[int, int]:
        pre = int(self.settings.window_size) // 3
        return pre, int(self.settings.window_size) + pre

    def waveforms(self, pre_s: float | None = None, post_s: float | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Raw trace around every kept event (rows as :attr:`events`), baseline subtracted.

        Returns ``(time_s, waves)``: time relative to the event position (steepest rise),
        from ``-pre_s`` to ``post_s`` (defaults: ``window_size // 3`` samples before,
        ``window_size + window_size // 3`` after, miniML's event window); ``waves`` in the
        recording's unit and polarity (negative events point down), NaN outside the
        recording.
        """
        fs = self.recording.sampling_rate
        pre, post = self._default_window()
        for name, value in (("pre_s", pre_s), ("post_s", post_s)):
            if value is not None and not (isinstance(value, (int, float)) and math.isfinite(value) and value >= 0):
                raise ParameterError(f"{name} must be a non-negative number of seconds, got {value!r}")
        if pre_s is not None:
            pre = int(round(pre_s * fs))
        if post_s is not None:
            post = max(1, int(round(post_s * fs)))
        kept = self.events
        return cut_waveforms(self.recording, kept["sample"].to_numpy(), kept["baseline"].to_numpy(), pre, post)

    def average_event(self) -> tuple[np.ndarray, np.ndarray]:
        """``(time_s, mean waveform)`` of the kept events that overlap no other (all kept
        events when every one overlaps), on the default window of :meth:`waveforms`."""
        pre, post = self._default_window()
        kept = self.events
        mask = average_mask(kept["sample"].to_numpy(), self.settings.window_size)
        # summed in batches (an hour's events need not be held as waveforms at once)
        return mean_waveform(self.recording, kept["sample"].to_numpy()[mask], kept["baseline"].to_numpy()[mask],
                             pre, post)

    def __repr__(self) -> str:
        return (
            f"DetectionResult({self.count} events kept of {len(self.events_all)}, "
            f"model={self.settings.model!r}, recording={self.recording!r})"
        )


# ---------------------------------------------------------------------------- detect
def _load_model(model: Any):
    if not isinstance(model, str):
        return model
    from ..model import load_model  # lazy: torch only when a model is needed

    return load_model(model)


#: progress-bar names of the two passes (CLI: tqdm's desc; web app: the job's stage)
PREDICT_LABEL = "predict"
INVERTED_LABEL = "auto threshold (inverted)"


def _call_predict(recording: Recording, model: Any, settings: DetectSettings, progress: bool,
                  label: str = PREDICT_LABEL, predictor: Any = None, spans: Any = None) -> Any:
    """One pass of ``predictor`` (:func:`minidet.detection.predict.predict` unless given) with
    every prediction setting of ``settings``; a predictor takes them all (``**kwargs`` at least),
    and ``spans=`` where the inverted pass of ``threshold="auto"`` is sampled."""
    if predictor is None:
        from .predict import predict as predictor

    extra = {} if spans is None else {"spans": spans}
    return predictor(recording, model, window_size=settings.window_size, stride=settings.stride,
                     event_direction=settings.event_direction, training_direction=settings.training_direction,
                     resample=settings.resample, batch_size=settings.batch_size, device=settings.device,
                     progress=progress, mode=settings.predict_mode, progress_label=label, **extra)


def _auto_threshold(recording: Recording, model: Any, settings: DetectSettings, metadata: dict[str, Any],
                    prediction: Any, progress: bool, predictor: Any = None) -> tuple[DetectSettings, dict[str, Any]]:
    """Score the inverted recording (pieces of it, as far as the choice needs, when it is
    longer than ``auto_inverted_s``) and choose the threshold (see :mod:`.autothreshold`)."""
    from .autothreshold import AUTO_GRID, PIECE_MARGIN_WINDOWS, _peaks, choose_threshold, choose_threshold_sampled

    opposite = dataclasses.replace(settings, event_direction="positive" if settings.event_direction == "negative"
                                   else "negative")
    reference = max(AUTO_REFERENCE, float(metadata.get("threshold") or 0.0))
    placeholder = dataclasses.replace(settings, threshold=reference).locate_settings()
    window = int(settings.window_size)
    first_s = float(settings.auto_inverted_s)
    screens = []  # what the model's screen did in each inverted pass (if it has one)
    if not first_s or first_s >= recording.duration_s:
        raw = _call_predict(recording, model, opposite, progress, INVERTED_LABEL, predictor)
        screens.append(getattr(raw, "screen", None))
        mirror = _prediction_trace(raw)
        chosen = choose_threshold(prediction, mirror, placeholder, recording.sampling_rate, reference)
    else:
        margin = PIECE_MARGIN_WINDOWS * window
        lowest = float(min(AUTO_GRID))

        def mirror_peaks(pieces):
            spans = [(max(0, a - margin), b + margin) for a, b in pieces]
            scored = _call_predict(recording, model, opposite, progress, INVERTED_LABEL, predictor, spans)
            screens.append(getattr(scored, "screen", None))
            positions, heights = [], []
            trace = _prediction_trace(scored)
            for (a, b), (s0, s1) in zip(pieces, spans):
                p, h = _peaks(np.asarray(trace[s0:s1], dtype=np.float32), placeholder, lowest)
                p = p + s0
                keep = (p >= a) & (p < b)
                positions.append(p[keep])
                heights.append(h[keep])
            return np.concatenate(positions), np.concatenate(heights)

        chosen = choose_threshold_sampled(prediction, mirror_peaks, placeholder, recording.sampling_rate,
                                          reference, first_s, window)
    info = {**chosen.to_dict(), "reference": reference}
    screens = [x for x in screens if x]
    if screens:
        info["inverted_screen"] = {"kept": float(np.mean([x["kept"] for x in screens])),
                                   "scored": float(np.mean([x["scored"] for x in screens])),
                                   "fallback": any(x["fallback"] for x in screens)}
    return dataclasses.replace(settings, threshold=chosen.threshold), info


def _threshold_source(settings: DetectSettings | None, metadata: dict[str, Any], overrides: dict[str, Any]) -> str:
    """Where the threshold of :func:`resolve_settings` came from: ``"given"`` (an override or
    ``settings``), ``"model"`` (the model's metadata: a number, or ``"auto"`` for a model with
    ``auto_threshold``) or ``"default"`` (0.5: neither gave one)."""
    if overrides.get("threshold") is not None or (settings is not None and settings.threshold is not None):
        return "given"
    if metadata.get("auto_threshold") or any(metadata.get(k) is not None for k in _METADATA_KEYS["threshold"]):
        return "model"
    return "default"


def _screen_inexact(model: Any, settings: DetectSettings) -> bool:
    """Whether a fixed threshold lies below what the model's screen keeps exact (fast mode)."""
    from .screen import EXACT_ABOVE

    if getattr(model, "screen", None) is None or settings.predict_mode != "fast" or settings.threshold == AUTO:
        return False
    return float(settings.threshold) < EXACT_ABOVE


def _prediction_trace(prediction: Any) -> np.ndarray | LazyTrace:
    """The full-grid prediction as an array or a lazy trace, never a new trace-sized copy
    of a lazy one: a :class:`~minidet.detection.predict.Prediction` gives its lazy
    ``trace()`` when it has one (its values otherwise)."""
    if isinstance(prediction, (np.ndarray, LazyTrace)):
        return prediction
    trace = getattr(prediction, "trace", None)
    if callable(trace):
        return trace()
    return np.asarray(prediction)


def detect(
    recording: Recording,
    model: Any = DEFAULT_MODEL,
    *,
    settings: DetectSettings | None = None,
    prediction: np.ndarray | None = None,
    progress: bool = False,
    method: str = "miniml",
    method_settings: Any = None,
    predictor: Any = None,
    **overrides: Any,
) -> DetectionResult:
    """Find and measure the events of one recording.

    Parameters
    ----------
    recording
        The recording (samples in its unit, sampling rate in Hz).
    model
        Bundled model name, model file path, or a loaded model (with ``.metadata``).
    settings
        :class:`DetectSettings`; ``None`` -> defaults with the model's metadata.
    prediction
        A prediction trace already computed for this recording (on its sample grid): an
        array, a :class:`~minidet.recording.LazyTrace` or a
        :class:`~minidet.detection.predict.Prediction`; the model is then only asked for
        its metadata, and may be unavailable.
    progress
        Show a progress bar during prediction.
    method
        ``"miniml"`` (the model) or a classic detector of :data:`minidet.classic.METHODS`
        (``"template"``, ``"deconvolution"``, ``"threshold"``): its positions are measured
        by the same kinetics code, its criterion is the score, and no model is loaded.
    method_settings
        The classic method's settings (object or dict; its ``event_direction`` defaults
        to ``event_direction``).
    predictor
        What scores the windows: a callable with the signature of
        :func:`minidet.detection.predict.predict` (``predictor(recording, model, window_size=...,
        stride=..., event_direction=..., training_direction=..., resample=..., batch_size=...,
        device=..., progress=..., mode=..., progress_label=...)``) returning a prediction;
        ``None`` -> ``predict``. It is called once, twice with ``threshold="auto"``.
    **overrides
        Any :class:`DetectSettings` field, overriding ``settings`` and the model.

    Returns
    -------
    DetectionResult
        A recording without events gives empty tables and a zero count. Events whose
        analysis window (``window_size // 3`` before, ``window_size + window_size // 3``
        after the steepest rise) would leave the recording are not reported, and
        prediction peaks within ``window_size`` of the start are ignored (miniML's
        border rule).
    """
    if not isinstance(recording, Recording):
        raise ParameterError(f"recording must be a minidet Recording, got {type(recording).__name__}")
    recording.check_finite()
    if method != "miniml":
        return _detect_classic(recording, method, method_settings, settings, overrides)
    try:
        model_obj = _load_model(model)
    except Exception as exc:  # noqa: BLE001 - only tolerated when no prediction is needed
        if prediction is None:
            raise
        log.warning("model %r unavailable (%s); using settings without its metadata", model, exc)
        model_obj = None
    metadata = _metadata_dict(model_obj) if model_obj is not None else {}
    if isinstance(model, str):
        model_name = model
    else:
        name = metadata.get("name")
        model_name = name if isinstance(name, str) and name.strip() else None
    if model_name is not None and settings is not None and "model" not in overrides and model_name != settings.model:
        overrides = {**overrides, "model": model_name}
    resolved = resolve_settings(settings, metadata, overrides, model_name)
    threshold_source = _threshold_source(settings, metadata, overrides)
    if resolved.threshold == AUTO and prediction is not None:
        raise ParameterError("threshold='auto' scores the recording and its inverse itself; with a given "
                             "prediction, pass a number as threshold")

    noise_sd = None
    auto = None
    screened = None
    if prediction is None and _screen_inexact(model_obj, resolved):
        # the screen keeps every prediction peak above EXACT_ABOVE exact, not those below it
        resolved = dataclasses.replace(resolved, predict_mode="full")
    if prediction is None:
        raw = _call_predict(recording, model_obj, resolved, progress, predictor=predictor)
        noise_sd = getattr(raw, "noise_sd", None)
        screened = getattr(raw, "screen", None)
        prediction = _prediction_trace(raw)
        if resolved.threshold == AUTO:
            resolved, auto = _auto_threshold(recording, model_obj, resolved, metadata, prediction, progress,
                                                 predictor)
    else:
        prediction = _prediction_trace(prediction)
        if prediction.ndim != 1 or len(prediction) > recording.n_samples:
            raise ParameterError(
                f"prediction must be 1-D and no longer than the recording ({recording.n_samples} samples), "
                f"got shape {prediction.shape}"
            )

    located = locate_events(recording, prediction, resolved.locate_settings())
    kinetics = measure_events(recording, located.positions, resolved.measure_settings())
    table = _events_table(recording, located.positions, located.scores, kinetics, resolved.window_size)
    info = {"gradient_threshold": located.gradient_threshold, "n_regions": len(located.regions),
            "threshold_source": threshold_source}
    if noise_sd is not None:  # a noise-scaled model: the SD its windows were divided by
        info["noise_sd"] = float(noise_sd)
    if auto is not None:  # threshold="auto": what it chose, and from what
        info["auto_threshold"] = auto
    if screened is not None:  # the model's screen chose the windows the model scored (detection/screen.py)
        info["screen"] = screened
    return DetectionResult(
        recording=recording,
        settings=resolved,
        model_metadata=metadata,
        prediction=prediction,
        events_all=table,
        info=info,
    )


def _detect_classic(recording: Recording, method: str, method_settings: Any, settings: DetectSettings | None,
                    overrides: dict[str, Any]) -> DetectionResult:
    """``detect(method=...)`` with a classic detector: its positions, the same measurements."""
    from ..classic import detect_events, make_settings

    resolved = resolve_settings(settings, {}, overrides, None)
    original = recording  # the result keeps the recording as given (lazy stays lazy)
    if recording.is_lazy:
        if recording.n_samples > CLASSIC_MAX_LAZY_SAMPLES:
            raise ParameterError(
                f"the classic method {method!r} needs the whole trace in memory, and this recording is read "
                f"on demand and long ({recording.n_samples} samples, {recording.duration_s:.0f} s; at most "
                f"{CLASSIC_MAX_LAZY_SAMPLES} samples are read in for it); use the model (method 'miniml') "
                "or cut the recording into shorter pieces"
            )
        recording = recording.in_memory()
    if method_settings is None or isinstance(method_settings, dict):
        method_settings = make_settings(method, {"event_direction": resolved.event_direction,
                                                 **(method_settings or {})})
    found = detect_events(recording, method, method_settings)
    measure = resolved.measure_settings()
    # the model path's border rule: only events whose analysis window fits are reported
    fits = (found.positions >= measure.add_points) & (found.positions + measure.window_length <= recording.n_samples)
    positions, scores = found.positions[fits], found.criterion[fits]
    kinetics = measure_events(recording, positions, measure)
    table = _events_table(recording, positions, scores, kinetics, resolved.window_size)
    info = {"method": method, "method_settings": asdict(found.settings), "criterion_threshold": found.threshold,
            **found.info}
    # the classic detector's settings travel with the results as a model's metadata does
    return DetectionResult(recording=original, settings=resolved,
                           model_metadata={"name": method, "method_settings": info["method_settings"]},
                           prediction=None, events_all=table, info=info)
