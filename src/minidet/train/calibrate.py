"""The detection threshold a trained model stores: chosen for continuous recordings.

The held-out snippets of a training run are balanced (about as many non-events as events),
but in a continuous recording noise windows outnumber event windows by hundreds to one. The
threshold that separates balanced snippets best (the ROC's optimum) is therefore far too
low for detection: it lets through the noise excursions that a recording holds by the
thousand. The model file gets one of these, in order of precedence:

1. ``user``: the threshold the user gave (a number, or ``"auto"`` for a threshold chosen
   on each recording, :mod:`minidet.detection.autothreshold`).
2. ``inherited``: transfer learning from a base model that chooses its threshold per
   recording (the default model) keeps doing so, with the base's confident level, peak
   smoothing and prominence.
3. ``recordings``: the training recordings themselves (the files the dataset's snippets
   were extracted from, or the ones given): the trained network scores each and its
   inverted trace, and the threshold with the best estimated F1 on the pooled counts wins
   (the per-recording rule of :mod:`~minidet.detection.autothreshold`, on all of them).
4. ``snippets``: without readable recordings, the held-out snippets with non-events
   weighted ``CONTINUOUS_PRIOR`` times: the threshold with the best F1 when every
   non-event window stands for that many windows of a recording.

Where recordings were scored (3, or 1-2 with recordings), the result holds each recording's
estimated precision and recall at the chosen threshold (estimated from the inverted trace:
peaks of the inverted trace can only be noise).
"""

from __future__ import annotations

import dataclasses
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ..errors import MinidetError, ParameterError

__all__ = ["CONTINUOUS_PRIOR", "ThresholdChoice", "choose_model_threshold", "dataset_recordings",
           "snippet_threshold"]

logger = logging.getLogger(__name__)

#: windows of a continuous recording that one held-out non-event window stands for when no
#: recording can be scored (a 50 kHz recording with 5 events per second has about 400 windows
#: of 600 samples per event at miniML's stride of 20; a few hundred is typical)
CONTINUOUS_PRIOR = 200.0


@dataclass(frozen=True)
class ThresholdChoice:
    """What the trained model stores, and why.

    Attributes
    ----------
    threshold : float
        The fixed threshold, or the confident level of a per-recording (auto) model.
    auto : bool
        Whether detection chooses the threshold per recording (``threshold="auto"``).
    rule : str
        ``"user"``, ``"inherited"``, ``"recordings"`` or ``"snippets"`` (module docstring).
    smoothing_steps, peak_prominence
        The locator settings the model stores with it (the base's when inherited).
    roc_optimal : float
        The ROC optimum on the balanced held-out snippets (what was stored before).
    recordings : list of dict
        Per scored recording: source, chosen threshold, estimated precision and recall.
    table : dict
        The pooled counts the ``recordings`` rule chose from, or the snippet rule's curve.
    """

    threshold: float
    auto: bool
    rule: str
    smoothing_steps: int = 1
    peak_prominence: float | None = None
    roc_optimal: float = float("nan")
    recordings: list = field(default_factory=list)
    table: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        out = dataclasses.asdict(self)
        out["roc_optimal"] = None if not np.isfinite(self.roc_optimal) else round(float(self.roc_optimal), 6)
        return out

    @classmethod
    def from_dict(cls, d: dict) -> "ThresholdChoice":
        """The inverse of :meth:`to_dict` (a model's ``provenance["threshold"]``)."""
        fields = {f.name for f in dataclasses.fields(cls)}
        kwargs = {k: v for k, v in d.items() if k in fields and v is not None}
        kwargs["roc_optimal"] = float(d["roc_optimal"]) if d.get("roc_optimal") is not None else float("nan")
        return cls(**kwargs)

    def sentence(self) -> str:
        """One line for the terminal and the report."""
        what = ("chosen per recording (auto; confident level "
                f"{self.threshold:.3g})" if self.auto else f"{self.threshold:.4g}")
        why = {"user": "as given",
               "inherited": "as the base model",
               "recordings": f"best estimated F1 on {len(self.recordings)} training recording(s)",
               "snippets": (f"best F1 on the held-out snippets with each non-event standing for "
                            f"{CONTINUOUS_PRIOR:g} windows of a recording (no recording to score)")}[self.rule]
        line = f"detection threshold {what}: {why}; balanced-snippet ROC optimum {self.roc_optimal:.3g}"
        if self.recordings:
            p = np.mean([r["precision_estimate"] for r in self.recordings])
            r = np.mean([r["recall_estimate"] for r in self.recordings])
            line += f"; on the recordings, estimated precision {p:.3f}, recall {r:.3f}"
        return line


