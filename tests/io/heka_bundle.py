"""Write a small HEKA PatchMaster bundle (``.dat``) for the tests, byte by byte.

No public PatchMaster file can be fetched here, so the tests build one with exactly the
fields myokit's reader (``myokit.formats.heka.PatchMasterFile``, checked with myokit 1.39)
looks at; every other byte is zero. The layout, all little endian:

* **Bundle header**, 256 bytes: ``DAT2`` padded to 8 bytes (signature), the version string
  at byte 8 (32 bytes; :data:`VERSION`, ``v2x90.2``: a PatchMaster 2x90 bundle, the version
  myokit is tested on), the time at 40 (float64, seconds since 1990), the item count at 48
  (int32), ``IsLittleEndian`` at 52 (1), and from byte 64 twelve bundle items of 16 bytes:
  start (int32), length (int32) and extension (8 chars). Three items are used: ``.dat``
  (the samples, from byte 256 as in PatchMaster's bundles), ``.pul`` (the pulsed tree) and
  ``.pgf`` (the stimulus tree, which myokit needs to finish reading a series).
* **Samples**: every trace of every sweep is one run of little-endian int16 values
  (``TrDataFormat`` 0); the trace record holds its absolute byte offset in the bundle.
* **Trees** (``.pul`` and ``.pgf``): the magic ``eerT`` (little endian), the number of
  levels (int32) and one record size per level (int32 each), then every node depth first:
  its record (the record size of its level), the number of its children (int32), its
  children. Pulsed tree levels and record sizes (PatchMaster v9 files): root 640, group
  144, series 1408, sweep 288, trace 512. Stimulus tree: root 584, stimulation 248,
  channel 400, segment 80.
* Fields written (byte offsets in the record): root: version name at 8, start time at 520;
  group: label at 4, experiment number at 116; series: label at 4, amplifier-state offset
  124 and amplifier-state series 128 (both 0: no amplifier state), time at 136; sweep: label
  at 4, stimulation number at 40 (1-based index into the stimulus tree), time at 48; trace:
  label at 4, trace id at 36, data offset at 40, sample count at 44, recording mode at 68,
  data format at 70, data scaler at 72 (units per int16 count), time offset 80, zero data 88,
  y unit at 96, sampling interval (s) at 104, x start at 112, x unit (``s``) at 120,
  interleave size and skip at 292 and 296 (0: not interleaved). Stimulation: name at 4,
  sampling interval at 112, sweep interval at 120, number of sweeps at 144; its one channel:
  amplifier mode at 25 (1, voltage clamp), DAC unit ``V`` at 40, holding at 48,
  ``StimToDacID`` at 76 (bit 0 set: standard conversion), zero segment at 88 (0); its one
  segment: a stored constant segment (class 0, store kind 1 at 4-5) at the holding potential
  whose duration (at 36) covers the sweep, delta factors 1 and increments 0.

A trace's value is ``int16 * scale`` in its unit (A or V); myokit reads it the same way.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

VERSION = "v2x90.2, 14-Nov-2016"
#: seconds between 1990-01-01 and 2024-01-01: a plausible acquisition time
TIME_1990 = 1_072_915_200.0

_PUL_SIZES = (640, 144, 1408, 288, 512)
_PGF_SIZES = (584, 248, 400, 80)


@dataclass
class TraceSpec:
    label: str
    unit: str  # "A" or "V" (or anything myokit can parse)
    raw: np.ndarray  # int16 samples
    scale: float  # units per int16 count


@dataclass
class SeriesSpec:
    label: str
    sweeps: list[list[TraceSpec]]  # sweeps -> traces
    interval_s: float  # sampling interval


@dataclass
class GroupSpec:
    label: str
    series: list[SeriesSpec] = field(default_factory=list)


def _record(size: int) -> bytearray:
    return bytearray(size)


def _put_str(rec: bytearray, offset: int, text: str, size: int) -> None:
    data = text.encode("latin-1")[: size - 1]
    rec[offset:offset + len(data)] = data


def _tree(root: tuple[bytes, list], sizes: tuple[int, ...]) -> bytes:
    """A tree as myokit's ``TreeNode.read`` reads it; a node is ``(record, children)``."""
    out = bytearray(b"eerT")
    out += struct.pack("<i", len(sizes))
    out += struct.pack(f"<{len(sizes)}i", *sizes)

    def walk(node: tuple[bytes, list], depth: int) -> None:
        record, children = node
        assert len(record) == sizes[depth]
        out.extend(record)
        out.extend(struct.pack("<i", len(children)))
        for child in children:
            walk(child, depth + 1)

    walk(root, 0)
    return bytes(out)


