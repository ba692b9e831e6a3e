"""Result files, figures and the HTML report of a detection.

>>> from minidet import report
>>> names = report.output_files(plots=True, nwb=False)      # what a run will write
>>> report.prepare_output_dir("results/cell1", names)       # doctest: +SKIP
>>> report.write_results(result, "results/cell1", plots=True)   # doctest: +SKIP
>>> stored = report.read_results("results/cell1")           # doctest: +SKIP
>>> stored.events, stored.summary, stored.settings          # doctest: +SKIP

Every file is written atomically (:func:`atomic_write`): a crash never leaves a partial file.
matplotlib and pynwb are imported only when figures or NWB files are asked for.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from ..errors import OutputError

from .writers import (
    EVENTS_CSV,
    RESULTS_H5,
    SUMMARY_CSV,
    StoredResults,
    atomic_path,
    atomic_write,
    charge_unit,
    events_table,
    prepare_output_dir,
    read_results,
    remove_if_empty,
    result_to_dict,
    summary_row,
    to_json,
    write_events_csv,
    write_hdf5,
    write_summary_csv,
)

__all__ = [
    "EVENTS_CSV",
    "NWB_FILE",
    "RESULTS_H5",
    "SUMMARY_CSV",
    "StoredResults",
    "atomic_path",
    "atomic_write",
    "charge_unit",
    "events_table",
    "output_files",
    "prepare_output_dir",
    "read_results",
    "remove_if_empty",
    "result_to_dict",
    "summary_row",
    "to_json",
    "write_events_csv",
    "write_hdf5",
    "write_results",
    "write_summary_csv",
]

NWB_FILE = "results.nwb"
_PLOT_FILES = ("trace.png", "events.png", "histograms.png", "report.html")


def output_files(*, plots: bool = False, nwb: bool = False) -> list[str]:
    """Names of the files :func:`write_results` writes into a results folder."""
    names = [EVENTS_CSV, SUMMARY_CSV, RESULTS_H5]
    if nwb:
        names.append(NWB_FILE)
    if plots:
        names += list(_PLOT_FILES)
    return names


def write_results(
    result: Any,
    out_dir: str | Path,
    *,
    plots: bool = False,
    nwb: bool = False,
    save_prediction: bool = False,
) -> dict[str, Path]:
    """Write every result file of ``result`` into ``out_dir``; return file name -> path.

    Writes events.csv, summary.csv and results.h5; with ``nwb`` also results.nwb (a copy of
    an NWB input plus the events, or a new file holding the trace); with ``plots`` the PNG
    figures and report.html. ``save_prediction`` adds the model's prediction trace to the HDF5
    and NWB files. A lazily read recording and a lazily computed prediction are read piece
    by piece, never whole. The files appear together, only when all are complete: they are
    written into a hidden folder inside ``out_dir`` and then moved into place. Call :func:`prepare_output_dir` first to refuse overwriting and to find an
    unwritable folder before the analysis.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    source = getattr(result.recording, "source", None)
    if nwb and source and Path(source).resolve() == (out / NWB_FILE).resolve():
        raise OutputError(f"the NWB output {out / NWB_FILE} would replace the input; choose another --out")
    # Everything is written into a hidden staging folder first and moved into place only when
    # every file is complete: a failure half-way (a recording that ends early, a full disk,
    # Ctrl-C) leaves the folder as it was, never a mix of new and old or a partial set.
    staging = Path(tempfile.mkdtemp(prefix=".minidet-writing-", dir=out))
    try:
        written: dict[str, Path] = {
            EVENTS_CSV: write_events_csv(result, staging / EVENTS_CSV),
            SUMMARY_CSV: write_summary_csv(result, staging / SUMMARY_CSV),
            RESULTS_H5: write_hdf5(result, staging / RESULTS_H5, save_prediction=save_prediction),
        }
        if nwb:
            from .nwb import write_nwb

            written[NWB_FILE] = write_nwb(result, staging / NWB_FILE, save_prediction=save_prediction)
        if plots:
            from .html import REPORT_HTML, write_html_report
            from .plots import write_plots

            images = write_plots(result, staging)
            written.update(images)
            written[REPORT_HTML] = write_html_report(result, staging / REPORT_HTML, images=images,
                                                     files=[n for n in written if not n.endswith(".png")])
        final: dict[str, Path] = {}
        for name, path in written.items():
            os.replace(path, out / name)
            final[name] = out / name
        return final
    finally:
        shutil.rmtree(staging, ignore_errors=True)
