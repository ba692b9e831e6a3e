"""Plain-language notes for the report and the figures: how the threshold was chosen, which
events the average event leaves out, and a short card of the model.

Each note is derived from what the result records (its settings, ``info``, the model's
metadata) and from the rule the code applies (:func:`minidet.measure.summary.average_mask`),
never restated by hand.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..detection.autothreshold import FLOOR

__all__ = [
    "AverageBreakdown",
    "average_breakdown",
    "average_label",
    "average_sentence",
    "capped",
    "threshold_phrase",
    "screen_sentence",
    "threshold_sentence",
    "training_rows",
]

#: miniML's overlap rule (:func:`minidet.measure.summary.non_overlapping`), in windows
NEXT_WINDOWS = 1.5
PREVIOUS_WINDOWS = 0.5


@dataclass(frozen=True)
class AverageBreakdown:
    """Which kept events enter the average event, and why the others do not."""

    n_kept: int
    n_average: int
    n_next: int  # kept events with the next one within NEXT_WINDOWS windows
    n_previous: int  # ... with the previous one within PREVIOUS_WINDOWS windows
    next_ms: float
    previous_ms: float
    fallback: bool  # every event overlaps another: all are averaged (miniML's fallback)

    @property
    def n_left_out(self) -> int:
        return self.n_kept - self.n_average


def average_breakdown(result: Any) -> AverageBreakdown:
    """Count the kept events the average event leaves out, with the same rule that builds it."""
    from ..measure.summary import average_mask, non_overlapping

    kept = result.events
    pos = np.asarray(kept["sample"].to_numpy(), dtype=np.int64) if len(kept) else np.zeros(0, np.int64)
    window = int(result.settings.window_size)
    mask = average_mask(pos, window)
    free = non_overlapping(pos, window)
    gaps = np.diff(pos)
    next_close = np.append(gaps <= NEXT_WINDOWS * window, False) if pos.size else np.zeros(0, bool)
    previous_close = np.insert(gaps <= PREVIOUS_WINDOWS * window, 0, False) if pos.size else np.zeros(0, bool)
    ms = 1e3 * window / float(result.recording.sampling_rate)
    return AverageBreakdown(
        n_kept=int(pos.size),
        n_average=int(mask.sum()),
        n_next=int(next_close.sum()),
        n_previous=int(previous_close.sum()),
        next_ms=NEXT_WINDOWS * ms,
        previous_ms=PREVIOUS_WINDOWS * ms,
        fallback=bool(pos.size and not free.any()),
    )


def _ms(value: float) -> str:
    return f"{value:.3g} ms"


def average_label(b: AverageBreakdown) -> str:
    """The legend of the average event in the events figure (two lines at most)."""
    if b.n_kept == 0:
        return "average"
    if b.fallback:
        return f"average of all {b.n_kept}\n(every event has a close neighbour)"
    if b.n_left_out == 0:
        return f"average of all {b.n_kept}"
    return (f"average of {b.n_average} of {b.n_kept} ({b.n_left_out} left out: another\n"
            f"event within {_ms(b.next_ms)} after or {_ms(b.previous_ms)} before)")


def average_sentence(b: AverageBreakdown) -> str:
    """One or two sentences on which events the average event holds, for the report."""
    rule = (f"an event is left out of the average when the next event's detection point is within "
            f"{_ms(b.next_ms)} ({NEXT_WINDOWS:g} windows) after its own, or the previous one within "
            f"{_ms(b.previous_ms)} ({PREVIOUS_WINDOWS:g} window) before it, so that no neighbouring event "
            "distorts its shape (miniML's rule)")
    if b.n_kept == 0:
        return "No events, so no average event."
    if b.fallback:
        return (f"The average event holds all {b.n_kept} kept events: every one has a neighbour that close "
                f"(normally {rule}), and then none is left out (miniML's fallback).")
    if b.n_left_out == 0:
        return f"The average event holds all {b.n_kept} kept events; {rule}, and none was."
    why = []
    if b.n_next:
        why.append(f"{b.n_next} because the next event follows within {_ms(b.next_ms)}")
    if b.n_previous:
        why.append(f"{b.n_previous} because the previous one is within {_ms(b.previous_ms)} before")
    both = " (some for both reasons)" if b.n_next + b.n_previous > b.n_left_out else ""
    return (f"The average event is the average of {b.n_average} of the {b.n_kept} kept events, {b.n_left_out} "
            f"left out: {' and '.join(why)}{both}. Rule: {rule}. The decay time constant is fitted to "
            "this average.")


def _num(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _estimated_f1(auto: dict[str, Any]) -> float | None:
    """The estimated F1 at the threshold ``threshold="auto"`` chose (None where not recorded)."""
    grid, f1 = list(auto.get("grid") or []), list(auto.get("f1_estimate") or [])
    chosen = float(auto["threshold"])
    if chosen not in grid or len(f1) != len(grid):
        return None
    value = f1[grid.index(chosen)]
    return float(value) if isinstance(value, (int, float)) and math.isfinite(value) else None


def threshold_sentence(result: Any) -> str:
    """How the detection threshold was chosen, from the result's settings and ``info``."""
    info = dict(getattr(result, "info", None) or {})
    settings = result.settings.to_dict() if hasattr(result.settings, "to_dict") else {}
    meta = dict(getattr(result, "model_metadata", None) or {})
    method = info.get("method")
    if method and method != "miniml":
        crit = info.get("criterion_threshold")
        return (f"Detected with the classic method {method!r}, not the model: an event is a crossing of its "
                f"criterion threshold{' ' + _num(crit) if crit is not None else ''}; the probability "
                "threshold is not used.")
    threshold = settings.get("threshold")
    source = info.get("threshold_source")
    auto = info.get("auto_threshold")
    if isinstance(auto, dict) and auto.get("threshold") is not None:
        chosen = float(auto["threshold"])
        who = {"model": f"the default of model {meta.get('name') or '?'}", "given": "as asked for"}.get(source, "")
        grid = auto.get("grid") or []
        value = _estimated_f1(auto)
        est = f" (estimated F1 there {value:.3g})" if value is not None else ""
        head = (f"Threshold {chosen:g}, chosen for this recording (threshold 'auto'{', ' + who if who else ''}): "
                "the peaks of the model's prediction on the inverted recording, where events point the wrong "
                "way, estimate the false detections at each threshold from "
                f"{min(grid):g} to {max(grid):g}")
        prior, reason = auto.get("prior"), auto.get("reason")
        fraction = auto.get("inverted_fraction")
        sampled = ""
        if isinstance(fraction, (int, float)) and fraction < 1:
            sampled = (f" The inverted recording was scored on {100 * float(fraction):.3g} % of its length, in "
                       "pieces spread evenly over it, and its noise peaks scaled to the whole "
                       f"(setting auto_inverted_s, {_num(settings.get('auto_inverted_s'))} s; 0 scores all of it).")
        if prior is None:  # results written before the prior (issue 22)
            return (head + ", and the highest threshold whose estimated F1 is within one event's worth of the "
                    f"best is taken{est}. It changes from recording to recording." + sampled)
        if reason == "inverted trace inconsistent":
            return (head + f". Here the inverted recording has more event-like peaks than the recording has "
                    "uncertain ones, so it is not a picture of this recording's noise (noise that is not "
                    f"symmetric: outward blips, a skewed tail), and the model's own level {float(prior):g} is "
                    "kept instead of the estimate." + sampled)
        return (head + f"; starting from the model's level {float(prior):g}, the threshold closest to it whose "
                "estimated F1 is within one event's worth of the best is taken (never below "
                f"{min(FLOOR, float(prior)):g}){est}. It changes from recording to recording." + sampled)
    if threshold is None:
        return "Threshold: not recorded."
    value = _num(threshold)
    if source == "given":
        return f"Threshold {value}: a fixed value given for this run (option or settings), not the model's."
    if source == "model":
        return f"Threshold {value}: the model's default, from its file ({meta.get('name', 'the model')})."
    if source == "default":
        return f"Threshold {value}: minidet's default (the model sets none)."
    model_value = meta.get("threshold")
    if isinstance(model_value, (int, float)) and isinstance(threshold, (int, float)) and \
            float(model_value) == float(threshold):
        return f"Threshold {value}, a fixed value: the model's default."
    return f"Threshold {value}, a fixed value."


