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
   ``N = max_t tp(t)``, the estimated F1 is ``2 tp(t) / (n(t) + N)``.
4. The choice starts from a prior, the model's calibrated confident level (``reference``:
   0.98 for gc-robust), and moves only as far as the estimate demands: among the thresholds
   whose estimated F1 is within one event's worth (``1 / N``) of the best, the one closest to
   the prior (in logit) wins. Two limits, both measured on benchmarks/accuracy.py (issue 22):

   - never below :data:`FLOOR` (0.93, or the prior if lower). Below it the false positives
     the inverted trace cannot see -- a second detection on an event's decay, an inward
     transient, inward features of real noise -- outnumber the small events a lower
     threshold gains: the rule without a prior or floor chose 0.8-0.9 on 20/40 kHz,
     wideband, transients and miniML's real GC noise, and lost 0.02-0.03 F1 each time;
   - the prior, unchanged, when the inverted trace is not a noise model: at some threshold
     from 0.85 to the prior it has more peaks (``m(t)``) than the recording has peaks that
     are not confident (``n(t) - n(0.999)``), by more than :data:`MARGIN_SD` Poisson SDs.
     That happens when noise is not symmetric (outward blips, a skewed tail: mirrored, they
     look like events), and the estimate would push the threshold far too high (0.9998 on
     outward blips, F1 0.71-0.79 against 0.95-0.97 at the prior).

   Without a prior (:func:`select_threshold` with ``prior=None``, the pooled calibration of a
   fixed threshold) the highest threshold within ``1 / N`` of the best wins.

It costs a second pass of the network (the inverted trace). On a recording longer than
``auto_inverted_s`` (30 s by default) the pass starts with that many seconds of it, in pieces
of :data:`PIECE_S` spread evenly (:func:`inverted_pieces`), the noise counts scaled to the
whole, and scores more (doubling) only until the choice is settled: until the plausible
counts of the whole inverted recording lead to thresholds whose peaks agree with the one
chosen by an F1 of at least :data:`AGREEMENT` in all but :data:`RISK` of them
(:func:`choose_threshold_sampled`). The chosen threshold and the
whole table are reported in the result's ``info["auto_threshold"]``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace

import numpy as np
from scipy.special import logit

from .locate import LocateSettings, candidate_regions, smoothed_prediction

__all__ = ["AUTO_GRID", "AutoThreshold", "FLOOR", "PIECE_S", "choose_threshold", "estimated_precision_recall",
           "choose_threshold_sampled", "inverted_pieces", "mirror_inconsistent", "select_threshold"]

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
#: thresholds whose estimated F1 is within this many events' worth (1 / N each) of the best tie
SLACK_EVENTS = 1.0
#: the rule never goes below this (or below the prior, if that is lower); see the module docstring
FLOOR = 0.93
#: the inverted trace is checked against the recording's non-confident peaks from this threshold up
#: to the prior; "confident" is :data:`CONFIDENT` and above
CHECK_FROM = 0.85
CONFIDENT = 0.999
#: ... by more than this many Poisson SDs (sqrt of the spare peaks + 1). Measured on
#: benchmarks/accuracy.py (seeds 1-5, GC and pink noise): symmetric noise reaches at most 2.4,
#: skewed noise 6.1 and more, outward blips 73 and more
MARGIN_SD = 4.0
#: a sampled inverted pass (``auto_inverted_s``) scores pieces of this many seconds ...
PIECE_S = 5.0
#: ... each scored this many window lengths beyond both ends, its peaks counted only inside it
#: (a peak's region and prominence are then the whole trace's unless they reach further)
PIECE_MARGIN_WINDOWS = 2


@dataclass(frozen=True)
class AutoThreshold:
    """The chosen threshold and the figures it was chosen from (one per threshold of ``grid``)."""

    threshold: float
    grid: tuple[float, ...]
    peaks: tuple[int, ...]
    noise_peaks: tuple[float, ...]
    f1_estimate: tuple[float, ...]
    excluded_fraction: float
    #: the threshold the choice started from (the model's confident level), None: no prior
    prior: float | None = None
    #: why this threshold: "estimate" (moved from the prior by the estimated F1), "prior" (no
    #: threshold beat it by more than the slack) or "inverted trace inconsistent" (step 4)
    reason: str = "estimate"
    #: share of the recording whose inverted trace was scored (1: all; see :func:`inverted_pieces`)
    inverted_fraction: float = 1.0

    def to_dict(self) -> dict:
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(self).items()}


