"""Speed, memory and accuracy of minidet's prediction next to the original miniML.

Makes (or reuses) a simulated recording -- GC-like events (rise 0.3 ms, decay 1.5 ms,
-10 to -50 pA) at 3 Hz in coloured noise of 1.5 pA SD with a slow drift, 120 s at 50 kHz by
default -- saves it as HDF5 in a temporary folder and runs, each in its own process:

1. the original: miniML's ``EventDetection.detect_events`` (PyPI ``miniml-detect`` 1.1.2,
   TensorFlow 2.15) from a separate virtual environment (``--miniml-venv``, made by
   ``benchmarks/setup_miniml_venv.sh``), with the GC model file, window 600, stride 20;
   its prediction stage (``__predict``) is timed on its own as well;
2. minidet: ``minidet.detection.predict.predict`` (default settings: fast mode), with the
   samples loaded first, or with ``--lazy`` read from the HDF5 file on demand;
3. unless ``--no-full-check``: minidet's plain float32 evaluation of every window
   (``mode="full", engine="plain"``), the accuracy reference;
4. with ``--detect-models gc,gc-robust``: minidet's whole detection (``minidet.detect``, each
   model with its own settings), timed next to the original's ``detect_events``, with the
   number of events each finds.

It prints the CPU, wall times, peak memory (max RSS of each child process from
``os.wait4``), the speed-up and memory ratio, and the accuracy: the largest difference of
the strided scores where either exceeds 0.05, against the plain float32 evaluation and
against the original's own scores. Without a usable original it prints minidet's figures
and says why the original was skipped. Not part of the test suite.

Usage::

    bash benchmarks/setup_miniml_venv.sh /work/miniml-venv
    python benchmarks/predict_speed.py --miniml-venv /work/miniml-venv
    python benchmarks/predict_speed.py --miniml-venv /work/miniml-venv --no-full-check --lazy
    python benchmarks/predict_speed.py --miniml-venv /work/miniml-venv --no-full-check --detect-models gc,gc-robust

On a machine shared with other jobs the wall-clock ratios mean little (a busy machine
slows each child by a different amount); the CPU-time ratio is the steadier figure.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_MINIML_MODEL = ROOT.parent / "shared" / "models" / "miniml" / "GC_lstm_model.h5"


# ------------------------------------------------------------------------------ data
def simulate(seconds: float, fs: float, rate_hz: float = 3.0, noise_sd: float = 1.5,
             seed: int = 2) -> np.ndarray:
    """GC-like events in coloured noise, pA."""
    from scipy.signal import lfilter

    rng = np.random.default_rng(seed)
    n = int(round(seconds * fs))
    white = rng.standard_normal(n)
    red = lfilter([1.0], [1.0, -0.95], rng.standard_normal(n))
    x = 0.7 * white / white.std() + 0.7 * red / red.std()
    x *= noise_sd / x.std()
    t = np.arange(n) / fs
    x += 2.0 * np.sin(2 * np.pi * 0.2 * t + rng.uniform(0, 6)) + 0.3 * np.sin(2 * np.pi * 50 * t)
    onsets = np.sort(rng.integers(0, n - 1, rng.poisson(rate_hz * seconds)))
    amps = rng.uniform(-50, -10, onsets.size)
    tk = np.arange(int(0.018 * fs)) / fs
    kernel = (1 - np.exp(-tk / 3e-4)) * np.exp(-tk / 1.5e-3)
    kernel /= kernel.max()
    spikes = np.zeros(n)
    np.add.at(spikes, onsets, amps)
    return x + np.convolve(spikes, kernel)[:n]


def write_h5(path: Path, x: np.ndarray, fs: float) -> None:
    import h5py

    with h5py.File(path, "w") as f:
        f.create_dataset("mini_data", data=x)  # pA
        f.attrs["sampling"] = 1.0 / fs


# ------------------------------------------------------------------------------ children
# every child: its start time and its own peak memory (VmHWM) at the end
_CHILD = textwrap.dedent("""
    import json, sys, time
    t0 = time.perf_counter()
    def vm_hwm_mb():
        for line in open("/proc/self/status"):
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
        return None
