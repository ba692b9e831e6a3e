"""Batch speed: serial against two local workers against a Dask LocalCluster.

Simulates N recordings (default 20 x 60 s at 50 kHz, GC-like events), analyses them with
``run_batch`` three ways, side by side in one run, and prints wall-clock times, speed-ups
over the serial run and the peak memory (RSS) of each worker process:

- serial: ``workers=1``, in this process, torch threads = all cores (what a loop over
  ``minidet detect`` does);
- serial-1t: the same with one torch thread (so the speed-ups of the parallel runs over it
  show what the processes add, apart from torch's own threads);
- local: ``workers=2`` worker processes, one torch thread each (the default on 2 cores);
- dask: a ``LocalCluster(n_workers=2, threads_per_worker=1, processes=True)`` on 127.0.0.1.

Times include starting the worker processes and loading the model in each (not starting
the cluster, which a user has running). Every run writes into a fresh folder, and the
script checks that the three give the same events.

    python benchmarks/batch_speed.py                      # the full benchmark
    python benchmarks/batch_speed.py --n 6 --duration 10  # smaller
"""

from __future__ import annotations

import argparse
import math
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path


def simulate_inputs(folder: Path, n: int, duration_s: float, rate: float) -> None:
    from minidet.simulation import SimulationSettings, simulate_to_file

    folder.mkdir(parents=True, exist_ok=True)
    settings = SimulationSettings(duration_s=duration_s, sampling_rate=rate, amplitude_median=12.0,
                                  event_rate_hz=5.0)
    for i in range(n):
        # the truth files (cellNNN.truth.h5) are not picked up as recordings
        simulate_to_file(str(folder / f"cell{i:03d}.h5"), settings, seed=i, dtype="float32")


def cpu_seconds() -> float:
    """User + system CPU seconds of this process and of its children that have exited."""
    import resource

    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def per_worker_peak(result) -> dict[str, float]:
    table = result.recordings
    return table.groupby("worker")["peak_rss_mb"].max().to_dict()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=20, help="recordings (default 20)")
    parser.add_argument("--duration", type=float, default=60.0, help="seconds per recording (default 60)")
    parser.add_argument("--rate", type=float, default=50_000.0, help="sampling rate, Hz (default 50000)")
    parser.add_argument("--workers", type=int, default=2, help="local and Dask workers (default 2)")
    parser.add_argument("--model", default="gc", help="model (default gc)")
    parser.add_argument("--stride", type=int, default=None, help="stride override, samples [model default]")
    parser.add_argument("--no-dask", action="store_true", help="skip the LocalCluster run")
    parser.add_argument("--repeat", type=int, default=1,
                        help="run every mode this often, interleaved, and keep the fastest (default 1)")
    parser.add_argument("--keep", default=None, help="folder to keep inputs and results in [a temporary one]")
    args = parser.parse_args()

    import minidet
    from minidet.batch import BatchSettings, run_batch
    from minidet.batch.pool import _cores

    root = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="minidet-batch-bench-"))
    data = root / "inputs"
    try:
        t0 = time.perf_counter()
        simulate_inputs(data, args.n, args.duration, args.rate)
        sim_s = time.perf_counter() - t0
        size_mb = sum(p.stat().st_size for p in data.glob("cell???.h5")) / 2**20
        detect = {"stride": args.stride} if args.stride else {}
        settings = BatchSettings(model=args.model, detect=detect)
        cores = _cores()
        print(f"minidet {minidet.__version__} batch benchmark: {args.n} recordings x {args.duration:g} s at "
              f"{args.rate:g} Hz ({size_mb:.0f} MiB, simulated in {sim_s:.1f} s), model {args.model}"
              f"{f', stride {args.stride}' if args.stride else ''}; {cores} cores, {os.cpu_count()} CPUs")

        runs: dict[str, tuple[float, object, float, float]] = {}
        cpu_before: dict[str, float] = {}

        def record_cpu(label: str) -> None:
            secs, result, load, _ = runs[label]
            runs[label] = (secs, result, load, cpu_seconds() - cpu_before[label])

        def timed(label: str, **kwargs) -> None:
            out = root / f"out-{label}"
            shutil.rmtree(out, ignore_errors=True)
            cpu_before[label] = cpu_seconds()
            t = time.perf_counter()
            result = run_batch([data], out, settings, progress=False, **kwargs)
            secs = time.perf_counter() - t
            load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
            if label not in runs or secs < runs[label][0]:
                runs[label] = (secs, result, load, math.nan)
            if label != "dask":  # the cluster's workers are counted once they have exited
                record_cpu(label)
            if not result.ok:
                print(f"  {label}: {result.n_failed} failed: {result.failures['error'].tolist()[:3]}")

        for _ in range(max(1, args.repeat)):
            timed("serial", workers=1)
            timed("serial-1t", workers=1, threads_per_worker=1)
            timed("local", workers=args.workers, threads_per_worker=1)
            if not args.no_dask:
                from distributed import Client, LocalCluster

                # a fresh cluster each time (its start is not timed): its workers import torch
                # and load the model in their first task, as the local workers do
                with LocalCluster(n_workers=args.workers, threads_per_worker=1, processes=True,
                                  host="127.0.0.1", dashboard_address=None) as cluster, Client(cluster) as client:
                    client.wait_for_workers(args.workers)
                    timed("dask", client=client)
                record_cpu("dask")

        base, base1 = runs["serial"][0], runs["serial-1t"][0]
        total_audio = args.n * args.duration
        print(f"{'run':10s} {'workers':>7s} {'threads':>7s} {'wall s':>8s} {'x serial':>8s} {'x 1t':>6s} "
              f"{'rec s/wall s':>12s} {'cpu s':>7s} {'load':>5s}  peak RSS per worker (MiB)")
        for label, (secs, result, load, cpu) in runs.items():
            peaks = per_worker_peak(result)
            n_workers = 1 if label.startswith("serial") else args.workers
            threads = cores if label == "serial" else 1
            print(f"{label:10s} {n_workers:7d} {threads:7d} {secs:8.1f} {base / secs:8.2f} {base1 / secs:6.2f} "
                  f"{total_audio / secs:12.2f} {cpu:7.1f} {load:5.1f}  " + ", ".join(f"{v:.0f}" for v in sorted(peaks.values())))
        print("cpu s: CPU seconds of this process and its workers during the run (of the last repeat; dask's "
              "includes starting and stopping its workers); load: "
              "1-minute load average after the run (other processes share the cores); the serial runs' peak RSS "
              "is this process's")
        events = {label: r.events.sort_values(["recording", "event"]).reset_index(drop=True)
                  for label, (_, r, _, _) in runs.items()}
        ref = events["serial"]
        differ = [label for label, ev in events.items()
                  if len(ev) != len(ref) or (ev["sample"].to_numpy() != ref["sample"].to_numpy()).any()]
        print(f"events: {len(ref)} in the serial run; " +
              (f"DIFFERENT in {', '.join(differ)}" if differ else "the same events in every run"))
    finally:
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