def _peaks(prediction, settings: LocateSettings, lowest: float) -> tuple[np.ndarray, np.ndarray]:
    pred = smoothed_prediction(prediction, settings.smoothing_samples)
    regions = candidate_regions(pred, replace(settings, threshold=lowest))
    return regions.starts.astype(np.int64), np.asarray(regions.scores, dtype=np.float64)


def inverted_pieces(n_samples: int, sampling_rate: float, window_size: int) -> list[tuple[int, int]]:
    """The recording cut into pieces of :data:`PIECE_S` (at least 100 windows; the last one takes
    the rest) as ``(start, stop)`` samples, in the order a sampled inverted pass scores them:
    bit-reversed, so that every prefix of the list is spread evenly over the recording."""
    n = int(n_samples)
    piece = max(int(round(PIECE_S * sampling_rate)), 100 * int(window_size))
    count = max(1, n // piece)
    bounds = [(i * piece, (i + 1) * piece if i < count - 1 else n) for i in range(count)]
    bits = max(1, (count - 1).bit_length())
    order = sorted(range(count), key=lambda i: int(format(i, f"0{bits}b")[::-1], 2))
    return [bounds[i] for i in order]


def mirror_inconsistent(grid, peaks, noise_peaks, prior: float, inverted_fraction: float = 1.0) -> bool:
    """True when the inverted trace cannot be the recording's noise (step 4 of the module
    docstring): at a threshold from :data:`CHECK_FROM` to ``prior`` it has more peaks than
    the recording has peaks below :data:`CONFIDENT`, by more than :data:`MARGIN_SD` Poisson SDs.
    ``noise_peaks`` counted on a sample (``inverted_fraction`` < 1) and scaled up vary more:
    the SD then includes the sample's (``noise * (1 / fraction - 1)`` more variance)."""
    grid = np.asarray(grid, dtype=np.float64)
    peaks = np.asarray(peaks, dtype=np.float64)
    noise = np.asarray(noise_peaks, dtype=np.float64)
    confident = peaks[int(np.argmin(np.abs(grid - CONFIDENT)))]
    spare = np.maximum(peaks - confident, 0.0)
    check = (grid >= CHECK_FROM - 1e-12) & (grid <= prior + 1e-12)
    variance = spare + 1.0 + noise * (1.0 / float(inverted_fraction) - 1.0)
    return bool(np.any(check & (noise > spare + MARGIN_SD * np.sqrt(variance))))


def select_threshold(peaks, noise_peaks, grid=AUTO_GRID, prior: float | None = None) -> tuple[int, np.ndarray]:
    """The index of the chosen threshold and the estimated F1 at each, from the number of
    prediction peaks ``n(t)`` and of noise peaks ``m(t)`` (inverted trace) at each threshold
    of ``grid`` (increasing). With ``prior`` (steps 3-4 of the module docstring): the
    threshold closest to it among those within one event's worth of the best estimated F1,
    not below :data:`FLOOR` (the caller checks :func:`mirror_inconsistent` first). Without:
    the highest such threshold. Counts pooled over several recordings choose one threshold
    for all of them."""
    peaks = np.asarray(peaks, dtype=np.float64)
    noise = np.asarray(noise_peaks, dtype=np.float64)
    grid = np.asarray(grid, dtype=np.float64)
    if not (peaks.size == noise.size == grid.size):
        raise ValueError(f"peaks, noise_peaks and grid differ in length ({peaks.size}, {noise.size}, {grid.size})")
    tp = np.maximum(peaks - noise, 0.0)
    n_events = max(float(tp.max()), 1.0)
    f1 = 2.0 * tp / (peaks + n_events)
    allowed = np.ones(grid.size, dtype=bool) if prior is None else grid >= min(FLOOR, float(prior)) - 1e-12
    best = float(f1[allowed].max())
    tied = np.flatnonzero(allowed & (f1 >= best - SLACK_EVENTS / n_events - 1e-12))
    if prior is None:
        return int(tied.max()), f1
    distance = np.abs(logit(grid[tied]) - logit(float(prior)))
    # closest to the prior; of two as close, the higher
    k = int(tied[np.lexsort((-grid[tied], distance))[0]])
    return k, f1


def estimated_precision_recall(peaks, noise_peaks) -> tuple[np.ndarray, np.ndarray]:
    """Estimated precision ``tp / n`` and recall ``tp / N`` at each threshold, with
    ``tp = n - m`` and ``N = max tp`` (the same estimate as the F1 of :func:`select_threshold`)."""
    peaks = np.asarray(peaks, dtype=np.float64)
    tp = np.maximum(peaks - np.asarray(noise_peaks, dtype=np.float64), 0.0)
    n_events = max(float(tp.max()), 1.0)
    return np.divide(tp, peaks, out=np.ones_like(tp), where=peaks > 0), tp / n_events


def choose_threshold(prediction, mirror_prediction, settings: LocateSettings, sampling_rate: float,
                     reference: float, grid: tuple[float, ...] = AUTO_GRID, *, use_prior: bool = True) -> AutoThreshold:
    """Pick a threshold of ``grid`` for this recording (see the module docstring).

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
        It is also the prior the choice starts from (step 4), a grid value or rounded to one.
    use_prior
        False: the rule without a prior, floor or consistency check (the highest threshold
        within one event's worth of the best estimate; minidet before issue 22).
    """
    lowest = float(min(grid))
    pos, height = _peaks(prediction, settings, lowest)
    mpos, mheight = _peaks(mirror_prediction, settings, lowest)
    table = _Table(pos, height, len(prediction), sampling_rate, reference, grid, use_prior)
    return table.result(mpos, mheight, 1.0)


def choose_threshold_sampled(prediction, mirror_peaks, settings: LocateSettings, sampling_rate: float,
                             reference: float, first_s: float, window_size: int,
                             grid: tuple[float, ...] = AUTO_GRID, seed: int = 0) -> AutoThreshold:
    """:func:`choose_threshold` with the inverted recording scored in pieces, only as far as
    the choice needs.

    ``mirror_peaks(pieces) -> (positions, heights)`` scores the inverted recording on those
    ``(start, stop)`` pieces (of :func:`inverted_pieces`) and returns its prediction peaks
    above ``min(grid)`` (region starts on the recording's grid, and scores) that start inside
    them. The first ``first_s`` seconds of pieces are scored, then as many again as are
    scored so far (doubling), until the choice is settled: the plausible counts of the whole
    inverted recording (each threshold band's unseen count drawn from a Poisson rate with a
    Jeffreys gamma posterior given its sampled count, :data:`DRAWS` draws) lead to choices
    whose prediction peaks agree with the choice made here (F1 of the two nested sets,
    ``2 min(n) / (n1 + n2)``) by at least :data:`AGREEMENT` in all but :data:`RISK` of the draws.
    The choice is then the sample's own one, or where that does not agree so, the allowed
    threshold that agrees best. A recording where the choice
    stays close scores all of it (the result is then :func:`choose_threshold`'s).
    """
    lowest = float(min(grid))
    pos, height = _peaks(prediction, settings, lowest)
    n_samples = len(prediction)
    table = _Table(pos, height, n_samples, sampling_rate, reference, grid, True)
    pieces = inverted_pieces(n_samples, sampling_rate, window_size)
    piece = pieces[0][1] - pieces[0][0]
    take = max(1, int(np.ceil(float(first_s) * sampling_rate / max(piece, 1) - 1e-9)))
    rng = np.random.default_rng(seed)
    found_pos, found_height, done, counted = [], [], 0, 0
    while True:
        batch = pieces[done:done + take]
        p, h = mirror_peaks(batch)
        found_pos.append(np.asarray(p, dtype=np.int64))
        found_height.append(np.asarray(h, dtype=np.float64))
        done += len(batch)
        counted += sum(b - a for a, b in batch)
        mpos, mheight = np.concatenate(found_pos), np.concatenate(found_height)
        if done >= len(pieces):
            return table.result(mpos, mheight, 1.0)
        fraction = counted / n_samples
        settled = table.settled(mpos, mheight, fraction, rng)
        if settled is not None:
            return table.result(mpos, mheight, fraction, k=settled)
        take = done


#: a sampled inverted pass stops when its choice's peaks agree with the whole pass's choice by
#: this F1 (the events a detection keeps, issue 20's bound) ...
AGREEMENT = 0.995
#: ... in all but this share of the plausible whole-pass counts ...
RISK = 0.01
#: ... of which this many are drawn
DRAWS = 400


class _Table:
    """The recording's side of the choice (its peaks, the confident ones, the prior); the
    inverted side is given to :meth:`result` and :meth:`settled`."""

    def __init__(self, pos, height, n_samples: int, sampling_rate: float, reference: float,
                 grid, use_prior: bool) -> None:
        self.grid = tuple(float(t) for t in grid)
        self.grid_arr = np.asarray(self.grid, dtype=np.float64)
        self.n_samples = int(n_samples)
        self.before = int(round(EXCLUDE_BEFORE_S * sampling_rate))
        self.after = int(round(EXCLUDE_AFTER_S * sampling_rate))
        self.ref = np.sort(pos[height >= reference])
        self.covered = min(MAX_EXCLUDED, self.ref.size * (self.before + self.after) / max(self.n_samples, 1))
        self.peaks = np.array([(height >= t).sum() for t in self.grid], dtype=np.int64)
        self.prior = float(reference) if use_prior else None

    def counts(self, mpos, mheight) -> np.ndarray:
        """Inverted-trace peaks above each threshold, those near a confident detection left out."""
        near = np.zeros(mpos.size, dtype=bool)
        if self.ref.size and mpos.size:
            # a mirror peak at p is near a detection at r when r - before <= p <= r + after,
            # i.e. the first r >= p - after is <= p + before
            i = np.searchsorted(self.ref, mpos - self.after, side="left")
            has = i < self.ref.size
            near[has] = self.ref[i[has]] <= mpos[has] + self.before
        return np.array([((mheight >= t) & ~near).sum() for t in self.grid], dtype=np.float64)

    def _reason(self, k: int) -> str:
        prior = self.prior
        return "prior" if prior is not None and abs(self.grid_arr[k] - prior) < 1e-12 else "estimate"

    def decide(self, noise, fraction: float) -> tuple[int, np.ndarray, str]:
        k, f1 = select_threshold(self.peaks, noise, self.grid_arr, self.prior)
        reason = self._reason(k)
        prior = self.prior
        if prior is not None and mirror_inconsistent(self.grid_arr, self.peaks, noise, prior, fraction):
            k, reason = int(np.argmin(np.abs(self.grid_arr - prior))), "inverted trace inconsistent"
        return k, f1, reason

    def settled(self, mpos, mheight, fraction: float, rng) -> int | None:
        """The threshold whose peaks agree best with the whole pass's plausible choices, when
        they agree by :data:`AGREEMENT` in all but :data:`RISK` of them; None: not yet."""
        raw = self.counts(mpos, mheight)
        bands = raw - np.r_[raw[1:], 0.0]  # peaks from each threshold to the next
        rate = rng.gamma(bands + 0.5, size=(DRAWS, bands.size)) * ((1.0 - fraction) / fraction)
        unseen = rng.poisson(rate)[:, ::-1].cumsum(axis=1)[:, ::-1]
        whole = (raw + unseen) / (1.0 - self.covered)
        choices = np.array([self.decide(row, 1.0)[0] for row in whole])
        n = self.peaks.astype(np.float64)
        lo, hi = np.minimum.outer(n, n[choices]), n[:, None] + n[choices][None, :]
        agree = np.divide(2.0 * lo, hi, out=np.ones_like(lo), where=hi > 0)  # (grid, draws)
        worst = np.quantile(agree, RISK, axis=1)
        own = self.decide(raw / (1.0 - self.covered) / fraction, fraction)[0]
        if worst[own] >= AGREEMENT:  # the sample's own choice, when it is safe
            return own
        allowed = np.ones(worst.size, dtype=bool) if self.prior is None else \
            self.grid_arr >= min(FLOOR, self.prior) - 1e-12
        worst = np.where(allowed, worst, -1.0)
        best = float(worst.max())
        if best < AGREEMENT:
            return None
        tied = np.flatnonzero(worst >= best - 1e-12)
        return int(tied[np.argmin(np.abs(tied - own))])  # of equals, the nearest to its own choice

    def result(self, mpos, mheight, fraction: float, k: int | None = None) -> AutoThreshold:
        noise = self.counts(mpos, mheight) / (1.0 - self.covered) / fraction
        chosen, f1, reason = self.decide(noise, fraction)
        if k is not None and k != chosen:
            reason = self._reason(k)
        k = chosen if k is None else k
        return AutoThreshold(threshold=self.grid[k], grid=self.grid,
                             peaks=tuple(int(v) for v in self.peaks),
                             noise_peaks=tuple(round(float(v), 2) for v in noise),
                             f1_estimate=tuple(round(float(v), 4) for v in f1),
                             excluded_fraction=round(self.covered, 4), prior=self.prior, reason=reason,
                             inverted_fraction=round(fraction, 4))
