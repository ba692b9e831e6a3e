"""Synthetic recordings of known kinetics for the training-set tests (also used by tests/web)."""

from __future__ import annotations

import numpy as np

from minidet.recording import Recording

GC_RISE_S = 0.25e-3  # granule-cell mEPSC time constants (miniML's training data)
GC_DECAY_S = 1.35e-3


def synthetic_recording(
    rise_s: float = GC_RISE_S,
    decay_s: float = GC_DECAY_S,
    sampling_rate: float = 50_000.0,
    duration_s: float = 10.0,
    n_events: int = 80,
    amplitude: float = 20.0,
    noise_sd: float = 1.5,
    seed: int = 0,
    direction: float = -1.0,
    source: str | None = "synthetic.h5",
) -> tuple[Recording, np.ndarray]:
    """White noise plus ``(1 - exp(-t/rise)) exp(-t/decay)`` events (peak ``amplitude``)
    at random onsets at least 8 decay time constants apart; returns (recording, onsets)."""
    rng = np.random.default_rng(seed)
    n = int(duration_s * sampling_rate)
    gap = int(8 * decay_s * sampling_rate) + 10
    margin = int(12 * decay_s * sampling_rate) + 10
    onsets: list[int] = []
    while len(onsets) < n_events:
        cand = int(rng.integers(margin, n - margin))
        if all(abs(cand - o) > gap for o in onsets):
            onsets.append(cand)
    onsets_arr = np.sort(np.array(onsets))
    t = np.arange(int(12 * decay_s * sampling_rate)) / sampling_rate
    shape = (1 - np.exp(-t / rise_s)) * np.exp(-t / decay_s)
    shape /= shape.max()
    x = rng.normal(0.0, noise_sd, n)
    amps = amplitude * rng.lognormal(0.0, 0.25, n_events)
    for o, a in zip(onsets_arr, amps):
        seg = x[o:o + shape.size]
        seg += direction * a * shape[: seg.size]
    rec = Recording(samples=x, sampling_rate=sampling_rate, unit="pA", source=source, channel="Im")
    return rec, onsets_arr


def write_h5_recording(path, recording: Recording) -> str:
    """Save ``recording`` as a plain HDF5 trace that :func:`minidet.load` reads."""
    import h5py

    with h5py.File(path, "w") as f:
        d = f.create_dataset("trace", data=recording.samples)
        d.attrs["sampling_rate"] = recording.sampling_rate
        d.attrs["unit"] = recording.unit
    return str(path)


def noise_scaled_windows(n: int = 16, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """n events (3-8 noise SDs) and n noise windows from recordings of noise SD 0.5-3."""
    rng = np.random.default_rng(seed)
    t = np.arange(600)
    x, y, sd = [], [], []
    for label in (1, 0):
        for _ in range(n):
            s = rng.uniform(0.5, 3.0)
            w = rng.normal(0, s, 600)
            if label:
                k = np.clip(t - rng.integers(100, 250), 0, None)
                shape = (1 - np.exp(-k / 8)) * np.exp(-k / 60)
                w -= rng.uniform(3, 8) * s * shape / shape.max()
            x.append(w)
            y.append(label)
            sd.append(s)
    return np.asarray(x), np.asarray(y), np.asarray(sd)
