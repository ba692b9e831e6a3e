"""Reading on demand (``lazy=True``) gives exactly the samples reading into memory gives, and
files that end early give their readable part with a warning or one clear error."""

import tracemalloc
import warnings

import h5py
import numpy as np
import pytest

import minidet
from minidet.errors import CorruptFileError, EmptyTraceError
from minidet.io import ReadOptions
from minidet.io.base import LAZY_THRESHOLD, TruncatedFileWarning

ABF_FILES = ["05210017_vc_abf1.abf", "18808025.abf", "2020_07_29_0062.abf", "File_axon_1.abf"]


def _same(lazy_rec, eager_rec):
    assert lazy_rec.is_lazy and not eager_rec.is_lazy
    assert lazy_rec.n_samples == eager_rec.n_samples
    assert lazy_rec.sweep_starts.tolist() == eager_rec.sweep_starts.tolist()
    assert (lazy_rec.unit, lazy_rec.channel, lazy_rec.sampling_rate) == (
        eager_rec.unit, eager_rec.channel, eager_rec.sampling_rate)
    np.testing.assert_array_equal(np.asarray(lazy_rec.samples), eager_rec.samples)
    # pieces that straddle sweep borders
    n = eager_rec.n_samples
    for a, b in [(0, 1), (n // 3, n // 3 + 12_345), (n - 7, n)] + [(max(0, s - 5), s + 5) for s in
                                                                   eager_rec.sweep_starts[1:3]]:
        np.testing.assert_array_equal(lazy_rec.read(a, b), eager_rec.samples[a:b])


@pytest.mark.parametrize("name", ABF_FILES)
def test_abf_lazy_is_bit_identical_to_pyabf(abf_dir, name):
    import pyabf

    path = abf_dir / name
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        abf = pyabf.ABF(str(path))
    for channel in range(abf.channelCount):
        eager = minidet.load(path, channel=channel, lazy=False)
        # the eager path reads the data section itself too: both equal pyabf's samples
        np.testing.assert_array_equal(eager.samples, np.asarray(abf.data[channel], dtype=np.float64))
        _same(minidet.load(path, channel=channel, lazy=True), eager)


def test_abf_lazy_sweeps_skip_start_scale(abf_dir):
    path = abf_dir / "05210017_vc_abf1.abf"
    options = dict(channel="Current 1", sweeps="4,1-2", skip_start_s=0.15, scale=1e-3, unit="nA")
    _same(minidet.load(path, lazy=True, **options), minidet.load(path, lazy=False, **options))
    path = abf_dir / "18808025.abf"
    _same(minidet.load(path, lazy=True, sweeps="3-9", skip_start_s=0.01),
          minidet.load(path, lazy=False, sweeps="3-9", skip_start_s=0.01))
    with pytest.raises(EmptyTraceError, match="removes all of sweep"):
        minidet.load(path, lazy=True, skip_start_s=100.0)


def test_auto_lazy_only_for_long_traces(abf_dir):
    assert not minidet.load(abf_dir / "File_axon_1.abf").is_lazy
    assert ReadOptions().lazy is None and LAZY_THRESHOLD >= 1 << 24
    with pytest.raises(minidet.errors.ParameterError):
        ReadOptions(lazy="yes")


def test_hdf5_lazy_1d_2d_and_int16_scaling(tmp_path):
    rng = np.random.default_rng(1)
    path = tmp_path / "h.h5"
    raw = rng.integers(-30_000, 30_000, 50_000).astype(np.int16)
    with h5py.File(path, "w") as h5:
        ds = h5.create_dataset("trace", data=raw, chunks=(4096,))
        ds.attrs.update({"sampling_rate": 20_000.0, "unit": "pA", "scale_factor": 0.0123, "add_offset": -5.5})
        h5.create_dataset("sweeps", data=rng.normal(size=(5, 3000)).astype(np.float32)).attrs["dt"] = 1e-4
    eager = minidet.load(path, dataset="trace", lazy=False)
    np.testing.assert_array_equal(eager.samples, raw.astype(np.float64) * 0.0123 + -5.5)
    _same(minidet.load(path, dataset="trace", lazy=True), eager)
    options = dict(dataset="sweeps", sweeps="3,0-1", skip_start_s=0.005, scale=2.0, unit="mV")
    _same(minidet.load(path, lazy=True, **options), minidet.load(path, lazy=False, **options))


def test_npy_lazy_layouts(tmp_path):
    rng = np.random.default_rng(2)
    one = rng.normal(size=40_000).astype(">f4")  # big-endian float32
    sweeps = rng.integers(-1000, 1000, (4, 5000)).astype(np.int16)
    pairs = np.column_stack([np.arange(20_000) / 10_000.0, rng.normal(size=20_000)])
    for name, array, options in [("one.npy", one, dict(sampling_rate=10_000)),
                                 ("col.npy", one[:, None], dict(sampling_rate=10_000, scale=3.0, unit="pA")),
                                 ("sweeps.npy", sweeps, dict(sampling_rate=10_000, sweeps="2,0", skip_start_s=0.01)),
                                 ("pairs.npy", pairs, {})]:
        np.save(tmp_path / name, array)
        _same(minidet.load(tmp_path / name, lazy=True, **options),
              minidet.load(tmp_path / name, lazy=False, **options))


def test_text_stays_in_memory(tmp_path):
    np.savetxt(tmp_path / "x.csv", np.arange(100.0))
    assert not minidet.load(tmp_path / "x.csv", sampling_rate=1000, lazy=True).is_lazy


def test_lazy_load_does_not_hold_the_float64_trace(tmp_path):
    """40 M int16 samples (80 MB on disk, 320 MB as float64) load and walk in bounded memory."""
    n = 40_000_000
    path = tmp_path / "long.h5"
    with h5py.File(path, "w") as h5:
        ds = h5.create_dataset("trace", shape=(n,), dtype=np.int16, chunks=(1 << 20,))
        block = (np.arange(1 << 22) % 2000 - 1000).astype(np.int16)
        for a in range(0, n, block.size):
            ds[a:a + block.size] = block[: n - a]
        ds.attrs.update({"sampling_rate": 50_000.0, "unit": "pA", "scale_factor": 0.01})
    tracemalloc.start()
    try:
        rec = minidet.load(path)  # longer than LAZY_THRESHOLD: lazy without asking
        total = 0.0
        for _, _, piece in rec.chunks():
            total += float(piece.sum())
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert rec.is_lazy and rec.n_samples == n
    assert peak < 64e6, f"peak {peak / 1e6:.0f} MB for a trace of {8 * n / 1e6:.0f} MB"
    assert np.isfinite(total)


# ----------------------------------------------------------------------------- cut files
@pytest.mark.parametrize("lazy", [False, True])
def test_truncated_abf_gives_readable_part(abf_dir, tmp_path, lazy):
    import pyabf

    source = abf_dir / "05210017_vc_abf1.abf"  # episodic, 2 int16 channels, 6 sweeps x 60000
    data = source.read_bytes()
    full = minidet.load(source, channel=1)
    start = pyabf.ABF(str(source), loadData=False).dataByteStart
    cut = tmp_path / "cut.abf"
    cut.write_bytes(data[: start + 2 * 2 * 270_000 - 3])  # the 270000th frame is cut in the middle
    with pytest.warns(TruncatedFileWarning, match=r"ends at sample 269999 \(t = 13\.5000 s\) of the 360000"):
        part = minidet.load(cut, channel=1, lazy=lazy)
    assert part.n_samples == 269_999 and part.n_sweeps == 5  # the fifth sweep is short
    assert part.metadata["truncated_at_sample"] == 269_999  # results files say so
    np.testing.assert_array_equal(np.asarray(part.samples), full.samples[:269_999])
    with pytest.warns(TruncatedFileWarning):
        with pytest.raises(minidet.errors.SweepError, match="sweep 5 does not exist"):
            minidet.load(cut, sweeps="5")
    header_only = tmp_path / "header.abf"
    header_only.write_bytes(data[:3000])
    with pytest.raises(CorruptFileError, match="no complete sample|damaged"):
        minidet.load(header_only, lazy=lazy)


def test_truncated_npy(tmp_path):
    x = np.arange(10_000, dtype=np.float64)
    path = tmp_path / "x.npy"
    np.save(path, x)
    data = path.read_bytes()
    cut = tmp_path / "cut.npy"
    cut.write_bytes(data[: len(data) - 8 * 2500 - 5])
    for lazy in (False, True):
        with pytest.warns(TruncatedFileWarning, match=r"ends at sample 7499 \(t = 0\.7499 s\) of the 10000"):
            rec = minidet.load(cut, sampling_rate=10_000, lazy=lazy)
        np.testing.assert_array_equal(np.asarray(rec.samples), x[:7499])
        assert rec.metadata["truncated_at_sample"] == 7499
    np.save(path, x.reshape(10, 1000))
    cut.write_bytes(path.read_bytes()[:-1500 * 8])
    with pytest.warns(TruncatedFileWarning, match="ends at sample 8000"):
        rec = minidet.load(cut, sampling_rate=10_000, lazy=True)
    assert rec.n_sweeps == 8
    cut.write_bytes(path.read_bytes()[:130])
    with pytest.raises(CorruptFileError, match="truncated"):
        minidet.load(cut, sampling_rate=10_000)


def test_hdf5_cut_off_or_never_finished(tmp_path):
    x = np.arange(100_000, dtype=np.float32)
    path = tmp_path / "x.h5"
    with h5py.File(path, "w") as h5:
        h5.create_dataset("trace", data=x, chunks=(10_000,)).attrs["sampling_rate"] = 10_000.0
    cut = tmp_path / "cut.h5"
    cut.write_bytes(path.read_bytes()[:200_000])
    with pytest.raises(CorruptFileError, match="is truncated"):
        minidet.load(cut)
    # a writer that stopped after 4 of 10 chunks: the rest would read as zeros
    unfinished = tmp_path / "unfinished.h5"
    with h5py.File(unfinished, "w") as h5:
        ds = h5.create_dataset("trace", shape=(100_000,), dtype=np.float32, chunks=(10_000,))
        ds[:40_000] = x[:40_000]
        ds.attrs["sampling_rate"] = 10_000.0
    for lazy in (False, True):
        with pytest.warns(TruncatedFileWarning, match=r"ends at sample 40000 \(t = 4\.0000 s\)"):
            rec = minidet.load(unfinished, lazy=lazy)
        np.testing.assert_array_equal(np.asarray(rec.samples), x[:40_000])
        assert rec.metadata["truncated_at_sample"] == 40_000
    with h5py.File(tmp_path / "empty.h5", "w") as h5:
        h5.create_dataset("trace", shape=(1000,), dtype=np.float32).attrs["sampling_rate"] = 10_000.0
    with pytest.raises(CorruptFileError, match="ever written"):
        minidet.load(tmp_path / "empty.h5")


def test_nwb_lazy(tmp_path):
    pytest.importorskip("pynwb")
    from test_hdf5_text_nwb import _trace, _write_nwb

    path = tmp_path / "rec.nwb"
    _write_nwb(path, {"vc0": _trace(4000), "vc1": _trace(4000, seed=2)})
    for options in (dict(dataset="vc1"), dict(dataset="vc0", scale=1e15, unit="fA", skip_start_s=0.01)):
        _same(minidet.load(path, lazy=True, **options), minidet.load(path, lazy=False, **options))


def test_file_cut_after_a_lazy_load_is_a_clear_error(tmp_path):
    path = tmp_path / "x.npy"
    np.save(path, np.arange(50_000, dtype=np.float32))
    rec = minidet.load(path, sampling_rate=1000, lazy=True)
    np.testing.assert_array_equal(rec.read(49_000, 50_000), np.arange(49_000, 50_000))
    with open(path, "r+b") as fh:
        fh.truncate(1000)
    with pytest.raises(CorruptFileError, match="ended while reading"):
        rec.read(49_000, 50_000)


def test_long_time_value_npy_checks_its_time_column_piece_by_piece(tmp_path, monkeypatch):
    import minidet.io.text as text

    monkeypatch.setattr(text, "LAZY_THRESHOLD", 1000)  # "long" from 1000 rows on
    n = 1_500_000  # more than the 2**20 steps of the first piece
    pairs = np.column_stack([np.arange(n) / 10_000.0, np.arange(n) % 7])
    np.save(tmp_path / "p.npy", pairs)
    rec = minidet.load(tmp_path / "p.npy", lazy=True)
    assert rec.sampling_rate == pytest.approx(10_000.0, rel=1e-9)
    np.testing.assert_array_equal(rec.read(n - 10, n), pairs[n - 10:, 1])
    pairs[1_400_000:, 0] += 0.5  # a jump after the first piece
    np.save(tmp_path / "p.npy", pairs)
    with pytest.raises(CorruptFileError, match="not evenly spaced"):
        minidet.load(tmp_path / "p.npy", lazy=True)
