"""``detect`` and ``DetectionResult``: parity with miniML, truth, model defaults, editing.

The parity tests run on miniML's own prediction trace of ``public30`` (so they need no
network); ``test_end_to_end_with_bundled_gc_model`` runs the real bundled model and skips
only while the model or :mod:`minidet.detection.predict` is missing.
"""

from __future__ import annotations

import math
import types

import numpy as np
import pandas as pd
import pytest

from minidet.detection.pipeline import EVENT_COLUMNS, DetectionResult, DetectSettings, detect
from minidet.errors import ModelFileError, NaNTraceError, ParameterError, UnknownModelError
from minidet.recording import Recording

RATE = 50_000.0
PARITY_TOL = 10  # samples: +-0.2 ms at 50 kHz
MEASURES = {  # minidet column -> miniML reference array
    "amplitude": "amplitudes",
    "rise_time_s": "risetimes",
    "half_decay_s": "halfdecays",
    "charge": "charges",
}
REF_SETTINGS = dict(window_size=600, stride=20, threshold=0.5, peak_w=5, rel_prom_cutoff=0.25,
                    convolve_win=20, gradient_convolve_win=40, event_direction="negative",
                    training_direction="negative", resample=True,
                    kinetics_method="filtered")  # miniML's measurement rules


def match(found, expected, lo, hi):
    """One-to-one matching in time order: ``found`` f matches ``expected`` e when
    ``e + lo <= f <= e + hi``. Returns index pairs (found, expected)."""
    found = np.asarray(found)
    expected = np.asarray(expected)
    used = np.zeros(found.size, bool)
    pairs = []
    for j, e in enumerate(expected):
        cand = np.flatnonzero((found >= e + lo) & (found <= e + hi) & ~used)
        if cand.size:
            i = cand[np.argmin(np.abs(found[cand] - e))]
            used[i] = True
            pairs.append((i, j))
    return np.array(pairs, dtype=int).reshape(-1, 2)


def f1(n_match, n_found, n_expected):
    if n_found == 0 or n_expected == 0:
        return 0.0
    p, r = n_match / n_found, n_match / n_expected
    return 2 * p * r / (p + r) if p + r else 0.0


def parity(result: DetectionResult, ref: dict, limit: int | None = None):
    ev = result.events
    ref_loc = ref["event_locations"]
    keep_ref = np.ones(ref_loc.size, bool) if limit is None else ref_loc < limit
    found = ev["sample"].to_numpy()
    keep_found = np.ones(found.size, bool) if limit is None else found < limit
    pairs = match(found[keep_found], ref_loc[keep_ref], -PARITY_TOL, PARITY_TOL)
    score = f1(len(pairs), keep_found.sum(), keep_ref.sum())
    rel = {}
    for col, key in MEASURES.items():
        a = ev[col].to_numpy()[keep_found][pairs[:, 0]]
        b = ref[key][keep_ref][pairs[:, 1]]
        rel[col] = float(np.nanmedian(np.abs(a - b) / np.abs(b)))
    return score, rel


@pytest.fixture(scope="module")
def public30(shared, public30_reference):
    rec, ref = public30_reference
    return rec, ref, dict(np.load(shared / "reference" / "public30_truth.npz"))


@pytest.fixture(scope="module")
def result(public30) -> DetectionResult:
    rec, ref, _ = public30
    return detect(rec, "gc", prediction=ref["prediction"], **REF_SETTINGS)


# ---------------------------------------------------------------------------- parity
def test_parity_with_miniml_on_its_own_prediction(public30, result):
    _, ref, _ = public30
    score, rel = parity(result, ref)
    assert score >= 0.98
    for col, value in rel.items():
        assert value <= 0.02, (col, value)
    assert result.summary["tau_decay_s"] == pytest.approx(float(ref["avg_tau_decay"]), rel=0.01)
    assert result.summary["frequency_hz"] == pytest.approx(float(ref["frequency"]), rel=0.02)
    assert result.summary["count"] == pytest.approx(len(ref["event_locations"]), abs=2)


