"""Hour-long recordings end to end: time, peak memory and accuracy of ``minidet detect``.

For each duration (``--durations``, seconds; default 10 min and 1 h) and file format
(``--formats``):

1. simulates a recording at 50 kHz with the ground-truth simulator, streamed to a temporary
   folder by :func:`minidet.simulation.simulate_to_file` (GC-like events, 5 Hz, SNR 20 dB):
   ``hdf5`` stores float32 samples in HDF5; ``abf`` int16 samples with a scale in an ABF1
   file, as a digitizer stores them; ``int16`` int16 samples with a scale in HDF5. The last
   two need a simulator that writes int16 (else the script says so and skips them);
2. runs ``minidet detect FILE --out DIR --force --model gc --plots`` (``--model``) in a child process and prints its
   wall time and peak memory (the child's own ``VmHWM`` at exit, which counts loading,
   filtering, prediction, event location, measurement, statistics and writing every file),
   the events found and precision / recall / F1 against the truth (:func:`minidet.evaluate`);
3. unless ``--no-app``: opens the result in the analysis app's session (as ``minidet app``
   does, in another child) and times the opening (which builds the min/max pyramid) and a
   series of pan / zoom requests from the full width down to single samples
   (``--app-recording FILE`` times only that, on a bare recording).

Then the throughput against the original: miniML 1.1.2's ``detect_events`` on a 120 s
simulated recording (``--original-seconds``), run from ``--miniml-venv`` as
``benchmarks/predict_speed.py`` does, next to ``minidet detect`` on the same 120 s file;
throughput is recording seconds per wall second, and the ratio compares minidet's on each
long recording with the original's on 120 s. Without the venv it says so and skips it.

It prints the CPU model (lscpu) and the load average: on a shared machine the times are
noisy, the memory figures are not. Not part of the test suite.

Usage::

    python benchmarks/long_recording.py --durations 600 --miniml-venv /work/miniml-venv
    python benchmarks/long_recording.py                    # 10 min and 1 h, both formats
"""

from __future__ import annotations

import argparse
import inspect
import json
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from predict_speed import DEFAULT_MINIML_MODEL, ORIGINAL, cpu_model  # noqa: E402

FS = 50_000.0
SEED = 11
SUFFIX = {"hdf5": ".h5", "abf": ".abf", "int16": ".h5"}

# --------------------------------------------------------------------------- children
_HWM = textwrap.dedent("""
    import atexit, json, sys
    def _hwm():
        for line in open("/proc/self/status"):
            if line.startswith("VmHWM:"):
                sys.stderr.write("VMHWM_MB %.1f\\n" % (int(line.split()[1]) / 1024.0))
    atexit.register(_hwm)
""")

SIMULATE = textwrap.dedent("""
    import sys, time
    from minidet.simulation import SimulationSettings, simulate_to_file
    path, truth, seconds, dtype, seed = sys.argv[1], sys.argv[2], float(sys.argv[3]), sys.argv[4], int(sys.argv[5])
    settings = SimulationSettings(duration_s=seconds, sampling_rate=50_000.0, event_rate_hz=5.0, snr_db=20.0)
    t = time.perf_counter()
    simulate_to_file(path, settings, seed=seed, truth_path=truth, dtype=dtype, overwrite=True)
    print("RESULT %.2f" % (time.perf_counter() - t))
""")

DETECT = _HWM + textwrap.dedent("""
    sys.argv = ["minidet", "detect"] + sys.argv[1:]
    from minidet.cli import main
    main()
""")

