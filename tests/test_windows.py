"""One stride rule and one resampling rule for every model and every entry point (issue 21)."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

import minidet
from minidet.recording import Recording
from minidet.windows import default_stride, may_resample


def test_default_stride_is_minimls_rule():
    assert [default_stride(w) for w in (600, 900, 643, 3000, 300, 10)] == [20, 30, 21, 100, 10, 1]
    assert may_resample(600, False) and not may_resample(3000, False) and may_resample(3000, True)


def test_stride_is_the_same_in_the_cli_and_the_api(tmp_path):
    from minidet.examples import path as example_path

    proc = subprocess.run([sys.executable, "-m", "minidet.cli", "detect", str(example_path()), "--model", "gc",
                           "--window-size", "900", "--out", str(tmp_path / "r"), "--json"],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    cli = json.loads(proc.stdout)["settings"]
    api = minidet.detect(minidet.load(str(example_path())), "gc", window_size=900, progress=False).settings
    assert cli["stride"] == api.stride == 30 and cli["window_size"] == api.window_size == 900


@pytest.fixture(scope="module")
def public5(public30_reference, shared):
    rec, _ = public30_reference
    n = 250_000  # 5 s at 50 kHz
    onsets = np.load(shared / "reference" / "public30_truth.npz")["onsets"]
    return Recording(rec.samples[:n], rec.sampling_rate, unit="pA"), onsets[onsets < n - 3000]


# gc at 300 (half its window for these events) finds 13 of 20: not a sensible window for it
@pytest.mark.parametrize("model,window_size", [("gc", 643), ("gc", 900), ("gc-robust", 300),
                                               ("gc-robust", 643), ("gc-robust", 900)])
def test_every_600_input_model_takes_any_window_by_resampling(public5, model, window_size):
    """The window-size x model matrix on public30: each bundled 600-input model (the default
    included) runs at other windows by resampling, and still finds the events."""
    rec, onsets = public5
    res = minidet.detect(rec, model, window_size=window_size, progress=False)
    assert res.settings.window_size == window_size and res.settings.stride == default_stride(window_size)
    found = res.events["sample"].to_numpy()
    hit = sum(np.any((found >= o - 50) & (found <= o + 150)) for o in onsets)
    assert hit >= 0.8 * len(onsets), (hit, len(onsets))
    assert res.count <= 1.3 * len(onsets) + 2
