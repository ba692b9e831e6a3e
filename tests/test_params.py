"""Each declared setting's bounds, tested once from its declaration, for every settings class
and every entry point (API, command line, batch manifest, analysis app's form)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from click.testing import CliRunner

from minidet.cli import cli_names, main
from minidet.detection.locate import LocateSettings
from minidet.detection.pipeline import DetectSettings
from minidet.detection.predict import PredictSettings
from minidet.errors import ParameterError
from minidet.measure.kinetics import MeasureSettings
from minidet.params import PARAMS, check, cli_patterns, schema

#: each declared setting: values inside its range, values outside
CASES = {
    "model": (["gc", "gc-robust", "/tmp/m.safetensors"], ["", "  ", 3, None]),
    "window_size": ([30, 600, 3000], [29, 0, -600, 600.0, True, "600"]),
    "stride": ([1, 20, None], [0, -3, 2.5, True, "20"]),
    "threshold": ([1e-6, 0.5, 0.999, "auto", None], [0, 1, 1.5, -0.1, float("nan"), True, "high"]),
    "event_direction": (["negative", "positive"], ["neg", "", None, 1]),
    "training_direction": (["negative", "positive", None], ["up", 0]),
    "resample": ([True, False, np.bool_(True)], [1, 0, "yes", None]),
    "convolve_win": ([0, 3, 20, 400], [1, 2, -1, 20.0, None, True]),
    "gradient_convolve_win": ([0, 3, 40, None], [1, 2, -5, 4.5]),
    "filter_factor": ([2.01, 20, 100.0], [2, 1, 0.5, float("inf"), False]),
    "rel_prom_cutoff": ([0.01, 0.25, 1], [0, 1.01, -0.5, float("nan"), None]),
    "peak_w": ([1, 5, 40], [0, -1, 2.5, True, None]),
    "smoothing_steps": ([1, 3, 10], [0, -2, 1.5, True, None]),
    "peak_prominence": ([0.05, 1, None], [0, 1.2, -0.1, float("nan")]),
    "kinetics_method": (["fit", "filtered"], ["miniml", "", None]),
    "predict_mode": (["fast", "full"], ["quick", None]),
    "auto_inverted_s": ([0, 0.0, 60.0, 3600], [-1, -0.5, float("nan"), float("inf"), True, None]),
    "batch_size": ([1, 128, 1024], [0, -1, 12.5, True]),
    "device": (["auto", "cpu", "cuda:1"], ["", 0, None]),
}
#: which settings class takes which declared setting (``None`` allowed where the class
#: means "the model's" by it)
TAKES = {
    DetectSettings: tuple(PARAMS),
    LocateSettings: ("window_size", "threshold", "filter_factor", "rel_prom_cutoff", "peak_w", "convolve_win",
                     "gradient_convolve_win", "event_direction", "smoothing_steps", "peak_prominence"),
    MeasureSettings: ("window_size", "convolve_win", "filter_factor", "event_direction", "kinetics_method"),
    PredictSettings: ("window_size", "stride", "training_direction", "resample", "batch_size", "device"),
}
#: where a class accepts more than the declaration (or less) and why
EXCEPTIONS = {
    (LocateSettings, "threshold"): ("auto", None),  # the locator needs the number 'auto' became
    (PredictSettings, "window_size"): (None,),      # None: the model's window
}


def test_every_declared_setting_has_cases_and_a_sound_declaration() -> None:
    assert set(CASES) == set(PARAMS)
    for param in PARAMS.values():
        assert param.help and param.describe()
        assert param.default is None or param.accepts(param.default), param.name


def test_detect_settings_are_the_declaration() -> None:
    """DetectSettings' fields and defaults are the declared settings, in the declared order."""
    fields = dataclasses.fields(DetectSettings)
    assert tuple(f.name for f in fields) == tuple(PARAMS)
    for f in fields:
        assert f.default == PARAMS[f.name].default, f.name


@pytest.mark.parametrize("name", sorted(PARAMS))
def test_bounds_are_the_same_for_every_settings_class(name: str) -> None:
    good, bad = CASES[name]
    for cls, names in TAKES.items():
        if name not in names:
            continue
        base = {"threshold": 0.5} if cls is LocateSettings else {}
        skip = EXCEPTIONS.get((cls, name), ())
        for value in good:
            if any(value is s or (isinstance(s, str) and value == s) for s in skip):
                continue
            cls(**{**base, name: value})
        for value in bad:
            if value is None and (cls, name) == (PredictSettings, "window_size"):
                continue
            with pytest.raises(ParameterError) as err:
                cls(**{**base, name: value})
            assert str(err.value).startswith(f"{name} must be "), (cls, value, str(err.value))
            if not skip:
                assert str(err.value).startswith(f"{name} must be {PARAMS[name].describe()}"), (cls, value)


def test_extra_values_are_declared() -> None:
    check("threshold", "auto")
    check("threshold", None)
    DetectSettings(threshold="auto")
    with pytest.raises(ParameterError, match="threshold must be a number in"):
        LocateSettings(threshold=None)
    with pytest.raises(ParameterError, match=r"got np\.float64\(nan\)|got nan"):
        check("threshold", np.float64("nan"))
    PredictSettings(window_size=None, event_direction=None)


def _text(value):
    return "auto" if value == "auto" else str(value)


