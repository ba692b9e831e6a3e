"""Exact order statistics of values that come in pieces: the median, and the MAD in the same
pass, without holding all the values (the localisation threshold of an hour-long derivative,
:func:`minidet.detection.locate.gradient_threshold`).

A sample of the values (e.g. every k-th) gives a :func:`bracket` around the middle rank; a
:class:`Selector` pass counts the values below it and keeps those inside, whose middle is
then exact (:func:`middle`, as ``np.median``); a :class:`DeviationZone` fed in the same pass
gives the MAD exactly when its bracket holds. :func:`exact_median` repeats passes, widening
the bracket, until it holds.
"""

from __future__ import annotations

import math
from typing import Callable, Iterable

import numpy as np

from ..errors import ParameterError

__all__ = ["DeviationZone", "Selector", "bracket", "exact_median", "middle"]


def bracket(srt: np.ndarray, k1: int, n_values: int, slack: float) -> tuple[float, float]:
    """Values of the sorted sample around rank ``k1`` of ``n_values``: a bracket that
    likely holds it (``slack`` plus 4 standard errors either side of the rank)."""
    m = srt.size
    if m == 0 or slack >= 1:
        return -math.inf, math.inf
    p = (k1 + 0.5) / n_values
    d = slack + 4 * math.sqrt(p * (1 - p) / m) + 2 / m
    i_lo = int(math.floor((p - d) * m))
    i_hi = int(math.ceil((p + d) * m))
    return (float(srt[i_lo]) if i_lo >= 0 else -math.inf), (float(srt[i_hi]) if i_hi < m else math.inf)


def middle(values: np.ndarray, below: int, n_values: int) -> float | None:
    """``np.median`` of all ``n_values`` values, given ``below`` of them smaller than every
    one of ``values`` and the rest larger; None when the middle is not in ``values``."""
    k1, k2 = (n_values - 1) // 2, n_values // 2
    if not (below <= k1 and below + values.size > k2):
        return None
    ranks = sorted({k1 - below, k2 - below})
    part = np.partition(values, ranks)
    # np.median: the mean of the middle one (odd count) or two (even count)
    return float(np.mean(part[[k1 - below, k2 - below]] if k2 != k1 else part[[k1 - below]]))


class Selector:
    """One pass of :func:`exact_median`: counts the values below ``[lo, hi]`` and keeps those inside."""

    def __init__(self, lo: float, hi: float) -> None:
        self.lo, self.hi = lo, hi
        self.below = self.total = self.nans = 0
        self.kept: list[np.ndarray] = []

    def feed(self, vals: np.ndarray) -> None:
        self.total += vals.size
        self.nans += int(np.count_nonzero(np.isnan(vals)))
        if self.lo == -math.inf and self.hi == math.inf:
            self.kept.append(np.array(vals, dtype=np.float64, copy=True))
            return
        lt = vals < self.lo
        self.below += int(np.count_nonzero(lt))
        self.kept.append(vals[~lt & (vals <= self.hi)])

    def median(self, n_values: int) -> float | None:
        if self.total != n_values:
            raise ParameterError(f"expected {n_values} values, the pieces held {self.total}")
        if self.nans:
            return math.nan  # as np.median
        inner = np.concatenate(self.kept) if self.kept else np.zeros(0)
        self.kept = []
        return middle(inner, self.below, n_values)


class DeviationZone:
    """The MAD in the same pass as the median: with the median known to lie in
    ``[lo, hi]`` and the MAD likely in ``[tl, th]``, every value either surely deviates
    less than ``tl`` (counted), surely more than ``th`` (ignored), or is kept; the kept
    ones' deviations from the exact median then give the MAD exactly, or None when it
    lies outside ``[tl, th]``."""

    def __init__(self, lo: float, hi: float, tl: float, th: float) -> None:
        self.tl, self.th = tl, th
        eps = 1e-9 * (abs(lo) + abs(hi) + th) + 1e-300  # far above the rounding of g - median
        self.in_lo, self.in_hi = hi - tl + eps, lo + tl - eps
        self.out_lo, self.out_hi = lo - th - eps, hi + th + eps
        self.n_in = 0
        self.kept: list[np.ndarray] = []

    def feed(self, vals: np.ndarray) -> None:
        inside = (vals > self.in_lo) & (vals < self.in_hi)
        self.n_in += int(np.count_nonzero(inside))
        self.kept.append(vals[~inside & (vals >= self.out_lo) & (vals <= self.out_hi)])

    def mad(self, median: float, n_values: int) -> float | None:
        below = self.n_in
        inside: list[np.ndarray] = []
        while self.kept:  # piece by piece, each freed once used
            dev = np.subtract(self.kept.pop(), median)
            np.abs(dev, out=dev)
            below += int(np.count_nonzero(dev < self.tl))
            inside.append(dev[(dev >= self.tl) & (dev <= self.th)])
        return middle(np.concatenate(inside) if inside else np.zeros(0), below, n_values)


def exact_median(chunks: Callable[[], Iterable[np.ndarray]], n_values: int, sample: np.ndarray | None = None,
                 *, slack: float = 0.004) -> float:
    """``np.median`` of ``n_values`` values that come in pieces (``chunks()`` yields them,
    and is called once per pass), without holding them all.

    ``sample`` (values like them, e.g. every k-th) sets a bracket around the middle rank;
    a pass counts the values below it and keeps those inside, whose k-th smallest is then
    the answer (the mean of the two middle ones for an even count, as ``np.median``). A
    bracket that misses is widened and the pass repeated; without a sample the first pass
    keeps everything.
    """
    if n_values < 1:
        raise ParameterError("the median of no values is undefined")
    srt = np.sort(np.asarray(sample, dtype=np.float64)) if sample is not None else np.zeros(0)
    srt = srt[np.isfinite(srt)]
    k1 = (n_values - 1) // 2
    d = slack
    while True:
        sel = Selector(*bracket(srt, k1, n_values, d))
        for vals in chunks():
            sel.feed(vals)
        med = sel.median(n_values)
        if med is not None:
            return med
        d = d * 8 if d > 0 else 0.01
