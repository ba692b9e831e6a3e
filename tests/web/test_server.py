"""The web server base: routes, JSON, static files, and what it refuses."""

from __future__ import annotations

import http.client
import json
from pathlib import Path

import numpy as np
import pytest

from minidet.decimate import minmax_points
from minidet.web.server import HTTPError, Server, WebApp


@pytest.fixture
def app(tmp_path: Path) -> WebApp:
    static = tmp_path / "static"
    static.mkdir()
    (static / "index.html").write_text("<h1>hi</h1>")
    (tmp_path / "secret.txt").write_text("secret")
    opened = tmp_path / "opened"
    opened.mkdir()
    app = WebApp("test", static={"/static/": static}, allowed_roots=[opened])

    @app.route("GET", "/api/item/<int:index>")
    def item(request, index):
        return {"index": index, "values": np.arange(3), "nan": float("nan")}

    @app.route("POST", "/api/echo")
    def echo(request):
        return request.json()

    @app.route("GET", "/api/file")
    def file(request):
        return {"path": str(app.allowed_path(request.query["path"]))}

    return app


def call(server: Server, method: str, path: str, body: bytes | None = None, headers: dict | None = None):
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    conn.request(method, path, body=body, headers=headers or {})
    response = conn.getresponse()
    data = response.read()
    conn.close()
    return response.status, data, response


@pytest.fixture
def server(app):
    s = Server(app).start()
    yield s
    s.stop()


def test_json_routes(server) -> None:
    status, data, _ = call(server, "GET", "/api/item/7")
    assert status == 200 and json.loads(data) == {"index": 7, "values": [0, 1, 2], "nan": None}
    status, data, _ = call(server, "POST", "/api/echo", b'{"a": 1}', {"Content-Type": "application/json"})
    assert status == 200 and json.loads(data) == {"a": 1}
    assert call(server, "GET", "/api/nothing")[0] == 404
    assert call(server, "POST", "/api/item/7", b"{}", {"Content-Type": "application/json"})[0] == 405


def test_static_files_and_no_traversal(server) -> None:
    status, data, response = call(server, "GET", "/static/index.html")
    assert status == 200 and data == b"<h1>hi</h1>" and response.getheader("Content-Type").startswith("text/html")
    assert call(server, "GET", "/static/../secret.txt")[0] == 404
    assert call(server, "GET", "/static/%2e%2e/secret.txt")[0] == 404


def test_refuses_foreign_hosts_origins_and_non_json_posts(server) -> None:
    # DNS rebinding: a page on evil.example resolving to 127.0.0.1
    assert call(server, "GET", "/api/item/1", headers={"Host": "evil.example"})[0] == 403
    # a form post from another page: no JSON content type, or a foreign Origin
    assert call(server, "POST", "/api/echo", b"a=1", {"Content-Type": "application/x-www-form-urlencoded"})[0] == 415
    assert call(server, "POST", "/api/echo", b"{}", {"Content-Type": "application/json",
                                                       "Origin": "http://evil.example"})[0] == 403
    own = f"http://127.0.0.1:{server.port}"
    assert call(server, "POST", "/api/echo", b"{}", {"Content-Type": "application/json", "Origin": own})[0] == 200


def test_paths_only_inside_opened_folders(server, tmp_path) -> None:
    inside = tmp_path / "opened" / "rec.abf"
    status, data, _ = call(server, "GET", f"/api/file?path={inside}")
    assert status == 200 and json.loads(data)["path"] == str(inside)
    for outside in (tmp_path / "secret.txt", tmp_path / "opened" / ".." / "secret.txt"):
        status, data, _ = call(server, "GET", f"/api/file?path={outside}")
        assert status == 403 and "outside the folders" in json.loads(data)["error"]


def test_token_required_when_set(app) -> None:
    server = Server(app, token="s3cret").start()
    try:
        assert server.url.endswith("?token=s3cret")
        assert call(server, "GET", "/api/item/1")[0] == 403
        status, _, response = call(server, "GET", "/api/item/1?token=s3cret")
        assert status == 200
        cookie = response.getheader("Set-Cookie").split(";")[0]
        assert call(server, "GET", "/api/item/1", headers={"Cookie": cookie})[0] == 200
        assert call(server, "GET", "/api/item/1", headers={"X-Minidet-Token": "s3cret"})[0] == 200
        assert call(server, "GET", "/api/item/1", headers={"X-Minidet-Token": "wrong"})[0] == 403
    finally:
        server.stop()


def test_token_generated_when_bound_beyond_localhost(app) -> None:
    server = Server(app, host="0.0.0.0")
    try:
        assert server.token and len(server.token) >= 24
    finally:
        server.httpd.server_close()


def test_handler_errors_become_json(app) -> None:
    @app.route("GET", "/api/fail")
    def fail(request):
        raise HTTPError(409, "nope")

    server = Server(app).start()
    try:
        status, data, _ = call(server, "GET", "/api/fail")
        assert status == 409 and json.loads(data) == {"error": "nope"}
    finally:
        server.stop()


def test_minmax_points_keeps_extremes() -> None:
    x = np.zeros(100_000)
    x[12_345] = 10.0
    x[77_777] = -5.0
    idx, values = minmax_points(x, 1000)
    assert values.size <= 1000 and values.max() == 10.0 and values.min() == -5.0
    assert np.all(np.diff(idx) >= 0) and 12_345 in idx
    idx, values = minmax_points(x[:500], 1000)
    assert values.size == 500


@pytest.mark.parametrize("n", [3001, 3750, 4499, 6000])
def test_minmax_points_just_above_the_limit(n: int) -> None:
    """The scoring app's context view asks for 5 windows at 3000 points: windows of 601-899
    samples gave bins of padding only (an all-NaN slice)."""
    x = np.sin(np.arange(n) / 50.0)
    x[n - 1] = 9.0
    idx, values = minmax_points(x, 3000)
    assert values.size <= 3000 and np.all(np.isfinite(values)) and values.max() == 9.0
    assert np.all(np.diff(idx) >= 0) and idx.max() == n - 1
