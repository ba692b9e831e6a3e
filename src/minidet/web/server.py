"""A small local web server for minidet's browser apps (scoring, analysis).

Built on the standard library's :class:`http.server.ThreadingHTTPServer`: the apps are local
and single-user, so no framework is needed. A :class:`WebApp` holds routes (``GET
/api/snippet/<int:index>`` -> a function returning a dict, sent as JSON) and static folders;
a :class:`Server` binds it to an address.

Safety, since a local server is reachable from any web page the user opens:

* bound to 127.0.0.1 by default; requests whose ``Host`` header names another host are
  refused (DNS rebinding);
* bound elsewhere, every request must carry a random token (``?token=`` once, then a cookie,
  or the ``X-Minidet-Token`` header);
* requests that change something must be JSON (``Content-Type: application/json``), and an
  ``Origin`` header, when sent, must be the server's own: a foreign page cannot post to it;
* file paths that come from the browser are resolved and must lie inside the folders the
  user opened (:meth:`WebApp.allowed_path`); static files are served from the app's own folder.
"""

from __future__ import annotations

import http.cookies
import json
import logging
import mimetypes
import re
import secrets
import threading
import urllib.parse
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Callable, Iterable

import numpy as np

__all__ = ["HTTPError", "Request", "Response", "Server", "WebApp"]

log = logging.getLogger(__name__)

LOOPBACK = {"127.0.0.1", "localhost", "::1"}
TOKEN_COOKIE = "minidet_token"
MAX_BODY = 1 << 20


