"""What the seed's four training-set ratios do: recall and precision of the model each trains.

miniML's training notes change two ratios while keeping events : non-events near one --
nice : "less nice" (messy) events, and false positives : pure noise -- and expect more messy
events to make a model liberal (more events found, more false positives) and more false
positives to make it restrictive. Their four rows are minidet's ``--ratio`` presets
(:data:`minidet.train.curate.RATIO_PRESETS`): liberal 100:500:50:550, more-restrictive
300:300:50:550, intermediate 300:300:300:300, restrictive 300:300:500:100.

With the simulation's truth standing in for the person (as in ``train_calibration.py``):

1. simulates ``--train`` recordings and ``--test`` held-out ones (other seeds) of a
   preparation with a broad amplitude spread (slow events at 20 kHz), alternately in the
   granule-cell noise spectrum (where template matching finds pure-noise stretches but hardly
   a false positive) and in 1/f noise (many false positives, hardly a noise-free stretch),
   so that all four groups are stocked;
2. ``minidet extract`` (miniML's thresholds, ``--noise-per-event`` noise stretches per clear
   event) and scores every snippet from the truth (1 at the event position, 2 if another
   onset is in the window, else 0);
3. for each row: ``minidet dataset rebalance --ratio ROW`` (proportions; groups split by
   extraction category), ``minidet train --from gc-robust`` (``--epochs``), and detects the
   held-out recordings with the model as stored (threshold chosen per recording, inherited
   from gc-robust) and at the fixed threshold ``--fixed-threshold`` (miniML's 0.5), printing
   recall, precision and F1 against the truth (-1/+3 ms, counts pooled).

    python benchmarks/train_ratios.py                  # ~10 min on 2 CPUs
    python benchmarks/train_ratios.py --train 2 --test 1 --duration 20 --epochs 10   # quick
    python benchmarks/train_ratios.py --out ratios.json    # also write every figure (JSON)
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
import warnings
from dataclasses import replace
from pathlib import Path

import numpy as np

import minidet
from minidet.report.writers import atomic_write
from minidet.simulation import SimulationSettings, simulate, simulate_to_file
from minidet.train.curate import GROUPS, RATIO_PRESETS, rebalance, split_groups
from minidet.train.extract import ExtractSettings, extract
from minidet.train.fit import TrainSettings, train_model

sys.path.insert(0, str(Path(__file__).resolve().parent))
from train_calibration import f1_row, score_from_truth, scores  # noqa: E402

#: Slow events at 20 kHz with a broad amplitude spread at a low SNR, so that template matching
#: finds many small ("less nice") events; recordings alternate between NOISE_SPECTRA.
PREPARATION = SimulationSettings(sampling_rate=20_000.0, rise_tau_s=0.5e-3, decay_tau_s=4e-3,
                                 snr_db=6.0, amplitude_log_sd=0.6, event_rate_hz=5.0)
NOISE_SPECTRA = ("gc", "pink")
ROWS = ("liberal", "more-restrictive", "intermediate", "restrictive")


def parse(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--train", type=int, default=4, help="training recordings (alternating noise spectra)")
    ap.add_argument("--test", type=int, default=2, help="held-out recordings (alternating noise spectra)")
    ap.add_argument("--duration", type=float, default=30.0, help="seconds per recording")
    ap.add_argument("--snr-db", type=float, default=PREPARATION.snr_db)
    ap.add_argument("--noise-per-event", type=float, default=3.0,
                    help="pure-noise stretches extracted per clear event")
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--base", default="gc-robust")
    ap.add_argument("--fixed-threshold", type=float, default=0.5)
    ap.add_argument("--tolerance-ms", type=float, default=1.0)
    ap.add_argument("--seed", type=int, default=0, help="rebalancing seed")
    ap.add_argument("--threads", type=int, default=None, help="torch threads for training")
    ap.add_argument("--out", default=None, help="write every figure to this JSON file")
    args = ap.parse_args(argv)
    if args.train < 1 or args.test < 1 or args.epochs < 1 or args.duration <= 0:
        ap.error("--train, --test, --epochs and --duration must be positive")
    if not 0 < args.fixed_threshold < 1:
        ap.error(f"--fixed-threshold must be in (0, 1), got {args.fixed_threshold}")
    return args


def pooled(model, tests, **detect_kwargs) -> tuple[float, float, float]:
    counts = np.zeros(3, dtype=np.int64)
    for rec, truth in tests:
        counts += f1_row(truth, minidet.detect(rec, model, progress=False, **detect_kwargs))
    return scores(*counts)


def main(argv=None) -> int:
    args = parse(argv)
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    t_start = time.perf_counter()
    settings = replace(PREPARATION, duration_s=args.duration, snr_db=args.snr_db)
    print(f"# {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, minidet {minidet.__version__}; "
          f"rise 0.5 / decay 4 ms, 20 kHz, GC and 1/f noise, {args.snr_db:g} dB, amplitude log-SD "
          f"{settings.amplitude_log_sd:g}; "
          f"{args.train} training + {args.test} held-out recordings x {args.duration:g} s; "
          f"train --from {args.base}, {args.epochs} epochs")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        paths, truths = [], {}
        for k in range(args.train):
            path = Path(tmp) / f"ratio-train{k}.h5"
            spectrum = NOISE_SPECTRA[k % len(NOISE_SPECTRA)]
            truths[path.name] = simulate_to_file(str(path), replace(settings, noise_spectrum=spectrum),
                                                 seed=100 + k, overwrite=True)
            paths.append(path)
        pool, _ = extract((minidet.load(str(p)) for p in paths),
                          ExtractSettings(window_size=600, noise_per_event=args.noise_per_event))
        pool.scores[:] = score_from_truth(pool, truths, 600, args.tolerance_ms * 1e-3)
        pool.scored[:] = True
        groups, how = split_groups(pool)
        available = {g: int(groups[g].size) for g in GROUPS}
        print(f"pool: {pool.n} snippets; " + ", ".join(f"{g.replace('_', ' ')} {v}" for g, v in available.items())
              + f", excluded {int((pool.scores == 2).sum())} (split {how})", file=sys.stderr, flush=True)
        tests = [simulate(replace(settings, noise_spectrum=NOISE_SPECTRA[k % len(NOISE_SPECTRA)]), seed=500 + k)
                 for k in range(args.test)]
        base = minidet.load_model(args.base)
        rows.append({"row": f"none ({args.base})", "ratio": "", "kept": {}, "train_s": 0.0,
                     "stored": pooled(base, tests), "fixed": pooled(base, tests, threshold=args.fixed_threshold)})
        for name in ROWS:
            ratio = RATIO_PRESETS[name]
            balanced, report = rebalance(pool, ratio, seed=args.seed)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                result = train_model(balanced, base=base, progress=False, calibrate_on=None, name=f"ratio-{name}",
                                     settings=TrainSettings(max_epochs=args.epochs, num_threads=args.threads))
            path = result.save(Path(tmp) / f"ratio-{name}.minidet.safetensors", overwrite=True)
            model = minidet.load_model(str(path))
            row = {"row": name, "ratio": ":".join(f"{v:g}" for v in ratio), "kept": report["kept"],
                   "train_s": result.seconds, "stored": pooled(model, tests),
                   "fixed": pooled(model, tests, threshold=args.fixed_threshold)}
            print(f"  {name}: kept {report['kept']}, trained in {result.seconds:.0f} s", file=sys.stderr, flush=True)
            rows.append(row)
    total_s = time.perf_counter() - t_start

    t = f"{args.fixed_threshold:g}"
    print(f"{'row':18s} {'ratio':16s} {'kept n:l:f:p':18s} | {'as stored (auto)':^22s} | {'at threshold ' + t:^22s}")
    print(f"{'':18s} {'':16s} {'':18s} | {'recall':>6s} {'prec.':>6s} {'F1':>6s}   | {'recall':>6s} {'prec.':>6s} {'F1':>6s}")
    for r in rows:
        kept = ":".join(str(r["kept"][g]) for g in GROUPS) if r["kept"] else "-"
        (f1s, ps, rs), (f1f, pf, rf) = r["stored"], r["fixed"]
        print(f"{r['row']:18s} {r['ratio']:16s} {kept:18s} | {rs:6.3f} {ps:6.3f} {f1s:6.3f}   | {rf:6.3f} {pf:6.3f} {f1f:6.3f}")
    print(f"total {total_s:.0f} s")
    if args.out:
        with atomic_write(args.out) as f:  # temp file + rename
            json.dump({"args": vars(args), "available": available, "split": how,
                       "rows": rows, "total_s": total_s}, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
