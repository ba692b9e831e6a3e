"""``run_batch`` / ``minidet batch``: per-recording results and batch tables, resuming,
failures, bad input, local workers and a Dask cluster.

The recordings are simulated (2 s at 20 kHz, 10-20 events each) and analysed with the real
``gc`` model at stride 120, so a recording takes about a second. The serial run is the
reference every other way of running is compared with.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

pytest.importorskip("minidet.detection.predict", reason="minidet.detection.predict is not in this checkout")

from minidet.batch import inputs as B  # noqa: E402
from minidet.batch import BatchSettings, plan_batch, resolve_workers, run_batch  # noqa: E402
from minidet.cli import main  # noqa: E402
from minidet.errors import OutputError, ParameterError, RecordingNotFoundError  # noqa: E402
from minidet.simulation import SimulationSettings, simulate_to_file  # noqa: E402

RATE = 20_000.0
DURATION_S = 2.0
SETTINGS = BatchSettings(detect={"stride": 120})
# one torch thread per process: on a busy machine two threads per process are far slower
SERIAL = {"workers": 1, "threads_per_worker": 1, "progress": False}
# columns that say how and when a recording was run, not what came out
# (and the input path, which differs where the inputs were copied)
RUN_COLUMNS = ["status", "elapsed_s", "worker", "peak_rss_mb", "error_type", "error", "path"]


def simulate_file(path: Path, seed: int, duration_s: float = DURATION_S) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    settings = SimulationSettings(duration_s=duration_s, sampling_rate=RATE, amplitude_median=15.0,
                                  event_rate_hz=6.0)
    simulate_to_file(str(path), settings, seed=seed, truth_path=str(path.with_suffix(".truth.npz")),
                     overwrite=True)
    return path


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    """a/cell0.h5, a/cell1.h5, b/cell0.h5, b/cell2.h5 (and the simulator's truth files)."""
    root = tmp_path_factory.mktemp("batch-data")
    for seed, rel in enumerate(["a/cell0.h5", "a/cell1.h5", "b/cell0.h5", "b/cell2.h5"]):
        simulate_file(root / rel, seed)
    return root


@pytest.fixture(scope="module")
def serial(data, tmp_path_factory):
    """The reference: the folder analysed in this process."""
    out = tmp_path_factory.mktemp("batch-serial") / "out"
    return run_batch([data], out, SETTINGS, **SERIAL)


def comparable(result) -> tuple[pd.DataFrame, pd.DataFrame]:
    rec = result.recordings.drop(columns=RUN_COLUMNS).sort_values("recording").reset_index(drop=True)
    ev = result.events.sort_values(["recording", "event"]).reset_index(drop=True)
    return rec, ev


def assert_same_results(result, reference) -> None:
    rec, ev = comparable(result)
    ref_rec, ref_ev = comparable(reference)
    pd.testing.assert_frame_equal(rec, ref_rec, check_exact=False, rtol=1e-5, atol=1e-9)
    pd.testing.assert_frame_equal(ev, ref_ev, check_exact=False, rtol=1e-5, atol=1e-9)


def copy_tree(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns("*.truth.*"))
    return dst


# ----------------------------------------------------------------------------- serial run
def test_serial_run_writes_results_per_recording_and_batch_tables(data, serial):
    from minidet.detection.pipeline import detect
    from minidet.io import load
    from minidet.report import read_results
    from minidet.simulation import read_truth

    out = serial.out_dir
    names = ["a__cell0", "a__cell1", "b__cell0", "b__cell2"]
    assert serial.recordings["recording"].tolist() == names
    assert serial.ok and serial.n_done == 4 and serial.n_cached == 0
    for name in names:
        folder = out / "recordings" / name
        assert sorted(p.name for p in folder.iterdir()) == ["_done.json", "events.csv", "results.h5", "summary.csv"]
        marker = json.loads((folder / "_done.json").read_text())
        assert marker["files"] == ["events.csv", "results.h5", "summary.csv"]
    for stem in ("batch_summary", "batch_events", "batch_failures"):
        assert (out / f"{stem}.csv").is_file() and (out / f"{stem}.parquet").is_file()

    # the same events as detect() on that recording with the same settings, i.e. minidet detect
    import torch

    rec = load(data / "a" / "cell1.h5")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        direct = detect(rec, SETTINGS.model, stride=120)  # the batch's model: the default
    finally:
        torch.set_num_threads(threads)
    ev = serial.events[serial.events["recording"] == "a__cell1"].reset_index(drop=True)
    assert len(ev) == direct.count > 0
    np.testing.assert_array_equal(ev["sample"].to_numpy(), direct.events["sample"].to_numpy())
    np.testing.assert_allclose(ev["amplitude_pA"].to_numpy(), direct.events["amplitude"].to_numpy(), rtol=1e-9)
    stored = read_results(out / "recordings" / "a__cell1")
    assert stored.settings["stride"] == 120 and len(stored.events) == direct.count

    # known answer: the simulated events are found (the simulator's truth)
    truth = read_truth(str(data / "a" / "cell1.truth.npz"))
    assert abs(direct.count - truth.n_events) <= 2

    # tables: one row per recording with summary statistics; all events with a recording column
    table = serial.recordings.set_index("recording")
    counts = serial.events.groupby("recording").size()
    assert (table["count"] == counts.reindex(table.index)).all()
    assert table["settings_hash"].nunique() == 1 and table["content_sha256"].nunique() == 4
    assert (table["status"] == "done").all() and table["unit"].eq("pA").all()
    parquet = pd.read_parquet(out / "batch_events.parquet")
    pd.testing.assert_frame_equal(parquet, serial.events, check_dtype=False)
    csv = pd.read_csv(out / "batch_summary.csv")
    assert csv["recording"].tolist() == names and np.allclose(csv["frequency_hz"], table["frequency_hz"])
    # the same column names as each recording's summary.csv (units in the names)
    one = pd.read_csv(out / "recordings" / names[0] / "summary.csv")
    assert "amplitude_mean_pA" in csv.columns and "amplitude_mean" not in csv.columns
    assert set(one.columns) - {"source", "channel"} <= set(csv.columns), set(one.columns) - set(csv.columns)
    # and the same event columns as each recording's events.csv, in its order, after recording (and labels)
    events_csv = pd.read_csv(out / "batch_events.csv")
    own = pd.read_csv(out / "recordings" / names[0] / "events.csv")
    assert list(events_csv.columns) == ["recording", *own.columns, "unit"]
    assert "amplitude_pA" in events_csv.columns and "charge_pC" in events_csv.columns
    assert "amplitude" not in events_csv.columns and "amplitude" not in serial.events.columns
    first = events_csv[events_csv["recording"] == names[0]].drop(columns=["recording", "unit"]).reset_index(drop=True)
    pd.testing.assert_frame_equal(first, own, check_dtype=False)
    assert len(pd.read_csv(out / "batch_failures.csv")) == 0


def test_rerun_skips_unchanged_and_redoes_changed_or_unfinished(data, serial, tmp_path):
    src = copy_tree(data, tmp_path / "data")
    out = tmp_path / "out"
    shutil.copytree(serial.out_dir, out)  # results made from identical files and settings

    again = run_batch([src], out, SETTINGS, **SERIAL)
    assert again.n_cached == 4 and again.n_done == 0
    assert_same_results(again, serial)

    # new content in one file, and one result left without its marker (an interrupted write)
    simulate_file(src / "b" / "cell2.h5", seed=99)
    os.unlink(out / "recordings" / "a__cell0" / "_done.json")
    (out / "recordings" / ".a__cell1.h5.tmp-0123abcd").mkdir()  # debris of a killed worker
    third = run_batch([src], out, SETTINGS, **SERIAL)
    status = dict(zip(third.recordings["recording"], third.recordings["status"]))
    assert status == {"a__cell0": "done", "a__cell1": "cached", "b__cell0": "cached", "b__cell2": "done"}
    assert not [p for p in (out / "recordings").iterdir() if p.name.startswith(".")]
    changed = third.recordings.set_index("recording").loc["b__cell2"]
    assert changed["content_sha256"] != serial.recordings.set_index("recording").loc["b__cell2", "content_sha256"]

    # a stored result damaged after it was written: reported, and redone by the next run
    (out / "recordings" / "b__cell0" / "results.h5").write_bytes(b"damaged")
    fourth = run_batch([src], out, SETTINGS, **SERIAL)
    assert fourth.n_cached == 3 and "cannot be read" in fourth.failures.set_index("recording").loc["b__cell0", "error"]
    fifth = run_batch([src], out, SETTINGS, **SERIAL)
    assert fifth.ok and fifth.n_done == 1 and fifth.n_cached == 3


def test_manifest_rows_carry_reader_options_overrides_and_labels(data, tmp_path):
    manifest = tmp_path / "manifest.csv"
    a = os.path.relpath(data / "a" / "cell0.h5", tmp_path)
    manifest.write_text(
        "path,cell,condition,threshold,skip_start,name\n"
        f"{a},c1,control,,,\n"
        f"{data / 'a' / 'cell0.h5'},c1,drug,0.7,0.5,cell0-late\n"
    )
    result = run_batch([manifest], tmp_path / "out", SETTINGS, **SERIAL)
    table = result.recordings.set_index("recording")
    assert list(table.index) == ["cell0", "cell0-late"]
    assert table.loc["cell0-late", "condition"] == "drug" and table.loc["cell0", "cell"] == "c1"
    assert table.loc["cell0-late", "duration_s"] == pytest.approx(DURATION_S - 0.5)
    assert table.loc["cell0", "duration_s"] == pytest.approx(DURATION_S)
    from minidet.report import read_results

    assert read_results(tmp_path / "out" / "recordings" / "cell0-late").settings["threshold"] == 0.7
    assert set(result.events["condition"]) == {"control", "drug"}
    assert result.recordings["settings_hash"].nunique() == 2

    # a changed setting redoes that row only; a changed label redoes nothing
    manifest.write_text(
        "path,cell,condition,threshold,skip_start,name\n"
        f"{a},c1,washout,,,\n"
        f"{data / 'a' / 'cell0.h5'},c1,drug,0.8,0.5,cell0-late\n"
    )
    again = run_batch([manifest], tmp_path / "out", SETTINGS, **SERIAL)
    assert dict(zip(again.recordings["recording"], again.recordings["status"])) == {
        "cell0": "cached", "cell0-late": "done"}
    assert again.recordings.set_index("recording").loc["cell0", "condition"] == "washout"


# ----------------------------------------------------------------------------- failures
def test_a_bad_file_is_a_failure_and_the_others_complete(data, tmp_path):
    src = tmp_path / "data"
    src.mkdir()
    shutil.copy(data / "a" / "cell1.h5", src / "good.h5")
    (src / "broken.h5").write_bytes(b"this is not an HDF5 file")
    (src / "notes.txt").write_text("ignored: text files are picked up only when named")
    runner = CliRunner()
    args = ["batch", str(src), "--out", str(tmp_path / "out"), "--workers", "1", "--threads-per-worker", "1",
            "--stride", "120", "--no-progress"]
    res = runner.invoke(main, args)
    assert res.exit_code == 1, res.output
    assert "1 analysed, 0 up to date, 1 failed" in res.output
    assert "broken.h5" in res.output and "HDF5" in res.output
    failures = pd.read_csv(tmp_path / "out" / "batch_failures.csv")
    assert failures["recording"].tolist() == ["broken"] and failures["error_type"].iloc[0] == "CorruptFileError"
    summary = pd.read_csv(tmp_path / "out" / "batch_summary.csv").set_index("recording")
    assert summary.loc["good", "status"] == "done" and summary.loc["broken", "status"] == "failed"
    assert not (tmp_path / "out" / "recordings" / "broken").exists()
    assert (tmp_path / "out" / "recordings" / "good" / "_done.json").is_file()

    # a re-run tries the failed file again; --force redoes the good one too
    res = runner.invoke(main, args)
    assert res.exit_code == 1 and "0 analysed, 1 up to date, 1 failed" in res.output
    res = runner.invoke(main, args + ["--force"])
    assert res.exit_code == 1 and "1 analysed, 0 up to date, 1 failed" in res.output


def test_tables_are_written_when_every_recording_fails(tmp_path):
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "empty.npy").write_bytes(b"")
    result = run_batch([tmp_path / "in"], tmp_path / "out", SETTINGS, **SERIAL)
    assert not result.ok and result.n_failed == 1 and "empty" in result.failures["error"].iloc[0]
    # no result, no unit to name: the plain column names
    assert len(result.events) == 0 and {"recording", "event", "amplitude", "unit"} <= set(result.events.columns)
    assert len(pd.read_parquet(tmp_path / "out" / "batch_events.parquet")) == 0
    assert pd.read_csv(tmp_path / "out" / "batch_summary.csv")["status"].tolist() == ["failed"]


