"""Bad input: a specific exception from the API for every case."""

import numpy as np
import pytest

import minidet
from minidet.errors import (CorruptFileError, EmptyTraceError, NaNTraceError, ParameterError,
                            RecordingNotFoundError, UnknownFormatError)
from minidet.recording import Recording


def test_missing_file(tmp_path):
    with pytest.raises(RecordingNotFoundError):
        minidet.load(tmp_path / "nope.abf")
    with pytest.raises(FileNotFoundError):  # also a FileNotFoundError for plain callers
        minidet.load(tmp_path / "nope.h5")


def test_unknown_format_and_empty_file(tmp_path):
    (tmp_path / "x.xyz").write_bytes(b"hello world")
    with pytest.raises(UnknownFormatError, match="cannot tell the format"):
        minidet.load(tmp_path / "x.xyz")
    (tmp_path / "e.abf").write_bytes(b"")
    with pytest.raises(CorruptFileError, match="empty"):
        minidet.load(tmp_path / "e.abf")
    (tmp_path / "fake.h5").write_bytes(b"not hdf5 at all")
    with pytest.raises(CorruptFileError, match="HDF5 signature"):
        minidet.load(tmp_path / "fake.h5")
    with pytest.raises(UnknownFormatError, match="folder"):
        minidet.load(tmp_path)


def test_heka_bundle_message(tmp_path):
    """A .dat file with a PatchMaster signature goes to the HEKA reader (tests/io/test_heka.py);
    a damaged one, or one without myokit, is one specific error naming HEKA."""
    from minidet.errors import MissingDependencyError

    (tmp_path / "cell.dat").write_bytes(b"DAT2" + bytes(200))
    with pytest.raises((CorruptFileError, MissingDependencyError), match="HEKA"):
        minidet.load(tmp_path / "cell.dat")


def test_empty_all_nan_and_nan_stretches(tmp_path):
    np.save(tmp_path / "empty.npy", np.zeros(0))
    with pytest.raises(EmptyTraceError):
        minidet.load(tmp_path / "empty.npy", sampling_rate=1000)
    np.save(tmp_path / "nan.npy", np.full(100, np.nan))
    with pytest.raises(NaNTraceError, match="only NaN"):
        minidet.load(tmp_path / "nan.npy", sampling_rate=1000)
    x = np.zeros(10_000)
    x[2000:2500] = np.nan
    x[7000] = np.inf
    np.save(tmp_path / "holes.npy", x)
    with pytest.raises(NaNTraceError, match=r"501 NaN/inf samples in 2 stretch\(es\): 0.2000-0.2500 s, 0.7000-0.7001 s"):
        minidet.load(tmp_path / "holes.npy", sampling_rate=10_000)


@pytest.mark.parametrize("rate", [0, -5, float("nan"), float("inf")])
def test_bad_sampling_rate(tmp_path, rate):
    np.save(tmp_path / "x.npy", np.zeros(100))
    with pytest.raises(ParameterError, match="sampling"):
        minidet.load(tmp_path / "x.npy", sampling_rate=rate)
    with pytest.raises(ParameterError):
        Recording(np.zeros(10), sampling_rate=rate)


def test_skip_start_longer_than_sweep_and_scale_without_unit(tmp_path):
    np.save(tmp_path / "x.npy", np.zeros(100))
    with pytest.raises(EmptyTraceError, match="removes all"):
        minidet.load(tmp_path / "x.npy", sampling_rate=1000, skip_start_s=1.0)
    with pytest.raises(ParameterError, match="needs a unit"):
        minidet.load(tmp_path / "x.npy", sampling_rate=1000, scale=2.0)
    np.save(tmp_path / "y.npy", np.arange(100.0))
    inverted = minidet.load(tmp_path / "y.npy", sampling_rate=1000, scale=-1)  # inverting keeps the unit
    np.testing.assert_array_equal(np.asarray(inverted.samples), -np.arange(100.0))
    with pytest.raises(TypeError, match="unknown reader option"):
        minidet.load(tmp_path / "x.npy", samplingrate=1000)


def test_recording_basics():
    rec = Recording(np.arange(10, dtype=np.int16), sampling_rate=1000, unit="pA", sweep_starts=[0, 4])
    assert rec.samples.dtype == np.float64
    assert rec.duration_s == pytest.approx(0.01)
    assert rec.sweep_bounds() == [(0, 4), (4, 10)]
    with pytest.raises(ParameterError):
        Recording(np.zeros((2, 5)), sampling_rate=1000)
    with pytest.raises(ParameterError):
        Recording(np.zeros(10), sampling_rate=1000, sweep_starts=[0, 20])