def _stimulation(series: SeriesSpec) -> tuple[bytes, list]:
    n = max(len(t.raw) for sweep in series.sweeps for t in sweep)
    st = _record(_PGF_SIZES[1])
    _put_str(st, 4, series.label, 32)
    struct.pack_into("<d", st, 112, series.interval_s)
    struct.pack_into("<d", st, 120, 0.0)  # sweep interval
    struct.pack_into("<i", st, 144, len(series.sweeps))
    ch = _record(_PGF_SIZES[2])
    struct.pack_into("<b", ch, 25, 1)  # voltage clamp
    _put_str(ch, 40, "V", 8)
    struct.pack_into("<d", ch, 48, -0.07)  # holding, V
    ch[76] = 1  # StimToDacID bit 0: standard conversion
    struct.pack_into("<i", ch, 88, 0)
    seg = _record(_PGF_SIZES[3])
    struct.pack_into("<bbbb", seg, 4, 0, 1, 0, 0)  # constant, stored, increase, increase
    struct.pack_into("<d", seg, 8, -0.07)
    struct.pack_into("<i", seg, 16, 1)  # value from holding
    struct.pack_into("<d", seg, 20, 1.0)
    struct.pack_into("<d", seg, 36, n * series.interval_s)
    struct.pack_into("<d", seg, 48, 1.0)
    return bytes(st), [(bytes(ch), [(bytes(seg), [])])]


