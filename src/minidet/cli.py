"""The ``minidet`` command: argument parsing and wiring only.

Every subcommand turns a :class:`minidet.errors.MinidetError` (and a missing file) into one
line on stderr and exit code 2, without a traceback.
"""

from __future__ import annotations

import functools
import re
import json
import sys
import warnings
from typing import Any, Callable

import click

from . import DEFAULT_MODEL, __version__
from .errors import MinidetError


# ----------------------------------------------------------------------------- helpers
def _show_warning(message: Warning | str, category: type[Warning], filename: str, lineno: int,
                  file: Any = None, line: str | None = None) -> None:
    """Warnings on the command line are one ``minidet: warning:`` line (no source line)."""
    click.echo(f"minidet: warning: {message}", err=True)


def _fail(message: str) -> None:
    click.echo(f"minidet: error: {message}", err=True)
    sys.exit(2)



def cli_names(message: str, command: click.Command | None = None) -> str:
    """An error message of the API with its argument names written as the CLI options
    (``window_size=643`` -> ``--window-size 643``, ``resample=False`` -> ``--no-resample``):
    the declared detection settings, then the snake_case options of ``command``
    (``model_sure`` -> ``--model-sure``)."""
    from .params import cli_patterns

    for pattern, replacement in cli_patterns():
        message = pattern.sub(replacement, message)
    for param in getattr(command, "params", ()):
        if isinstance(param, click.Option) and param.name and "_" in param.name and param.opts:
            # not inside a path or a file name (out_dir/..., cell_1.abf)
            message = re.sub(rf"(?<![-\w/\\.]){param.name}(?![\w/\\-]|\.\w)", param.opts[0], message)
    return message


def handle_errors(func: Callable[..., Any]) -> Callable[..., Any]:
    """Run a command; user errors become one line on stderr and exit code 2."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except MinidetError as exc:
            ctx = click.get_current_context(silent=True)
            _fail(cli_names(str(exc), ctx.command if ctx else None))
        except (FileNotFoundError, PermissionError, IsADirectoryError) as exc:
            _fail(f"{exc.strerror or exc}: {exc.filename}" if exc.filename else str(exc))
        except KeyboardInterrupt:
            click.echo("minidet: interrupted", err=True)
            sys.exit(130)

    return wrapper


def reader_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """Options shared by every command that reads a recording (see :func:`minidet.load`)."""
    options = [
        click.option("--channel", default=None,
                     help="Channel to read: name or 0-based index (ABF ADC, neo channel, NWB series, HEKA trace)."),
        click.option("--sweeps", default=None, help="Sweeps to read and concatenate, e.g. '0-3,5' (0-based)."),
        click.option("--skip-start", "skip_start_s", type=float, default=0.0, show_default=True,
                     help="Seconds to drop at the start of each sweep (e.g. a test pulse)."),
        click.option("--dataset", default=None, help="HDF5 dataset path, NWB series name, or HEKA series as GROUP/SERIES (labels or 0-based indices)."),
        click.option("--sampling-rate", "sampling_rate", type=float, default=None,
                     help="Sampling rate in Hz, for files that do not store one."),
        click.option("--scale", type=float, default=None,
                     help="Multiply the samples by this factor (e.g. 1e12 for A -> pA)."),
        click.option("--unit", default=None, help="Unit of the samples after --scale (e.g. pA)."),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def reader_kwargs(kwargs: dict[str, Any]) -> dict[str, Any]:
    """Pop the reader options out of a command's keyword arguments for :func:`minidet.load`."""
    keys = ("channel", "sweeps", "skip_start_s", "dataset", "sampling_rate", "scale", "unit")
    return {k: kwargs.pop(k) for k in keys if k in kwargs}


# ----------------------------------------------------------------------------- the group
@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="minidet")
def main() -> None:
    """minidet: find and measure synaptic events in electrophysiology recordings."""
    warnings.showwarning = _show_warning


@main.command()
@click.argument("path", type=click.Path(dir_okay=False, path_type=str))
@reader_options
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of text.")
@handle_errors
def info(path: str, as_json: bool, **kwargs: Any) -> None:
    """Show what a recording file holds: format, channels, sweeps, sampling rate, duration."""
    from .io import describe

    description = describe(path, **reader_kwargs(kwargs))
    if as_json:
        click.echo(json.dumps(description.to_dict(), indent=2))
    else:
        click.echo(description.to_text())


# ----------------------------------------------------------------------------- detect
def parse_event_list(spec: str | None) -> list[int]:
    """``"3,7,12"`` or ``"3-5,9"`` -> sorted event numbers (0-based, as in events.csv)."""
    from .errors import ParameterError

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
        from .classic import METHODS

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
        from .errors import ParameterError

        try:
            return self.param.from_text(value)
        except ParameterError as exc:
            self.fail(cli_names(str(exc)), param, ctx)


def detect_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """Model and detection-setting options shared by ``detect`` and ``batch``, one per setting
    declared in :data:`minidet.params.PARAMS` (see :class:`minidet.detection.pipeline.DetectSettings`;
    :func:`detect_overrides` reads them)."""
    from .params import PARAMS

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
                   "extract`'s (e.g. from `minidet window`'s estimate). [0.15]")
