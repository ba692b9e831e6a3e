"""minidet app: the analysis app in the browser."""

from __future__ import annotations

from typing import Any

import click


from .common import handle_errors, main, reader_kwargs, reader_options
from .training import _serve


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

    from ..errors import ParameterError
    from ..web.analysis import AnalysisSession
    from ..web.analysis_app import build_app, roots_for
    from ..web.server import HTTPError

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
