"""Evaluation: matching rules, file formats, consistency errors, sweeps."""

import json
import os
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from minidet.cli import main
from minidet.errors import ParameterError
from minidet.evaluation import Detections, MatchSettings, evaluate, match_events, read_detections, sweep
from minidet.simulation import SimulationSettings, Truth, simulate, simulate_to_file, write_truth

FS = 20_000.0


@pytest.fixture(scope="module")
def simulated():
    s = SimulationSettings(duration_s=10.0, sampling_rate=FS, snr_db=14.0, rise_tau_s=0.3e-3, decay_tau_s=2e-3,
                           event_rate_hz=6.0, transient_rate_hz=1.0)
    return simulate(s, seed=11)


def test_match_events_window_and_one_to_one():
    true = np.array([100.0, 200.0, 205.0, 400.0])
    det = np.array([99.0, 201.0, 204.0, 330.0, 460.0])
    ti, di = match_events(true, det, before=2, after=6)
    assert list(zip(ti, di)) == [(0, 0), (1, 1), (2, 2)]
    ti, di = match_events(np.array([100.0]), np.array([101.0, 102.0]), 2, 6)
    assert ti.tolist() == [0] and di.tolist() == [0]  # one detection per true event
    assert match_events(np.array([100.0]), np.array([97.9]), 2, 6)[0].size == 0
    assert match_events(np.array([100.0]), np.array([106.0]), 2, 6)[0].size == 1  # edge included


def test_perfect_shifted_and_empty_detections(simulated):
    _, truth = simulated
    onsets = truth.events["onset_sample"].to_numpy()
    perfect = evaluate(truth, onsets + 0.1e-3 * FS)
    assert perfect.f1 == 1.0 and perfect.precision == 1.0 and perfect.recall == 1.0
    assert perfect.timing_median_s == pytest.approx(0.1e-3, abs=1e-6)
    late = evaluate(truth, np.clip(onsets + 5e-3 * FS, 0, truth.n_samples - 1))
    assert late.true_positives < 0.1 * truth.n_events
    wide = evaluate(truth, np.clip(onsets + 5e-3 * FS, 0, truth.n_samples - 1), MatchSettings(1e-3, 6e-3))
    assert wide.recall > 0.9
    none = evaluate(truth, np.array([], dtype=np.int64))
    assert none.precision == 0.0 and none.recall == 0.0 and none.f1 == 0.0
    half = evaluate(truth, onsets[::2])
    assert half.precision == 1.0 and half.recall == pytest.approx(0.5, abs=0.01)


def test_false_positives_on_transients_are_counted(simulated):
    _, truth = simulated
    starts = truth.transients["start_sample"].to_numpy() + 2
    result = evaluate(truth, np.concatenate([truth.events["onset_sample"].to_numpy(), starts]))
    assert result.n_transients == len(starts) > 0
    assert result.false_positives_on_transients >= result.false_positives - 1  # one may match a real event
    assert "on" in result.to_text() and "transients" in result.to_text()