def _bad_texts(name: str) -> list[str]:
    """Texts that must fail: out-of-range numbers of the bad values and words that are no
    value of the kind (a type-bad API value such as 600.0 is a good text)."""
    kind = PARAMS[name].kind
    if kind == "str":
        return []
    if kind == "bool":
        return ["maybe", "2"]
    if kind == "choice":
        return ["nonsense", "Negative-ish"]
    numbers = [v for v in CASES[name][1] if isinstance(v, (int, float)) and not isinstance(v, bool)
               and not (kind == "int" and float(v).is_integer() and PARAMS[name].accepts(int(v)))]
    return [str(v) for v in numbers] + ["abc", "1,5"]


@pytest.mark.parametrize("name", sorted(PARAMS))
def test_text_parsing_is_declared(name: str) -> None:
    """The manifest and the app's form read text with Param.parse: the good values come back,
    the bad numbers fail with the declared message."""
    param = PARAMS[name]
    good, bad = CASES[name]
    for value in good:
        if value is None:
            continue
        parsed = param.parse(_text(value))
        assert parsed == value or (isinstance(value, np.bool_) and parsed is bool(value)), (value, parsed)
        assert param.parse(value) == value  # a JSON value, as the app sends
    for text in _bad_texts(name):
        with pytest.raises(ParameterError, match=f"^{name} must be "):
            param.parse(text)
    assert param.parse("") is None and param.parse(None) is None


def _bad_numbers(name):
    return [v for v in CASES[name][1] if isinstance(v, (int, float)) and not isinstance(v, bool) and np.isfinite(v)]


NUMERIC = [n for n, p in PARAMS.items() if p.kind in ("int", "float") and _bad_numbers(n)]


@pytest.mark.parametrize("name", NUMERIC)
def test_every_entry_point_reports_the_declared_bound(name: str, tmp_path) -> None:
    """One value out of range, through the command line (batch: validated before any model is
    loaded), a manifest cell and the analysis app's form: each names the setting the way its
    users write it."""
    from minidet import examples
    from minidet.batch import read_manifest
    from minidet.web.forms import detect_overrides

    value = _bad_numbers(name)[0]
    option = PARAMS[name].option
    result = CliRunner().invoke(main, ["batch", str(examples.path()), "--out", str(tmp_path / "out"),
                                       option, _text(value), "--no-progress"])
    assert result.exit_code == 2, result.output
    assert result.stderr.strip().startswith(f"minidet: error: {option} must be "), result.stderr
    assert "None" not in result.stderr
    assert not (tmp_path / "out").exists()

    manifest = tmp_path / "m.csv"
    manifest.write_text(f"path,{name}\n{examples.path()},{_text(value)}\n")
    with pytest.raises(ParameterError, match=f"line 2, column '{name}': {name} must be "):
        read_manifest(manifest)

    with pytest.raises(ParameterError, match=f"^{name} must be "):
        detect_overrides({name: _text(value)})


def test_cli_reports_the_declared_bound(tmp_path) -> None:
    from minidet import examples

    result = CliRunner().invoke(main, ["detect", str(examples.path()), "--window-size", "12",
                                       "--out", str(tmp_path / "r")])
    assert result.exit_code == 2
    assert result.stderr.strip() == "minidet: error: --window-size must be an integer >= 30 samples, got 12"
    assert not (tmp_path / "r").exists()
    for name in ("window_size", "threshold", "rel_prom_cutoff", "stride", "peak_prominence", "gradient_convolve_win"):
        try:
            check(name, -5.0)
        except ParameterError as exc:
            text = cli_names(str(exc))
        assert text.startswith(PARAMS[name].option + " must be"), text
        assert "None" not in text, text


def test_every_setting_is_an_option_of_detect_and_batch() -> None:
    """The options are generated from the declaration: one per setting, with its help."""
    for command in ("detect", "batch"):
        params = {p.name: p for p in main.commands[command].params}
        for name, param in PARAMS.items():
            assert name in params, (command, name)
            assert param.option in params[name].opts, (command, name, params[name].opts)
            assert param.help.split(".")[0] in (params[name].help or ""), (command, name)
    text = CliRunner().invoke(main, ["detect", "--help"]).output
    assert "--kinetics-method" in text and "--no-resample" in text


def test_schema_is_json_for_the_app() -> None:
    import json

    rows = json.loads(json.dumps(schema()))
    assert [r["name"] for r in rows] == list(PARAMS)
    assert {r["name"]: r["option"] for r in rows}["window_size"] == "--window-size"
    assert len(cli_patterns()) > len(PARAMS)


def test_a_commands_own_options_are_named_in_its_errors(tmp_path) -> None:
    """Not only the detection settings: a command's snake_case options (extract's
    --model-sure / --model-doubt) are written as options, but not inside paths."""
    from minidet import examples

    result = CliRunner().invoke(main, ["extract", str(examples.path()), "--window-size", "600", "--out",
                                       str(tmp_path / "model_sure" / "ds.h5"), "--disagree-with", "gc",
                                       "--model-sure", "1.5"])
    assert result.exit_code == 2
    assert "0 < --model-doubt < --model-sure < 1" in result.stderr, result.stderr
    assert cli_names("see /tmp/model_sure/x.h5 or model_sure.h5", main.commands["extract"]) == \
        "see /tmp/model_sure/x.h5 or model_sure.h5"
