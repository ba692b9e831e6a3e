"""minidet detect, batch and example-path: the detection settings' options (one per declared setting) and the commands that run them."""

from __future__ import annotations

import sys
from typing import Any, Callable

import click


from .common import cli_names, handle_errors, main, reader_kwargs, reader_options


# ----------------------------------------------------------------------------- detect
def parse_event_list(spec: str | None) -> list[int]:
    """``"3,7,12"`` or ``"3-5,9"`` -> sorted event numbers (0-based, as in events.csv)."""
    from ..errors import ParameterError

    if spec is None or not spec.strip():
        return []
    numbers: set[int] = set()
    for part in spec.split(","):
        part = part.strip()
        lo, dash, hi = part.partition("-")
        try:
            a = int(lo)
            b = int(hi) if dash else a
        except ValueError:
            raise ParameterError(f"--exclude {spec!r}: use event numbers like '3,7,12' or '3-5' (0-based)") from None
        if a < 0 or b < a:
            raise ParameterError(f"--exclude {spec!r}: {part!r} is not a valid event number or range")
        numbers.update(range(a, b + 1))
    return sorted(numbers)

class _MethodChoice(click.Choice):
    """``miniml`` or a classic detector of :data:`minidet.classic.METHODS`, read from the
    registry when first needed (importing the detectors at start-up would slow every command)."""

    def __init__(self) -> None:
        self.case_sensitive = True

    @property
    def choices(self) -> list[str]:  # type: ignore[override]
        from ..classic import METHODS

        return ["miniml", *sorted(METHODS)]

class _Setting(click.ParamType):
    """A declared detection setting's value from its text (:meth:`minidet.params.Param.from_text`);
    the range is checked with the other settings, and the error names the option."""

    def __init__(self, param: Any) -> None:
        self.param = param
        kinds = {"int": "INTEGER", "float": "FLOAT", "str": "TEXT"}
        self.name = kinds.get(param.kind, "TEXT") + ("|auto" if "auto" in param.also else "")

    def convert(self, value: Any, param: Any, ctx: Any) -> Any:
        if not isinstance(value, str):
            return value
        from ..errors import ParameterError

        try:
            return self.param.from_text(value)
        except ParameterError as exc:
            self.fail(cli_names(str(exc)), param, ctx)

def detect_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """Model and detection-setting options shared by ``detect`` and ``batch``, one per setting
    declared in :data:`minidet.params.PARAMS` (see :class:`minidet.detection.pipeline.DetectSettings`;
    :func:`detect_overrides` reads them)."""
    from ..params import PARAMS

    options = []
    for p in PARAMS.values():
        if not p.cli:
            continue
        if p.name == "model":
            options.append(click.option("--model", default=p.default, show_default=True, help=p.help))
        elif p.kind == "bool":
            options.append(click.option(f"{p.option}/--no-{p.option[2:]}", p.name, default=None,
                                        help=p.option_help()))
        elif p.kind == "choice":
            options.append(click.option(p.option, p.name, type=click.Choice(list(p.choices)), default=None,
                                        help=p.option_help()))
        else:
            options.append(click.option(p.option, p.name, type=_Setting(p), default=None, help=p.option_help()))
    for option in reversed(options):
        func = option(func)
    return func

def detect_overrides(kwargs: dict[str, Any]) -> dict[str, Any]:
    """The detection settings given on the command line (what is left in ``kwargs`` after
    the reader options were popped), for ``detect(..., **overrides)``; omitted ones are
    left to the model."""
    return {k: v for k, v in kwargs.items() if v is not None}

@main.command()
@click.argument("path", type=click.Path(dir_okay=False, path_type=str))
@reader_options
@detect_options
@click.option("--method", type=_MethodChoice(),
              default="miniml", show_default=True,
              help="miniml: the classifier (--model). The classic detectors (template matching, "
                   "deconvolution, amplitude threshold; GC-like kinetics unless --rise-ms/--decay-ms) "
                   "are measured the same way.")
@click.option("--rise-ms", type=float, default=None,
              help="--method template/deconvolution: the template's rise time constant (ms), as `minidet "
                   "extract`'s (e.g. from `minidet window`'s estimate); given alone, the decay is 6x it, "
                   "as extract's. [0.15]")
@click.option("--decay-ms", type=float, default=None,
              help="--method template/deconvolution: the template's decay time constant (ms); given "
                   "alone, the rise is 1/6 of it. [1.2]")
