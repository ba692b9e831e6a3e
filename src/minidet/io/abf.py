"""Axon ABF 1 and 2 (gap-free and episodic), read with pyabf."""

from __future__ import annotations

import os
import warnings

import numpy as np

from ..errors import CorruptFileError
from .base import ChannelInfo, FileInfo, RangeFile, ReadOptions, SweepSource, pick_channel, warn_truncated

EXTENSIONS = (".abf",)


def sniff(path: str) -> bool:
    """ABF1 files start with ``ABF `` and ABF2 files with ``ABF2``."""
    with open(path, "rb") as fh:
        return fh.read(4) in (b"ABF ", b"ABF2")


def _open(path: str):
    """The ABF header (pyabf, without the samples)."""
    import pyabf

    with open(path, "rb") as fh:
        signature = fh.read(4)
    if signature not in (b"ABF ", b"ABF2"):
        raise CorruptFileError(f"{path} is not an ABF file (its first bytes are {signature!r})")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            abf = pyabf.ABF(path, loadData=False)
    except Exception as exc:  # pyabf raises many kinds on damaged headers
        raise CorruptFileError(f"{path} is damaged or truncated: pyabf cannot read its header ({exc})") from None
    return abf


class _DataSection:
    """Where one channel's samples lie in an ABF data section, read piece by piece.

    The data section holds ``dataPointCount`` values of ``abf._dtype`` from byte
    ``dataByteStart``, channels interleaved sample by sample and sweeps back to back (as
    pyabf reads them). int16 values become ``float32(raw) * gain + offset`` in float32, the
    operations pyabf's ``_loadAndScaleData`` applies, so the samples are bit-identical to
    ``pyabf.ABF(path).data[channel]``.
    """

    def __init__(self, abf, path: str, index: int) -> None:
        self.path = path
        self.index = index
        self.dtype = np.dtype(abf._dtype)
        self.n_channels = int(abf.channelCount)
        self.start = int(abf.dataByteStart)
        self.points = int(abf.sweepPointCount)
        self.n_sweeps_header = int(abf.sweepCount)
        self.frame_bytes = self.dtype.itemsize * self.n_channels
        frames_header = int(abf.dataPointCount) // self.n_channels
        # pyabf reshapes all of the section into sweeps; only whole sweeps count
        self.frames_header = min(frames_header, self.points * self.n_sweeps_header)
        size = os.path.getsize(path)
        self.frames = max(0, min(self.frames_header, (size - self.start) // self.frame_bytes))
        self.scaled = self.dtype == np.int16
        self.gain = abf._dataGain[index]
        self.offset = abf._dataOffset[index]
        self.file = RangeFile(path)

    @property
    def truncated(self) -> bool:
        return self.frames < self.frames_header

    @property
    def n_sweeps(self) -> int:
        return -(-self.frames // self.points) if self.points else 0

    def sweep_length(self, sweep: int) -> int:
        return max(0, min(self.points, self.frames - sweep * self.points))

    def read_range(self, sweep: int, a: int, b: int) -> np.ndarray:
        first = sweep * self.points + a
        count = b - a
        raw = self.file.read(self.start + first * self.frame_bytes, self.dtype, count * self.n_channels)
        data = raw.reshape(count, self.n_channels)[:, self.index].astype(np.float32)
        if self.scaled:
            data[:] = np.multiply(data, self.gain)
            data[:] = np.add(data, self.offset)
        return data

    def read_sweep(self, sweep: int) -> np.ndarray:
        return self.read_range(sweep, 0, self.sweep_length(sweep))


def _mode(abf) -> str:
    mode = getattr(abf, "nOperationMode", None)
    return {1: "event-driven (variable length)", 2: "oscilloscope", 3: "gap-free", 4: "high-speed oscilloscope",
            5: "episodic"}.get(mode, "unknown mode")


def _truncation(section: "_DataSection", rate: float) -> str:
    return (f"its data section ends at sample {section.frames} (t = {section.frames / rate:.4f} s) "
            f"of the {section.frames_header} its header announces")


def describe(path: str, options: ReadOptions) -> FileInfo:
    abf = _open(path)
    section = _DataSection(abf, path, 0)
    if section.truncated:
        # `info` reports a damaged file as an error; `load` reads the part before the cut
        raise CorruptFileError(
            f"{path} is truncated: {_truncation(section, float(abf.sampleRate))} "
            "(minidet load/detect read the samples before that, with a warning)"
        )
    channels = [ChannelInfo(i, n, u) for i, (n, u) in enumerate(zip(abf.adcNames, abf.adcUnits))]
    rate = float(abf.sampleRate)
    return FileInfo(
        path=path,
        file_format=f"Axon ABF {abf.abfVersionString} ({_mode(abf)})",
        channels=channels,
        n_sweeps=int(abf.sweepCount),
        sweep_length_samples=int(abf.sweepPointCount),
        sampling_rate=rate,
        duration_s=abf.sweepCount * abf.sweepPointCount / rate,
        notes=[f"protocol: {abf.protocol}"] if getattr(abf, "protocol", None) else [],
    )


def open_source(path: str, options: ReadOptions) -> SweepSource:
    abf = _open(path)
    index = pick_channel(options.channel, list(abf.adcNames))
    section = _DataSection(abf, path, index)
    rate = float(abf.sampleRate)
    if section.frames == 0:
        raise CorruptFileError(
            f"{path} is truncated: its data section (from byte {section.start}) holds no complete sample"
        )
    if section.truncated:
        warn_truncated(path, "its data section", section.frames, section.frames_header, rate)

    return SweepSource(
        n_sweeps=section.n_sweeps,
        read_sweep=section.read_sweep,
        sampling_rate=rate,
        unit=abf.adcUnits[index] or None,
        channel=abf.adcNames[index],
        file_format=f"abf{abf.abfVersionString.split('.')[0]}",
        metadata={"abf_version": abf.abfVersionString, "protocol": getattr(abf, "protocol", "")},
        sweep_length=section.sweep_length,
        read_range=section.read_range,
    )