@click.option("--decay-ms", type=float, default=None,
              help="--method template/deconvolution: the template's decay time constant (ms). [1.2]")
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

    from . import report

    load_kwargs = reader_kwargs(kwargs)
    overrides = detect_overrides(kwargs)
    excluded = parse_event_list(exclude)
    kinetics = {k: v / 1e3 for k, v in (("rise_tau_s", rise_ms), ("decay_tau_s", decay_ms)) if v is not None}
    if kinetics and method not in ("template", "deconvolution"):
        from .errors import ParameterError

        raise ParameterError(f"--rise-ms/--decay-ms set the template of --method template or deconvolution, "
                             f"not of --method {method}")
    if "rise_tau_s" in kinetics and "decay_tau_s" not in kinetics:
        kinetics["decay_tau_s"] = max(1.2e-3, 8 * kinetics["rise_tau_s"])  # GC-like ratio for a lone rise
    if "decay_tau_s" in kinetics and "rise_tau_s" not in kinetics:
        kinetics["rise_tau_s"] = min(0.15e-3, kinetics["decay_tau_s"] / 8)
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
            from .detection.pipeline import detect as run_detect
            from .io import load

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
                from .errors import OutputError

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
        from .report.notes import threshold_phrase

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
    from .batch import FOLDER_EXTENSIONS, FAILURES_TABLE, SUMMARY_TABLE, EVENTS_TABLE, BatchSettings, run_batch

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
    from . import examples

    click.echo(str(examples.path(name)))


# ----------------------------------------------------------------------------- models
_DIRECTIONS = click.Choice(["negative", "positive"])


@main.command()
@click.argument("source", type=click.Path(dir_okay=False, path_type=str))
@click.argument("target", type=click.Path(dir_okay=False, path_type=str))
@click.option("--name", default=None, help="Short name stored in the file. [TARGET's name]")
@click.option("--window-size", type=int, default=None,
              help="Window the model was trained with, in recording samples. [network input: 600]")
@click.option("--training-direction", type=_DIRECTIONS, default="negative", show_default=True,
              help="Polarity of the events in the training data.")
@click.option("--event-direction", type=_DIRECTIONS, default=None,
              help="Default polarity of events in recordings. [training direction]")
@click.option("--threshold", type=float, default=0.5, show_default=True,
              help="Suggested minimum peak height of the prediction, 0-1.")
@click.option("--stride", type=int, default=None, help="Default step between windows, samples. [round(window size / 30)]")
@click.option("--convolve-win", type=int, default=20, show_default=True,
              help="Default Hann filter width for measuring, samples.")
@click.option("--gradient-convolve-win", type=int, default=40, show_default=True,
              help="Default Hann filter width for the derivative, samples.")
@click.option("--no-resample", is_flag=True, help="Do not resample traces so the window fills the network input.")
@click.option("--description", default=None, help="What the model is for and what it was trained on.")
@click.option("--license", "license_", default="", help="Licence of the weights (e.g. MIT).")
@click.option("--force", is_flag=True, help="Overwrite TARGET if it exists.")
@handle_errors
def convert(source: str, target: str, name: str | None, window_size: int | None,
            training_direction: str, event_direction: str | None, threshold: float,
            stride: int | None, convolve_win: int, gradient_convolve_win: int, no_resample: bool,
            description: str | None, license_: str, force: bool) -> None:
    """Convert a miniML Keras model (SOURCE: .h5 or .keras) into a minidet model file (TARGET).

    Keras files hold no detection settings; the options supply them, with miniML's defaults.
    TARGET is written to a temporary file and renamed, conventionally NAME.minidet.safetensors.
    """
    from pathlib import Path

    from .errors import OutputError
    from .model import from_keras

    if Path(target).exists() and not force:
        raise OutputError(f"{target} exists; use --force to overwrite it")
    if name is None:
        name = Path(target).name.split(".")[0] or "model"
    model = from_keras(source, name=name, window_size=window_size,
                       training_direction=training_direction, event_direction=event_direction,
                       threshold=threshold, stride=stride, resample=not no_resample,
                       convolve_win=convolve_win, gradient_convolve_win=gradient_convolve_win,
                       description=description, license=license_)
    model.save(target, overwrite=force)
    m = model.metadata
    click.echo(f"wrote {target}: model {m.name!r}, window {m.window_size} samples, stride "
               f"{m.stride}, threshold {m.threshold}, training {m.training_direction}, "
               f"events {m.event_direction}")


@main.command()
@click.argument("dataset", type=click.Path(dir_okay=False, path_type=str))
@click.option("--out", "out", required=True, type=click.Path(dir_okay=False, path_type=str),
              help="Model file to write, conventionally NAME.minidet.safetensors.")
@click.option("--from", "base", default=None, metavar="gc|PATH",
              help="Base model for transfer learning (a bundled name or a model file). "
                   "[none: full training from scratch]")
@click.option("--event-direction", type=_DIRECTIONS, default="negative", show_default=True,
              help="Direction of the events in the dataset.")
@click.option("--training-direction", type=_DIRECTIONS, default=None,
              help="Direction the network learns; windows are inverted when it differs from "
                   "--event-direction. [transfer: the base model's; full: the event direction]")
@click.option("--epochs", "max_epochs", type=click.IntRange(min=1), default=100, show_default=True,
              help="Most epochs to train.")
@click.option("--batch-size", type=click.IntRange(min=1), default=None, help="[transfer 64, full 128]")
@click.option("--learning-rate", type=float, default=None, help="Adam's learning rate. [transfer 1e-4, full 2e-5]")
@click.option("--dropout", type=float, default=None, help="Dropout before the output layer. [transfer 0.5, full 0.2]")
@click.option("--patience", type=click.IntRange(min=1), default=None,
              help="Epochs without improvement before stopping. [transfer 12, full 8]")
@click.option("--min-delta", type=float, default=None,
              help="Smallest validation-loss drop that counts as improvement. [transfer 1e-3, full 0]")
@click.option("--validation-fraction", type=float, default=0.2, show_default=True,
              help="Fraction of snippets held out for validation and the reported metrics.")
@click.option("--seed", type=click.IntRange(min=0), default=1234, show_default=True)
@click.option("--no-resample", is_flag=True,
              help="Full training: keep the dataset's window length as the network input "
                   "(otherwise windows are resampled to 600 samples).")
