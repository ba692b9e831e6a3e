"""Recording-like noise: a power spectrum, and coloured noise that follows it.

A :class:`NoiseSpectrum` holds the *shape* of a power spectral density (only relative
values matter; the simulator sets the level from ``noise_sd``). It comes from

- a name: ``"gc"`` (the default: cerebellar granule-cell recordings, see :data:`GC_PSD`),
  ``"white"``, ``"pink"`` (1/f);
- event-free stretches of a real recording (:meth:`NoiseSpectrum.from_recording`, Welch
  periodograms median-averaged over short segments, so the minority of segments that
  hold events barely matter);
- the score-0 (noise) snippets of a training dataset (:meth:`NoiseSpectrum.from_dataset`).

:func:`noise_kernel` turns it into a zero-phase FIR filter with unit energy, and
:func:`coloured_noise` filters block-seeded white noise with it, so any stretch
``[start, stop)`` of an arbitrarily long noise trace can be produced on its own and equals
the same stretch of the whole trace (the simulator streams long recordings this way).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

import numpy as np
from scipy import signal

from .errors import ParameterError

__all__ = [
    "NoiseSpectrum",
    "GC_PSD",
    "resolve_spectrum",
    "noise_kernel",
    "coloured_noise",
    "white_noise",
    "estimate_noise_sd",
    "recording_noise_sd",
]

# Relative PSD of 86 score-0 (noise) snippets of cerebellar granule-cell recordings
# (miniML's gc_training_example.h5, 50 kHz, MIT licence, Delvendahl lab): Welch, 600-sample
# segments, linear detrend, mean over snippets, averaged in 250 Hz bands centred at
# 166.7 + 250 k Hz, normalised to the maximum. Band-limited around 5-6 kHz by the amplifier's
# filter; the absolute level in those recordings is an SD of about 0.9 pA.
GC_PSD = np.array([
    0.505, 0.443, 0.65, 0.724, 0.802, 0.676, 0.886, 0.86, 1, 0.927, 0.958, 0.699, 0.745, 0.655,
    0.521, 0.456, 0.436, 0.335, 0.252, 0.213, 0.147, 0.153, 0.105, 0.0826, 0.0662, 0.0541,
    0.0396, 0.0244, 0.0231, 0.0159, 0.0131, 0.00991, 0.00855, 0.00537, 0.00549, 0.00433,
    0.00315, 0.00277, 0.00233, 0.00181, 0.00152, 0.00102, 0.000883, 0.000699, 0.00063,
    0.000485, 0.000417, 0.00038, 0.000262, 0.000248, 0.000215, 0.000169, 0.000134, 0.000129,
    9.62e-05, 9.38e-05, 9.43e-05, 6.48e-05, 5.96e-05, 0.000141, 5.23e-05, 4.56e-05, 4.01e-05,
    3.44e-05, 2.86e-05, 2.54e-05, 2.7e-05, 2.63e-05, 2.88e-05, 3.34e-05, 4.96e-05, 6.84e-05,
    4.39e-05, 2.33e-05, 1.59e-05, 1.33e-05, 1.23e-05, 1.26e-05, 1.08e-05, 2.93e-05, 1.4e-05,
    9.39e-06, 8.44e-06, 8.43e-06, 8.89e-06, 9.11e-06, 9.07e-06, 7.56e-06, 8.68e-06, 6.91e-06,
    6.45e-06, 7.89e-06, 8.68e-06, 7.42e-06, 7.15e-06, 7.56e-06, 8.24e-06, 9.92e-06, 7.65e-06,
    7.08e-06,
])
_GC_FREQ = 500.0 / 3.0 + 250.0 * np.arange(GC_PSD.size)

_BLOCK = 1 << 16  # white-noise samples per seeded block


@dataclass(frozen=True, eq=False)
class NoiseSpectrum:
    """Shape of a noise power spectral density.

    Parameters
    ----------
    frequencies_hz
        Strictly increasing frequencies (Hz), >= 0, at least two.
    psd
        Power density at those frequencies (any unit^2/Hz; only the shape is used), >= 0,
        not all zero. Below the first and above the last frequency it is held constant.
    name
        Where it came from, for the record.
    """

    frequencies_hz: np.ndarray
    psd: np.ndarray
    name: str = "custom"

    def __post_init__(self) -> None:
        f = np.asarray(self.frequencies_hz, dtype=np.float64).reshape(-1)
        p = np.asarray(self.psd, dtype=np.float64).reshape(-1)
        if f.size != p.size or f.size < 2:
            raise ParameterError(
                f"a noise spectrum needs >= 2 frequencies and as many PSD values, got {f.size} and {p.size}"
            )
        if not (np.all(np.isfinite(f)) and np.all(np.isfinite(p))):
            raise ParameterError("noise spectrum frequencies and PSD must be finite")
        if f[0] < 0 or np.any(np.diff(f) <= 0):
            raise ParameterError("noise spectrum frequencies must be >= 0 and strictly increasing")
        if np.any(p < 0) or not np.any(p > 0):
            raise ParameterError("noise spectrum PSD values must be >= 0 and not all zero")
        object.__setattr__(self, "frequencies_hz", f)
        object.__setattr__(self, "psd", p)

    # ------------------------------------------------------------------ builders
    @classmethod
    def white(cls) -> "NoiseSpectrum":
        return cls(np.array([0.0, 1e9]), np.array([1.0, 1.0]), name="white")

    @classmethod
    def pink(cls, corner_hz: float = 10.0) -> "NoiseSpectrum":
        """1/f above ``corner_hz`` (flat below it)."""
        f = np.concatenate(([0.0], np.geomspace(corner_hz, 1e6, 200)))
        return cls(f, corner_hz / np.maximum(f, corner_hz), name="pink")

    @classmethod
    def gc(cls) -> "NoiseSpectrum":
        """Granule-cell recording noise (see :data:`GC_PSD`)."""
        return cls(_GC_FREQ, GC_PSD, name="gc")

    @classmethod
    def from_snippets(cls, snippets: np.ndarray, sampling_rate: float, name: str = "snippets") -> "NoiseSpectrum":
        """Mean Welch periodogram of event-free snippets (rows of ``snippets``), each linearly detrended."""
        x = np.asarray(snippets, dtype=np.float64)
        if x.ndim == 1:
            x = x[np.newaxis, :]
        if x.ndim != 2 or x.shape[0] < 1 or x.shape[1] < 16:
            raise ParameterError(f"snippets must be (n, >= 16 samples), got shape {x.shape}")
        _check_rate(sampling_rate)
        x = x[np.all(np.isfinite(x), axis=1)]
        if x.shape[0] == 0:
            raise ParameterError("every snippet holds NaN/inf samples")
        f, p = signal.welch(x, fs=sampling_rate, nperseg=x.shape[1], detrend="linear", axis=-1)
        return cls(f[1:], p.mean(axis=0)[1:], name=name)

    @classmethod
    def from_recording(
        cls,
        recording,
        segment_s: float = 0.02,
        stretches: list[tuple[int, int]] | None = None,
    ) -> "NoiseSpectrum":
        """Welch PSD of a :class:`~minidet.recording.Recording`'s noise.

        ``stretches`` lists event-free ``(start, stop)`` sample ranges; without them the whole
        trace is used and the periodograms of ``segment_s``-long segments are
        median-averaged, which ignores the minority of segments that hold events.
        """
        rate = recording.sampling_rate
        nper = int(round(segment_s * rate))
        if nper < 16:
            raise ParameterError(f"segment_s={segment_s} gives {nper} samples at {rate:g} Hz; need >= 16")
        pieces = [(0, recording.n_samples)] if stretches is None else list(stretches)
        psds, weights = [], []
        for start, stop in pieces:
            seg = recording.samples[int(start):int(stop)]
            seg = seg[np.isfinite(seg)]
            if seg.size < nper:
                continue
            f, p = signal.welch(seg, fs=rate, nperseg=nper, detrend="linear", average="median")
            psds.append(p)
            weights.append(seg.size)
        if not psds:
            raise ParameterError(
                f"no stretch of the recording is at least {segment_s} s long; give longer event-free stretches"
            )
        p = np.average(np.array(psds), axis=0, weights=weights)
        return cls(f[1:], p[1:], name=f"recording:{recording.source or 'memory'}")

    @classmethod
    def from_dataset(cls, path: str, sampling_rate: float | None = None, score: int = 0) -> "NoiseSpectrum":
        """PSD of the snippets scored ``score`` (0 = noise) in a training dataset (HDF5 with
        datasets ``events`` (n, length) and ``scores`` (n,)); the sampling rate comes from an
        attribute ``sampling_rate`` (Hz) or ``sampling`` / ``dt`` (s), or the argument."""
        import h5py

        if not os.path.exists(path):
            from .errors import RecordingNotFoundError

            raise RecordingNotFoundError(f"no such dataset file: {path}")
        with h5py.File(path, "r") as h5:
            if "events" not in h5 or "scores" not in h5:
                raise ParameterError(f"{path} is not a training dataset (needs datasets 'events' and 'scores')")
            rate = sampling_rate
            if rate is None:
                for holder in (h5["events"], h5):
                    if "sampling_rate" in holder.attrs:
                        rate = float(holder.attrs["sampling_rate"])
                    elif "sampling" in holder.attrs:
                        rate = 1.0 / float(holder.attrs["sampling"])
                    elif "dt" in holder.attrs:
                        rate = 1.0 / float(holder.attrs["dt"])
                    if rate is not None:
                        break
            if rate is None:
                raise ParameterError(
                    f"{path} stores no sampling rate; give it (e.g. sampling_rate=50000 / --noise-sampling-rate)"
                )
            scores = np.asarray(h5["scores"][()]).reshape(-1)
            chosen = np.flatnonzero(scores == score)
            if chosen.size == 0:
                raise ParameterError(f"{path} holds no snippets with score {score}")
            snippets = np.asarray(h5["events"][()])[chosen]
        return cls.from_snippets(snippets, rate, name=f"dataset:{os.path.basename(path)}")

    # ------------------------------------------------------------------ file
    def save(self, path: str) -> None:
        """Write as ``.npz`` (frequencies_hz, psd, name)."""
        np.savez(path, frequencies_hz=self.frequencies_hz, psd=self.psd, name=np.array(self.name))

    @classmethod
    def load(cls, path: str) -> "NoiseSpectrum":
        with np.load(path) as z:
            if "frequencies_hz" not in z or "psd" not in z:
                raise ParameterError(f"{path} is not a noise spectrum file (needs frequencies_hz and psd)")
            return cls(z["frequencies_hz"], z["psd"], name=str(z["name"]) if "name" in z else path)

    def at(self, frequencies_hz: np.ndarray) -> np.ndarray:
        """PSD interpolated at ``frequencies_hz`` (held constant outside the table)."""
        return np.interp(frequencies_hz, self.frequencies_hz, self.psd)

    def __repr__(self) -> str:
        return (f"NoiseSpectrum({self.name!r}, {self.frequencies_hz.size} points, "
                f"{self.frequencies_hz[0]:g}-{self.frequencies_hz[-1]:g} Hz)")


def _check_rate(rate: float) -> None:
    if not (isinstance(rate, (int, float, np.integer, np.floating)) and math.isfinite(rate) and rate > 0):
        raise ParameterError(f"sampling_rate must be a positive number of Hz, got {rate!r}")


def resolve_spectrum(spec, sampling_rate: float | None = None) -> NoiseSpectrum:
    """A :class:`NoiseSpectrum` from a spectrum, a name (gc, white, pink) or a path.

    A path may be a ``.npz`` spectrum (:meth:`NoiseSpectrum.save`), a training dataset
    (HDF5 with ``events`` and ``scores``: its score-0 snippets) or any recording
    :func:`minidet.load` reads (its noise, median-averaged). ``sampling_rate`` is used for
    datasets that store none.
    """
    if isinstance(spec, NoiseSpectrum):
        return spec
    if not isinstance(spec, str):
        raise ParameterError(f"noise spectrum must be a NoiseSpectrum, a name or a path, got {spec!r}")
    builders = {"gc": NoiseSpectrum.gc, "white": NoiseSpectrum.white, "pink": NoiseSpectrum.pink}
    if spec in builders:
        return builders[spec]()
    if not os.path.exists(spec):
        raise ParameterError(f"noise spectrum {spec!r} is neither one of {sorted(builders)} nor an existing file")
    if spec.lower().endswith(".npz"):
        return NoiseSpectrum.load(spec)
    if spec.lower().endswith((".h5", ".hdf5")):
        import h5py

        try:
            with h5py.File(spec, "r") as h5:
                is_dataset = "events" in h5 and "scores" in h5
        except OSError:
            is_dataset = False
        if is_dataset:
            return NoiseSpectrum.from_dataset(spec, sampling_rate=sampling_rate)
    from .io import load

    return NoiseSpectrum.from_recording(load(spec))


def noise_kernel(spectrum: NoiseSpectrum, sampling_rate: float, length: int | None = None) -> np.ndarray:
    """Zero-phase FIR filter (odd ``length`` samples, sum of squares 1) whose output from unit
    white noise has the spectrum's shape up to ``sampling_rate / 2``.

    Default length: about 20 ms (frequency resolution ~50 Hz), at least 65 samples.
    """
    _check_rate(sampling_rate)
    if length is None:
        length = max(65, int(round(0.02 * sampling_rate)))
    length = int(length) | 1
    freqs = np.fft.rfftfreq(length, d=1.0 / sampling_rate)
    amp = np.sqrt(spectrum.at(freqs))
    h = np.fft.irfft(amp, n=length)
    h = np.roll(h, length // 2) * np.hanning(length + 2)[1:-1]
    energy = float(h @ h)
    if energy <= 0:
        raise ParameterError(f"the noise spectrum {spectrum.name!r} has no power below {sampling_rate / 2:g} Hz")
    return h / math.sqrt(energy)


def white_noise(seed: int, start: int, stop: int) -> np.ndarray:
    """Samples ``[start, stop)`` of an endless unit-variance white noise fixed by ``seed``."""
    if start < 0 or stop < start:
        raise ParameterError(f"white noise range must satisfy 0 <= start <= stop, got {start}, {stop}")
    first, last = start // _BLOCK, (stop - 1) // _BLOCK if stop > start else start // _BLOCK - 1
    parts = [np.random.default_rng([seed, k]).standard_normal(_BLOCK) for k in range(first, last + 1)]
    if not parts:
        return np.zeros(0)
    whole = np.concatenate(parts)
    offset = start - first * _BLOCK
    return whole[offset:offset + (stop - start)]


def coloured_noise(kernel: np.ndarray, seed: int, start: int, stop: int) -> np.ndarray:
    """Samples ``[start, stop)`` of white noise (fixed by ``seed``) filtered by ``kernel``."""
    m = kernel.size
    w = white_noise(seed, start, stop + m - 1)
    return signal.oaconvolve(w, kernel[::-1], mode="valid")


#: :func:`estimate_noise_sd`: at most this many segments are read from a long trace ...
NOISE_SD_SEGMENTS = 32


def estimate_noise_sd(read, n_samples: int, detrend_samples: int, segment_samples: int | None = None) -> float:
    """Robust noise SD of a trace: 1.4826 x the median absolute deviation of the trace minus
    its moving average over ``detrend_samples``.

    The moving average removes drift and slow wander; the median makes the few samples that
    lie in events (a few per cent in a typical recording) count as little as outliers. On a
    long trace at most :data:`NOISE_SD_SEGMENTS` segments of ``segment_samples`` (default
    20 x ``detrend_samples``), spread evenly, are read, so memory and time stay bounded and
    the result depends only on the trace. Non-finite samples are left out.

    Parameters
    ----------
    read : callable ``(start, stop) -> array``
        Samples ``[start, stop)`` of the trace (an array's slice or :meth:`Recording.read`).
    n_samples : int
        Length of the trace.
    detrend_samples : int
        Length of the moving average, in samples (odd; made odd if even), >= 3.

    Returns
    -------
    float
        The noise SD in the trace's unit; 0.0 for a trace that is flat after detrending.

    Raises
    ------
    ParameterError
        Fewer than ``detrend_samples`` finite samples.
    """
    from scipy.ndimage import uniform_filter1d

    detrend = int(detrend_samples) | 1
    if detrend < 3:
        raise ParameterError(f"detrend_samples must be >= 3, got {detrend_samples!r}")
    n = int(n_samples)
    seg = int(segment_samples) if segment_samples else 20 * detrend
    if n <= seg * NOISE_SD_SEGMENTS:
        starts, seg = [0], n
    else:
        starts = np.linspace(0, n - seg, NOISE_SD_SEGMENTS).astype(np.int64).tolist()
    residuals = []
    for a in starts:
        x = np.asarray(read(int(a), int(a) + seg), dtype=np.float64)
        x = x[np.isfinite(x)]
        if x.size < detrend:
            continue
        r = x - uniform_filter1d(x, detrend, mode="nearest")
        residuals.append(r[detrend // 2: x.size - detrend // 2] if x.size > 2 * detrend else r)
    if not residuals:
        raise ParameterError(f"the trace has fewer than {detrend} finite samples; its noise cannot be estimated")
    r = np.concatenate(residuals)
    return float(1.4826 * np.median(np.abs(r - np.median(r))))


def recording_noise_sd(recording, window_size: int) -> float:
    """The noise SD a noise-scaled model divides by: :func:`minidet.noise.estimate_noise_sd`
    of the recording's own samples (before resampling and inversion) with a moving average of
    ``4 * window_size + 1`` samples, so it measures the same band, relative to the event, at
    any sampling rate. Training windows get theirs the same way (:func:`minidet.train.extract.extract_recording`,
    :func:`minidet.train.synthetic.synthetic_windows`).

    Raises
    ------
    ParameterError
        A trace with no noise at all (flat after detrending): nothing to scale by.
    """
    sd = estimate_noise_sd(recording.read, recording.n_samples, 4 * int(window_size) + 1)
    if not sd > 0:
        raise ParameterError(
            f"the trace from {recording.source or 'memory'} has no noise (it is flat once slow changes are "
            "removed), so a noise-scaled model has nothing to measure events against; use a min-max model "
            "(e.g. --model gc)")
    return sd
