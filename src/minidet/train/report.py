"""The training report: curves, ROC, confusion matrix and metrics as one PNG and one JSON file.

Written next to the model file by ``minidet train``: ``<name>.report.png`` and
``<name>.report.json`` for ``<name>.minidet.safetensors``. Both files are written atomically
(temporary file, then rename).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import OutputError
from ..model.modelfile import FILE_SUFFIX

__all__ = ["plot_report", "report_dict", "report_paths", "write_report"]

DPI = 110


def report_paths(model_path: str | os.PathLike) -> tuple[Path, Path]:
    """PNG and JSON report paths for a model file (``x.minidet.safetensors`` -> ``x.report.*``)."""
    path = Path(model_path)
    name = path.name
    for suffix in (FILE_SUFFIX, ".safetensors"):
        if name.endswith(suffix) and len(name) > len(suffix):
            name = name[: -len(suffix)]
            break
    else:
        name = path.stem or name
    return path.with_name(f"{name}.report.png"), path.with_name(f"{name}.report.json")


def report_dict(result: Any) -> dict:
    """Everything about a training run, JSON-ready: model metadata, provenance (dataset,
    settings, run), held-out metrics, per-epoch history and the ROC curve."""
    meta = result.metadata.to_dict()
    meta.pop("description", None)
    return {
        "format": "minidet-training-report",
        "model": meta,
        "description": result.metadata.description.split(" Provenance: ")[0],
        "provenance": result.provenance,
        "metrics": result.metrics.to_dict(),
        "history": {k: [float(v) for v in values] for k, values in result.history.items()},
        "roc": result.roc,
    }


def plot_report(result: Any):
    """A 2 x 2 figure: loss and accuracy per epoch (training and validation), ROC with AUC,
    confusion matrix at the suggested threshold. Returns a matplotlib Figure (no pyplot)."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(10, 8), dpi=DPI, layout="constrained")
    axes = fig.subplots(2, 2)
    hist = result.history
    epochs = np.arange(1, len(hist["loss"]) + 1)
    best = result.best_epoch
    for ax, key, label in ((axes[0, 0], "loss", "loss (binary cross-entropy)"),
                           (axes[0, 1], "accuracy", "accuracy")):
        ax.plot(epochs, hist[key], marker=".", label="training")
        ax.plot(epochs, hist[f"val_{key}"], marker=".", label="validation")
        if best:
            ax.axvline(best, color="0.5", ls="--", lw=1, label=f"best epoch ({best})")
        ax.set_xlabel("epoch")
        ax.set_ylabel(label)
        ax.legend(fontsize=8)
        ax.grid(alpha=0.3)
    if hist["loss"] and min(hist["loss"] + hist["val_loss"]) > 0:
        axes[0, 0].set_yscale("log")

    m = result.metrics
    ax = axes[1, 0]
    ax.plot([0, 1], [0, 1], ls="--", color="0.6", lw=1)
    ax.plot(result.roc["fpr"], result.roc["tpr"], marker=".", label=f"AUC = {m.auc:.3f}")
    thr = [np.inf if t is None else t for t in result.roc["thresholds"]]
    k = int(np.argmin(np.abs(np.asarray(thr) - m.threshold)))
    ax.plot(result.roc["fpr"][k], result.roc["tpr"][k], "o", color="C3",
            label=f"threshold {m.threshold:.3f}")
    ax.set_xlabel("false positive rate")
    ax.set_ylabel("true positive rate")
    ax.set_title(f"ROC on {m.n} held-out windows", fontsize=10)
    ax.legend(fontsize=8, loc="lower right")
    ax.set_xlim(-0.02, 1.02)
    ax.set_ylim(-0.02, 1.02)

    ax = axes[1, 1]
    cm = np.asarray(m.confusion)
    ax.imshow(cm, cmap="Blues", vmin=0)
    for i in range(2):
        for j in range(2):
            ax.text(j, i, str(cm[i, j]), ha="center", va="center",
                    color="white" if cm[i, j] > cm.max() / 2 else "black", fontsize=14)
    ax.set_xticks([0, 1], ["no event", "event"])
    ax.set_yticks([0, 1], ["no event", "event"])
    ax.set_xlabel("predicted")
    ax.set_ylabel("scored")
    ax.set_title(f"threshold {m.threshold:.3f}: accuracy {m.accuracy_at_threshold:.3f}, "
                 f"MCC {m.mcc:.3f}", fontsize=10)
    c = result.provenance["dataset"]["counts"]
    fig.suptitle(f"{result.metadata.name}: {result.provenance['mode']} on "
                 f"{result.provenance['dataset']['name']} ({c['events']} events, "
                 f"{c['non_events']} non-events); held-out accuracy {m.accuracy:.3f}",
                 fontsize=11)
    return fig


def write_report(result: Any, model_path: str | os.PathLike,
                 overwrite: bool = False) -> tuple[Path, Path]:
    """Write ``<name>.report.png`` and ``<name>.report.json`` next to ``model_path``.

    Raises
    ------
    OutputError
        A report file exists and ``overwrite`` is False, or the folder does not exist.
    """
    from ..report.writers import atomic_path, atomic_write, jsonable

    png, js = report_paths(model_path)
    if not png.parent.is_dir():
        raise OutputError(f"folder does not exist: {png.parent}")
    if not overwrite:
        for path in (png, js):
            if path.exists():
                raise OutputError(f"{path} exists; pass overwrite=True (--force) to replace it")
    data = report_dict(result)
    with atomic_write(js) as fh:
        json.dump(jsonable(data), fh, indent=2)
        fh.write("\n")
    fig = plot_report(result)
    with atomic_path(png) as tmp:
        fig.savefig(tmp, format="png", dpi=DPI)
    return png, js
