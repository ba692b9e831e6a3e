"""Does a model a lab trains beat the default it started from, on that lab's recordings?

For each simulated preparation the script does what the README's training recipe does, with
the simulation's truth standing in for the person who scores:

1. simulates ``--train`` training recordings and ``--test`` held-out recordings (other seeds);
2. ``minidet extract`` (template matching at miniML's three thresholds) on the training ones;
3. scores every snippet from the truth: 1 if a true onset lies at the snippet's event position
   (within ``--tolerance-ms``), 2 (exclude) if another event lies in the window, else 0;
4. ``minidet train --from gc-robust`` (transfer learning, the recipe's settings) with the
   threshold chosen for continuous recordings (:mod:`minidet.train.calibrate`: the training
   recordings are scored, see ``threshold_rule`` in the output);
5. detects the held-out recordings with the default model (``gc-robust`` as shipped), the
   trained model as stored, and the trained model at the balanced snippets' ROC optimum (what
   minidet stored before, and what miniML stores), and prints F1, precision and recall
   against the truth (one-to-one, -1 ms / +3 ms around each true onset, counts pooled).

    python benchmarks/train_calibration.py                 # both preparations (~15 min on 2 CPUs)
    python benchmarks/train_calibration.py --prep slow-pink --train 2 --test 2 --duration 30

Preparations: ``gc-like`` (the default's own kinetics and the GC noise spectrum, 50 kHz: the
trained model should be as good as the default, F1 >= default - 0.01) and ``slow-pink``
(rise 0.6 ms, decay 5 ms, 20 kHz, 1/f noise: kinetics and noise the default was not trained on;
the trained model should be better).
"""

from __future__ import annotations

import argparse
import platform
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

import minidet
from minidet.evaluation import evaluate
from minidet.simulation import SimulationSettings, simulate, simulate_to_file
from minidet.train.dataset import write_dataset
from minidet.train.extract import BASELINE_FRACTION, ExtractSettings, extract
from minidet.train.fit import TrainSettings, train_model

PREPARATIONS = {
    "gc-like": SimulationSettings(sampling_rate=50_000.0, rise_tau_s=0.15e-3, decay_tau_s=1.2e-3,
                                  snr_db=12.6, event_rate_hz=5.0, noise_spectrum="gc"),
    "slow-pink": SimulationSettings(sampling_rate=20_000.0, rise_tau_s=0.6e-3, decay_tau_s=5e-3,
                                    snr_db=12.6, event_rate_hz=4.0, noise_spectrum="pink"),
}


