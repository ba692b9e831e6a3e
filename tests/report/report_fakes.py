"""A small stand-in for DetectionResult, so the writers can be tested without a model.

It has the same attributes and methods as :class:`minidet.detection.pipeline.DetectionResult`
that the report code uses; events are real alpha-shaped events in a simulated trace.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import pandas as pd
from minidet.recording import Recording

RATE = 10_000.0
EVENT_SAMPLES = [2000, 5000, 8000, 12000, 16000]
AMPLITUDE = 20.0  # pA, inward (negative)


@dataclass(frozen=True)
class FakeSettings:
    model: str = "gc"
    window_size: int = 600
    stride: int | None = None
    threshold: float | None = 0.5
    event_direction: str = "negative"

    def to_dict(self) -> dict[str, Any]:
        return dict(vars(self))


@dataclass(frozen=True)
class FakeResult:
    recording: Recording
    events_all: pd.DataFrame
    settings: FakeSettings = field(default_factory=FakeSettings)
    model_metadata: dict[str, Any] = field(default_factory=lambda: {"name": "gc", "input_size": 600,
                                                                     "defaults": {"threshold": 0.5}})
    prediction: np.ndarray | None = None
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def events(self) -> pd.DataFrame:
        return self.events_all[~self.events_all["excluded"]]

    @property
    def summary(self) -> dict[str, Any]:
        ev = self.events
        n = len(ev)
        amp = ev["amplitude"].to_numpy()
        return {
            "count": n,
            "frequency_hz": n / self.recording.duration_s,
            "duration_s": self.recording.duration_s,
            "amplitude_mean": float(np.mean(amp)) if n else float("nan"),
            "amplitude_cv": float(np.std(amp) / abs(np.mean(amp))) if n else float("nan"),
            "charge_mean": float(ev["charge"].mean()) if n else float("nan"),
            "rise_time_mean_s": float(ev["rise_time_s"].mean()) if n else float("nan"),
            "tau_decay_s": 0.005 if n else float("nan"),
        }

    def exclude(self, indices) -> "FakeResult":
        table = self.events_all.copy()
        table.loc[list(indices), "excluded"] = True
        return replace(self, events_all=table)

    def restore(self, indices) -> "FakeResult":
        table = self.events_all.copy()
        table.loc[list(indices), "excluded"] = False
        return replace(self, events_all=table)

    def waveforms(self, pre_s=None, post_s=None):
        """Kept events only, like DetectionResult.waveforms."""
        pre, post = 50, 250
        t = np.arange(-pre, post) / RATE
        x = self.recording.samples
        rows = []
        for s, b in zip(self.events["sample"], self.events["baseline"]):
            seg = np.full(pre + post, np.nan)
            lo, hi = max(0, s - pre), min(x.size, s + post)
            seg[lo - (s - pre): hi - (s - pre)] = x[lo:hi] - b
            rows.append(seg)
        return t, np.array(rows).reshape(len(rows), pre + post)

    def average_event(self):
        t, w = self.waveforms()
        return t, np.nanmean(w, axis=0)


def make_trace(n_samples: int = 20_000, events=EVENT_SAMPLES, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = rng.normal(0, 1.0, n_samples)
    t = np.arange(n_samples) / RATE
    for s in events:
        dt = np.clip(t - s / RATE, 0, None)
        x -= AMPLITUDE * (np.exp(-dt / 0.004) - np.exp(-dt / 0.0005)) * (dt > 0) / 0.7
    return x


def make_result(events=EVENT_SAMPLES, unit: str = "pA", source: str | None = "/data/cell1.h5",
                with_prediction: bool = True) -> FakeResult:
    rec = Recording(make_trace(events=events), RATE, unit=unit, source=source, channel="mini_data",
                    metadata={"format": "hdf5", "sweeps": [0], "skip_start_s": 0.0, "scale": None})
    n = len(events)
    s = np.asarray(events, dtype=np.int64)
    table = pd.DataFrame({
        "sample": s,
        "time_s": s / RATE,
        "score": np.linspace(0.9, 0.99, n),
        "onset_sample": s - 2,
        "onset_time_s": (s - 2) / RATE,
        "peak_sample": s + 10,
        "peak_time_s": (s + 10) / RATE,
        "baseline": np.zeros(n),
        "amplitude": np.full(n, -AMPLITUDE),
        "rise_time_s": np.full(n, 0.0008),
        "half_decay_s": np.full(n, 0.003),
        "half_width_s": np.full(n, 0.004),
        "charge": np.full(n, -0.1),
        "overlapping": np.zeros(n, bool),
        "excluded": np.zeros(n, bool),
    })
    if n:
        table.loc[n - 1, "half_decay_s"] = np.nan  # a measure that could not be made
    pred = None
    if with_prediction:
        pred = np.zeros(rec.n_samples - 300)
        for e in events:
            pred[max(0, e - 400): e - 100] = 0.95
    return FakeResult(recording=rec, events_all=table, prediction=pred)
