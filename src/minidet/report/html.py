"""``report.html``: one self-contained page with the figures, the summary and the settings.

The PNGs are embedded (base64), so the page can be mailed or moved on its own; the links to
the CSV/HDF5/NWB files are relative and work while the page sits in its results folder.
"""

from __future__ import annotations

import base64
import html
import json
import math
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable

from .notes import average_breakdown, average_sentence, capped, screen_sentence, threshold_sentence, training_rows
from .writers import atomic_write, charge_unit, jsonable, recording_info, recording_name, summary_row

__all__ = ["REPORT_HTML", "write_html_report"]

REPORT_HTML = "report.html"

_CSS = """
body { font-family: system-ui, -apple-system, 'Segoe UI', Roboto, sans-serif; margin: 2em auto;
       max-width: 1400px; padding: 0 1.5em; color: #222; }
h1 { font-size: 1.5em; margin-bottom: .2em; } h2 { font-size: 1.2em; margin-top: 1.8em;
     border-bottom: 1px solid #ddd; padding-bottom: .2em; }
p.meta { color: #555; margin-top: 0; }
table { border-collapse: collapse; font-size: .92em; }
td, th { padding: .25em .8em; border-bottom: 1px solid #eee; text-align: left; vertical-align: top; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
th { background: #f5f5f5; }
.grid { display: flex; flex-wrap: wrap; gap: 2em; align-items: flex-start; }
figure { margin: 0; } figure img { max-width: 100%; border: 1px solid #eee; }
figcaption { color: #555; font-size: .9em; }
code { background: #f5f5f5; padding: 0 .3em; }
p.note { max-width: 60em; }
table.card td:first-child { white-space: nowrap; color: #555; }
h3 { font-size: 1em; margin: 1.2em 0 .4em; }
details { margin-top: 1em; } summary { cursor: pointer; color: #333; }
details pre { background: #f7f7f7; padding: .8em; font-size: .8em; max-height: 40em; overflow: auto;
              white-space: pre-wrap; word-break: break-word; }
"""


def _fmt(value: Any) -> str:
    if value is None:
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        if not math.isfinite(value):
            return "–"
        return f"{value:.4g}"
    if isinstance(value, (dict, list)):
        return json.dumps(jsonable(value))
    return str(value)


def _table(rows: Iterable[tuple[str, Any]], header: tuple[str, str] = ("", ""), cls: str = "") -> str:
    out = [f'<table class="{cls}">' if cls else "<table>"]
    if any(header):
        out.append(f"<tr><th>{html.escape(header[0])}</th><th>{html.escape(header[1])}</th></tr>")
    for key, value in rows:
        num = isinstance(value, (int, float)) and not isinstance(value, bool)
        cls = ' class="num"' if num else ""
        out.append(f"<tr><td>{html.escape(str(key))}</td><td{cls}>{html.escape(_fmt(value))}</td></tr>")
    out.append("</table>")
    return "\n".join(out)


# summary measure -> (label, unit or None for the recording's unit, display factor)
_MEASURES = {
    "amplitude": ("Amplitude", None, 1.0),
    "rise_time_s": ("10-90 % rise time", "ms", 1e3),
    "half_decay_s": ("Half decay time", "ms", 1e3),
    "half_width_s": ("Half width", "ms", 1e3),
    "charge": ("Charge", "charge", 1.0),
    "score": ("Score", "", 1.0),
    "interval_s": ("Inter-event interval", "s", 1.0),
}
_STATS = ("mean", "median", "sd", "cv")


def _stats_table(summary: dict[str, Any], unit: str) -> str:
    """Measures as rows, mean / median / SD / CV as columns, times in ms."""
    out = ["<table>", "<tr><th>measure</th>" + "".join(f"<th>{s}</th>" for s in ("mean", "median", "SD", "CV"))
           + "</tr>"]
    for key, (label, munit, factor) in _MEASURES.items():
        if not any(f"{key}_{s}" in summary for s in _STATS):
            continue
        shown_unit = unit if munit is None else (charge_unit(unit) if munit == "charge" else munit)
        cells = []
        for stat in _STATS:
            value = summary.get(f"{key}_{stat}")
            if isinstance(value, (int, float)) and not isinstance(value, bool) and stat != "cv":
                value = value * factor
            cells.append(f'<td class="num">{html.escape(_fmt(value))}</td>')
        name = f"{label} ({shown_unit})" if shown_unit else label
        out.append(f"<tr><td>{html.escape(name)}</td>{''.join(cells)}</tr>")
    out.append("</table>")
    return "\n".join(out)


def _img(path: Path, caption: str) -> str:
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return (f'<figure><img src="data:image/png;base64,{data}" alt="{html.escape(caption)}">'
            f"<figcaption>{html.escape(caption)}</figcaption></figure>")


