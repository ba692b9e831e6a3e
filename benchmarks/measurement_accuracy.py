"""Measurement accuracy of every bundled model for negative currents, on simulated recordings.

Each condition is one simulated recording (``minidet.simulation``: known rise-and-decay
kernels, log-normal amplitudes and kinetics, granule-cell-like noise); each model detects
with its defaults (``detect(recording, model=...)``), and :func:`minidet.evaluation.evaluate`
compares the measurements of matched ISOLATED events with the truth: median relative error
(measured / true - 1) of amplitude, 10-90 % rise time, half decay and decay time constant.

Run (a few minutes on 2 CPU cores)::

    PYTHONPATH=src python benchmarks/measurement_accuracy.py
    PYTHONPATH=src python benchmarks/measurement_accuracy.py --duration 20 --models gc,gc-robust --kinetics-method filtered

Targets (issue 22): |amplitude| <= 3 %, |rise| <= 15 %, |half decay| <= 10 %, |decay tau| <= 10 %.
"""

from __future__ import annotations

import argparse
import time

import pandas as pd

from minidet.detection.pipeline import detect
from minidet.evaluation import evaluate
from minidet.simulation import SimulationSettings, simulate

#: name -> (sampling rate Hz, rise tau s, decay tau s, SNR dB)
CONDITIONS = {
    "gc 50 kHz 15 dB": (50_000.0, 0.15e-3, 1.2e-3, 15.0),
    "gc 20 kHz 25 dB": (20_000.0, 0.15e-3, 1.2e-3, 25.0),
    "slow 20 kHz 15 dB": (20_000.0, 0.5e-3, 5e-3, 15.0),
    "slow 50 kHz 25 dB": (50_000.0, 0.5e-3, 5e-3, 25.0),
}
#: the bundled models trained on (and detecting) negative currents
MODELS = ("gc", "gc-robust", "nmj-wt", "nmj-gluriia", "zebrafish")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=12.0, help="seconds per simulated recording")
    parser.add_argument("--rate", type=float, default=4.0, help="events per second")
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--kinetics-method", default=None, choices=("fit", "filtered"),
                        help="override the measurement method (default: the settings' default, 'fit')")
    parser.add_argument("--seed", type=int, default=3)
    args = parser.parse_args()
    overrides = {} if args.kinetics_method is None else {"kinetics_method": args.kinetics_method}
    rows = []
    for cond, (fs, rise, decay, snr) in CONDITIONS.items():
        rec, truth = simulate(SimulationSettings(duration_s=args.duration, sampling_rate=fs, rise_tau_s=rise,
                                                 decay_tau_s=decay, snr_db=snr, event_rate_hz=args.rate),
                              seed=args.seed)
        for model in args.models.split(","):
            t0 = time.perf_counter()
            result = detect(rec, model=model, device="cpu", **overrides)
            e = evaluate(truth, result)
            rows.append({"model": model, "condition": cond, "f1": e.f1, "n_isolated": e.n_isolated_matched,
                         "amplitude_%": 100 * e.amplitude_relative_error_isolated,
                         "rise_%": 100 * e.rise_time_relative_error_isolated,
                         "half_decay_%": 100 * e.half_decay_relative_error_isolated,
                         "decay_tau_%": 100 * e.decay_tau_relative_error_isolated,
                         "s": time.perf_counter() - t0})
            print(f"  {model:12s} {cond}: done in {rows[-1]['s']:.1f} s", flush=True)
    table = pd.DataFrame(rows)
    print(table.to_string(index=False, float_format=lambda v: f"{v:.2f}"))
    worst = table[["amplitude_%", "rise_%", "half_decay_%", "decay_tau_%"]].abs().max()
    print("worst |median error| %: " + ", ".join(f"{k} {v:.1f}" for k, v in worst.items()))


if __name__ == "__main__":
    main()