class HTTPError(Exception):
    """Raised by a handler: answered as ``{"error": message}`` with ``status``."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = int(status)
        self.message = message


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes = b""
    params: dict[str, Any] = field(default_factory=dict)

    def json(self) -> dict[str, Any]:
        """The body as a JSON object (400 if it is not one)."""
        try:
            value = json.loads(self.body or b"{}")
        except ValueError:
            raise HTTPError(400, "the request body is not valid JSON") from None
        if not isinstance(value, dict):
            raise HTTPError(400, "the request body must be a JSON object")
        return value


@dataclass
class Response:
    body: bytes
    status: int = 200
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)


_CONVERTERS = {"int": (r"-?\d+", int), "str": (r"[^/]+", str), "path": (r".+", str)}


def _compile(pattern: str) -> tuple[re.Pattern[str], dict[str, Callable[[str], Any]]]:
    converters: dict[str, Callable[[str], Any]] = {}

    def repl(match: re.Match[str]) -> str:
        kind, name = match.group(1) or "str", match.group(2)
        regex, conv = _CONVERTERS[kind]
        converters[name] = conv
        return f"(?P<{name}>{regex})"

    regex = re.sub(r"<(?:(\w+):)?(\w+)>", repl, pattern)
    return re.compile(f"^{regex}$"), converters


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return _jsonable(value.tolist())
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not np.isfinite(value):
        return None
    if isinstance(value, Path):
        return str(value)
    return value


class WebApp:
    """Routes, static folders and the folders the user opened.

    Parameters
    ----------
    name
        Shown in logs.
    static
        URL prefix -> folder, e.g. ``{"/static/scoring/": Path(...)}``.
    allowed_roots
        Folders that paths from the browser may point into.
    """

    def __init__(self, name: str, static: dict[str, Path] | None = None, allowed_roots: Iterable[Path] = ()) -> None:
        self.name = name
        self.static = {prefix: Path(folder).resolve() for prefix, folder in (static or {}).items()}
        self.allowed_roots = [Path(p).resolve() for p in allowed_roots]
        self._routes: list[tuple[str, re.Pattern[str], dict[str, Callable[[str], Any]], Callable[..., Any]]] = []
        self.redirects: dict[str, str] = {}
        self.shutdown_requested = threading.Event()

    def route(self, method: str, pattern: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        """Register ``handler(request, **params)``; it returns a dict/list (JSON) or a Response."""
        regex, converters = _compile(pattern)

        def decorator(handler: Callable[..., Any]) -> Callable[..., Any]:
            self._routes.append((method.upper(), regex, converters, handler))
            return handler

        return decorator

    def allowed_path(self, path: str | Path) -> Path:
        """``path`` resolved; 403 unless it lies inside one of :attr:`allowed_roots`."""
        resolved = Path(path).expanduser().resolve()
        for root in self.allowed_roots:
            if resolved == root or root in resolved.parents:
                return resolved
        raise HTTPError(403, f"{path} is outside the folders opened in this session")

    def handle(self, request: Request) -> Response:
        if request.method == "GET" and request.path in self.redirects:
            return Response(b"", 302, "text/plain", {"Location": self.redirects[request.path]})
        matched_path = False
        for method, regex, converters, handler in self._routes:
            match = regex.match(request.path)
            if not match:
                continue
            matched_path = True
            if method != request.method:
                continue
            params = {k: converters[k](v) for k, v in match.groupdict().items()}
            result = handler(request, **params)
            if isinstance(result, Response):
                return result
            body = json.dumps(_jsonable(result), allow_nan=False).encode()
            return Response(body, headers={"Cache-Control": "no-store"})
        if matched_path:
            raise HTTPError(405, f"{request.method} is not allowed on {request.path}")
        if request.method in ("GET", "HEAD"):
            return self._static(request.path)
        raise HTTPError(404, f"no such resource: {request.path}")

    def _static(self, url_path: str) -> Response:
        for prefix, folder in self.static.items():
            if not url_path.startswith(prefix):
                continue
            relative = urllib.parse.unquote(url_path[len(prefix):]) or "index.html"
            target = (folder / relative).resolve()
            if folder not in target.parents or not target.is_file():
                break
            ctype = mimetypes.guess_type(target.name)[0] or "application/octet-stream"
            if ctype.startswith("text/") or ctype in ("application/javascript",):
                ctype += "; charset=utf-8"
            return Response(target.read_bytes(), 200, ctype, {"Cache-Control": "no-cache"})
        raise HTTPError(404, f"no such resource: {url_path}")


def _handler_class(app: WebApp, server: "Server") -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        server_version = "minidet"

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib name
            log.debug("%s: " + format, app.name, *args)

        def _send(self, response: Response) -> None:
            self.send_response(response.status)
            self.send_header("Content-Type", response.content_type)
            self.send_header("Content-Length", str(len(response.body)))
            self.send_header("X-Content-Type-Options", "nosniff")
            self.send_header("Referrer-Policy", "no-referrer")
            for key, value in response.headers.items():
                self.send_header(key, value)
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(response.body)

        def _error(self, status: int, message: str) -> None:
            self._send(Response(json.dumps({"error": message}).encode(), status))

        def _dispatch(self) -> None:
            try:
                response = self._respond()
            except HTTPError as exc:
                self._error(exc.status, exc.message)
            except Exception as exc:  # a bug must not kill the server: answer 500 and log it
                log.exception("%s: %s %s failed", app.name, self.command, self.path)
                self._error(500, f"internal error: {exc}")
            else:
                self._send(response)

        def _respond(self) -> Response:
            url = urllib.parse.urlsplit(self.path)
            query = dict(urllib.parse.parse_qsl(url.query))
            headers = {k.lower(): v for k, v in self.headers.items()}
            server.check_host(headers.get("host", ""))
            set_cookie = server.check_token(query, headers)
            length = int(headers.get("content-length") or 0)
            if length > MAX_BODY:
                raise HTTPError(413, "request body too large")
            body = self.rfile.read(length) if length else b""
            if self.command not in ("GET", "HEAD"):
                server.check_origin(headers)
                # a foreign page can send only "simple" requests without asking first: never JSON
                if not headers.get("content-type", "").startswith("application/json"):
                    raise HTTPError(415, "send JSON (Content-Type: application/json)")
            request = Request(self.command, url.path, query, headers, body)
            response = app.handle(request)
            if set_cookie:
                response.headers["Set-Cookie"] = set_cookie
            return response

        def do_GET(self) -> None:  # noqa: N802 - stdlib naming
            self._dispatch()

        do_HEAD = do_GET

        def do_POST(self) -> None:  # noqa: N802
            self._dispatch()

    return Handler


class Server:
    """Serve a :class:`WebApp` on ``host:port`` (port 0: any free port) in a background thread.

    A token is required when ``host`` is not a loopback address (or when ``token`` is given).
    """

    def __init__(self, app: WebApp, host: str = "127.0.0.1", port: int = 0, token: str | None = None) -> None:
        self.app = app
        self.host = host
        self.token = token if token is not None else (None if host in LOOPBACK else secrets.token_urlsafe(24))
        self.httpd = ThreadingHTTPServer((host, int(port)), _handler_class(app, self))
        self.httpd.daemon_threads = True
        self.port = int(self.httpd.server_address[1])
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        base = f"http://{host}:{self.port}/"
        return base + (f"?token={self.token}" if self.token else "")

    # ---------------------------------------------------------------- request checks
    def check_host(self, host_header: str) -> None:
        name = host_header.rsplit(":", 1)[0].strip("[]").lower() if host_header else ""
        if self.host in LOOPBACK and name not in LOOPBACK:
            raise HTTPError(403, "this server answers only requests addressed to localhost")

    def check_token(self, query: dict[str, str], headers: dict[str, str]) -> str | None:
        """Return a Set-Cookie value when the token came in the query; 403 when it is missing."""
        if self.token is None:
            return None
        if secrets.compare_digest(query.get("token", ""), self.token):
            return f"{TOKEN_COOKIE}={self.token}; HttpOnly; SameSite=Strict; Path=/"
        if secrets.compare_digest(headers.get("x-minidet-token", ""), self.token):
            return None
        cookie = http.cookies.SimpleCookie(headers.get("cookie", ""))
        if TOKEN_COOKIE in cookie and secrets.compare_digest(cookie[TOKEN_COOKIE].value, self.token):
            return None
        raise HTTPError(403, "missing or wrong token; open the address the server printed")

    def check_origin(self, headers: dict[str, str]) -> None:
        origin = headers.get("origin")
        if origin is None:
            return
        parts = urllib.parse.urlsplit(origin)
        if parts.port != self.port or (parts.hostname or "") not in (LOOPBACK | {self.host}):
            raise HTTPError(403, f"requests from {origin} are not accepted")

    # ---------------------------------------------------------------- running
    def start(self) -> "Server":
        self._thread = threading.Thread(target=self.httpd.serve_forever, name=f"{self.app.name}-http", daemon=True)
        self._thread.start()
        return self

    def wait(self) -> None:
        """Block until the app asks to shut down (or Ctrl-C)."""
        try:
            while not self.app.shutdown_requested.wait(0.5):
                pass
        finally:
            self.stop()

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