@click.option("--device", default="auto", show_default=True, metavar="auto|cpu|cuda",
              help="Where to train: a CUDA GPU when present (auto), or the CPU.")
@click.option("--threads", type=click.IntRange(min=1), default=None,
              help="CPU threads for training. [torch's default]")
@click.option("--no-cache", is_flag=True,
              help="Transfer learning: run the frozen conv layers every epoch (slower, same result).")
@click.option("--fine-tune", is_flag=True,
              help="With --from: train every layer from the base weights (conv and batch norm too) "
                   "instead of freezing the conv layers. Slower; needs more data.")
@click.option("--input-scaling", type=click.Choice(["minmax", "noise"]), default=None,
              help="How the network sees a window: min-max scaled (miniML) or in units of its "
                   "recording's noise SD (needs a dataset from `minidet extract`; from a min-max "
                   "base model also --fine-tune). [the base model's; minmax]")
@click.option("--threshold", default=None, metavar="T|auto",
              help="Detection threshold the model stores: a number in (0, 1) or 'auto' (chosen per "
                   "recording). [chosen for continuous recordings: the base model's auto, else the best "
                   "estimated F1 on the training recordings, else the snippets weighted as a recording]")
@click.option("--calibrate-on", "calibrate_on", multiple=True, type=click.Path(dir_okay=False),
              help="Continuous recording(s) to choose the threshold on and estimate precision and "
                   "recall (repeat for several). [the files the dataset's snippets came from]")
@click.option("--no-calibrate", is_flag=True,
              help="Score no recording: the threshold from the snippets (or --threshold / the base's auto).")
@click.option("--name", default=None, help="Short name stored in the model. [OUT's name]")
@click.option("--no-report", is_flag=True, help="Do not write NAME.report.png / NAME.report.json.")
@click.option("--no-progress", is_flag=True, help="No progress bar.")
@click.option("--force", is_flag=True, help="Overwrite OUT and its report if they exist.")
@handle_errors
def train(dataset: str, out: str, base: str | None, event_direction: str,
          training_direction: str | None, max_epochs: int, batch_size: int | None,
          learning_rate: float | None, dropout: float | None, patience: int | None,
          min_delta: float | None, validation_fraction: float, seed: int, no_resample: bool,
          device: str, threads: int | None, no_cache: bool, fine_tune: bool, input_scaling: str | None,
          threshold: str | None, calibrate_on: tuple[str, ...], no_calibrate: bool,
          name: str | None, no_report: bool, no_progress: bool, force: bool) -> None:
    """Train a classifier on a scored DATASET (miniML's HDF5 layout; score 2 is left out).

    With --from, transfer learning: the base model's conv and batch-norm layers stay frozen and
    the LSTM and dense layers are trained (--fine-tune trains every layer). Without it, full
    training with miniML's recipe.
    Writes OUT (temp file + rename) with window size, directions, a detection threshold chosen
    for continuous recordings (not the balanced snippets' ROC optimum) and provenance in its
    metadata, plus a report (curves, ROC, confusion matrix; PNG + JSON).
    Ctrl-C stops training and keeps the best model so far.
    """
    import os
    import warnings
    from pathlib import Path

    # Before torch loads OpenMP: threads that sleep instead of spinning while they wait. On a
    # busy machine spinning threads make two-thread training 5-10x slower than one thread.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    from .errors import OutputError, ParameterError
    from .train.fit import TrainSettings, _default_name, train_model
    from .train.report import report_paths, write_report

    out_path = Path(out)
    targets = [out_path] + ([] if no_report else list(report_paths(out_path)))
    if not force:
        for path in targets:
            if path.exists():
                raise OutputError(f"{path} exists; use --force to overwrite it")
    if not out_path.parent.is_dir() and str(out_path.parent):
        raise OutputError(f"folder does not exist: {out_path.parent}")
    if threshold is not None and threshold != "auto":
        try:
            threshold = float(threshold)
        except ValueError:
            raise ParameterError(f"--threshold must be a number in (0, 1) or 'auto', got {threshold!r}") from None
        if not 0 < threshold < 1:
            raise ParameterError(f"--threshold must be in (0, 1), got {threshold:g}")
    if no_calibrate and calibrate_on:
        raise ParameterError("--calibrate-on and --no-calibrate exclude each other")
    calibration = None if no_calibrate else (list(calibrate_on) if calibrate_on else "dataset")
    settings = TrainSettings(
        learning_rate=learning_rate, batch_size=batch_size, dropout=dropout, patience=patience,
        min_delta=min_delta, max_epochs=max_epochs, validation_fraction=validation_fraction,
        seed=seed, resample=not no_resample, event_direction=event_direction,
        training_direction=training_direction, device=device, cache_features=not no_cache,
        fine_tune=fine_tune, input_scaling=input_scaling, num_threads=threads)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = train_model(dataset, base=base, settings=settings,
                             name=name or _default_name(out_path), progress=not no_progress,
                             threshold=threshold, calibrate_on=calibration)
    for w in caught:
        click.echo(f"minidet: warning: {w.message}", err=True)
    result.save(out_path, overwrite=force)
    click.echo(result.summary())
    click.echo(f"wrote {out_path}")
    if not no_report:
        png, js = write_report(result, out_path, overwrite=force)
        click.echo(f"report: {png}, {js}")


