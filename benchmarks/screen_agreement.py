"""The default model's screen (issue 20): the same events as scoring every window, at what cost.

For each condition of ``benchmarks/accuracy.py`` (all 18 by default) and each seed, one
simulated recording is detected twice by the default model (gc-robust, ``threshold=auto``),
in one process:

- as shipped: ``minidet.detect(recording)`` (fast mode: the screen picks the windows the
  model scores, in both passes; ``detection/screen.py``);
- every window: ``minidet.detect(recording, predict_mode="full")``.

It prints, per recording, the thresholds each chose, the share of windows the model scored
in each pass, whether the audit sent the screen back to every window (``fallback``), both
detection times, the F1 of each against the truth, and the F1 of the two event sets against
each other (matched at +-0.2 ms; issue 20's bound is 0.995), then the worst agreement, the
largest change of F1 against the truth, and the time ratio.

Usage::

    python benchmarks/screen_agreement.py --seeds 1,2 --duration 10
    python benchmarks/screen_agreement.py --conditions "12.6 dB,real noise" --seeds 4,5 --duration 20
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time

import numpy as np


def main(argv: list[str] | None = None) -> int:
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import accuracy as A
    from accuracy_conditions import simulate_condition

    import minidet
    from minidet.evaluation import as_detections, evaluate, match_events
    from minidet.simulation import SimulationSettings

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--conditions", default=",".join(A.CONDITIONS), help="comma-separated conditions of accuracy.py")
    ap.add_argument("--seeds", default="1,2")
    ap.add_argument("--duration", type=float, default=10.0, help="recording length (s)")
    args = ap.parse_args(argv)
    conditions = [c.strip() for c in args.conditions.split(",") if c.strip()]
    seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    print(f"# default model (gc-robust, threshold=auto): screened (as shipped) against every window; "
          f"{args.duration:g} s per recording; {platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} cores\n")
    print("| condition | seed | threshold screened / every | model scored fwd / inv | fallback | "
          "time screened / every | F1 vs truth screened / every | agreement F1 |")
    print("|---|---|---|---|---|---|---|---|")
    worst, dmax, t_s, t_f = 1.0, 0.0, 0.0, 0.0
    for cond in conditions:
        for seed in seeds:
            base = SimulationSettings(duration_s=args.duration, sampling_rate=50_000.0, event_rate_hz=5.0,
                                      rise_tau_s=A.GC_RISE_S, decay_tau_s=A.GC_DECAY_S, noise_spectrum="gc")
            recording, truth = simulate_condition(base, A.CONDITIONS[cond], seed, "gc")
            runs = {}
            for label, extra in (("screened", {}), ("every", {"predict_mode": "full"})):
                start = time.perf_counter()
                result = minidet.detect(recording, **extra)
                runs[label] = (result, time.perf_counter() - start)
            (a, ta), (b, tb) = runs["screened"], runs["every"]
            sa, sb = as_detections(a).samples, as_detections(b).samples
            tol = 0.2e-3 * recording.sampling_rate
            matched, _ = match_events(sb, sa, tol, tol)
            agree = 2 * matched.size / max(sa.size + sb.size, 1) if sa.size + sb.size else 1.0
            fa, fb = evaluate(truth, a).f1, evaluate(truth, b).f1
            scr = a.info.get("screen") or {}
            inv = a.info.get("auto_threshold", {}).get("inverted_screen") or {}
            fallback = bool(scr.get("fallback")) or bool(inv.get("fallback"))
            worst, dmax = min(worst, agree), max(dmax, abs(fa - fb))
            t_s, t_f = t_s + ta, t_f + tb
            print(f"| {cond} | {seed} | {a.settings.threshold:g} / {b.settings.threshold:g} | "
                  f"{100 * scr.get('scored', 1.0):.0f} % / {100 * inv.get('scored', 1.0):.0f} % | "
                  f"{'yes' if fallback else 'no'} | {ta:.1f} s / {tb:.1f} s | {fa:.4f} / {fb:.4f} | {agree:.4f} |",
                  flush=True)
    print(f"\nworst agreement {worst:.4f} ({'within' if worst >= 0.995 else 'OUTSIDE'} the 0.995 bound); "
          f"largest change of F1 vs truth {dmax:.4f}; time every / screened {t_f / max(t_s, 1e-9):.2f}x "
          f"({t_s:.0f} s against {t_f:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