@click.option("--exclude", "exclude", default=None, metavar="N,N-M",
              help="Event numbers (0-based, as in events.csv) to exclude from the summary, e.g. 3,7,12.")
@click.option("--out", "out_dir", type=click.Path(path_type=str), default=None,
              help="Results folder. [./minidet-results/<recording name>]")
@click.option("--plots", is_flag=True, help="Also write PNG figures and report.html.")
@click.option("--nwb", is_flag=True, help="Also write results.nwb (a copy of an NWB input, or a new file) with the events.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as one JSON object on stdout.")
@click.option("--save-prediction", is_flag=True, help="Store the prediction trace in results.h5 (and results.nwb).")
@click.option("--force", is_flag=True, help="Overwrite results already in the output folder.")
@handle_errors
def detect(path: str, model: str, method: str, rise_ms: float | None, decay_ms: float | None,
           exclude: str | None, out_dir: str | None, plots: bool,
           nwb: bool, as_json: bool, save_prediction: bool, force: bool,
           **kwargs: Any) -> None:
    """Find and measure synaptic events in a recording; write tables, HDF5 and figures.

    Writes events.csv, summary.csv and results.h5 to the results folder (and results.nwb,
    PNG figures and report.html when asked). Options left out take the model's defaults.
    Try it on the bundled example: minidet detect "$(minidet example-path)" --plots
    """
    import contextlib
    from pathlib import Path

    from .. import report

    load_kwargs = reader_kwargs(kwargs)
    overrides = detect_overrides(kwargs)
    excluded = parse_event_list(exclude)
    kinetics = {k: v / 1e3 for k, v in (("rise_tau_s", rise_ms), ("decay_tau_s", decay_ms)) if v is not None}
    if kinetics and method not in ("template", "deconvolution"):
        from ..errors import ParameterError

        raise ParameterError(f"--rise-ms/--decay-ms set the template of --method template or deconvolution, "
                             f"not of --method {method}")
    if len(kinetics) == 1:  # one time constant given: the other by extract's rule
        from ..train.extract import RISE_DECAY_RATIO

        if "rise_tau_s" in kinetics:
            kinetics["decay_tau_s"] = kinetics["rise_tau_s"] * RISE_DECAY_RATIO
        else:
            kinetics["rise_tau_s"] = kinetics["decay_tau_s"] / RISE_DECAY_RATIO
    stem = Path(path).stem or "recording"
    out = Path(out_dir) if out_dir else Path("minidet-results") / stem
    # Refuse to overwrite, and find an unwritable folder, before anything is computed.
    created = report.prepare_output_dir(out, report.output_files(plots=plots, nwb=nwb), force=force)

    def note(message: str) -> None:
        click.echo(message, err=as_json)

    # With --json nothing but the JSON object may reach stdout.
    quiet = contextlib.redirect_stdout(sys.stderr) if as_json else contextlib.nullcontext()
    try:
        with quiet:
            from ..detection.pipeline import detect as run_detect
            from ..io import load

            recording = load(path, **load_kwargs)
            if method != "miniml":
                overrides["method"] = method
                if kinetics:
                    overrides["method_settings"] = kinetics
            result = run_detect(recording, model, progress=True, **overrides)
            if excluded:
                result = result.exclude(excluded)  # the API checks that the events exist
            try:
                written = report.write_results(result, out, plots=plots, nwb=nwb, save_prediction=save_prediction)
            except OSError as exc:  # a full disk, a folder removed meanwhile: nothing was written
                from ..errors import OutputError

                raise OutputError(f"cannot write the results in {out}: {exc.strerror or exc}; "
                                  "nothing was written") from None
    except BaseException:
        if created:
            report.remove_if_empty(out)
        raise

    summary = result.summary
    count = int(summary.get("count", len(result.events)))
    name = report.writers.recording_name(result.recording)
    if count:
        freq = summary.get("frequency_hz")
        from ..report.notes import threshold_phrase

        phrase = threshold_phrase(result)
        note(f"{name}: {count} event{'s' if count != 1 else ''}, {freq:.4g} Hz over "
             f"{result.recording.duration_s:.4g} s" + (f" ({len(excluded)} excluded)" if excluded else "")
             + (f"; {phrase}" if phrase else ""))
    else:
        settings = result.settings.to_dict()
        note(f"{name}: no events found (threshold {settings.get('threshold')}, direction "
             f"{settings.get('event_direction')}, window {settings.get('window_size')} samples); "
             "empty tables written. Check --event-direction, --threshold and --window-size.")
    note(f"results: {out}{'/' if not str(out).endswith('/') else ''} "
         f"({', '.join(n for n in written if not n.endswith('.png') and n != 'report.html')})")
    if plots:
        note(f"plots:   {out / 'report.html'} (trace.png, events.png, histograms.png)")
    if as_json:
        click.echo(report.to_json(report.result_to_dict(result)))