def test_f1_against_simulated_truth(public30, result):
    _, _, truth = public30
    onsets = truth["onsets"]
    fs = float(truth["fs"])
    pairs = match(result.events["sample"].to_numpy(), onsets, -int(0.001 * fs), int(0.003 * fs))
    assert f1(len(pairs), result.count, onsets.size) >= 0.95  # miniML: 0.957 on this trace


def test_end_to_end_with_bundled_gc_model(public30):
    """The real network on the first 3 s of public30 against miniML's events there
    (settings from the bundled model's metadata: miniML's)."""
    pytest.importorskip("minidet.detection.predict", reason="minidet.detection.predict is not there yet")
    from minidet.model import load_model

    try:
        load_model("gc")
    except (UnknownModelError, ModelFileError, ImportError) as exc:
        pytest.skip(f"bundled model 'gc' unavailable: {exc}")
    rec, ref, _ = public30
    n = 150_000
    part = Recording(rec.samples[:n], rec.sampling_rate, unit="pA")
    res = detect(part, "gc", device="cpu", kinetics_method="filtered")
    assert res.settings.convolve_win == 20 and res.settings.gradient_convolve_win == 40
    # miniML's events that are also inside minidet's border on the shorter trace
    limit = n - 800 - 1
    assert (ref["event_locations"] < limit).sum() >= 10
    score, rel = parity(res, ref, limit=limit)
    assert score >= 0.98
    for col, value in rel.items():
        assert value <= 0.02, (col, value)
    assert res.prediction is not None and res.prediction.shape[0] >= n - 600


# ---------------------------------------------------------------------------- table
def test_events_table_columns_and_types(result):
    ev = result.events_all
    assert list(ev.columns) == list(EVENT_COLUMNS)
    assert list(ev.index) == list(range(len(ev)))
    for col in ("sample", "onset_sample", "peak_sample"):
        assert ev[col].dtype == np.int64
    for col in ("overlapping", "excluded"):
        assert ev[col].dtype == bool
    assert not ev["excluded"].any()
    np.testing.assert_allclose(ev["time_s"], ev["sample"] / RATE)
    np.testing.assert_allclose(ev["peak_time_s"], ev["peak_sample"] / RATE)
    assert (ev["onset_sample"] <= ev["sample"] + 5).all() and (ev["peak_sample"] > ev["sample"]).all()
    assert (ev["amplitude"] < 0).all() and (ev["charge"] < 0).all()  # negative events
    assert ev["overlapping"].sum() == len(ev) - result.summary["n_average"]


def test_settings_are_recorded_resolved(result):
    s = result.settings
    assert s.threshold == 0.5 and s.training_direction == "negative"
    assert s.stride == 20 and s.gradient_convolve_win == 40
    assert DetectSettings(**s.to_dict()) == s
    assert result.info["gradient_threshold"] > 0


def test_summary_keys(result):
    s = result.summary
    for key in ("count", "frequency_hz", "duration_s", "tau_decay_s", "unit"):
        assert key in s
    for m in ("amplitude", "rise_time_s", "half_decay_s", "half_width_s", "charge", "interval_s"):
        for stat in ("mean", "median", "sd", "cv"):
            assert isinstance(s[f"{m}_{stat}"], float)
    assert s["duration_s"] == pytest.approx(30.0)
    assert s["interval_s_mean"] == pytest.approx(
        np.diff(result.events["peak_time_s"]).mean()
    )


# ---------------------------------------------------------------------------- editing
def test_exclude_and_restore(result):
    n = len(result.events_all)
    edited = result.exclude([0, 5])
    assert edited is not result and not result.events_all["excluded"].any()  # the original is untouched
    assert edited.count == n - 2 and edited.summary["count"] == n - 2
    assert 0 not in edited.events.index and 5 not in edited.events.index
    assert edited.events_all["excluded"].sum() == 2
    assert edited.summary["frequency_hz"] == pytest.approx((n - 2) / 30.0)
    assert edited.summary["amplitude_mean"] == pytest.approx(result.events_all["amplitude"].drop([0, 5]).mean())
    back = edited.restore([5])
    assert back.count == n - 1
    assert back.restore(0).summary["amplitude_mean"] == pytest.approx(result.summary["amplitude_mean"])
    t, waves = edited.waveforms()
    assert waves.shape[0] == n - 2


