"""Events each model finds on a real recording, and where they disagree (PNG + printed summary).

    python scripts/plot_abf_models.py                                  # ../shared/data/abf/05210017_vc_abf1.abf
    python scripts/plot_abf_models.py REC.abf --models gc,gc-robust --out docs/figures/abf_models.png --force

Each model runs with its own metadata (window, threshold, stride) on the whole recording (no
preprocessing). Events of two models within ``--tolerance-ms`` of each other count as the same
event. The figure shows the trace with a marker row per model, and zooms on the stretches with
the most disagreements; the text lists how many events are common and how many only one model
finds, with their median amplitude.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_REC = ROOT.parent / "shared" / "data" / "abf" / "05210017_vc_abf1.abf"
COLOURS = ("tab:blue", "tab:red", "tab:green", "tab:purple")


def _match(a: np.ndarray, b: np.ndarray, tol: int) -> tuple[np.ndarray, np.ndarray]:
    """Boolean masks: which of ``a`` have a partner in ``b`` within ``tol`` samples, and vice versa."""
    from minidet.evaluation import match_events

    pairs = match_events(a.astype(float), b.astype(float), tol, tol)
    ia = np.zeros(a.size, bool)
    ib = np.zeros(b.size, bool)
    pa, pb = pairs
    ia[np.asarray(pa, dtype=int)] = True
    ib[np.asarray(pb, dtype=int)] = True
    return ia, ib


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("recording", nargs="?", default=str(DEFAULT_REC))
    p.add_argument("--models", default="gc,gc-robust", help="two comma-separated model names or files")
    p.add_argument("--out", default=str(ROOT / "docs" / "figures" / "abf_models.png"))
    p.add_argument("--tolerance-ms", type=float, default=2.0)
    p.add_argument("--zooms", type=int, default=3)
    p.add_argument("--force", action="store_true", help="replace an existing figure")
    args = p.parse_args(argv)

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    import minidet
    from minidet.report.plots import minmax_decimate

    models = [m.strip() for m in args.models.split(",") if m.strip()]
    if len(models) != 2:
        sys.exit("error: give exactly two models to compare")
    if args.tolerance_ms <= 0 or args.zooms < 0:
        sys.exit("error: --tolerance-ms must be > 0 and --zooms >= 0")
    out = Path(args.out)
    if out.exists() and not args.force:
        sys.exit(f"error: {out} exists; pass --force to replace it")
    rec = minidet.load(args.recording)
    fs = rec.sampling_rate
    found = {}
    for m in models:
        res = minidet.detect(rec, m)
        ev = res.events
        found[m] = (ev["sample"].to_numpy().astype(np.int64), ev["amplitude"].to_numpy()
                    if "amplitude" in ev else np.full(len(ev), np.nan),
                    f"{res.settings.threshold:g}" + (", chosen by threshold=auto" if "auto_threshold" in res.info else ""))
    a, b = models
    tol = max(1, int(round(args.tolerance_ms * 1e-3 * fs)))
    in_a, in_b = _match(found[a][0], found[b][0], tol)
    only_a, only_b = found[a][0][~in_a], found[b][0][~in_b]
    lines = [f"{Path(args.recording).name}: {rec.n_samples / fs:.1f} s at {fs:g} Hz",
             f"{a}: {found[a][0].size} events (threshold {found[a][2]}); "
             f"{b}: {found[b][0].size} events (threshold {found[b][2]})",
             f"common (within {args.tolerance_ms:g} ms): {int(in_a.sum())}",
             f"only {a}: {only_a.size}, median |amplitude| {np.nanmedian(np.abs(found[a][1][~in_a])) if only_a.size else float('nan'):.1f} {rec.unit}",
             f"only {b}: {only_b.size}, median |amplitude| {np.nanmedian(np.abs(found[b][1][~in_b])) if only_b.size else float('nan'):.1f} {rec.unit}",
             f"common: median |amplitude| {a} {np.nanmedian(np.abs(found[a][1][in_a])) if in_a.any() else float('nan'):.1f} {rec.unit}"]
    print("\n".join(lines))

    # zooms: 200-ms stretches holding the most disagreements
    span = int(0.2 * fs)
    dis = np.sort(np.concatenate([only_a, only_b]))
    centres = []
    for _ in range(args.zooms):
        if dis.size == 0:
            break
        counts = np.searchsorted(dis, dis + span) - np.arange(dis.size)
        k = int(np.argmax(counts))
        centres.append(int(dis[k]) + span // 2)
        dis = dis[(dis < dis[k]) | (dis >= dis[k] + span)]
    n_rows = 1 + len(centres)
    fig, axes = plt.subplots(n_rows, 1, figsize=(13, 2.6 * n_rows), squeeze=False)
    x = rec.samples
    t, y = minmax_decimate(x, 4000, fs)
    ax = axes[0, 0]
    ax.plot(t, y, color="0.4", lw=0.5)
    lo, hi = np.percentile(x, [0.2, 99.8])  # stimulus artefacts would squash the trace
    for i, m in enumerate(models):
        pos = found[m][0]
        ax.plot(pos / fs, np.full(pos.size, hi + (i + 1) * 0.08 * (hi - lo)), "|", color=COLOURS[i], ms=8,
                label=f"{m} ({pos.size})")
    ax.set_ylim(lo - 0.1 * (hi - lo), hi + (len(models) + 1) * 0.08 * (hi - lo))
    ax.set_title(f"{Path(args.recording).name}: events per model ({int(in_a.sum())} common, "
                 f"{only_a.size} only {a}, {only_b.size} only {b})", fontsize=10)
    ax.set_xlabel("time (s)")
    ax.set_ylabel(rec.unit)
    ax.legend(loc="lower right", fontsize=8, ncol=2)
    for row, c in enumerate(centres, start=1):
        ax = axes[row, 0]
        s0, s1 = max(0, c - span), min(x.size, c + span)
        tt = np.arange(s0, s1) / fs
        ax.plot(tt, x[s0:s1], color="0.3", lw=0.6)
        seg = x[s0:s1]
        top, bottom = seg.max(), seg.min()
        for i, m in enumerate(models):
            pos = found[m][0]
            pos = pos[(pos >= s0) & (pos < s1)]
            ax.plot(pos / fs, np.full(pos.size, top + (i + 1) * 0.1 * (top - bottom)), "v", color=COLOURS[i],
                    ms=6, label=m)
            ax.vlines(pos / fs, bottom, top, color=COLOURS[i], lw=0.6, alpha=0.5)
        ax.set_title(f"zoom {s0 / fs:.2f}-{s1 / fs:.2f} s", fontsize=9)
        ax.set_ylabel(rec.unit)
        if row == 1:
            ax.legend(loc="lower right", fontsize=8)
    axes[-1, 0].set_xlabel("time (s)")
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.stem + ".tmp" + out.suffix)
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    tmp.replace(out)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
