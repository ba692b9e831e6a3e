"""Labelled training windows cut from simulated recordings (the data recipe of the ``gc-robust`` model).

miniML's classifier answers "is there an event in this window?": on a clean granule-cell
event, the bundled ``gc`` model scores a 600-sample window above 0.9 when the event's onset
lies about 20 to 440 samples after the window's start and below 0.3 when the onset lies
before the window (only the decay is inside) or in its last ~100 samples. The scored
snippets of miniML's ``gc_training_example.h5`` put the onset near sample 85 (steepest rise
about sample 90, peak about 106). :func:`synthetic_windows` reproduces that labelling on
recordings from :func:`minidet.simulation.simulate`, where the truth is known:

- positive (score 1): a window whose start lies ``onset - k`` with ``k`` drawn uniformly from
  ``positive_onset_range`` (so the onset sits anywhere the original answers to);
- negative (score 0): a window with *no* onset in ``[start, start + negative_clear_samples)``:
  random places (mostly noise), "hard" places next to an event (its decay fills the window,
  or it starts in the window's last samples) and places on non-synaptic transients.

Windows with an onset between the two zones are never drawn (their label is ambiguous).

Each simulated recording draws its own SNR, rise and decay time constants, amplitude spread,
event rate (so events overlap), transients, hum, drift and a random noise spectrum
(:func:`random_spectrum`: a low-pass of random corner and order over a random mix of white and
1/f noise), so a model trained on them does not learn one kinetics or one noise.
Everything follows from the settings and the seed.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd

from ..errors import ParameterError
from ..noise import NoiseSpectrum, recording_noise_sd
from ..simulation import TRANSIENT_KINDS, SimulationSettings, simulate

__all__ = ["SPECTRUM_FAMILIES", "SyntheticSettings", "mixed_spectrum", "patch_clamp_spectrum", "random_spectrum",
           "synthetic_windows"]


def _need(cond: bool, message: str) -> None:
    if not cond:
        raise ParameterError(message)


def _real(v: Any) -> bool:
    return isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool) and math.isfinite(v)


def _int(v: Any) -> bool:
    return isinstance(v, (int, np.integer)) and not isinstance(v, bool)


def _range(name: str, value: Any, positive: bool = True) -> tuple[float, float]:
    ok = isinstance(value, (tuple, list)) and len(value) == 2 and all(_real(v) for v in value)
    ok = ok and value[0] <= value[1] and (not positive or value[0] > 0)
    _need(ok, f"{name} must be a (low, high) pair of finite numbers with low <= high"
          f"{' and low > 0' if positive else ''}, got {value!r}")
    return float(value[0]), float(value[1])


@dataclass(frozen=True)
class SyntheticSettings:
    """What :func:`synthetic_windows` simulates and cuts. Times in s, rates in Hz, windows in samples.

    Ranges are ``(low, high)``; time constants and rates are drawn log-uniformly, SNRs
    uniformly. ``transient_fraction`` is the fraction of recordings that hold transients.
    Negatives are split into ``hard_fraction`` next to events, ``transient_negative_fraction``
    on transients (when the recording has any) and the rest at random places.
    """

    n_recordings: int = 300
    recording_s: float = 6.0
    sampling_rate: float = 50_000.0
    window_size: int = 600
    positive_onset_range: tuple[int, int] = (20, 440)
    negative_clear_samples: int = 500
    max_positives_per_recording: int = 60
    snr_db_range: tuple[float, float] = (2.0, 24.0)
    rise_tau_s_range: tuple[float, float] = (0.05e-3, 1.0e-3)
    decay_tau_s_range: tuple[float, float] = (0.3e-3, 8.0e-3)
    event_rate_hz_range: tuple[float, float] = (2.0, 25.0)
    amplitude_log_sd_range: tuple[float, float] = (0.2, 0.5)
    transient_fraction: float = 0.5
    transient_rate_hz_range: tuple[float, float] = (0.5, 4.0)
    hard_fraction: float = 0.35
    transient_negative_fraction: float = 0.25
    hum_fraction: float = 0.2
    drift_fraction: float = 0.3
    spectrum_family: str = "pink-lowpass"

    def __post_init__(self) -> None:
        _need(_int(self.n_recordings) and self.n_recordings >= 1,
              f"n_recordings must be a positive integer, got {self.n_recordings!r}")
        _need(_real(self.sampling_rate) and self.sampling_rate > 0,
              f"sampling_rate must be > 0 Hz, got {self.sampling_rate!r}")
        _need(_int(self.window_size) and self.window_size >= 30,
              f"window_size must be an integer >= 30 samples, got {self.window_size!r}")
        _need(_real(self.recording_s) and self.recording_s * self.sampling_rate >= 4 * self.window_size,
              f"recording_s must be at least 4 windows long ({4 * self.window_size} samples), "
              f"got {self.recording_s!r} s")
        lo, hi = self.positive_onset_range if isinstance(self.positive_onset_range, (tuple, list)) else (None, None)
        _need(_int(lo) and _int(hi) and 0 <= lo <= hi < self.window_size,
              f"positive_onset_range must be two integers 0 <= low <= high < window_size "
              f"({self.window_size}), got {self.positive_onset_range!r}")
        _need(_int(self.negative_clear_samples) and hi < self.negative_clear_samples <= self.window_size,
              f"negative_clear_samples must be an integer above the positive range's end ({hi}) "
              f"and at most window_size ({self.window_size}), got {self.negative_clear_samples!r}")
        _need(_int(self.max_positives_per_recording) and self.max_positives_per_recording >= 1,
              f"max_positives_per_recording must be a positive integer, got {self.max_positives_per_recording!r}")
        _range("snr_db_range", self.snr_db_range, positive=False)
        r = _range("rise_tau_s_range", self.rise_tau_s_range)
        d = _range("decay_tau_s_range", self.decay_tau_s_range)
        _need(d[0] > r[0], f"decay_tau_s_range must start above rise_tau_s_range's start, got {d} and {r}")
        _need(r[0] * self.sampling_rate >= 0.05,
              f"rise_tau_s_range starts under 1/20 of a sample at {self.sampling_rate:g} Hz")
        _range("event_rate_hz_range", self.event_rate_hz_range)
        _range("transient_rate_hz_range", self.transient_rate_hz_range)
        a = _range("amplitude_log_sd_range", self.amplitude_log_sd_range, positive=False)
        _need(a[0] >= 0, f"amplitude_log_sd_range must be >= 0, got {a}")
        for name in ("transient_fraction", "hard_fraction", "transient_negative_fraction", "hum_fraction",
                     "drift_fraction"):
            v = getattr(self, name)
            _need(_real(v) and 0 <= v <= 1, f"{name} must be in [0, 1], got {v!r}")
        _need(self.spectrum_family in SPECTRUM_FAMILIES,
              f"spectrum_family must be one of {tuple(SPECTRUM_FAMILIES)}, got {self.spectrum_family!r}")
        _need(self.hard_fraction + self.transient_negative_fraction <= 1,
              "hard_fraction + transient_negative_fraction must be <= 1")
        object.__setattr__(self, "positive_onset_range", (int(lo), int(hi)))
        for name in ("snr_db_range", "rise_tau_s_range", "decay_tau_s_range", "event_rate_hz_range",
                     "transient_rate_hz_range", "amplitude_log_sd_range"):
            object.__setattr__(self, name, tuple(float(v) for v in getattr(self, name)))

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        return {k: list(v) if isinstance(v, tuple) else v for k, v in d.items()}


def random_spectrum(rng: np.random.Generator, sampling_rate: float = 50_000.0) -> NoiseSpectrum:
    """A random recording-like noise spectrum: (white + w/f) through a Butterworth-like low-pass.

    The 1/f weight is log-uniform in [0.01, 100] (relative to 1 kHz), the corner 1-10 kHz
    (log-uniform) and the order 1-4, so spectra range from nearly white to steeply band-limited
    pink noise. Not the granule-cell spectrum of :data:`minidet.noise.GC_PSD`.
    """
    f = np.linspace(0.0, sampling_rate / 2, 513)
    pink_weight = 10 ** rng.uniform(-2, 2)
    corner = 10 ** rng.uniform(3, 4)
    order = int(rng.integers(1, 5))
    base = 1.0 + pink_weight * 1000.0 / np.maximum(f, 10.0)
    psd = base / (1.0 + (f / corner) ** (2 * order))
    return NoiseSpectrum(f, psd, name=f"random(pink={pink_weight:.3g},corner={corner:.0f},order={order})")


def patch_clamp_spectrum(rng: np.random.Generator, sampling_rate: float = 50_000.0) -> NoiseSpectrum:
    """A random spectrum of the shape whole-cell noise has: 1/f + white + f^2, low-passed.

    The textbook sources of patch-clamp noise (e.g. Sherman-Gold, *The Axon Guide*, ch. 12;
    Levis & Rae 1993): 1/f noise at low frequencies, white (thermal and shot) noise, and the
    amplifier's voltage noise across the input and pipette capacitance, whose current noise
    rises as f^2; then the recording filter (a 4-pole Bessel, here a Butterworth-like roll-off
    of order 2-4). The 1/f corner is log-uniform in 1 Hz-1 kHz, the f^2 term equals the white
    level somewhere between 0.3 and 30 kHz, the filter corner lies in 1.5-10 kHz. So spectra
    range from nearly white to blue-ish with a steep roll-off; the granule-cell spectrum of
    :data:`minidet.noise.GC_PSD` is not one of them (it is never drawn, only its kind).
    """
    f = np.linspace(0.0, sampling_rate / 2, 513)
    pink = 10 ** rng.uniform(-3, 0)
    capacitive = 10 ** rng.uniform(-3, 1)
    corner = 10 ** rng.uniform(math.log10(1500.0), 4)
    order = int(rng.integers(2, 5))
    base = 1.0 + pink * 1000.0 / np.maximum(f, 10.0) + capacitive * (f / 1000.0) ** 2
    psd = base / (1.0 + (f / corner) ** (2 * order))
    return NoiseSpectrum(f, psd, name=f"patch-clamp(pink={pink:.3g},cap={capacitive:.3g},corner={corner:.0f},"
                                      f"order={order})")


def mixed_spectrum(rng: np.random.Generator, sampling_rate: float = 50_000.0) -> NoiseSpectrum:
    """Either family, with equal odds: :func:`patch_clamp_spectrum` or :func:`random_spectrum`.

    The second adds what the first lacks: noise dominated by 1/f down to the event band and
    spectra left nearly white up to a 10 kHz corner, so that a network trained on the mix has
    seen noise excursions of both kinds that look like small events.
    """
    draw = patch_clamp_spectrum if rng.random() < 0.5 else random_spectrum
    return draw(rng, sampling_rate)


#: :class:`SyntheticSettings` ``spectrum_family``: name -> function drawing one spectrum.
SPECTRUM_FAMILIES = {"pink-lowpass": random_spectrum, "patch-clamp": patch_clamp_spectrum,
                     "mixed": mixed_spectrum}


def _log_uniform(rng: np.random.Generator, lo: float, hi: float) -> float:
    return float(math.exp(rng.uniform(math.log(lo), math.log(hi))))


def _recording_settings(s: SyntheticSettings, rng: np.random.Generator) -> SimulationSettings:
    rise = _log_uniform(rng, *s.rise_tau_s_range)
    lo = max(s.decay_tau_s_range[0], 2.0 * rise)
    decay = _log_uniform(rng, lo, max(lo, s.decay_tau_s_range[1]))
    transients = rng.random() < s.transient_fraction
    hum = rng.random() < s.hum_fraction
    drift = rng.random() < s.drift_fraction
    return SimulationSettings(
        duration_s=s.recording_s,
        sampling_rate=s.sampling_rate,
        event_rate_hz=_log_uniform(rng, *s.event_rate_hz_range),
        snr_db=float(rng.uniform(*s.snr_db_range)),
        amplitude_log_sd=float(rng.uniform(*s.amplitude_log_sd_range)),
        rise_tau_s=rise,
        decay_tau_s=decay,
        noise_sd=1.0,
        noise_spectrum=SPECTRUM_FAMILIES[s.spectrum_family](rng, s.sampling_rate),
        hum_amplitude=float(rng.uniform(0.1, 0.6)) if hum else 0.0,
        drift_sd=float(rng.uniform(0.5, 3.0)) if drift else 0.0,
        transient_rate_hz=_log_uniform(rng, *s.transient_rate_hz_range) if transients else 0.0,
        transient_kinds=TRANSIENT_KINDS,
        transient_amplitude_factor=float(rng.uniform(1.0, 3.0)),
    )


def _clear(onsets: np.ndarray, starts: np.ndarray, reach: int) -> np.ndarray:
    """True where no onset lies in ``[start, start + reach)``."""
    a = np.searchsorted(onsets, starts, side="left")
    b = np.searchsorted(onsets, starts + reach, side="left")
    return a == b


def synthetic_windows(settings: SyntheticSettings | None = None, seed: int = 0
                      ) -> tuple[np.ndarray, np.ndarray, pd.DataFrame]:
    """Simulate ``settings.n_recordings`` recordings and cut labelled windows from them.

    Parameters
    ----------
    settings
        The recipe (defaults: :class:`SyntheticSettings`).
    seed
        Integer >= 0; recording ``i`` is simulated with seed ``seed + i`` and its windows drawn
        from a generator seeded by (seed, i), so the same seed gives the same windows.

    Returns
    -------
    windows : float64 array (n, window_size)
        Raw samples (pA-like units, events negative-going), positives and negatives in equal
        numbers per recording.
    scores : int64 array (n,)
        1 event, 0 no event.
    info : DataFrame
        Per window: ``recording``, ``start`` (sample), ``kind`` (positive / random / hard /
        transient), ``onset_offset`` (samples from the window start to the onset the label
        refers to, NaN for random negatives), and the recording's ``snr_db``,
        ``rise_tau_s``, ``decay_tau_s``, ``spectrum`` and ``noise_sd`` (what noise-scaled
        models divide by, :func:`minidet.noise.recording_noise_sd`).
    """
    settings = SyntheticSettings() if settings is None else settings
    _need(isinstance(settings, SyntheticSettings),
          f"settings must be a SyntheticSettings, got {type(settings).__name__}")
    _need(_int(seed) and seed >= 0, f"seed must be an integer >= 0, got {seed!r}")
    w = settings.window_size
    lo, hi = settings.positive_onset_range
    clear = settings.negative_clear_samples
    windows: list[np.ndarray] = []
    rows: list[dict[str, Any]] = []
    for i in range(settings.n_recordings):
        rng = np.random.default_rng([seed, i])
        sim = _recording_settings(settings, rng)
        rec, truth = simulate(sim, seed=seed + i)
        x = rec.samples
        n = x.size
        onsets = np.sort(np.floor(truth.events["onset_sample"].to_numpy()).astype(np.int64))
        meta = {"recording": i, "snr_db": float(sim.snr_db), "rise_tau_s": sim.rise_tau_s,
                "decay_tau_s": sim.decay_tau_s, "spectrum": sim.noise_spectrum.name,
                "noise_sd": recording_noise_sd(rec, w)}

        # positives: onset at a uniform offset in the window
        chosen = onsets[rng.permutation(onsets.size)[: settings.max_positives_per_recording]]
        offsets = rng.integers(lo, hi + 1, chosen.size)
        starts = chosen - offsets
        ok = (starts >= 0) & (starts + w <= n)
        pos = [(int(s), "positive", int(k)) for s, k in zip(starts[ok], offsets[ok])]
        n_neg = len(pos)
        if n_neg == 0:
            continue

        # negatives: hard (next to events), on transients, random
        n_hard = int(round(settings.hard_fraction * n_neg))
        t_starts = truth.transients["start_sample"].to_numpy().astype(np.int64) if len(truth.transients) else \
            np.empty(0, np.int64)
        n_trans = int(round(settings.transient_negative_fraction * n_neg)) if t_starts.size else 0
        neg: list[tuple[int, str, float]] = []

        def take(cands: np.ndarray, ks: np.ndarray, kind: str, want: int) -> None:
            good = (cands >= 0) & (cands + w <= n)
            cands, ks = cands[good], ks[good]
            good = _clear(onsets, cands, clear)
            for s_, k_ in list(zip(cands[good], ks[good]))[:want]:
                neg.append((int(s_), kind, float(k_)))

        if onsets.size and n_hard:
            m = 4 * n_hard
            ref = onsets[rng.integers(0, onsets.size, m)]
            # the event began before the window (its decay is inside) or starts in its last samples
            before = rng.random(m) < 0.7
            ks = np.where(before, -rng.integers(1, w // 2 + 1, m), rng.integers(clear, w, m))
            take(ref - ks, ks, "hard", n_hard)
        if n_trans:
            m = 4 * n_trans
            ref = t_starts[rng.integers(0, t_starts.size, m)]
            ks = rng.integers(-w // 4, clear, m)
            take(ref - ks, ks, "transient", n_trans)
        m = 8 * (n_neg - len(neg)) + 8
        cands = rng.integers(0, n - w + 1, m)
        take(cands, np.full(m, np.nan), "random", n_neg - len(neg))

        for s_, kind, k_ in pos + neg:
            windows.append(x[s_:s_ + w].copy())
            rows.append({**meta, "start": s_, "kind": kind, "onset_offset": k_})
    _need(bool(windows), "no windows could be cut; make the recordings longer or the event rate higher")
    info = pd.DataFrame(rows)
    scores = (info["kind"] == "positive").to_numpy().astype(np.int64)
    return np.stack(windows), scores, info