def test_excluding_a_neighbour_frees_an_overlapping_event():
    events = [10_000, 10_500, 40_000, 70_000]
    rec = Recording(_events_trace(events), RATE)
    res = detect(rec, "gc", prediction=_oracle(rec.n_samples, events))
    assert res.count == 4
    # the next event 10 ms later lies in the first one's decay window (1.5 x 600 samples)
    assert res.events_all["overlapping"].tolist() == [True, False, False, False]
    edited = res.exclude([1])
    assert edited.events_all["overlapping"].tolist() == [False, False, False, False]
    assert edited.summary["n_average"] == 3 and res.summary["n_average"] == 3


@pytest.mark.parametrize("bad", [[-1], [10_000], [1.5], [True]])
def test_exclude_refuses_bad_indices(result, bad):
    with pytest.raises(ParameterError, match="indices"):
        result.exclude(bad)


def test_waveforms_and_average_event(result):
    t, waves = result.waveforms()
    assert waves.shape == (result.count, 1_000) and t.size == 1_000
    assert t[200] == 0
    t2, waves2 = result.waveforms(pre_s=0.001, post_s=0.002)
    assert waves2.shape == (result.count, 150) and t2[0] == pytest.approx(-0.001)
    ta, avg = result.average_event()
    np.testing.assert_array_equal(ta, t)
    assert avg.min() == pytest.approx(result.summary["amplitude_mean"], rel=0.3)  # negative peak
    assert abs(np.nanmean(avg[:150])) < 0.5  # baseline-subtracted
    with pytest.raises(ParameterError, match="pre_s"):
        result.waveforms(pre_s=-1.0)


# ---------------------------------------------------------------------------- no events / edges
def test_recording_without_events_gives_empty_results():
    x = np.random.default_rng(0).normal(0, 1, 100_000)
    rec = Recording(x, RATE)
    res = detect(rec, "gc", prediction=np.zeros(x.size - 600, np.float32))
    assert len(res.events_all) == 0 and res.count == 0
    assert list(res.events_all.columns) == list(EVENT_COLUMNS)
    s = res.summary
    assert s["count"] == 0 and s["frequency_hz"] == 0.0
    assert math.isnan(s["amplitude_mean"]) and math.isnan(s["tau_decay_s"])
    t, waves = res.waveforms()
    assert waves.shape == (0, t.size)
    assert np.isnan(res.average_event()[1]).all()
    assert res.exclude([]).count == 0


def test_trace_with_nan_is_refused():
    x = np.zeros(10_000)
    x[500] = np.nan
    with pytest.raises(NaNTraceError):
        detect(Recording(x, RATE), "gc", prediction=np.zeros(9_400))


def test_prediction_of_the_wrong_shape_is_refused():
    rec = Recording(np.zeros(10_000), RATE)
    with pytest.raises(ParameterError, match="prediction"):
        detect(rec, "gc", prediction=np.zeros((2, 100)))


# ---------------------------------------------------------------------------- settings
@pytest.mark.parametrize(
    "kwargs, name",
    [
        ({"window_size": 5}, "window_size"),
        ({"stride": 0}, "stride"),
        ({"stride": 601}, "stride"),
        ({"threshold": 1.5}, "threshold"),
        ({"event_direction": "inward"}, "event_direction"),
        ({"training_direction": "up"}, "training_direction"),
        ({"resample": "yes"}, "resample"),
        ({"convolve_win": 1}, "convolve_win"),
        ({"gradient_convolve_win": -3}, "gradient_convolve_win"),
        ({"rel_prom_cutoff": 2.0}, "rel_prom_cutoff"),
        ({"peak_w": 0}, "peak_w"),
        ({"batch_size": 0}, "batch_size"),
        ({"filter_factor": 0.5}, "filter_factor"),
        ({"model": ""}, "model"),
        ({"predict_mode": "quick"}, "predict_mode"),
    ],
)
def test_settings_validation_names_the_value(kwargs, name):
    with pytest.raises(ParameterError, match=name):
        DetectSettings(**kwargs)


