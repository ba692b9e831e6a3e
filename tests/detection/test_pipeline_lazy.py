"""``detect`` on recordings and predictions read on demand: the in-memory result, exactly,
without reading either whole."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import signal

from minidet.detection import locate, pipeline
from minidet.detection.pipeline import detect
from minidet.errors import ParameterError
from minidet.measure import kinetics
from lazy_helpers import lazy
from minidet.recording import LazyTrace, Recording

RATE = 50_000.0
REF_SETTINGS = dict(window_size=600, stride=20, threshold=0.5, peak_w=5, rel_prom_cutoff=0.25,
                    convolve_win=20, gradient_convolve_win=40, event_direction="negative",
                    training_direction="negative", resample=True)




def assert_same_result(a, b) -> None:
    pd.testing.assert_frame_equal(a.events_all, b.events_all, check_exact=True)
    assert a.info == b.info
    sa, sb = a.summary, b.summary
    assert sa.keys() == sb.keys()
    for key in sa:
        assert sa[key] == sb[key] or (sa[key] != sa[key] and sb[key] != sb[key]), key
    for wa, wb in zip(a.waveforms(), b.waveforms()):
        np.testing.assert_array_equal(wa, wb)
    for wa, wb in zip(a.average_event(), b.average_event()):
        np.testing.assert_array_equal(wa, wb)


@pytest.fixture(scope="module")
def public30(public30_reference):
    rec, ref = public30_reference
    return rec, ref["prediction"]


def test_lazy_detect_equals_in_memory(public30):
    rec, pred = public30
    whole = detect(rec, "gc", prediction=pred, **REF_SETTINGS)
    assert whole.count > 50
    lazy_rec = Recording(lazy(rec.samples), rec.sampling_rate, unit="pA")
    lazy_pred = lazy(pred)
    res = detect(lazy_rec, "gc", prediction=lazy_pred, **REF_SETTINGS)
    assert res.prediction is lazy_pred and res.recording.is_lazy
    assert_same_result(res, whole)


class _PredictionWithTrace:
    """Like minidet.detection.predict.Prediction: a lazy full-grid ``trace()``, and values
    that must not be materialised."""

    def __init__(self, values: np.ndarray) -> None:
        self._values = values

    def trace(self) -> LazyTrace:
        return lazy(self._values, max_read=(1 << 20) + 16_384)

    def __array__(self, dtype=None, copy=None):
        raise AssertionError("the whole prediction was materialised")


def test_prediction_object_gives_its_lazy_trace(public30):
    rec, pred = public30
    res = detect(rec, "gc", prediction=_PredictionWithTrace(pred), **REF_SETTINGS)
    assert isinstance(res.prediction, LazyTrace)
    assert_same_result(res, detect(rec, "gc", prediction=pred, **REF_SETTINGS))


def _long_trace(n: int, events: np.ndarray) -> np.ndarray:
    t = np.arange(1_000) / RATE
    kernel = np.exp(-t / 2e-3) - np.exp(-t / 2e-4)
    impulses = np.zeros(n)
    impulses[events] = -20.0 / kernel.max()
    x = signal.fftconvolve(impulses, kernel)[:n]
    return x + np.random.default_rng(4).normal(0, 0.5, n)


def test_no_read_covers_the_whole_recording(monkeypatch):
    # 42 s; blocks and gather spans made small so that every read is a fraction of it
    n = 2_100_000
    events = np.arange(20_000, n - 20_000, 9_973)
    events[::7] = events[::7] + 250  # some close pairs too
    x = _long_trace(n, events)
    pred = np.zeros(n - 600, np.float32)
    for s in events:
        pred[s - 450 : s - 100] = 0.9
    monkeypatch.setattr(locate, "GRADIENT_BLOCK", 1 << 18)
    monkeypatch.setattr(kinetics, "GATHER_SPAN", 1 << 15)
    whole = detect(Recording(x, RATE), "gc", prediction=pred)
    assert whole.count >= events.size * 0.9
    res = detect(Recording(lazy(x, max_read=1 << 20), RATE), "gc", prediction=lazy(pred, max_read=(1 << 20) + 16_384))
    assert_same_result(res, whole)


@pytest.mark.parametrize("method", ["template", "threshold"])
def test_classic_methods_read_a_short_lazy_recording_in(public30, method):
    rec, _ = public30
    part = Recording(rec.samples[:300_000], rec.sampling_rate, unit="pA")
    whole = detect(part, method=method)
    res = detect(Recording(lazy(part.samples), part.sampling_rate, unit="pA"), method=method)
    assert res.recording.is_lazy
    pd.testing.assert_frame_equal(res.events_all, whole.events_all, check_exact=True)


def test_classic_methods_refuse_a_long_lazy_recording(monkeypatch, public30):
    rec, _ = public30
    monkeypatch.setattr(pipeline, "CLASSIC_MAX_LAZY_SAMPLES", 100_000)
    with pytest.raises(ParameterError, match="classic method 'template' needs the whole trace in memory"):
        detect(Recording(lazy(rec.samples), rec.sampling_rate), method="template")


def test_model_prediction_stays_lazy_and_gives_the_in_memory_events(public30):
    """The bundled model on 2 s of public30 read on demand: the result holds the lazy
    full-grid prediction, and the events equal those of the in-memory recording."""
    from minidet.errors import ModelFileError, UnknownModelError
    from minidet.model import load_model

    try:
        load_model("gc")
    except (UnknownModelError, ModelFileError, ImportError) as exc:
        pytest.skip(f"bundled model 'gc' unavailable: {exc}")
    rec, _ = public30
    part = Recording(rec.samples[:100_000], rec.sampling_rate, unit="pA")
    whole = detect(part, "gc", device="cpu")
    res = detect(Recording(lazy(part.samples), part.sampling_rate, unit="pA"), "gc", device="cpu")
    assert isinstance(res.prediction, LazyTrace)
    np.testing.assert_array_equal(res.prediction[0:len(res.prediction)], np.asarray(whole.prediction))
    assert whole.count > 0
    assert_same_result(res, whole)
