"""CSV, JSON and HDF5 outputs, the atomic write helper and the output-folder checks."""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from minidet import report
from minidet.errors import OutputError
from minidet.report import writers
from report_fakes import make_result


# ----------------------------------------------------------------------------- atomic writes
def test_atomic_write_replaces_only_when_complete(tmp_path: Path) -> None:
    target = tmp_path / "events.csv"
    target.write_text("old\n")
    with pytest.raises(RuntimeError):
        with report.atomic_write(target) as fh:
            fh.write("half a ")
            raise RuntimeError("simulated crash")
    assert target.read_text() == "old\n"  # untouched
    assert list(tmp_path.iterdir()) == [target]  # no temporary file left behind

    with report.atomic_write(target) as fh:
        fh.write("new\n")
    assert target.read_text() == "new\n"
    assert list(tmp_path.iterdir()) == [target]


def test_atomic_write_crash_leaves_no_new_file(tmp_path: Path) -> None:
    target = tmp_path / "summary.csv"
    with pytest.raises(KeyboardInterrupt):
        with report.atomic_write(target, "wb") as fh:
            fh.write(b"x" * 100)
            raise KeyboardInterrupt
    assert not target.exists()
    assert list(tmp_path.iterdir()) == []


def test_atomic_write_keeps_umask_permissions(tmp_path: Path) -> None:
    target = tmp_path / "a.txt"
    with report.atomic_write(target) as fh:
        fh.write("x")
    umask = os.umask(0)
    os.umask(umask)
    assert target.stat().st_mode & 0o777 == 0o666 & ~umask


def test_atomic_path_for_libraries(tmp_path: Path) -> None:
    target = tmp_path / "results.h5"
    with pytest.raises(ValueError):
        with report.atomic_path(target) as tmp:
            tmp.write_bytes(b"partial")
            raise ValueError("crash inside h5py")
    assert list(tmp_path.iterdir()) == []


