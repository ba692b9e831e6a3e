"""Axon ABF 1 and 2 (gap-free and episodic), read with pyabf."""

from __future__ import annotations

import os
import warnings

import numpy as np

from ..errors import CorruptFileError
from .base import ChannelInfo, FileInfo, ReadOptions, SweepSource, pick_channel

EXTENSIONS = (".abf",)


def sniff(path: str) -> bool:
    """ABF1 files start with ``ABF `` and ABF2 files with ``ABF2``."""
    with open(path, "rb") as fh:
        return fh.read(4) in (b"ABF ", b"ABF2")


def _open(path: str):
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
    # pyabf does not check that the data section is all there; a truncated file would be
    # read short or padded, so compare with the file's size before reading any samples.
    expected = abf.dataByteStart + abf.dataPointCount * abf.dataPointByteSize
    size = os.path.getsize(path)
    if size < expected:
        raise CorruptFileError(
            f"{path} is truncated: its data section needs {expected} bytes, the file has {size}"
        )
    return abf


def _mode(abf) -> str:
    mode = getattr(abf, "nOperationMode", None)
    return {1: "event-driven (variable length)", 2: "oscilloscope", 3: "gap-free", 4: "high-speed oscilloscope",
            5: "episodic"}.get(mode, "unknown mode")


def describe(path: str, options: ReadOptions) -> FileInfo:
    abf = _open(path)
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
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            import pyabf

            abf = pyabf.ABF(path, loadData=True)
    except Exception as exc:
        raise CorruptFileError(f"{path} is damaged: pyabf cannot read its data ({exc})") from None
    # abf.data holds every sweep of a channel back to back, already scaled to the ADC unit.
    data = np.asarray(abf.data[index])
    points = int(abf.sweepPointCount)

    def read_sweep(i: int) -> np.ndarray:
        return data[i * points : (i + 1) * points]

    return SweepSource(
        n_sweeps=int(abf.sweepCount),
        read_sweep=read_sweep,
        sampling_rate=float(abf.sampleRate),
        unit=abf.adcUnits[index] or None,
        channel=abf.adcNames[index],
        file_format=f"abf{abf.abfVersionString.split('.')[0]}",
        metadata={"abf_version": abf.abfVersionString, "protocol": getattr(abf, "protocol", "")},
    )
