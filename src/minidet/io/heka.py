"""HEKA PatchMaster bundles (``.dat``), read with myokit (optional: ``pip install minidet[heka]``).

A bundle holds groups -> series -> sweeps -> traces. One series is read at a time:
``--dataset GROUP/SERIES`` names it (each part a label or a 0-based index; ``SERIES``
alone where the file has one group). Without ``--dataset`` the first series recorded as a
current or a voltage is read (``minidet info`` says so when there are others). ``--channel``
names the trace (label or 0-based index), ``--sweeps`` the sweeps of that series.

PatchMaster stores SI units; amperes and volts come out as pA and mV (as the NWB reader
does), unless ``--scale`` or ``--unit`` is given (then ``--scale`` applies to the SI values).
myokit reads PatchMaster 2x90 bundles (``DAT2``); older bundles (``DATA``, ``DAT1``) are
refused with an :class:`~minidet.errors.UnknownFormatError`.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np

from ..errors import ChannelError, CorruptFileError, MissingDependencyError, UnknownFormatError
from .base import ChannelInfo, FileInfo, ReadOptions, SweepSource, pick_channel

EXTENSIONS = (".dat",)
SIGNATURES = (b"DATA", b"DAT1", b"DAT2")
INSTALL_HINT = "pip install minidet[heka]"


def sniff(path: str) -> bool:
    """PatchMaster files start with ``DATA`` (old), ``DAT1`` or ``DAT2`` (bundles)."""
    with open(path, "rb") as fh:
        return fh.read(4) in SIGNATURES


def _myokit_heka():
    try:
        from myokit.formats import heka
    except ImportError:
        raise MissingDependencyError(
            f"reading HEKA PatchMaster files needs the optional package myokit: {INSTALL_HINT}"
        ) from None
    return heka


@dataclass(frozen=True)
class _Trace:
    index: int
    name: str
    unit: str | None  # as stored (SI), e.g. "A", "V"
    factor: float  # to the conventional unit
    conventional: str | None  # "pA", "mV", or the stored unit


@dataclass(frozen=True)
class _Series:
    group: int
    group_label: str
    index: int
    label: str
    n_sweeps: int
    traces: list[_Trace]
    lengths: list[int]  # samples per sweep, first trace
    sampling_rate: float | None

    @property
    def name(self) -> str:
        return f"{self.group}/{self.index}"

    @property
    def electrical(self) -> bool:
        return any(t.conventional in ("pA", "mV") for t in self.traces)


def _unit(myokit, unit) -> tuple[str | None, float, str | None]:
    """(stored unit text, factor, conventional unit) for a myokit unit."""
    if unit is None:
        return None, 1.0, None
    text = str(unit).strip("[]") or None
    for si, target, name in ((myokit.units.A, myokit.units.pA, "pA"), (myokit.units.V, myokit.units.mV, "mV")):
        if myokit.Unit.can_convert(unit, si):
            return text, float(myokit.Unit.conversion_factor(unit, target)), name
    return text, 1.0, text


def _open(path: str):
    heka = _myokit_heka()
    import myokit

    try:
        with warnings.catch_warnings():
            # myokit warns on every file that its PatchMaster support is new
            warnings.simplefilter("ignore")
            pm = heka.PatchMasterFile(path)
    except NotImplementedError as exc:
        raise UnknownFormatError(
            f"{path} is a HEKA PatchMaster file myokit cannot read ({exc}); myokit reads PatchMaster "
            "2x90 bundles: export older files to ABF or NWB (PatchMaster: File > Export)"
        ) from None
    except Exception as exc:  # myokit raises many kinds on damaged trees
        raise CorruptFileError(
            f"{path} is not a readable HEKA PatchMaster bundle (damaged or truncated?): "
            f"{type(exc).__name__}: {exc}"
        ) from None
    return myokit, pm


def _tree(myokit, pm) -> list[_Series]:
    out = []
    for gi, group in enumerate(list(pm)):
        for si, series in enumerate(list(group)):
            sweeps = list(series)
            traces = []
            if sweeps:
                for ti, trace in enumerate(list(sweeps[0])):
                    text, factor, conventional = _unit(myokit, trace.value_unit())
                    traces.append(_Trace(ti, str(trace.label()), text, factor, conventional))
            lengths = [len(sw[0]) if len(sw) else 0 for sw in sweeps]
            out.append(_Series(gi, str(group.label()), si, str(series.label()), len(sweeps), traces, lengths,
                               _rate(series, sweeps)))
    return out


def _rate(series, sweeps) -> float | None:
    """Hz: the stimulus' sampling interval where it agrees with the first trace's (the trace
    stores it too; where they differ, the trace's is used)."""
    trace = next((sw[0] for sw in sweeps if len(sw) and len(sw[0])), None)
    if trace is None:
        return None
    dt_trace = float(trace.duration()) / len(trace)
    try:
        dt_stim = float(series.stimulus().sampling_interval())
    except Exception:  # pragma: no cover - no stimulus record
        dt_stim = float("nan")
    dt = dt_stim if math.isclose(dt_stim, dt_trace, rel_tol=1e-9) else dt_trace
    return 1.0 / dt if dt > 0 and math.isfinite(dt) else None


def _part(spec: str, labels: list[str], what: str, path: str) -> int:
    spec = spec.strip()
    if spec in labels:
        return labels.index(spec)
    try:
        index = int(spec)
    except ValueError:
        index = None
    if index is not None and 0 <= index < len(labels):
        return index
    listing = ", ".join(f"[{i}] {n}" for i, n in enumerate(labels))
    raise ChannelError(f"{what} {spec!r} is not in {path}; {what}s there: {listing}")


def _select(tree: list[_Series], dataset: str | None, path: str) -> tuple[_Series, str | None]:
    """The series named by ``dataset`` (``GROUP/SERIES``), or the default one and a note."""
    if not tree:
        raise ChannelError(f"{path} holds no series")
    if dataset is None:
        chosen = next((s for s in tree if s.electrical and s.n_sweeps), None)
        if chosen is None:
            chosen = tree[0]
        note = None
        if len(tree) > 1:
            note = (f"{len(tree)} series: reading series {chosen.name} {chosen.label!r} "
                    "(the first current or voltage recording); choose another with --dataset GROUP/SERIES")
        return chosen, note
    groups: dict[int, str] = {}
    for s in tree:
        groups.setdefault(s.group, s.group_label)
    group_labels = [groups[g] for g in sorted(groups)]
    text = str(dataset)
    if "/" in text:
        g_spec, _, s_spec = text.partition("/")
        g = _part(g_spec, group_labels, "group", path)
    elif len(group_labels) == 1:
        g, s_spec = 0, text
    else:
        raise ChannelError(f"{path} holds {len(group_labels)} groups: name the series as --dataset GROUP/SERIES "
                           f"(labels or 0-based indices), e.g. 0/{text}")
    in_group = [s for s in tree if s.group == g]
    return in_group[_part(s_spec, [s.label for s in in_group], f"series of group {g}", path)], None


def _listing(tree: list[_Series]) -> tuple[list[str], list[dict]]:
    notes = []
    groups: list[dict] = []
    for s in tree:
        if not groups or groups[-1]["index"] != s.group:
            groups.append({"index": s.group, "label": s.group_label, "series": []})
            notes.append(f"group {s.group} {s.group_label!r}")
        traces = ", ".join(f"[{t.index}] {t.name} ({t.conventional or 'unit unknown'})" for t in s.traces)
        notes.append(f"  series {s.name} {s.label!r}: {s.n_sweeps} sweep(s); traces {traces or 'none'}")
        groups[-1]["series"].append({
            "index": s.index, "dataset": s.name, "label": s.label, "n_sweeps": s.n_sweeps,
            "sampling_rate_hz": s.sampling_rate,
            "traces": [{"index": t.index, "name": t.name, "unit": t.conventional} for t in s.traces],
        })
    return notes, groups


def describe(path: str, options: ReadOptions) -> FileInfo:
    myokit, pm = _open(path)
    try:
        tree = _tree(myokit, pm)
        version = pm.version()
    finally:
        pm.close()
    series, note = _select(tree, options.dataset, path)
    notes, contents = _listing(tree)
    notes.insert(0, f"series read: {series.name} {series.label!r} (group {series.group_label!r})")
    if note:
        notes.insert(1, note)
    lengths = set(series.lengths)
    rate = series.sampling_rate
    return FileInfo(
        path=path,
        file_format=f"HEKA PatchMaster {version} (via myokit)",
        channels=[ChannelInfo(t.index, t.name, t.conventional) for t in series.traces],
        n_sweeps=series.n_sweeps,
        sweep_length_samples=lengths.pop() if len(lengths) == 1 else None,
        sampling_rate=rate,
        duration_s=sum(series.lengths) / rate if rate else None,
        notes=notes,
        contents={"groups": contents, "series_read": series.name},
    )


def open_source(path: str, options: ReadOptions) -> SweepSource:
    myokit, pm = _open(path)
    try:
        tree = _tree(myokit, pm)
        series, _ = _select(tree, options.dataset, path)
        if not series.traces:
            raise ChannelError(f"series {series.name} {series.label!r} in {path} holds no traces")
        index = pick_channel(options.channel, [t.name for t in series.traces], "trace")
        trace = series.traces[index]
        convert = options.unit is None and options.scale is None
        factor = trace.factor if convert else 1.0
        unit = trace.conventional if convert else trace.unit
        node = list(list(pm)[series.group])[series.index]
        sweeps: list[np.ndarray] = []
        try:
            for k, sweep in enumerate(list(node)):
                if index >= len(sweep):
                    raise ChannelError(f"sweep {k} of series {series.name} in {path} has no trace {index}")
                values = np.array(sweep[index].values(), dtype=np.float64)
                sweeps.append(values * factor if factor != 1.0 else values)
        except ChannelError:
            raise
        except Exception as exc:
            raise CorruptFileError(f"cannot read the samples of series {series.name} in {path} (damaged or "
                                   f"truncated?): {type(exc).__name__}: {exc}") from None
        version = pm.version()
    finally:
        pm.close()
    return SweepSource(
        n_sweeps=len(sweeps),
        read_sweep=lambda i: sweeps[i],
        sampling_rate=series.sampling_rate,
        unit=unit,
        channel=trace.name,
        file_format="heka",
        metadata={"heka_version": version, "group": series.group_label, "series": series.label,
                  "dataset": series.name, "stored_unit": trace.unit},
    )