# ----------------------------------------------------------------------------- bad input
def _refused(tmp_path, inputs, exc, match, settings=SETTINGS):
    out = tmp_path / "refused-out"
    with pytest.raises(exc, match=match):
        plan_batch(inputs, out, settings)
    assert not out.exists(), "nothing may be created before the inputs are checked"


def test_bad_inputs_are_refused_before_any_work(data, tmp_path):
    m = tmp_path / "m.csv"
    m.write_text("file,cell\na/cell0.h5,c1\n")
    _refused(tmp_path, [m], ParameterError, "no 'path' column")  # a CSV without 'path' is no manifest...
    m.write_text("path,cell\nnope.h5,c1\nalso-missing.h5,c2\n")
    _refused(tmp_path, [m], RecordingNotFoundError, r"2 recording file\(s\) not found: line 2: .*nope\.h5")
    m.write_text(f"path,condition\n{data / 'a/cell0.h5'},x\n{data / 'a/cell0.h5'},y\n")
    _refused(tmp_path, [m], ParameterError, "line 3 and .*line 2 describe the same analysis")
    m.write_text(f"path,name\n{data / 'a/cell0.h5'},same\n{data / 'a/cell1.h5'},same\n")
    _refused(tmp_path, [m], ParameterError, "names its result 'same'")
    m.write_text(f"path,treshold\n{data / 'a/cell0.h5'},0.5\n")
    _refused(tmp_path, [m], ParameterError, "'treshold' looks like a misspelt 'threshold'")
    m.write_text(f"path,count\n{data / 'a/cell0.h5'},3\n")
    _refused(tmp_path, [m], ParameterError, "label column 'count' would clash")
    m.write_text(f"path,threshold\n{data / 'a/cell0.h5'},high\n")
    _refused(tmp_path, [m], ParameterError, "line 2, column 'threshold'")
    m.write_text(f"path,threshold\n{data / 'a/cell0.h5'},1.5\n")
    _refused(tmp_path, [m], ParameterError, "line 2, column 'threshold': threshold must be a number in")
    _refused(tmp_path, [str(data / "*.abf")], RecordingNotFoundError, "matches no files")
    _refused(tmp_path, [data / "nothing-here.h5"], RecordingNotFoundError, "no such file or folder")
    with pytest.raises(ParameterError, match="unknown detection setting"):
        BatchSettings(detect={"treshold": 0.5})
    # the output folder inside an input folder
    inner = data / "results"
    with pytest.raises(OutputError, match="inside the input folder"):
        plan_batch([data], inner, SETTINGS)
    assert not inner.exists()


