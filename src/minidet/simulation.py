"""Ground-truth recordings: synaptic events in recording-like noise, with what was put where.

(About 760 lines: the settings, events, transients, noise and the streamed files of one
simulated recording share one random stream, so they stay together.)

:func:`simulate` returns a :class:`~minidet.recording.Recording` and its :class:`Truth`;
:func:`simulate_to_file` streams the same trace chunk by chunk into an HDF5 file (float64,
float32 or int16 with a scale) or an ABF1 file (int16), so an hour at 50 kHz needs little
memory, and writes the truth next to it.

The trace is the sum of

- events: ``amplitude * (1 - exp(-t/rise)) * exp(-t/decay) / peak`` from their onsets (the
  peak equals the amplitude), onsets a Poisson process (so events overlap), amplitudes
  log-normal, rise and decay time constants log-normal around their medians;
- coloured noise with the shape of a :class:`~minidet.noise.NoiseSpectrum` and SD
  ``noise_sd``; line hum (``hum_frequency_hz`` and harmonics); slow drift (a few random slow
  sinusoids); a constant ``baseline``;
- optional non-synaptic transients a good detector should reject: ``spike`` (sharp, < 0.3 ms,
  either polarity), ``biphasic`` (a derivative-of-Gaussian blip), ``step`` (an instant step
  relaxing over 5-30 ms, either polarity) and ``sag`` (a slow 5-20 ms Gaussian dip).

The SNR is ``20 * log10(median amplitude / noise_sd)`` dB (``noise_sd`` is the SD of the
coloured noise, without hum and drift). Give ``snr_db`` to set the median amplitude from it.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import asdict, dataclass, field
from typing import Any, Callable

import numpy as np
import pandas as pd

from .errors import OutputError, ParameterError
from .fsutil import atomic_path, atomic_write
from .params import check as check_param
from .noise import NoiseSpectrum, coloured_noise, noise_kernel, resolve_spectrum
from .recording import Recording

__all__ = [
    "SimulationSettings",
    "Truth",
    "TRANSIENT_KINDS",
    "simulate",
    "simulate_to_file",
    "int16_step",
    "truth_path_for",
    "write_truth",
    "read_truth",
    "snr_db",
]

TRANSIENT_KINDS = ("spike", "biphasic", "step", "sag")
_CHUNK = 1 << 20  # samples rendered at once
_CLIP_Z = 3.0  # log-normal draws are clipped at +-3 SD (keeps kernels finite)


def snr_db(amplitude: float, noise_sd: float) -> float:
    """``20 * log10(amplitude / noise_sd)``."""
    return 20.0 * math.log10(amplitude / noise_sd)


def _positive(name: str, value: Any, allow_zero: bool = False) -> None:
    ok = isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)
    ok = ok and math.isfinite(value) and (value >= 0 if allow_zero else value > 0)
    if not ok:
        bound = ">= 0" if allow_zero else "> 0"
        raise ParameterError(f"{name} must be a finite number {bound}, got {value!r}")


@dataclass(frozen=True)
class SimulationSettings:
    """What to simulate. Amplitudes and SDs are in ``unit``; times in s; rates in Hz.

    ``*_log_sd`` are the SDs of the natural log of log-normal draws (0 = all equal).
    """

    duration_s: float = 60.0
    sampling_rate: float = 50_000.0
    unit: str = "pA"
    event_rate_hz: float = 5.0
    event_direction: str = "negative"
    amplitude_median: float = 10.0
    amplitude_log_sd: float = 0.4
    snr_db: float | None = None
    rise_tau_s: float = 0.15e-3
    rise_tau_log_sd: float = 0.25
    decay_tau_s: float = 1.2e-3
    decay_tau_log_sd: float = 0.25
    noise_sd: float = 1.0
    noise_spectrum: NoiseSpectrum | str = "gc"
    hum_amplitude: float = 0.0
    hum_frequency_hz: float = 50.0
    hum_harmonics: int = 3
    drift_sd: float = 0.0
    drift_max_hz: float = 0.2
    baseline: float = 0.0
    transient_rate_hz: float = 0.0
    transient_kinds: tuple[str, ...] = TRANSIENT_KINDS
    transient_amplitude_factor: float = 2.0

    def __post_init__(self) -> None:
        for name in ("duration_s", "sampling_rate", "rise_tau_s", "decay_tau_s", "hum_frequency_hz",
                     "drift_max_hz", "transient_amplitude_factor"):
            _positive(name, getattr(self, name))
        for name in ("event_rate_hz", "amplitude_log_sd", "rise_tau_log_sd", "decay_tau_log_sd", "noise_sd",
                     "hum_amplitude", "drift_sd", "transient_rate_hz"):
            _positive(name, getattr(self, name), allow_zero=True)
        if self.snr_db is None:
            _positive("amplitude_median", self.amplitude_median)
        else:
            if not (isinstance(self.snr_db, (int, float)) and math.isfinite(self.snr_db)):
                raise ParameterError(f"snr_db must be a finite number of dB, got {self.snr_db!r}")
            if self.noise_sd <= 0:
                raise ParameterError("snr_db needs noise_sd > 0 (the SNR is relative to the noise SD)")
        if not isinstance(self.baseline, (int, float)) or not math.isfinite(self.baseline):
            raise ParameterError(f"baseline must be a finite number, got {self.baseline!r}")
        if self.decay_tau_s <= self.rise_tau_s:
            raise ParameterError(
                f"decay_tau_s ({self.decay_tau_s:g} s) must be longer than rise_tau_s ({self.rise_tau_s:g} s)"
            )
        check_param("event_direction", self.event_direction)
        n = self.n_samples
        if n < 2:
            raise ParameterError(
                f"duration_s={self.duration_s:g} at {self.sampling_rate:g} Hz gives {n} samples; need >= 2"
            )
        if self.rise_tau_s * self.sampling_rate < 0.05:
            raise ParameterError(
                f"rise_tau_s={self.rise_tau_s:g} s is under 1/20 of a sample at {self.sampling_rate:g} Hz; "
                "raise the sampling rate or the rise time"
            )
        if self.hum_amplitude > 0 and self.hum_frequency_hz >= self.sampling_rate / 2:
            raise ParameterError(
                f"hum_frequency_hz={self.hum_frequency_hz:g} must be below the Nyquist frequency "
                f"({self.sampling_rate / 2:g} Hz)"
            )
        if not isinstance(self.hum_harmonics, (int, np.integer)) or self.hum_harmonics < 1:
            raise ParameterError(f"hum_harmonics must be an integer >= 1, got {self.hum_harmonics!r}")
        kinds = tuple(self.transient_kinds)
        object.__setattr__(self, "transient_kinds", kinds)
        bad = [k for k in kinds if k not in TRANSIENT_KINDS]
        if bad or (self.transient_rate_hz > 0 and not kinds):
            raise ParameterError(f"transient_kinds must be a non-empty selection of {TRANSIENT_KINDS}, got {kinds}")
        if not isinstance(self.noise_spectrum, (NoiseSpectrum, str)):
            raise ParameterError(
                f"noise_spectrum must be a NoiseSpectrum, a name or a path, got {self.noise_spectrum!r}"
            )
        expected_events = self.event_rate_hz * self.duration_s
        if expected_events > 5e7:
            raise ParameterError(f"event_rate_hz x duration_s = {expected_events:.3g} events is too many (max 5e7)")

    @property
    def n_samples(self) -> int:
        return int(round(self.duration_s * self.sampling_rate))

    @property
    def median_amplitude(self) -> float:
        """Median event amplitude (unit): from ``snr_db`` when given, else ``amplitude_median``."""
        if self.snr_db is not None:
            return self.noise_sd * 10.0 ** (self.snr_db / 20.0)
        return float(self.amplitude_median)

    @property
    def effective_snr_db(self) -> float:
        """The SNR in dB (inf without noise)."""
        if self.noise_sd == 0:
            return math.inf
        return snr_db(self.median_amplitude, self.noise_sd)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        spec = self.noise_spectrum
        d["noise_spectrum"] = spec.name if isinstance(spec, NoiseSpectrum) else spec
        d["transient_kinds"] = list(self.transient_kinds)
        return d


@dataclass(frozen=True, eq=False)
class Truth:
    """What a simulated recording holds.

    ``events``: one row per event, sorted by onset: ``onset_sample`` (float, exact),
    ``onset_time_s``, ``amplitude`` (magnitude, unit), ``rise_tau_s``, ``decay_tau_s``,
    ``peak_time_s`` (absolute), ``rise_time_s`` (10-90 %), ``half_decay_s`` (peak to 50 %),
    ``half_width_s`` (50 % to 50 %). ``transients``: ``kind``, ``start_sample`` (int),
    ``start_time_s``, ``duration_s``, ``amplitude`` (signed, unit), ``time_constant_s``.
    """

    events: pd.DataFrame
    transients: pd.DataFrame
    sampling_rate: float
    n_samples: int
    unit: str = "pA"
    event_direction: str = "negative"
    noise_sd: float = 0.0
    snr_db: float = math.inf
    seed: int | None = None
    settings: dict[str, Any] = field(default_factory=dict)

    @property
    def duration_s(self) -> float:
        return self.n_samples / self.sampling_rate

    @property
    def n_events(self) -> int:
        return int(len(self.events))

    def transient_spans(self) -> np.ndarray:
        """``(n, 2)`` int array of transient ``[start, stop)`` sample ranges."""
        start = self.transients["start_sample"].to_numpy(dtype=np.int64)
        stop = start + np.ceil(self.transients["duration_s"].to_numpy(float) * self.sampling_rate).astype(np.int64)
        return np.column_stack([start, stop]) if start.size else np.zeros((0, 2), dtype=np.int64)

    def summary(self) -> str:
        amp = self.events["amplitude"]
        med = float(amp.median()) if len(amp) else float("nan")
        return (
            f"{self.n_events} events in {self.duration_s:g} s at {self.sampling_rate:g} Hz "
            f"({self.event_direction}), median amplitude {med:.3g} {self.unit}, noise SD {self.noise_sd:.3g} "
            f"{self.unit}, SNR {self.snr_db:.1f} dB, {len(self.transients)} transients"
        )


# ----------------------------------------------------------------------------- kinetics helpers
def _shape(u: np.ndarray, k: np.ndarray) -> np.ndarray:
    """Normalised-time event shape ``(1 - exp(-u)) * exp(-u / k)``, ``u = t / rise``, ``k = decay / rise``."""
    return (1.0 - np.exp(-u)) * np.exp(-u / k)


def _crossing(k: np.ndarray, lo: np.ndarray, hi: np.ndarray, level: np.ndarray) -> np.ndarray:
    """``u`` in ``[lo, hi]`` where the shape crosses ``level`` (monotone there), by bisection."""
    f_lo = _shape(lo, k) - level
    for _ in range(60):
        mid = 0.5 * (lo + hi)
        f_mid = _shape(mid, k) - level
        same = np.sign(f_mid) == np.sign(f_lo)
        lo = np.where(same, mid, lo)
        f_lo = np.where(same, f_mid, f_lo)
        hi = np.where(same, hi, mid)
    return 0.5 * (lo + hi)


def event_kinetics(rise_tau_s: np.ndarray, decay_tau_s: np.ndarray) -> dict[str, np.ndarray]:
    """Peak time, 10-90 % rise time, half decay and half width (s) of rise-and-decay events."""
    r = np.asarray(rise_tau_s, dtype=np.float64)
    d = np.asarray(decay_tau_s, dtype=np.float64)
    k = d / r
    u_peak = np.log1p(k)
    peak = _shape(u_peak, k)
    zero = np.zeros_like(k)
    far = u_peak + 50.0 * k
    u10 = _crossing(k, zero, u_peak, 0.1 * peak)
    u90 = _crossing(k, zero, u_peak, 0.9 * peak)
    u50_up = _crossing(k, zero, u_peak, 0.5 * peak)
    u50_down = _crossing(k, u_peak, far, 0.5 * peak)
    return {
        "peak_delay_s": u_peak * r,
        "rise_time_s": (u90 - u10) * r,
        "half_decay_s": (u50_down - u_peak) * r,
        "half_width_s": (u50_down - u50_up) * r,
        "peak_value": peak,
    }


# ----------------------------------------------------------------------------- drawing the truth
def _lognormal(rng: np.random.Generator, median: float, log_sd: float, n: int) -> np.ndarray:
    z = np.clip(rng.standard_normal(n), -_CLIP_Z, _CLIP_Z)
    return median * np.exp(log_sd * z)


def _draw_events(s: SimulationSettings, rng: np.random.Generator) -> pd.DataFrame:
    n = int(rng.poisson(s.event_rate_hz * s.duration_s))
    onsets = np.sort(rng.uniform(0.0, s.duration_s, n))
    amplitude = _lognormal(rng, s.median_amplitude, s.amplitude_log_sd, n)
    rise = _lognormal(rng, s.rise_tau_s, s.rise_tau_log_sd, n)
    decay = _lognormal(rng, s.decay_tau_s, s.decay_tau_log_sd, n)
    # independent draws could invert the two time constants; keep decay >= 1.5 x rise
    rise = np.minimum(rise, decay / 1.5)
    kin = event_kinetics(rise, decay)
    return pd.DataFrame({
        "onset_sample": onsets * s.sampling_rate,
        "onset_time_s": onsets,
        "amplitude": amplitude,
        "rise_tau_s": rise,
        "decay_tau_s": decay,
        "peak_time_s": onsets + kin["peak_delay_s"],
        "rise_time_s": kin["rise_time_s"],
        "half_decay_s": kin["half_decay_s"],
        "half_width_s": kin["half_width_s"],
    })


def _draw_transients(s: SimulationSettings, rng: np.random.Generator) -> pd.DataFrame:
    n = int(rng.poisson(s.transient_rate_hz * s.duration_s)) if s.transient_rate_hz > 0 else 0
    kinds = np.array(s.transient_kinds, dtype=object)[rng.integers(0, len(s.transient_kinds), n)] if n else \
        np.zeros(0, dtype=object)
    start_s = np.sort(rng.uniform(0.0, s.duration_s, n))
    magnitude = _lognormal(rng, s.transient_amplitude_factor * s.median_amplitude, 0.3, n)
    event_sign = -1.0 if s.event_direction == "negative" else 1.0
    random_sign = rng.choice([-1.0, 1.0], n)
    tau = np.empty(n)
    duration = np.empty(n)
    sign = np.empty(n)
    for kind, lo, hi, span in (("spike", 0.05e-3, 0.1e-3, 10.0), ("biphasic", 0.05e-3, 0.2e-3, 8.0),
                               ("step", 5e-3, 30e-3, 8.0), ("sag", 5e-3, 20e-3, 8.0)):
        sel = kinds == kind
        tau[sel] = rng.uniform(lo, hi, int(sel.sum()))
        duration[sel] = span * tau[sel]
        sign[sel] = event_sign if kind == "sag" else random_sign[sel]
    start_sample = np.floor(start_s * s.sampling_rate).astype(np.int64)
    return pd.DataFrame({
        "kind": pd.Series(kinds, dtype=object),
        "start_sample": start_sample,
        "start_time_s": start_sample / s.sampling_rate,
        "duration_s": duration,
        "amplitude": sign * magnitude,
        "time_constant_s": tau,
    })


def _transient_shape(kind: str, t: np.ndarray, tau: float) -> np.ndarray:
    """Shape (peak magnitude 1) of a transient at times ``t`` (s) from its start."""
    if kind == "spike":
        rise = tau / 5.0
        g = (1 - np.exp(-t / rise)) * np.exp(-t / tau)
        k = tau / rise
        peak = (1 - 1 / (1 + k)) * np.exp(-math.log1p(k) / k)
        return g / peak
    if kind == "biphasic":
        x = (t - 4 * tau) / tau
        return -x * np.exp(0.5 - 0.5 * x * x)
    if kind == "step":
        return np.exp(-t / tau)
    # sag
    x = (t - 4 * tau) / tau
    return np.exp(-0.5 * x * x)


# ----------------------------------------------------------------------------- rendering
@dataclass(frozen=True)
class _Plan:
    """Everything needed to render any stretch of the trace."""

    settings: SimulationSettings
    events: pd.DataFrame
    transients: pd.DataFrame
    kernel: np.ndarray
    noise_seed: int
    hum_phases: np.ndarray
    drift_freqs: np.ndarray
    drift_phases: np.ndarray
    drift_scale: float


def _plan(settings: SimulationSettings, seed: int) -> _Plan:
    streams = np.random.SeedSequence(seed).spawn(4)
    rng_ev, rng_tr, rng_misc, rng_noise = (np.random.default_rng(x) for x in streams)
    events = _draw_events(settings, rng_ev)
    transients = _draw_transients(settings, rng_tr)
    spectrum = resolve_spectrum(settings.noise_spectrum)
    kernel = noise_kernel(spectrum, settings.sampling_rate)
    hum_phases = rng_misc.uniform(0, 2 * np.pi, settings.hum_harmonics)
    n_drift = 6
    drift_freqs = rng_misc.uniform(0.02, 1.0, n_drift) * settings.drift_max_hz
    drift_phases = rng_misc.uniform(0, 2 * np.pi, n_drift)
    drift_scale = settings.drift_sd / math.sqrt(n_drift / 2.0)  # SD of a sum of n unit sines
    noise_seed = int(rng_noise.integers(0, 2**63 - 1))
    return _Plan(settings, events, transients, kernel, noise_seed, hum_phases, drift_freqs, drift_phases,
                 drift_scale)


def _render(plan: _Plan, start: int, stop: int) -> np.ndarray:
    """Samples ``[start, stop)`` of the simulated trace."""
    s = plan.settings
    fs = s.sampling_rate
    out = np.full(stop - start, float(s.baseline))
    if s.noise_sd > 0:
        out += s.noise_sd * coloured_noise(plan.kernel, plan.noise_seed, start, stop)
    t = np.arange(start, stop) / fs
    if s.hum_amplitude > 0:
        for h, phase in enumerate(plan.hum_phases, start=1):
            f = h * s.hum_frequency_hz
            if f < fs / 2:
                out += (s.hum_amplitude / h) * np.sin(2 * np.pi * f * t + phase)
    if s.drift_sd > 0:
        for f, phase in zip(plan.drift_freqs, plan.drift_phases):
            out += plan.drift_scale * np.sin(2 * np.pi * f * t + phase)
    _add_events(out, plan, start, stop)
    _add_transients(out, plan, start, stop)
    return out


def _add_events(out: np.ndarray, plan: _Plan, start: int, stop: int) -> None:
    ev = plan.events
    if ev.empty:
        return
    s = plan.settings
    fs = s.sampling_rate
    onset = ev["onset_sample"].to_numpy()
    rise = ev["rise_tau_s"].to_numpy()
    decay = ev["decay_tau_s"].to_numpy()
    amp = ev["amplitude"].to_numpy()
    sign = -1.0 if s.event_direction == "negative" else 1.0
    length = int(math.ceil(fs * (rise.max() * math.log1p(decay.max() / rise.min()) + 10.0 * decay.max()))) + 2
    first = np.ceil(onset).astype(np.int64)
    lo, hi = np.searchsorted(first, [start - length + 1, stop])
    offsets = np.arange(length)
    batch = max(1, 4_000_000 // length)
    for b0 in range(lo, hi, batch):
        b1 = min(b0 + batch, hi)
        pos = first[b0:b1, None] + offsets[None, :]
        tt = (pos - onset[b0:b1, None]) / fs
        r = rise[b0:b1, None]
        d = decay[b0:b1, None]
        k = d / r
        peak = _shape(np.log1p(k), k)
        vals = (sign * amp[b0:b1, None] / peak) * (1.0 - np.exp(-tt / r)) * np.exp(-tt / d)
        keep = (pos >= start) & (pos < stop)
        out += np.bincount((pos[keep] - start), weights=vals[keep], minlength=stop - start)


def _add_transients(out: np.ndarray, plan: _Plan, start: int, stop: int) -> None:
    tr = plan.transients
    if tr.empty:
        return
    fs = plan.settings.sampling_rate
    first = tr["start_sample"].to_numpy()
    last = first + np.ceil(tr["duration_s"].to_numpy() * fs).astype(np.int64)
    for i in np.flatnonzero((last > start) & (first < stop)):
        a, b = max(first[i], start), min(last[i], stop)
        t = (np.arange(a, b) - first[i]) / fs
        row = tr.iloc[i]
        out[a - start:b - start] += row["amplitude"] * _transient_shape(row["kind"], t, row["time_constant_s"])


def _truth(plan: _Plan, seed: int) -> Truth:
    s = plan.settings
    return Truth(
        events=plan.events,
        transients=plan.transients,
        sampling_rate=s.sampling_rate,
        n_samples=s.n_samples,
        unit=s.unit,
        event_direction=s.event_direction,
        noise_sd=float(s.noise_sd),
        snr_db=float(s.effective_snr_db),
        seed=seed,
        settings=s.to_dict(),
    )


def _seed(seed: int | None) -> int:
    if seed is None:
        return int(np.random.SeedSequence().entropy % (2**63))
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ParameterError(f"seed must be a non-negative integer or None, got {seed!r}")
    return int(seed)


# ----------------------------------------------------------------------------- public
def simulate(settings: SimulationSettings | None = None, seed: int | None = None) -> tuple[Recording, Truth]:
    """Simulate a recording in memory.

    Parameters
    ----------
    settings
        :class:`SimulationSettings` (defaults: 60 s of GC-like events at 50 kHz).
    seed
        Non-negative integer; the same seed and settings give the same trace. ``None`` draws
        one (recorded in the truth).

    Returns
    -------
    recording, truth
    """
    settings = settings or SimulationSettings()
    seed = _seed(seed)
    plan = _plan(settings, seed)
    n = settings.n_samples
    samples = np.empty(n)
    for a in range(0, n, _CHUNK):
        b = min(a + _CHUNK, n)
        samples[a:b] = _render(plan, a, b)
    truth = _truth(plan, seed)
    recording = Recording(
        samples=samples,
        sampling_rate=settings.sampling_rate,
        unit=settings.unit,
        channel="simulated",
        metadata={"simulated": True, "seed": seed, "snr_db": truth.snr_db, "settings": truth.settings},
    )
    return recording, truth


def truth_path_for(recording_path: str) -> str:
    """``OUT.h5`` -> ``OUT.truth.h5``."""
    root, _ = os.path.splitext(recording_path)
    return root + ".truth.h5"


def int16_step(plan_or_settings: Any, seed: int | None = None) -> tuple[float, float]:
    """``(step, offset)`` for storing a simulated trace as int16 (``value = raw * step +
    offset``): the offset is the baseline and 32000 steps cover the largest excursion the
    simulation can reach from it -- 8 noise SDs, hum and drift at their peaks, the largest
    sum of event amplitudes within 5 decay time constants (plus the tails of earlier ones) and
    the largest transient."""
    plan = plan_or_settings if isinstance(plan_or_settings, _Plan) else _plan(plan_or_settings, _seed(seed))
    s = plan.settings
    reach = 8.0 * s.noise_sd
    fs = s.sampling_rate
    reach += sum(s.hum_amplitude / h for h in range(1, s.hum_harmonics + 1) if h * s.hum_frequency_hz < fs / 2)
    reach += abs(plan.drift_scale) * len(plan.drift_freqs) if s.drift_sd > 0 else 0.0
    ev = plan.events
    if not ev.empty:
        onsets = ev["onset_sample"].to_numpy()
        order = np.argsort(onsets, kind="stable")
        onsets, amps = onsets[order], np.abs(ev["amplitude"].to_numpy()[order])
        window = 5.0 * float(ev["decay_tau_s"].max()) * fs
        csum = np.concatenate(([0.0], np.cumsum(amps)))
        first = np.searchsorted(onsets, onsets - window, side="left")
        most = float(np.max(csum[np.arange(1, onsets.size + 1)] - csum[first]))
        reach += most / (1.0 - math.exp(-5.0))  # earlier windows add at most e^-5 of that each
    if not plan.transients.empty:
        reach += 2.0 * float(np.abs(plan.transients["amplitude"]).max())
    reach = max(reach, 1e-12)
    return reach / 32_000.0, float(s.baseline)


def _quantize(block: np.ndarray, step: float, offset: float) -> tuple[np.ndarray, int]:
    raw = np.rint((block - offset) / step)
    clipped = int(np.count_nonzero(np.abs(raw) > 32_767))
    return np.clip(raw, -32_767, 32_767).astype(np.int16), clipped


def simulate_to_file(
    path: str,
    settings: SimulationSettings | None = None,
    seed: int | None = None,
    truth_path: str | None = None,
    dtype: str | None = None,
    overwrite: bool = False,
    progress: Callable[[int, int], None] | None = None,
) -> Truth:
    """Simulate straight into a file, chunk by chunk (memory does not grow with the
    duration), and write the truth.

    ``path`` ending in ``.abf``: a gap-free, one-channel ABF1 file of int16 samples, as an
    amplifier's digitizer stores them (the sampling rate must survive ABF1's float32
    microsecond interval: 50 kHz, 20 kHz, 10 kHz ... do). Otherwise HDF5: one dataset
    ``trace`` with attributes ``sampling_rate`` (Hz) and ``unit``; ``dtype`` ``"float64"``
    (default), ``"float32"`` or ``"int16"`` (then with CF attributes ``scale_factor`` and
    ``add_offset``: ``value = raw * scale_factor + add_offset``). int16 steps come from
    :func:`int16_step` (about 1/32000 of the largest excursion; the quantization error is at
    most half a step). Both read back with :func:`minidet.load`. Files are written under a
    temporary name and renamed when complete. The truth goes to ``truth_path`` (default
    :func:`truth_path_for`; ``.h5`` or ``.npz``). ``progress(done, total)`` is called after
    each chunk.
    """
    import h5py

    settings = settings or SimulationSettings()
    is_abf = path.lower().endswith(".abf")
    if dtype is None:
        dtype = "int16" if is_abf else "float64"
    if dtype not in ("float64", "float32", "int16"):
        raise ParameterError(f"dtype must be 'float64', 'float32' or 'int16', got {dtype!r}")
    if is_abf and dtype != "int16":
        raise ParameterError(f"ABF1 files store int16 samples; dtype {dtype!r} needs an HDF5 file (.h5)")
    truth_path = truth_path or truth_path_for(path)
    if os.path.abspath(truth_path) == os.path.abspath(path):
        raise ParameterError(f"the truth file must differ from the recording file ({path})")
    for p in (path, truth_path):
        if os.path.exists(p) and not overwrite:
            raise OutputError(f"{p} exists; choose another name or overwrite it (--force)")
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise OutputError(f"the folder {folder} does not exist")
    seed = _seed(seed)
    plan = _plan(settings, seed)
    truth = _truth(plan, seed)
    n = settings.n_samples
    step, offset = int16_step(plan) if dtype == "int16" else (1.0, 0.0)
    clipped = 0
    with atomic_path(path) as tmp:  # the recording appears only once its truth is written
        if is_abf:
            from .io.abf import Abf1Writer

            with open(tmp, "wb") as fh:
                writer = Abf1Writer(fh, n, settings.sampling_rate, settings.unit, step, offset)
                step, offset = writer.gain, writer.offset  # what the header stores exactly
                for a in range(0, n, _CHUNK):
                    b = min(a + _CHUNK, n)
                    raw, bad = _quantize(_render(plan, a, b), step, offset)
                    writer.write(raw)
                    clipped += bad
                    if progress is not None:
                        progress(b, n)
                writer.close()
        else:
            with h5py.File(tmp, "w") as h5:
                ds = h5.create_dataset("trace", shape=(n,), dtype=dtype, chunks=(min(n, 1 << 18),))
                ds.attrs["sampling_rate"] = settings.sampling_rate
                ds.attrs["unit"] = settings.unit
                if dtype == "int16":
                    ds.attrs["scale_factor"] = step
                    ds.attrs["add_offset"] = offset
                h5.attrs["simulated"] = True
                h5.attrs["seed"] = seed
                h5.attrs["snr_db"] = truth.snr_db
                h5.attrs["settings"] = json.dumps(truth.settings)
                for a in range(0, n, _CHUNK):
                    b = min(a + _CHUNK, n)
                    block = _render(plan, a, b)
                    if dtype == "int16":
                        block, bad = _quantize(block, step, offset)
                        clipped += bad
                    ds[a:b] = block
                    if progress is not None:
                        progress(b, n)
                if dtype == "int16":
                    ds.attrs["clipped_samples"] = clipped
        write_truth(truth, truth_path)
    if clipped:
        import warnings

        warnings.warn(f"{clipped} samples of {path} were clipped to the int16 range (step {step:g} {settings.unit})",
                      stacklevel=2)
    return truth


# ----------------------------------------------------------------------------- truth files
_TRUTH_ATTRS = ("sampling_rate", "n_samples", "unit", "event_direction", "noise_sd", "snr_db")


def write_truth(truth: Truth, path: str) -> None:
    """Write a :class:`Truth` as HDF5 (``.h5``/``.hdf5``: groups ``events`` and ``transients``,
    one dataset per column, metadata as root attributes) or ``.npz`` (keys
    ``events/COLUMN``, ``transients/COLUMN`` and the metadata)."""
    meta: dict[str, Any] = {k: getattr(truth, k) for k in _TRUTH_ATTRS}
    meta["seed"] = -1 if truth.seed is None else truth.seed
    meta["settings"] = json.dumps(truth.settings)
    tables = {"events": truth.events, "transients": truth.transients}
    lower = path.lower()
    if lower.endswith(".npz"):
        arrays = {f"{t}/{c}": _column(df[c]) for t, df in tables.items() for c in df.columns}
        arrays.update({k: np.array(v) for k, v in meta.items()})
        with atomic_write(path, "wb") as fh:
            np.savez(fh, **arrays)
        return
    if not lower.endswith((".h5", ".hdf5")):
        raise ParameterError(f"the truth file must end in .h5, .hdf5 or .npz, got {path}")
    import h5py

    with atomic_path(path) as tmp:
        with h5py.File(tmp, "w") as h5:
            for key, value in meta.items():
                h5.attrs[key] = value
            h5.attrs["minidet_truth"] = 1
            for name, df in tables.items():
                group = h5.create_group(name)
                for column in df.columns:
                    group.create_dataset(column, data=_column(df[column]))


def _column(series: pd.Series) -> np.ndarray:
    if series.dtype == object:
        return np.array([str(v) for v in series], dtype="S16")
    return series.to_numpy()


def _decode(values: np.ndarray) -> np.ndarray:
    if values.dtype.kind == "S":
        return np.array([v.decode() for v in values], dtype=object)
    return values


def read_truth(path: str) -> Truth:
    """Read a truth file written by :func:`write_truth`."""
    from .errors import CorruptFileError, RecordingNotFoundError

    if not os.path.exists(path):
        raise RecordingNotFoundError(f"no such truth file: {path}")
    tables: dict[str, dict[str, np.ndarray]] = {"events": {}, "transients": {}}
    meta: dict[str, Any] = {}
    if path.lower().endswith(".npz"):
        with np.load(path, allow_pickle=False) as z:
            for key in z.files:
                if "/" in key:
                    table, column = key.split("/", 1)
                    tables.setdefault(table, {})[column] = _decode(z[key])
                else:
                    meta[key] = z[key][()]
    else:
        import h5py

        try:
            with h5py.File(path, "r") as h5:
                if "events" not in h5:
                    raise CorruptFileError(f"{path} is not a minidet truth file (no 'events' group)")
                meta = {k: h5.attrs[k] for k in h5.attrs}
                for table in ("events", "transients"):
                    if table in h5:
                        tables[table] = {c: _decode(h5[table][c][()]) for c in h5[table]}
        except OSError as exc:
            raise CorruptFileError(f"{path} is not a readable HDF5 file: {exc}") from None
    missing = [k for k in ("sampling_rate", "n_samples") if k not in meta]
    if missing or (tables["events"] and "onset_sample" not in tables["events"]):
        raise CorruptFileError(f"{path} is not a minidet truth file (missing {missing or 'onset_sample'})")

    def text(v: Any) -> str:
        return v.decode() if isinstance(v, bytes) else str(v)

    events = pd.DataFrame(tables["events"])
    if events.empty:
        events = pd.DataFrame({"onset_sample": np.zeros(0), "onset_time_s": np.zeros(0), "amplitude": np.zeros(0)})
    seed = int(meta.get("seed", -1))
    return Truth(
        events=events,
        transients=pd.DataFrame(tables["transients"]) if tables["transients"] else _empty_transients(),
        sampling_rate=float(meta["sampling_rate"]),
        n_samples=int(meta["n_samples"]),
        unit=text(meta.get("unit", "pA")),
        event_direction=text(meta.get("event_direction", "negative")),
        noise_sd=float(meta.get("noise_sd", float("nan"))),
        snr_db=float(meta.get("snr_db", float("nan"))),
        seed=None if seed < 0 else seed,
        settings=json.loads(text(meta["settings"])) if "settings" in meta else {},
    )


def _empty_transients() -> pd.DataFrame:
    return pd.DataFrame({"kind": pd.Series([], dtype=object), "start_sample": np.zeros(0, np.int64),
                         "start_time_s": np.zeros(0), "duration_s": np.zeros(0), "amplitude": np.zeros(0),
                         "time_constant_s": np.zeros(0)})