@main.command()
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list with every field.")
@handle_errors
def models(as_json: bool) -> None:
    """List the bundled models (use the name with --model) and their settings."""
    import textwrap

    from .model.zoo import bundled_path, list_models

    found = list_models()
    if as_json:
        rows = [dict(m.to_dict(), input_scaling=m.input_scaling, file=str(bundled_path(m.name)),
                     default=m.name == DEFAULT_MODEL) for m in found]
        click.echo(json.dumps(rows, indent=2))
        return
    click.echo(f"{'name':12s} {'window':>6s} {'stride':>6s} {'thr':>4s}  {'training':8s}  {'events':8s}  "
               f"{'scaling':7s}  description")
    for m in found:
        summary = textwrap.shorten(m.description, width=64, placeholder=" ...")
        thr = "auto" if m.auto_threshold else f"{m.threshold:4.2f}"  # auto: chosen per recording
        name = m.name + (" *" if m.name == DEFAULT_MODEL else "")
        click.echo(f"{name:12s} {m.window_size:6d} {m.stride:6d} {thr:>4s}  "
                   f"{m.training_direction:8s}  {m.event_direction:8s}  {m.input_scaling:7s}  {summary}")
    click.echo("* the default (used without --model); thr auto: chosen for each recording")


# ----------------------------------------------------------------------------- training sets
@main.command()
@click.argument("path", type=click.Path(dir_okay=False, path_type=str))
@reader_options
@click.option("--direction", type=click.Choice(["negative", "positive"]), default="negative", show_default=True,
              help="Polarity of the events.")
@click.option("--plot", "plot_path", type=click.Path(dir_okay=False, path_type=str), default=None,
              help="PNG of example events with the window drawn. [default: PATH's name + .window.png, here]")
@click.option("--no-plot", is_flag=True, help="Do not write the PNG.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of text.")
@handle_errors
def window(path: str, direction: str, plot_path: str | None, no_plot: bool, as_json: bool, **kwargs: Any) -> None:
    """Suggest a window size from the kinetics of a recording's clearest events."""
    from pathlib import Path

    from .io import load
    from .train.window import plot_window, suggest_window

    recording = load(path, **reader_kwargs(kwargs))
    suggestion = suggest_window(recording, direction=direction)
    result = suggestion.to_dict()
    if not no_plot:
        plot_path = plot_path or f"{Path(path).stem}.window.png"
        result["plot"] = str(plot_window(suggestion, recording, plot_path))
    if as_json:
        click.echo(json.dumps(result, indent=2))
    else:
        click.echo(suggestion.to_text(recording.unit))
        if "plot" in result:
            click.echo(f"plot: {result['plot']}")


@main.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path(dir_okay=False, path_type=str))
@click.option("--window-size", type=int, required=True, help="Samples per snippet (see minidet window).")
@click.option("--out", "out", type=click.Path(dir_okay=False, path_type=str), required=True,
              help="Dataset file to write (HDF5).")
@reader_options
@click.option("--rise-ms", type=float, default=None, help="Template rise time constant (ms). [from the window size]")
@click.option("--decay-ms", type=float, default=None, help="Template decay time constant (ms). [from the window size]")
@click.option("--threshold-high", type=float, default=4.5, show_default=True, help="Criterion for clear events (score 1).")
@click.option("--threshold-mid", type=float, default=3.0, show_default=True,
              help="Criterion for 'less nice' events and candidates (score 2).")
@click.option("--threshold-low", type=float, default=1.6, show_default=True,
              help="Stretches no detection at this criterion touches are pure noise (score 0).")
@click.option("--direction", type=click.Choice(["negative", "positive"]), default="negative", show_default=True)
@click.option("--no-filter", is_flag=True, help="Match the template on the unfiltered trace.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed for drawing noise stretches.")
@click.option("--prescore", "prescore_model", default=None, help="Model that pre-scores every snippet, e.g. gc.")
@click.option("--disagree-with", "disagree_model", default=None, metavar="NAME|PATH",
              help="Add snippets where this model and template matching disagree (suggested score 2): "
                   "events the model is sure of below --threshold-low, clear template events it doubts. "
                   "Its event probability becomes every snippet's prescore.")
@click.option("--model-sure", type=float, default=0.9, show_default=True,
              help="With --disagree-with: prediction peak at which the model is sure of an event.")
@click.option("--model-doubt", type=float, default=0.1, show_default=True,
              help="With --disagree-with: event probability below which the model doubts a clear event.")
@click.option("--force", is_flag=True, help="Replace an existing dataset file.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of text.")
@handle_errors
def extract(paths: tuple[str, ...], window_size: int, out: str, rise_ms: float | None, decay_ms: float | None,
            threshold_high: float, threshold_mid: float, threshold_low: float, direction: str, no_filter: bool,
            seed: int, prescore_model: str | None, disagree_model: str | None, model_sure: float,
            model_doubt: float, force: bool, as_json: bool, **kwargs: Any) -> None:
    """Extract training snippets from recordings by template matching into DATASET.h5."""
    from pathlib import Path

    from .errors import OutputError, ParameterError
    from .io import load
    from .train import extract as ex
    from .train.dataset import check_unlocked, write_dataset

    settings = ex.ExtractSettings(
        window_size=window_size, rise_s=None if rise_ms is None else rise_ms / 1e3,
        decay_s=None if decay_ms is None else decay_ms / 1e3, threshold_high=threshold_high,
        threshold_mid=threshold_mid, threshold_low=threshold_low, direction=direction,
        filter=not no_filter, seed=seed, model_sure=model_sure, model_doubt=model_doubt)
    if prescore_model and disagree_model:
        raise ParameterError("--prescore and --disagree-with exclude each other (--disagree-with prescores "
                             "every snippet with its model)")
    if Path(out).exists() and not force:
        raise OutputError(f"{out} exists; pass --force to replace it")
    check_unlocked(out)
    options = reader_kwargs(kwargs)
    dataset, reports = ex.extract((load(p, **options) for p in paths), settings, disagree_with=disagree_model)
    dataset.attrs["reader_options"] = json.dumps({k: v for k, v in options.items() if v not in (None, 0.0)})
    if prescore_model:
        dataset.prescore = ex.prescore(dataset, prescore_model)
        dataset.attrs["prescore_model"] = prescore_model
    write_dataset(out, dataset, force=force)
    if as_json:
        click.echo(json.dumps({"out": out, "counts": dataset.counts(),
                               "recordings": [r.to_dict() for r in reports]}, indent=2))
        return
    for r in reports:
        click.echo(f"{r.source}: {r.n_clear} clear events, {r.n_intermediate} intermediate, {r.n_noise} noise "
                   f"stretches (largest criterion {r.max_criterion:.3g})"
                   + (f"; {r.n_disagree} where {disagree_model} disagrees ({r.n_doubted} of the clear ones)"
                      if disagree_model else ""))
        for note in r.notes:
            click.echo(f"  note: {note}")
    c = dataset.counts()
    click.echo(f"wrote {out}: {dataset.n} snippets of {dataset.window_size} samples, suggested scores "
               f"1: {c['event']}, 2: {c['exclude']}, 0: {c['no event']}; score them with: minidet score {out}")