def test_cli_bad_input_is_one_line_and_exit_2(tmp_path):
    m = tmp_path / "m.csv"
    m.write_text("path,cell\nmissing.h5,c1\n")
    res = CliRunner().invoke(main, ["batch", str(m), "--out", str(tmp_path / "out")])
    assert res.exit_code == 2
    assert res.output.startswith("minidet: error: manifest") and "missing.h5" in res.output
    assert not (tmp_path / "out").exists()


def test_result_folder_names_are_unique_and_stable(data, tmp_path):
    jobs = plan_batch([data / "a", data / "b", data / "a" / "cell0.h5"], tmp_path / "out", SETTINGS)
    names = [j.name for j in jobs]
    # a/cell0.h5 is found twice (folder and file): analysed once; cell0.h5 of a and b collide
    assert len(names) == 4 and len(set(names)) == 4
    assert sum(n.startswith("cell0-") for n in names) == 2
    assert "cell1" in names and "cell2" in names
    again = plan_batch([data / "a", data / "b"], tmp_path / "out", SETTINGS)
    assert [j.name for j in again] == names  # same inputs, same names
    globbed = plan_batch([str(data / "*" / "cell0.h5")], tmp_path / "out2", SETTINGS)
    assert [j.name for j in globbed] == ["a__cell0", "b__cell0"]  # relative to the pattern's fixed part
    assert B._safe_name("x/.hidden dir/ä b.abf") == "x__.hidden_dir___b.abf"
    assert B._safe_name("x/.hidden dir/ä b.abf", strip_suffix=True) == "x__.hidden_dir___b"  # as detect's folder


