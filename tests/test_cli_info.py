"""`minidet info` and the CLI's error contract: one line on stderr, exit code 2."""

import json
import subprocess
import sys

import pytest


def run(*args):
    return subprocess.run([sys.executable, "-m", "minidet.cli", *map(str, args)], capture_output=True, text=True)


def test_info_file_axon_1(abf_dir):
    out = run("info", abf_dir / "File_axon_1.abf")
    assert out.returncode == 0, out.stderr
    assert "[0] ImRK01G20 (pA)" in out.stdout
    assert "10000 Hz" in out.stdout
    assert "191.28" in out.stdout
    js = json.loads(run("info", abf_dir / "File_axon_1.abf", "--json").stdout)
    assert js["sampling_rate_hz"] == 10_000 and js["channels"][0]["unit"] == "pA"
    assert js["duration_s"] == pytest.approx(191.2832)


@pytest.mark.parametrize("case", ["truncated", "missing", "unknown", "channel", "sweep", "rate"])
def test_bad_input_one_line_exit_2(abf_dir, tmp_path, case):
    good = abf_dir / "File_axon_1.abf"
    if case == "truncated":
        bad = tmp_path / "cut.abf"
        bad.write_bytes(good.read_bytes()[:200_000])
        args = ["info", bad]
    elif case == "missing":
        args = ["info", tmp_path / "none.abf"]
    elif case == "unknown":
        (tmp_path / "a.xyz").write_text("x")
        args = ["info", tmp_path / "a.xyz"]
    elif case == "channel":
        args = ["info", good, "--channel", "9"]
    elif case == "sweep":
        args = ["info", good, "--sweeps", "x"]
    else:
        args = ["info", good, "--sampling-rate", "-1"]
    out = run(*args)
    assert out.returncode == 2, (out.stdout, out.stderr)
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("minidet: error:"), out.stderr
    assert "Traceback" not in out.stderr


def test_warnings_are_one_minidet_line(tmp_path):
    """A truncated file's warning: one `minidet: warning:` line, no Python source line."""
    import numpy as np

    path, cut = tmp_path / "x.npy", tmp_path / "cut.npy"
    np.save(path, np.arange(10_000, dtype=np.float64))
    cut.write_bytes(path.read_bytes()[: len(path.read_bytes()) - 8 * 2500])
    out = run("info", cut, "--sampling-rate", 10_000)
    assert out.returncode == 0, out.stderr
    lines = [ln for ln in out.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, out.stderr
    assert lines[0].startswith("minidet: warning: ") and "truncated" in lines[0]
    assert "Warning:" not in lines[0] and ".py:" not in lines[0]