_CAPTIONS = {
    "trace.png": "The trace with the detected events (red circles; grey crosses: excluded by hand) "
                 "above the model's event probability and the detection threshold.",
    "events.png": "Every kept event, baseline subtracted and aligned on its detection point, with their average.",
    "histograms.png": "Distributions of amplitude, 10-90 % rise time, half decay time and inter-event interval.",
}


def _auto_table(auto: dict[str, Any]) -> str:
    """The table threshold='auto' chose from, folded (one row per threshold tried)."""
    grid = auto.get("grid") or []
    cols = [("peaks", auto.get("peaks") or []), ("inverted-trace peaks", auto.get("noise_peaks") or []),
            ("estimated F1", auto.get("f1_estimate") or [])]
    if not grid or any(len(c) != len(grid) for _, c in cols):
        return ""
    chosen = auto.get("threshold")
    out = ['<details><summary>What threshold \'auto\' chose from</summary><table>',
           "<tr><th>threshold</th>" + "".join(f"<th>{html.escape(n)}</th>" for n, _ in cols) + "</tr>"]
    for i, t in enumerate(grid):
        mark = " <strong>(chosen)</strong>" if t == chosen else ""
        if auto.get("prior") is not None and t == auto.get("prior"):
            mark += " (the model's level)"
        cells = "".join(f'<td class="num">{html.escape(_fmt(c[i]))}</td>' for _, c in cols)
        out.append(f'<tr><td class="num">{html.escape(_fmt(t))}{mark}</td>{cells}</tr>')
    out.append("</table>")
    frac = auto.get("excluded_fraction")
    if isinstance(frac, (int, float)):
        out.append(f'<p class="meta">Inverted-trace peaks near a confident detection (above '
                   f'{html.escape(_fmt(auto.get("reference")))}) are not counted; {100 * frac:.3g} % of the '
                   "recording was left out that way and the counts scaled up for it.</p>")
    out.append("</details>")
    return "\n".join(out)


def _pretty(value: Any, indent: str = "") -> str:
    """JSON with a value on one line when it fits in about 120 characters, nested otherwise."""
    flat = json.dumps(value, ensure_ascii=False)
    if len(flat) + len(indent) <= 120 or not isinstance(value, (dict, list)) or not value:
        return flat
    inner = indent + "  "
    if isinstance(value, dict):
        items = [f"{inner}{json.dumps(k, ensure_ascii=False)}: {_pretty(v, inner)}" for k, v in value.items()]
        return "{\n" + ",\n".join(items) + f"\n{indent}}}"
    return "[\n" + ",\n".join(f"{inner}{_pretty(v, inner)}" for v in value) + f"\n{indent}]"


_SCALING = {"minmax": "each window scaled to 0-1 on its own",
            "noise": "windows in units of the recording's noise SD"}


def _model_card(model: dict[str, Any], settings: dict[str, Any], rate: float) -> list[str]:
    """A short card of the model, its training record, and all its metadata folded and capped."""
    hp = model.get("hyperparameters") or {}
    n_input = hp.get("window_size") or model.get("window_size")
    window = settings.get("window_size")
    rows: list[tuple[str, Any]] = [("name", model.get("name")), ("description", model.get("description"))]
    if n_input:
        scaling = _SCALING.get(str(model.get("input_scaling") or "minmax"), str(model.get("input_scaling")))
        rows.append(("network input", f"{n_input} samples; {scaling}"))
    if isinstance(window, (int, float)) and rate:
        resampled = settings.get("resample") and n_input and int(window) != int(n_input)
        own = model.get("window_size")
        rows.append(("window", f"{int(window)} samples = {1e3 * window / rate:.3g} ms at {rate:g} Hz"
                     + (" (the model's)" if own is not None and int(own) == int(window) else
                        f" (the model's: {own})" if own is not None else "")
                     + (f", resampled to the network's {n_input}" if resampled else "")))
    elif model.get("window_size") is not None:
        rows.append(("window", f"{model['window_size']} samples"))
    if model.get("event_direction") or model.get("training_direction"):
        rows.append(("trained on", f"{model.get('training_direction', '?')} events"))
    if model.get("threshold") is not None:
        rows.append(("default threshold", ("'auto' (per recording); confident detection at "
                                           f"{_fmt(model['threshold'])}") if model.get("auto_threshold")
                     else _fmt(model["threshold"])))
    for key, label in (("architecture", "architecture"), ("source_file", "made from"), ("license", "license")):
        if model.get(key):
            rows.append((label, model[key]))
    parts = ["<h2>Model</h2>", _table(rows, cls="card")]
    training = training_rows(model.get("provenance") or {})
    parts.append("<h3>Training</h3>")
    if training:
        parts.append(_table(training, cls="card"))
    else:
        parts.append('<p class="meta">The model file holds no training record'
                     + (f" (converted from <code>{html.escape(str(model['source_file']))}</code>)"
                        if model.get("source_file") else "") + ".</p>")
    text = _pretty(capped(model))
    parts.append("<details><summary>All of the model's metadata (JSON; long lists shortened, the full "
                 "metadata is in <code>results.h5</code>, group <code>/model</code>)</summary>"
                 f"<pre>{html.escape(text)}</pre></details>")
    return parts