def test_resolve_workers_fits_the_cores():
    assert resolve_workers(None, None, 20, cores=8) == (8, 1)
    assert resolve_workers(None, None, 3, cores=8) == (3, 2)
    assert resolve_workers(2, None, 20, cores=8) == (2, 4)
    assert resolve_workers(None, 2, 20, cores=8) == (4, 2)
    assert resolve_workers(None, None, 1, cores=2) == (1, 2)
    with pytest.raises(ParameterError, match="workers must be an integer >= 1"):
        resolve_workers(0, None, 3)


# ----------------------------------------------------------------------------- local workers
def _finished(out) -> list:
    """Markers of the finished result folders under ``out``, not of one still being written
    (a hidden ``.NAME.tmp-*`` folder gets its marker last and is then renamed into place)."""
    return [m for m in out.glob("recordings/*/_done.json") if not m.parent.name.startswith(".")]


def test_local_workers_then_ctrl_c_then_the_next_run_carries_on(data, serial, tmp_path):
    """Two worker processes (as `minidet batch --workers 2`) interrupted by Ctrl-C once a
    recording is done: no half-written result, and the next run keeps what they finished
    (equal to the serial results) and does the rest."""
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "minidet.cli", "batch", str(data), "--out", str(out), "--workers", "2",
           "--stride", "120", "--no-progress"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 180
        while not _finished(out) and proc.poll() is None:
            assert time.monotonic() < deadline, "no recording finished in time"
            time.sleep(0.05)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    finished = [p for p in (out / "recordings").iterdir() if not p.name.startswith(".")]
    if proc.returncode == 130:
        assert "interrupted" in err
        assert 1 <= len(finished) <= 4
    else:  # a fast machine finished before the signal arrived
        assert proc.returncode == 0, err
    assert all((p / "_done.json").is_file() for p in finished), "a result folder without its marker"
    workers = {json.loads((p / "_done.json").read_text())["worker"] for p in finished}
    assert all(int(w.rsplit(":", 1)[1]) != proc.pid for w in workers), "computed by the worker processes"
    assert not (out / "_batch.lock").exists()

    result = run_batch([data], out, SETTINGS, **SERIAL)
    assert result.n_cached == len(finished) and result.n_done == 4 - len(finished)
    assert not [p for p in (out / "recordings").iterdir() if p.name.startswith(".")]
    assert_same_results(result, serial)


