"""The scoring session without a browser: durability, lock, speed, the JSON API."""

from __future__ import annotations

import json
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from minidet.errors import DatasetLockedError
from minidet.train.dataset import Dataset, lock_path, read_dataset, sidecar_path, write_dataset
from minidet.web.scoring import ScoringSession, build_app
from minidet.web.server import HTTPError, Server


def test_every_change_is_on_disk_at_once(extracted: Path) -> None:
    session = ScoringSession(extracted, fold_delay_s=60)
    try:
        n = session.dataset.n
        session.set_score(0, 2)
        session.set_score(1, 0)
        # another reader (miniML-style or minidet) sees the change before any fold
        seen = read_dataset(extracted)
        assert seen.scores[:2].tolist() == [2, 0] and seen.scored[:2].all() and seen.scored.sum() == 2
        assert sidecar_path(extracted).exists()
        undone = session.undo()
        assert undone["index"] == 1 and read_dataset(extracted).scored.sum() == 1
        assert session.find("unscored", 0) == 1 and session.find("unclear", 5) == 0
        assert session.snippet(n - 1)["index"] == n - 1
        with pytest.raises(HTTPError):
            session.set_score(0, 3)
        with pytest.raises(HTTPError):
            session.snippet(n)
    finally:
        session.close()
    # closing folds the sidecar into the file and releases the lock
    assert not sidecar_path(extracted).exists() and not lock_path(extracted).exists()
    back = read_dataset(extracted, apply_pending=False)
    assert back.scores[0] == 2 and back.scored.sum() == 1 and back.cursor == 1


def test_fold_after_the_last_change(extracted: Path) -> None:
    session = ScoringSession(extracted, fold_delay_s=0.2)
    try:
        session.set_score(3, 1)
        deadline = time.monotonic() + 10
        while sidecar_path(extracted).exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not sidecar_path(extracted).exists()
        assert read_dataset(extracted, apply_pending=False).scored[3]
    finally:
        session.close()


def test_second_session_is_refused(extracted: Path) -> None:
    session = ScoringSession(extracted)
    try:
        with pytest.raises(DatasetLockedError, match="another scoring session"):
            ScoringSession(extracted)
    finally:
        session.close()
    ScoringSession(extracted).close()


def test_context_from_the_source_recording(extracted: Path) -> None:
    session = ScoringSession(extracted)
    try:
        c = session.context(0)
        assert c["available"], c
        assert c["window_start"] == session.dataset.raw_indices[0]
        assert len(c["x"]) == len(c["y"]) <= 3000
        # without the source file there is no context, and the reason says so
        session._recordings.clear()
        (extracted.parent / "cell.h5").rename(extracted.parent / "moved.h5")
        c = session.context(0)
        assert not c["available"] and "not found" in c["reason"]
    finally:
        session.close()


def test_persisting_is_fast_enough_for_key_repeat(tmp_path: Path) -> None:
    """5000 snippets x 600 samples: each change durable in well under a key-repeat interval."""
    rng = np.random.default_rng(0)
    n = 5000
    ds = Dataset(events=rng.normal(size=(n, 600)), scores=np.zeros(n, int), raw_indices=np.arange(n),
                 cell_label=np.full(n, "x.abf"), scored=np.zeros(n, bool))
    path = write_dataset(tmp_path / "big.h5", ds)
    session = ScoringSession(path, fold_delay_s=0.3)
    try:
        t0 = time.perf_counter()
        for i in range(60):
            session.set_score(i, i % 3)
        per_change = (time.perf_counter() - t0) / 60
        time.sleep(0.6)
        with session._mutex:
            folds = list(session.stats["folds_s"])
    finally:
        session.close()
    print(f"\n5000x600 dataset: {per_change * 1e3:.1f} ms per change (sidecar), "
          f"fold {np.median(folds) * 1e3 if folds else float('nan'):.0f} ms")
    assert per_change < 0.05
    assert read_dataset(path).scored.sum() == 60


