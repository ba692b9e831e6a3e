"""PNG figures of a detection result (matplotlib, Agg; no pyplot state).

- :func:`plot_trace`: the trace with the events marked, above the model's prediction.
  Long traces are drawn from their min/max per pixel column (:func:`minmax_decimate`), which
  looks the same as the full trace at that width and keeps every event's peak visible.
- :func:`plot_events`: every kept event overlaid, with their average.
- :func:`plot_histograms`: amplitude, rise time, half decay and inter-event interval.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from .. import decimate
from ..decimate import chunked_minmax
from .notes import average_breakdown, average_label
from .writers import atomic_path, recording_name

__all__ = [
    "TRACE_PNG",
    "EVENTS_PNG",
    "HISTOGRAMS_PNG",
    "PLOT_FILES",
    "inter_event_intervals_s",
    "minmax_decimate",
    "values_at",
    "plot_events",
    "plot_histograms",
    "plot_trace",
    "write_plots",
]

TRACE_PNG = "trace.png"
EVENTS_PNG = "events.png"
HISTOGRAMS_PNG = "histograms.png"
PLOT_FILES = (TRACE_PNG, EVENTS_PNG, HISTOGRAMS_PNG)

DPI = 110
TRACE_COLOR = "#303030"
EVENT_COLOR = "#d62728"
EXCLUDED_COLOR = "#9a9a9a"
SWEEP_COLOR = "#3a78b5"
#: sweeps labelled by number in trace.png (more: the dotted boundaries only)
MAX_SWEEP_LABELS = 30
PRED_COLOR = "#1f77b4"
MAX_OVERLAY = 400  # events drawn in the overlay (a random subset of more)

_QUANTITY = {"A": "Current", "V": "Voltage"}


def _ylabel(unit: str) -> str:
    u = str(unit)
    quantity = _QUANTITY.get(u[-1:], "Signal") if u else "Signal"
    return f"{quantity} ({u})"


def minmax_decimate(y: Any, n_columns: int, rate: float, start_s: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """Reduce ``y`` to its minimum and maximum in each of ``n_columns`` bins for plotting.

    Returns ``(time_s, values)`` with two points per bin (at the bin's centre), so a line
    through them draws the envelope the full trace would fill at that width. Traces shorter
    than ``4 * n_columns`` samples are returned unchanged. ``y`` may be a
    :class:`~minidet.recording.LazyTrace`: it is then read piece by piece, never whole.
    """
    n = int(y.shape[0]) if hasattr(y, "shape") else len(y)
    if n <= 4 * n_columns:
        return start_s + np.arange(n) / rate, np.asarray(y[:n] if hasattr(y, "shape") else y, dtype=np.float64)
    width = int(np.ceil(n / n_columns))
    lo, hi = chunked_minmax(y if hasattr(y, "shape") else np.asarray(y), width, ignore_nan=True)
    centre = start_s + (np.arange(lo.size) * width + width / 2) / rate
    return np.repeat(centre, 2), np.column_stack([lo, hi]).reshape(-1)


def values_at(samples: Any, positions: np.ndarray, chunk: int | None = None) -> np.ndarray:
    """``samples[positions]`` for an array, or for a :class:`~minidet.recording.LazyTrace`
    read only around the positions (one read per ``chunk`` samples that holds any; default
    :data:`minidet.decimate.BUILD_CHUNK`)."""
    chunk = decimate.BUILD_CHUNK if chunk is None else int(chunk)
    pos = np.asarray(positions, dtype=np.int64)
    if isinstance(samples, np.ndarray) or pos.size == 0:
        return np.asarray(samples[pos], dtype=np.float64) if pos.size else np.zeros(0)
    out = np.empty(pos.size, dtype=np.float64)
    order = np.argsort(pos, kind="stable")
    sorted_pos = pos[order]
    groups = sorted_pos // chunk
    bounds = np.flatnonzero(np.diff(groups)) + 1
    for idx in np.split(np.arange(sorted_pos.size), bounds):
        lo, hi = int(sorted_pos[idx[0]]), int(sorted_pos[idx[-1]]) + 1
        out[order[idx]] = np.asarray(samples[lo:hi], dtype=np.float64)[sorted_pos[idx] - lo]
    return out


def inter_event_intervals_s(result: Any) -> np.ndarray:
    """Intervals (s) between consecutive kept events within each sweep (none across sweeps)."""
    events = result.events
    if len(events) < 2:
        return np.zeros(0)
    samples = np.sort(events["sample"].to_numpy(np.int64))
    sweep = np.searchsorted(np.asarray(result.recording.sweep_starts), samples, side="right") - 1
    same = sweep[1:] == sweep[:-1]
    return (np.diff(samples) / result.recording.sampling_rate)[same]


def _figure(width: float, height: float):
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=DPI, layout="constrained")


def _save(fig: Any, path: str | Path) -> Path:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=DPI)
    return Path(path)


def _subtitle(result: Any) -> str:
    summary = result.summary
    count = int(summary.get("count", len(result.events)))
    freq = summary.get("frequency_hz")
    duration = f"{result.recording.duration_s:.4g} s"
    if count == 0:
        return f"no events in {duration}"
    freq_txt = f", {freq:.3g} Hz" if freq is not None and np.isfinite(freq) else ""
    return f"{count} event{'s' if count != 1 else ''}{freq_txt} in {duration}"


def _no_events(ax: Any, text: str = "no events") -> None:
    ax.text(0.5, 0.5, text, transform=ax.transAxes, ha="center", va="center", fontsize=12, color="#777777")
    ax.set_xticks([])
    ax.set_yticks([])


def sweep_boundaries_s(recording: Any) -> np.ndarray:
    """Times (s) where one sweep of a concatenated recording ends and the next begins."""
    starts = np.asarray(getattr(recording, "sweep_starts", [0]), dtype=np.float64)
    return starts[starts > 0] / float(recording.sampling_rate)


def plot_trace(result: Any, path: str | Path, *, width_in: float = 13.0, threshold: float | None = None) -> Path:
    """Trace with kept (red) and excluded (grey x) events above the prediction trace."""
    rec = result.recording
    fig = _figure(width_in, 6.0)
    has_pred = result.prediction is not None and len(result.prediction) > 0
    if has_pred:
        ax, axp = fig.subplots(2, 1, sharex=True, height_ratios=[3, 1.3])
    else:
        ax, axp = fig.subplots(1, 1), None
    n_columns = int(width_in * DPI)
    t, y = minmax_decimate(rec.samples, n_columns, rec.sampling_rate)
    ax.plot(t, y, color=TRACE_COLOR, lw=0.5, label="trace")

    events = result.events_all
    if len(events):
        excluded = events["excluded"].to_numpy(bool) if "excluded" in events else np.zeros(len(events), bool)
        peak = events["peak_sample"].to_numpy(np.float64) if "peak_sample" in events else np.full(len(events), np.nan)
        pos = np.where(np.isfinite(peak), peak, events["sample"].to_numpy(np.float64)).astype(np.int64)
        pos = np.clip(pos, 0, rec.n_samples - 1)
        tx, vy = pos / rec.sampling_rate, values_at(rec.samples, pos)
        if (~excluded).any():
            ax.plot(tx[~excluded], vy[~excluded], "o", ms=4, mfc="none", mec=EVENT_COLOR, mew=1.2,
                    label=f"event ({int((~excluded).sum())})")
        if excluded.any():
            ax.plot(tx[excluded], vy[excluded], "x", ms=6, color=EXCLUDED_COLOR, mew=1.5,
                    label=f"excluded ({int(excluded.sum())})")
        ax.legend(loc="upper right", fontsize=9, framealpha=0.85)
    ax.set_ylabel(_ylabel(rec.unit))
    ax.set_xlim(0, rec.duration_s)
    boundaries = sweep_boundaries_s(rec)
    for axis in (ax, axp):
        if axis is not None:
            for b in boundaries:
                axis.axvline(b, color=SWEEP_COLOR, ls=":", lw=0.9, zorder=0)
    if 0 < boundaries.size <= MAX_SWEEP_LABELS:
        starts = np.r_[0.0, boundaries]
        for k, b in enumerate(starts):
            ax.text(b, 1.0, f" sweep {k}", transform=ax.get_xaxis_transform(), va="top", ha="left",
                    fontsize=7, color=SWEEP_COLOR)
    ax.set_title(f"{recording_name(rec)}: {_subtitle(result)}"
                 + (f" ({boundaries.size + 1} sweeps, joined at the dotted lines)" if boundaries.size else ""),
                 loc="left", fontsize=12)
    ax.grid(alpha=0.25, lw=0.5)

    if axp is not None:
        pred = result.prediction
        if not hasattr(pred, "shape"):
            pred = np.asarray(pred, dtype=np.float64)
        tp, yp = minmax_decimate(pred, n_columns, rec.sampling_rate)
        axp.plot(tp, yp, color=PRED_COLOR, lw=0.7)
        if threshold is None:
            settings = result.settings.to_dict() if hasattr(result.settings, "to_dict") else {}
            threshold = settings.get("threshold")
        auto = isinstance((getattr(result, "info", None) or {}).get("auto_threshold"), dict)
        if threshold is not None:
            axp.axhline(float(threshold), color=EVENT_COLOR, ls="--", lw=0.9,
                        label=f"threshold {float(threshold):g}" + (" (auto: chosen for this recording)" if auto else ""))
            axp.legend(loc="upper right", fontsize=9, framealpha=0.85)
        axp.set_ylim(-0.05, 1.05)
        axp.set_ylabel("Event probability")
        axp.grid(alpha=0.25, lw=0.5)
        axp.set_xlabel("Time (s)")
    else:
        ax.set_xlabel("Time (s)")
    return _save(fig, path)


def plot_events(result: Any, path: str | Path, *, seed: int = 0) -> Path:
    """All kept events (baseline subtracted, aligned on the detection point) and their average."""
    rec = result.recording
    fig = _figure(6.5, 4.8)
    ax = fig.subplots()
    n = len(result.events)
    if n:
        time_s, waves = result.waveforms()  # one row per kept event
        waves = np.asarray(waves, dtype=np.float64)
        shown = waves
        if waves.shape[0] > MAX_OVERLAY:
            pick = np.random.default_rng(seed).choice(waves.shape[0], MAX_OVERLAY, replace=False)
            shown = waves[np.sort(pick)]
        t_ms = np.asarray(time_s) * 1e3
        ax.plot(t_ms, shown.T, color="#8c8c8c", lw=0.5, alpha=max(0.08, min(0.6, 12 / max(shown.shape[0], 1))))
        avg_t, avg = result.average_event()
        # events with a close neighbour are left out of it (measure.summary.average_mask)
        ax.plot(np.asarray(avg_t) * 1e3, avg, color=EVENT_COLOR, lw=2.2, label=average_label(average_breakdown(result)))
        ax.axhline(0, color="k", lw=0.5, alpha=0.5)
        extra = f" ({MAX_OVERLAY} of {n} shown)" if waves.shape[0] > MAX_OVERLAY else ""
        ax.legend(loc="lower right" if np.nanmean(avg) < 0 else "upper right", fontsize=8.5)
        ax.set_title(f"{recording_name(rec)}: {n} events{extra}", loc="left", fontsize=12)
        ax.set_xlim(t_ms[0], t_ms[-1])
    else:
        _no_events(ax)
        ax.set_title(f"{recording_name(rec)}: no events", loc="left", fontsize=12)
    ax.set_xlabel("Time from event (ms)")
    ax.set_ylabel(f"Baseline-subtracted {_ylabel(rec.unit)[0].lower()}{_ylabel(rec.unit)[1:]}")
    ax.grid(alpha=0.25, lw=0.5)
    return _save(fig, path)


def _hist(ax: Any, values: np.ndarray, xlabel: str, color: str) -> None:
    values = np.asarray(values, dtype=np.float64)
    values = values[np.isfinite(values)]
    if values.size == 0:
        _no_events(ax, "no values")
    else:
        bins = min(40, max(5, int(np.ceil(np.sqrt(values.size)) * 2)))
        ax.hist(values, bins=bins, color=color, edgecolor="white", linewidth=0.6)
        med = float(np.median(values))
        ax.axvline(med, color="k", ls="--", lw=1, label=f"median {med:.3g}")
        ax.legend(fontsize=8, loc="best")
        from matplotlib.ticker import MaxNLocator

        ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel(xlabel)
    ax.set_ylabel("Events")
    ax.grid(alpha=0.25, lw=0.5)


def plot_histograms(result: Any, path: str | Path) -> Path:
    """2 x 2 histograms: amplitude, 10-90 % rise time, half decay time, inter-event interval."""
    rec = result.recording
    ev = result.events
    fig = _figure(9.0, 6.5)
    axes = fig.subplots(2, 2)

    def col(name: str, factor: float = 1.0) -> np.ndarray:
        return ev[name].to_numpy(np.float64) * factor if name in ev and len(ev) else np.zeros(0)

    _hist(axes[0, 0], col("amplitude"), f"Amplitude ({rec.unit})", "#d62728")
    _hist(axes[0, 1], col("rise_time_s", 1e3), "10-90 % rise time (ms)", "#2ca02c")
    _hist(axes[1, 0], col("half_decay_s", 1e3), "Half decay time (ms)", "#9467bd")
    iei = inter_event_intervals_s(result)
    use_ms = iei.size and np.nanmedian(iei) < 1.0
    _hist(axes[1, 1], iei * (1e3 if use_ms else 1.0), f"Inter-event interval ({'ms' if use_ms else 's'})", "#1f77b4")
    fig.suptitle(f"{recording_name(rec)}: {_subtitle(result)}", x=0.01, ha="left", fontsize=12)
    return _save(fig, path)


def write_plots(result: Any, out_dir: str | Path) -> dict[str, Path]:
    """Write trace.png, events.png and histograms.png into ``out_dir``; return name -> path."""
    out = Path(out_dir)
    return {
        TRACE_PNG: plot_trace(result, out / TRACE_PNG),
        EVENTS_PNG: plot_events(result, out / EVENTS_PNG),
        HISTOGRAMS_PNG: plot_histograms(result, out / HISTOGRAMS_PNG),
    }
