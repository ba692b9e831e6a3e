"""Peak memory and time of localisation + measurement (``locate_events`` and
``measure_events``) on a long recording read on demand, with a lazy full-grid prediction.

Writes ``--minutes`` (default 10) of a simulated 50 kHz recording (Gaussian noise, 1.5 pA,
and difference-of-exponentials events of 10-40 pA at ``--event-hz`` per second) to a raw
float32 file in a temporary folder. A child process then builds:

- the recording: a :class:`minidet.recording.LazyTrace` whose reads are file reads at an
  offset (no memory map, so the page cache never counts as this process's memory);
- the prediction: a ``LazyTrace`` over the full sample grid whose values are interpolated,
  when read, from per-window scores every 20 samples held in memory (float32, as
  ``minidet.detection.predict`` keeps them): 0.95 for the windows that hold an event's
  rise, 1e-4 elsewhere;

and runs ``locate_events`` then ``measure_events``, printing the events found, the time
of each step and the child's peak resident memory (``VmHWM``) against its memory before
them. ``--src DIR`` runs the child on another checkout's ``src`` (e.g. the code before
issue 11: ``git archive 95719e7 src | tar -x -C /tmp/before`` then ``--src /tmp/before/src``);
the child only uses ``locate_events(rec, pred, settings)`` and ``measure_events(rec,
positions, settings)``, which both versions have. Times depend on the machine's load;
memory does not. ``--mmap-threshold 262144`` runs the child with glibc's mmap threshold
fixed: by default it grows to the size of the arrays freed (up to 32 MB), after which
the per-chunk arrays come from the heap and freed memory stays with the process.

Usage::

    python benchmarks/locate_memory.py                       # 10 min at 50 kHz
    python benchmarks/locate_memory.py --minutes 60
    python benchmarks/locate_memory.py --src /tmp/before/src  # the same with older code
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time

import numpy as np

FS = 50_000.0
STRIDE = 20
WINDOW = 600
BLOCK = 1 << 22

CHILD = r'''
import json, sys, time
import numpy as np
path, n, events_path = sys.argv[1], int(sys.argv[2]), sys.argv[3]

def hwm():
    return [int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmHWM:")][0] / 1024

def rss():
    return [int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmRSS:")][0] / 1024

from minidet.recording import LazyTrace, Recording
from minidet.detection.locate import LocateSettings, locate_events
from minidet.measure.kinetics import MeasureSettings, measure_events

def read(a, b):
    with open(path, "rb") as f:
        f.seek(4 * a)
        return np.fromfile(f, dtype=np.float32, count=b - a)

rec = Recording(LazyTrace(n, read, "raw float32 file"), 50_000.0)
# per-window scores every STRIDE samples, as predict keeps them; full grid on demand
starts = np.load(events_path)
n_pred = n - WINDOW + 1
n_win = (n_pred - 1) // STRIDE + 1
scores = np.full(n_win, 1e-4, np.float32)
for s in starts:
    scores[max(0, (s - 450) // STRIDE) : max(0, (s - 100) // STRIDE)] = 0.95
grid = np.arange(n_win) * STRIDE

def read_pred(a, b):
    k0, k1 = a // STRIDE, min(n_win, (b - 1) // STRIDE + 2)
    return np.interp(np.arange(a, b), grid[k0:k1], scores[k0:k1]).astype(np.float32)

pred = LazyTrace(n_pred, read_pred, "interpolated window scores")
before_hwm, before_rss = hwm(), rss()
t0 = time.perf_counter()
located = locate_events(rec, pred, LocateSettings(window_size=WINDOW, stride=STRIDE))
t1 = time.perf_counter()
kin = measure_events(rec, located.positions, MeasureSettings(window_size=WINDOW))
t2 = time.perf_counter()
print(json.dumps({"events": int(located.positions.size), "true_events": int(starts.size),
                  "measured": int((kin["peak_sample"] >= 0).sum()),
                  "gradient_threshold": located.gradient_threshold,
                  "locate_s": t1 - t0, "measure_s": t2 - t1,
                  "rss_before_mb": before_rss, "peak_mb": hwm(), "hwm_before_mb": before_hwm}))
'''.replace("WINDOW", str(WINDOW)).replace("STRIDE", str(STRIDE))


def write_recording(path: str, n: int, event_hz: float, seed: int = 0) -> np.ndarray:
    """Raw float32 trace, written block by block; returns the event start samples."""
    rng = np.random.default_rng(seed)
    t = np.arange(2_000) / FS
    kernel = np.exp(-t / 3e-3) - np.exp(-t / 3e-4)
    kernel /= kernel.max()
    n_events = rng.poisson(event_hz * n / FS)
    starts = np.sort(rng.integers(WINDOW, n - 2 * WINDOW, n_events))
    amps = rng.uniform(10.0, 40.0, n_events)
    carry = np.zeros(kernel.size - 1)
    with open(path, "wb") as f:
        for a in range(0, n, BLOCK):
            b = min(n, a + BLOCK)
            impulses = np.zeros(b - a)
            sel = (starts >= a) & (starts < b)
            np.add.at(impulses, starts[sel] - a, -amps[sel])
            conv = np.convolve(impulses, kernel)
            conv[: carry.size] += carry
            carry = conv[b - a :].copy()
            x = conv[: b - a] + rng.normal(0.0, 1.5, b - a)
            x.astype(np.float32).tofile(f)
    return starts


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--event-hz", type=float, default=5.0)
    ap.add_argument("--src", default=None, help="run the child on this checkout's src folder")
    ap.add_argument("--mmap-threshold", type=int, default=None, metavar="BYTES",
                    help="run the child with MALLOC_MMAP_THRESHOLD_=BYTES (glibc: a fixed threshold, so that "
                         "freed large arrays go back to the system instead of staying in the heap)")
    args = ap.parse_args()
    n = int(args.minutes * 60 * FS)
    tmp = tempfile.mkdtemp(prefix="minidet-locate-")
    try:
        path = os.path.join(tmp, "trace.f32")
        t0 = time.perf_counter()
        starts = write_recording(path, n, args.event_hz)
        np.save(os.path.join(tmp, "starts.npy"), starts)
        print(f"recording: {n} samples ({args.minutes:g} min at 50 kHz), {starts.size} events, "
              f"written in {time.perf_counter() - t0:.1f} s; float64 in memory would be {8 * n / 2**20:.0f} MB")
        env = dict(os.environ)
        if args.mmap_threshold is not None:
            env["MALLOC_MMAP_THRESHOLD_"] = str(args.mmap_threshold)
        if args.src:
            env["PYTHONPATH"] = os.path.abspath(args.src) + os.pathsep + env.get("PYTHONPATH", "")
        out = subprocess.run([sys.executable, "-c", CHILD, path, str(n), os.path.join(tmp, "starts.npy")],
                             env=env, capture_output=True, text=True)
        if out.returncode != 0:
            sys.exit(out.stderr)
        import json

        r = json.loads(out.stdout.strip().splitlines()[-1])
        code = args.src or "this checkout"
        malloc = f", MALLOC_MMAP_THRESHOLD_={args.mmap_threshold}" if args.mmap_threshold is not None else ""
        print(f"code: {code}{malloc}")
        print(f"events located {r['events']} (simulated {r['true_events']}), measured {r['measured']}, "
              f"gradient threshold {r['gradient_threshold']:.6g}")
        print(f"locate_events {r['locate_s']:.1f} s, measure_events {r['measure_s']:.1f} s")
        print(f"peak resident memory {r['peak_mb']:.0f} MB (before the two steps: {r['rss_before_mb']:.0f} MB; "
              f"added by them: {r['peak_mb'] - r['hwm_before_mb']:.0f} MB)")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
