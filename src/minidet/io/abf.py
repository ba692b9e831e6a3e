"""Axon ABF 1 and 2 (gap-free and episodic): the header read with pyabf, the samples read
from the data section directly (piece by piece when asked), scaled as pyabf scales them.
:class:`Abf1Writer` streams a one-channel gap-free ABF1 file (used by the simulator)."""

from __future__ import annotations

import math
import os
import warnings

import numpy as np

from ..errors import CorruptFileError, ParameterError
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
        metadata={"abf_version": abf.abfVersionString, "protocol": getattr(abf, "protocol", ""),
                  **({"truncated_at_sample": section.frames} if section.truncated else {})},
        sweep_length=section.sweep_length,
        read_range=section.read_range,
        close=section.file.close,
    )


# ----------------------------------------------------------------------------- writing
_ABF1_BLOCK = 512
_ABF1_HEADER_BLOCKS = 12  # 6144 bytes: the extended ABF 1.8 header
_ABF1_RESOLUTION = 32768
_ABF1_RANGE = 10.0


def abf1_gain(scale_factor: float) -> tuple[float, float]:
    """``(fInstrumentScaleFactor, gain)``: the header value that stores a step of about
    ``scale_factor`` units per int16 count, and the exact step pyabf computes from it
    (``fADCRange / (fInstrumentScaleFactor * lADCResolution)`` with the float32 header value)."""
    import struct

    if not math.isfinite(scale_factor) or scale_factor <= 0:
        raise ParameterError(f"the int16 step must be a positive number, got {scale_factor!r}")
    factor = struct.unpack("<f", struct.pack("<f", _ABF1_RANGE / (_ABF1_RESOLUTION * scale_factor)))[0]
    gain = 1
    gain /= factor
    gain /= 1.0  # fSignalGain
    gain /= 1.0  # fADCProgrammableGain
    gain *= struct.unpack("<f", struct.pack("<f", _ABF1_RANGE))[0]
    gain /= _ABF1_RESOLUTION
    return factor, gain


class Abf1Writer:
    """Write a one-channel gap-free ABF1 file (int16 samples) block by block.

    The header says how many samples follow, so give ``n_samples`` first; then
    :meth:`write` int16 blocks (``raw * gain + offset`` is the value, with ``gain`` from
    :func:`abf1_gain` and ``offset`` stored as float32) and :meth:`close`. pyabf, neo and
    Clampfit read the result; the sampling interval is stored in float32 microseconds, so
    only rates that survive that round trip (50 kHz, 20 kHz, 10 kHz ...) are accepted.
    """

    def __init__(self, fh, n_samples: int, sampling_rate: float, unit: str, scale_factor: float,
                 offset: float = 0.0, channel: str = "simulated") -> None:
        import struct

        n = int(n_samples)
        if not 0 < n < 2**31:
            raise ParameterError(f"an ABF1 file holds 1 to 2**31 - 1 samples, not {n_samples!r}")
        interval = struct.unpack("<f", struct.pack("<f", 1e6 / sampling_rate))[0]
        if int(1e6 / interval) != sampling_rate:
            raise ParameterError(
                f"ABF1 stores the sampling interval as float32 microseconds, and {sampling_rate:g} Hz does not "
                "survive that (pyabf would read another rate); write HDF5 instead, or use e.g. 50000 or 20000 Hz"
            )
        factor, self.gain = abf1_gain(scale_factor)
        self.offset = float(np.float32(offset))
        header = bytearray(_ABF1_HEADER_BLOCKS * _ABF1_BLOCK)
        pack = struct.pack_into
        pack("<4s", header, 0, b"ABF ")
        pack("<f", header, 4, 1.83)  # fFileVersionNumber
        pack("<h", header, 8, 3)  # nOperationMode: gap-free
        pack("<i", header, 10, n)  # lActualAcqLength
        pack("<i", header, 16, 1)  # lActualEpisodes
        pack("<i", header, 40, _ABF1_HEADER_BLOCKS)  # lDataSectionPtr (blocks)
        pack("<h", header, 100, 0)  # nDataFormat: int16
        pack("<h", header, 120, 1)  # nADCNumChannels
        pack("<f", header, 122, interval)  # fADCSampleInterval (us)
        pack("<i", header, 138, min(n, 8192))  # lNumSamplesPerEpisode (acquisition buffer)
        pack("<f", header, 244, _ABF1_RANGE)  # fADCRange
        pack("<i", header, 252, _ABF1_RESOLUTION)  # lADCResolution
        pack("<16h", header, 378, *range(16))  # nADCPtoLChannelMap
        pack("<16h", header, 410, 0, *([-1] * 15))  # nADCSamplingSeq
        pack("<10s", header, 442, channel.encode("ascii", "replace")[:10].ljust(10))
        pack("<8s", header, 602, unit.encode("ascii", "replace")[:8].ljust(8))
        pack("<16f", header, 730, *([1.0] * 16))  # fADCProgrammableGain
        pack("<16f", header, 922, *([factor] * 16))  # fInstrumentScaleFactor
        pack("<16f", header, 986, *([self.offset] * 16))  # fInstrumentOffset
        pack("<16f", header, 1050, *([1.0] * 16))  # fSignalGain
        fh.write(header)
        self._fh = fh
        self._left = n
        self._written = 0

    def write(self, raw: np.ndarray) -> None:
        raw = np.asarray(raw)
        if raw.dtype != np.int16 or raw.ndim != 1:
            raise ParameterError("ABF1 blocks must be 1-D int16 arrays")
        if raw.size > self._left:
            raise ParameterError(f"{raw.size} samples are more than the {self._left} the header has room for")
        self._fh.write(raw.astype("<i2", copy=False).tobytes())
        self._left -= raw.size
        self._written += raw.size

    def close(self) -> None:
        if self._left:
            raise ParameterError(f"{self._left} samples announced in the header were not written")
        pad = (-2 * self._written) % _ABF1_BLOCK
        self._fh.write(b"\0" * pad)
