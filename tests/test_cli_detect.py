"""``minidet detect``: outputs, refusals before computation, JSON on stdout, exclusions.

Most tests replace only the network with an oracle (``oracle``: probability 0.95 in the
windows before each simulated event, found from the trace itself), so the real pipeline
locates and measures events in a few seconds. ``test_end_to_end_on_bundled_example`` runs
the real model on the bundled example recording.
"""

from __future__ import annotations

import json
import subprocess
import sys
import types
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from minidet.cli import main, parse_event_list

RATE = 50_000.0
N_SAMPLES = 100_000  # 2 s
EVENTS = [12_000, 22_000, 33_000, 45_000, 56_000, 66_000, 77_000, 88_000]
AMPLITUDE = 25.0  # pA


def simulated_trace(events=EVENTS, seed: int = 1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = rng.normal(0.0, 1.0, N_SAMPLES)
    t = np.arange(N_SAMPLES) / RATE
    for s in events:
        dt = np.clip(t - s / RATE, 0, None)
        shape = (np.exp(-dt / 0.003) - np.exp(-dt / 0.0003)) * (dt > 0)
        x -= AMPLITUDE * shape / shape.max()
    return x


def write_h5(path: Path, samples: np.ndarray) -> Path:
    with h5py.File(path, "w") as h5:
        ds = h5.create_dataset("trace", data=samples)
        ds.attrs["sampling_rate"] = RATE
        ds.attrs["unit"] = "pA"
    return path


@pytest.fixture
def cell(tmp_path: Path) -> Path:
    return write_h5(tmp_path / "cell1.h5", simulated_trace())


@pytest.fixture
def quiet_cell(tmp_path: Path) -> Path:
    return write_h5(tmp_path / "quiet.h5", np.random.default_rng(2).normal(0.0, 1.0, N_SAMPLES))


@pytest.fixture
def oracle(monkeypatch) -> dict:
    """Replace the network's prediction with an oracle; counts how often it was asked."""
    calls = {"n": 0}

    def predict(recording, model, *, window_size=600, **kwargs):
        calls["n"] += 1
        x = recording.samples
        sign = -1 if kwargs.get("event_direction", "negative") == "negative" else 1
        crossings = np.flatnonzero((sign * x[1:] > 12) & (sign * x[:-1] <= 12))
        starts = [c for i, c in enumerate(crossings) if i == 0 or c - crossings[i - 1] > window_size]
        pred = np.zeros(recording.n_samples - window_size)
        for c in starts:
            pred[max(0, c - int(0.6 * window_size)): max(0, c - int(0.2 * window_size))] = 0.95
        return pred

    try:
        import minidet.detection.predict as module
    except ImportError:  # the network wrapper is not in this checkout yet
        module = types.ModuleType("minidet.detection.predict")
        monkeypatch.setitem(sys.modules, "minidet.detection.predict", module)
    monkeypatch.setattr(module, "predict", predict, raising=False)
    return calls


def run(*args: str, model: str | None = "gc"):
    """``minidet detect ARGS``; with ``--model gc`` unless ARGS name a model or ``model=None``
    (the oracle stands in for a miniML model, whose settings the expectations assume)."""
    extra = [] if model is None or "--model" in args else ["--model", model]
    return CliRunner().invoke(main, ["detect", *args, *extra], catch_exceptions=False)


def one_line_error(result) -> str:
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("minidet: error: ")
    return lines[0]


# ----------------------------------------------------------------------------- outputs
def test_detect_writes_tables_with_units(cell: Path, tmp_path: Path, oracle) -> None:
    out = tmp_path / "res"
    result = run(str(cell), "--out", str(out))
    assert result.exit_code == 0, result.output
    assert "cell1: 8 events" in result.stdout and str(out) in result.stdout
    assert "; threshold 0.5 (model gc's default)" in result.stdout
    assert sorted(p.name for p in out.iterdir()) == ["events.csv", "results.h5", "summary.csv"]
    events = pd.read_csv(out / "events.csv")
    assert len(events) == len(EVENTS)
    for col in ("event", "sample", "time_s", "score", "amplitude_pA", "baseline_pA", "charge_pC",
                "rise_time_s", "half_decay_s", "excluded"):
        assert col in events.columns
    np.testing.assert_allclose(events["amplitude_pA"], -AMPLITUDE, atol=3.0)
    assert np.all(np.abs(events["onset_sample"].to_numpy() - np.array(EVENTS)) < 30)
    summary = pd.read_csv(out / "summary.csv")
    assert summary.loc[0, "recording"] == "cell1" and summary.loc[0, "count"] == 8
    assert summary.loc[0, "frequency_hz"] == pytest.approx(4.0)
    assert "amplitude_mean_pA" in summary.columns and "tau_decay_s" in summary.columns


def test_model_defaults_fill_unset_options(cell: Path, tmp_path: Path, oracle) -> None:
    from minidet.report import read_results

    assert run(str(cell), "--out", str(tmp_path / "a")).exit_code == 0
    stored = read_results(tmp_path / "a")
    assert stored.settings["window_size"] == 600 and stored.settings["threshold"] == 0.5
    assert stored.model["name"] == "gc"
    result_b = run(str(cell), "--out", str(tmp_path / "b"), "--threshold", "0.7", "--no-resample")
    assert result_b.exit_code == 0
    stored = read_results(tmp_path / "b")
    assert stored.settings["threshold"] == 0.7 and stored.settings["resample"] is False
    assert "cell1: 8 events, 4 Hz over 2 s; threshold 0.7 (given)" in result_b.stdout
    assert stored.recording["source"] == str(cell) and stored.recording["unit"] == "pA"
    # without --model: the default model, gc-robust, with its threshold chosen for the recording
    from minidet.detection.autothreshold import AUTO_GRID

    result_c = run(str(cell), "--out", str(tmp_path / "c"), model=None)
    assert result_c.exit_code == 0
    stored = read_results(tmp_path / "c")
    assert stored.model["name"] == "gc-robust" and stored.settings["threshold"] in AUTO_GRID
    assert f"; threshold {stored.settings['threshold']:g} (auto: chosen for this recording" in result_c.stdout


def test_json_is_the_only_thing_on_stdout(cell: Path, tmp_path: Path, oracle) -> None:
    result = run(str(cell), "--out", str(tmp_path / "res"), "--json", "--exclude", "0")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["recording"]["name"] == "cell1" and data["recording"]["sampling_rate_hz"] == RATE
    assert data["settings"]["model"] == "gc"
    assert data["summary"]["count"] == 7 == len(data["events"])
    assert [e["event"] for e in data["excluded_events"]] == [0]
    event = data["events"][0]
    assert isinstance(event["sample"], int)
    for key in ("time_s", "score", "amplitude", "rise_time_s", "half_decay_s", "charge"):
        assert key in event
    assert "cell1: 7 events" in result.stderr  # the human messages go to stderr


def test_no_events_gives_empty_tables(quiet_cell: Path, tmp_path: Path, oracle) -> None:
    out = tmp_path / "res"
    result = run(str(quiet_cell), "--out", str(out), "--plots", "--json")
    assert result.exit_code == 0, result.output
    assert "no events found" in result.stderr
    data = json.loads(result.stdout)
    assert data["summary"]["count"] == 0 and data["events"] == []
    events = pd.read_csv(out / "events.csv")
    assert len(events) == 0 and "amplitude_pA" in events.columns
    assert pd.read_csv(out / "summary.csv").loc[0, "count"] == 0
    assert (out / "trace.png").is_file() and (out / "report.html").is_file()


def test_exclude_marks_rows_and_recounts(cell: Path, tmp_path: Path, oracle) -> None:
    out = tmp_path / "res"
    assert run(str(cell), "--out", str(out), "--exclude", "1,3-4").exit_code == 0
    events = pd.read_csv(out / "events.csv")
    assert events.loc[events["excluded"], "event"].tolist() == [1, 3, 4]
    assert pd.read_csv(out / "summary.csv").loc[0, "count"] == 5
    line = one_line_error(run(str(cell), "--out", str(tmp_path / "x"), "--exclude", "8"))
    assert "numbered 0-7" in line
    assert not (tmp_path / "x").exists()  # a folder made for a failed run is removed again


def test_plots_nwb_and_prediction(cell: Path, tmp_path: Path, oracle) -> None:
    from minidet.report import read_results
    from minidet.report.nwb import read_nwb_events

    out = tmp_path / "res"
    result = run(str(cell), "--out", str(out), "--plots", "--nwb", "--save-prediction")
    assert result.exit_code == 0, result.output
    for name in ("trace.png", "events.png", "histograms.png", "report.html", "results.nwb"):
        assert (out / name).stat().st_size > 1000, name
    assert "report.html" in result.stdout
    frame = read_nwb_events(out / "results.nwb")
    assert len(frame) == 8 and set(frame["series"]) == {"trace"}
    stored = read_results(out)
    assert stored.prediction is not None and stored.prediction.size == N_SAMPLES - 600
    assert stored.waveforms.shape[0] == 8


def test_default_output_folder(cell: Path, tmp_path: Path, oracle, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    result = run(str(cell))
    assert result.exit_code == 0, result.output
    assert (tmp_path / "minidet-results" / "cell1" / "events.csv").is_file()


# ----------------------------------------------------------------------------- refusals
def test_refuses_to_overwrite_before_computing(cell: Path, tmp_path: Path, oracle) -> None:
    out = tmp_path / "res"
    assert run(str(cell), "--out", str(out)).exit_code == 0
    before = (out / "events.csv").read_bytes()
    assert oracle["n"] == 1
    line = one_line_error(run(str(cell), "--out", str(out), "--threshold", "0.9"))
    assert "--force" in line and "events.csv" in line
    assert oracle["n"] == 1  # nothing was computed
    assert (out / "events.csv").read_bytes() == before
    result = run(str(cell), "--out", str(out), "--force", "--exclude", "0")
    assert result.exit_code == 0 and oracle["n"] == 2
    assert pd.read_csv(out / "events.csv")["excluded"].sum() == 1


def test_unwritable_output_folder_fails_before_computing(cell: Path, tmp_path: Path, oracle) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    line = one_line_error(run(str(cell), "--out", str(blocker / "res")))
    assert "cannot create output folder" in line
    line = one_line_error(run(str(cell), "--out", str(blocker)))
    assert "not a folder" in line
    assert oracle["n"] == 0


def test_user_errors_are_one_line(cell: Path, tmp_path: Path, oracle) -> None:
    assert "event numbers" in one_line_error(run(str(cell), "--out", str(tmp_path / "a"), "--exclude", "x"))
    assert "threshold" in one_line_error(run(str(cell), "--out", str(tmp_path / "b"), "--threshold", "2"))
    assert "no such file" in one_line_error(run(str(tmp_path / "missing.h5"), "--out", str(tmp_path / "c")))
    assert oracle["n"] == 0
    assert not any((tmp_path / n).exists() for n in "abc")


def test_parse_event_list() -> None:
    assert parse_event_list("3,7,12") == [3, 7, 12]
    assert parse_event_list(" 5-7, 1 ,5") == [1, 5, 6, 7]
    assert parse_event_list(None) == [] and parse_event_list("") == []


def test_example_path_command() -> None:
    result = CliRunner().invoke(main, ["example-path"])
    assert result.exit_code == 0
    path = Path(result.stdout.strip())
    assert path.is_file() and path.name == "public10.h5" and path.stat().st_size < 1_000_000
    assert CliRunner().invoke(main, ["example-path", "nope"]).exit_code == 2


# ----------------------------------------------------------------------------- end to end
def test_end_to_end_on_bundled_example(tmp_path: Path) -> None:
    """The README's main job with the real model, on the last 3 s of the bundled example.

    (The whole 10 s run is what .ci/run does; 3 s keep this test to a few seconds of CPU.)
    The simulation put 13 events there; 12 are found on the full trace.
    """
    pytest.importorskip("minidet.detection.predict")
    from minidet import examples

    out = tmp_path / "public10"
    result = run(str(examples.path()), "--skip-start", "7", "--out", str(out), "--plots", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert 9 <= data["summary"]["count"] <= 14, data["summary"]["count"]
    assert data["recording"]["duration_s"] == pytest.approx(3.0)
    assert data["recording"]["unit"] == "pA" and data["settings"]["window_size"] == 600
    assert np.median([e["amplitude"] for e in data["events"]]) < -5  # inward currents, in pA
    for name in ("events.csv", "summary.csv", "results.h5", "trace.png", "report.html"):
        assert (out / name).is_file()


@pytest.mark.parametrize("method", ["template", "deconvolution", "threshold"])
def test_classic_methods_from_the_cli(tmp_path, method):
    """`--method` runs a classic detector and writes the same tables (no model involved)."""
    import csv as _csv

    from minidet.examples import path as example_path

    out = tmp_path / method
    proc = subprocess.run(
        [sys.executable, "-m", "minidet.cli", "detect", str(example_path()), "--method", method,
         "--skip-start", "7", "--out", str(out)],
        capture_output=True, text=True,
    )
    assert proc.returncode == 0, proc.stderr
    with open(out / "events.csv") as fh:
        rows = list(_csv.DictReader(fh))
    # the last 3 s of the example hold 13 simulated events
    assert 9 <= len(rows) <= 17
    assert "amplitude_pA" in rows[0] and "rise_time_s" in rows[0]


# ----------------------------------------------------------------------------- failures half-way
def test_recording_that_ends_early_leaves_no_results(cell: Path, tmp_path: Path, oracle, monkeypatch) -> None:
    """A lazily read file that turns out shorter than announced: one line, exit 2, no folder."""
    import minidet.io
    from minidet.errors import EmptyTraceError
    from minidet.recording import LazyTrace, Recording

    x = simulated_trace()

    def read(a: int, b: int) -> np.ndarray:
        if b > 70_000:
            raise EmptyTraceError(f"{cell} ends at sample 70000 of {N_SAMPLES}")
        return x[a:b]

    monkeypatch.setattr(minidet.io, "load", lambda path, **kw: Recording(LazyTrace(N_SAMPLES, read), RATE))
    out = tmp_path / "res"
    line = one_line_error(run(str(cell), "--out", str(out), "--plots"))
    assert "ends at sample 70000" in line
    assert not out.exists()


def test_failure_while_writing_keeps_the_old_results(cell: Path, tmp_path: Path, oracle, monkeypatch) -> None:
    import minidet.report.plots as plots

    out = tmp_path / "res"
    assert run(str(cell), "--out", str(out), "--plots").exit_code == 0
    before = {p.name: p.read_bytes() for p in out.iterdir()}

    def full_disk(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(plots, "plot_histograms", full_disk)
    line = one_line_error(run(str(cell), "--out", str(out), "--plots", "--force", "--exclude", "1"))
    assert "No space left on device" in line and "nothing was written" in line
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before  # no new, partial or temporary file
    fresh = tmp_path / "fresh"
    one_line_error(run(str(cell), "--out", str(fresh), "--plots"))
    assert not fresh.exists()


def test_template_method_takes_the_templates_kinetics(tmp_path):
    """`--method template --rise-ms --decay-ms`: the classic detector uses that template (stored
    in the results), and the options are refused for the classifier."""
    import json as _json

    from minidet.examples import path as example_path

    out = tmp_path / "slow"
    proc = subprocess.run(
        [sys.executable, "-m", "minidet.cli", "detect", str(example_path()), "--method", "template",
         "--rise-ms", "0.5", "--decay-ms", "5", "--skip-start", "7", "--out", str(out), "--json"],
        capture_output=True, text=True,
    )
    assert proc.returncode == 0, proc.stderr
    from minidet.report.writers import read_results

    for stored in (_json.loads(proc.stdout)["model"], read_results(out).model):
        assert stored["name"] == "template"
        assert stored["method_settings"]["rise_tau_s"] == pytest.approx(0.5e-3)
        assert stored["method_settings"]["decay_tau_s"] == pytest.approx(5e-3)
    from click.testing import CliRunner

    from minidet.cli import main

    alone = CliRunner().invoke(main, ["detect", str(example_path()), "--method", "template", "--rise-ms", "0.5",
                                      "--skip-start", "7", "--out", str(tmp_path / "alone"), "--json"])
    assert alone.exit_code == 0, alone.output
    settings = read_results(tmp_path / "alone").model["method_settings"]  # the decay by extract's rule
    assert settings["decay_tau_s"] == pytest.approx(0.5e-3 * 6)
    bad = subprocess.run([sys.executable, "-m", "minidet.cli", "detect", str(example_path()), "--rise-ms", "0.5",
                          "--out", str(tmp_path / "x")], capture_output=True, text=True)
    assert bad.returncode == 2 and "--method template" in bad.stderr