""")

ORIGINAL = _CHILD + textwrap.dedent("""
    import h5py, numpy as np
    from miniml.core.event import EventDetection
    from miniml.core.trace import MiniTrace
    h5, model, out = sys.argv[1:4]
    with h5py.File(h5, "r") as f:
        data = f["mini_data"][:]; dt = float(f.attrs["sampling"])
    trace = MiniTrace(data=data, sampling_interval=dt, y_unit="pA")
    det = EventDetection(data=trace, model=model, window_size=600, model_threshold=0.5,
                         batch_size=512, event_direction="negative",
                         training_direction="negative", compile_model=True, verbose=0)
    timing = {}
    inner = det._EventDetection__predict
    def timed():
        t = time.perf_counter(); inner(); timing["predict_s"] = time.perf_counter() - t
        timing["scores"] = np.asarray(det.prediction, dtype=np.float32)
    det._EventDetection__predict = timed
    t = time.perf_counter()
    det.detect_events(stride=20, eval=False, resample_to_600=True)
    timing["detect_s"] = time.perf_counter() - t
    np.save(out, timing.pop("scores"))
    timing["n_events"] = int(len(det.event_locations))
    timing["vm_hwm_mb"] = vm_hwm_mb()
    timing["setup_s"] = t - t0
    print("RESULT " + json.dumps(timing))
""")

MINIDET = _CHILD + textwrap.dedent("""
    import h5py, numpy as np
    from minidet.recording import Recording
    from minidet.detection.predict import predict
    from minidet.model import load_model
    h5, out, mode, engine, lazy = sys.argv[1:6]
    f = h5py.File(h5, "r")
    dt = float(f.attrs["sampling"])
    if lazy == "lazy":  # samples read from the file on demand, piece by piece
        from minidet.recording import LazyTrace
        ds = f["mini_data"]
        rec = Recording(LazyTrace(ds.shape[0], lambda a, b: ds[a:b], "HDF5 mini_data"), 1.0 / dt, unit="pA")
    else:
        rec = Recording(f["mini_data"][:], 1.0 / dt, unit="pA")
    model = load_model("gc")
    t = time.perf_counter()
    pred = predict(rec, model, mode=mode, engine=engine, progress=False)
    elapsed = time.perf_counter() - t
    pred.values  # the full-grid array, made on first access: part of the work
    elapsed_values = time.perf_counter() - t
    np.save(out, pred.scores)
    print("RESULT " + json.dumps({"predict_s": elapsed, "values_s": elapsed_values, "setup_s": t - t0, "vm_hwm_mb": vm_hwm_mb(),
                                  "n_windows": pred.n_windows, "n_evaluated": pred.n_evaluated}))
""")


MINIDET_DETECT = _CHILD + textwrap.dedent("""
    import h5py
    from minidet import detect
    from minidet.recording import Recording
    h5, model = sys.argv[1:3]
    with h5py.File(h5, "r") as f:
        rec = Recording(f["mini_data"][:], 1.0 / float(f.attrs["sampling"]), unit="pA")
    t = time.perf_counter()
    result = detect(rec, model, progress=False)
    elapsed = time.perf_counter() - t
    auto = result.info.get("auto_threshold")
    print("RESULT " + json.dumps({"detect_s": elapsed, "setup_s": t - t0, "vm_hwm_mb": vm_hwm_mb(),
                                  "n_events": int(len(result.events)), "threshold": result.settings.threshold,
                                  "auto": auto is not None}))