def test_crash_while_writing_hdf5_keeps_old_result(tmp_path: Path, monkeypatch) -> None:
    result = make_result()
    path = report.write_hdf5(result, tmp_path / "results.h5")
    before = path.read_bytes()

    def boom(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(writers, "_set_attrs", boom)
    with pytest.raises(RuntimeError):
        report.write_hdf5(result, path)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["results.h5"]


# ----------------------------------------------------------------------------- output folder
def test_prepare_output_dir_refuses_to_overwrite(tmp_path: Path) -> None:
    (tmp_path / "events.csv").write_text("keep me")
    with pytest.raises(OutputError, match="--force"):
        report.prepare_output_dir(tmp_path, report.output_files())
    assert report.prepare_output_dir(tmp_path, report.output_files(), force=True) is False
    assert (tmp_path / "events.csv").read_text() == "keep me"  # checking writes nothing
    assert sorted(p.name for p in tmp_path.iterdir()) == ["events.csv"]


def test_prepare_output_dir_creates_and_reports_unwritable(tmp_path: Path) -> None:
    assert report.prepare_output_dir(tmp_path / "a" / "b", ["events.csv"]) is True
    assert (tmp_path / "a" / "b").is_dir()
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(OutputError, match="cannot create output folder"):
        report.prepare_output_dir(blocker / "sub", ["events.csv"])
    with pytest.raises(OutputError, match="not a folder"):
        report.prepare_output_dir(blocker, ["events.csv"])


# ----------------------------------------------------------------------------- CSV
def test_events_csv_has_units_in_headers_and_keeps_exclusions(tmp_path: Path) -> None:
    result = make_result().exclude([1, 3])
    path = report.write_events_csv(result, tmp_path / "events.csv")
    with open(path, newline="") as fh:
        header = next(csv.reader(fh))
    assert header[0] == "event"
    for col in ("amplitude_pA", "baseline_pA", "charge_pC", "rise_time_s", "half_decay_s", "time_s",
                "sample", "score", "excluded"):
        assert col in header
    table = pd.read_csv(path)
    assert len(table) == 5
    assert table["excluded"].tolist() == [False, True, False, True, False]
    assert table["amplitude_pA"].tolist() == [-20.0] * 5
    assert np.isnan(table["half_decay_s"].iloc[-1])  # a measure that could not be made stays empty
    assert table["sample"].dtype.kind == "i"


def test_charge_units_follow_the_recording_unit(tmp_path: Path) -> None:
    assert report.charge_unit("pA") == "pC"
    assert report.charge_unit("nA") == "nC"
    assert report.charge_unit("mV") == "mV*s"
    assert report.charge_unit("amperes") == "coulombs"
    result = make_result(unit="mV")
    header = report.events_table(result).columns.tolist()
    assert "charge_mV_s" in header and "amplitude_mV" in header
    row = report.summary_row(result)
    assert "amplitude_mean_mV" in row and "charge_mean_mV_s" in row


def test_summary_csv_is_one_row_with_counts(tmp_path: Path) -> None:
    result = make_result().exclude([0])
    path = report.write_summary_csv(result, tmp_path / "summary.csv")
    table = pd.read_csv(path)
    assert len(table) == 1
    row = table.iloc[0]
    assert row["recording"] == "cell1"
    assert row["count"] == 4 and row["n_detected"] == 5 and row["n_excluded"] == 1
    assert row["frequency_hz"] == pytest.approx(2.0)
    assert row["amplitude_mean_pA"] == pytest.approx(-20.0)
    assert "tau_decay_s" in table.columns and "amplitude_cv" in table.columns


# ----------------------------------------------------------------------------- JSON
def test_json_shape_and_nan_as_null() -> None:
    result = make_result().exclude([2])
    text = report.to_json(report.result_to_dict(result))
    data = json.loads(text)  # strict JSON: no NaN tokens
    assert "NaN" not in text
    assert set(data) >= {"recording", "settings", "summary", "events", "excluded_events", "model"}
    assert data["recording"]["name"] == "cell1" and data["recording"]["unit"] == "pA"
    assert data["recording"]["sampling_rate_hz"] == 10000.0
    assert data["summary"]["count"] == 4 == len(data["events"])
    assert [e["event"] for e in data["excluded_events"]] == [2]
    first = data["events"][0]
    assert isinstance(first["sample"], int) and first["sample"] == 2000
    for key in ("time_s", "score", "amplitude", "rise_time_s", "half_decay_s", "charge"):
        assert isinstance(first[key], float)
    assert data["events"][-1]["half_decay_s"] is None
    assert data["settings"]["stride"] is None and data["settings"]["window_size"] == 600
    assert data["units"]["charge"] == "pC"


def test_json_of_empty_result(empty_result) -> None:
    data = json.loads(report.to_json(report.result_to_dict(empty_result)))
    assert data["events"] == [] and data["summary"]["count"] == 0
    assert data["summary"]["amplitude_mean"] is None


# ----------------------------------------------------------------------------- HDF5
def test_hdf5_round_trip(tmp_path: Path) -> None:
    import dataclasses

    auto = {"threshold": 0.98, "grid": [0.9, 0.98], "f1_estimate": [0.8, 0.9], "reference": 0.98}
    result = make_result().exclude([1])
    result = dataclasses.replace(result, info={**result.info, "threshold_source": "model", "auto_threshold": auto})
    report.write_hdf5(result, tmp_path / "results.h5", save_prediction=True)
    stored = report.read_results(tmp_path)  # a folder works as well as the file
    pd.testing.assert_frame_equal(stored.events, writers._typed_events(result.events_all))
    assert stored.kept_events.index.tolist() == [0, 2, 3, 4]
    assert stored.settings == result.settings.to_dict()
    assert stored.model == result.model_metadata
    assert stored.summary["count"] == 4
    assert stored.summary["amplitude_cv"] == 0.0
    assert stored.recording["name"] == "cell1" and stored.recording["sampling_rate_hz"] == 10000.0
    assert stored.recording["metadata"]["format"] == "hdf5"
    t, w = result.restore([1]).waveforms()  # the file keeps the excluded event's waveform too
    assert stored.waveforms.shape == (5, t.size)
    np.testing.assert_allclose(stored.waveform_time_s, t)
    np.testing.assert_allclose(stored.waveforms, w, rtol=1e-6, atol=1e-5)  # stored as float32
    np.testing.assert_allclose(stored.kept_waveforms, result.waveforms()[1], rtol=1e-6, atol=1e-5)
    at, aw = result.average_event()
    np.testing.assert_allclose(stored.average_event, aw)
    np.testing.assert_allclose(stored.average_time_s, at)
    np.testing.assert_allclose(stored.prediction, result.prediction)
    assert stored.unit == "pA"
    assert stored.attrs["format"] == "minidet-results"
    assert stored.info["auto_threshold"] == auto and stored.info["threshold_source"] == "model"


def test_hdf5_attributes_are_browsable(tmp_path: Path) -> None:
    import h5py

    report.write_hdf5(make_result(), tmp_path / "results.h5")
    with h5py.File(tmp_path / "results.h5") as h5:
        assert h5["settings"].attrs["window_size"] == 600
        assert json.loads(h5["settings"].attrs["stride"]) is None
        assert json.loads(h5["model"].attrs["defaults"]) == {"threshold": 0.5}
        assert h5["events/amplitude"].attrs["unit"] == "pA"
        assert h5["events/charge"].attrs["unit"] == "pC"
        assert "prediction" not in h5  # only with save_prediction


def test_hdf5_round_trip_without_events(tmp_path: Path, empty_result) -> None:
    report.write_hdf5(empty_result, tmp_path / "results.h5")
    stored = report.read_results(tmp_path / "results.h5")
    assert len(stored.events) == 0
    assert stored.events["sample"].dtype == np.int64 and stored.events["excluded"].dtype == bool
    assert stored.waveforms.shape[0] == 0
    assert stored.summary["count"] == 0


def test_read_results_rejects_other_files(tmp_path: Path) -> None:
    import h5py

    with pytest.raises(OutputError, match="no minidet result"):
        report.read_results(tmp_path)
    with h5py.File(tmp_path / "other.h5", "w") as h5:
        h5["x"] = 1
    with pytest.raises(OutputError, match="not a minidet result"):
        report.read_results(tmp_path / "other.h5")


def test_write_results_writes_the_listed_files(tmp_path: Path) -> None:
    written = report.write_results(make_result(), tmp_path / "out")
    assert sorted(written) == sorted(report.output_files())
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == sorted(report.output_files())
