"""Active learning: how many labels does each scoring order need for a given held-out F1?

The simulation's truth stands in for the person who scores (as in ``train_calibration.py``):

1. simulates ``--train`` recordings of one preparation and ``--test`` held-out ones (other
   seeds); ``minidet extract`` (template matching, miniML's three thresholds) on the training
   ones gives the pool of snippets a person could score;
2. the person's label of a snippet, from the truth: 1 if a true onset lies at the snippet's
   event position (within ``--tolerance-ms``), 2 (exclude: the person would not decide) if
   another onset lies in the window, else 0;
3. every order starts with the same first round: the first ``budgets[0]`` snippets in
   ``--start`` order (default extraction: a person starts at the top), since ranking by
   uncertainty needs a model trained on the person's data first -- the default ``gc-robust``
   gives nearly every extracted event of the slow preparation p > 0.98 and is least sure of
   false positives, so its most uncertain snippets are non-events only and nothing can be
   trained on them (``--start uncertainty`` shows it);
4. then, for each scoring order, the person labels up to ``--budgets`` snippets in rounds; after each round
   the model is trained again from ``--base`` (transfer learning, ``--epochs`` epochs, the
   threshold rule inherited from the base) on every label so far, and the held-out
   recordings are detected with it (F1 against the truth, -1/+3 ms, counts pooled):

   * ``extraction``: the pool in stored order (recording after recording, in time);
   * ``random``: a random permutation (``--seed``);
   * ``uncertainty``: next the unlabelled snippets the current model (the base before the
     first round, then the last one trained) is least sure of, by ``|p - 0.5|`` --
     ``minidet score --order uncertainty --model LAST_MODEL`` between rounds.

5. prints F1 per budget and order, and the labels each order needs to reach ``--target``
   (default: the F1 extraction order reaches with the largest budget), with the ratio to
   extraction order. The issue's goal: uncertainty order needs half the labels.

Until a labelled set holds 5 events and 5 non-events no model can be trained; the base
model's F1 is printed for those rounds (what the person would use meanwhile).

    python benchmarks/active_learning.py                        # 12-15 min on 2 CPUs
    python benchmarks/active_learning.py --budgets 20,40 --train 1 --test 1 --duration 20   # quick
    python benchmarks/active_learning.py --out al.json          # also write every figure (JSON)
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
from minidet.simulation import simulate, simulate_to_file
from minidet.train.active import uncertainty
from minidet.train.extract import ExtractSettings, extract, prescore
from minidet.train.fit import TrainSettings, train_model
from minidet.train.prepare import MIN_PER_CLASS

sys.path.insert(0, str(Path(__file__).resolve().parent))
from train_calibration import PREPARATIONS, f1_row, score_from_truth, scores  # noqa: E402

ORDERS = ("uncertainty", "extraction", "random")


def parse(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--prep", default="slow-pink", choices=sorted(PREPARATIONS))
    ap.add_argument("--train", type=int, default=3, help="training recordings (the pool)")
    ap.add_argument("--test", type=int, default=2, help="held-out recordings")
    ap.add_argument("--duration", type=float, default=30.0, help="seconds per recording")
    ap.add_argument("--budgets", default="25,50,100,200",
                    help="labels after each round (increasing, comma-separated)")
    ap.add_argument("--orders", default=",".join(ORDERS))
    ap.add_argument("--epochs", type=int, default=30, help="epochs per training round")
    ap.add_argument("--base", default="gc-robust")
    ap.add_argument("--target", type=float, default=None,
                    help="held-out F1 to reach [extraction order's F1 at the largest budget]")
    ap.add_argument("--tolerance-ms", type=float, default=1.0)
    ap.add_argument("--seed", type=int, default=0, help="random order's seed")
    ap.add_argument("--start", default="extraction", choices=ORDERS,
                    help="order of the first round, shared by all orders [extraction]")
    ap.add_argument("--threads", type=int, default=None, help="torch threads for training")
    ap.add_argument("--out", default=None, help="write every figure to this JSON file")
    args = ap.parse_args(argv)
    try:
        args.budgets = [int(b) for b in args.budgets.split(",") if b]
    except ValueError:
        ap.error(f"--budgets must be whole numbers, got {args.budgets!r}")
    if not args.budgets or any(b <= 0 for b in args.budgets) or args.budgets != sorted(set(args.budgets)):
        ap.error(f"--budgets must be increasing positive numbers, got {args.budgets}")
    args.orders = [o for o in args.orders.split(",") if o]
    bad = [o for o in args.orders if o not in ORDERS]
    if bad or not args.orders:
        ap.error(f"--orders must be among {', '.join(ORDERS)}, got {bad or args.orders}")
    if args.train < 1 or args.test < 1 or args.epochs < 1:
        ap.error("--train, --test and --epochs must be >= 1")
    return args


def held_out_f1(model, tests) -> tuple[float, float, float]:
    pooled = np.zeros(3, dtype=np.int64)
    for rec, truth in tests:
        pooled += f1_row(truth, minidet.detect(rec, model, progress=False))
    return scores(*pooled)


def trainable(labels: np.ndarray) -> bool:
    return int((labels == 1).sum()) >= MIN_PER_CLASS and int((labels == 0).sum()) >= MIN_PER_CLASS


def run_order(order: str, pool, truth_scores: np.ndarray, base_model, base_f1, tests, args,
              first_round: dict) -> list[dict]:
    """Label ``args.budgets`` snippets of ``pool`` in ``order``; train and evaluate after each round.

    ``first_round`` caches the round every order shares (the first, in ``args.start`` order).
    """
    n = pool.n
    labelled = np.zeros(n, dtype=bool)
    rng_order = np.random.default_rng(args.seed).permutation(n)
    current = base_model
    current_p = pool.prescore.copy()  # the base model's, computed once
    rows = []
    for k, budget in enumerate(args.budgets):
        t0 = time.perf_counter()
        need = min(budget, n) - int(labelled.sum())
        how = args.start if k == 0 else order
        if need > 0:
            free = np.flatnonzero(~labelled)
            if how == "extraction":
                pick = free[:need]
            elif how == "random":
                pick = rng_order[~labelled[rng_order]][:need]
            else:
                u = uncertainty(current_p[free])
                pick = free[np.lexsort((free, np.where(np.isfinite(u), u, np.inf)))][:need]
            labelled[pick] = True
        if k == 0 and first_round:
            labelled[:] = first_round["labelled"]
            current = first_round["model"]
            row = dict(first_round["row"], order=order)
            if order == "uncertainty" and k + 1 < len(args.budgets) and current is not base_model:
                current_p = first_round.setdefault("p", prescore(pool, current))
            print(f"  {order:11s} {budget:4d} labels: the shared first round (F1 {row['f1']:.3f})",
                  file=sys.stderr, flush=True)
            rows.append(row)
            continue
        ds = pool.subset(np.arange(n))
        ds.scores[:] = truth_scores
        ds.scored[:] = labelled
        labels = truth_scores[labelled]
        row = {"order": order, "budget": budget, "labelled": int(labelled.sum()),
               "events": int((labels == 1).sum()), "non_events": int((labels == 0).sum()),
               "excluded": int((labels == 2).sum())}
        if trainable(labels):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                result = train_model(ds, base=base_model,
                                     settings=TrainSettings(max_epochs=args.epochs, num_threads=args.threads),
                                     name=f"al-{order}-{budget}", progress=False, calibrate_on=None)
            path = Path(args.workdir) / f"al-{order}-{budget}.minidet.safetensors"
            result.save(path, overwrite=True)
            current = minidet.load_model(str(path))
            row["train_s"] = result.seconds
            f1, p, r = held_out_f1(current, tests)
            if order == "uncertainty" and k + 1 < len(args.budgets):
                current_p = prescore(pool, current)
        else:
            row["train_s"] = 0.0
            f1, p, r = base_f1
            row["note"] = f"fewer than {MIN_PER_CLASS} events or non-events: the base model"
        row.update(f1=f1, precision=p, recall=r, round_s=time.perf_counter() - t0)
        if k == 0:
            first_round.update(labelled=labelled.copy(), model=current, row=dict(row))
        print(f"  {order:11s} {budget:4d} labels ({row['events']} events, {row['non_events']} non-events, "
              f"{row['excluded']} excluded): F1 {f1:.3f} (P {p:.3f}, R {r:.3f}); {row['round_s']:.0f} s",
              file=sys.stderr, flush=True)
        rows.append(row)
    return rows


def labels_to_reach(rows: list[dict], target: float) -> int | None:
    for row in rows:
        if row["f1"] >= target:
            return row["budget"]
    return None


def main(argv=None) -> int:
    args = parse(argv)
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    t_start = time.perf_counter()
    settings = replace(PREPARATIONS[args.prep], duration_s=args.duration)
    print(f"# {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, minidet {minidet.__version__}; "
          f"{args.prep}: {args.train} pool + {args.test} held-out recordings x {args.duration:g} s; base {args.base}, "
          f"{args.epochs} epochs per round; first round of {args.budgets[0]} labels in {args.start} order for all")
    with tempfile.TemporaryDirectory() as tmp:
        args.workdir = tmp
        paths, truths = [], {}
        for k in range(args.train):
            path = Path(tmp) / f"{args.prep}-pool{k}.h5"
            truths[path.name] = simulate_to_file(str(path), settings, seed=100 + k, overwrite=True)
            paths.append(path)
        pool, _ = extract((minidet.load(str(p)) for p in paths), ExtractSettings(window_size=600))
        truth_scores = score_from_truth(pool, truths, 600, args.tolerance_ms * 1e-3)
        base_model = minidet.load_model(args.base)
        pool.prescore = prescore(pool, base_model)
        tests = [simulate(settings, seed=500 + k) for k in range(args.test)]
        base_f1 = held_out_f1(base_model, tests)
        counts = {s: int((truth_scores == s).sum()) for s in (0, 1, 2)}
        print(f"pool: {pool.n} snippets (truth: {counts[1]} events, {counts[0]} non-events, {counts[2]} "
              f"excluded); base {args.base} held-out F1 {base_f1[0]:.3f}", file=sys.stderr, flush=True)
        shared: dict = {}
        results = {o: run_order(o, pool, truth_scores, base_model, base_f1, tests, args, shared) for o in args.orders}
    total_s = time.perf_counter() - t_start

    print(f"held-out F1 ({args.test} x {args.duration:g} s) after N labels; base {args.base}: {base_f1[0]:.3f}")
    print(f"{'labels':>6s} " + " ".join(f"{o:>11s}" for o in args.orders))
    for k, budget in enumerate(args.budgets):
        print(f"{budget:6d} " + " ".join(f"{results[o][k]['f1']:11.3f}" for o in args.orders))
    target = args.target
    if target is None and "extraction" in results:
        target = results["extraction"][-1]["f1"]
    if target is not None:
        need = {o: labels_to_reach(results[o], target) for o in args.orders}
        ref = need.get("extraction")
        print(f"labels to reach held-out F1 {target:.3f}:")
        for o in args.orders:
            where = f"> {args.budgets[-1]}" if need[o] is None else str(need[o])
            ratio = (f" ({need[o] / ref:.2f}x extraction order's)" if need[o] is not None and ref else "")
            print(f"  {o:11s} {where:>6s}{ratio}")
        if "uncertainty" in need and ref:
            met = need["uncertainty"] is not None and need["uncertainty"] <= ref / 2
            print(f"goal (uncertainty order needs at most half the labels of extraction order): "
                  f"{'met' if met else 'NOT met'}")
    print(f"total {total_s:.0f} s")
    if args.out:
        with atomic_write(args.out) as f:  # temp file + rename
            json.dump({"args": {k: v for k, v in vars(args).items() if k != "workdir"},
                       "pool": {"n": pool.n, "truth_counts": counts},
                       "base_f1": base_f1, "target": target, "results": results,
                       "total_s": total_s}, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
