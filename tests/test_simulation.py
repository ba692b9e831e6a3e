"""Simulator: settings checks, known answers (counts, amplitudes, SNR, noise), files."""

import importlib
import json
import os
from dataclasses import replace

import numpy as np
import pytest
from click.testing import CliRunner
from scipy import signal

import minidet
from minidet.cli import main
from minidet.errors import OutputError, ParameterError
from minidet.noise import NoiseSpectrum, noise_kernel, resolve_spectrum
from minidet.simulation import SimulationSettings, read_truth, simulate, simulate_to_file, truth_path_for, write_truth

sim = importlib.import_module("minidet.simulation")  # the module (minidet.simulate is also the function)
GC_DATASET = "/work/shared/data/miniml/gc_training_example.h5"


@pytest.mark.parametrize("changes, match", [
    ({"event_rate_hz": -1.0}, "event_rate_hz"),
    ({"rise_tau_s": 2e-3, "decay_tau_s": 1e-3}, "longer than rise"),
    ({"duration_s": 0.0}, "duration_s"),
    ({"sampling_rate": -5.0}, "sampling_rate"),
    ({"noise_sd": -1.0}, "noise_sd"),
    ({"event_direction": "down"}, "event_direction"),
    ({"hum_amplitude": 1.0, "hum_frequency_hz": 30_000.0}, "Nyquist"),
    ({"transient_rate_hz": 1.0, "transient_kinds": ("spike", "glitch")}, "transient_kinds"),
    ({"snr_db": 10.0, "noise_sd": 0.0}, "noise_sd > 0"),
    ({"amplitude_median": 0.0}, "amplitude_median"),
    ({"rise_tau_s": 1e-7}, "sample"),
    ({"noise_spectrum": 3}, "noise_spectrum"),
])
def test_impossible_settings_are_parameter_errors(changes, match):
    with pytest.raises(ParameterError, match=match):
        SimulationSettings(**changes)


def test_seeded_and_reproducible():
    s = SimulationSettings(duration_s=2.0, sampling_rate=20_000)
    a, ta = simulate(s, seed=4)
    b, tb = simulate(s, seed=4)
    c, _ = simulate(s, seed=5)
    np.testing.assert_array_equal(a.samples, b.samples)
    assert ta.events.equals(tb.events)
    assert not np.array_equal(a.samples, c.samples)
    _, drawn = simulate(s)
    assert isinstance(drawn.seed, int)


def test_event_count_amplitudes_and_kinetics_without_noise():
    s = SimulationSettings(duration_s=20.0, sampling_rate=20_000, event_rate_hz=4.0, noise_sd=0.0,
                           amplitude_median=10.0, amplitude_log_sd=0.3, rise_tau_s=0.3e-3, decay_tau_s=2e-3)
    rec, truth = simulate(s, seed=1)
    assert rec.n_samples == 400_000 and rec.sampling_rate == 20_000 and rec.unit == "pA"
    n = truth.n_events
    assert abs(n - 80) < 5 * np.sqrt(80)
    ev = truth.events
    assert np.all(np.diff(ev["onset_time_s"]) >= 0)
    assert np.median(ev["amplitude"]) == pytest.approx(10.0, rel=0.2)
    # isolated events: the trace's minimum near the peak equals minus the amplitude
    onset = ev["onset_time_s"].to_numpy()
    gap_before = np.diff(np.concatenate(([-1.0], onset)))
    gap_after = np.diff(np.concatenate((onset, [1e9])))
    isolated = (gap_before > 0.03) & (gap_after > 0.03) & (onset < 19.9)
    assert isolated.sum() > 20
    for _, row in ev[isolated].iterrows():
        a = int(row.onset_sample)
        seg = rec.samples[a:a + 400]
        assert seg.min() == pytest.approx(-row.amplitude, rel=0.03)
        peak_at = (a + np.argmin(seg)) / s.sampling_rate
        assert peak_at == pytest.approx(row.peak_time_s, abs=2 / s.sampling_rate)
    # 10-90 % rise time and half decay of the shape, checked on a dense grid
    r, d = 0.3e-3, 2e-3
    kin = sim.event_kinetics(np.array([r]), np.array([d]))
    t = np.linspace(0, 20e-3, 400_001)
    g = (1 - np.exp(-t / r)) * np.exp(-t / d)
    g /= g.max()
    ip = np.argmax(g)
    rise = t[np.argmax(g >= 0.9)] - t[np.argmax(g >= 0.1)]
    half_decay = t[ip + np.argmax(g[ip:] <= 0.5)] - t[ip]
    assert kin["rise_time_s"][0] == pytest.approx(rise, abs=1e-7)
    assert kin["half_decay_s"][0] == pytest.approx(half_decay, abs=1e-7)


