"""A cheap screen in front of a noise-scaled model: score the network only where it could say "event".

The default model (gc-robust) scores noise-scaled windows, and on pure noise its scores are
neither small nor smooth (median about 0.27), so the fast mode of :mod:`.predict` (built for
min-max models, whose scores on noise are ~1e-4) skips almost nothing. A *screen* is a small
fully-convolutional network distilled from that model (``scripts/train_screen.py``): it runs
once over the whole trace, about forty times cheaper than scoring every window, and answers
for every window "could the model score this above :data:`EXACT_ABOVE`?". The model itself
then scores

- every window whose screen score exceeds the screen's ``threshold``, and ``dilation``
  windows either side of each; from every one of them the model scores above
  :data:`FLOOD_ABOVE` (0.5), the :data:`FILL_REACH` windows either side, and so on from those
  (:func:`flood_fill`: a stretch of the prediction above 0.5 that the screen kept a window
  of is scored whole, never cut short, which would split one prediction peak into two; the
  locator's max filter spans 5 windows). The threshold and dilation are calibrated on
  held-out simulated recordings by replaying this with the teacher's scores: after the
  flood fill no window the model scores above :data:`EXACT_ABOVE` is left unscored (see
  the script); a stretch needs one kept window, not all of them;
- an *audit*: a seeded random ``audit_fraction`` of the windows the flood fill did not
  reach. If any audited window scores above :data:`EXACT_ABOVE`, the screen missed a
  stretch and is not to be trusted on this recording (noise it never saw, say), and every
  remaining window is scored: the result is then the full pass.

Windows the model did not score get the screen's probability capped at :data:`FILL_CAP`
(below 0.5, the lowest threshold of ``threshold="auto"``), so they never form a prediction
peak. What this keeps: the model's own score in every window above :data:`EXACT_ABOVE`
(unless the screen missed a stretch of them that the audit did not see), so the prediction
peaks at the thresholds gc-robust uses (0.93 and up) are the model's. What it does not keep:
the scores below :data:`EXACT_ABOVE` where the screen left windows out, so the pipeline scores
every window when a fixed threshold below :data:`EXACT_ABOVE` is asked for, and what depends
on the prediction's low parts can move a little: a peak's half-prominence width and region
start (measured at half its height above the lowest point between it and a higher peak),
and ``threshold="auto"``'s counts, whose peaks are found from 0.5 up.
``benchmarks/screen_agreement.py`` measures what this does to the events.
``Prediction.evaluated`` marks the windows the model scored; ``Prediction.screen`` says what
the screen did. ``benchmarks/screen_agreement.py`` compares the events with every window's.

The screen's file is a safetensors file with its settings as JSON in the header, named after
the model (``gc-robust.screen.safetensors`` beside ``gc-robust.minidet.safetensors``);
nothing is unpickled.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from ..errors import ModelFileError

__all__ = ["EXACT_ABOVE", "FILL_CAP", "FILL_REACH", "FLOOD_ABOVE", "SCREEN_SUFFIX", "Screen", "ScreenNet", "ScreenSettings", "load_screen", "save_screen",
           "flood_fill", "screen_file", "screen_input"]

#: windows the model would score above this are always scored by the model itself
EXACT_ABOVE = 0.85
#: the screen's file, beside the model file it was distilled from
SCREEN_SUFFIX = ".screen.safetensors"
#: windows the screen leaves get its probability capped here: below 0.5, the lowest threshold of
#: ``threshold="auto"`` (:data:`~minidet.detection.autothreshold.AUTO_GRID`), so they never form a peak
FILL_CAP = 0.45
#: windows either side of each window the model scores above FLOOD_ABOVE that it scores too
FILL_REACH = 5
#: ... from this score up: the lowest threshold of ``threshold="auto"``, whose prediction peaks
#: are found above it
FLOOD_ABOVE = 0.5
#: samples per piece of trace the screen runs on (plus its receptive field)
_PIECE = 1 << 20


@dataclass(frozen=True)
class ScreenSettings:
    """A screen's shape and calibration (stored in its file)."""

    window_size: int = 600  # network samples: the model's window
    stride: int = 20  # network samples between windows the screen scores (its total stride)
    channels: tuple[int, int, int, int] = (8, 16, 16, 32)
    baseline_samples: int = 601  # centred moving average removed before scaling
    threshold: float = 0.05  # windows scoring above this are scored by the model
    dilation: int = 2  # ... and this many windows either side
    audit_fraction: float = 0.01  # random share of the rest scored by the model as a check
    teacher: str = "gc-robust"
    calibration: str = ""  # what the threshold was calibrated on, in words

    def to_json(self) -> str:
        d = asdict(self)
        d["channels"] = list(self.channels)
        return json.dumps(d, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> "ScreenSettings":
        d = json.loads(text)
        d["channels"] = tuple(int(c) for c in d["channels"])
        return cls(**d)


class ScreenNet(nn.Module):
    """Fully convolutional: a trace of ``L`` scaled samples in, one logit per ``stride`` samples out.

    Output ``i`` sees input samples ``[i * stride, i * stride + receptive_field)``, i.e. the
    window starting at ``i * stride`` and a few samples beyond it.
    """

    def __init__(self, settings: ScreenSettings) -> None:
        super().__init__()
        c1, c2, c3, c4 = settings.channels
        if settings.stride != 20:
            raise ValueError("the screen's layers make a total stride of 20 samples")
        self.features = nn.Sequential(
            nn.Conv1d(1, c1, 9, stride=2), nn.LeakyReLU(0.1),
            nn.Conv1d(c1, c2, 5, stride=2), nn.LeakyReLU(0.1),
            nn.Conv1d(c2, c3, 5, stride=5), nn.LeakyReLU(0.1),
        )
        span = -(-settings.window_size // settings.stride) + 1  # feature steps covering a window
        self.head = nn.Sequential(
            nn.Conv1d(c3, c4, span), nn.LeakyReLU(0.1),
            nn.Conv1d(c4, 16, 1), nn.LeakyReLU(0.1),
            nn.Conv1d(16, 1, 1),
        )
        self.span = span
        self.stride = settings.stride
        self.receptive_field = 9 + 4 * 2 + 4 * 4 + (span - 1) * 20

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (n, 1, L) -> (n, L_out)
        return self.head(self.features(x))[:, 0, :]


def screen_input(samples: np.ndarray, noise_sd: float, baseline_samples: int) -> np.ndarray:
    """The screen's input: ``asinh((x - local mean) / (4 sd)) / 2`` (the model's own scaling,
    with a centred moving average standing in for each window's median)."""
    from scipy.ndimage import uniform_filter1d

    x = np.asarray(samples, dtype=np.float64)
    base = uniform_filter1d(x, int(baseline_samples), mode="nearest")
    return (np.arcsinh((x - base) / (4.0 * float(noise_sd))) / 2.0).astype(np.float32)


class Screen:
    """A loaded screen: :meth:`scores` gives every window's rough probability."""

    def __init__(self, net: ScreenNet, settings: ScreenSettings, path: str | None = None) -> None:
        self.net = net.eval()
        self.settings = settings
        self.path = path

    def scores(self, read: Any, n_model: int, k0: int, k1: int, noise_sd: float) -> np.ndarray:
        """Probabilities of windows ``k0 .. k1 - 1`` (window ``k`` starts at network sample
        ``k * stride``); ``read(a, b)`` gives network-grid samples ``[a, b)`` (``b <= n_model``),
        already in the model's polarity."""
        s = self.settings
        rf = self.net.receptive_field
        base = s.baseline_samples
        out = np.empty(max(0, k1 - k0), dtype=np.float32)
        per = _PIECE // s.stride  # windows per piece
        with torch.no_grad():
            for p0 in range(k0, k1, per):
                p1 = min(k1, p0 + per)
                a = p0 * s.stride
                b = (p1 - 1) * s.stride + rf
                lo, hi = max(0, a - base), min(n_model, b + base)
                u = screen_input(read(lo, hi), noise_sd, base)[a - lo:]
                need = b - a
                if u.size < need:  # the last windows' receptive field passes the trace's end
                    u = np.pad(u, (0, need - u.size), mode="edge")
                logits = self.net(torch.from_numpy(np.ascontiguousarray(u[:need]))[None, None, :])[0]
                out[p0 - k0:p1 - k0] = torch.sigmoid(logits[: p1 - p0]).numpy()
        return out


def screen_file(model_path: str) -> str:
    """Where the screen of the model file ``model_path`` lives (it may not exist)."""
    path = os.fspath(model_path)
    stem = path[: -len(".minidet.safetensors")] if path.endswith(".minidet.safetensors") else os.path.splitext(path)[0]
    return stem + SCREEN_SUFFIX


def save_screen(path: str, net: ScreenNet, settings: ScreenSettings) -> None:
    """Write the screen (weights + settings) to ``path`` through a temporary file."""
    from safetensors.torch import save_file

    tmp = f"{path}.tmp-{os.getpid()}"
    tensors = {k: v.detach().contiguous().clone() for k, v in net.state_dict().items()}
    save_file(tensors, tmp, metadata={"format": "minidet-screen", "version": "1", "settings": settings.to_json()})
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)


def load_screen(path: str) -> Screen:
    """Read a screen file (safetensors; nothing unpickled)."""
    from safetensors import safe_open

    try:
        with safe_open(path, framework="pt") as f:
            meta = f.metadata() or {}
            if meta.get("format") != "minidet-screen":
                raise ModelFileError(f"{path}: not a minidet screen file")
            settings = ScreenSettings.from_json(meta["settings"])
            net = ScreenNet(settings)
            state = {k: f.get_tensor(k) for k in f.keys()}
        net.load_state_dict(state, strict=True)
    except ModelFileError:
        raise
    except Exception as exc:  # corrupt, truncated, wrong tensors
        raise ModelFileError(f"{path}: not a readable minidet screen file: {exc}") from exc
    return Screen(net, settings, path)


def audit_windows(candidates: np.ndarray, fraction: float, seed: int) -> np.ndarray:
    """Ascending indices of a seeded random ``fraction`` of the windows not in ``candidates``
    (a boolean mask), at least one when there are any."""
    rest = np.flatnonzero(~candidates)
    if rest.size == 0 or fraction <= 0:
        return np.zeros(0, dtype=np.int64)
    k = min(rest.size, max(1, int(math.ceil(fraction * rest.size))))
    rng = np.random.default_rng(seed)
    return np.sort(rng.choice(rest, size=k, replace=False)).astype(np.int64)


def flood_fill(seeds: np.ndarray, scores: np.ndarray, evaluated: np.ndarray, run: Any,
               pool: np.ndarray | None = None) -> None:
    """Grow the scored set from the scored windows ``seeds``: every window within
    :data:`FILL_REACH` of one scoring above :data:`FLOOD_ABOVE` is scored too (``run(idx)``
    scores the windows ``idx``, filling ``scores`` and ``evaluated``), and so on from those,
    so each stretch of the prediction above :data:`FLOOD_ABOVE` that holds one scored window
    is scored whole. ``pool`` (a boolean mask) limits the windows it may add. The runtime
    (:func:`minidet.detection.predict`) and the screen's calibration
    (``scripts/train_screen.py``) share it."""
    n = scores.size
    reach = np.arange(-FILL_REACH, FILL_REACH + 1)
    todo = np.asarray(seeds, dtype=np.int64)
    while todo.size:
        hot = todo[scores[todo] > FLOOD_ABOVE]
        nb = np.unique((hot[:, None] + reach).ravel())
        nb = nb[(nb >= 0) & (nb < n)]
        todo = nb[~evaluated[nb]] if pool is None else nb[pool[nb] & ~evaluated[nb]]
        if todo.size:
            run(todo)


def dilate(mask: np.ndarray, by: int) -> np.ndarray:
    """``mask`` grown by ``by`` elements either side."""
    if by <= 0 or not mask.any():
        return mask.copy()
    from scipy.ndimage import binary_dilation

    return binary_dilation(mask, structure=np.ones(2 * int(by) + 1, dtype=bool))
