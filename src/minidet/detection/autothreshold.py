"""A threshold chosen for each recording from the recording itself (``threshold="auto"``).

How many false positives a classifier makes at a given threshold depends on the recording:
fast events in noise whose excursions look like them need a high threshold, slow events in
smooth noise a lower one. One fixed threshold cannot serve both, so minidet can measure it:

1. The prediction of the trace gives ``n(t)`` prediction peaks (search regions) above each
   threshold ``t`` of :data:`AUTO_GRID`.
2. The prediction of the *inverted* trace gives ``m(t)``: peaks that can only be noise (and
   the mirror images of non-synaptic transients), since the events now point the other way.
   Noise is symmetric enough that ``m(t)`` estimates the false positives among ``n(t)``.
   Peaks of the inverted trace within ``EXCLUDE_BEFORE_S`` before to ``EXCLUDE_AFTER_S``
   after a confident detection (above ``reference``) are left out -- an event's own decay
   seen upside down is not noise -- and the count is scaled up for the time left out.
3. With ``tp(t) = max(n(t) - m(t), 0)`` and the number of events estimated as
   ``N = max_t tp(t)``, the estimated F1 is ``2 tp(t) / (n(t) + N)``. The highest threshold
   whose estimate is within one event's worth (``1 / N``) of the best wins: a lower threshold
   has to gain more than the graininess of the estimate (it cannot see false positives that
   sit on events, such as a second detection on a decay).

It costs a second pass of the network (the inverted trace). The chosen threshold and the
whole table are reported in the result's ``info["auto_threshold"]``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace

import numpy as np

from .locate import LocateSettings, candidate_regions, smoothed_prediction

__all__ = ["AUTO_GRID", "AutoThreshold", "choose_threshold", "estimated_precision_recall", "select_threshold"]

#: thresholds the rule chooses from. It reaches 0.9999 because a network can be sure of
#: noise it was not trained on: the gc-robust of commit 8cd82ff (patch-clamp-like training
#: spectra only) scored 1/f-heavy noise above 0.99; its clean F1 on the accuracy benchmark's
#: pink noise was 0.81 with the grid ending at 0.99 and 0.98 with these steps above it
AUTO_GRID = (0.5, 0.6, 0.7, 0.75, 0.8, 0.85, 0.9, 0.93, 0.95, 0.97, 0.98, 0.99,
             0.995, 0.998, 0.999, 0.9995, 0.9998, 0.9999)
#: inverted-trace peaks this long before / after a confident detection are not counted
EXCLUDE_BEFORE_S = 5e-3
EXCLUDE_AFTER_S = 10e-3
#: at most this fraction of the recording is left out (the count is scaled by 1 / (1 - it))
MAX_EXCLUDED = 0.9
#: a lower threshold must raise the estimated F1 by more than this many events' worth (1 / N each)
SLACK_EVENTS = 1.0


@dataclass(frozen=True)
class AutoThreshold:
    """The chosen threshold and the figures it was chosen from (one per threshold of ``grid``)."""

    threshold: float
    grid: tuple[float, ...]
    peaks: tuple[int, ...]
    noise_peaks: tuple[float, ...]
    f1_estimate: tuple[float, ...]
    excluded_fraction: float

    def to_dict(self) -> dict:
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(self).items()}


def _peaks(prediction, settings: LocateSettings, lowest: float) -> tuple[np.ndarray, np.ndarray]:
    pred = smoothed_prediction(prediction, settings.smoothing_samples)
    regions = candidate_regions(pred, replace(settings, threshold=lowest))
    return regions.starts.astype(np.int64), np.asarray(regions.scores, dtype=np.float64)


def select_threshold(peaks, noise_peaks) -> tuple[int, np.ndarray]:
    """The index of the chosen threshold and the estimated F1 at each, from the number of
    prediction peaks ``n(t)`` and of noise peaks ``m(t)`` (inverted trace) at each threshold
    of a grid in increasing order (step 3 of the module docstring). Counts pooled over
    several recordings choose one threshold for all of them."""
    peaks = np.asarray(peaks, dtype=np.float64)
    noise = np.asarray(noise_peaks, dtype=np.float64)
    tp = np.maximum(peaks - noise, 0.0)
    n_events = max(float(tp.max()), 1.0)
    f1 = 2.0 * tp / (peaks + n_events)
    # the highest threshold within one event's worth of F1 (1 / N) of the best: a lower
    # threshold has to gain more than the estimate's own graininess
    best = float(f1.max())
    k = max(i for i in range(f1.size) if f1[i] >= best - SLACK_EVENTS / n_events - 1e-12)
    return k, f1


def estimated_precision_recall(peaks, noise_peaks) -> tuple[np.ndarray, np.ndarray]:
    """Estimated precision ``tp / n`` and recall ``tp / N`` at each threshold, with
    ``tp = n - m`` and ``N = max tp`` (the same estimate as the F1 of :func:`select_threshold`)."""
    peaks = np.asarray(peaks, dtype=np.float64)
    tp = np.maximum(peaks - np.asarray(noise_peaks, dtype=np.float64), 0.0)
    n_events = max(float(tp.max()), 1.0)
    return np.divide(tp, peaks, out=np.ones_like(tp), where=peaks > 0), tp / n_events


def choose_threshold(prediction, mirror_prediction, settings: LocateSettings, sampling_rate: float,
                     reference: float, grid: tuple[float, ...] = AUTO_GRID) -> AutoThreshold:
    """Pick the threshold of ``grid`` with the best estimated F1 (see the module docstring).

    Parameters
    ----------
    prediction, mirror_prediction
        Prediction traces (arrays or lazy traces on the recording's grid) of the recording and
        of the recording inverted.
    settings
        The locator's settings (peak prominence, width, smoothing, stride); its threshold is
        not used.
    sampling_rate
        Of the recording (Hz).
    reference
        Detections above it count as confident: inverted-trace peaks around them are left out.
    """
    lowest = float(min(grid))
    pos, height = _peaks(prediction, settings, lowest)
    mpos, mheight = _peaks(mirror_prediction, settings, lowest)
    n_samples = len(prediction)
    before = int(round(EXCLUDE_BEFORE_S * sampling_rate))
    after = int(round(EXCLUDE_AFTER_S * sampling_rate))
    ref = np.sort(pos[height >= reference])
    near = np.zeros(mpos.size, dtype=bool)
    if ref.size and mpos.size:
        # a mirror peak at p is near a detection at r when r - before <= p <= r + after,
        # i.e. the first r >= p - after is <= p + before
        i = np.searchsorted(ref, mpos - after, side="left")
        has = i < ref.size
        near[has] = ref[i[has]] <= mpos[has] + before
    covered = min(MAX_EXCLUDED, ref.size * (before + after) / max(n_samples, 1))
    peaks = np.array([(height >= t).sum() for t in grid], dtype=np.int64)
    noise = np.array([((mheight >= t) & ~near).sum() for t in grid], dtype=np.float64) / (1.0 - covered)
    k, f1 = select_threshold(peaks, noise)
    return AutoThreshold(threshold=float(grid[k]), grid=tuple(float(t) for t in grid),
                         peaks=tuple(int(v) for v in peaks), noise_peaks=tuple(round(float(v), 2) for v in noise),
                         f1_estimate=tuple(round(float(v), 4) for v in f1), excluded_fraction=round(covered, 4))
