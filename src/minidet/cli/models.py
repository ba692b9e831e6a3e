"""minidet models, convert and train: the bundled models, miniML files to minidet's, and training a model."""

from __future__ import annotations

import json

import click

from .. import DEFAULT_MODEL

from .common import handle_errors, main


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

    from ..errors import OutputError
    from ..model import from_keras

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
    from ..errors import OutputError, ParameterError
    from ..train.fit import TrainSettings, _default_name, train_model
    from ..train.report import report_paths, write_report

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

    from ..model.zoo import bundled_path, list_models

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
