"""The analysis app's JSON API over an AnalysisSession (routes only), and the folders it may open.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Any, Callable, Iterable

from .. import DEFAULT_MODEL
from ..errors import MinidetError, OutputError
from ..report import writers
from .analysis import STATIC_DIR, AnalysisSession, find_results_file, models
from .server import HTTPError, Request, WebApp

__all__ = ["build_app", "roots_for"]


def build_app(session: AnalysisSession) -> WebApp:
    """The analysis app's routes (JSON API) and its static page."""
    app = WebApp("analysis", static={"/static/analysis/": STATIC_DIR}, allowed_roots=session.roots)
    session.allowed_path = app.allowed_path
    app.redirects["/"] = "/static/analysis/index.html"

    def api(method: str, pattern: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        """A route whose user errors (bad values, unreadable files) answer 400 with the message."""
        register = app.route(method, pattern)

        def decorator(fn: Callable[..., Any]) -> Callable[..., Any]:
            def handler(request: Request, **params: Any) -> Any:
                try:
                    return fn(request, **params)
                except OutputError as exc:
                    raise HTTPError(409, str(exc)) from None
                except MinidetError as exc:
                    raise HTTPError(400, str(exc)) from None
                except OSError as exc:  # an unreadable file or folder the person picked
                    raise HTTPError(400, f"{exc.strerror or exc}: {exc.filename}" if exc.filename else str(exc)) from None
            return register(handler)

        return decorator

    def query_int(request: Request, name: str, default: int | None = None) -> int:
        value = request.query.get(name)
        if value is None:
            if default is None:
                raise HTTPError(400, f"{name} is missing")
            return default
        try:
            return int(float(value))
        except ValueError:
            raise HTTPError(400, f"{name} must be a number, got {value!r}") from None

    @api("GET", "/api/state")
    def state(request: Request) -> dict[str, Any]:
        return session.state()

    @api("GET", "/api/models")
    def model_list(request: Request) -> dict[str, Any]:
        from ..classic import METHODS

        from ..params import schema

        return {"models": models(), "default": DEFAULT_MODEL, "methods": ["miniml", *sorted(METHODS)],
                "settings": schema()}

    @api("GET", "/api/files")
    def files(request: Request) -> dict[str, Any]:
        return session.list_files(request.query.get("folder"))

    @api("POST", "/api/describe")
    def describe(request: Request) -> dict[str, Any]:
        body = request.json()
        return session.describe(str(body.get("path", "")), body.get("reader"))

    @api("POST", "/api/open")
    def open_(request: Request) -> dict[str, Any]:
        body = request.json()
        path = body.get("path")
        if not isinstance(path, str) or not path:
            raise HTTPError(400, "send {\"path\": \"...\", \"reader\": {...}}")
        return session.open(path, body.get("reader"))

    @api("POST", "/api/preprocess")
    def preprocess_(request: Request) -> dict[str, Any]:
        body = request.json()
        return session.set_steps(body.get("steps"), discard=bool(body.get("discard")))

    @api("GET", "/api/trace")
    def trace(request: Request) -> dict[str, Any]:
        return session.trace(query_int(request, "start"), query_int(request, "stop"),
                             query_int(request, "pixels", 1000))

    @api("POST", "/api/analyze")
    def analyze(request: Request) -> dict[str, Any]:
        body = request.json()
        return session.analyze(body.get("model", DEFAULT_MODEL), body.get("settings"), str(body.get("method", "miniml")))

    @api("GET", "/api/progress")
    def progress(request: Request) -> dict[str, Any]:
        return session.job.to_dict()

    @api("POST", "/api/cancel")
    def cancel(request: Request) -> dict[str, Any]:
        return session.cancel()

    @api("GET", "/api/events")
    def events(request: Request) -> dict[str, Any]:
        return session.events()

    @api("GET", "/api/event/<int:index>")
    def event(request: Request, index: int) -> dict[str, Any]:
        return session.event_detail(index)

    @api("POST", "/api/exclude")
    def exclude(request: Request) -> dict[str, Any]:
        body = request.json()
        return session.set_excluded(body.get("indices"), bool(body.get("excluded", True)))

    @api("POST", "/api/undo")
    def undo(request: Request) -> dict[str, Any]:
        return session.undo()

    @api("GET", "/api/stats")
    def stats(request: Request) -> dict[str, Any]:
        return session.stats()

    @api("POST", "/api/save")
    def save(request: Request) -> dict[str, Any]:
        body = request.json()
        folder = body.get("folder")
        if folder is not None and not isinstance(folder, str):
            raise HTTPError(400, "folder must be a path")
        return session.save(folder or None, force=bool(body.get("force")), plots=bool(body.get("plots")))

    @api("POST", "/api/recover")
    def recover(request: Request) -> dict[str, Any]:
        action = request.json().get("action")
        if action == "restore":
            return session.restore_offer()
        if action == "discard":
            return session.discard_offer()
        raise HTTPError(400, "action must be 'restore' or 'discard'")

    @api("POST", "/api/window")
    def window(request: Request) -> dict[str, Any]:
        body = request.json()
        return session.suggest_window(body.get("positions"), body.get("direction"), body.get("span_samples"))

    @api("POST", "/api/quit")
    def quit_(request: Request) -> dict[str, Any]:
        session.close()
        app.shutdown_requested.set()
        return {"closed": True, "dirty": session.state()["dirty"]}

    return app

def roots_for(path: str | os.PathLike[str] | None, extra: Iterable[str | os.PathLike[str]] = ()) -> list[Path]:
    """The folders ``minidet app PATH --root ...`` opens: PATH's folder (PATH itself when it is a
    folder), the folder of the recording a results folder was made from, and ``extra``."""
    roots: list[Path] = []
    if path is not None:
        p = Path(path).resolve()
        roots.append(p if p.is_dir() else p.parent)
        results = find_results_file(p)
        if results is not None:
            with contextlib.suppress(MinidetError, OSError, KeyError):
                source = writers.read_results(results).recording.get("source")
                if source:
                    roots.append(Path(source).resolve().parent)
    roots += [Path(r).resolve() for r in extra]
    unique: list[Path] = []
    for r in roots:
        if r not in unique:
            unique.append(r)
    return unique