def test_consistency_errors(simulated):
    _, truth = simulated
    onsets = truth.events["onset_sample"].to_numpy()
    with pytest.raises(ParameterError, match="Hz"):
        evaluate(truth, Detections(onsets, sampling_rate=10_000.0))
    with pytest.raises(ParameterError, match="samples"):
        evaluate(truth, Detections(onsets, sampling_rate=FS, n_samples=truth.n_samples // 2))
    with pytest.raises(ParameterError, match="outside"):
        evaluate(truth, np.array([truth.n_samples + 500.0]))
    empty = replace(truth, events=truth.events.iloc[:0])
    with pytest.raises(ParameterError, match="no events"):
        evaluate(empty, onsets)
    with pytest.raises(ParameterError):
        MatchSettings(-1e-3, 3e-3)


def test_file_formats(tmp_path, simulated):
    _, truth = simulated
    truth_path = str(tmp_path / "t.h5")
    write_truth(truth, truth_path)
    onsets = truth.events["onset_sample"].to_numpy()
    det = np.round(onsets + 4).astype(np.int64)
    np.save(tmp_path / "d.npy", det)
    pd.DataFrame({"time_s": det / FS}).to_csv(tmp_path / "times.csv", index=False)
    (tmp_path / "bare.txt").write_text("\n".join(f"{t:.6f}" for t in det / FS))
    pd.DataFrame({"event": range(det.size), "sample": det, "time_s": det / FS, "amplitude_pA": -truth.events["amplitude"],
                  "rise_time_s": truth.events["rise_time_s"] + 1e-5,
                  "excluded": [False] * det.size}).to_csv(tmp_path / "events.csv", index=False)
    for name in ("d.npy", "times.csv", "bare.txt", "events.csv"):
        result = evaluate(truth_path, str(tmp_path / name))
        assert result.f1 == 1.0, name
    measured = evaluate(truth_path, str(tmp_path / "events.csv"))
    assert measured.amplitude_error_mae == pytest.approx(0.0, abs=1e-9)
    assert measured.rise_time_error_median_s == pytest.approx(1e-5)
    # a CSV whose samples and times imply another sampling rate
    pd.DataFrame({"sample": det, "time_s": det / 10_000}).to_csv(tmp_path / "other.csv", index=False)
    with pytest.raises(ParameterError, match="10000 Hz"):
        evaluate(truth_path, str(tmp_path / "other.csv"))
    np.save(tmp_path / "f.npy", det / FS)
    with pytest.raises(ParameterError, match="sample indices"):
        read_detections(str(tmp_path / "f.npy"))
    pd.DataFrame({"a": [1], "b": [2]}).to_csv(tmp_path / "bad.csv", index=False)
    with pytest.raises(ParameterError, match="no column"):
        read_detections(str(tmp_path / "bad.csv"))


def test_minidet_results_folder(tmp_path, simulated):
    from minidet import report
    from minidet.detection.pipeline import detect

    rec, truth = simulated
    result = detect(rec, method="template", method_settings={"rise_tau_s": 0.3e-3, "decay_tau_s": 2e-3})
    out = tmp_path / "results"
    report.prepare_output_dir(out, report.output_files(plots=False, nwb=False))
    report.write_results(result, out, plots=False, nwb=False)
    truth_path = str(tmp_path / "t.h5")
    write_truth(truth, truth_path)
    for target in (out, out / "results.h5", out / "events.csv"):
        e = evaluate(truth_path, str(target))
        assert e.f1 > 0.85, target
        assert abs(e.amplitude_relative_error_median) < 0.25
    direct = evaluate(truth, result)
    assert direct.true_positives == evaluate(truth_path, str(out)).true_positives


def test_sweep_table_rises_with_snr():
    base = SimulationSettings(duration_s=4.0, sampling_rate=FS, rise_tau_s=0.3e-3, decay_tau_s=2e-3,
                              event_rate_hz=10.0)
    table = sweep([2.0, 14.0], "threshold", base, kinetics_scales=(1.0,), seed=1)
    assert list(table["snr_db"]) == [2.0, 14.0]
    assert table["f1"].iloc[1] > table["f1"].iloc[0]
    with pytest.raises(ParameterError):
        sweep([], "threshold", base)


def test_cli_evaluate(tmp_path):
    runner = CliRunner()
    rec_path = str(tmp_path / "s.h5")
    truth = simulate_to_file(rec_path, SimulationSettings(duration_s=3.0, sampling_rate=FS, snr_db=12.0,
                                                          rise_tau_s=0.3e-3, decay_tau_s=2e-3), seed=2)
    np.save(tmp_path / "d.npy", np.round(truth.events["onset_sample"].to_numpy()).astype(int))
    res = runner.invoke(main, ["evaluate", "--truth", str(tmp_path / "s.truth.h5"), str(tmp_path / "d.npy")])
    assert res.exit_code == 0, res.output
    assert "F1               1.000" in res.output
    res = runner.invoke(main, ["evaluate", "--truth", str(tmp_path / "s.truth.h5"), str(tmp_path / "d.npy"), "--json"])
    assert json.loads(res.output)["f1"] == 1.0
    res = runner.invoke(main, ["evaluate", str(tmp_path / "d.npy")])
    assert res.exit_code == 2 and "--truth" in res.output
    plot = str(tmp_path / "f1.png")
    res = runner.invoke(main, ["evaluate", "--sweep", "--method", "template", "--snrs", "6,12", "--duration", "2",
                               "--sampling-rate", "20000", "--rise-tau-ms", "0.3", "--decay-tau-ms", "2",
                               "--plot", plot, "--csv", str(tmp_path / "f1.csv")])
    assert res.exit_code == 0, res.output
    assert os.path.getsize(plot) > 1000 and "template" in res.output
    assert len(pd.read_csv(tmp_path / "f1.csv")) == 2
    res = runner.invoke(main, ["evaluate", "--sweep", "--method", "nonsense", "--duration", "1"])
    assert res.exit_code == 2 and "'nonsense' is not one of 'miniml', 'deconvolution', 'template'" in res.output