def test_positive_events_and_snr_definition():
    s = SimulationSettings(duration_s=5.0, sampling_rate=10_000, event_direction="positive", snr_db=12.0,
                           noise_sd=2.0, rise_tau_s=0.5e-3, decay_tau_s=4e-3)
    assert s.median_amplitude == pytest.approx(2.0 * 10 ** (12 / 20))
    rec, truth = simulate(s, seed=2)
    assert truth.snr_db == pytest.approx(12.0)
    assert truth.event_direction == "positive"
    assert "SNR 12.0 dB" in truth.summary()
    assert rec.metadata["snr_db"] == pytest.approx(12.0)
    quiet = SimulationSettings(duration_s=5.0, sampling_rate=10_000, event_direction="positive", noise_sd=0.0,
                               rise_tau_s=0.5e-3, decay_tau_s=4e-3)
    r2, _ = simulate(quiet, seed=2)
    assert r2.samples.min() >= -1e-12 and r2.samples.max() > 5


def test_noise_level_and_spectrum():
    s = SimulationSettings(duration_s=10.0, sampling_rate=50_000, event_rate_hz=0.0, noise_sd=1.5)
    rec, truth = simulate(s, seed=3)
    assert truth.n_events == 0
    assert rec.samples.std() == pytest.approx(1.5, rel=0.03)
    f, p = signal.welch(rec.samples, fs=50_000, nperseg=2048)
    band = lambda lo, hi: p[(f >= lo) & (f < hi)].mean()  # noqa: E731
    # granule-cell noise: most power at 0.5-3 kHz, little above 10 kHz
    assert band(1000, 2500) > 50 * band(12_000, 20_000)
    white, _ = simulate(replace(s, noise_spectrum="white"), seed=3)
    f, p = signal.welch(white.samples, fs=50_000, nperseg=2048)
    assert 0.7 < band(1000, 2500) / band(12_000, 20_000) < 1.4


def test_hum_drift_and_transients():
    s = SimulationSettings(duration_s=4.0, sampling_rate=20_000, event_rate_hz=0.0, noise_sd=0.0, hum_amplitude=1.0,
                           drift_sd=2.0, transient_rate_hz=0.0)
    rec, _ = simulate(s, seed=1)
    spec = np.abs(np.fft.rfft(rec.samples))
    f = np.fft.rfftfreq(rec.n_samples, 1 / 20_000)
    assert f[np.argmax(spec * (f > 10))] == pytest.approx(50.0, abs=0.5)
    assert 0.5 < np.std(rec.samples - np.convolve(rec.samples, np.ones(400) / 400, "same")) < 1.0  # hum ~ 0.75
    t_settings = replace(s, hum_amplitude=0.0, drift_sd=0.0, transient_rate_hz=5.0, transient_kinds=("spike", "sag"))
    rec, truth = simulate(t_settings, seed=1)
    tr = truth.transients
    assert len(tr) > 5 and set(tr["kind"]) <= {"spike", "sag"}
    spans = truth.transient_spans()
    inside = np.zeros(rec.n_samples, bool)
    for a, b in spans:
        inside[a:min(b, rec.n_samples)] = True
    assert np.all(rec.samples[~inside] == 0)
    assert np.abs(rec.samples[inside]).max() > 5


def test_streamed_file_equals_memory_and_reads_back(tmp_path, monkeypatch):
    s = SimulationSettings(duration_s=1.0, sampling_rate=50_000, event_rate_hz=30.0, snr_db=10.0,
                           transient_rate_hz=3.0, hum_amplitude=0.2, drift_sd=0.5)
    whole, truth = simulate(s, seed=9)
    monkeypatch.setattr(sim, "_CHUNK", 7_777)  # many chunk edges, events crossing them
    path = str(tmp_path / "sim.h5")
    t2 = simulate_to_file(path, s, seed=9)
    rec = minidet.load(path)
    assert rec.sampling_rate == 50_000 and rec.unit == "pA"
    np.testing.assert_allclose(rec.samples, whole.samples, atol=1e-9)
    back = read_truth(truth_path_for(path))
    assert back.n_events == truth.n_events == t2.n_events
    np.testing.assert_allclose(back.events["onset_sample"], truth.events["onset_sample"])
    assert list(back.transients["kind"]) == list(truth.transients["kind"])
    assert back.settings["snr_db"] == 10.0 and back.seed == 9
    npz = str(tmp_path / "t.npz")
    write_truth(truth, npz)
    again = read_truth(npz)
    np.testing.assert_allclose(again.events["amplitude"], truth.events["amplitude"])
    assert again.snr_db == pytest.approx(truth.snr_db)
    with pytest.raises(OutputError, match="exists"):
        simulate_to_file(path, s, seed=9)
    simulate_to_file(path, s, seed=9, overwrite=True, dtype="float32")
    assert minidet.load(path).samples.dtype == np.float64


