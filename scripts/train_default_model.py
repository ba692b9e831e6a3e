"""Train the bundled ``gc-robust`` model: a noise-scaled network fine-tuned from ``gc`` on simulated windows.

    python scripts/train_default_model.py                      # writes src/minidet/models/gc-robust.minidet.safetensors
    python scripts/train_default_model.py --out /tmp/m.minidet.safetensors --n-recordings 40 --max-epochs 2
    python scripts/train_default_model.py --recalibrate MODEL --out MODEL --force   # only step 4

Recipe (all seeded, so a rerun gives the same windows; torch training on the CPU with the same
threads is deterministic as far as torch is):

1. :func:`minidet.train.synthetic.synthetic_windows` with seed 1000: ``--n-recordings``
   simulated 6-s recordings at 50 kHz (seeds 1000, 1001, ...), each with its own SNR (2-24 dB),
   rise (0.05-1 ms) and decay (0.3-8 ms) time constants, event rate 2-25 Hz (overlaps),
   transients in half of them, hum / drift in some, and a random noise spectrum
   (``SPECTRUM_FAMILY`` "mixed", :func:`minidet.train.synthetic.mixed_spectrum`): half of the
   recordings patch-clamp-like (:func:`~minidet.train.synthetic.patch_clamp_spectrum`: 1/f +
   white + capacitive f^2 through a 1.5-10 kHz low-pass), half 1/f + white through a 1-10 kHz
   low-pass of order 1-4 (:func:`~minidet.train.synthetic.random_spectrum`: from nearly white
   to 1/f-dominated). Never the granule-cell spectrum the accuracy benchmark uses.
   Positives put the onset 20-440 samples into the window, negatives hold no onset in their
   first 500 samples. Each window keeps its recording's noise SD.
2. No real snippets (``REAL_SNIPPETS_WHY``).
3. Fine-tuning every layer of ``gc`` with :func:`minidet.train.fit.train_model` on windows
   scaled by their recording's noise SD (``input_scaling="noise"``,
   :func:`minidet.model.network.noise_scale`) instead of miniML's min-max scaling: the network
   then sees how large a deflection is against the noise, which min-max scaling hides.
4. Detection settings: the threshold (``THRESHOLDS``), the Hann windows of the event locator
   (``convolve_win``, ``gradient_convolve_win``; ``FILTERS``), the prediction's moving average
   (``smoothing_steps``; ``SMOOTHING``) and the minimum prominence of a prediction peak
   (``peak_prominence``; ``PROMINENCES``) with the highest mean F1 over calibration recordings
   (seeds 500-507, random kinetics and random spectra of the same mixture, SNR 4-20 dB), matched
   to the truth -1/+3 ms around the onset. All of them travel in the model file, the
   prominence as ``FIXED_PROMINENCE`` (0.5, see there). The accuracy benchmark uses seeds 1-2
   and the GC spectrum.

The recipe, seeds, training figures and calibration table go into the model's provenance. The
first gc-robust (min-max, transfer learning with frozen convolutions, random pink/low-pass
spectra plus the 172 scored GC snippets) is in the git history (commit b859345), and so is the
second (this recipe with patch-clamp-like spectra only, commit 8cd82ff).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import warnings  # noqa: E402

import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "src" / "minidet" / "models" / "gc-robust.minidet.safetensors"
DATA_SEED = 1000
# the noise of the training (and calibration) recordings, never the GC spectrum of the accuracy benchmark:
# half 1/f + white + capacitive f^2 through a low-pass (patch_clamp_spectrum), half 1/f + white through a
# low-pass (random_spectrum). With patch-clamp spectra alone the network scored 1/f-heavy noise above 0.99
# (clean F1 0.81 on the accuracy benchmark's pink noise, 0.98 for gc) and lost to gc at 12.6 dB there
SPECTRUM_FAMILY = "mixed"
# the network sees windows in units of the recording's noise SD (minidet.model.network.noise_scale)
INPUT_SCALING = "noise"
DROPOUT = 0.2  # gc's own
REAL_SNIPPETS_WHY = ("none: miniML's scored granule-cell snippets (gc_training_example.h5) are cut out of their "
                     "recordings, so their recordings' noise SD, which a noise-scaled model needs, is unknown; and "
                     "their noise is the source of the accuracy benchmark's GC spectrum")
CALIBRATION_SEEDS = tuple(range(500, 508))
CALIBRATION_SNRS = (4.0, 6.0, 8.0, 10.0, 13.0, 20.0, 5.0, 9.0)
THRESHOLDS = tuple(round(0.3 + 0.05 * k, 2) for k in range(13)) + (0.93, 0.95, 0.97, 0.98, 0.99)
# (convolve_win, gradient_convolve_win) of the event locator, in samples at 50 kHz: gc's (20, 40) and
# wider Hann windows, which place low-SNR events closer to their onset
FILTERS = ((20, 40), (30, 40), (40, 40), (60, 40))
# moving average of the prediction before peak finding, in window steps (1 = none, miniML). Only 1 by
# default: for the first (min-max) gc-robust, --smoothing 1,3,5,9,15 made the calibration recordings prefer
# 9 steps at threshold 0.85, a choice that lost F1 at 5-9 dB on the accuracy benchmark; the
# per-recording threshold (AUTO_THRESHOLD) addresses the same disagreement.
SMOOTHING = (1,)
# minimum prominence of a prediction peak during calibration (None = the threshold, miniML's rule). The
# model is calibrated with the prominence it ships (FIXED_PROMINENCE): with miniML's rule a score must
# fall below 1 - threshold between two events, so at the high thresholds these models choose every
# event of a burst after the first is lost (the first gc-robust, at 0.93, missed a 60 pA compound
# event in 05210017_vc_abf1.abf at 12.62 s), and a calibration under that rule would judge another
# detector than the one shipped.
# ... 0.5, the value miniML's rule gives its own models (threshold 0.5)
FIXED_PROMINENCE = 0.5
PROMINENCES = (FIXED_PROMINENCE,)
# detect with threshold="auto" by default (minidet.detection.autothreshold): the calibration recordings and
# the accuracy benchmark's GC recordings want very different fixed thresholds (0.98-0.99 against 0.8-0.9;
# fast events in noise whose excursions look like them need a higher one, and 1/f-heavy noise above 0.99),
# which the rule measures per recording. The calibrated threshold stays in the model as the level of a
# confident detection.
AUTO_THRESHOLD = True

DESCRIPTION = (
    "Granule-cell-like mEPSCs in noisy recordings and with other kinetics. Windows are scaled by the "
    "recording's noise SD, not min-max (minidet fine-tuning of every layer of the gc model on simulated "
    "recordings: SNR 2-24 dB, rise 0.05-1 ms, decay 0.3-8 ms, overlapping events, non-synaptic "
    "transients, random noise spectra from white to 1/f-dominated, patch-clamp-like in half). Window 600 "
    "samples at 50 kHz (12 ms); threshold chosen per recording (auto), its confident level calibrated on "
    "held-out simulated recordings. See scripts/train_default_model.py and "
    "benchmarks/accuracy.py.")


def calibration_recordings(duration_s: float):
    from minidet.simulation import SimulationSettings, simulate
    from minidet.train.synthetic import SPECTRUM_FAMILIES

    out = []
    for seed, snr in zip(CALIBRATION_SEEDS, CALIBRATION_SNRS):
        rng = np.random.default_rng([seed, 7])
        rise = float(np.exp(rng.uniform(np.log(0.06e-3), np.log(0.8e-3))))
        decay = float(np.exp(rng.uniform(np.log(max(0.4e-3, 3 * rise)), np.log(7e-3))))
        settings = SimulationSettings(
            duration_s=duration_s, sampling_rate=50_000.0, event_rate_hz=5.0, snr_db=snr,
            rise_tau_s=rise, decay_tau_s=decay, noise_spectrum=SPECTRUM_FAMILIES[SPECTRUM_FAMILY](rng),
            transient_rate_hz=1.0 if seed % 2 else 0.0)
        rec, truth = simulate(settings, seed=seed)
        out.append((rec, truth, {"seed": seed, "snr_db": snr, "rise_tau_s": rise, "decay_tau_s": decay,
                                 "transients": bool(seed % 2)}))
    return out


def calibrate(model_path: Path, duration_s: float, smoothing: tuple[int, ...] = SMOOTHING,
              prominences: tuple[float | None, ...] = PROMINENCES
              ) -> tuple[float, tuple[int, int], int, float | None, list[dict]]:
    """Best (threshold, (convolve_win, gradient_convolve_win), smoothing_steps, peak_prominence) by
    mean F1 over the calibration recordings."""
    from minidet.detection.pipeline import detect
    from minidet.evaluation import evaluate

    table = []
    combos = [(k, f, pr, thr) for k in smoothing for f in FILTERS for pr in prominences for thr in THRESHOLDS]
    for rec, truth, info in calibration_recordings(duration_s):
        prediction = np.asarray(detect(rec, str(model_path), threshold=THRESHOLDS[0]).prediction)
        for k, (cw, gw), pr, thr in combos:
            found = detect(rec, str(model_path), prediction=prediction, threshold=thr, convolve_win=cw,
                           gradient_convolve_win=gw, smoothing_steps=k, peak_prominence=pr)
            e = evaluate(truth, found)
            table.append({**info, "threshold": thr, "convolve_win": cw, "gradient_convolve_win": gw,
                          "smoothing_steps": k, "peak_prominence": pr, "f1": round(e.f1, 4),
                          "precision": round(e.precision, 4), "recall": round(e.recall, 4)})
        best_here = max(table[-len(combos):], key=lambda r: r["f1"])
        print(f"  calibration seed {info['seed']} ({info['snr_db']:g} dB): best F1 {best_here['f1']:.3f} at "
              f"threshold {best_here['threshold']:g}, filters {best_here['convolve_win']}/"
              f"{best_here['gradient_convolve_win']}, smoothing {best_here['smoothing_steps']}, "
              f"prominence {best_here['peak_prominence']}", file=sys.stderr)

    def key(r: dict) -> tuple:
        return (r["smoothing_steps"], (r["convolve_win"], r["gradient_convolve_win"]), r["peak_prominence"],
                r["threshold"])

    sums: dict[tuple, list[float]] = {}
    for r in table:
        sums.setdefault(key(r), []).append(r["f1"])
    mean = {c: float(np.mean(v)) for c, v in sums.items()}
    # ties: the threshold nearer 0.5, then gc's narrower filter, then less smoothing, then PROMINENCES' order
    k, filters, prom, thr = max(combos, key=lambda c: (round(mean[c], 4), -abs(c[3] - 0.5), -FILTERS.index(c[1]),
                                                       -smoothing.index(c[0]), -prominences.index(c[2])))
    for kk in smoothing:
        for f in FILTERS:
            for pr in prominences:
                print(f"  smoothing {kk}, filters {f[0]}/{f[1]}, prominence {pr}: mean F1 by threshold: "
                      + " ".join(f"{t:g}:{mean[(kk, f, pr, t)]:.3f}" for t in THRESHOLDS), file=sys.stderr)
    return float(thr), filters, int(k), prom, table


def calibration_record(threshold: float, filters: tuple[int, int], smoothing: int, prominence: float | None,
                       duration_s: float, table: list[dict], grid: tuple[int, ...] = SMOOTHING,
                       prominences: tuple[float | None, ...] = PROMINENCES) -> dict:
    def same(r: dict, k: int, f: tuple[int, int], pr: float | None) -> bool:
        return (r["smoothing_steps"] == k and (r["convolve_win"], r["gradient_convolve_win"]) == tuple(f)
                and r["peak_prominence"] == pr)

    return {
        "rule": "threshold, locator filters (convolve_win, gradient_convolve_win), smoothing_steps and "
                "peak_prominence with the highest mean F1 (match -1/+3 ms) over the calibration recordings",
        "thresholds": list(THRESHOLDS), "filters": [list(f) for f in FILTERS], "smoothing": list(grid),
        "prominences": list(prominences), "chosen": threshold, "chosen_filters": list(filters),
        "chosen_smoothing": smoothing, "chosen_prominence": prominence, "duration_s": duration_s,
        # per recording: every threshold at the chosen filters, smoothing and prominence
        "recordings": [r for r in table if same(r, smoothing, filters, prominence)],
        # every combination: F1 averaged over the recordings
        "mean_f1": [{"smoothing_steps": k, "convolve_win": f[0], "gradient_convolve_win": f[1],
                     "peak_prominence": pr, "threshold": t,
                     "f1": round(float(np.mean([r["f1"] for r in table if same(r, k, f, pr)
                                                 and r["threshold"] == t])), 4)}
                    for k in grid for f in FILTERS for pr in prominences for t in THRESHOLDS],
        "fixed_peak_prominence": FIXED_PROMINENCE,
        "fixed_peak_prominence_why": "miniML's rule (prominence = threshold) drops every event of a burst after "
                                     "the first at high thresholds; 0.5 is what the rule gives miniML's own "
                                     "models, and the calibration uses it",
    }


def auto_record(model_path: Path, duration_s: float, changes: dict) -> dict:
    """threshold="auto" with the chosen settings on every calibration recording (F1 and the threshold it chose)."""
    from minidet.detection.pipeline import detect
    from minidet.evaluation import evaluate

    from minidet.model.core import MinidetModel, load_model

    plain = load_model(model_path)
    model = MinidetModel(plain.network, plain.metadata.replace(**changes))  # as it will be shipped
    rows = []
    for rec, truth, info in calibration_recordings(duration_s):
        found = detect(rec, model, threshold="auto")
        e = evaluate(truth, found)
        rows.append({"seed": info["seed"], "snr_db": info["snr_db"],
                     "chosen": found.info["auto_threshold"]["threshold"], "f1": round(e.f1, 4),
                     "precision": round(e.precision, 4), "recall": round(e.recall, 4)})
        print(f"  auto threshold, seed {info['seed']}: {rows[-1]['chosen']:g}, F1 {e.f1:.3f}", file=sys.stderr)
    return {"rule": "minidet.detection.autothreshold.choose_threshold (reference: the calibrated threshold)",
            "recordings": rows, "mean_f1": round(float(np.mean([r["f1"] for r in rows])), 4)}


def calibrated_settings(model_path: Path, duration_s: float, smoothing: tuple[int, ...],
                        prominences: tuple[float | None, ...]) -> tuple[dict, dict]:
    """Calibrate ``model_path``: (metadata fields to set, the provenance's calibration record)."""
    threshold, filters, steps, prominence, table = calibrate(model_path, duration_s, smoothing, prominences)
    record = calibration_record(threshold, filters, steps, prominence, duration_s, table, smoothing, prominences)
    shipped = prominence  # the model ships the prominence it was calibrated with
    changes = {"threshold": threshold, "convolve_win": filters[0], "gradient_convolve_win": filters[1],
               "smoothing_steps": steps, "peak_prominence": shipped, "auto_threshold": AUTO_THRESHOLD}
    if AUTO_THRESHOLD:
        record["auto"] = auto_record(model_path, duration_s, changes)
    print(f"calibrated: threshold {threshold:g}, filters {filters[0]}/{filters[1]}, smoothing {steps}, "
          f"prominence {shipped}", file=sys.stderr)
    return changes, record


def recalibrate(model_path: Path, out: Path, duration_s: float, force: bool,
                smoothing: tuple[int, ...] = SMOOTHING, prominences: tuple[float | None, ...] = PROMINENCES) -> int:
    """Calibrate an already trained model's threshold again (same rule), keeping its weights."""
    from minidet.model.modelfile import read_model_file, save_model_file

    if out.exists() and not force and out.resolve() != model_path.resolve():
        sys.exit(f"{out} exists; pass --force to replace it")
    network, metadata = read_model_file(model_path)
    changes, record = calibrated_settings(model_path, duration_s, smoothing, prominences)
    provenance = {**metadata.provenance, "calibration": record}
    save_model_file(out, network, metadata.replace(**changes, provenance=provenance), overwrite=True)
    print(f"wrote {out}", file=sys.stderr)
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default=str(OUT))
    p.add_argument("--n-recordings", type=int, default=350)
    p.add_argument("--max-epochs", type=int, default=8)
    p.add_argument("--patience", type=int, default=3)
    p.add_argument("--learning-rate", type=float, default=5e-4)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--calibration-s", type=float, default=15.0)
    p.add_argument("--train-seed", type=int, default=1234)
    p.add_argument("--no-calibration", action="store_true",
                   help="write the trained model without calibrating it (then --recalibrate it)")
    p.add_argument("--name", default="gc-robust", help="name stored in the model")
    p.add_argument("--force", action="store_true", help="replace an existing output file")
    p.add_argument("--smoothing", default=",".join(map(str, SMOOTHING)),
                   help="comma-separated smoothing_steps to calibrate over (default: %(default)s)")
    p.add_argument("--prominences", default=",".join(map(str, PROMINENCES)),
                   help="comma-separated peak_prominence values to calibrate over, 'threshold' for miniML's rule "
                        "(default: %(default)s, FIXED_PROMINENCE)")
    p.add_argument("--recalibrate", default=None, metavar="MODEL",
                   help="only calibrate the threshold of this trained model file again and write it to --out")
    args = p.parse_args(argv)
    try:
        grid = tuple(int(v) for v in args.smoothing.split(","))
    except ValueError:
        grid = ()
    if not grid or min(grid) < 1:
        p.error(f"--smoothing must be comma-separated integers >= 1, got {args.smoothing!r}")
    try:
        proms = tuple(None if v.strip() == "threshold" else float(v) for v in args.prominences.split(","))
    except ValueError:
        proms = ()
    if not proms or any(v is not None and not 0 < v <= 1 for v in proms):
        p.error(f"--prominences must be comma-separated numbers in (0, 1] or 'threshold', got {args.prominences!r}")
    if args.recalibrate:
        return recalibrate(Path(args.recalibrate), Path(args.out), args.calibration_s, args.force, grid, proms)

    from minidet.model.core import load_model
    from minidet.model.modelfile import save_model_file
    from minidet.train.fit import TrainSettings, train_model
    from minidet.train.synthetic import SyntheticSettings, synthetic_windows

    out = Path(args.out)
    if out.exists() and not args.force:
        sys.exit(f"{out} exists; pass --force to replace it")
    t0 = time.perf_counter()
    recipe = SyntheticSettings(n_recordings=args.n_recordings, spectrum_family=SPECTRUM_FAMILY)
    x, y, info = synthetic_windows(recipe, seed=DATA_SEED)
    noise_sd = info["noise_sd"].to_numpy()
    t_data = time.perf_counter() - t0
    print(f"data: {x.shape[0]} simulated windows ({int(y.sum())} events) in {t_data:.1f} s", file=sys.stderr)

    settings = TrainSettings(learning_rate=args.learning_rate, batch_size=args.batch_size, dropout=DROPOUT,
                             max_epochs=args.max_epochs, patience=args.patience, seed=args.train_seed,
                             device="cpu", fine_tune=True, input_scaling=INPUT_SCALING)
    with warnings.catch_warnings():
        # positives put the onset anywhere in the window, which fools the direction hint
        warnings.filterwarnings("ignore", message="the average event in the dataset goes")
        result = train_model((x, y, noise_sd), base="gc", settings=settings, name=args.name, progress=True)
    print(result.summary(), file=sys.stderr)

    provenance = dict(result.provenance)
    provenance["dataset"] = {**provenance["dataset"], "name": "simulated windows (minidet.train.synthetic)"}
    provenance["recipe"] = {
        "script": "scripts/train_default_model.py",
        "synthetic": {"function": "minidet.train.synthetic.synthetic_windows", "seed": DATA_SEED,
                      "settings": recipe.to_dict(), "windows": int(x.shape[0]),
                      "events": int(y.sum()),
                      "negatives_by_kind": {k: int(v) for k, v in info["kind"].value_counts().items()
                                            if k != "positive"}},
        "real": REAL_SNIPPETS_WHY,
        "data_seconds": round(t_data, 1),
    }
    metadata = result.metadata.replace(name=args.name, description=DESCRIPTION,
                                       source_file="scripts/train_default_model.py", provenance=provenance)
    if args.no_calibration:
        save_model_file(out, result.network, metadata, overwrite=args.force)
        print(f"wrote {out} (not calibrated: run --recalibrate {out})", file=sys.stderr)
        return 0

    tmp = out.with_name(out.name + ".uncalibrated.tmp")
    save_model_file(tmp, result.network, metadata, overwrite=True)
    try:
        t1 = time.perf_counter()
        changes, record = calibrated_settings(tmp, args.calibration_s, grid, proms)
        t_cal = time.perf_counter() - t1
    finally:
        tmp.unlink(missing_ok=True)
    print(f"calibration {t_cal:.0f} s", file=sys.stderr)
    provenance["calibration"] = record
    metadata = metadata.replace(**changes, provenance=provenance)
    save_model_file(out, result.network, metadata, overwrite=args.force)
    model = load_model(out)
    print(f"wrote {out} ({out.stat().st_size / 1e6:.2f} MB), threshold {model.metadata.threshold:g}; "
          f"total {time.perf_counter() - t0:.0f} s", file=sys.stderr)
    print(json.dumps(provenance["run"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