@main.group()
def dataset() -> None:
    """Training dataset files: info, merge, rebalance."""


@dataset.command("info")
@click.argument("path", type=click.Path(dir_okay=False, path_type=str))
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of text.")
@handle_errors
def dataset_info(path: str, as_json: bool) -> None:
    """Counts per score and per source of a dataset file."""
    from .train.curate import split_groups
    from .train.dataset import CATEGORY_NAMES, read_dataset

    ds = read_dataset(path)
    counts = ds.counts()
    categories = {CATEGORY_NAMES[int(c)]: int((ds.category == c).sum()) for c in sorted(set(ds.category.tolist()))}
    groups, how = split_groups(ds) if ds.scored.any() else ({}, "")
    info_ = {"file": path, "window_size": ds.window_size, "counts": counts, "categories": categories,
             "sources": ds.per_source(), "groups": {k: int(v.size) for k, v in groups.items()}, "split": how,
             "attrs": {k: v for k, v in ds.attrs.items() if not k.startswith("_")}}
    if as_json:
        click.echo(json.dumps(info_, indent=2, default=str))
        return
    click.echo(f"file:         {path}")
    click.echo(f"snippets:     {ds.n} x {ds.window_size} samples")
    click.echo(f"scores:       1 event {counts['event']}, 0 no event {counts['no event']}, 2 exclude {counts['exclude']}"
               + (f"  ({counts['unscored']} not scored yet: their scores are the extractor's suggestion)"
                  if counts["unscored"] else ""))
    click.echo("found by:     " + ", ".join(f"{k} {v}" for k, v in categories.items()))
    if groups:
        click.echo("groups:       " + ", ".join(f"{k.replace('_', ' ')} {v.size}" for k, v in groups.items())
                   + " (scored snippets)")
        click.echo(f"              split {how}")
    click.echo("sources:")
    for row in ds.per_source():
        where = row["source"] + (f" [{row['channel']}]" if row["channel"] else "")
        click.echo(f"  {where}: {row['n']} (1: {row['event']}, 0: {row['no event']}, 2: {row['exclude']}, "
                   f"unscored {row['unscored']})")


@dataset.command("merge")
@click.argument("paths", nargs=-1, required=True, type=click.Path(dir_okay=False, path_type=str))
@click.option("--out", required=True, type=click.Path(dir_okay=False, path_type=str))
@click.option("--force", is_flag=True, help="Replace an existing output file.")
@handle_errors
def dataset_merge(paths: tuple[str, ...], out: str, force: bool) -> None:
    """Merge several dataset files (one window size) into one."""
    from .train.dataset import merge, read_dataset, write_dataset

    merged = merge([read_dataset(p) for p in paths])
    write_dataset(out, merged, force=force)
    c = merged.counts()
    click.echo(f"wrote {out}: {merged.n} snippets from {len(paths)} files "
               f"(1: {c['event']}, 0: {c['no event']}, 2: {c['exclude']}, unscored {c['unscored']})")


@dataset.command("rebalance")
@click.argument("path", type=click.Path(dir_okay=False, path_type=str))
@click.option("--ratio", default="intermediate", show_default=True,
              help="nice:less-nice:false-positives:noise, e.g. 300:300:50:550, or liberal, more-restrictive, "
                   "intermediate, restrictive. Proportions: as many snippets are kept as the scarcest "
                   "group allows at them (--counts: numbers of snippets). A missing group's share goes "
                   "to its partner (nice/less nice, false positives/noise).")
@click.option("--counts", "as_counts", is_flag=True,
              help="Read --ratio as numbers of snippets per group (at most what each group has).")
@click.option("--proportions", "as_proportions", is_flag=True, help="Read --ratio as proportions (the default).")
@click.option("--out", required=True, type=click.Path(dir_okay=False, path_type=str))
@click.option("--split-by", type=click.Choice(["auto", "category", "criterion", "prescore"]), default="auto",
              show_default=True, help="How nice events are told from less nice ones and false positives from noise.")
@click.option("--event-split", type=float, default=None, help="Criterion/prescore at which an event counts as nice.")
@click.option("--noise-split", type=float, default=None,
              help="Criterion/prescore at which a non-event counts as a false positive.")
