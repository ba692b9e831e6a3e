"""What the analysis page draws, computed from a result: one event's traces and markers, the
statistics panel (summary, average event with its decay fit, histograms, cumulative
distributions) and the window helper's answer. Pure functions of their arguments; the
session only locks and hands them its state.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ..report import writers
from .server import HTTPError

__all__ = ["event_payload", "stats_payload", "window_payload"]

VIEWER_POINTS = 4000

_HISTOGRAMS = (  # column, label, factor (to the shown unit), unit ("" -> the recording's)
    ("amplitude", "amplitude", 1.0, ""),
    ("rise_time_s", "10-90% rise", 1e3, "ms"),
    ("half_decay_s", "half decay", 1e3, "ms"),
    ("charge", "charge", 1.0, "charge"),
    ("interval_s", "interval", 1e3, "ms"),
    ("score", "score", 1.0, ""),
)
_CUMULATIVE = (("amplitude", "amplitude", 1.0, ""), ("interval_s", "inter-event interval", 1e3, "ms"))
CUMULATIVE_POINTS = 1000  # points of a cumulative distribution sent to the page (rank-spaced)




def _rounded(values: np.ndarray, decimals: int) -> np.ndarray:
    return np.round(np.asarray(values, dtype=np.float64), decimals)


def event_payload(result: Any, index: int, decimals: int) -> dict[str, Any]:
    """One event's raw and analysis-filtered trace with baseline, onset, peak and half decay."""
    from ..filters import analysis_filter, filter_margin, filter_range

    table = result.events_all
    if not 0 <= index < len(table):
        raise HTTPError(404, f"event {index} does not exist (0-{len(table) - 1})")
    row = table.iloc[index]
    rec, settings = result.recording, result.settings
    fs = rec.sampling_rate
    w = int(settings.window_size)
    pos = int(row["sample"])
    a, b = max(0, pos - w // 3), min(rec.n_samples, pos + w + w // 3)
    hann = int(settings.convolve_win)
    cutoff = None if hann > 1 else fs / float(settings.filter_factor)
    filtered = filter_range(rec.samples, a, b, lambda x: analysis_filter(x, hann_size=hann, cutoff_hz=cutoff,
                                                                         sampling_rate=fs),
                            filter_margin(hann, cutoff, fs))
    raw = rec.samples[a:b]
    step = max(1, int(math.ceil((b - a) / VIEWER_POINTS)))
    t_ms = (np.arange(a, b, step) - pos) / fs * 1e3
    baseline, amplitude = float(row["baseline"]), float(row["amplitude"])

    def ms(sample: float) -> float | None:
        return None if not math.isfinite(sample) or sample < 0 else (sample - pos) / fs * 1e3

    peak_t = ms(float(row["peak_sample"]))
    half = float(row["half_decay_s"])
    neighbours = table["sample"].to_numpy()
    near = np.flatnonzero((neighbours >= a) & (neighbours < b) & (np.arange(len(table)) != index))
    return {
        "index": index,
        "t_ms": _rounded(t_ms, 4),
        "raw": _rounded(raw[::step], decimals),
        "filtered": _rounded(filtered[::step], decimals),
        "unit": rec.unit,
        "time_s": float(row["time_s"]),
        "excluded": bool(row["excluded"]),
        "overlapping": bool(row["overlapping"]),
        "score": float(row["score"]),
        "measures": {k: writers.jsonable(row[k]) for k in ("amplitude", "rise_time_s", "half_decay_s",
                                                            "half_width_s", "charge")},
        "markers": {
            "baseline": baseline,
            "position_ms": 0.0,
            "onset_ms": ms(float(row["onset_sample"])),
            "peak_ms": peak_t,
            "peak": baseline + amplitude,
            "half_decay_ms": peak_t + half * 1e3 if peak_t is not None and math.isfinite(half) else None,
            "half": baseline + amplitude / 2,
        },
        "neighbours_ms": [((int(neighbours[j]) - pos) / fs * 1e3) for j in near],
    }


def stats_payload(result: Any, decimals: int) -> dict[str, Any]:
    """Summary statistics, the average event with its decay fit, histograms and cumulative
    distributions (amplitude, inter-event interval) of the kept events."""
    from ..filters import direction_sign
    from ..measure.summary import cumulative, fit_decay, histogram

    rec = result.recording
    summary = dict(result.summary)
    kept = result.events
    t, avg = result.average_event() if len(kept) else (np.zeros(0), np.zeros(0))
    columns = {col: kept[col].to_numpy(np.float64) for col, *_ in _HISTOGRAMS if col in kept.columns}
    times = np.sort(kept["time_s"].to_numpy(np.float64))
    columns["interval_s"] = np.diff(times)
    histograms = []
    for col, label, factor, unit in _HISTOGRAMS:
        counts, edges = histogram(columns.get(col, np.zeros(0)) * factor)
        unit = rec.unit if unit == "" and col == "amplitude" else writers.charge_unit(rec.unit) if unit == "charge" else unit
        histograms.append({"column": col, "label": label, "unit": unit, "counts": counts,
                           "edges": _rounded(edges, 9), "n": int(counts.sum())})
    average: dict[str, Any] = {"t_ms": _rounded(np.asarray(t) * 1e3, 4), "y": _rounded(avg, decimals),
                               "fit": None}
    fit = fit_decay(avg, rec.sampling_rate, result.settings.window_size, int(summary.get("n_average") or 0),
                    direction_sign(result.settings.event_direction)) if len(kept) else None
    if fit is not None and fit.tau_s > 0:  # the fit behind summary's tau_decay_s
        average["fit"] = {"t_ms": _rounded(np.asarray(t)[fit.start:] * 1e3, 4),
                          "y": _rounded(fit.curve(avg.size, rec.sampling_rate), decimals),
                          "tau_ms": fit.tau_s * 1e3}
    distributions = []
    for col, label, factor, unit in _CUMULATIVE:
        scaled = columns.get(col, np.zeros(0)) * factor
        n = int(np.isfinite(scaled).sum())  # before the rank-spaced thinning
        values, fraction = cumulative(scaled, CUMULATIVE_POINTS)
        distributions.append({"column": col, "label": label, "unit": rec.unit if unit == "" else unit,
                              "values": _rounded(values, 9), "fraction": _rounded(fraction, 6), "n": n})
    return {
        "summary": writers.jsonable(summary),
        "n_kept": int(result.count),
        "n_events": int(len(result.events_all)),
        "unit": rec.unit,
        "charge_unit": writers.charge_unit(rec.unit),
        "average": average,
        "histograms": histograms,
        "cumulative": distributions,
    }


def window_payload(suggestion: Any, rec: Any, decimals: int, from_selection: bool) -> dict[str, Any]:
    """The window helper's answer: the suggestion, its text, the average event and the fitted shape."""
    from ..train.window import kinetics_curve

    fs = rec.sampling_rate
    k = suggestion.kinetics
    t_ms = (np.arange(k.average.size) - k.onset) / fs * 1e3
    out = suggestion.to_dict()
    out.update({
        "text": suggestion.to_text(rec.unit),
        "from_selection": from_selection,
        "examples": np.asarray(k.examples, dtype=np.int64)[:50],
        "average": {"t_ms": _rounded(t_ms, 4), "y": _rounded(k.average, decimals),
                    "fit": _rounded(kinetics_curve(k), decimals)},
        "window_start_ms": -suggestion.onset_in_window / fs * 1e3,
        "window_stop_ms": (suggestion.window_size - suggestion.onset_in_window) / fs * 1e3,
        "unit": rec.unit,
    })
    return out