def test_json_api(extracted: Path) -> None:
    session = ScoringSession(extracted)
    app = build_app(session)
    server = Server(app).start()
    base = f"http://127.0.0.1:{server.port}"

    def get(path):
        with urllib.request.urlopen(base + path, timeout=10) as r:
            return json.loads(r.read())

    def post(path, body):
        req = urllib.request.Request(base + path, data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"}, method="POST")
        with urllib.request.urlopen(req, timeout=10) as r:
            return json.loads(r.read())

    try:
        state = get("/api/state")
        assert state["n"] == session.dataset.n and state["counts"]["unscored"] == state["n"]
        assert len(get("/api/snippet/0")["samples"]) == 600
        assert post("/api/score", {"index": 2, "score": 1})["counts"]["event"] == 1
        assert get("/api/find/unscored?from=1")["index"] == 3
        assert post("/api/cursor", {"index": 4}) == {"cursor": 4}
        assert post("/api/undo", {})["index"] == 2
        with pytest.raises(urllib.error.HTTPError) as err:
            post("/api/score", {"index": 0, "score": 7})
        assert err.value.code == 400
        with urllib.request.urlopen(base + "/", timeout=10) as r:
            assert b"minidet scoring" in r.read()
        assert post("/api/quit", {})["closed"]
    finally:
        server.stop()
        session.close()
    assert read_dataset(extracted).cursor == 2  # undo moved back to the snippet it changed


def test_killed_server_loses_nothing(extracted: Path, score_server) -> None:
    server = score_server(extracted)
    base = server.url.rstrip("/")
    for index, score in ((0, 1), (1, 0), (2, 2)):
        req = urllib.request.Request(f"{base}/api/score", data=json.dumps({"index": index, "score": score}).encode(),
                                     headers={"Content-Type": "application/json"}, method="POST")
        urllib.request.urlopen(req, timeout=10).read()
    server.kill()  # SIGKILL right after the last change: no fold, the lock stays behind
    assert lock_path(extracted).exists()
    ds = read_dataset(extracted)
    assert ds.scores[:3].tolist() == [1, 0, 2] and ds.scored[:3].all() and ds.scored.sum() == 3
    # a new session takes over the stale lock and resumes where the person stopped
    again = score_server(extracted)
    with urllib.request.urlopen(again.url.rstrip("/") + "/api/state", timeout=10) as r:
        state = json.loads(r.read())
    assert state["cursor"] == 2 and state["counts"]["unscored"] == ds.n - 3
    # a second session on the same file is refused with a clear message
    import subprocess
    import sys

    refused = subprocess.run([sys.executable, "-m", "minidet.cli", "score", str(extracted), "--no-browser"],
                             capture_output=True, text=True, timeout=60)
    assert refused.returncode == 2 and "open in another scoring session" in refused.stderr
    # SIGTERM saves and releases the lock
    output = again.terminate()
    assert "saved" in output
    assert not lock_path(extracted).exists() and not sidecar_path(extracted).exists()


# ---------------------------------------------------------------------- presentation order
def test_uncertainty_order_with_a_real_model_is_stored(extracted: Path) -> None:
    """--order uncertainty --model gc: least sure first, unscored first, kept on reopening."""
    session = ScoringSession(extracted, order="uncertainty", model="gc")
    try:
        ds = session.dataset
        p = ds.prescore
        assert np.isfinite(p).all() and ds.attrs["prescore_model"] == "gc"
        order = np.asarray(session.state()["order"])
        assert sorted(order.tolist()) == list(range(ds.n))
        u = np.abs(p[order] - 0.5)
        assert np.all(np.diff(u) >= 0)  # least sure first
        assert u[0] < u[-1]  # the model is sure of some snippets and not of others
        assert not np.array_equal(order, np.arange(ds.n))
        assert session.state()["cursor"] == order[0] and session.state()["order_kind"] == "uncertainty"
        # "next unscored" follows the order, not the extraction index
        session.set_score(int(order[0]), 1)
        assert session.find("unscored", int(order[0])) == order[1]
        assert session.find("unscored", int(order[-1])) == order[1]  # wraps around
        assert session.find("unscored", int(order[2]), step=-1) == order[1]
    finally:
        session.close()
    stored = read_dataset(extracted)
    assert stored.attrs["score_order"] == "uncertainty" and stored.attrs["score_order_model"] == "gc"
    # reopened without --order: the same order and prescore
    again = ScoringSession(extracted)
    try:
        assert again.state()["order"].tolist() == order.tolist()
        assert np.allclose(again.dataset.prescore, p)
    finally:
        again.close()
    # choosing the order again puts what is scored last; the rest keeps its uncertainty order
    third = ScoringSession(extracted, order="uncertainty")
    try:
        reordered = np.asarray(third.state()["order"])
        assert reordered[-1] == order[0]
        assert reordered[:-1].tolist() == order[1:].tolist()
        assert third.state()["cursor"] == order[1]
    finally:
        third.close()


def test_random_and_extraction_order(extracted: Path) -> None:
    def order_of(**kwargs):
        session = ScoringSession(extracted, **kwargs)
        try:
            return np.asarray(session.state()["order"])
        finally:
            session.close()

    n = read_dataset(extracted).n
    first = order_of(order="random", seed=3)
    assert sorted(first.tolist()) == list(range(n)) and not np.array_equal(first, np.arange(n))
    assert np.array_equal(order_of(), first)  # stored
    assert np.array_equal(order_of(order="random", seed=3), first)  # same seed, same order
    assert not np.array_equal(order_of(order="random", seed=4), first)
    assert np.array_equal(order_of(order="extraction"), np.arange(n))
    assert (read_dataset(extracted).review_rank == -1).all()


def test_bad_order_requests_are_refused_and_release_the_lock(extracted: Path) -> None:
    from minidet.errors import ParameterError

    with pytest.raises(ParameterError, match="needs a model's score"):
        ScoringSession(extracted, order="uncertainty")  # no --model, no stored prescore
    with pytest.raises(ParameterError, match="only with order 'uncertainty'"):
        ScoringSession(extracted, order="random", model="gc")
    with pytest.raises(ParameterError, match="order must be one of"):
        ScoringSession(extracted, order="sideways")
    assert not lock_path(extracted).exists()
    import subprocess
    import sys

    bad = subprocess.run([sys.executable, "-m", "minidet.cli", "score", str(extracted), "--no-browser",
                          "--order", "uncertainty"], capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2
    assert bad.stderr.strip().count("\n") == 0 and "--model" in bad.stderr