@click.option("--include-unscored", is_flag=True, help="Treat unscored snippets' suggested scores as scores.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--force", is_flag=True, help="Replace an existing output file.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of text.")
@handle_errors
def dataset_rebalance(path: str, ratio: str, as_counts: bool, as_proportions: bool, out: str, split_by: str,
                      event_split: float | None, noise_split: float | None, include_unscored: bool, seed: int,
                      force: bool, as_json: bool) -> None:
    """Subsample a scored dataset to a ratio of nice : less nice events : false positives : noise.

    Says what it kept of each group and why, and the kept events : non-events balance.
    """
    from .errors import OutputError, ParameterError
    from .train.curate import GROUPS, parse_ratio, rebalance
    from .train.dataset import read_dataset, write_dataset
    from pathlib import Path

    if as_counts and as_proportions:
        raise ParameterError("--counts and --proportions exclude each other")
    values = parse_ratio(ratio)
    if Path(out).exists() and not force:
        raise OutputError(f"{out} exists; pass --force to replace it")
    balanced, report = rebalance(read_dataset(path), values, seed=seed, split_by=split_by, event_split=event_split,
                                 noise_split=noise_split, include_unscored=include_unscored, counts=as_counts)
    write_dataset(out, balanced, force=force)
    if as_json:
        click.echo(json.dumps({"out": out, **report}, indent=2))
        return
    click.echo(f"ratio {report['ratio']} as {report['mode']}; split {report['split']}")
    for g in GROUPS:
        click.echo(f"  {g.replace('_', ' '):15s} available {report['available'][g]:5d}   kept {report['kept'][g]:5d}")
    for note in report["notes"]:
        click.echo(f"  note: {note}")
    balance = "-" if report["balance"] is None else f"{report['balance']:.2f}"
    click.echo(f"  events {report['events']} : non-events {report['non_events']} (balance {balance}); "
               f"dropped {report['dropped_excluded']} snippets scored 2")
    click.echo(f"wrote {out}: {balanced.n} snippets")


@main.command()
@click.argument("path", type=click.Path(dir_okay=False, path_type=str))
@click.option("--recordings", "recordings", multiple=True, type=click.Path(file_okay=False, path_type=str),
              help="Folder holding the source recordings (for the context view); repeatable.")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to bind; any other than localhost requires the printed token.")
@click.option("--port", type=int, default=0, help="Port (0: any free port).")
@click.option("--no-browser", is_flag=True, help="Do not open a browser.")
@click.option("--order", type=click.Choice(["extraction", "uncertainty", "random"]), default=None,
              help="Order to present the snippets in: as extracted, the ones --model is least sure of "
                   "first (|p - 0.5|), or random (--seed); unscored ones first. Stored in the file. "
                   "[the stored order; extraction for a new dataset]")
@click.option("--model", "order_model", default=None, metavar="NAME|PATH",
              help="With --order uncertainty: the model that scores the snippets (e.g. your last "
                   "trained model, or gc-robust). [the dataset's prescore]")
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True,
              help="With --order random: the permutation's seed.")
@handle_errors
def score(path: str, recordings: tuple[str, ...], host: str, port: int, no_browser: bool,
          order: str | None, order_model: str | None, seed: int) -> None:
    """Score a dataset's snippets in the browser (0 no event, 1 event, 2 exclude).

    With --order uncertainty --model M, the snippets M is least sure of come first: train,
    score more in this order with the new model, train again (active learning).
    """
    from .web.scoring import ScoringSession, build_app

    session = ScoringSession(path, recordings=recordings, order=order, model=order_model, seed=seed)
    c = session.counts()
    kind = session.state()["order_kind"]
    _serve(build_app(session), session, host, port, no_browser,
           opened=f"scoring {path}: {c['total']} snippets, {c['unscored']} unscored, {kind} order",
           how_to_end="Ctrl-C or 'save & quit' ends the session; every change is saved at once")
    click.echo(f"saved {path}")


def _serve(web: Any, session: Any, host: str, port: int, no_browser: bool, opened: str | None,
           how_to_end: str) -> None:
    """Serve a web app until Ctrl-C, SIGTERM or its own quit; close ``session`` in every case.

    Prints the URL (tests and users read it from the line starting with ``open``) and opens
    the browser unless told not to.
    """
    import signal
    import webbrowser

    from .errors import ParameterError
    from .web.server import Server

    try:
        try:
            server = Server(web, host=host, port=port).start()
        except OSError as exc:
            raise ParameterError(f"cannot listen on {host}:{port}: {exc.strerror}") from None
        signal.signal(signal.SIGTERM, lambda *_: web.shutdown_requested.set())  # `kill` saves and ends cleanly
        if opened:
            click.echo(opened)
        click.echo(f"open {server.url}  ({how_to_end})")
        sys.stdout.flush()
        if not no_browser:
            webbrowser.open(server.url)
        try:
            server.wait()
        except KeyboardInterrupt:
            pass
    finally:
        session.close()


# ----------------------------------------------------------------------------- analysis app
@main.command()
@click.argument("path", required=False, type=click.Path(exists=True, path_type=str))
@reader_options
@click.option("--root", "roots", multiple=True, type=click.Path(exists=True, file_okay=False, path_type=str),
              help="Another folder the app may open files from and save into; repeatable.")
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=str), default=None,
              help="Where results go: OUT/<recording name>/ (editable when saving). [./minidet-results]")
@click.option("--state-dir", type=click.Path(file_okay=False, path_type=str), default=None,
              help="Where unsaved work is kept. [$MINIDET_STATE_DIR or ~/.local/state/minidet/app]")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to bind; any other than localhost requires the printed token.")
