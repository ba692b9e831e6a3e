"""Every other format neo reads (WinWCP, Igor, AxoGraph, Spike2, Stimfit, ...).

neo gives one Block with one Segment per sweep; each Segment's AnalogSignals hold channels.
neo's PickleIO is never used (minidet never unpickles), and formats minidet reads itself
(ABF, NWB) are not routed here.
"""

from __future__ import annotations

import os
import warnings

import numpy as np

from ..errors import ChannelError, CorruptFileError, UnknownFormatError
from .base import ChannelInfo, FileInfo, ReadOptions, SweepSource, pick_channel

#: extensions of neo formats that minidet names (neo reads more: any other extension is looked up in neo)
EXTENSIONS = (".wcp", ".ibw", ".pxp", ".axgd", ".axgx", ".smr", ".smrx", ".edf", ".mat")

# neo IO classes minidet must not use: pickles, and formats with a dedicated reader here.
_EXCLUDED = {"PickleIO", "NWBIO", "AxonIO", "ExampleIO"}


def _io_class(path: str):
    import neo

    ext = os.path.splitext(path)[1].lower().lstrip(".")
    for cls in neo.io.iolist:
        if cls.__name__ in _EXCLUDED:
            continue
        if ext and ext in [e.lower() for e in getattr(cls, "extensions", [])]:
            return cls
    return None


def can_read(path: str) -> bool:
    return _io_class(path) is not None


def _read_block(path: str):
    cls = _io_class(path)
    if cls is None:
        raise UnknownFormatError(f"no reader for {path}")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            reader = cls(filename=path)
            if hasattr(reader, "read_block"):
                block = reader.read_block(lazy=False)
            else:
                block = reader.read()[0]
    except Exception as exc:
        raise CorruptFileError(f"neo's {cls.__name__} cannot read {path} (damaged or unsupported variant?): {exc}") \
            from None
    return cls.__name__, block


def _channels(segment) -> list[tuple[int, int, str, str]]:
    """(signal index, column, name, unit) for every channel in a segment."""
    out = []
    for si, sig in enumerate(segment.analogsignals):
        names = None
        ann = getattr(sig, "array_annotations", {}) or {}
        if "channel_names" in ann:
            names = [str(n) for n in ann["channel_names"]]
        for col in range(sig.shape[1]):
            name = names[col] if names and col < len(names) else (sig.name or f"signal{si}") + (
                f"[{col}]" if sig.shape[1] > 1 else "")
            out.append((si, col, name, sig.units.dimensionality.string))
    return out


def describe(path: str, options: ReadOptions) -> FileInfo:
    io_name, block = _read_block(path)
    if not block.segments or not block.segments[0].analogsignals:
        raise ChannelError(f"{path} holds no analog signals")
    seg = block.segments[0]
    chans = _channels(seg)
    sig = seg.analogsignals[0]
    rate = float(sig.sampling_rate.rescale("Hz").magnitude)
    lengths = {s.analogsignals[0].shape[0] for s in block.segments if s.analogsignals}
    length = lengths.pop() if len(lengths) == 1 else None
    total = sum(s.analogsignals[0].shape[0] for s in block.segments if s.analogsignals)
    return FileInfo(
        path=path,
        file_format=f"{io_name.removesuffix('IO')} (via neo)",
        channels=[ChannelInfo(i, name, unit) for i, (_, _, name, unit) in enumerate(chans)],
        n_sweeps=len(block.segments),
        sweep_length_samples=length,
        sampling_rate=rate,
        duration_s=total / rate,
    )


def open_source(path: str, options: ReadOptions) -> SweepSource:
    io_name, block = _read_block(path)
    segments = [s for s in block.segments if s.analogsignals]
    if not segments:
        raise ChannelError(f"{path} holds no analog signals")
    chans = _channels(segments[0])
    index = pick_channel(options.channel, [c[2] for c in chans])
    si, col, name, unit = chans[index]
    rate = float(segments[0].analogsignals[si].sampling_rate.rescale("Hz").magnitude)

    def read_sweep(i: int) -> np.ndarray:
        sig = segments[i].analogsignals[si]
        return np.asarray(sig.magnitude[:, col], dtype=np.float64)

    return SweepSource(
        n_sweeps=len(segments),
        read_sweep=read_sweep,
        sampling_rate=rate,
        unit=unit or None,
        channel=name,
        file_format=io_name.removesuffix("IO").lower(),
        metadata={"neo_io": io_name},
    )