# ----------------------------------------------------------------------------- batch
@main.command()
@click.argument("inputs", nargs=-1, required=True)
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False, path_type=str),
              help="Output folder: recordings/<name>/ per recording, batch_summary/_events/_failures tables.")
@reader_options
@detect_options
@click.option("--plots", is_flag=True, help="Also write PNG figures and report.html for every recording.")
@click.option("--nwb", is_flag=True, help="Also write results.nwb for every recording.")
@click.option("--save-prediction", is_flag=True, help="Store the prediction trace in every results.h5.")
@click.option("--workers", type=click.IntRange(min=1), default=None,
              help="Local worker processes; 1 runs in this process. [one per core, at most one per recording]")
@click.option("--threads-per-worker", type=click.IntRange(min=1), default=None,
              help="Torch threads per worker. [cores / workers]")
@click.option("--scheduler", default=None, metavar="tcp://HOST:PORT",
              help="Run on this Dask distributed cluster instead of local workers (shared file system needed).")
@click.option("--ext", "extensions", multiple=True, metavar=".EXT",
              help="File type to pick up in folders; repeat for several. [.abf .h5 .hdf5 .nwb .npy and neo's]")
@click.option("--force", is_flag=True, help="Redo every recording, even those with up-to-date results.")
@click.option("--no-progress", is_flag=True, help="No progress bar.")
@handle_errors
def batch(inputs: tuple[str, ...], out_dir: str, model: str, plots: bool, nwb: bool,
          save_prediction: bool, workers: int | None, threads_per_worker: int | None, scheduler: str | None,
          extensions: tuple[str, ...], force: bool, no_progress: bool, **kwargs: Any) -> None:
    """Detect events in many recordings: files, folders, glob patterns or CSV manifests.

    Every recording gets the results `minidet detect` writes, in OUT/recordings/<name>/;
    the batch gets batch_summary (one row per recording), batch_events (all events, with a
    recording column) and batch_failures, each as .csv and .parquet. A manifest is a CSV
    with a 'path' column and optional columns name, channel, sweeps, skip_start, dataset,
    sampling_rate, scale, unit, any detection setting (threshold, window_size, ...) and
    free labels (cell, condition, animal). Re-running skips recordings whose result was
    made from the same file content, settings and model. Exit code 1 when some recording
    failed (the others complete), 2 for bad input (before any work).
    """
    from ..batch import FOLDER_EXTENSIONS, FAILURES_TABLE, SUMMARY_TABLE, EVENTS_TABLE, BatchSettings, run_batch

    reader = reader_kwargs(kwargs)
    exts = tuple(e if e.startswith(".") else f".{e}" for e in extensions) or FOLDER_EXTENSIONS
    settings = BatchSettings(model=model, detect=detect_overrides(kwargs), reader=reader,
                             plots=plots, nwb=nwb, save_prediction=save_prediction, extensions=exts)
    result = run_batch(list(inputs), out_dir, settings, workers=workers, threads_per_worker=threads_per_worker,
                       scheduler=scheduler, force=force, progress=not no_progress)
    counts = f"{result.n_done} analysed, {result.n_cached} up to date, {result.n_failed} failed"
    click.echo(f"{len(result.recordings)} recordings: {counts}; {len(result.events)} events")
    click.echo(f"tables:  {result.out_dir / SUMMARY_TABLE}.csv, {EVENTS_TABLE}.csv, {FAILURES_TABLE}.csv "
               "(and .parquet)")
    if not result.ok:
        for row in result.failures.head(10).itertuples(index=False):
            click.echo(f"failed:  {row.recording}: {row.error}", err=True)
        if result.n_failed > 10:
            click.echo(f"failed:  ... {result.n_failed - 10} more in {FAILURES_TABLE}.csv", err=True)
        sys.exit(1)

@main.command("example-path")
@click.argument("name", default="public10")
@handle_errors
def example_path(name: str) -> None:
    """Print the path of a bundled example recording (default: public10).

    Use it as: minidet detect "$(minidet example-path)"
    """
    from .. import examples

    click.echo(str(examples.path(name)))