def snippet_threshold(roc: dict, prior: float = CONTINUOUS_PRIOR) -> tuple[float, dict]:
    """The threshold with the best F1 when each held-out non-event stands for ``prior``
    windows of a recording; ties go to the higher threshold. ``roc``: fpr, tpr, thresholds."""
    fpr = np.asarray(roc["fpr"], dtype=np.float64)
    tpr = np.asarray(roc["tpr"], dtype=np.float64)
    thr = np.asarray(roc["thresholds"], dtype=np.float64)
    ok = np.isfinite(thr) & (thr > 0) & (thr < 1)
    if not ok.any():
        return 0.5, {"prior": prior}
    fpr, tpr, thr = fpr[ok], tpr[ok], thr[ok]
    precision = np.divide(tpr, tpr + prior * fpr, out=np.zeros_like(tpr), where=(tpr + prior * fpr) > 0)
    f1 = np.divide(2 * precision * tpr, precision + tpr, out=np.zeros_like(tpr), where=(precision + tpr) > 0)
    best = float(f1.max())
    k = int(np.flatnonzero(f1 >= best - 1e-12)[np.argmax(thr[f1 >= best - 1e-12])])
    return float(thr[k]), {"prior": prior, "f1_weighted": round(best, 4),
                           "precision_weighted": round(float(precision[k]), 4),
                           "recall": round(float(tpr[k]), 4)}


def dataset_recordings(dataset: Any) -> list[tuple[str, str | None]]:
    """The (file, channel) pairs a dataset's snippets were extracted from that can be read
    here: the dataset's ``cell_label`` where it names an existing file (as given, or beside
    the dataset file)."""
    from .dataset import Dataset, read_dataset

    if isinstance(dataset, (str, os.PathLike)):
        base = Path(dataset).parent
        ds = read_dataset(dataset)
    elif isinstance(dataset, Dataset):
        base, ds = Path.cwd(), dataset
    else:
        return []
    labels = np.asarray(ds.cell_label, dtype=object)
    channels = np.asarray(getattr(ds, "channel", np.full(labels.size, "")), dtype=object)
    found: list[tuple[str, str | None]] = []
    for label, channel in dict.fromkeys(zip(labels.tolist(), channels.tolist())):
        label = str(label)
        for candidate in (Path(label), base / label, base / Path(label).name):
            if candidate.is_file():
                found.append((str(candidate), str(channel) or None))
                break
    return found


def _score_recordings(model: Any, recordings: Sequence[Any], progress: bool) -> list[dict]:
    """Detect with ``threshold="auto"`` on each recording; its counts per threshold."""
    from ..detection.pipeline import detect
    from ..io import load

    out = []
    for item in recordings:
        if isinstance(item, tuple):
            path, channel = item
            try:
                rec = load(path, channel=channel)
            except MinidetError as exc:
                logger.warning("calibration: %s cannot be read (%s); left out", path, exc)
                continue
            source = path
        elif isinstance(item, (str, os.PathLike)):
            rec, source = load(item), str(item)
        else:
            rec, source = item, getattr(item, "source", None) or "recording"
        try:
            result = detect(rec, model, threshold="auto", progress=progress)
        except MinidetError as exc:
            logger.warning("calibration: %s cannot be scored (%s); left out", source, exc)
            continue
        out.append({"source": str(source), "duration_s": round(float(rec.duration_s), 3),
                    **{k: result.info["auto_threshold"][k] for k in ("grid", "peaks", "noise_peaks", "threshold")}})
    return out