""")


def run_measured(cmd: list[str], timeout: float) -> dict:
    """Run a child; its RESULT json plus wall_s and its own peak RSS (os.wait4), or an error."""
    import threading

    t = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    chunks: dict[str, str] = {}

    def drain(name, stream):
        chunks[name] = stream.read()

    threads = [threading.Thread(target=drain, args=(n, s)) for n, s in
               (("out", proc.stdout), ("err", proc.stderr))]
    for th in threads:
        th.start()
    timer = threading.Timer(timeout, proc.kill)
    timer.start()
    _, status, usage = os.wait4(proc.pid, 0)
    timer.cancel()
    wall = time.perf_counter() - t
    for th in threads:
        th.join()
    proc.returncode = os.waitstatus_to_exitcode(status)
    result: dict = {"wall_s": wall, "returncode": proc.returncode,
                    "max_rss_mb": usage.ru_maxrss / 1024.0,
                    "cpu_s": usage.ru_utime + usage.ru_stime}
    for line in chunks.get("out", "").splitlines():
        if line.startswith("RESULT "):
            result.update(json.loads(line[7:]))
    # ru_maxrss also counts what the forked parent held before exec; the child's own VmHWM
    # (read by the child at its end) does not
    if result.get("vm_hwm_mb"):
        result["max_rss_mb"] = result["vm_hwm_mb"]
    if proc.returncode != 0 or not {"predict_s", "detect_s"} & result.keys():
        err = chunks.get("err", "").strip().splitlines() or ["no output"]
        result["error"] = err[-1][:300]
    return result


# ------------------------------------------------------------------------------ report
def cpu_model() -> str:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
        info = dict(line.split(":", 1) for line in out.splitlines() if ":" in line)
        name = info.get("Model name", "?").strip()
        flags = info.get("Flags", "")
        ext = [f for f in ("avx2", "avx512f", "avx512_bf16", "amx_tile") if f in flags.split()]
        return f"{name} ({info.get('CPU(s)', '?').strip()} CPUs; {' '.join(ext)})"
    except (OSError, subprocess.CalledProcessError):
        return platform.processor() or "unknown"


def engine_timing(n_windows: int = 2048, batch: int = 128) -> None:
    """ms per window of the plain and the fast scorer on one thread (random windows)."""
    import torch

    from minidet.detection.scorer import WindowScorer
    from minidet.model import load_model

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        network = load_model("gc").network
        x = np.random.default_rng(0).random((n_windows, network.window_size), dtype=np.float32)
        for engine in ("plain", "fast"):
            scorer = WindowScorer(network, torch.device("cpu"), engine)
            scorer(x[:batch])
            best = float("inf")
            for _ in range(2):
                t = time.process_time()
                for i in range(0, n_windows, batch):
                    scorer(x[i:i + batch])
                best = min(best, time.process_time() - t)
            print(f"scorer {engine:5s}: {1000 * best / n_windows:.3f} ms of CPU per window "
                  f"(one thread, batches of {batch})")
    finally:
        torch.set_num_threads(threads)


def bound_error(a: np.ndarray, b: np.ndarray, level: float = 0.05) -> float:
    n = min(a.size, b.size)
    a, b = a[:n], b[:n]
    mask = (a > level) | (b > level)
    return float(np.abs(a - b)[mask].max()) if mask.any() else 0.0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--miniml-venv", type=Path, help="virtual environment holding miniml-detect 1.1.2")
    ap.add_argument("--miniml-model", type=Path, default=DEFAULT_MINIML_MODEL,
                    help="miniML's GC_lstm_model.h5 (default: ../shared/models/miniml/)")
    ap.add_argument("--seconds", type=float, default=120.0, help="recording length (s)")
    ap.add_argument("--fs", type=float, default=50_000.0, help="sampling rate (Hz)")
    ap.add_argument("--trace", type=Path, help="use this HDF5 file (dataset mini_data, attr sampling)")
    ap.add_argument("--no-full-check", action="store_true",
                    help="skip the plain float32 evaluation of every window")
    ap.add_argument("--keep", type=Path, help="keep the trace and scores in this folder")
    ap.add_argument("--engine-timing", action="store_true",
                    help="also time the plain and the fast scorer per window (one thread)")
    ap.add_argument("--lazy", action="store_true",
                    help="minidet reads the samples from the HDF5 file on demand (a LazyTrace) "
                         "instead of loading them first")
    ap.add_argument("--timeout", type=float, default=1800.0, help="per child process (s)")
    ap.add_argument("--detect-models", default="",
                    help="comma-separated minidet models whose whole detection (minidet.detect, the model's own "
                         "settings) is timed next to the original's detect_events, e.g. gc,gc-robust")
    args = ap.parse_args(argv)

    work = Path(tempfile.mkdtemp(prefix="minidet-bench-"))
    try:
        if args.trace:
            h5 = args.trace
        else:
            h5 = work / "trace.h5"
            write_h5(h5, simulate(args.seconds, args.fs), args.fs)
        import h5py

        with h5py.File(h5, "r") as f:
            n = f["mini_data"].shape[0]
            fs = 1.0 / float(f.attrs["sampling"])
        print(f"CPU: {cpu_model()}")
        print(f"python {platform.python_version()}, load average before: {os.getloadavg()[0]:.2f}")
        print(f"recording: {n:,} samples, {n / fs:.1f} s at {fs:g} Hz ({h5})")
        print(f"windows: 600 samples every 20 -> {(n - 600) // 20 + 1:,}")

        original: dict | None = None
        reason = ""
        py = args.miniml_venv / "bin" / "python" if args.miniml_venv else None
        if py is None:
            reason = "no --miniml-venv given"
        elif not py.exists():
            reason = f"{py} does not exist (run benchmarks/setup_miniml_venv.sh)"
        elif not args.miniml_model.exists():
            reason = f"miniML model file {args.miniml_model} not found (--miniml-model)"
        else:
            original = run_measured([str(py), "-c", ORIGINAL, str(h5), str(args.miniml_model),
                                     str(work / "original.npy")], args.timeout)
            if "error" in original:
                reason = f"the original failed: {original['error']}"
                original = None

        ours = run_measured([sys.executable, "-c", MINIDET, str(h5), str(work / "minidet.npy"),
                             "fast", "fast", "lazy" if args.lazy else "memory"], args.timeout)
        if "error" in ours:
            print(f"minidet failed: {ours['error']}")
            return 1
        full = None
        if not args.no_full_check:
            full = run_measured([sys.executable, "-c", MINIDET, str(h5), str(work / "full.npy"),
                                 "full", "plain", "memory"], args.timeout)
        detections = {}
        for name in [m.strip() for m in args.detect_models.split(",") if m.strip()]:
            detections[name] = run_measured([sys.executable, "-c", MINIDET_DETECT, str(h5), name], args.timeout)
        print(f"load average after: {os.getloadavg()[0]:.2f}")

        print()
        print("wall-clock seconds of each stage; 'process' is the whole child process, 'CPU' its")
        print("user + system time (all threads), 'peak RSS' its maximum resident memory")
        print(f"{'':34s}{'prediction':>12s}{'detection':>12s}{'process':>10s}{'CPU':>9s}{'peak RSS':>11s}")
        if original is not None:
            print(f"{'original (miniML 1.1.2, TF)':34s}{original['predict_s']:11.1f}s"
                  f"{original['detect_s']:11.1f}s{original['wall_s']:9.1f}s{original['cpu_s']:8.1f}s"
                  f"{original['max_rss_mb']:8.0f} MB")
        label = "minidet predict (fast, lazy file)" if args.lazy else "minidet predict (fast mode)"
        print(f"{label:34s}{ours['predict_s']:11.1f}s{'':>12s}"
              f"{ours['wall_s']:9.1f}s{ours['cpu_s']:8.1f}s{ours['max_rss_mb']:8.0f} MB")
        if full is not None and "error" not in full:
            print(f"{'minidet plain float32, all windows':34s}{full['predict_s']:11.1f}s{'':>12s}"
                  f"{full['wall_s']:9.1f}s{full['cpu_s']:8.1f}s{full['max_rss_mb']:8.0f} MB")
        for name, d in detections.items():
            if "error" in d:
                print(f"minidet detect --model {name} failed: {d['error']}")
                continue
            label = f"minidet detect, {name}"
            print(f"{label:34s}{'':>12s}{d['detect_s']:11.1f}s{d['wall_s']:9.1f}s{d['cpu_s']:8.1f}s"
                  f"{d['max_rss_mb']:8.0f} MB   {d['n_events']} events at threshold {d['threshold']:g}"
                  f"{' (auto)' if d['auto'] else ''}")
        print(f"minidet scored {ours['n_evaluated']:,} of {ours['n_windows']:,} windows "
              f"({100 * ours['n_evaluated'] / ours['n_windows']:.1f} %); its full-grid values "
              f"took {ours['values_s'] - ours['predict_s']:.2f} s more")
        print()
        scores = np.load(work / "minidet.npy")
        if original is not None:
            print(f"speed-up, prediction vs prediction: {original['predict_s'] / ours['predict_s']:.1f}x")
            print(f"speed-up, prediction vs the original's detect_events: "
                  f"{original['detect_s'] / ours['predict_s']:.1f}x")
            for name, d in detections.items():
                if "error" not in d:
                    print(f"speed-up, detection vs detection, {name}: {original['detect_s'] / d['detect_s']:.1f}x "
                          f"(original: {original['n_events']} events)")
            print(f"speed-up, whole process: {original['wall_s'] / ours['wall_s']:.1f}x "
                  f"(CPU time: {original['cpu_s'] / ours['cpu_s']:.1f}x)")
            print(f"peak memory: {ours['max_rss_mb']:.0f} MB vs {original['max_rss_mb']:.0f} MB "
                  f"({ours['max_rss_mb'] / original['max_rss_mb']:.2f} of the original's)")
            tf_scores = np.load(work / "original.npy")
            print(f"accuracy vs the original's scores (TF float32, every window): max |diff| "
                  f"where either > 0.05 = {bound_error(scores, tf_scores):.2e}")
        else:
            print(f"original skipped: {reason}")
        if full is not None:
            if "error" in full:
                print(f"plain float32 check failed: {full['error']}")
            else:
                ref = np.load(work / "full.npy")
                err = bound_error(scores, ref)
                verdict = "OK" if err < 1e-3 else "OUT OF BOUND"
                print(f"accuracy vs plain float32 evaluation of every window: max |diff| where "
                      f"either > 0.05 = {err:.2e} ({verdict}, bound 1e-3)")
        if args.engine_timing:
            engine_timing()
        if args.keep:
            args.keep.mkdir(parents=True, exist_ok=True)
            for p in work.iterdir():
                shutil.copy2(p, args.keep / p.name)
        return 0
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