def test_unknown_setting_is_refused():
    rec = Recording(np.zeros(10_000), RATE)
    with pytest.raises(ParameterError, match="thresh"):
        detect(rec, "gc", prediction=np.zeros(9_400), thresh=0.4)


def _fake_predictor(calls, prediction):
    """A predictor for ``detect(..., predictor=)``: records what it was asked, returns ``prediction``."""

    def predict(recording, model, *, window_size, stride, event_direction, training_direction, resample,
                batch_size, device, progress, mode, progress_label):
        calls.append(dict(window_size=window_size, stride=stride, event_direction=event_direction,
                          training_direction=training_direction, resample=resample,
                          batch_size=batch_size, device=device, model=model, mode=mode, label=progress_label))
        return prediction

    return predict


def _oracle(n, events, window=600):
    pred = np.zeros(n - window, np.float32)
    for s in events:
        pred[s - 450 : s - 100] = 0.8
    return pred


def _events_trace(events, n=100_000, sign=-1):
    x = np.random.default_rng(1).normal(0, 0.5, n)
    t = np.arange(n) / RATE
    for s in events:
        dt = np.clip(t - s / RATE, 0, None)
        shape = (np.exp(-dt / 2e-3) - np.exp(-dt / 2e-4)) * (dt > 0)
        x += sign * 20 * shape / shape.max()
    return x


def test_model_metadata_supplies_defaults_that_arguments_override():
    events = [10_000, 30_000, 50_000, 70_000]
    rec = Recording(_events_trace(events), RATE)
    calls: list = []
    fake = _fake_predictor(calls, _oracle(rec.n_samples, events))
    model = types.SimpleNamespace(metadata={
        "name": "fake", "window_size": 600, "threshold": 0.85, "stride": 20, "event_direction": "negative",
        "training_direction": "positive", "convolve_win": 10, "gradient_convolve_win": None, "resample": True,
    })
    res = detect(rec, model, predictor=fake)
    assert calls[-1]["training_direction"] == "positive" and calls[-1]["model"] is model
    assert calls[-1]["label"] == "predict"
    assert res.settings.threshold == 0.85 and res.settings.convolve_win == 10
    assert res.settings.model == "fake" and calls[-1]["mode"] == "fast"
    assert res.settings.gradient_convolve_win == 20
    assert res.count == 0  # oracle scores 0.8 < the model's threshold 0.85
    res = detect(rec, model, threshold=0.5, training_direction="negative", batch_size=64, predictor=fake)
    assert calls[-1]["training_direction"] == "negative" and calls[-1]["batch_size"] == 64
    assert res.settings.threshold == 0.5 and res.count == len(events)
    # explicit settings are taken as given; the model only fills what they leave open
    res = detect(rec, model, settings=DetectSettings(convolve_win=20, threshold=None), predictor=fake)
    assert res.settings.convolve_win == 20 and res.settings.threshold == 0.85


def test_detect_runs_predict_when_no_prediction_is_given():
    events = [10_000, 30_000, 50_000, 70_000]
    x = _events_trace(events, sign=1)
    rec = Recording(x, RATE)
    calls: list = []
    model = types.SimpleNamespace(metadata={"window_size": 600, "threshold": 0.5})
    res = detect(rec, model, event_direction="positive", stride=15, window_size=450, predict_mode="full",
                 predictor=_fake_predictor(calls, _oracle(rec.n_samples, events)))
    assert calls[-1]["window_size"] == 450 and calls[-1]["stride"] == 15 and calls[-1]["mode"] == "full"
    assert calls[-1]["event_direction"] == "positive"
    assert res.count == len(events)
    assert (res.events["amplitude"] > 0).all()
    np.testing.assert_allclose(res.events["sample"], events, atol=15)
    assert isinstance(res.events_all, pd.DataFrame)
