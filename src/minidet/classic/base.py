"""What the classic detectors share: the result type, settings checks and small helpers."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any, Callable

import numpy as np
from scipy import ndimage, optimize

from ..errors import ParameterError
from ..filters import direction_sign

__all__ = [
    "ClassicDetections",
    "direction_sign",
    "check_positive",
    "blockwise",
    "steepest_rise",
    "gaussian_fit_sd",
]



@dataclass(frozen=True, eq=False)
class ClassicDetections:
    """Events found by a classic detector.

    Attributes
    ----------
    positions
        Sample indices (int64, increasing) of the events' steepest rise, the same
        convention as the deep-learning detector's positions.
    criterion
        Per event, the detection statistic that crossed the threshold, in the event
        direction (template: Clements-Bekkers ``scale / SE``; deconvolution and threshold:
        multiples of the noise SD). Used as the event's ``score``.
    method
        Registry name of the method.
    settings
        The settings used.
    threshold
        The threshold in criterion units.
    info
        Intermediate values worth reporting (e.g. the noise SD estimate, in ``unit``).
    """

    positions: np.ndarray
    criterion: np.ndarray
    method: str
    settings: Any
    threshold: float
    info: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return int(self.positions.size)

    def to_dict(self) -> dict[str, Any]:
        return {"method": self.method, "settings": asdict(self.settings), "threshold": self.threshold,
                "n_events": len(self), **self.info}


def check_positive(owner: Any, *names: str, allow_none: bool = False) -> None:
    """ParameterError unless each named attribute of ``owner`` is a finite number > 0."""
    for name in names:
        value = getattr(owner, name)
        if value is None and allow_none:
            continue
        ok = isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)
        if not (ok and math.isfinite(value) and value > 0):
            raise ParameterError(f"{name} must be a finite number > 0, got {value!r}")


def blockwise(samples: np.ndarray, fn: Callable[[np.ndarray], np.ndarray], margin: int,
              block: int = 1 << 20) -> np.ndarray:
    """Apply a shift-invariant ``fn`` block by block with ``margin`` samples of context on each
    side, trimmed afterwards, so the result equals ``fn(samples)`` away from the trace ends
    while only one block (plus margins) is transformed at a time."""
    n = samples.size
    if n <= block + 2 * margin:
        return np.asarray(fn(samples), dtype=np.float64)
    out = np.empty(n)
    for a in range(0, n, block):
        b = min(a + block, n)
        lo, hi = max(0, a - margin), min(n, b + margin)
        out[a:b] = fn(samples[lo:hi])[a - lo:a - lo + (b - a)]
    return out


def steepest_rise(samples: np.ndarray, sign: int, positions: np.ndarray, before: int, after: int,
                  smooth_sigma: float) -> np.ndarray:
    """For each position, the sample of steepest rise (in the event direction) of the
    Gaussian-smoothed trace within ``[position - before, position + after]``."""
    positions = np.asarray(positions, dtype=np.int64)
    if positions.size == 0:
        return positions
    n = samples.size
    pad = int(math.ceil(4 * smooth_sigma)) + 2
    offsets = np.arange(-before - pad, after + pad + 1)
    idx = np.clip(positions[:, None] + offsets[None, :], 0, n - 1)
    windows = sign * samples[idx]
    if smooth_sigma > 0:
        windows = ndimage.gaussian_filter1d(windows, smooth_sigma, axis=1, mode="nearest")
    slope = np.gradient(windows, axis=1)[:, pad:-pad]
    # stay inside the trace
    lo = np.clip(positions - before, 0, n - 1)
    hi = np.clip(positions + after, 0, n - 1)
    cols = positions[:, None] - before + np.arange(before + after + 1)[None, :]
    slope = np.where((cols >= lo[:, None]) & (cols <= hi[:, None]), slope, -np.inf)
    return positions - before + np.argmax(slope, axis=1)


def gaussian_fit_sd(values: np.ndarray, max_points: int = 2_000_000) -> tuple[float, float]:
    """``(mean, sd)`` of a Gaussian fitted to the all-points histogram of ``values``.

    The histogram spans the median +- 6 robust SDs (MAD); events, in one tail, hardly
    change the fit. Falls back to (median, robust SD) if the fit fails.
    """
    v = np.asarray(values, dtype=np.float64)
    v = v[np.isfinite(v)]
    if v.size == 0:
        raise ParameterError("no finite values to fit a Gaussian to")
    if v.size > max_points:
        v = v[:: int(math.ceil(v.size / max_points))]
    med = float(np.median(v))
    mad_sd = 1.4826 * float(np.median(np.abs(v - med)))
    if not mad_sd > 0:
        sd = float(np.std(v))
        return med, sd if sd > 0 else 1.0
    counts, edges = np.histogram(v, bins=200, range=(med - 6 * mad_sd, med + 6 * mad_sd))
    centres = 0.5 * (edges[:-1] + edges[1:])

    def gauss(x, a, mu, s):
        return a * np.exp(-0.5 * ((x - mu) / s) ** 2)

    try:
        (a, mu, s), _ = optimize.curve_fit(gauss, centres, counts, p0=(counts.max(), med, mad_sd), maxfev=2000)
        s = abs(float(s))
        if not (math.isfinite(mu) and 0 < s < 10 * mad_sd):
            raise RuntimeError("implausible fit")
        return float(mu), s
    except (RuntimeError, optimize.OptimizeWarning, ValueError):
        return med, mad_sd
