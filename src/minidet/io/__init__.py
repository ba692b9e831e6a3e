"""Reading recordings: one entry point, :func:`load`, dispatching on the file type.

Formats: Axon ABF 1/2 (pyabf), HDF5 (h5py), NWB (pynwb), .npy, text tables, HEKA PatchMaster
bundles (myokit, optional), and everything else neo reads. Every reader takes the same options (:class:`ReadOptions`). ABF, HDF5 and
.npy recordings can be read on demand (``lazy``), so hour-long ones fit in little memory.
"""

from __future__ import annotations

import os
from typing import Any, Callable

from ..errors import CorruptFileError, RecordingNotFoundError, UnknownFormatError
from ..recording import Recording
from . import abf, hdf5, heka, neo_reader, nwb, text
from .base import READER_KEYS, FileInfo, ReadOptions, SweepSource, build_recording, parse_sweeps, pick_channel

__all__ = ["load", "describe", "ReadOptions", "FileInfo", "parse_sweeps", "detect_format", "READER_KEYS",
           "RECORDING_EXTENSIONS", "FOLDER_EXTENSIONS"]

#: every file extension minidet reads a recording from by name (the analysis app's file list)
RECORDING_EXTENSIONS = (abf.EXTENSIONS + hdf5.EXTENSIONS + nwb.EXTENSIONS + text.NPY_EXTENSIONS + heka.EXTENSIONS
                        + neo_reader.EXTENSIONS + text.TEXT_EXTENSIONS)
#: names other programs use for other files too: read when named or globbed, but not picked up
#: when a folder is searched (folders often hold notes, CSV tables and other .dat/.mat files)
_NOT_FROM_FOLDERS = text.TEXT_EXTENSIONS + (".dat", ".mat")
#: the file types a folder search picks up (``minidet batch``)
FOLDER_EXTENSIONS = tuple(e for e in RECORDING_EXTENSIONS if e not in _NOT_FROM_FOLDERS)


def _check_path(path: str | os.PathLike) -> str:
    path = os.fspath(path)
    if not os.path.exists(path):
        raise RecordingNotFoundError(f"no such file: {path}")
    if os.path.isdir(path):
        raise UnknownFormatError(f"{path} is a folder, not a recording file")
    if os.path.getsize(path) == 0:
        raise CorruptFileError(f"{path} is empty (0 bytes)")
    return path


def detect_format(path: str) -> str:
    """Name of the reader for ``path``: 'abf', 'nwb', 'hdf5', 'npy', 'heka', 'text' or 'neo'."""
    ext = os.path.splitext(path)[1].lower()
    with open(path, "rb") as fh:
        head = fh.read(8)
    if ext in abf.EXTENSIONS or head[:4] in (b"ABF ", b"ABF2"):
        return "abf"
    if head == b"\x89HDF\r\n\x1a\n":
        if ext in nwb.EXTENSIONS:
            return "nwb"
        if ext in hdf5.EXTENSIONS:
            return "hdf5"
        return "nwb" if _looks_like_nwb(path) else "hdf5"
    if ext in nwb.EXTENSIONS or ext in hdf5.EXTENSIONS:
        raise CorruptFileError(f"{path} does not start with the HDF5 signature: not HDF5/NWB, or damaged")
    if ext in text.NPY_EXTENSIONS or head[:6] == b"\x93NUMPY":
        return "npy"
    if ext in heka.EXTENSIONS and head[:4] in heka.SIGNATURES:
        return "heka"
    if neo_reader.can_read(path) and ext not in text.TEXT_EXTENSIONS:
        return "neo"
    if ext in text.TEXT_EXTENSIONS:
        return "text"
    raise UnknownFormatError(
        f"cannot tell the format of {path}: minidet reads .abf, .h5/.hdf5, .nwb, .npy, .csv/.txt, HEKA .dat and "
        "the formats neo reads (e.g. WinWCP .wcp, Igor .ibw/.pxp, AxoGraph .axgd, Spike2 .smr)"
    )


def _looks_like_nwb(path: str) -> bool:
    import h5py

    try:
        with h5py.File(path, "r") as h5:
            return "nwb_version" in h5.attrs
    except OSError:
        return False


_OPENERS: dict[str, Callable[[str, ReadOptions], SweepSource]] = {
    "abf": abf.open_source,
    "hdf5": hdf5.open_source,
    "nwb": nwb.open_source,
    "npy": text.open_npy,
    "heka": heka.open_source,
    "text": text.open_text,
    "neo": neo_reader.open_source,
}
_DESCRIBERS: dict[str, Callable[[str, ReadOptions], FileInfo]] = {
    "abf": abf.describe,
    "hdf5": hdf5.describe,
    "nwb": nwb.describe,
    "npy": text.describe_npy,
    "heka": heka.describe,
    "text": text.describe_text,
    "neo": neo_reader.describe,
}


def _options(options: dict[str, Any]) -> ReadOptions:
    known = set(ReadOptions.__dataclass_fields__)
    unknown = set(options) - known
    if unknown:
        raise TypeError(f"unknown reader option(s): {', '.join(sorted(unknown))}; known: {', '.join(sorted(known))}")
    return ReadOptions(**options)


def load(path: str | os.PathLike, **options: Any) -> Recording:
    """Read one channel of a recording file into a :class:`~minidet.recording.Recording`.

    Parameters
    ----------
    path
        The file. Its type is found from the extension and the first bytes.
    channel, sweeps, skip_start_s, dataset, sampling_rate, scale, unit, lazy
        See :class:`ReadOptions`. ``lazy=True`` reads the samples on demand (ABF, HDF5, .npy;
        other formats are read into memory); the default does so for traces longer than
        :data:`~minidet.io.base.LAZY_THRESHOLD` samples.

    A file that ends before its header says (an acquisition that crashed) gives the samples
    before the cut with a :class:`~minidet.io.base.TruncatedFileWarning` naming the sample
    where they end, or a :class:`CorruptFileError` where no part can be read.

    Raises
    ------
    RecordingNotFoundError, UnknownFormatError, CorruptFileError, ChannelError, SweepError,
    EmptyTraceError, NaNTraceError, ParameterError
    """
    opts = _options(options)
    path = _check_path(path)
    kind = detect_format(path)
    source = _OPENERS[kind](path, opts)
    return build_recording(source, opts, path)


def describe(path: str | os.PathLike, **options: Any) -> FileInfo:
    """What a file holds (format, channels with units, sweeps, sampling rate, duration)."""
    opts = _options(options)
    path = _check_path(path)
    info = _DESCRIBERS[detect_format(path)](path, opts)
    # Options given to `info` are checked against what the file holds, so a wrong channel or
    # sweep is reported here as it would be by `load`.
    if opts.channel is not None and info.channels:
        pick_channel(opts.channel, [c.name for c in info.channels])
    if opts.sweeps is not None:
        parse_sweeps(opts.sweeps, info.n_sweeps)
    return info
