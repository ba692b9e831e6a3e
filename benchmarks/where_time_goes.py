"""Where the time of a whole detection goes, stage by stage, for each model (issue 20).

Runs, in this one process and on one simulated recording (the same GC-like trace as
``predict_speed.py``: 3 events/s in coloured noise, 50 kHz; or ``--trace`` HDF5), the stages
that ``minidet detect FILE --plots`` runs, each timed on its own (wall and CPU time):

1. loading the model;
2. prediction (the network over the trace, fast mode as shipped);
3. the inverted pass of ``threshold="auto"`` (models that carry it, such as the default);
4. choosing the threshold;
5. locating the events; 6. measuring them; 7. writing the results (CSV, HDF5, JSON);
8. the figures and report (``--plots``).

With ``--screen`` it also measures the cascade tried before the default model got its own
screen (``detection/screen.py``): gc's fast pass as a screen, the default scoring only within
one window of where gc exceeds each screen threshold; it prints the share of windows left and
the share of the default's events inside them.

For each prediction it also prints the share of windows the model scored and quantiles of
the scores, which say why a model's fast mode skips little or much: for a min-max model (gc)
the fast mode only skips windows whose score stays below ``warm_threshold`` (3e-4) on a
coarse grid; for the default (gc-robust) its screen picks the windows (``--full`` scores
every window instead, the figures before the screen).

Usage::

    python benchmarks/where_time_goes.py                   # gc-robust (default) and gc, 30 s
    python benchmarks/where_time_goes.py --seconds 120 --models gc-robust

Figures on a machine shared with other jobs are inflated; compare the rows of one run.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from predict_speed import simulate  # noqa: E402  (the same trace as the speed benchmark)


class Stopwatch:
    def __init__(self) -> None:
        self.rows: list[tuple[str, float, float]] = []

    def __call__(self, name: str, fn, *args, **kwargs):
        w, c = time.perf_counter(), time.process_time()
        out = fn(*args, **kwargs)
        self.rows.append((name, time.perf_counter() - w, time.process_time() - c))
        return out


def run_model(name: str, recording, out_root: Path, full: bool = False) -> tuple[list[tuple[str, float, float]], list[str]]:
    from minidet import report
    from minidet.detection import pipeline
    from minidet.detection.locate import locate_events
    from minidet.measure.kinetics import measure_events
    from minidet.model import load_model

    sw = Stopwatch()
    notes = []
    model = sw("load model", load_model, name)
    metadata = pipeline._metadata_dict(model)
    settings = pipeline.resolve_settings(None, metadata, {}, name)
    if full:  # every window scored (the default before its screen)
        settings = dataclasses.replace(settings, predict_mode="full")
    raw = sw("prediction", pipeline._call_predict, recording, model, settings, False)
    notes.append(_describe("prediction", raw))
    prediction = pipeline._prediction_trace(raw)
    auto = None
    if settings.threshold == pipeline.AUTO:
        opposite = "positive" if settings.event_direction == "negative" else "negative"
        inverted = sw("inverted pass (auto)", pipeline._call_predict, recording, model,
                      dataclasses.replace(settings, event_direction=opposite), False, pipeline.INVERTED_LABEL)
        notes.append(_describe("inverted pass", inverted))
        from minidet.detection.autothreshold import choose_threshold

        reference = max(pipeline.AUTO_REFERENCE, float(metadata.get("threshold") or 0.0))
        placeholder = dataclasses.replace(settings, threshold=reference).locate_settings()
        auto = sw("choose threshold", choose_threshold, prediction, pipeline._prediction_trace(inverted),
                  placeholder, recording.sampling_rate, reference)
        settings = dataclasses.replace(settings, threshold=auto.threshold)
        notes.append(f"auto threshold chose {auto.threshold}")
    # the same result object detect() builds, timed stage by stage (its own detect() call is not timed)
    located = sw("locate", locate_events, recording, prediction, settings.locate_settings())
    sw("measure", measure_events, recording, located.positions, settings.measure_settings())
    result = pipeline.detect(recording, model, prediction=raw, threshold=settings.threshold)
    notes.append(f"{result.n_events if hasattr(result, 'n_events') else len(result.events_all)} events")
    out = out_root / name
    sw("write results", report.write_results, result, out / "tables", plots=False)
    from minidet.report.plots import write_plots
    (out / "plots").mkdir(parents=True, exist_ok=True)
    sw("figures (--plots)", write_plots, result, out / "plots")
    return sw.rows, notes


def _describe(label: str, raw) -> str:
    scores = np.asarray(getattr(raw, "scores", []), dtype=float)
    evaluated = getattr(raw, "evaluated", None)
    if scores.size == 0:
        return f"{label}: no window scores"
    if evaluated is not None:
        ev = np.asarray(evaluated, dtype=bool)
        share = ev.mean()
        sc = scores[ev]
    else:
        share, sc = 1.0, scores
    q = np.quantile(sc, [0.1, 0.5, 0.9])
    return (f"{label}: {share:.1%} of {scores.size} windows scored; scored windows' score quantiles "
            f"10/50/90 % = {q[0]:.2g} / {q[1]:.2g} / {q[2]:.2g}; {np.mean(sc > 3e-4):.1%} above the 3e-4 warm threshold")


def screen_table(recording) -> None:
    import minidet
    from minidet.detection.predict import predict

    result = minidet.detect(recording)  # the default, both passes, as shipped
    positions = np.asarray(result.events_all["sample"], dtype=float)
    gc = predict(recording, "gc")
    scores, stride = np.asarray(gc.scores), float(gc.stride)
    span = int(round(gc.window_size / stride))  # one window, in strides
    print(f"\ncascade (not built): gc screen, the default's {positions.size} events")
    for thr in (3e-4, 1e-3, 1e-2, 5e-2):
        keep = np.convolve((scores > thr).astype(float), np.ones(2 * span + 1), mode="same") > 0
        inside = keep[np.clip((positions / stride).astype(int), 0, keep.size - 1)].mean() if positions.size else 1.0
        print(f"  gc > {thr:g}: {keep.mean():5.1%} of the windows left to score; default's events inside: {inside:.3f}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--models", default="gc-robust,gc", help="comma-separated bundled models (first: the default)")
    ap.add_argument("--seconds", type=float, default=30.0, help="recording length (s)")
    ap.add_argument("--fs", type=float, default=50_000.0, help="sampling rate (Hz)")
    ap.add_argument("--trace", type=Path, help="use this recording file instead of the simulated trace")
    ap.add_argument("--full", action="store_true",
                    help="also run the first model with predict_mode='full' (every window scored)")
    ap.add_argument("--screen", action="store_true", help="also measure a gc screen for the default (see above)")
    args = ap.parse_args(argv)

    from minidet.recording import Recording

    if args.trace:
        from minidet.io import read_recording

        recording = read_recording(args.trace)
    else:
        recording = Recording(samples=simulate(args.seconds, args.fs), sampling_rate=args.fs, unit="pA")
    print(f"recording: {recording.n_samples / recording.sampling_rate:g} s at {recording.sampling_rate:g} Hz")
    with tempfile.TemporaryDirectory() as tmp:
        runs = [(m.strip(), False) for m in args.models.split(",") if m.strip()]
        if args.full and runs:
            runs.insert(1, (runs[0][0], True))
        for name, full in runs:
            rows, notes = run_model(name, recording, Path(tmp), full)
            total_w = sum(r[1] for r in rows)
            total_c = sum(r[2] for r in rows)
            print(f"\n{name}{' (predict_mode full: every window)' if full else ''}")
            print(f"  {'stage':24s} {'wall s':>8s} {'share':>6s} {'CPU s':>8s}")
            for stage, w, c in rows:
                print(f"  {stage:24s} {w:8.2f} {w / total_w:6.1%} {c:8.2f}")
            print(f"  {'total':24s} {total_w:8.2f} {'':6s} {total_c:8.2f}")
            for note in notes:
                print(f"  - {note}")
    if args.screen:
        screen_table(recording)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