def write_html_report(
    result: Any,
    path: str | Path,
    *,
    images: dict[str, Path] | None = None,
    files: Iterable[str] = (),
) -> Path:
    """Write a self-contained HTML report next to the other result files.

    ``images`` maps file names (``trace.png`` ...) to PNG paths to embed; ``files`` are result
    file names (relative to the report) to link.
    """
    from .. import __version__

    rec = result.recording
    name = recording_name(rec)
    info = recording_info(rec)
    summary = jsonable(summary_row(result))
    settings = jsonable(result.settings.to_dict() if hasattr(result.settings, "to_dict") else {})
    model = jsonable(dict(getattr(result, "model_metadata", None) or {}))
    created = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")

    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>minidet: {html.escape(name)}</title>",
        f"<style>{_CSS}</style></head><body>",
        f"<h1>minidet report: {html.escape(name)}</h1>",
        f'<p class="meta">{html.escape(str(rec.source or "recording in memory"))} · channel '
        f"{html.escape(str(rec.channel))} · {rec.sampling_rate:g} Hz · {rec.duration_s:.4g} s · "
        f"unit {html.escape(str(rec.unit))} · {rec.n_sweeps} sweep(s)<br>"
        f"minidet {html.escape(__version__)}, {created}</p>",
    ]
    count = summary.get("count") or 0
    if not count:
        parts.append("<p><strong>No events were found.</strong> Check the event direction, the threshold and "
                     "the window size (see the settings below).</p>")
    raw = jsonable(dict(result.summary))
    tau = raw.get("tau_decay_s")
    head = [
        ("events kept", summary.get("count")),
        ("events detected", summary.get("n_detected")),
        ("excluded by hand", summary.get("n_excluded")),
        ("frequency (Hz)", summary.get("frequency_hz")),
        ("duration analysed (s)", summary.get("duration_s")),
        ("decay time constant of the average event (ms)", tau * 1e3 if isinstance(tau, (int, float)) else None),
        ("events in the average event", f"{raw.get('n_average')} of {summary.get('count')}"
         if raw.get("n_average") is not None else None),
    ]
    breakdown = average_breakdown(result) if count else None
    notes = [threshold_sentence(result)]
    if screen_sentence(result):
        notes.append(screen_sentence(result))
    if breakdown is not None:
        notes.append(average_sentence(breakdown))
    auto = (getattr(result, "info", None) or {}).get("auto_threshold")
    parts += ["<h2>Summary</h2>", _table(head)]
    parts += [f'<p class="note">{html.escape(n)}</p>' for n in notes]
    if isinstance(auto, dict):
        parts.append(_auto_table(jsonable(auto)))
    parts += ["<p></p>", _stats_table(raw, str(rec.unit)),
              '<p class="meta">The same values, with units in the column names, are in '
              '<a href="summary.csv"><code>summary.csv</code></a>.</p>']
    if images:
        parts.append("<h2>Figures</h2>")
        order = [n for n in ("trace.png", "events.png", "histograms.png") if n in images]
        order += [n for n in images if n not in order]
        captions = dict(_CAPTIONS)
        if breakdown is not None and breakdown.n_left_out:
            captions["events.png"] = (f"Every kept event, baseline subtracted and aligned on its detection point, "
                                      f"with the average of {breakdown.n_average} of them (the "
                                      f"{breakdown.n_left_out} with a close neighbour are left out; see the summary).")
        parts.append(_img(Path(images[order[0]]), captions.get(order[0], order[0])))
        parts.append('<div class="grid">')
        parts += [_img(Path(images[n]), captions.get(n, n)) for n in order[1:]]
        parts.append("</div>")
    excluded = result.events_all.index[result.events_all["excluded"].to_numpy(bool)].tolist() \
        if "excluded" in result.events_all and len(result.events_all) else []
    if excluded:
        parts.append(f"<p>Excluded by hand (event numbers, as in events.csv): {html.escape(', '.join(map(str, excluded)))}</p>")
    parts += ["<h2>Detection settings</h2>", _table(settings.items(), ("setting", "value"))]
    if model and set(model) != {"name"}:  # a classic method's result names only the method
        parts += _model_card(model, settings, float(rec.sampling_rate))
    rec_rows = [(k, v) for k, v in info.items() if k != "metadata"] + list((info.get("metadata") or {}).items())
    parts += ["<h2>Recording</h2>", _table(rec_rows, ("field", "value"))]
    files = list(files)
    if files:
        parts.append("<h2>Files</h2><ul>")
        parts += [f'<li><a href="{html.escape(f)}"><code>{html.escape(f)}</code></a></li>' for f in files]
        parts.append("</ul>")
    parts.append("</body></html>")
    with atomic_write(path) as handle:
        handle.write("\n".join(parts))
    return Path(path)
