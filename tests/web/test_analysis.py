"""The analysis app's server side: envelopes, the session API, saving, recovery, path safety.

The analyses here use the classic deconvolution detector (milliseconds, no model); the
browser test runs the bundled gc model.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from minidet.report import read_results
from minidet.web.analysis import AnalysisSession
from minidet.web.analysis_app import build_app, roots_for
from minidet.web.forms import detect_overrides, reader_options
from minidet.decimate import Envelope, minmax_bins
from minidet.web.server import HTTPError, Server

from train_synthetic import synthetic_recording, write_h5_recording  # tests/train (see conftest)

N_EVENTS = 20


# ---------------------------------------------------------------------------- envelopes
def brute(x: np.ndarray, x0: int, width: int, n_bins: int) -> tuple[np.ndarray, np.ndarray]:
    lo = np.array([x[x0 + i * width: x0 + (i + 1) * width].min() for i in range(n_bins)])
    hi = np.array([x[x0 + i * width: x0 + (i + 1) * width].max() for i in range(n_bins)])
    return lo, hi


@pytest.mark.parametrize("start, stop, pixels", [(0, 2_000_003, 1400), (12_345, 1_500_000, 900), (777, 50_000, 1200),
                                                 (1_999_000, 2_000_003, 333), (100, 2_000, 1400), (5, 9, 1)])
def test_envelope_equals_brute_force_min_max(start: int, stop: int, pixels: int) -> None:
    x = np.random.default_rng(1).normal(size=2_000_003)
    x[1_234_567] = 50.0  # a single-sample spike must survive any zoom
    piece = Envelope(x).slice(start, stop, pixels)
    if (stop - start) / pixels < 2:
        assert piece.full_resolution and piece.x0 == start and np.array_equal(piece.lo, x[start:stop])
        return
    w = piece.bin_width
    assert piece.x0 % w == 0 and piece.x0 <= start < piece.x0 + w  # aligned bins covering the range
    assert piece.x0 + w * piece.lo.size >= stop and piece.lo.size <= pixels + 1
    assert w <= 1.125 * (stop - start) / pixels + 2  # columns at most 1/8 wider than asked
    lo, hi = brute(x, piece.x0, w, piece.lo.size)
    assert np.array_equal(piece.lo, lo) and np.array_equal(piece.hi, hi)
    if start <= 1_234_567 < stop:
        assert piece.hi.max() == 50.0


def test_envelope_work_is_bounded_on_long_traces() -> None:
    x = np.zeros(30_000_000, dtype=np.float32)  # 10 min at 50 kHz
    env = Envelope(x)
    env.levels()
    t0 = time.perf_counter()
    for start in range(0, 20_000_000, 1_000_000):  # pans at full and mid zoom
        env.slice(0, x.size, 1500)
        env.slice(start, start + 5_000_000, 1500)
    per_request = (time.perf_counter() - t0) / 40
    assert per_request < 0.05, f"{per_request * 1e3:.1f} ms per envelope request"
    lo, hi = minmax_bins(np.arange(10.0), 4)
    assert lo.tolist() == [0, 4, 8] and hi.tolist() == [3, 7, 9]


# ---------------------------------------------------------------------------- fixtures
@pytest.fixture
def folder(tmp_path: Path) -> Path:
    rec, _ = synthetic_recording(duration_s=3, n_events=N_EVENTS, amplitude=15, noise_sd=1.5)
    data = tmp_path / "data"
    data.mkdir()
    write_h5_recording(data / "cell.h5", rec)
    return data


@pytest.fixture
def session(folder: Path, tmp_path: Path) -> AnalysisSession:
    return AnalysisSession([folder], out_dir=folder / "results", state_dir=tmp_path / "state")


def analyze(session: AnalysisSession, **settings) -> dict:
    session.analyze(method="deconvolution", settings=settings)
    job = session.wait(60)
    assert job["state"] == "done", job
    return job


# ---------------------------------------------------------------------------- the session
def test_open_preprocess_analyze_edit_save(session: AnalysisSession, folder: Path) -> None:
    state = session.open(str(folder / "cell.h5"))
    assert state["recording"]["n_samples"] == 150_000 and state["result"] is None
    assert state["out_dir"] == str(folder / "results" / "cell")

    trace = session.trace(0, 150_000, 1000)
    assert trace["trace"]["bin"] >= 150 and len(trace["trace"]["lo"]) <= 1001 and "prediction" not in trace
    zoomed = session.trace(1000, 2000, 1000)
    assert zoomed["trace"]["bin"] == 1 and len(zoomed["trace"]["lo"]) == 1000

    state = session.set_steps([{"step": "highpass", "cutoff_hz": 1.0}, {"step": "cut", "start_s": 0, "stop_s": 0.5}])
    assert state["recording"]["n_samples"] == 125_000 and [s["step"] for s in state["steps"]] == ["highpass", "cut"]

    analyze(session, window_size=600)
    state = session.state()
    n = state["result"]["n_events"]
    assert 10 <= n <= N_EVENTS + 3 and state["dirty"] and state["result"]["method"] == "deconvolution"
    events = session.events()
    assert len(events["time_s"]) == n and not any(events["excluded"])

    before = session.stats()
    assert before["n_kept"] == n and sum(before["histograms"][0]["counts"]) == n
    assert len(before["average"]["y"]) == len(before["average"]["t_ms"]) > 100
    answer = session.set_excluded([2, 5], True)
    assert answer["changed"] == [2, 5] and answer["n_kept"] == n - 2 and answer["unsaved"] == 1
    assert session.set_excluded([5], True)["changed"] == []  # already excluded: no edit
    after = session.stats()
    assert after["n_kept"] == n - 2 and after["summary"]["count"] == n - 2
    assert sum(after["histograms"][0]["counts"]) == n - 2
    # cumulative distributions of the kept events' amplitudes and intervals (ms)
    cum = {c["column"]: c for c in after["cumulative"]}
    kept = ~np.asarray(events["excluded"]) & ~np.isin(np.arange(n), [2, 5])
    amplitudes = np.sort(np.asarray(events["amplitude"])[kept])
    assert np.allclose(cum["amplitude"]["values"], amplitudes, atol=1e-4) and cum["amplitude"]["n"] == n - 2
    assert cum["amplitude"]["fraction"][-1] == 1.0 and np.all(np.diff(cum["amplitude"]["fraction"]) > 0)
    intervals = np.sort(np.diff(np.sort(np.asarray(events["time_s"])[kept]))) * 1e3
    assert cum["interval_s"]["unit"] == "ms" and np.allclose(cum["interval_s"]["values"], intervals, atol=1e-5)
    import minidet.web.views as analysis_module

    points = analysis_module.CUMULATIVE_POINTS
    analysis_module.CUMULATIVE_POINTS = 5  # long recordings: rank-spaced points, ends kept
    try:
        few = {c["column"]: c for c in session.stats()["cumulative"]}["amplitude"]
    finally:
        analysis_module.CUMULATIVE_POINTS = points
    assert len(few["values"]) == 5 and few["fraction"][-1] == 1.0 and few["n"] == n - 2
    assert few["values"][0] == pytest.approx(amplitudes[0], abs=1e-4) and few["values"][-1] == pytest.approx(amplitudes[-1], abs=1e-4)
    # the decay fit on the average event: the curve behind the summary's tau
    fit = after["average"]["fit"]
    assert fit["tau_ms"] == pytest.approx(after["summary"]["tau_decay_s"] * 1e3)
    assert fit["tau_ms"] == pytest.approx(1.35, rel=0.35)  # the synthetic events decay with 1.35 ms
    avg_t, avg_y = np.asarray(after["average"]["t_ms"]), np.asarray(after["average"]["y"])
    fit_y = np.asarray(fit["y"])
    assert len(fit["t_ms"]) == len(fit_y) and np.allclose(fit["t_ms"], avg_t[-len(fit_y):])
    assert np.abs(fit_y - avg_y[-len(fit_y):]).mean() < 0.1 * np.abs(avg_y).max()
    assert session.undo()["n_kept"] == n
    session.set_excluded([3], True)

    detail = session.event_detail(3)
    m = detail["markers"]
    assert detail["excluded"] and len(detail["raw"]) == len(detail["t_ms"]) == len(detail["filtered"])
    assert m["onset_ms"] < 0 < m["peak_ms"] < m["half_decay_ms"]  # onset, position, peak, half decay in order
    assert m["peak"] < m["half"] < m["baseline"]  # negative events
    assert detail["measures"]["amplitude"] == pytest.approx(events["amplitude"][3])

    saved = session.save()
    out = folder / "results" / "cell"
    assert saved["folder"] == str(out) and not saved["dirty"]
    assert {"events.csv", "summary.csv", "results.h5"} <= set(saved["written"])
    stored = read_results(out)
    assert len(stored.events) == n and stored.events["excluded"].tolist().count(True) == 1
    assert bool(stored.events["excluded"].iloc[3]) and len(stored.kept_events) == n - 1
    assert stored.recording["metadata"]["preprocessing"][1]["step"] == "cut"
    csv = pd.read_csv(out / "events.csv")
    assert csv["excluded"].sum() == 1 and int(pd.read_csv(out / "summary.csv")["count"][0]) == n - 1
    assert not list(out.glob(".*.part"))  # atomic writes leave no temporary files

    # reopening the results folder brings back the same events, exclusions and pre-processing
    fresh = AnalysisSession([folder], state_dir=session.state_dir)
    state = fresh.open(str(out))
    assert state["result"]["n_events"] == n and state["result"]["n_kept"] == n - 1
    assert state["recording"]["n_samples"] == 125_000 and state["saved_to"] == str(out)
    assert fresh.events()["excluded"][3] and not state["dirty"]
    fresh.set_excluded([0], True)
    assert fresh.save()["folder"] == str(out)  # its own folder: overwritten without asking
    assert len(read_results(out).kept_events) == n - 2


def test_unsaved_work_is_offered_back_after_a_crash(session: AnalysisSession, folder: Path) -> None:
    session.open(str(folder / "cell.h5"))
    session.set_steps([{"step": "detrend", "kind": "linear"}])
    analyze(session)
    n = session.state()["result"]["n_events"]
    session.set_excluded([1, 4], True)
    session.set_excluded([4], False)
    session.set_excluded([7], True)
    # the server dies here: nothing but the recovery folder is left
    other = AnalysisSession([folder], state_dir=session.state_dir)
    state = other.open(str(folder / "cell.h5"))
    assert state["result"] is None and state["steps"] == []
    offer = state["offer"]
    assert offer["n_events"] == n and offer["n_excluded"] == 2 and offer["steps"][0]["step"] == "detrend"
    state = other.restore_offer()
    assert state["result"]["n_kept"] == n - 2 and state["dirty"] and state["steps"][0]["step"] == "detrend"
    excluded = np.flatnonzero(other.events()["excluded"]).tolist()
    assert excluded == [1, 7]
    trace = other.trace(0, 10_000, 500)
    assert "prediction" not in trace  # a classic detector has no prediction trace
    # once saved, nothing is offered any more
    other.save(str(folder / "saved"))
    assert AnalysisSession([folder], state_dir=session.state_dir).open(str(folder / "cell.h5"))["offer"] is None


def test_results_keep_their_own_settings_and_are_offered_on_reopening(session: AnalysisSession, folder: Path) -> None:
    from minidet import detect, load
    from minidet.report import write_results

    session.open(str(folder / "cell.h5"))
    assert session.state()["saved_results"] is None
    analyze(session, window_size=480, rel_prom_cutoff=0.4, peak_w=7)
    n = session.state()["result"]["n_events"]
    session.set_excluded([1], True)
    out = session.save()["folder"]
    # reopening the recording offers the saved results, with what they hold
    again = AnalysisSession([folder], out_dir=folder / "results", state_dir=session.state_dir)
    state = again.open(str(folder / "cell.h5"))
    found = state["saved_results"]
    assert state["result"] is None and found["folder"] == out
    assert found["n_events"] == n and found["n_kept"] == n - 1 and found["model"] == session.result.settings.model
    # opening them brings the results' own settings, not the defaults, and says where from
    state = again.open(found["folder"])
    settings = state["result"]["settings"]
    assert (settings["window_size"], settings["rel_prom_cutoff"], settings["peak_w"]) == (480, 0.4, 7)
    assert state["result"]["origin"] == "results" and state["result"]["opened_from"] == out
    assert state["saved_results"] is None
    # other reader options are another recording: not offered
    assert again.open(str(folder / "cell.h5"), {"skip_start_s": "0.1"})["saved_results"] is None
    # results saved into a folder of the person's choosing are found again too (the state folder notes it)
    again.open(out)
    again.set_excluded([2], True)
    again.save(str(folder / "chosen"))
    state = AnalysisSession([folder], out_dir=folder / "results", state_dir=session.state_dir).open(str(folder / "cell.h5"))
    assert state["saved_results"]["folder"] == str(folder / "chosen") and state["saved_results"]["n_kept"] == n - 2
    # results `minidet detect` wrote next to the recording (its default folder) are found too
    result = detect(load(folder / "cell.h5"), method="deconvolution", window_size=520)
    write_results(result, folder / "minidet-results" / "cell")
    other = AnalysisSession([folder], out_dir=folder / "elsewhere", state_dir=folder.parent / "other-state")
    found = other.open(str(folder / "cell.h5"))["saved_results"]
    assert found["folder"] == str((folder / "minidet-results" / "cell").resolve())
    state = other.open(found["folder"])
    assert state["result"]["settings"]["window_size"] == 520 and state["result"]["threshold_auto"] is False
    # a threshold that was chosen for the recording is marked, so that Analyze chooses it again
    import dataclasses

    chosen = dataclasses.replace(result, info={**result.info, "auto_threshold": {"threshold": 0.98}})
    write_results(chosen, folder / "auto-results")
    state = other.open(str(folder / "auto-results"))
    assert state["result"]["threshold_auto"] is True
    assert other.result.info["auto_threshold"] == {"threshold": 0.98}  # the report says how it was chosen


def test_discarding_the_offer_and_changed_files(session: AnalysisSession, folder: Path) -> None:
    session.open(str(folder / "cell.h5"))
    analyze(session)
    session.set_excluded([0], True)
    again = AnalysisSession([folder], state_dir=session.state_dir)
    assert again.open(str(folder / "cell.h5"))["offer"] is not None
    assert again.discard_offer()["offer"] is None
    assert AnalysisSession([folder], state_dir=session.state_dir).open(str(folder / "cell.h5"))["offer"] is None
    # work kept for a file that changed since is not offered for the new content
    session.set_excluded([1], True)
    rec, _ = synthetic_recording(duration_s=3, n_events=5, seed=3)
    write_h5_recording(folder / "cell.h5", rec)
    assert AnalysisSession([folder], state_dir=session.state_dir).open(str(folder / "cell.h5"))["offer"] is None
    # other reader options are another recording
    assert AnalysisSession([folder], state_dir=session.state_dir).open(
        str(folder / "cell.h5"), {"skip_start_s": "0.1"})["recording"]["n_samples"] == 145_000


def test_guards_and_errors(session: AnalysisSession, folder: Path) -> None:
    with pytest.raises(HTTPError) as info:
        session.trace(0, 10, 10)
    assert info.value.status == 409
    session.open(str(folder / "cell.h5"))
    with pytest.raises(HTTPError):
        session.events()
    with pytest.raises(Exception, match="window_size"):
        session.analyze(method="deconvolution", settings={"window_size": "12.5"})
    with pytest.raises(Exception, match="window_size must be an integer >= 30"):
        session.analyze(method="deconvolution", settings={"window_size": 10})
    with pytest.raises(Exception, match="method"):
        session.analyze(method="magic")
    with pytest.raises(Exception, match="unknown setting"):
        detect_overrides({"windowsize": 3})
    assert detect_overrides({"threshold": "0.6", "window_size": "600", "stride": "", "resample": False}) == {
        "threshold": 0.6, "window_size": 600, "resample": False}
    assert reader_options({"channel": 1, "skip_start_s": "0", "scale": "1e12", "unit": " pA "}) == {
        "channel": "1", "scale": 1e12, "unit": "pA"}
    with pytest.raises(Exception, match="Nyquist"):
        session.set_steps([{"step": "lowpass", "cutoff_hz": 1e6}])
    analyze(session)
    n = session.state()["result"]["n_events"]
    with pytest.raises(Exception, match="do not exist"):
        session.set_excluded([n], True)
    with pytest.raises(HTTPError):
        session.event_detail(n)
    session.set_excluded([0], True)
    with pytest.raises(HTTPError, match="discards the analysis"):
        session.set_steps([])
    assert session.set_steps([], discard=True)["result"] is None
    (folder / "taken").mkdir()
    (folder / "taken" / "results.h5").write_bytes(b"")
    analyze(session)
    with pytest.raises(Exception, match="already holds results"):
        session.save(str(folder / "taken"))
    assert session.save(str(folder / "taken"), force=True)["folder"] == str(folder / "taken")


def test_window_suggestion_from_clicked_events(session: AnalysisSession, folder: Path) -> None:
    session.open(str(folder / "cell.h5"))
    analyze(session)
    samples = session.events()["sample"][:6]
    answer = session.suggest_window(positions=[int(s) for s in samples], span_samples=2000)
    # synthetic events: rise 0.25 ms, decay 1.35 ms at 50 kHz -> about 450 samples
    assert answer["from_selection"] and 300 <= answer["window_size"] <= 700
    assert answer["decay_tau_s"] == pytest.approx(1.35e-3, rel=0.35)
    assert len(answer["average"]["y"]) == len(answer["average"]["fit"]) == len(answer["average"]["t_ms"])
    assert answer["window_start_ms"] < 0 < answer["window_stop_ms"]
    examples = np.asarray(answer["examples"])  # mapped back to the recording's samples
    assert examples.size and np.min(np.abs(examples[:, None] - np.asarray(samples)[None, :]), axis=1).min() < 200


# ---------------------------------------------------------------------------- over HTTP
def request(server: Server, path: str, body: dict | None = None, headers: dict | None = None,
            content_type: str = "application/json") -> tuple[int, dict]:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(f"http://127.0.0.1:{server.port}{path}", data=data, method="POST" if data else "GET")
    if data is not None:
        req.add_header("Content-Type", content_type)
    for k, v in (headers or {}).items():
        req.add_header(k, v)
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, json.loads(resp.read() or b"{}")
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"{}")


def test_no_endpoint_reaches_outside_the_opened_folders(session: AnalysisSession, folder: Path, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    rec, _ = synthetic_recording(duration_s=1, n_events=3)
    write_h5_recording(outside / "secret.h5", rec)
    server = Server(build_app(session)).start()
    try:
        status, listing = request(server, "/api/files?folder=" + str(folder))
        assert status == 200 and {e["name"] for e in listing["entries"]} == {"cell.h5"}
        assert request(server, "/api/files?folder=" + str(tmp_path))[0] == 403
        assert request(server, "/api/files?folder=" + str(folder / ".." / "outside"))[0] == 403
        assert request(server, "/api/open", {"path": str(outside / "secret.h5")})[0] == 403
        assert request(server, "/api/open", {"path": str(folder / ".." / "outside" / "secret.h5")})[0] == 403
        assert request(server, "/api/describe", {"path": str(outside / "secret.h5")})[0] == 403
        status, state = request(server, "/api/open", {"path": str(folder / "cell.h5")})
        assert status == 200 and state["open"]
        status, _ = request(server, "/api/analyze", {"method": "deconvolution"})
        assert status == 200
        session.wait(60)
        assert request(server, "/api/save", {"folder": str(outside / "results")})[0] == 403
        assert not (outside / "results").exists()
        assert request(server, "/api/analyze", {"model": str(outside / "model.safetensors")})[0] == 403
        # a results file whose recording lies outside is refused too
        (folder / "elsewhere").mkdir()
        request(server, "/api/save", {"folder": str(folder / "elsewhere")})
        import h5py

        with h5py.File(folder / "elsewhere" / "results.h5", "r+") as h5:
            meta = json.loads(h5["recording"].attrs["json"])
            meta["source"] = str(outside / "secret.h5")
            h5["recording"].attrs["json"] = json.dumps(meta)
        status, answer = request(server, "/api/open", {"path": str(folder / "elsewhere")})
        assert status == 403 and "outside the folders" in answer["error"]
        # not JSON, or from a foreign page: refused before any handler runs
        assert request(server, "/api/exclude", {"indices": [0]}, content_type="text/plain")[0] == 415
        assert request(server, "/api/exclude", {"indices": [0]}, headers={"Origin": "http://evil.example"})[0] == 403
        assert request(server, "/api/state", headers={"Host": "evil.example"})[0] == 403
        status, answer = request(server, "/api/trace?start=0&stop=abc")
        assert status == 400 and "stop" in answer["error"]
        status, answer = request(server, "/api/exclude", {"indices": [0]})
        assert status == 200 and answer["n_kept"] == session.state()["result"]["n_events"] - 1
    finally:
        server.stop()


def test_token_when_bound_elsewhere(session: AnalysisSession) -> None:
    server = Server(build_app(session), host="0.0.0.0").start()
    try:
        assert server.token and "token=" in server.url
        req = urllib.request.Request(f"http://127.0.0.1:{server.port}/api/state")
        with pytest.raises(urllib.error.HTTPError) as info:
            urllib.request.urlopen(req, timeout=10)
        assert info.value.code == 403
        req.add_header("X-Minidet-Token", server.token)
        with urllib.request.urlopen(req, timeout=10) as resp:
            assert resp.status == 200
    finally:
        server.stop()


def test_roots_for_results_folder_adds_the_recording_folder(session: AnalysisSession, folder: Path,
                                                             tmp_path: Path) -> None:
    session.open(str(folder / "cell.h5"))
    analyze(session)
    results = tmp_path / "elsewhere" / "res"
    results.parent.mkdir()
    session.roots.append(results.parent.resolve())
    session.allowed_path = build_app(session).allowed_path
    session.save(str(results))
    assert roots_for(results) == [results.resolve(), folder.resolve()]
    assert roots_for(folder / "cell.h5", [tmp_path]) == [folder.resolve(), tmp_path.resolve()]


def test_prediction_progress_reaches_the_job_and_cancels() -> None:
    from minidet.web.jobs import AnalysisCancelled, Job, _prediction_progress
    import tqdm.auto as tqdm_auto

    original = tqdm_auto.tqdm
    job = Job(state="running")
    with _prediction_progress(job):
        from tqdm.auto import tqdm  # what predict does, at call time

        bar = tqdm(total=40, desc="predict", leave=False)
        bar.update(10)
        assert (job.done, job.total, job.stage) == (10, 40, "predicting")
        assert job.to_dict()["fraction"] == 0.25
        job.cancel.set()
        with pytest.raises(AnalysisCancelled):
            bar.update(10)
        bar.close()
    assert tqdm_auto.tqdm is original  # put back afterwards


def test_prediction_progress_names_the_inverted_pass() -> None:
    from minidet.detection.pipeline import INVERTED_LABEL
    from minidet.web.jobs import Job, _prediction_progress

    job = Job(state="running")
    with _prediction_progress(job):
        from tqdm.auto import tqdm

        bar = tqdm(total=40, desc=INVERTED_LABEL, leave=False)
        bar.update(5)
        assert (job.done, job.stage) == (5, "auto threshold (inverted)")
        bar.close()