APP = _HWM + textwrap.dedent("""
    import time
    import numpy as np
    from pathlib import Path
    from minidet.web.analysis import AnalysisSession
    target, state, roots = Path(sys.argv[1]), Path(sys.argv[2]), [Path(r) for r in sys.argv[3:]]
    t = time.perf_counter()
    session = AnalysisSession(roots, state_dir=state)
    info = session.open(str(target))
    opened = time.perf_counter() - t
    n = info["recording"]["n_samples"]
    rec = session.recording
    px = 1500
    requests = [(0, n)]                                        # full width
    centre = n // 2
    for span in (n // 10, 60 * 50_000, 10 * 50_000, 50_000, 5_000, 500):   # zoom in
        requests.append((centre - span // 2, centre + span // 2))
    for k in range(1, 11):                                     # pan at 10 s and 1 s spans
        requests.append((centre + k * 250_000, centre + k * 250_000 + 500_000))
        requests.append((centre + k * 25_000, centre + k * 25_000 + 50_000))
    times = []
    for a, b in requests:
        t = time.perf_counter()
        out = session.trace(a, b, px)
        times.append(time.perf_counter() - t)
        assert len(out["trace"]["lo"]) <= px + 1
    print("RESULT " + json.dumps({"open_s": opened, "n_requests": len(times), "lazy": bool(rec.is_lazy),
                                  "full_width_s": times[0], "max_s": max(times), "median_s": float(np.median(times)),
                                  "has_prediction": "prediction" in out, "n_samples": n}))
""")


def run_child(args: list[str], timeout: float) -> dict:
    """Run ``python -c ...``; wall time, exit code, stdout, stderr and the child's VmHWM."""
    t = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-c", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        err += f"\ntimed out after {timeout:.0f} s"
    wall = time.perf_counter() - t
    result: dict = {"wall_s": wall, "returncode": proc.returncode, "stdout": out, "stderr": err}
    for line in err.splitlines():
        if line.startswith("VMHWM_MB "):
            result["peak_mb"] = float(line.split()[1])
    for line in out.splitlines():
        if line.startswith("RESULT "):
            text = line[7:]
            result["result"] = json.loads(text) if text.startswith("{") else float(text)
    return result


def last_error(child: dict) -> str:
    lines = [ln for ln in (child["stderr"] or "").splitlines() if ln.strip() and not ln.startswith("VMHWM_MB")]
    return lines[-1][:300] if lines else f"exit code {child['returncode']}"


def int16_available() -> bool:
    """Whether this checkout's simulate_to_file can write int16 samples with a scale (HDF5
    and ABF1)."""
    from minidet.simulation import simulate_to_file

    doc = inspect.getdoc(simulate_to_file) or ""
    return "int16" in doc


def simulate(path: Path, truth: Path, seconds: float, fmt: str, timeout: float) -> float:
    dtype = {"hdf5": "float32", "abf": "int16", "int16": "int16"}[fmt]
    child = run_child([SIMULATE, str(path), str(truth), str(seconds), dtype, str(SEED)], timeout)
    if child["returncode"] != 0:
        raise RuntimeError(f"simulation failed: {last_error(child)}")
    return float(child["result"])


def detect(path: Path, out: Path, plots: bool, timeout: float, model: str) -> dict:
    args = [DETECT, str(path), "--out", str(out), "--force", "--model", model] + (["--plots"] if plots else [])
    return run_child(args, timeout)


def score(truth: Path, out: Path) -> dict:
    import pandas as pd

    from minidet import evaluate

    events = pd.read_csv(out / "events.csv")
    ev = evaluate(str(truth), str(out))
    return {"n_events": int((~events["excluded"].astype(bool)).sum()), "precision": ev.precision,
            "recall": ev.recall, "f1": ev.f1, "n_true": ev.n_true}


