"""HEKA PatchMaster bundles through myokit, on bundles written by ``heka_bundle.py``."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

import minidet
from minidet.cli import main
from minidet.errors import ChannelError, CorruptFileError, MissingDependencyError, SweepError, UnknownFormatError

import heka_bundle as hb  # tests/io is on sys.path (pytest's rootdir insertion)

# every test but the missing-myokit one needs myokit (the `test` extra installs it)
needs_myokit = pytest.mark.skipif(importlib.util.find_spec("myokit") is None, reason="myokit is not installed")


@pytest.fixture
def bundle(tmp_path: Path) -> Path:
    return hb.write_bundle(tmp_path / "cell.dat", hb.standard_groups())


def run(*args):
    return subprocess.run([sys.executable, "-m", "minidet.cli", *map(str, args)], capture_output=True, text=True)


def expected(series: int, trace: int, sweeps) -> np.ndarray:
    """What the bundle holds for series 0 (Minis) / 1 (Ramp), in pA / mV."""
    raw, scale, factor = (hb.sine_raw, hb.I_SCALE, 1e12) if trace == 0 else (hb.ramp_raw, hb.V_SCALE, 1e3)
    return np.concatenate([raw(3 * series + k).astype(np.float64) * scale * factor for k in sweeps])


@needs_myokit
@pytest.mark.parametrize("dataset, series", [(None, 0), ("0/0", 0), ("0/1", 1), ("Cell 1/Ramp", 1), ("Ramp", 1),
                                             ("1", 1), ("0/Minis", 0)])
@pytest.mark.parametrize("channel, trace", [(None, 0), ("Imon", 0), ("Vmon", 1), (1, 1), ("0", 0)])
def test_round_trip(bundle, dataset, series, channel, trace):
    rec = minidet.load(bundle, dataset=dataset, channel=channel)
    assert rec.sampling_rate == hb.RATE
    assert rec.unit == ("pA", "mV")[trace]
    assert rec.channel == ("Imon", "Vmon")[trace]
    assert rec.metadata["format"] == "heka" and rec.metadata["series"] == ("Minis", "Ramp")[series]
    assert rec.metadata["stored_unit"] == ("A", "V")[trace]
    np.testing.assert_allclose(rec.samples, expected(series, trace, range(3)), rtol=1e-12, atol=0)
    assert rec.sweep_starts.tolist() == [0, hb.N, 2 * hb.N]


@needs_myokit
def test_sweeps_skip_and_scale(bundle):
    rec = minidet.load(bundle, dataset="0/1", channel="Imon", sweeps="2,0")
    np.testing.assert_allclose(rec.samples, expected(1, 0, [2, 0]), rtol=1e-12)
    assert rec.sweep_starts.tolist() == [0, hb.N]
    cut = minidet.load(bundle, sweeps="1", skip_start_s=0.01)
    np.testing.assert_allclose(cut.samples, expected(0, 0, [1])[200:], rtol=1e-12)
    # an explicit --scale/--unit applies to the stored SI values (as for NWB)
    nano = minidet.load(bundle, channel="Imon", scale=1e9, unit="nA")
    np.testing.assert_allclose(nano.samples, expected(0, 0, range(3)) * 1e-3, rtol=1e-12)
    assert nano.unit == "nA"
    # the first sine sample of sweep 0 is 0, its peak 1000 counts of 0.1 pA
    assert minidet.load(bundle, sweeps="0").samples.max() == pytest.approx(100.0)


@needs_myokit
def test_bad_selections(bundle):
    with pytest.raises(ChannelError, match=r"series of group 0 'Nope'.*\[0\] Minis, \[1\] Ramp"):
        minidet.load(bundle, dataset="0/Nope")
    with pytest.raises(ChannelError, match="group '3'"):
        minidet.load(bundle, dataset="3/0")
    with pytest.raises(ChannelError, match=r"trace 'Iout' does not exist.*\[0\] Imon, \[1\] Vmon"):
        minidet.load(bundle, channel="Iout")
    with pytest.raises(SweepError, match="3 sweep"):
        minidet.load(bundle, sweeps="3")


@needs_myokit
def test_default_series_is_the_first_current_or_voltage(tmp_path):
    groups = hb.standard_groups()
    other = hb.SeriesSpec("Leak", [[hb.TraceSpec("Gleak", "S", hb.ramp_raw(0), 1e-9)]], 1 / hb.RATE)
    groups.insert(0, hb.GroupSpec("Setup", [other]))
    path = hb.write_bundle(tmp_path / "two_groups.dat", groups)
    rec = minidet.load(path)
    assert rec.metadata["dataset"] == "1/0" and rec.unit == "pA"
    np.testing.assert_allclose(rec.samples, expected(0, 0, range(3)), rtol=1e-12)
    assert minidet.load(path, dataset="0/0").unit == "S"
    with pytest.raises(ChannelError, match="2 groups"):
        minidet.load(path, dataset="Ramp")
    info = minidet.describe(path)
    assert "reading series 1/0 'Minis'" in info.to_text()


@needs_myokit
def test_info_text_and_json(bundle):
    out = run("info", bundle)
    assert out.returncode == 0, out.stderr
    text = out.stdout
    assert "HEKA PatchMaster v2x90.2" in text
    assert "[0] Imon (pA)" in text and "[1] Vmon (mV)" in text
    assert "20000 Hz" in text and "3 x 2000 samples" in text and "0.3000 s" in text
    assert "series 0/0 'Minis': 3 sweep(s)" in text and "series 0/1 'Ramp': 3 sweep(s)" in text
    assert "--dataset GROUP/SERIES" in text  # several series, none chosen: says which is read
    js = json.loads(run("info", bundle, "--json", "--dataset", "0/Ramp").stdout)
    assert js["n_sweeps"] == 3 and js["sampling_rate_hz"] == hb.RATE and js["duration_s"] == pytest.approx(0.3)
    assert [c["unit"] for c in js["channels"]] == ["pA", "mV"]
    assert js["contents"]["series_read"] == "0/1"
    group = js["contents"]["groups"][0]
    assert group["label"] == "Cell 1" and [s["label"] for s in group["series"]] == ["Minis", "Ramp"]
    assert [t["name"] for t in group["series"][1]["traces"]] == ["Imon", "Vmon"]
    bad = run("info", bundle, "--channel", "7")
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "[0] Imon, [1] Vmon" in bad.stderr


def test_missing_myokit(bundle, monkeypatch):
    for name in ("myokit", "myokit.formats", "myokit.formats.heka"):
        monkeypatch.setitem(sys.modules, name, None)
    with pytest.raises(MissingDependencyError, match=r"pip install minidet\[heka\]"):
        minidet.load(bundle)
    result = CliRunner().invoke(main, ["info", str(bundle)])
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("minidet: error:") and "pip install minidet[heka]" in lines[0]


@needs_myokit
@pytest.mark.parametrize("case", ["zeros", "tree", "cut", "old"])
def test_corrupt_or_old_bundle_one_line_exit_2(bundle, tmp_path, case):
    data = bytearray(bundle.read_bytes())
    bad = tmp_path / "bad.dat"
    if case == "zeros":
        data = bytearray(b"DAT2" + bytes(200))
    elif case == "tree":
        pul_start = int.from_bytes(data[64 + 16:64 + 20], "little")
        data[pul_start:pul_start + 4] = b"XXXX"
    elif case == "cut":
        data = data[: len(data) - 300]
    else:
        data[:4] = b"DAT1"
    bad.write_bytes(bytes(data))
    with pytest.raises(UnknownFormatError if case == "old" else CorruptFileError, match="HEKA PatchMaster"):
        minidet.load(bad)
    out = run("info", bad)
    assert out.returncode == 2, (out.stdout, out.stderr)
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("minidet: error:"), out.stderr
    assert "Traceback" not in out.stderr


@needs_myokit
def test_detect_runs_on_a_bundle(tmp_path):
    """`minidet detect` end to end on a 1 s current trace with 4 simulated events."""
    pytest.importorskip("minidet.detection.predict")
    rate, n = 50_000.0, 50_000
    rng = np.random.default_rng(3)
    t = np.arange(n) / rate
    x = rng.normal(0.0, 1.0, n)  # pA
    for s in (10_000, 22_000, 31_000, 40_000):
        dt = np.clip(t - s / rate, 0, None)
        shape = (np.exp(-dt / 0.003) - np.exp(-dt / 0.0003)) * (dt > 0)
        x -= 25.0 * shape / shape.max()
    raw = np.round(x / 0.1).astype(np.int16)  # 0.1 pA per count
    series = hb.SeriesSpec("Minis", [[hb.TraceSpec("Imon", "A", raw, 1e-13)]], 1 / rate)
    path = hb.write_bundle(tmp_path / "minis.dat", [hb.GroupSpec("Cell", [series])])
    out = tmp_path / "out"
    result = CliRunner().invoke(main, ["detect", str(path), "--out", str(out), "--json"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["recording"]["unit"] == "pA" and data["recording"]["duration_s"] == pytest.approx(1.0)
    assert (out / "events.csv").is_file() and (out / "summary.csv").is_file()