def parse(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--prep", default=",".join(PREPARATIONS), help="comma-separated preparations")
    ap.add_argument("--train", type=int, default=3, help="training recordings per preparation")
    ap.add_argument("--test", type=int, default=2, help="held-out recordings per preparation")
    ap.add_argument("--duration", type=float, default=40.0, help="seconds per recording")
    ap.add_argument("--window-size", type=int, default=600)
    ap.add_argument("--tolerance-ms", type=float, default=1.0)
    ap.add_argument("--epochs", type=int, default=100)
    ap.add_argument("--base", default="gc-robust")
    return ap.parse_args(argv)


def score_from_truth(ds, truths: dict, window: int, tolerance_s: float) -> np.ndarray:
    """The person's scores, from the truth (see the module docstring)."""
    pre = int(round(BASELINE_FRACTION * window))
    scores = np.zeros(len(ds.scores), dtype=np.int64)
    for i, (label, start) in enumerate(zip(ds.cell_label, ds.raw_indices)):
        truth = truths[Path(str(label)).name]
        onsets = np.round(truth.events["onset_sample"].to_numpy(float)).astype(np.int64)
        tol = int(round(tolerance_s * truth.sampling_rate))
        at = np.abs(onsets - (start + pre)) <= tol
        inside = (onsets >= start - pre) & (onsets < start + window)
        scores[i] = 1 if at.any() else (2 if inside.any() else 0)
    return scores


def f1_row(truth, found) -> tuple[int, int, int]:
    e = evaluate(truth, found)
    return int(e.true_positives), int(e.false_positives), int(e.false_negatives)


def scores(tp, fp, fn):
    p = tp / (tp + fp) if tp + fp else 0.0
    r = tp / (tp + fn) if tp + fn else 0.0
    return (2 * p * r / (p + r) if p + r else 0.0), p, r


def run_preparation(name: str, args, workdir: Path) -> list[dict]:
    settings = replace(PREPARATIONS[name], duration_s=args.duration)
    paths, truths = [], {}
    for k in range(args.train):
        path = workdir / f"{name}-train{k}.h5"
        truths[path.name] = simulate_to_file(str(path), settings, seed=100 + k, overwrite=True)
        paths.append(path)
    ds_path = workdir / f"{name}.ds.h5"
    ds, _ = extract((minidet.load(str(p)) for p in paths), ExtractSettings(window_size=args.window_size))
    ds.scores[:] = score_from_truth(ds, truths, args.window_size, args.tolerance_ms * 1e-3)
    ds.scored[:] = True
    write_dataset(ds_path, ds, force=True)
    counts = {s: int((ds.scores == s).sum()) for s in (0, 1, 2)}
    print(f"{name}: {len(ds.scores)} snippets from {args.train} x {args.duration:g} s "
          f"(event {counts[1]}, no event {counts[0]}, excluded {counts[2]})", file=sys.stderr, flush=True)

    t0 = time.perf_counter()
    result = train_model(str(ds_path), base=args.base, settings=TrainSettings(max_epochs=args.epochs),
                         name=f"{name}-trained", progress=False)
    train_s = time.perf_counter() - t0
    model_path = result.save(workdir / f"{name}.minidet.safetensors", overwrite=True)
    trained = minidet.load_model(str(model_path))
    choice = result.provenance["threshold"]
    print(f"{name}: trained in {train_s:.0f} s; {result.summary().splitlines()[-1]}", file=sys.stderr, flush=True)

    runs = {
        f"default ({args.base})": lambda rec: minidet.detect(rec, args.base, progress=False),
        "trained (as stored)": lambda rec: minidet.detect(rec, trained, progress=False),
        "trained @ ROC optimum": lambda rec: minidet.detect(rec, trained, threshold=float(result.metrics.threshold),
                                                            progress=False),
    }
    pooled = {k: np.zeros(3, dtype=np.int64) for k in runs}
    for k in range(args.test):
        rec, truth = simulate(settings, seed=500 + k)
        for label, run in runs.items():
            pooled[label] += f1_row(truth, run(rec))
    rows = []
    for label, (tp, fp, fn) in pooled.items():
        f1, p, r = scores(tp, fp, fn)
        rows.append({"preparation": name, "detector": label, "f1": f1, "precision": p, "recall": r,
                     "threshold": ("auto" if trained.metadata.auto_threshold else f"{trained.metadata.threshold:.4g}")
                     if label == "trained (as stored)" else
                     (f"{result.metrics.threshold:.3g}" if "ROC" in label else "auto"),
                     "rule": choice["rule"] if label == "trained (as stored)" else ""})
    return rows


def main(argv=None) -> int:
    args = parse(argv)
    preps = [p for p in args.prep.split(",") if p]
    for p in preps:
        if p not in PREPARATIONS:
            sys.exit(f"unknown preparation {p!r}; choose from {', '.join(PREPARATIONS)}")
    print(f"# {platform.processor() or platform.machine()}, minidet {minidet.__version__}; "
          f"{args.train} training + {args.test} held-out recordings x {args.duration:g} s per preparation")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for p in preps:
            rows += run_preparation(p, args, Path(tmp))
    print(f"{'preparation':12s} {'detector':26s} {'F1':>6s} {'P':>6s} {'R':>6s}  threshold")
    for r in rows:
        print(f"{r['preparation']:12s} {r['detector']:26s} {r['f1']:6.3f} {r['precision']:6.3f} "
              f"{r['recall']:6.3f}  {r['threshold']}{' (' + r['rule'] + ')' if r['rule'] else ''}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
