"""The ``minidet`` group, its one-line errors (API names written as the CLI options) and the
reader options every command that reads a recording shares."""

from __future__ import annotations

import functools
import re
import json
import sys
import warnings
from typing import Any, Callable

import click

from .. import __version__
from ..errors import MinidetError


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
    from ..params import cli_patterns

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
    from ..io import READER_KEYS

    return {k: kwargs.pop(k) for k in READER_KEYS if k in kwargs}


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
    from ..io import describe

    description = describe(path, **reader_kwargs(kwargs))
    if as_json:
        click.echo(json.dumps(description.to_dict(), indent=2))
    else:
        click.echo(description.to_text())