@click.option("--port", type=int, default=0, help="Port (0: any free port).")
@click.option("--no-browser", is_flag=True, help="Do not open a browser.")
@handle_errors
def app(path: str | None, roots: tuple[str, ...], out_dir: str | None, state_dir: str | None, host: str,
        port: int, no_browser: bool, **kwargs: Any) -> None:
    """Analyse recordings in the browser: pre-process, detect, review events, save.

    PATH is a recording (read with the reader options) or a results folder. The app opens
    and saves files only in PATH's folder (and, for a results folder, its recording's), the
    --root folders and OUT; without PATH and --root, in the current folder and OUT. Unsaved
    work is kept on disk and offered back when the recording is opened again.
    """
    from pathlib import Path

    from .errors import ParameterError
    from .web.analysis import AnalysisSession
    from .web.analysis_app import build_app, roots_for
    from .web.server import HTTPError

    out = Path(out_dir) if out_dir else Path("minidet-results")
    folders = roots_for(path, roots) or [Path.cwd()]
    session = AnalysisSession(folders + [out.resolve()], out_dir=out, state_dir=state_dir)
    web = build_app(session)
    if path is not None:
        try:
            session.open(path, {k: v for k, v in reader_kwargs(kwargs).items() if v is not None})
        except HTTPError as exc:
            raise ParameterError(exc.message) from None
    _serve(web, session, host, port, no_browser, opened=f"opened {path}" if path is not None else None,
           how_to_end="Ctrl-C ends the app; unsaved work is kept and offered back")


# ----------------------------------------------------------------------------- ground truth
def _float_list(spec: str, option: str) -> list[float]:
    from .errors import ParameterError

    try:
        values = [float(v) for v in spec.split(",") if v.strip()]
    except ValueError:
        raise ParameterError(f"{option} {spec!r}: give numbers separated by commas, e.g. 5,7.5,10") from None
    if not values:
        raise ParameterError(f"{option}: give at least one number")
    return values