# ----------------------------------------------------------------------------- Dask
@pytest.fixture(scope="module")
def cluster():
    distributed = pytest.importorskip("distributed", reason="the Dask tests need the 'distributed' package")
    with distributed.LocalCluster(n_workers=2, processes=True, threads_per_worker=1, host="127.0.0.1",
                                  dashboard_address=None) as cl:
        yield cl


def test_dask_cluster_by_address_gives_the_serial_results(data, serial, cluster, tmp_path):
    result = run_batch([data], tmp_path / "out", SETTINGS, scheduler=cluster.scheduler_address, progress=False)
    assert result.n_done == 4
    assert_same_results(result, serial)


def test_a_worker_killed_mid_batch_loses_no_recording(data, serial, cluster, tmp_path):
    from distributed import Client

    out = tmp_path / "out"
    with Client(cluster) as client:
        client.wait_for_workers(2, timeout=120)
        box: dict = {}

        def work():
            try:
                box["result"] = run_batch([data], out, SETTINGS, client=client, progress=False)
            except BaseException as exc:  # pragma: no cover - reported below
                box["error"] = exc

        thread = threading.Thread(target=work)
        thread.start()
        deadline = time.monotonic() + 120
        victim = None
        while victim is None and thread.is_alive():
            assert time.monotonic() < deadline, "no recording finished in time"
            if _finished(out):
                busy = [w for w, keys in client.processing().items() if keys]
                victim = busy[0] if busy else None
            time.sleep(0.05)
        killed = victim is not None
        if killed:
            try:
                client.run(os._exit, 1, workers=[victim])
            except Exception:  # noqa: BLE001 - the worker dies without answering
                pass
        thread.join(timeout=240)
        assert not thread.is_alive(), "the batch did not finish after a worker was killed"
    assert "error" not in box, box.get("error")
    result = box["result"]
    assert killed, "every recording finished before a worker could be killed"
    assert result.n_done == 4 and result.ok
    assert_same_results(result, serial)
    assert not [p for p in (out / "recordings").iterdir() if p.name.startswith(".")]