def original_throughput(args: argparse.Namespace, work: Path) -> tuple[dict | None, dict | None, str]:
    """The original's detect_events and minidet detect on the same --original-seconds file."""
    import h5py
    import numpy as np

    py = args.miniml_venv / "bin" / "python" if args.miniml_venv else None
    if py is None:
        return None, None, "no --miniml-venv given"
    if not py.exists():
        return None, None, f"{py} does not exist (run benchmarks/setup_miniml_venv.sh)"
    if not args.miniml_model.exists():
        return None, None, f"miniML model file {args.miniml_model} not found (--miniml-model)"
    ours_file = work / "short.h5"
    simulate(ours_file, work / "short_truth.h5", args.original_seconds, "hdf5", args.timeout)
    with h5py.File(ours_file, "r") as src, h5py.File(work / "short_miniml.h5", "w") as dst:
        dst.create_dataset("mini_data", data=np.asarray(src["trace"][()], dtype=np.float64))
        dst.attrs["sampling"] = 1.0 / float(src["trace"].attrs["sampling_rate"])
    from predict_speed import run_measured

    original = run_measured([str(py), "-c", ORIGINAL, str(work / "short_miniml.h5"), str(args.miniml_model),
                             str(work / "original.npy")], args.timeout)
    if "error" in original:
        return None, None, f"the original failed: {original['error']}"
    ours = detect(ours_file, work / "short_out", plots=False, timeout=args.timeout, model=args.model)
    if ours["returncode"] != 0:
        return original, None, f"minidet detect failed on {args.original_seconds:g} s: {last_error(ours)}"
    return original, ours, ""


def time_app(target: Path, roots: list[Path], state: Path, timeout: float) -> dict | None:
    """Open ``target`` (results folder or recording) in the app's session; print the timings."""
    app = run_child([APP, str(target), str(state), *map(str, roots)], timeout)
    if app["returncode"] != 0 or "result" not in app:
        print(f"  app: FAILED: {last_error(app)}")
        return None
    r = app["result"]
    print(f"  app: opened {r['n_samples']:,} samples (read {'on demand' if r['lazy'] else 'into memory'}, "
          f"pyramid built{', with the prediction' if r['has_prediction'] else ''}) in {r['open_s']:.1f} s, "
          f"peak memory {app.get('peak_mb', 0):.0f} MB; {r['n_requests']} pan/zoom requests at 1500 px: "
          f"full width {r['full_width_s'] * 1e3:.1f} ms, median {r['median_s'] * 1e3:.1f} ms, "
          f"slowest {r['max_s'] * 1e3:.1f} ms")
    return r


