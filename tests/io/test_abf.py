import numpy as np
import pytest

import minidet
from minidet.errors import ChannelError, CorruptFileError, SweepError
from minidet.io.base import TruncatedFileWarning


def test_gap_free_abf2_one_channel(abf_dir):
    rec = minidet.load(abf_dir / "File_axon_1.abf")
    assert rec.sampling_rate == 10_000
    assert rec.unit == "pA"
    assert rec.n_sweeps == 1
    assert rec.duration_s == pytest.approx(191.2832)
    assert rec.samples.dtype == np.float64


def test_episodic_abf1_channel_sweeps_and_skip_start(abf_dir):
    path = abf_dir / "05210017_vc_abf1.abf"
    full = minidet.load(path, channel="Current 1")
    assert full.n_sweeps == 6 and full.n_samples == 6 * 60_000
    assert full.channel == "Current 1"
    by_index = minidet.load(path, channel=1)
    np.testing.assert_array_equal(full.samples, by_index.samples)

    part = minidet.load(path, channel=1, sweeps="1-2,4", skip_start_s=0.15)
    per_sweep = 60_000 - 3000
    assert part.n_samples == 3 * per_sweep
    assert part.sweep_starts.tolist() == [0, per_sweep, 2 * per_sweep]
    # sweep 4 of the selection is the full trace's sweep 4 without its first 0.15 s
    np.testing.assert_array_equal(part.samples[2 * per_sweep:], full.samples[4 * 60_000 + 3000: 5 * 60_000])


def test_two_channel_gap_free_abf2_units(abf_dir):
    path = abf_dir / "2020_07_29_0062.abf"
    assert minidet.load(path, channel=0).unit == "mV"
    assert minidet.load(path, channel="I_Com").unit == "pA"


def test_episodic_abf2_many_sweeps(abf_dir):
    rec = minidet.load(abf_dir / "18808025.abf", sweeps="0-9")
    assert rec.n_sweeps == 10 and rec.sampling_rate == 20_000


def test_scale_and_unit(abf_dir):
    rec = minidet.load(abf_dir / "File_axon_1.abf")
    scaled = minidet.load(abf_dir / "File_axon_1.abf", scale=1e-3, unit="nA")
    assert scaled.unit == "nA"
    np.testing.assert_allclose(scaled.samples, rec.samples * 1e-3)


def test_missing_channel_and_sweep(abf_dir):
    with pytest.raises(ChannelError, match="Current 7"):
        minidet.load(abf_dir / "05210017_vc_abf1.abf", channel="Current 7")
    with pytest.raises(ChannelError):
        minidet.load(abf_dir / "05210017_vc_abf1.abf", channel=2)
    with pytest.raises(SweepError, match="sweep 6 does not exist"):
        minidet.load(abf_dir / "05210017_vc_abf1.abf", sweeps="5-6")
    with pytest.raises(SweepError):
        minidet.load(abf_dir / "05210017_vc_abf1.abf", sweeps="two")


def test_truncated_abf(abf_dir, tmp_path):
    data = (abf_dir / "File_axon_1.abf").read_bytes()
    bad = tmp_path / "cut.abf"
    bad.write_bytes(data[: len(data) // 2])
    with pytest.warns(TruncatedFileWarning, match=r"ends at sample \d+ \(t = [\d.]+ s\)") as caught:
        part = minidet.load(bad)
    full = minidet.load(abf_dir / "File_axon_1.abf")
    n = int(str(caught[0].message).split("ends at sample ")[1].split()[0])
    assert part.n_samples == n and 0 < n < full.n_samples
    np.testing.assert_array_equal(part.samples, full.samples[:n])
    with pytest.raises(CorruptFileError, match="truncated"):  # `info` calls it damaged
        minidet.describe(bad)
    header_only = tmp_path / "header.abf"
    header_only.write_bytes(data[:100])
    with pytest.raises(CorruptFileError):
        minidet.load(header_only)


def test_describe_abf(abf_dir):
    info = minidet.describe(abf_dir / "05210017_vc_abf1.abf")
    d = info.to_dict()
    assert d["n_sweeps"] == 6 and d["sampling_rate_hz"] == 20_000
    assert [c["name"] for c in d["channels"]] == ["Voltage 0", "Current 1"]
    assert d["duration_s"] == pytest.approx(18.0)
