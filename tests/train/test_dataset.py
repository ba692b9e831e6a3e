"""Dataset files: miniML's layout, validation, sidecar, lock, merge, rebalance, CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import h5py
import numpy as np
import pytest
from click.testing import CliRunner

from minidet.cli import main
from minidet.errors import DatasetError, DatasetLockedError, OutputError, ParameterError
from minidet.train.dataset import (
    Dataset,
    DatasetLock,
    lock_path,
    merge,
    read_dataset,
    sidecar_path,
    write_dataset,
    write_sidecar,
)
from minidet.train.curate import parse_ratio, rebalance, split_groups


@pytest.fixture
def miniml_file(shared):
    return shared / "data" / "miniml" / "gc_training_example.h5"


def make_dataset(n_clear=40, n_mid=60, n_noise=40, window=50, seed=0, scored=True) -> Dataset:
    rng = np.random.default_rng(seed)
    n = n_clear + n_mid + n_noise
    category = np.array([1] * n_clear + [2] * n_mid + [0] * n_noise, dtype=np.int8)
    # a person scored half of the intermediate ones as events, half as not
    scores = np.where(category == 1, 1, np.where(category == 0, 0, np.arange(n) % 2))
    return Dataset(
        events=rng.normal(size=(n, window)),
        scores=scores,
        raw_indices=np.arange(n) * 1000,
        cell_label=np.array([f"cell{i % 2}.abf" for i in range(n)]),
        scored=np.full(n, scored),
        category=category,
        criterion=np.where(category == 1, 6.0, np.where(category == 2, 3.5, 1.0)),
        channel=np.full(n, "Im"),
        sampling_rate=np.full(n, 50e3),
    )


def test_miniml_dataset_loads_as_it_is(miniml_file) -> None:
    ds = read_dataset(miniml_file)
    assert ds.events.shape == (530, 600)
    assert ds.counts() == {"no event": 86, "event": 86, "exclude": 358, "unscored": 0, "total": 530}
    assert ds.per_source() == [{"source": "./example_recordings/B_2020-06-09_002.h5", "channel": "", "n": 530,
                                "no event": 86, "event": 86, "exclude": 358, "unscored": 0}]
    assert np.all(ds.category == -1) and np.all(np.isnan(ds.criterion))


def test_written_files_keep_miniml_layout(tmp_path, miniml_file) -> None:
    ds = read_dataset(miniml_file)
    out = write_dataset(tmp_path / "copy.h5", ds)
    with h5py.File(out, "r") as f, h5py.File(miniml_file, "r") as g:
        for name in ("events", "scores", "raw_indices", "cell_label"):
            assert f[name].shape == g[name].shape
            assert f[name].dtype.kind == g[name].dtype.kind
            np.testing.assert_array_equal(f[name][()], g[name][()])
    again = read_dataset(out)
    np.testing.assert_array_equal(again.scores, ds.scores)
    assert again.cell_label.tolist() == ds.cell_label.tolist()


def test_round_trip_keeps_provenance(tmp_path) -> None:
    ds = make_dataset()
    ds.prescore = np.linspace(0, 1, ds.n)
    ds.attrs["cursor"] = 17
    write_dataset(tmp_path / "d.h5", ds)
    back = read_dataset(tmp_path / "d.h5")
    for name in ("events", "scores", "raw_indices", "scored", "category", "criterion", "prescore", "sampling_rate"):
        np.testing.assert_array_equal(getattr(back, name), getattr(ds, name))
    assert back.channel.tolist() == ds.channel.tolist()
    assert back.cursor == 17 and back.attrs["format"] == "minidet-training-data"


def _write_raw(path, **arrays) -> None:
    with h5py.File(path, "w") as f:
        for name, value in arrays.items():
            f.create_dataset(name, data=value)


@pytest.mark.parametrize("arrays, message", [
    ({"events": np.zeros(600), "scores": np.zeros(1, int)}, "2-D"),
    ({"events": np.zeros((3, 600), dtype=np.int16), "scores": np.zeros(3, int)}, "floating-point"),
    ({"events": np.zeros((3, 600)), "scores": np.zeros(4, int)}, r"one value per snippet \(3\)"),
    ({"events": np.zeros((3, 600)), "scores": np.array([0, 1, 5])}, r"scores\[2\] is 5"),
    ({"events": np.zeros((3, 600)), "scores": np.array([0, -1, 1])}, r"scores\[1\] is -1"),
    ({"events": np.zeros((3, 600)), "scores": np.array([0.0, 0.5, 1.0])}, "whole numbers"),
    ({"events": np.zeros((3, 600)), "scores": np.zeros(3, int), "raw_indices": np.zeros((3, 2))}, "raw_indices"),
    ({"events": np.zeros((3, 600))}, "lacks 'scores'"),
])
def test_bad_dataset_files(tmp_path, arrays, message) -> None:
    path = tmp_path / "bad.h5"
    _write_raw(path, **arrays)
    with pytest.raises(DatasetError, match=message):
        read_dataset(path)


def test_not_hdf5(tmp_path) -> None:
    path = tmp_path / "x.h5"
    path.write_text("hello")
    with pytest.raises(DatasetError, match="not a readable HDF5"):
        read_dataset(path)
    result = CliRunner().invoke(main, ["dataset", "info", str(path)])
    assert result.exit_code == 2 and result.output.count("\n") == 1


def test_nothing_overwritten_without_force(tmp_path) -> None:
    path = tmp_path / "d.h5"
    write_dataset(path, make_dataset())
    before = path.read_bytes()
    with pytest.raises(OutputError, match="exists"):
        write_dataset(path, make_dataset(seed=1))
    assert path.read_bytes() == before


def test_sidecar_scores_apply_only_to_their_dataset(tmp_path) -> None:
    path = tmp_path / "d.h5"
    ds = make_dataset(scored=False)
    write_dataset(path, ds)
    ds.scores[:3] = [2, 2, 2]
    ds.scored[:3] = True
    ds.attrs["cursor"] = 3
    write_sidecar(path, ds)
    back = read_dataset(path)
    assert back.scores[:3].tolist() == [2, 2, 2] and back.scored[:3].all() and not back.scored[3:].any()
    assert back.cursor == 3
    # a sidecar left from another dataset of the same name is ignored
    write_dataset(path, make_dataset(seed=5, scored=False), force=True)
    write_sidecar(path, ds)
    assert not read_dataset(path).scored.any()
    assert not read_dataset(path, apply_pending=False).scored.any()
    # a torn sidecar (crash while writing without rename: cannot happen, but) is ignored
    sidecar_path(path).write_text('{"n": 3')
    assert not read_dataset(path).scored.any()


def test_lock_excludes_a_second_session_and_stale_locks_are_taken(tmp_path) -> None:
    path = tmp_path / "d.h5"
    write_dataset(path, make_dataset())
    with DatasetLock(path):
        with pytest.raises(DatasetLockedError, match=r"open in another scoring session \(pid \d+"):
            DatasetLock(path).acquire()
        with pytest.raises(DatasetLockedError):
            write_dataset(path, make_dataset(), force=True)
    assert not lock_path(path).exists()
    # a lock left by a process that no longer runs is stale
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    import socket

    lock_path(path).write_text(json.dumps({"pid": int(dead.stdout), "host": socket.gethostname()}))
    lock = DatasetLock(path).acquire()
    assert json.loads(lock_path(path).read_text())["pid"] == os.getpid()
    lock.release()
    # a lock from another host counts until its heartbeat is older than stale_after_s
    lock_path(path).write_text(json.dumps({"pid": 1, "host": "elsewhere"}))
    with pytest.raises(DatasetLockedError, match="elsewhere"):
        DatasetLock(path).acquire()
    old = os.path.getmtime(lock_path(path)) - 3600
    os.utime(lock_path(path), (old, old))
    DatasetLock(path).acquire().release()


def test_merge(tmp_path, miniml_file) -> None:
    a, b = make_dataset(seed=1), make_dataset(seed=2, n_clear=5)
    m = merge([a, b])
    assert m.n == a.n + b.n
    np.testing.assert_array_equal(m.category, np.concatenate([a.category, b.category]))
    with pytest.raises(DatasetError, match="different window sizes"):
        merge([a, read_dataset(miniml_file)])


def test_rebalance_to_the_seed_ratios() -> None:
    ds = make_dataset(n_clear=200, n_mid=400, n_noise=300)  # mid: 200 events, 200 false positives
    groups, how = split_groups(ds)
    assert "category" in how
    assert {k: v.size for k, v in groups.items()} == {"nice": 200, "less_nice": 200, "false_positive": 200, "noise": 300}
    out, report = rebalance(ds, parse_ratio("liberal"))  # 100:500:50:550
    kept = report["kept"]
    assert kept["less_nice"] == 200  # the scarcest group at this ratio
    assert kept == {"nice": 40, "less_nice": 200, "false_positive": 20, "noise": 220}
    assert out.n == sum(kept.values())
    out, report = rebalance(ds, parse_ratio("1:1:1:1"), seed=3)
    assert set(report["kept"].values()) == {200}
    assert np.all(out.scores != 2)


def test_rebalance_gives_a_missing_groups_share_to_its_partner_and_takes_counts() -> None:
    ds = make_dataset(n_clear=200, n_mid=400, n_noise=0)  # no pure noise: the README's case
    out, report = rebalance(ds, parse_ratio("intermediate"))  # 300:300:300:300
    assert report["ratio"] == "300:300:600:0" and report["mode"] == "proportions"
    assert report["kept"] == {"nice": 100, "less_nice": 100, "false_positive": 200, "noise": 0}
    assert report["balance"] == 1.0 and report["events"] == report["non_events"] == 200
    assert any("noise" in n and "false positive" in n for n in report["notes"])
    out, report = rebalance(ds, parse_ratio("50:60:70:0"), counts=True)
    assert report["kept"] == {"nice": 50, "less_nice": 60, "false_positive": 70, "noise": 0}
    assert report["mode"] == "counts" and out.n == 180
    _, report = rebalance(ds, parse_ratio("500:10:10:0"), counts=True)
    assert report["kept"]["nice"] == 200 and any("500 asked, 200 available" in n for n in report["notes"])


def test_rebalance_errors() -> None:
    with pytest.raises(DatasetError, match="not scored yet"):
        rebalance(make_dataset(scored=False), parse_ratio("intermediate"))
    ds = make_dataset(n_noise=0, n_mid=0)  # no non-events at all
    with pytest.raises(DatasetError, match="asks for non-events but the dataset has none"):
        rebalance(ds, parse_ratio("intermediate"))
    for bad in ("1:2:3", "a:b:c:d", "-1:1:1:1", "0:0:0:0", "lenient"):
        with pytest.raises(ParameterError):
            parse_ratio(bad)


def test_rebalance_a_miniml_file_splits_by_criterion(miniml_file) -> None:
    ds = read_dataset(miniml_file)
    out, report = rebalance(ds, parse_ratio("1:1:1:1"))
    assert "criterion" in report["split"] and "computed" in report["split"]
    assert report["available"]["nice"] + report["available"]["less_nice"] == 86
    assert report["dropped_excluded"] == 358
    assert out.n == 4 * min(report["available"].values())


def test_cli_dataset_info_merge_rebalance(tmp_path, miniml_file) -> None:
    runner = CliRunner()
    info = runner.invoke(main, ["dataset", "info", str(miniml_file)])
    assert info.exit_code == 0, info.output
    assert "1 event 86, 0 no event 86, 2 exclude 358" in info.output
    assert "B_2020-06-09_002.h5" in info.output and "split by template-matching criterion" in info.output
    a, b = tmp_path / "a.h5", tmp_path / "b.h5"
    write_dataset(a, make_dataset(seed=1))
    write_dataset(b, make_dataset(seed=2))
    merged = runner.invoke(main, ["dataset", "merge", str(a), str(b), "--out", str(tmp_path / "m.h5")])
    assert merged.exit_code == 0, merged.output
    assert read_dataset(tmp_path / "m.h5").n == 280
    j = json.loads(runner.invoke(main, ["dataset", "info", str(tmp_path / "m.h5"), "--json"]).output)
    assert j["counts"]["total"] == 280 and len(j["sources"]) == 2
    reb = runner.invoke(main, ["dataset", "rebalance", str(tmp_path / "m.h5"), "--ratio", "300:300:50:550",
                               "--out", str(tmp_path / "r.h5"), "--json"])
    assert reb.exit_code == 0, reb.output
    assert json.loads(reb.output)["n"] == read_dataset(tmp_path / "r.h5").n
    bad = runner.invoke(main, ["dataset", "rebalance", str(a), "--ratio", "1:2", "--out", str(tmp_path / "x.h5")])
    assert bad.exit_code == 2 and "ratio must be" in bad.output
    exists = runner.invoke(main, ["dataset", "merge", str(a), "--out", str(b)])
    assert exists.exit_code == 2 and "exists" in exists.output