# --------------------------------------------------------------------------- main
def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--durations", default="600,3600", help="recording lengths in seconds, comma separated")
    ap.add_argument("--formats", default="hdf5,abf",
                    help="hdf5 (float32), abf (ABF1, int16 with a scale), int16 (HDF5, int16 with a scale)")
    ap.add_argument("--keep", type=Path, help="keep recordings, truths and results in this folder")
    ap.add_argument("--no-plots", action="store_true", help="run detect without --plots")
    ap.add_argument("--no-app", action="store_true", help="skip the analysis app timing")
    ap.add_argument("--model", default="gc",
                    help="minidet detect --model (default gc: the original runs its GC model; the README's figures)")
    ap.add_argument("--miniml-venv", type=Path, help="virtual environment holding miniml-detect 1.1.2")
    ap.add_argument("--miniml-model", type=Path, default=DEFAULT_MINIML_MODEL,
                    help="miniML's GC_lstm_model.h5 (default: ../shared/models/miniml/)")
    ap.add_argument("--original-seconds", type=float, default=120.0, help="length of the original's recording")
    ap.add_argument("--timeout", type=float, default=3600.0, help="per child process (s)")
    ap.add_argument("--app-recording", type=Path,
                    help="only time the analysis app opening this recording (no detection) and exit")
    args = ap.parse_args(argv)
    if args.app_recording:
        print(f"CPU: {cpu_model()}; load average {os.getloadavg()[0]:.2f}")
        state = Path(tempfile.mkdtemp(prefix="minidet-app-state-"))
        try:
            rec = args.app_recording.resolve()
            return 0 if time_app(rec, [rec.parent], state, args.timeout) else 1
        finally:
            shutil.rmtree(state, ignore_errors=True)
    durations = [float(d) for d in args.durations.split(",") if d.strip()]
    formats = [f.strip() for f in args.formats.split(",") if f.strip()]
    bad = [f for f in formats if f not in SUFFIX]
    if bad:
        ap.error(f"unknown format(s) {bad}; use hdf5, abf and/or int16")

    work = args.keep or Path(tempfile.mkdtemp(prefix="minidet-long-"))
    work.mkdir(parents=True, exist_ok=True)
    print(f"CPU: {cpu_model()}")
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs, load average before: {os.getloadavg()[0]:.2f}")
    print(f"simulated at {FS:g} Hz: GC-like events at 5 Hz, SNR 20 dB, seed {SEED}; files in {work}")
    rows = []
    try:
        # the original first: its figure is there even when a long run is cut short
        original, ours_short, reason = original_throughput(args, work)
        orig_tp = args.original_seconds / original["wall_s"] if original is not None else None
        print("throughput = recording seconds analysed per wall-clock second (whole process: "
              "loading, prediction, events, measurement and, for minidet, every result file)")
        if original is not None:
            orig_detect_tp = args.original_seconds / original["detect_s"]
            print(f"  original miniML 1.1.2, {args.original_seconds:g} s: process {original['wall_s']:.0f} s "
                  f"({orig_tp:.2f} s/s), detect_events alone {original['detect_s']:.0f} s ({orig_detect_tp:.2f} s/s), "
                  f"peak memory {original['max_rss_mb']:.0f} MB")
            if ours_short is not None:
                tp = args.original_seconds / ours_short["wall_s"]
                print(f"  minidet detect, same {args.original_seconds:g} s file: {ours_short['wall_s']:.0f} s "
                      f"({tp:.2f} s/s), peak memory {ours_short.get('peak_mb', float('nan')):.0f} MB: "
                      f"{tp / orig_tp:.1f}x the original's throughput")
        else:
            print(f"  original skipped: {reason}")
        for fmt in formats:
            if fmt != "hdf5" and not int16_available():
                print(f"{fmt}: skipped -- simulate_to_file in this checkout writes no int16-with-scale variant")
                continue
            for seconds in durations:
                label = f"{seconds / 60:.3g} min {fmt}"
                rec = work / f"rec_{int(seconds)}s_{fmt}{SUFFIX[fmt]}"
                truth = work / f"rec_{int(seconds)}s_{fmt}_truth.h5"
                out = work / f"out_{int(seconds)}s_{fmt}"
                sim_s = simulate(rec, truth, seconds, fmt, args.timeout)
                print(f"\n{label}: simulated {int(seconds * FS):,} samples in {sim_s:.0f} s "
                      f"({rec.stat().st_size / 2**20:.0f} MiB on disk)")
                load = os.getloadavg()[0]
                child = detect(rec, out, plots=not args.no_plots, timeout=args.timeout, model=args.model)
                if child["returncode"] != 0:
                    print(f"  minidet detect FAILED (exit {child['returncode']}): {last_error(child)}")
                    rows.append({"label": label, "failed": True})
                    continue
                row = {"label": label, "seconds": seconds, "wall_s": child["wall_s"],
                       "peak_mb": child.get("peak_mb", float("nan")), "load": load}
                row.update(score(truth, out))
                files = sorted(p.name for p in out.iterdir())
                print(f"  minidet detect --plots: {row['wall_s']:.0f} s wall, peak memory {row['peak_mb']:.0f} MB "
                      f"(load average at start {load:.2f})")
                print(f"  {row['n_events']:,} events ({row['n_true']:,} true): precision {row['precision']:.3f}, "
                      f"recall {row['recall']:.3f}, F1 {row['f1']:.3f}")
                print(f"  wrote {', '.join(files)}")
                tp = seconds / row["wall_s"]
                if orig_tp is not None:
                    print(f"  throughput {tp:.2f} s/s = {tp / orig_tp:.1f}x the original's on "
                          f"{args.original_seconds:g} s ({tp / orig_detect_tp:.1f}x its detect_events alone)")
                else:
                    print(f"  throughput {tp:.2f} s/s")
                if not args.no_app:
                    row["app"] = time_app(out, [work, out], work / "app-state", args.timeout)
                rows.append(row)
                if not args.keep:
                    rec.unlink()
                    shutil.rmtree(out, ignore_errors=True)

        print(f"\nload average after: {os.getloadavg()[0]:.2f}")
        return 1 if any(r.get("failed") for r in rows) else 0
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