def screen_sentence(result: Any) -> str:
    """What the model's screen did (``info["screen"]``; empty when no screen was used)."""
    info = dict(getattr(result, "info", None) or {})
    screen = info.get("screen")
    if not isinstance(screen, dict):
        return ""
    inverted = (info.get("auto_threshold") or {}).get("inverted_screen") or {}
    share = f"{100 * float(screen.get('scored', 1.0)):.3g} % of the windows"
    if inverted:
        share += f" ({100 * float(inverted.get('scored', 1.0)):.3g} % of the inverted recording's)"
    audit = 100 * float(screen.get("audit_fraction", 0.01))
    text = (f"The model scored {share}: a small network distilled from it (its screen) chose "
            f"them: every stretch of the prediction it could take above 0.85, scored whole down to 0.5, "
            f"and a random {audit:.3g} % of the rest as a check; "
            "the rest lie below 0.5 in the prediction trace.")
    if screen.get("fallback") or inverted.get("fallback"):
        text += (" On this recording the check found a stretch the screen had missed, so every window was "
                 "scored.")
    return text + " predict_mode 'full' scores every window."


def threshold_phrase(result: Any) -> str:
    """The threshold in a few words for one summary line: ``"threshold 0.98 (auto: chosen for
    this recording, estimated F1 0.95)"``, ``"threshold 0.5 (model gc's default)"``,
    ``"threshold 0.7 (given)"``; empty for a classic method (it has no probability threshold)."""
    info = dict(getattr(result, "info", None) or {})
    if info.get("method") and info.get("method") != "miniml":
        return ""
    settings = result.settings.to_dict() if hasattr(result.settings, "to_dict") else {}
    meta = dict(getattr(result, "model_metadata", None) or {})
    auto = info.get("auto_threshold")
    if isinstance(auto, dict) and auto.get("threshold") is not None:
        chosen = float(auto["threshold"])
        value = _estimated_f1(auto)
        est = f", estimated F1 {value:.2f}" if value is not None else ""
        if auto.get("reason") == "inverted trace inconsistent":
            return f"threshold {chosen:g} (auto: the model's level; the inverted recording does not look like its noise)"
        return f"threshold {chosen:g} (auto: chosen for this recording{est})"
    threshold = settings.get("threshold")
    if threshold is None:
        return ""
    why = {"given": "given", "default": "minidet's default",
           "model": f"model {meta.get('name') or '?'}'s default"}.get(info.get("threshold_source"), "fixed")
    return f"threshold {_num(threshold)} ({why})"


