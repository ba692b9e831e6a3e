"""What a batch runs with: its constants, BatchSettings, one planned RecordingJob."""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping


from .. import DEFAULT_MODEL
from ..errors import ParameterError
from ..io import FOLDER_EXTENSIONS, READER_KEYS

log = logging.getLogger(__name__)


RECORDINGS_DIR = "recordings"
DONE_MARKER = "_done.json"
INDEX_FILE = "_batch_index.json"
LOCK_FILE = "_batch.lock"
SUMMARY_TABLE = "batch_summary"
EVENTS_TABLE = "batch_events"
FAILURES_TABLE = "batch_failures"
MARKER_FORMAT = "minidet-batch-result"
MARKER_VERSION = 1

# the simulator's truth files sit next to its recordings and are not recordings
_SKIPPED_SUFFIXES = (".truth.h5", ".truth.hdf5", ".truth.npz")

# manifest column -> minidet.load option
_READER_COLUMNS = {
    "channel": "channel",
    "sweeps": "sweeps",
    "skip_start": "skip_start_s",
    "skip_start_s": "skip_start_s",
    "dataset": "dataset",
    "sampling_rate": "sampling_rate",
    "scale": "scale",
    "unit": "unit",
}
# settings that change how, not what, is computed: left out of the settings hash so a re-run
# on another device or with another batch size reuses the results
_HASH_EXCLUDED = ("model", "device", "batch_size")
# columns of the batch tables that labels may not take
_TABLE_COLUMNS = ("recording", "status", "path", "error_type", "error", "traceback", "results",
                  "settings_hash", "content_sha256", "model", "model_sha256", "elapsed_s", "worker",
                  "peak_rss_mb", "event", "unit", "sampling_rate_hz", "n_detected", "n_excluded")


def _is_table_column(name: str) -> bool:
    """Would a label of this name clash with a column of the batch tables?"""
    from ..detection.pipeline import EVENT_COLUMNS
    from ..measure.summary import STAT_MEASURES

    stats = rf"^({'|'.join(STAT_MEASURES)})_(mean|median|sd|cv)$"
    return (name in _TABLE_COLUMNS or name in EVENT_COLUMNS or re.match(stats, name) is not None
            or name in ("count", "duration_s", "frequency_hz", "tau_decay_s", "n_average", "origin"))


def _pairs(value: Mapping[str, Any] | Iterable[tuple[str, Any]] | None, what: str) -> tuple[tuple[str, Any], ...]:
    if value is None:
        return ()
    items = value.items() if isinstance(value, Mapping) else value
    try:
        pairs = tuple((str(k), v) for k, v in items)
    except (TypeError, ValueError):
        raise ParameterError(f"{what} must be a mapping of names to values, got {value!r}") from None
    return tuple(sorted(pairs))


@dataclass(frozen=True)
class BatchSettings:
    """What every recording of a batch is analysed with (a manifest row may override it).

    Parameters
    ----------
    model
        Bundled model name or model file path.
    detect
        Detection settings (any :class:`~minidet.detection.pipeline.DetectSettings` field but
        ``model``), e.g. ``{"threshold": 0.6}``; the rest comes from the model, as in
        ``minidet detect``. Stored as sorted ``(name, value)`` pairs; see :attr:`overrides`.
    reader
        Options of :func:`minidet.load` (channel, sweeps, skip_start_s, dataset,
        sampling_rate, scale, unit). Stored as pairs; see :attr:`reader_options`.
    plots, nwb, save_prediction
        Also write the figures and report.html, results.nwb, the prediction trace (as
        ``minidet detect --plots --nwb --save-prediction``).
    extensions
        File types picked up when a folder is searched (lower case, with the dot).
    """

    model: str = DEFAULT_MODEL
    detect: tuple[tuple[str, Any], ...] = ()
    reader: tuple[tuple[str, Any], ...] = ()
    plots: bool = False
    nwb: bool = False
    save_prediction: bool = False
    extensions: tuple[str, ...] = FOLDER_EXTENSIONS

    def __post_init__(self) -> None:
        from ..detection.pipeline import DetectSettings
        from ..io import ReadOptions

        if not isinstance(self.model, str) or not self.model.strip():
            raise ParameterError(f"model must be a model name or file path, got {self.model!r}")
        detect = _pairs(self.detect, "detect")
        reader = _pairs(self.reader, "reader")
        object.__setattr__(self, "detect", detect)
        object.__setattr__(self, "reader", reader)
        names = DetectSettings.field_names()
        unknown = sorted(k for k, _ in detect if k not in names or k == "model")
        if unknown:
            raise ParameterError(
                f"unknown detection setting(s) {unknown}; allowed: "
                f"{', '.join(n for n in names if n != 'model')} (give the model as model=...)")
        DetectSettings(**{k: v for k, v in detect if v is not None})  # validates the values
        unknown = sorted(k for k, _ in reader if k not in READER_KEYS)
        if unknown:
            raise ParameterError(f"unknown reader option(s) {unknown}; allowed: {', '.join(READER_KEYS)}")
        ReadOptions(**dict(reader))
        for name in ("plots", "nwb", "save_prediction"):
            if not isinstance(getattr(self, name), bool):
                raise ParameterError(f"{name} must be True or False, got {getattr(self, name)!r}")
        exts = tuple(self.extensions)
        if not exts or not all(isinstance(e, str) and e.startswith(".") and len(e) > 1 for e in exts):
            raise ParameterError(f"extensions must be file suffixes like '.abf', got {self.extensions!r}")
        object.__setattr__(self, "extensions", tuple(e.lower() for e in exts))

    @property
    def overrides(self) -> dict[str, Any]:
        """The detection settings given (``None`` values dropped) as a dict."""
        return {k: v for k, v in self.detect if v is not None}

    @property
    def reader_options(self) -> dict[str, Any]:
        """The reader options given (``None`` values dropped) as a dict."""
        return {k: v for k, v in self.reader if v is not None}

    @property
    def outputs(self) -> dict[str, bool]:
        return {"plots": self.plots, "nwb": self.nwb, "save_prediction": self.save_prediction}


@dataclass(frozen=True)
class RecordingJob:
    """One recording of a batch, as planned: what to read, with which settings, where to write.

    ``settings`` are the resolved :class:`~minidet.detection.pipeline.DetectSettings` (model
    defaults filled in) as a dict; ``up_to_date`` is true when ``OUT/recordings/<name>``
    already holds a result made from the same content, settings and model.
    """

    name: str
    path: str
    reader: dict
    settings: dict
    model: str
    labels: dict
    origin: str
    content_sha256: str
    model_sha256: str
    settings_hash: str
    out_dir: str
    plots: bool = False
    nwb: bool = False
    save_prediction: bool = False
    up_to_date: bool = False
    torch_threads: int | None = None

    @property
    def result_dir(self) -> Path:
        return Path(self.out_dir) / RECORDINGS_DIR / self.name