def test_int16_files_hdf5_and_abf1(tmp_path, monkeypatch):
    s = SimulationSettings(duration_s=1.0, sampling_rate=50_000, event_rate_hz=40.0, snr_db=12.0,
                           transient_rate_hz=3.0, hum_amplitude=0.3, drift_sd=0.5, baseline=-20.0)
    whole, truth = simulate(s, seed=4)
    monkeypatch.setattr(sim, "_CHUNK", 9_999)  # blocks of the stream do not line up with anything
    step, offset = sim.int16_step(s, seed=4)
    assert offset == -20.0 and 0 < step < np.abs(whole.samples - offset).max() / 4_000  # fine steps
    h5 = str(tmp_path / "i.h5")
    simulate_to_file(h5, s, seed=4, dtype="int16")
    rec = minidet.load(h5)
    assert rec.metadata["scale_factor"] == pytest.approx(step)
    err = np.abs(rec.samples - whole.samples)
    assert err.max() <= step / 2 * 1.001 and err.max() > 0  # quantized, never clipped
    abf_path = str(tmp_path / "a.abf")
    simulate_to_file(abf_path, s, seed=4)  # .abf: int16 ABF1, gap-free
    rec = minidet.load(abf_path)
    assert (rec.sampling_rate, rec.unit, rec.n_sweeps, rec.n_samples) == (50_000, "pA", 1, whole.n_samples)
    assert np.abs(rec.samples - whole.samples).max() <= step * 0.51 + 1e-5 * abs(offset)
    np.testing.assert_array_equal(minidet.load(abf_path, lazy=True).read(1000, 2000), rec.samples[1000:2000])
    assert "gap-free" in minidet.describe(abf_path).file_format
    assert read_truth(truth_path_for(abf_path)).n_events == truth.n_events
    assert sorted(os.listdir(tmp_path)) == ["a.abf", "a.truth.h5", "i.h5", "i.truth.h5"]  # no temporary files left
    with pytest.raises(ParameterError, match="int16"):
        simulate_to_file(str(tmp_path / "f.abf"), s, seed=4, dtype="float32")
    with pytest.raises(ParameterError, match="float32 microseconds"):
        simulate_to_file(str(tmp_path / "r.abf"), replace(s, sampling_rate=48_000.0), seed=4)
    assert sorted(os.listdir(tmp_path)) == ["a.abf", "a.truth.h5", "i.h5", "i.truth.h5"]


def test_noise_spectra_from_data(tmp_path):
    rec, _ = simulate(SimulationSettings(duration_s=4.0, sampling_rate=20_000, event_rate_hz=0.0,
                                         noise_spectrum="white"), seed=1)
    spec = NoiseSpectrum.from_recording(rec)
    inner = spec.psd[2:-2]
    assert inner.max() / inner.min() < 2
    path = str(tmp_path / "spec.npz")
    spec.save(path)
    assert resolve_spectrum(path).psd.size == spec.psd.size
    h = noise_kernel(NoiseSpectrum.gc(), 50_000)
    assert np.sum(h * h) == pytest.approx(1.0)
    with pytest.raises(ParameterError):
        resolve_spectrum("no-such-spectrum")
    with pytest.raises(ParameterError):
        NoiseSpectrum([0, 1], [-1, 1])
    if os.path.exists(GC_DATASET):
        with pytest.raises(ParameterError, match="sampling rate"):
            NoiseSpectrum.from_dataset(GC_DATASET)
        gc = NoiseSpectrum.from_dataset(GC_DATASET, sampling_rate=50_000)
        ratio = gc.at(np.array([1500.0, 15_000.0]))
        assert ratio[0] > 100 * ratio[1]


def test_cli_simulate(tmp_path):
    runner = CliRunner()
    out = str(tmp_path / "cli.h5")
    res = runner.invoke(main, ["simulate", out, "--duration", "1", "--snr", "8", "--seed", "3",
                               "--transient-rate", "2", "--sampling-rate", "20000"])
    assert res.exit_code == 0, res.output
    assert "SNR 8.0 dB" in res.output and os.path.exists(str(tmp_path / "cli.truth.h5"))
    assert minidet.load(out).sampling_rate == 20_000
    res = runner.invoke(main, ["simulate", out, "--duration", "1"])
    assert res.exit_code == 2 and "exists" in res.output
    res = runner.invoke(main, ["simulate", str(tmp_path / "x.h5"), "--rise-tau-ms", "3", "--decay-tau-ms", "1"])
    assert res.exit_code == 2 and "longer than rise" in res.output
    res = runner.invoke(main, ["simulate", str(tmp_path / "y.h5"), "--rate", "-2"])
    assert res.exit_code == 2 and "--rate must be" in res.output  # the option, not the API's event_rate_hz
    res = runner.invoke(main, ["simulate", str(tmp_path / "z.h5"), "--duration", "0.5", "--json", "--seed", "1"])
    assert json.loads(res.output)["seed"] == 1
    res = runner.invoke(main, ["simulate", str(tmp_path / "i16.h5"), "--duration", "0.5", "--int16"])
    assert res.exit_code == 0, res.output
    assert "scale_factor" in minidet.load(str(tmp_path / "i16.h5")).metadata
    res = runner.invoke(main, ["simulate", str(tmp_path / "c.abf"), "--duration", "0.5"])
    assert res.exit_code == 0, res.output
    assert minidet.load(str(tmp_path / "c.abf")).n_samples == 25_000
