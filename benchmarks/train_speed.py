"""Transfer-learning speed: minidet's cached-feature training vs a plain epoch loop (and Keras).

miniML's documentation quotes about 80 s on a CPU for transfer learning on a dataset of 1000
windows. miniML's transfer-learning notebook (docs/training/TL_training.ipynb) trains with
early stopping (patience 15) and reports its best epoch as 6, so its run ends after about 21
epochs; this script compares at 21 epochs (``--epochs``), every method with the same data,
split, batch size (64), learning rate and seed, early stopping off.

Methods, side by side:

* ``plain loop``: what a straightforward PyTorch port does: every epoch runs the whole
  network (``MiniMLNet.logits``) with the conv layers frozen. Timed over ``--plain-epochs``
  epochs and extrapolated to ``--epochs`` (it is slow).
* ``minidet, no cache``: ``train_model(..., cache_features=False)``: the whole network every
  epoch (to separate the gain of caching from the rest of the loop).
* ``minidet``: ``train_model`` as shipped: the frozen conv stack runs once per window; with
  two threads the LSTM's two directions run at the same time, one per thread
  (``minidet.train.fast_lstm.TwoThreadBiLSTM``), with one thread plain ``nn.LSTM``.
* ``keras``: miniML's recipe in TensorFlow/Keras (conv and batch-norm layers frozen,
  ``model.fit``), run with ``--keras-python`` (a Python with TensorFlow, e.g. the one from
  benchmarks/setup_miniml_venv.sh); skipped when that Python is missing.

Below the table, ``floor``: the time the BiLSTM's matrix products alone need for the same
number of steps (``lstm_matmul_floor``), the least any LSTM kernel can take on this machine.

The table's last column, ``vs keras``, is Keras' total time over the row's (the figure that
counts: both measured in the same run); ``vs 80 s`` compares with miniML's quoted time. Timings
taken while the machine runs other work are not comparable between runs.

Data: 1000 windows (500 events, 500 non-events) of 600 samples made from the 172 scored
snippets of gc_training_example.h5 (score 0/1), each copy scaled (0.8-1.25), shifted
(+-30 samples) and given extra noise; 80/20 split. Copies of one snippet can fall on both sides
of the split, so held-out accuracy here is optimistic: it compares the methods, it does not
measure generalisation.

With ``--gc-example`` it instead shows the real-data workflow: transfer learning from gc on
gc_training_example.h5 with the default settings (held-out accuracy), then detection with the
new model and with gc on public30.h5 (30 s of miniML's simulated GC recording, 98 true events),
each detection matched to the truth (within -1..+3 ms of the true onset).

Usage: python benchmarks/train_speed.py [--epochs 21] [--threads 1 2] [--plain-epochs 2]
       python benchmarks/train_speed.py --gc-example [--threads 1]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# As `minidet train` does: OpenMP threads sleep instead of spinning while they wait (set before
# torch loads). Run with OMP_WAIT_POLICY=ACTIVE to see the spinning default.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import h5py  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from minidet.model import load_model  # noqa: E402
from minidet.train.fit import TrainSettings, train_model  # noqa: E402
from minidet.train.prepare import prepare_data  # noqa: E402
from minidet.train.metrics import accuracy  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
DATASET = ROOT.parent / "shared" / "data" / "miniml" / "gc_training_example.h5"
REFERENCE_SECONDS = 80.0
DEFAULT_KERAS_PYTHON = "/work/miniml-venv/bin/python"


def make_dataset(n: int = 1000, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """n windows (half events) from the real scored snippets, with jitter (see module doc)."""
    with h5py.File(DATASET, "r") as fh:
        events = fh["events"][()]
        scores = fh["scores"][()]
    rng = np.random.default_rng(seed)
    windows, labels = [], []
    for cls in (1, 0):
        pool = events[scores == cls]
        for _ in range(n // 2):
            w = pool[rng.integers(pool.shape[0])].copy()
            base = np.median(w[:50])
            w = (w - base) * rng.uniform(0.8, 1.25) + base
            shift = int(rng.integers(-30, 31))
            if shift > 0:
                w = np.r_[np.full(shift, w[0]), w[:-shift]]
            elif shift < 0:
                w = np.r_[w[-shift:], np.full(-shift, w[-1])]
            noise_sd = np.median(np.abs(np.diff(w))) / 0.6745 / np.sqrt(2)
            w = w + rng.normal(0, 0.5 * noise_sd, w.size)
            windows.append(w)
            labels.append(cls)
    order = rng.permutation(len(labels))
    return np.asarray(windows)[order], np.asarray(labels)[order]


def plain_loop(windows, labels, settings: TrainSettings, epochs: int) -> dict:
    """The straightforward loop: MiniMLNet.logits on every batch of every epoch."""
    torch.manual_seed(settings.seed)
    base = load_model("gc")
    net = base.network
    data = prepare_data(windows, labels, settings.resolved(True), base.input_size, "negative")
    for p in net.blocks.parameters():
        p.requires_grad_(False)
    opt = torch.optim.Adam([p for p in net.parameters() if p.requires_grad],
                           lr=settings.learning_rate, eps=1e-8, amsgrad=True)
    loss_fn = torch.nn.BCEWithLogitsLoss()
    x, y = torch.from_numpy(data.x_train), torch.from_numpy(data.y_train)
    xv = torch.from_numpy(data.x_val)
    gen = torch.Generator().manual_seed(settings.seed)
    t0 = time.perf_counter()
    for _ in range(epochs):
        net.train()
        for block in net.blocks:
            block.eval()
        order = torch.randperm(x.shape[0], generator=gen)
        for i in range(0, x.shape[0], 64):
            idx = order[i:i + 64]
            opt.zero_grad()
            loss_fn(net.logits(x[idx]), y[idx]).backward()
            opt.step()
        net.eval()
        with torch.no_grad():
            val = net(xv).numpy()
    seconds = time.perf_counter() - t0
    return {"seconds": seconds, "epochs": epochs,
            "accuracy": accuracy(data.y_val.astype(int), (val >= 0.5).astype(int))}


_KERAS_SCRIPT = r"""
import json, sys, time, numpy as np, tensorflow as tf
data = np.load(sys.argv[1]); epochs = int(sys.argv[2]); lr = float(sys.argv[3]); seed = int(sys.argv[4])
tf.keras.utils.set_random_seed(seed)
model = tf.keras.models.load_model(sys.argv[5], compile=False)
for layer in model.layers:
    if isinstance(layer, (tf.keras.layers.Conv1D, tf.keras.layers.BatchNormalization)):
        layer.trainable = False
    if isinstance(layer, tf.keras.layers.Dropout):
        layer.rate = 0.5
