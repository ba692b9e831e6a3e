"""Is ``predict``'s fast mode safe? Check it against scoring every window, at every grid phase.

For each trace (public30 from ../shared if present, and simulated recordings from quiet to
bursty), it scores every window once (``mode="full"``), then replays the fast mode's own
window selection (:func:`minidet.detection.predict.fast_schedule`, the function ``predict``
uses) on those scores, for every phase of the coarse grid (the trace shifted by 0 ..
coarse - 1 strides), and prints:

- the narrowest run of windows above ``refine_threshold`` that reaches 0.05 (the fast mode
  needs it to be at least ``refine_step`` strides long),
- the narrowest run above ``warm_threshold`` that reaches 0.05 (at least ``coarse_step``
  strides long, so that a coarse window falls in it and the grid around it is scored),
- the share of windows the fast mode scores (worst phase),
- the number of windows where the fast mode differs by more than 1e-3 from scoring every
  window where either exceeds 0.05 (must be 0), and the largest such difference.

Usage: ``python benchmarks/predict_fast_mode.py [--seconds 20] [--seeds 20 90] [--coarse-step 160 ...]``
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
PUBLIC30 = ROOT.parent / "shared" / "reference" / "public30.h5"


def simulate(seconds: float, fs: float, noise_sd: float, amps: tuple[float, float], rate_hz: float,
             decay_s: float = 1.5e-3, rise_s: float = 3e-4, seed: int = 0) -> np.ndarray:
    """GC-like events in coloured noise with a slow drift and some 50 Hz, pA."""
    from scipy.signal import lfilter

    rng = np.random.default_rng(seed)
    n = int(round(seconds * fs))
    red = lfilter([1.0], [1.0, -0.95], rng.standard_normal(n))
    white = rng.standard_normal(n)
    x = 0.7 * white / white.std() + 0.7 * red / red.std()
    x *= noise_sd / x.std()
    t = np.arange(n) / fs
    x += 2.0 * np.sin(2 * np.pi * 0.2 * t + rng.uniform(0, 6)) + 0.3 * np.sin(2 * np.pi * 50 * t)
    onsets = np.sort(rng.integers(0, n - 1, rng.poisson(rate_hz * seconds)))
    tk = np.arange(int(12 * decay_s * fs)) / fs
    kernel = (1 - np.exp(-tk / rise_s)) * np.exp(-tk / decay_s)
    kernel /= kernel.max()
    spikes = np.zeros(n)
    np.add.at(spikes, onsets, rng.uniform(amps[0], amps[1], onsets.size))
    return x + np.convolve(spikes, kernel)[:n]


TRACES = {
    # name: (noise SD pA, amplitudes pA, events/s, decay s, rise s)
    "quiet 1.5 pA, 3/s": (1.5, (-50, -10), 3.0, 1.5e-3, 3e-4),
    "noisy 3 pA, small": (3.0, (-20, -4), 3.0, 1.5e-3, 3e-4),
    "dense 15/s": (2.0, (-30, -5), 15.0, 1.5e-3, 3e-4),
    "very noisy 5 pA": (5.0, (-12, -3), 5.0, 1.5e-3, 3e-4),
    "slow 6 ms decay": (2.0, (-40, -5), 6.0, 6e-3, 8e-4),
    "burst 30/s": (1.5, (-60, -8), 30.0, 1.5e-3, 3e-4),
}


def narrowest_run(scores: np.ndarray, threshold: float, level: float = 0.05) -> int:
    hot = scores > threshold
    edges = np.flatnonzero(np.diff(np.r_[0, hot.astype(np.int8), 0]))
    widths = [b - a for a, b in zip(edges[::2], edges[1::2]) if scores[a:b].max() > level]
    return min(widths) if widths else -1


def replay(scores: np.ndarray, k1: int, k: int, warm: float, refine: float) -> np.ndarray:
    from minidet.detection.predict import _SEGMENT_WINDOWS, fast_schedule

    def score(idx: np.ndarray) -> np.ndarray:
        return scores[idx]

    evaluated, _ = fast_schedule(scores.size, k1, k, warm, refine, score)
    # predict walks the recording segment by segment: the same windows, whatever the segment
    walked, _ = fast_schedule(scores.size, k1, k, warm, refine, score,
                               segment=_SEGMENT_WINDOWS)
    if not np.array_equal(walked, evaluated):
        raise AssertionError("the segment-wise walk scored other windows than the whole-trace schedule")
    return evaluated


def main(argv: list[str] | None = None) -> int:
    from minidet.detection import predict as P
    from minidet.model import load_model
    from minidet.recording import Recording

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=20.0, help="length of each simulated trace")
    ap.add_argument("--coarse-step", type=int, default=P.DEFAULT_COARSE_STEP)
    ap.add_argument("--refine-step", type=int, default=P.DEFAULT_REFINE_STEP)
    ap.add_argument("--warm-threshold", type=float, default=P.DEFAULT_WARM_THRESHOLD)
    ap.add_argument("--refine-threshold", type=float, default=P.DEFAULT_REFINE_THRESHOLD)
    ap.add_argument("--seeds", type=int, nargs="+", default=[20, 90],
                    help="each simulated trace is made with seed BASE + its number, per BASE")
    args = ap.parse_args(argv)
    fs, stride = 50_000.0, 20
    k1 = max(1, args.coarse_step // stride)
    k = max(1, min(k1, args.refine_step // stride))
    print(f"fast mode: coarse every {k1} strides, grid every {k} where a coarse window > "
          f"{args.warm_threshold:g}, flood fill above {args.refine_threshold:g}; stride {stride}")

    traces: dict[str, np.ndarray] = {}
    if PUBLIC30.exists():
        import h5py

        with h5py.File(PUBLIC30, "r") as f:
            traces["public30 (miniML)"] = f["mini_data"][:] * 1e12
    for base in args.seeds:
        for i, (name, (sd, amps, rate, decay, rise)) in enumerate(TRACES.items()):
            traces[f"{name} #{base + i}"] = simulate(args.seconds, fs, sd, amps, rate, decay, rise,
                                                     seed=base + i)

    model = load_model("gc")
    failures = 0
    print(f"{'trace':26s}{'windows':>9s}{'>0.05':>8s}{'narrowest':>11s}{'warm run':>10s}"
          f"{'scored':>9s}{'bad':>6s}{'max diff':>10s}")
    for name, x in traces.items():
        t = time.perf_counter()
        full = P.predict(Recording(x, fs), model, mode="full", progress=False).scores
        worst_share, bad, worst_diff = 0.0, 0, 0.0
        for phase in range(k1):
            q = full[phase:]
            evaluated = replay(q, k1, k, args.warm_threshold, args.refine_threshold)
            idx = np.flatnonzero(evaluated)
            filled = np.interp(np.arange(q.size), idx, q[idx])
            mask = (q > 0.05) | (filled > 0.05)
            diff = np.abs(filled - q)[mask]
            bad += int(np.count_nonzero(diff > 1e-3))
            worst_diff = max(worst_diff, float(diff.max()) if diff.size else 0.0)
            worst_share = max(worst_share, evaluated.mean())
        failures += bad
        print(f"{name:26s}{full.size:9,d}{100 * np.mean(full > 0.05):7.1f}%"
              f"{narrowest_run(full, args.refine_threshold):8d} st"
              f"{narrowest_run(full, args.warm_threshold):7d} st{100 * worst_share:8.1f}%"
              f"{bad:6d}{worst_diff:10.1e}   ({time.perf_counter() - t:.0f} s)")
    print("OK: the fast mode stayed within 1e-3 everywhere" if failures == 0 else
          f"FAILED: {failures} windows off by more than 1e-3 where either exceeds 0.05")
    return 0 if failures == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