def _simulation_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """Options of ``simulate`` (also used by ``evaluate --sweep``)."""
    options = [
        click.option("--duration", "duration_s", type=float, default=60.0, show_default=True, help="Seconds."),
        click.option("--sampling-rate", "sampling_rate", type=float, default=50_000.0, show_default=True, help="Hz."),
        click.option("--rate", "event_rate_hz", type=float, default=5.0, show_default=True,
                     help="Mean event frequency, Hz (Poisson: events overlap)."),
        click.option("--direction", "event_direction", type=click.Choice(["negative", "positive"]),
                     default="negative", show_default=True),
        click.option("--amplitude", "amplitude_median", type=float, default=10.0, show_default=True,
                     help="Median event amplitude (unit); --snr overrides it."),
        click.option("--amplitude-log-sd", type=float, default=0.4, show_default=True,
                     help="SD of log amplitude (log-normal amplitudes)."),
        click.option("--rise-tau-ms", type=float, default=0.15, show_default=True, help="Median rise time constant."),
        click.option("--decay-tau-ms", type=float, default=1.2, show_default=True, help="Median decay time constant."),
        click.option("--kinetics-log-sd", type=float, default=0.25, show_default=True,
                     help="SD of log rise and decay time constants."),
        click.option("--noise-sd", type=float, default=1.0, show_default=True, help="SD of the coloured noise (unit)."),
        click.option("--noise", "noise_spectrum", default="gc", show_default=True,
                     help="Noise spectrum: gc, white, pink, a recording (its noise), a training dataset .h5 "
                          "(its score-0 snippets) or a .npz spectrum."),
        click.option("--noise-sampling-rate", type=float, default=None,
                     help="Sampling rate (Hz) of a --noise dataset that stores none (gc_training_example: 50000)."),
        click.option("--hum", "hum_amplitude", type=float, default=0.0, show_default=True,
                     help="Line hum amplitude (unit) at --hum-hz, plus harmonics at 1/k of it."),
        click.option("--hum-hz", "hum_frequency_hz", type=float, default=50.0, show_default=True),
        click.option("--drift-sd", type=float, default=0.0, show_default=True, help="SD of slow (< 0.2 Hz) drift, unit."),
        click.option("--transient-rate", "transient_rate_hz", type=float, default=0.0, show_default=True,
                     help="Non-synaptic transients per second (spikes, biphasic blips, steps, sags)."),
        click.option("--transient-kinds", default="spike,biphasic,step,sag", show_default=True),
        click.option("--unit", default="pA", show_default=True),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def _simulation_settings(kwargs: dict[str, Any], snr_db: float | None):
    from .noise import resolve_spectrum
    from .simulation import SimulationSettings

    noise_rate = kwargs.pop("noise_sampling_rate")
    spectrum = resolve_spectrum(kwargs.pop("noise_spectrum"), sampling_rate=noise_rate)
    log_sd = kwargs.pop("kinetics_log_sd")
    return SimulationSettings(
        rise_tau_s=kwargs.pop("rise_tau_ms") / 1e3, decay_tau_s=kwargs.pop("decay_tau_ms") / 1e3,
        rise_tau_log_sd=log_sd, decay_tau_log_sd=log_sd, noise_spectrum=spectrum, snr_db=snr_db,
        transient_kinds=tuple(k.strip() for k in kwargs.pop("transient_kinds").split(",") if k.strip()),
        **kwargs,
    )


@main.command()
@click.argument("out", type=click.Path(dir_okay=False, path_type=str))
@_simulation_options
@click.option("--snr", "snr_db", type=float, default=None,
              help="SNR in dB, 20 log10(median amplitude / noise SD); sets the median amplitude.")
@click.option("--seed", type=int, default=None, help="Random seed (recorded in the truth). [random]")
@click.option("--truth", "truth_path", type=click.Path(dir_okay=False, path_type=str), default=None,
              help="Truth file (.h5 or .npz). [OUT with .truth.h5]")
@click.option("--float32", is_flag=True, help="Store the trace as float32 (half the size).")
@click.option("--int16", is_flag=True,
              help="Store the trace as int16 with a scale factor, as a digitizer does (a quarter the size). "
                   "OUT ending in .abf always writes an int16 ABF1 file.")
@click.option("--force", is_flag=True, help="Overwrite existing files.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of text.")
@handle_errors
def simulate(out: str, snr_db: float | None, seed: int | None, truth_path: str | None, float32: bool, force: bool,
             as_json: bool, int16: bool = False, **kwargs: Any) -> None:
    """Simulate a recording with known events (and transients) for testing detectors.

    Writes OUT (HDF5, dataset 'trace', or a gap-free ABF1 file when OUT ends in .abf; both
    readable by minidet detect) and the ground truth
    (onsets, amplitudes, kinetics of every event; where the transients are) next to it.
    Evaluate detections with: minidet evaluate --truth OUT.truth.h5 RESULTS
    """
    from .simulation import simulate_to_file, truth_path_for

    settings = _simulation_settings(kwargs, snr_db)
    truth_path = truth_path or truth_path_for(out)
    truth = simulate_to_file(out, settings, seed=seed, truth_path=truth_path,
                             dtype="int16" if int16 else "float32" if float32 else None, overwrite=force)
    if as_json:
        click.echo(json.dumps({"recording": out, "truth": truth_path, "n_events": truth.n_events,
                               "n_transients": int(len(truth.transients)), "snr_db": truth.snr_db,
                               "seed": truth.seed, "settings": truth.settings}, indent=2))
        return
    click.echo(f"{out}: {truth.summary()}")
    click.echo(f"truth: {truth_path} (seed {truth.seed})")


@main.command()
@click.argument("detections", required=False, type=click.Path(path_type=str))
@click.option("--truth", "truth_path", type=click.Path(dir_okay=False, path_type=str), default=None,
              help="Truth file written by minidet simulate.")
@click.option("--before-ms", type=float, default=1.0, show_default=True,
              help="A detection may lie this long before the true onset.")
@click.option("--after-ms", type=float, default=3.0, show_default=True,
              help="A detection may lie this long after the true onset.")
@click.option("--detections-rate", type=float, default=None,
              help="Sampling rate (Hz) of detections given as times. [the truth's]")
@click.option("--sweep", "do_sweep", is_flag=True,
              help="Instead: simulate a series of SNRs, detect, and print F1 against SNR.")
@click.option("--snrs", default="5,7.5,10,12.5,15", show_default=True, help="--sweep: SNRs in dB.")
@click.option("--kinetics", default="1", show_default=True,
              help="--sweep: factors on both time constants, e.g. 1,0.5,4.5 (0.5 = 2x faster).")
@click.option("--method", type=_MethodChoice(), default="miniml", show_default=True,
              help="--sweep: the detector (miniml: --model; or a classic one).")
@click.option("--model", default=DEFAULT_MODEL, show_default=True, help="--sweep: model for --method miniml.")
@click.option("--seed", type=int, default=0, show_default=True, help="--sweep: random seed.")
@click.option("--plot", "plot_path", type=click.Path(dir_okay=False, path_type=str), default=None,
              help="--sweep: write F1 against SNR to this PNG.")
@click.option("--csv", "csv_path", type=click.Path(dir_okay=False, path_type=str), default=None,
              help="--sweep: write the table to this CSV.")
@_simulation_options
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of text.")
@handle_errors
def evaluate(detections: str | None, truth_path: str | None, before_ms: float, after_ms: float,
             detections_rate: float | None, do_sweep: bool, snrs: str, kinetics: str, method: str, model: str,
             seed: int, plot_path: str | None, csv_path: str | None, as_json: bool, **kwargs: Any) -> None:
    """Score DETECTIONS against a simulation's truth: precision, recall, F1, errors.

    DETECTIONS: a minidet results folder, events.csv or results.h5; a CSV of event times
    (column time_s) or sample indices (column sample); or a .npy of sample indices.
    With --sweep: simulate each SNR (and kinetics), run --method on it, tabulate F1.
    """
    from .errors import ParameterError
    from .evaluation import MatchSettings, evaluate as run_evaluate, make_detector, plot_sweep, sweep

    match = MatchSettings(before_ms / 1e3, after_ms / 1e3)
    if do_sweep:
        if detections or truth_path:
            raise ParameterError("--sweep simulates its own recordings: give no DETECTIONS or --truth with it")
        base = _simulation_settings(kwargs, None)
        detector = make_detector(method, model) if method in ("miniml", "model") else make_detector(method)

        def show(row: dict[str, Any]) -> None:
            if not as_json:
                click.echo(f"  SNR {row['snr_db']:5.1f} dB, kinetics x{row['kinetics_scale']:g}: "
                           f"F1 {row['f1']:.3f} (precision {row['precision']:.3f}, recall {row['recall']:.3f})",
                           err=True)

        table = sweep(_float_list(snrs, "--snrs"), detector, base, _float_list(kinetics, "--kinetics"),
                      seed=seed, match=match, progress=show)
        table.insert(0, "method", method if method not in ("miniml", "model") else f"miniml ({model})")
        if csv_path:
            table.to_csv(csv_path, index=False, float_format="%.4g")
        if plot_path:
            plot_sweep(table, plot_path, title=f"{method}, {base.duration_s:g} s per SNR")
        if as_json:
            click.echo(table.to_json(orient="records", indent=2))
        else:
            click.echo(table[["method", "snr_db", "kinetics_scale", "n_true", "n_detected", "precision", "recall",
                              "f1"]].to_string(index=False, float_format=lambda v: f"{v:.3f}"))
            if plot_path:
                click.echo(f"plot: {plot_path}")
        return
    if not detections or not truth_path:
        raise ParameterError("give --truth TRUTH and DETECTIONS (or --sweep)")
    result = run_evaluate(truth_path, detections, match, sampling_rate=detections_rate)
    if as_json:
        click.echo(json.dumps(result.to_dict(), indent=2))
    else:
        click.echo(result.to_text())


if __name__ == "__main__":  # pragma: no cover
    main()