model.compile(optimizer=tf.keras.optimizers.Adam(learning_rate=lr, epsilon=1e-8, amsgrad=True),
              loss="binary_crossentropy", metrics=["accuracy"])
t0 = time.perf_counter()
hist = model.fit(data["x_train"][..., None], data["y_train"],
                 validation_data=(data["x_val"][..., None], data["y_val"]),
                 epochs=epochs, batch_size=64, shuffle=True, verbose=0)
seconds = time.perf_counter() - t0
pred = model.predict(data["x_val"][..., None], verbose=0).ravel()
print(json.dumps({"seconds": seconds, "val_loss": float(min(hist.history["val_loss"])),
                  "accuracy": float(np.mean((pred >= 0.5) == (data["y_val"] >= 0.5)))}))
"""


def keras_run(python: str, windows, labels, settings: TrainSettings, epochs: int) -> dict | None:
    settings = settings.resolved(True)
    base = load_model("gc")
    data = prepare_data(windows, labels, settings, base.input_size, "negative")
    h5 = ROOT.parent / "shared" / "models" / "miniml" / "GC_lstm_model.h5"
    with tempfile.TemporaryDirectory() as tmp:
        npz = Path(tmp) / "data.npz"
        np.savez(npz, x_train=data.x_train, y_train=data.y_train, x_val=data.x_val, y_val=data.y_val)
        script = Path(tmp) / "keras_tl.py"
        script.write_text(_KERAS_SCRIPT)
        env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", CUDA_VISIBLE_DEVICES="")
        proc = subprocess.run([python, str(script), str(npz), str(epochs), str(settings.learning_rate),
                               str(settings.seed), str(h5)], capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        print(f"keras run failed:\n{proc.stderr[-2000:]}", file=sys.stderr)
        return None
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _match(truth_samples: np.ndarray, detected: np.ndarray, fs: float) -> tuple[int, int, int]:
    """Greedy one-to-one matching: a detection within -1..+3 ms of a true onset is a hit."""
    lo, hi = -int(0.001 * fs), int(0.003 * fs)
    used = np.zeros(detected.size, bool)
    hits = 0
    for onset in np.sort(truth_samples):
        d = detected - onset
        ok = np.flatnonzero((d >= lo) & (d <= hi) & ~used)
        if ok.size:
            used[ok[np.argmin(np.abs(d[ok]))]] = True
            hits += 1
    return hits, int(detected.size - hits), int(truth_samples.size - hits)


def gc_example(threads: int) -> None:
    """Transfer learning on the real GC snippets, then detection on public30.h5."""
    import minidet

    shared = ROOT.parent / "shared"
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "gc-tl.minidet.safetensors"
        t0 = time.perf_counter()
        res = train_model(DATASET, base="gc", name="gc-tl",
                          settings=TrainSettings(device="cpu", num_threads=threads), progress=False)
        res.save(out)
        print(f"transfer learning on {DATASET.name} ({time.perf_counter() - t0:.1f} s, {threads} thread(s)):")
        print("  " + res.summary().replace("\n", "\n  "))
        rec = minidet.load(str(shared / "reference" / "public30.h5"), scale=1e12, unit="pA")
        truth = np.load(shared / "reference" / "public30_truth.npz")
        onsets = np.asarray(truth["onsets"])
        print(f"detection on public30.h5 ({rec.duration_s:.0f} s, {onsets.size} true events):")
        torch.set_num_threads(threads)
        for name, model in (("new model", str(out)), ("gc", "gc")):
            t0 = time.perf_counter()
            det = minidet.detect(rec, model=model)
            samples = det.events["sample"].to_numpy()
            hits, fp, fn = _match(onsets, samples, rec.sampling_rate)
            p = hits / max(samples.size, 1)
            r = hits / onsets.size
            f1 = 2 * p * r / (p + r) if p + r else 0.0
            thr = minidet.load_model(model).metadata.threshold
            print(f"  {name:<10} threshold {thr:.3f}: {samples.size} events, {hits} match the truth, "
                  f"{fp} false, {fn} missed: precision {p:.3f}, recall {r:.3f}, F1 {f1:.3f} "
                  f"({time.perf_counter() - t0:.0f} s)")


def lstm_matmul_floor(steps: int, batch: int = 64) -> dict:
    """Seconds that the BiLSTM's matrix products alone need for ``steps`` training steps.

    Per step and direction (T = 50 time steps of 80 conv features, 96 units, batch 64):
    the input projection (T*batch x 80 by 80 x 384), the recurrent products of the forward
    and the backward pass (T times batch x 96 by 96 x 384), and the two weight gradients
    (384 x T*batch by T*batch x 80 and by T*batch x 96). The input gradient is left out
    (the convolutions are frozen). Timed with torch's own matrix product on one core; the two
    directions run on the two cores at the same time, so a step takes one direction's time.
    Any LSTM kernel needs at least this; the element-wise gate arithmetic, the dense layers,
    validation and the optimizer come on top.
    """
    T, C, H = 50, 80, 96
    torch.set_num_threads(1)
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(T * batch, C, generator=gen)
    w_ih, w_hh = torch.randn(4 * H, C, generator=gen), torch.randn(4 * H, H, generator=gen)
    h, dg = torch.randn(batch, H, generator=gen), torch.randn(batch, 4 * H, generator=gen)
    dG, hs = torch.randn(T * batch, 4 * H, generator=gen), torch.randn(T * batch, H, generator=gen)
    out_in, out_step, out_h = torch.empty(T * batch, 4 * H), torch.empty(batch, 4 * H), torch.empty(batch, H)
    out_wih, out_whh = torch.empty(4 * H, C), torch.empty(4 * H, H)

    def one_step() -> None:
        torch.mm(x, w_ih.t(), out=out_in)
        for _ in range(T):
            torch.mm(h, w_hh.t(), out=out_step)
        for _ in range(T):
            torch.mm(dg, w_hh, out=out_h)
        torch.mm(dG.t(), x, out=out_wih)
        torch.mm(dG.t(), hs, out=out_whh)

    for _ in range(5):
        one_step()
    reps = 40
    t0 = time.perf_counter()
    for _ in range(reps):
        one_step()
    per_step = (time.perf_counter() - t0) / reps
    macs = T * batch * 4 * H * (C + H + H + C + H)
    return {"ms_per_step": per_step * 1e3, "seconds": per_step * steps,
            "gflops": 2 * macs / per_step / 1e9}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--epochs", type=int, default=21)
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--plain-epochs", type=int, default=2,
                        help="epochs actually run by the plain loop (extrapolated); 0 skips it")
    parser.add_argument("--no-uncached", action="store_true", help="skip minidet without cache")
    parser.add_argument("--keras-python", default=DEFAULT_KERAS_PYTHON,
                        help="Python with TensorFlow for the Keras run ('' skips it)")
    parser.add_argument("--gc-example", action="store_true",
                        help="real-data workflow instead: train on gc_training_example, detect on public30")
    args = parser.parse_args()
    if args.gc_example:
        gc_example(args.threads[0])
        return

    windows, labels = make_dataset()
    settings = TrainSettings(max_epochs=args.epochs, patience=args.epochs, device="cpu")
    print(f"dataset: {windows.shape[0]} windows x {windows.shape[1]} samples "
          f"({int(labels.sum())} events), 80/20 split; transfer learning from gc, "
          f"{args.epochs} epochs, batch 64, lr {settings.resolved(True).learning_rate:g}, "
          f"seed {settings.seed}; torch {torch.__version__}, {os.cpu_count()} CPUs, "
          f"OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY')}, load average {os.getloadavg()[0]:.1f}")
    rows = []
    for threads in args.threads:
        torch.set_num_threads(threads)
        if args.plain_epochs > 0:
            r = plain_loop(windows, labels, settings.resolved(True), args.plain_epochs)
            per = r["seconds"] / r["epochs"]
            rows.append((f"plain loop (MiniMLNet.logits), {r['epochs']} epochs run", threads,
                         per * args.epochs, per, None, None))
        if not args.no_uncached:
            res = train_model((windows, labels), base="gc",
                              settings=settings.replace(cache_features=False, num_threads=threads),
                              progress=False)
            rows.append(("minidet train, cache_features=False", threads, res.seconds,
                         res.seconds / res.epochs_run, res.metrics.accuracy,
                         min(res.history["val_loss"])))
        res = train_model((windows, labels), base="gc",
                          settings=settings.replace(num_threads=threads), progress=False)
        rows.append(("minidet train (conv features cached)", threads, res.seconds,
                     res.seconds / res.epochs_run, res.metrics.accuracy, min(res.history["val_loss"])))
    if args.keras_python and Path(args.keras_python).exists():
        r = keras_run(args.keras_python, windows, labels, settings, args.epochs)
        if r is not None:
            rows.append(("keras (miniML recipe, TF 2.15, model.fit)", "tf", r["seconds"],
                         r["seconds"] / args.epochs, r["accuracy"], r["val_loss"]))

    keras_total = next((row[2] for row in rows if row[1] == "tf"), None)
    steps = args.epochs * -(-int(round(0.8 * windows.shape[0])) // 64)
    floor = lstm_matmul_floor(steps)
    print(f"\n{'method':<52} {'threads':>7} {'total s':>8} {'s/epoch':>8} {'held-out acc':>12} "
          f"{'best val loss':>13} {'vs 80 s':>8} {'vs keras':>8}")
    for name, threads, total, per, acc, loss in rows:
        acc_s = "-" if acc is None else f"{acc:.3f}"
        loss_s = "-" if loss is None else f"{loss:.5f}"
        vs_keras = "-" if keras_total is None else f"{keras_total / total:.1f}x"
        print(f"{name:<52} {threads!s:>7} {total:8.1f} {per:8.2f} {acc_s:>12} {loss_s:>13} "
              f"{REFERENCE_SECONDS / total:7.1f}x {vs_keras:>8}")
    print(f"{'miniML documentation (CPU, 1000 windows)':<52} {'-':>7} {REFERENCE_SECONDS:8.1f}")
    print(f"\nfloor: the BiLSTM's matrix products alone take {floor['ms_per_step']:.1f} ms per training step "
          f"and direction on one core ({floor['gflops']:.0f} GFLOP/s), {floor['seconds']:.1f} s for the "
          f"{steps} steps with the two directions on two cores"
          + ("" if keras_total is None else
             f"; 4x Keras' time would be {keras_total / 4:.1f} s for everything"))
    print("\ntotal s for the plain loop is extrapolated from the epochs it ran; minidet's totals "
          "include caching the conv features and validation every epoch; with 2 threads minidet "
          "runs the LSTM's two directions in parallel, one thread each (fast_lstm.TwoThreadBiLSTM). "
          f"vs keras: Keras' total / the row's total (load average now {os.getloadavg()[0]:.1f}).")


if __name__ == "__main__":
    main()
