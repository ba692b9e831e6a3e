"""Prediction smoothing (``smoothing_steps``): a moving average of the scores before peak finding."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from scipy.ndimage import correlate1d

from lazy_helpers import lazy
from minidet.cli import main
from minidet.detection.locate import LocateSettings, locate_events, smoothed_prediction
from minidet.detection.pipeline import DetectSettings, detect, resolve_settings
from minidet.errors import ParameterError
from minidet.model.core import load_model
from minidet.model.modelfile import ModelMetadata
from minidet.recording import LazyTrace, Recording


def test_smoothed_prediction_is_the_whole_trace_average_bit_for_bit():
    rng = np.random.default_rng(0)
    pred = rng.random(50_003).astype(np.float32)
    for size in (2, 7, 180):
        whole = correlate1d(pred.astype(np.float64), np.full(size, 1.0 / size), mode="reflect")
        smooth = smoothed_prediction(lazy(pred), size)
        assert isinstance(smooth, LazyTrace) and len(smooth) == pred.size
        np.testing.assert_array_equal(np.asarray(smooth), whole)
        for a, b in ((0, 10), (0, 1), (123, 4_567), (49_990, 50_003), (25_000, 25_001)):
            np.testing.assert_array_equal(smooth[a:b], whole[a:b])
    # size 1 is no smoothing: the prediction itself comes back
    assert smoothed_prediction(pred, 1) is pred


def _events_recording(n: int, onsets: tuple[int, ...], seed: int) -> Recording:
    """Unit white noise at 50 kHz with a 12-SD event (rise 0.2 ms, decay 1.5 ms) at each onset."""
    x = np.random.default_rng(seed).normal(0, 1, n)
    t = np.arange(400) / 50_000
    for onset in onsets:
        x[onset:onset + 400] -= 12 * (1 - np.exp(-t / 2e-4)) * np.exp(-t / 1.5e-3)
    return Recording(x, 50_000.0)


def _steps_prediction(n: int, stride: int = 20) -> np.ndarray:
    """A prediction on the sample grid: a broad plateau (20 steps at 0.8) and a narrow spike
    (6 steps at 0.97) far apart."""
    pred = np.full(n, 0.01)
    pred[20_000:20_000 + 20 * stride] = 0.8
    pred[60_000:60_000 + 6 * stride] = 0.97
    return pred


def test_smoothing_keeps_broad_score_plateaus_and_drops_narrow_spikes():
    n = 100_000
    rec = _events_recording(n, (20_000 + 150, 60_000 + 150), seed=1)  # an event where each score bump is
    pred = _steps_prediction(n)
    plain = locate_events(rec, pred, LocateSettings(threshold=0.75))
    smooth = locate_events(rec, pred, LocateSettings(threshold=0.75, smoothing_steps=9))
    assert len(plain.regions) == 2 and plain.positions.size == 2
    assert len(smooth.regions) == 1 and smooth.positions.size == 1
    assert 20_000 < smooth.positions[0] < 21_000
    # the event's score is the smoothed peak (0.8: the plateau is wider than 9 steps)
    assert smooth.scores[0] == pytest.approx(0.8)


def test_smoothed_locate_chunked_equals_whole():
    rng = np.random.default_rng(3)
    n = 120_000
    x = rng.normal(0, 1, n)
    pred = np.clip(np.repeat(rng.choice([0.0, 0.3, 0.7, 0.95], n // 400), 400)
                   + rng.normal(0, 0.05, n), 0, 1)
    settings = LocateSettings(threshold=0.5, smoothing_steps=5)
    whole = locate_events(Recording(x, 50_000.0), pred, settings, chunk_size=1 << 20)
    assert whole.positions.size > 5
    for chunk in (997, 30_000):
        res = locate_events(Recording(lazy(x), 50_000.0), lazy(pred), settings, chunk_size=chunk)
        np.testing.assert_array_equal(res.positions, whole.positions)
        np.testing.assert_array_equal(res.scores, whole.scores)


BAD_VALUES = [("smoothing_steps", bad) for bad in (0, -3, 2.5, True, "9", None)] + [
    ("peak_prominence", bad) for bad in (0, -0.1, 1.5, True, "0.5", float("nan"))]


@pytest.mark.parametrize("field, bad", BAD_VALUES)
def test_bad_value_is_a_clear_error_in_every_settings_object(field, bad):
    for make in (LocateSettings, DetectSettings, lambda **kw: ModelMetadata(name="m", **kw)):
        with pytest.raises(ParameterError, match=field):
            make(**{field: bad})


def test_smoothing_travels_with_the_model_and_can_be_overridden():
    meta = dataclasses.replace(load_model("gc").metadata, smoothing_steps=7).to_dict()
    assert ModelMetadata.from_dict(meta).smoothing_steps == 7
    assert resolve_settings(None, meta, {}, "gc").smoothing_steps == 7
    assert resolve_settings(None, meta, {"smoothing_steps": 1}, "gc").smoothing_steps == 1
    # miniML's models: no smoothing
    assert load_model("gc").metadata.smoothing_steps == 1
    assert resolve_settings(None, load_model("gc").metadata.to_dict(), {}, "gc").locate_settings().smoothing_steps == 1
    # a model file written before the field existed reads as 1
    old = {k: v for k, v in load_model("gc").metadata.to_dict().items() if k != "smoothing_steps"}
    assert ModelMetadata.from_dict(old).smoothing_steps == 1


def test_detect_with_smoothing_on_a_given_prediction():
    rng = np.random.default_rng(4)
    n = 100_000
    x = rng.normal(0, 1, n)
    pred = _steps_prediction(n)
    rec = Recording(x, 50_000.0)
    plain = detect(rec, "gc", prediction=pred, threshold=0.75)
    smooth = detect(rec, "gc", prediction=pred, threshold=0.75, smoothing_steps=9)
    assert smooth.settings.smoothing_steps == 9
    assert smooth.info["n_regions"] == 1 and plain.info["n_regions"] == 2


@pytest.mark.parametrize("option, value, field", [("--smoothing-steps", "0", "smoothing_steps"),
                                                  ("--peak-prominence", "2", "peak_prominence")])
def test_cli_rejects_a_bad_value_in_one_line(tmp_path, option, value, field):
    from click.testing import CliRunner

    example = CliRunner().invoke(main, ["example-path"]).stdout.strip()
    result = CliRunner().invoke(main, ["detect", example, "--out", str(tmp_path / "out"), option, value])
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and f"{option} must be" in lines[0]  # the error names the option
    assert not (tmp_path / "out").exists()

# ----------------------------------------------------------------------------- peak prominence
def _burst_prediction(n: int) -> np.ndarray:
    """Two score peaks (1.0, then 0.97) separated by a dip to 0.3: prominence 0.67 for the second."""
    pred = np.full(n, 0.01)
    pred[20_000:20_400] = 1.0
    pred[20_400:20_600] = 0.3
    pred[20_600:21_000] = 0.97
    return pred


def test_peak_prominence_keeps_the_second_event_of_a_burst():
    n = 60_000
    rec = _events_recording(n, (20_150, 20_750), seed=5)
    pred = _burst_prediction(n)
    minimlike = locate_events(rec, pred, LocateSettings(threshold=0.93))
    assert len(minimlike.regions) == 1  # the second peak rises only 0.69 above the dip: dropped
    kept = locate_events(rec, pred, LocateSettings(threshold=0.93, peak_prominence=0.5))
    assert len(kept.regions) == 2
    assert LocateSettings(threshold=0.7).prominence == 0.7
    assert LocateSettings(threshold=0.7, peak_prominence=0.25).prominence == 0.25


def test_peak_prominence_travels_with_the_model_and_can_be_overridden():
    meta = dataclasses.replace(load_model("gc").metadata, peak_prominence=0.5).to_dict()
    assert ModelMetadata.from_dict(meta).peak_prominence == 0.5
    assert resolve_settings(None, meta, {}, "gc").locate_settings().prominence == 0.5
    assert resolve_settings(None, meta, {"peak_prominence": 0.3}, "gc").peak_prominence == 0.3
    # explicit settings without it take the model's; miniML's models have none (= threshold)
    assert resolve_settings(DetectSettings(), meta, {}, "gc").peak_prominence == 0.5
    gc = resolve_settings(None, load_model("gc").metadata.to_dict(), {"threshold": 0.8}, "gc")
    assert gc.peak_prominence is None and gc.locate_settings().prominence == 0.8
