"""Peak memory of reading a long recording on demand: ``minidet.load`` + a walk over all of it.

Writes a recording of ``--seconds`` (default 1 h) at 50 kHz to a temporary folder in four
layouts -- HDF5 int16 with a scale (by :func:`minidet.simulation.simulate_to_file`, whose
own peak memory is printed too), HDF5 float32, ABF1 int16 (gap-free) and .npy float32, the
last three converted block by block from the first -- then, for each, runs in a child::

    import minidet; r = minidet.load(PATH); [None for _ in r.chunks()]

and prints the child's peak resident memory (``VmHWM``) next to the size
the trace would have as float64 in memory. ``--eager`` adds the same for ``lazy=False`` on
the HDF5 float32 file (everything read into memory, as before issue 11). The files are
deleted at the end unless ``--keep``. Memory figures do not depend on the machine's load.

Usage::

    python benchmarks/read_memory.py                  # 1 h at 50 kHz
    python benchmarks/read_memory.py --seconds 600 --eager
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time

import numpy as np

FS = 50_000.0
BLOCK = 1 << 22

# the child's own peak resident memory (VmHWM: this process image only; ru_maxrss would also
# count what the parent held when it forked)
HWM = ("; print([int(l.split()[1]) for l in open('/proc/self/status') if l.startswith('VmHWM:')][0])")
WALK = ("import minidet, sys; p = sys.argv[1]; "
        "r = minidet.load(p, lazy={lazy}, **({{'sampling_rate': 50000.0}} if p.endswith('.npy') else {{}})); "
        "[None for _ in r.chunks()]; print(r.is_lazy, r.n_samples)" + HWM)
SIMULATE = ("import sys; from minidet.simulation import SimulationSettings, simulate_to_file; "
            "simulate_to_file(sys.argv[1], SimulationSettings(duration_s=float(sys.argv[2]), sampling_rate={fs}, "
            "snr_db=20.0), seed=11, dtype='int16', overwrite=True)" + HWM)


def run(code: str, *args: str) -> tuple[float, float, str]:
    """Wall seconds, the child's peak RSS (MB) and the rest of its stdout, for ``python -c code args``."""
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", code, *args], stdout=subprocess.PIPE, text=True)
    if proc.returncode:
        raise SystemExit(f"child failed ({proc.returncode}): {code} {args}")
    lines = proc.stdout.strip().splitlines()
    return time.perf_counter() - start, int(lines[-1]) / 1024.0, " ".join(lines[:-1])


def convert(src: str, folder: str) -> dict[str, str]:
    """The int16 HDF5 trace as float32 HDF5, ABF1 int16 and float32 .npy, block by block."""
    import h5py

    from minidet.io.abf import Abf1Writer

    paths = {"hdf5 float32": os.path.join(folder, "f32.h5"), "abf1 int16": os.path.join(folder, "i16.abf"),
             "npy float32": os.path.join(folder, "f32.npy")}
    with h5py.File(src, "r") as h5:
        ds = h5["trace"]
        n, step, offset = ds.shape[0], float(ds.attrs["scale_factor"]), float(ds.attrs["add_offset"])
        with h5py.File(paths["hdf5 float32"], "w") as out, open(paths["abf1 int16"], "wb") as abf:
            f32 = out.create_dataset("trace", shape=(n,), dtype="float32", chunks=(1 << 18,))
            f32.attrs.update({"sampling_rate": FS, "unit": "pA"})
            npy = np.lib.format.open_memmap(paths["npy float32"], mode="w+", dtype=np.float32, shape=(n,))
            writer = Abf1Writer(abf, n, FS, "pA", step, offset)
            for a in range(0, n, BLOCK):
                raw = ds[a:a + BLOCK]
                values = (raw * step + offset).astype(np.float32)
                f32[a:a + raw.size] = values
                npy[a:a + raw.size] = values
                npy.flush()
                writer.write(raw)
            writer.close()
            del npy
    return paths


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=3600.0, help="Recording length (s) at 50 kHz.")
    ap.add_argument("--eager", action="store_true", help="Also read the float32 HDF5 file into memory.")
    ap.add_argument("--keep", action="store_true", help="Keep the files (prints the folder).")
    ap.add_argument("--dir", default=None, help="Folder for the temporary files [system temp].")
    args = ap.parse_args()
    folder = tempfile.mkdtemp(prefix="minidet-read-", dir=args.dir)
    n = int(round(args.seconds * FS))
    print(f"{args.seconds:g} s at {FS:g} Hz = {n} samples; as float64 in memory: {8 * n / 1e6:.0f} MB")
    try:
        src = os.path.join(folder, "i16.h5")
        wall, peak, _ = run(SIMULATE.format(fs=FS), src, str(args.seconds))
        print(f"simulate_to_file (HDF5 int16):  {wall:7.1f} s  peak RSS {peak:7.0f} MB")
        paths = {"hdf5 int16": src, **convert(src, folder)}
        for label, path in paths.items():
            wall, peak, out = run(WALK.format(lazy=None), path)
            size = os.path.getsize(path) / 1e6
            print(f"load + walk, {label:13s} ({size:6.0f} MB file): {wall:6.1f} s  peak RSS {peak:7.0f} MB  "
                  f"(is_lazy, n_samples: {out})")
        if args.eager:
            wall, peak, out = run(WALK.format(lazy=False), paths["hdf5 float32"])
            print(f"load + walk, hdf5 float32 with lazy=False:  {wall:6.1f} s  peak RSS {peak:7.0f} MB  "
                  f"(is_lazy, n_samples: {out})")
    finally:
        if args.keep:
            print(f"files kept in {folder}")
        else:
            shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