def write_bundle(path: Path | str, groups: list[GroupSpec], version: str = VERSION) -> Path:
    """Write ``groups`` as a PatchMaster bundle at ``path`` (see the module docstring)."""
    path = Path(path)
    header = bytearray(256)
    # samples: one int16 run per trace, from byte 256
    data = bytearray()
    offsets: dict[int, int] = {}
    for group in groups:
        for series in group.series:
            for sweep in series.sweeps:
                for trace in sweep:
                    raw = np.asarray(trace.raw)
                    if raw.dtype != np.int16:
                        raise ValueError("trace samples must be int16")
                    offsets[id(trace)] = 256 + len(data)
                    data += raw.astype("<i2").tobytes()
    data += bytes((-len(data)) % 16)

    # stimulus tree: one stimulation per series, in file order
    stimulations = []
    stim_index: dict[int, int] = {}
    for group in groups:
        for series in group.series:
            stim_index[id(series)] = len(stimulations) + 1
            stimulations.append(_stimulation(series))
    pgf_root = _record(_PGF_SIZES[0])
    _put_str(pgf_root, 8, version, 32)
    pgf = _tree((bytes(pgf_root), stimulations), _PGF_SIZES)

    # pulsed tree
    pul_root = _record(_PUL_SIZES[0])
    _put_str(pul_root, 8, version, 32)
    struct.pack_into("<d", pul_root, 520, TIME_1990)
    group_nodes = []
    for gi, group in enumerate(groups):
        grec = _record(_PUL_SIZES[1])
        _put_str(grec, 4, group.label, 32)
        struct.pack_into("<i", grec, 116, gi + 1)
        series_nodes = []
        for si, series in enumerate(group.series):
            srec = _record(_PUL_SIZES[2])
            _put_str(srec, 4, series.label, 32)
            struct.pack_into("<ii", srec, 124, 0, 0)  # no amplifier state
            struct.pack_into("<d", srec, 136, TIME_1990 + 60.0 * si)
            sweep_nodes = []
            t = TIME_1990 + 60.0 * si
            for wi, sweep in enumerate(series.sweeps):
                wrec = _record(_PUL_SIZES[3])
                _put_str(wrec, 4, f"sweep {wi + 1}", 32)
                struct.pack_into("<i", wrec, 40, stim_index[id(series)])
                struct.pack_into("<d", wrec, 48, t)
                t += max(len(tr.raw) for tr in sweep) * series.interval_s
                trace_nodes = []
                for ti, trace in enumerate(sweep):
                    trec = _record(_PUL_SIZES[4])
                    _put_str(trec, 4, trace.label, 32)
                    struct.pack_into("<i", trec, 36, ti + 1)
                    struct.pack_into("<ii", trec, 40, offsets[id(trace)], len(trace.raw))
                    struct.pack_into("<b", trec, 68, 3)  # recording mode: voltage clamp
                    struct.pack_into("<b", trec, 70, 0)  # int16
                    struct.pack_into("<d", trec, 72, trace.scale)
                    struct.pack_into("<dd", trec, 80, 0.0, 0.0)  # time offset, zero data
                    _put_str(trec, 96, trace.unit, 8)
                    struct.pack_into("<dd", trec, 104, series.interval_s, 0.0)
                    _put_str(trec, 120, "s", 8)
                    struct.pack_into("<ii", trec, 292, 0, 0)
                    trace_nodes.append((bytes(trec), []))
                sweep_nodes.append((bytes(wrec), trace_nodes))
            series_nodes.append((bytes(srec), sweep_nodes))
        group_nodes.append((bytes(grec), series_nodes))
    pul = _tree((bytes(pul_root), group_nodes), _PUL_SIZES)

    dat_start = 256
    pul_start = dat_start + len(data)
    pgf_start = pul_start + len(pul)
    header[0:8] = b"DAT2\0\0\0\0"
    _put_str(header, 8, version, 32)
    struct.pack_into("<d", header, 40, TIME_1990)
    items = [(dat_start, len(data), ".dat"), (pul_start, len(pul), ".pul"), (pgf_start, len(pgf), ".pgf")]
    struct.pack_into("<i", header, 48, len(items))
    header[52] = 1  # little endian
    for k, (start, length, ext) in enumerate(items):
        struct.pack_into("<ii", header, 64 + 16 * k, start, length)
        _put_str(header, 64 + 16 * k + 8, ext, 8)
    path.write_bytes(bytes(header) + bytes(data) + pul + pgf)
    return path


# ----------------------------------------------------------------------------- the test bundle
RATE = 20_000.0
N = 2_000  # samples per sweep
I_SCALE = 1e-13  # A per count (0.1 pA)
V_SCALE = 1e-5  # V per count (0.01 mV)


def sine_raw(sweep: int) -> np.ndarray:
    t = np.arange(N) / RATE
    return np.round(1000 * np.sin(2 * np.pi * 50 * t) - 200 * sweep).astype(np.int16)


def ramp_raw(sweep: int) -> np.ndarray:
    return (np.arange(N) - 7000 + 100 * sweep).astype(np.int16)


def standard_groups() -> list[GroupSpec]:
    """One group, two series ("Minis", "Ramp"), three sweeps each, two traces each
    ("Imon" in A: a sine; "Vmon" in V: a ramp), at 20 kHz."""
    series = []
    for label, offset in (("Minis", 0), ("Ramp", 3)):
        sweeps = [[TraceSpec("Imon", "A", sine_raw(offset + k), I_SCALE),
                   TraceSpec("Vmon", "V", ramp_raw(offset + k), V_SCALE)] for k in range(3)]
        series.append(SeriesSpec(label, sweeps, 1 / RATE))
    return [GroupSpec("Cell 1", series)]
