import numpy as np
import pytest

import minidet
from minidet.errors import ChannelError, CorruptFileError, ParameterError

h5py = pytest.importorskip("h5py")


def _trace(n=5000, seed=0):
    return np.random.default_rng(seed).normal(size=n)


def test_hdf5_sampling_attribute_on_root(shared):
    rec = minidet.load(shared / "reference" / "public30.h5", scale=1e12, unit="pA")
    assert rec.sampling_rate == pytest.approx(50_000)
    assert rec.n_samples == 1_500_000 and rec.unit == "pA"
    assert rec.channel == "mini_data"


@pytest.mark.parametrize("key,value,rate", [("sampling", 1e-4, 10_000), ("dt", 5e-5, 20_000),
                                            ("sampling_rate", 25_000.0, 25_000)])
def test_hdf5_rate_attributes(tmp_path, key, value, rate):
    path = tmp_path / "t.h5"
    with h5py.File(path, "w") as h5:
        ds = h5.create_dataset("grp/trace", data=_trace())
        ds.attrs[key] = value
        ds.attrs["unit"] = "pA"
    rec = minidet.load(path)
    assert rec.sampling_rate == pytest.approx(rate)
    assert rec.unit == "pA"


def test_hdf5_needs_rate_and_dataset_choice(tmp_path):
    path = tmp_path / "t.h5"
    with h5py.File(path, "w") as h5:
        h5["a"] = _trace()
        h5["b"] = _trace(seed=1)
    with pytest.raises(ChannelError, match="several datasets"):
        minidet.load(path, sampling_rate=1000)
    with pytest.raises(ParameterError, match="sampling rate"):
        minidet.load(path, dataset="a")
    rec = minidet.load(path, dataset="b", sampling_rate=1000, unit="mV")
    np.testing.assert_array_equal(rec.samples, _trace(seed=1))
    with pytest.raises(ChannelError, match="'c' is not in"):
        minidet.load(path, dataset="c", sampling_rate=1000)


def test_hdf5_2d_is_sweeps(tmp_path):
    path = tmp_path / "s.h5"
    with h5py.File(path, "w") as h5:
        h5.create_dataset("sweeps", data=np.arange(30, dtype=float).reshape(3, 10)).attrs["dt"] = 1e-3
    rec = minidet.load(path, sweeps="0,2")
    assert rec.sweep_starts.tolist() == [0, 10]
    np.testing.assert_array_equal(rec.samples, np.r_[np.arange(10), np.arange(20, 30)])


def test_truncated_hdf5(shared, tmp_path):
    data = (shared / "reference" / "public30.h5").read_bytes()
    bad = tmp_path / "cut.h5"
    bad.write_bytes(data[: len(data) // 3])
    with pytest.raises(CorruptFileError):
        minidet.load(bad, scale=1e12, unit="pA")


def test_npy_and_csv(tmp_path):
    x = _trace()
    np.save(tmp_path / "x.npy", x)
    rec = minidet.load(tmp_path / "x.npy", sampling_rate=20_000, unit="pA")
    np.testing.assert_array_equal(rec.samples, x)
    with pytest.raises(ParameterError, match="sampling rate"):
        minidet.load(tmp_path / "x.npy")

    t = np.arange(x.size) / 10_000
    np.savetxt(tmp_path / "tv.csv", np.c_[t, x], delimiter=",", header="time_s,current_pA", comments="")
    rec = minidet.load(tmp_path / "tv.csv", unit="pA")
    assert rec.sampling_rate == pytest.approx(10_000)
    np.testing.assert_allclose(rec.samples, x)
    assert rec.channel == "current_pA"

    np.savetxt(tmp_path / "one.txt", x)
    rec = minidet.load(tmp_path / "one.txt", sampling_rate=5000)
    np.testing.assert_allclose(rec.samples, x)
    assert rec.unit == "a.u."


def test_object_npy_is_refused(tmp_path):
    np.save(tmp_path / "o.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(CorruptFileError, match="plain numeric"):
        minidet.load(tmp_path / "o.npy", sampling_rate=1000)


def _write_nwb(path, series):
    from datetime import datetime, timezone

    from pynwb import NWBHDF5IO, NWBFile
    from pynwb.icephys import VoltageClampSeries

    nwb = NWBFile(session_description="test", identifier="id", session_start_time=datetime.now(timezone.utc))
    device = nwb.create_device(name="amp")
    electrode = nwb.create_icephys_electrode(name="elec0", description="patch", device=device)
    for name, data in series.items():
        nwb.add_acquisition(VoltageClampSeries(name=name, data=data, electrode=electrode, rate=20_000.0,
                                               gain=1.0, conversion=1e-12, unit="amperes"))
    with NWBHDF5IO(str(path), "w") as io:
        io.write(nwb)


def test_nwb_series_by_name(tmp_path):
    pytest.importorskip("pynwb")
    a, b = _trace(4000), _trace(4000, seed=2)
    path = tmp_path / "rec.nwb"
    _write_nwb(path, {"vc0": a, "vc1": b})
    with pytest.raises(ChannelError, match="vc0, vc1"):
        minidet.load(path)
    rec = minidet.load(path, dataset="vc1")  # SI amperes come out in pA, and say so
    assert rec.sampling_rate == 20_000 and rec.unit == "pA"
    np.testing.assert_allclose(rec.samples, b)
    rec = minidet.load(path, dataset="vc0", scale=1e15, unit="fA")  # explicit: scale applies to SI
    np.testing.assert_allclose(rec.samples, a * 1e3)
    info = minidet.describe(path).to_dict()
    assert [c["name"] for c in info["channels"]] == ["vc0", "vc1"]


def test_neo_fallback_raw_binary(tmp_path):
    pytest.importorskip("neo")
    # neo's RawBinarySignalIO defaults: int16, 2 interleaved channels, 10 kHz
    data = (np.arange(2000, dtype=np.int16).reshape(-1, 2))
    (tmp_path / "sig.raw").write_bytes(data.tobytes())
    rec = minidet.load(tmp_path / "sig.raw", channel=1)
    assert rec.sampling_rate == 10_000
    np.testing.assert_array_equal(rec.samples, data[:, 1])