def _with_estimates(entry: dict, index: int) -> dict:
    from ..detection.autothreshold import estimated_precision_recall

    precision, recall = estimated_precision_recall(entry["peaks"], entry["noise_peaks"])
    return {"source": entry["source"], "duration_s": entry["duration_s"],
            "threshold": float(entry["grid"][index]),
            "precision_estimate": round(float(precision[index]), 4),
            "recall_estimate": round(float(recall[index]), 4),
            "detections": int(entry["peaks"][index])}


def choose_model_threshold(network: Any, metadata: Any, roc: dict, roc_optimal: float,
                           base_metadata: Any = None, threshold: float | str | None = None,
                           recordings: Sequence[Any] = (), progress: bool = True) -> ThresholdChoice:
    """The threshold a trained model stores (see the module docstring).

    Parameters
    ----------
    network, metadata
        The trained network and its metadata as built so far (its threshold not yet final).
    roc, roc_optimal
        The held-out snippets' ROC curve and its optimal threshold.
    base_metadata
        The base model's metadata for transfer learning, else None.
    threshold
        The user's: a number in (0, 1), ``"auto"`` or None.
    recordings
        Continuous recordings to choose on: (path, channel) pairs, paths or Recordings.
    """
    from ..detection.autothreshold import AUTO_GRID, select_threshold
    from ..detection.pipeline import AUTO_REFERENCE
    from ..model.core import MinidetModel

    if threshold is not None and threshold != "auto":
        if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or not 0 < float(threshold) < 1:
            raise ParameterError(f"threshold must be a number in (0, 1) or 'auto', got {threshold!r}")
    inherit = base_metadata is not None and base_metadata.auto_threshold
    smoothing = base_metadata.smoothing_steps if base_metadata is not None else 1
    prominence = base_metadata.peak_prominence if base_metadata is not None else None
    if threshold == "auto" or (threshold is None and inherit):
        level = float(base_metadata.threshold) if inherit else max(AUTO_REFERENCE, float(metadata.threshold))
        rule = "user" if threshold == "auto" else "inherited"
        auto_meta = metadata.replace(threshold=level, auto_threshold=True, smoothing_steps=smoothing,
                                     peak_prominence=prominence)
        scored = _score_recordings(MinidetModel(network, auto_meta), recordings, progress) if recordings else []
        per = [_with_estimates(e, list(e["grid"]).index(e["threshold"])) for e in scored]
        return ThresholdChoice(level, True, rule, smoothing, prominence, roc_optimal, per)
    if threshold is not None:
        fixed_meta = metadata.replace(threshold=float(threshold), auto_threshold=False,
                                      smoothing_steps=smoothing, peak_prominence=prominence)
        scored = _score_recordings(MinidetModel(network, fixed_meta), recordings, progress) if recordings else []
        per = []
        for e in scored:
            grid = np.asarray(e["grid"])
            k = int(np.argmin(np.abs(grid - float(threshold))))
            per.append(_with_estimates(e, k))
        return ThresholdChoice(float(threshold), False, "user", smoothing, prominence, roc_optimal, per)
    if recordings:
        probe = metadata.replace(threshold=max(AUTO_REFERENCE, float(roc_optimal)), auto_threshold=False,
                                 smoothing_steps=smoothing, peak_prominence=prominence)
        scored = _score_recordings(MinidetModel(network, probe), recordings, progress)
        if scored:
            grid = tuple(scored[0]["grid"])
            peaks = np.sum([e["peaks"] for e in scored], axis=0)
            noise = np.sum([e["noise_peaks"] for e in scored], axis=0)
            k, f1 = select_threshold(peaks, noise)
            table = {"grid": list(grid), "peaks": peaks.tolist(), "noise_peaks": np.round(noise, 2).tolist(),
                     "f1_estimate": np.round(f1, 4).tolist()}
            per = [_with_estimates(e, k) for e in scored]
            return ThresholdChoice(float(grid[k]), False, "recordings", smoothing, prominence, roc_optimal,
                                   per, table)
        logger.warning("calibration: no recording could be scored; choosing on the snippets")
    value, table = snippet_threshold(roc)
    value = float(min(max(value, float(roc_optimal)), max(AUTO_GRID)))
    return ThresholdChoice(value, False, "snippets", smoothing, prominence, roc_optimal, [], table)