# ------------------------------------------------------------------ model card
def _get(data: Any, *keys: str) -> Any:
    for key in keys:
        if not isinstance(data, dict):
            return None
        data = data.get(key)
    return data


def training_rows(provenance: dict[str, Any]) -> list[tuple[str, Any]]:
    """The training record of a model's provenance as a few labelled rows (what it has)."""
    p = provenance or {}
    rows: list[tuple[str, Any]] = []

    def add(label: str, value: Any) -> None:
        if value is not None and value != "" and value != {}:
            rows.append((label, value))

    add("trained by", p.get("trained_by"))
    add("mode", p.get("mode"))
    base = p.get("base_model")
    add("base model", base.get("name") if isinstance(base, dict) else base)
    add("training data", _get(p, "dataset", "name"))
    counts = _get(p, "dataset", "counts") or {}
    if counts:
        parts = [f"{counts[k]} {label}" for k, label in (("events", "events"), ("non_events", "non-events"),
                                                        ("excluded", "excluded")) if counts.get(k) is not None]
        if counts.get("used") is not None:
            parts.insert(0, f"{counts['used']} used")
        split = ""
        if counts.get("train") is not None and counts.get("validation") is not None:
            split = f"; {counts['train']} for training, {counts['validation']} held out for validation"
        add("snippets", ", ".join(parts) + split)
    run = p.get("run") or {}
    if run:
        epochs = f"{run.get('epochs_run')} run, best {run.get('best_epoch')}"
        if run.get("stopped_early"):
            epochs += " (stopped early)"
        if run.get("interrupted"):
            epochs += " (interrupted)"
        if run.get("seconds") is not None:
            epochs += f"; {float(run['seconds']):.0f} s on {run.get('device', '?')}"
        add("epochs", epochs)
    m = p.get("metrics") or {}
    if m:
        bits = []
        if m.get("accuracy") is not None:
            bits.append(f"accuracy {float(m['accuracy']):.3f}")
        if m.get("auc") is not None:
            bits.append(f"AUC {float(m['auc']):.3f}")
        if m.get("threshold") is not None:
            at = f" (accuracy {float(m['accuracy_at_threshold']):.3f})" if m.get("accuracy_at_threshold") else ""
            bits.append(f"ROC-optimal threshold {float(m['threshold']):.3f}{at}")
        n = f" on {m['n']} windows" if m.get("n") is not None else ""
        add(f"validation{n}", ", ".join(bits))
    calib = p.get("calibration") or {}
    if calib.get("chosen") is not None:
        add("calibrated threshold", f"{calib['chosen']} (highest mean F1 on simulated recordings)")
    choice = p.get("threshold")
    if isinstance(choice, dict) and choice.get("rule"):  # minidet train's choice for continuous recordings
        from ..train.calibrate import ThresholdChoice

        try:
            add("detection threshold", ThresholdChoice.from_dict(choice).sentence())
        except (TypeError, ValueError, KeyError):
            add("detection threshold", f"{choice.get('threshold')} ({choice.get('rule')})")
    for key in ("date", "created", "created_utc", "trained_at", "timestamp"):
        add("date", p.get(key))
    return rows


#: list items shown by :func:`capped` (first and last); longer lists are summarised
CAP_ITEMS = 3
#: strings longer than this are cut by :func:`capped`
CAP_STRING = 600
#: a list whose JSON is at most this long is shown whole
SHORT_LIST = 160


def capped(value: Any, items: int = CAP_ITEMS, string: int = CAP_STRING) -> Any:
    """``value`` (JSON types) with long lists cut to their first ``items`` entries and a note
    of how many more there are, and long strings cut, so it can be shown on a page."""
    if isinstance(value, dict):
        return {k: capped(v, items, string) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        if len(json.dumps(value, default=str)) <= SHORT_LIST:
            return list(value)
        shown = [capped(v, items, string) for v in value[:items]]
        if len(value) > items + 1:
            shown.append(f"... {len(value) - items} more of {len(value)} (all in results.h5)")
        elif len(value) == items + 1:
            shown.append(capped(value[items], items, string))
        return shown
    if isinstance(value, str) and len(value) > string:
        return value[:string] + f"... ({len(value)} characters)"
    return value
