"""The ``minidet`` command: argument parsing and wiring only.

Every subcommand turns a :class:`minidet.errors.MinidetError` (and a missing file) into one
line on stderr and exit code 2, without a traceback. One module per group of commands:
:mod:`.common` (the group, error handling, reader options), :mod:`.detect` (detect, batch,
example-path; the detection options generated from :mod:`minidet.params`), :mod:`.models`
(models, convert, train), :mod:`.training` (window, extract, dataset, score), :mod:`.app`
(app), :mod:`.truth` (simulate, evaluate).
"""

from __future__ import annotations

from . import app, detect, models, training, truth  # noqa: F401 - each registers its commands on main
from .common import cli_names, handle_errors, main, reader_kwargs, reader_options
from .detect import detect_options, detect_overrides, parse_event_list

__all__ = ["cli_names", "detect_options", "detect_overrides", "handle_errors", "main", "parse_event_list",
           "reader_kwargs", "reader_options"]
