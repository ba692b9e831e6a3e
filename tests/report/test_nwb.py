"""NWB output: a new file for non-NWB inputs, a copy for NWB inputs; read back with pynwb."""

from __future__ import annotations

import dataclasses
import hashlib
import warnings
from pathlib import Path

import numpy as np
import pytest

pynwb = pytest.importorskip("pynwb")

from minidet.report.nwb import read_nwb_events, si_conversion, write_nwb  # noqa: E402
from report_fakes import make_result  # noqa: E402


def _read(path: Path):
    warnings.simplefilter("ignore")
    io = pynwb.NWBHDF5IO(str(path), "r")
    return io, io.read()


def test_si_conversion() -> None:
    assert si_conversion("pA") == ("A", 1e-12)
    assert si_conversion("mV") == ("V", 1e-3)
    assert si_conversion("A") == ("A", 1.0)
    assert si_conversion("amperes") == ("A", 1.0) and si_conversion("volts") == ("V", 1.0)
    assert si_conversion("a.u.") == (None, 1.0)


def test_new_nwb_from_hdf5_input(tmp_path: Path) -> None:
    result = make_result().exclude([1])
    path = write_nwb(result, tmp_path / "results.nwb", save_prediction=True)
    io, nwbfile = _read(path)
    with io:
        series = nwbfile.acquisition["mini_data"]
        assert type(series).__name__ == "VoltageClampSeries"
        assert series.conversion == pytest.approx(1e-12) and series.unit == "amperes"
        assert series.rate == 10000.0
        np.testing.assert_allclose(series.data[:], result.recording.samples, rtol=1e-6, atol=1e-5)
        table = nwbfile.processing["synaptic_events"]["events"]
        assert len(table) == 5
        ref = table["timeseries"][0][0]
        assert ref.timeseries.name == "mini_data" and ref.idx_start == 1998
        assert "event_probability" in nwbfile.processing["synaptic_events"].data_interfaces
    frame = read_nwb_events(path)
    assert frame.index.tolist() == [0, 1, 2, 3, 4]
    assert frame["excluded"].tolist() == [False, True, False, False, False]
    np.testing.assert_allclose(frame["amplitude"], -20.0)
    np.testing.assert_allclose(frame["start_time"], result.events_all["onset_time_s"])
    assert (frame["stop_time"] >= frame["start_time"]).all()
    assert frame["series"].tolist() == ["mini_data"] * 5
    # the analysed trace can be read back by minidet itself
    import minidet

    again = minidet.load(path)
    assert again.unit == "pA"  # the reader converts SI amperes back to pA
    np.testing.assert_allclose(again.samples, result.recording.samples, rtol=1e-6, atol=1e-5)


def test_voltage_and_unknown_units(tmp_path: Path) -> None:
    io, nwbfile = _read(write_nwb(make_result(unit="mV"), tmp_path / "v.nwb"))
    with io:
        series = nwbfile.acquisition["mini_data"]
        assert type(series).__name__ == "CurrentClampSeries" and series.conversion == pytest.approx(1e-3)
    io, nwbfile = _read(write_nwb(make_result(unit="a.u."), tmp_path / "u.nwb"))
    with io:
        series = nwbfile.acquisition["mini_data"]
        assert type(series).__name__ == "TimeSeries" and series.unit == "a.u."


def _nwb_input(tmp_path: Path, starting_time: float = 5.0) -> Path:
    """An NWB file as an acquisition system would write it: one VoltageClampSeries in A."""
    from datetime import datetime, timezone

    from pynwb.icephys import VoltageClampSeries

    f = pynwb.NWBFile(session_description="patch", identifier="abc",
                      session_start_time=datetime(2024, 1, 2, tzinfo=timezone.utc))
    dev = f.create_device(name="amp")
    el = f.create_icephys_electrode(name="e0", device=dev, description="pipette")
    trace = make_result().recording.samples
    f.add_acquisition(VoltageClampSeries(name="vc", data=trace, conversion=1e-12, rate=10000.0,
                                         starting_time=starting_time, electrode=el, gain=1.0))
    path = tmp_path / "input.nwb"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pynwb.NWBHDF5IO(str(path), "w") as io:
            io.write(f)
    return path


def test_copy_of_nwb_input_links_the_source_series(tmp_path: Path) -> None:
    import minidet

    src = _nwb_input(tmp_path)
    digest = hashlib.sha256(src.read_bytes()).hexdigest()
    rec = minidet.load(src, skip_start_s=0.1)  # events then sit 1000 samples later in the series
    result = dataclasses.replace(make_result(), recording=rec)
    out = write_nwb(result, tmp_path / "results.nwb")
    assert hashlib.sha256(src.read_bytes()).hexdigest() == digest  # the input is untouched
    io, nwbfile = _read(out)
    with io:
        assert nwbfile.session_description == "patch" and nwbfile.identifier == "abc"
        table = nwbfile.processing["synaptic_events"]["events"]
        ref = table["timeseries"][0][0]
        assert ref.timeseries.name == "vc"
        assert ref.timeseries is nwbfile.acquisition["vc"]
        assert ref.idx_start == 1998 + 1000
    frame = read_nwb_events(out)
    # times on the file's clock: series start 5 s + skipped 0.1 s + onset in the analysed trace
    np.testing.assert_allclose(frame["start_time"], 5.1 + result.events_all["onset_time_s"])
    # analysing the copy again adds a second table next to the first
    result2 = dataclasses.replace(result, recording=dataclasses.replace(rec, source=str(out)))
    out2 = write_nwb(result2, tmp_path / "again.nwb")
    io, nwbfile = _read(out2)
    with io:
        assert set(nwbfile.processing["synaptic_events"].data_interfaces) == {"events", "events_1"}


def test_nwb_without_events(tmp_path: Path) -> None:
    path = write_nwb(make_result(events=[]), tmp_path / "results.nwb")
    frame = read_nwb_events(path)
    assert len(frame) == 0 and "amplitude" in frame.columns


def test_nwb_output_must_not_replace_input(tmp_path: Path) -> None:
    import minidet
    from minidet.errors import OutputError

    src = _nwb_input(tmp_path)
    result = dataclasses.replace(make_result(), recording=minidet.load(src))
    with pytest.raises(OutputError, match="replace the input"):
        write_nwb(result, src)
