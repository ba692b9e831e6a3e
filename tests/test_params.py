"""Each shared setting's bounds, tested once from its declaration, for every entry point."""

from __future__ import annotations

import numpy as np
import pytest
from click.testing import CliRunner

from minidet.cli import main
from minidet.detection.locate import LocateSettings
from minidet.detection.pipeline import DetectSettings
from minidet.errors import ParameterError
from minidet.measure.kinetics import MeasureSettings
from minidet.params import PARAMS, check

#: each declared setting: values inside its range, values outside
CASES = {
    "window_size": ([30, 600, 3000], [29, 0, -600, 600.0, True, "600"]),
    "threshold": ([1e-6, 0.5, 0.999], [0, 1, 1.5, -0.1, float("nan"), True]),
    "filter_factor": ([2.01, 20, 100.0], [2, 1, 0.5, float("inf"), False]),
    "rel_prom_cutoff": ([0.01, 0.25, 1], [0, 1.01, -0.5, float("nan"), None]),
    "peak_w": ([1, 5, 40], [0, -1, 2.5, True, None]),
}
#: which settings class takes which declared setting
TAKES = {
    DetectSettings: ("window_size", "threshold", "filter_factor", "rel_prom_cutoff", "peak_w"),
    LocateSettings: ("window_size", "threshold", "filter_factor", "rel_prom_cutoff", "peak_w"),
    MeasureSettings: ("window_size", "filter_factor"),
}


def test_every_declared_setting_has_cases() -> None:
    assert set(CASES) == set(PARAMS)
    for param in PARAMS.values():
        assert param.help and param.kind in ("int", "float")
        assert param.default is None or param.accepts(param.default)


@pytest.mark.parametrize("name", sorted(PARAMS))
def test_bounds_are_the_same_for_every_settings_class(name: str) -> None:
    good, bad = CASES[name]
    message = f"{name} must be {PARAMS[name].describe()}"
    for cls, names in TAKES.items():
        if name not in names:
            continue
        base = {"threshold": 0.5} if cls is LocateSettings else {}
        for value in good:
            cls(**{**base, name: value})
        for value in bad:
            with pytest.raises(ParameterError) as err:
                cls(**{**base, name: value})
            if cls is LocateSettings and name == "threshold":
                assert str(err.value).startswith(f"{name} must be {PARAMS[name].describe().split(',')[0]}")
            else:
                assert str(err.value).startswith(message), (cls, value, str(err.value))


def test_extra_values_are_declared() -> None:
    check("threshold", "auto")
    check("threshold", None)
    DetectSettings(threshold="auto")
    with pytest.raises(ParameterError, match="threshold must be a number in"):
        LocateSettings(threshold=None)  # the locator needs the number 'auto' was resolved to
    with pytest.raises(ParameterError, match=r"got np\.float64\(nan\)|got nan"):
        check("threshold", np.float64("nan"))


def test_cli_reports_the_declared_bound(tmp_path) -> None:
    from minidet import examples

    result = CliRunner().invoke(main, ["detect", str(examples.path()), "--window-size", "12",
                                       "--out", str(tmp_path / "r")])
    assert result.exit_code == 2
    assert result.stderr.strip() == "minidet: error: --window-size must be an integer >= 30 samples, got 12"
    assert not (tmp_path / "r").exists()
    from minidet.cli import cli_names

    for name in ("window_size", "threshold", "rel_prom_cutoff"):  # API messages name the CLI options
        try:
            check(name, -5.0)
        except ParameterError as exc:
            text = cli_names(str(exc))
        assert text.startswith("--" + name.replace("_", "-") + " must be"), text
        assert "None" not in text, text
