"""`minidet convert` and `minidet models`."""

from __future__ import annotations

import json

import numpy as np
from click.testing import CliRunner

from minidet.cli import main
from minidet.model import load_model, read_metadata


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def test_models_lists_the_bundled_models():
    result = run("models")
    assert result.exit_code == 0, result.output
    *lines, footer = result.output.strip().splitlines()
    assert lines[0].split()[:3] == ["name", "window", "stride"]
    assert [ln.split()[0] for ln in lines[1:]] == ["gc", "gc-mepsp", "nmj-wt", "nmj-gluriia",
                                                    "iglusnfr", "zebrafish", "gc-robust"]
    assert "3000" in lines[2] and "positive" in lines[2]
    # how each network sees a window: miniML's min-max, gc-robust the noise SD
    assert "scaling" in lines[0] and " minmax " in lines[1] and " noise " in lines[-1]
    # the default is marked; gc-robust's threshold is chosen per recording
    assert lines[-1].split()[:2] == ["gc-robust", "*"] and footer.startswith("* the default")
    assert lines[-1].split()[4] == "auto" and lines[1].split()[3] == "0.50"


def test_models_json():
    result = run("models", "--json")
    assert result.exit_code == 0, result.output
    rows = json.loads(result.output)
    assert [r["name"] for r in rows][:2] == ["gc", "gc-mepsp"]
    assert rows[0]["window_size"] == 600 and rows[0]["file"].endswith("gc.minidet.safetensors")
    assert rows[0]["input_scaling"] == "minmax" and rows[-1]["input_scaling"] == "noise"
    assert [r["name"] for r in rows if r["default"]] == ["gc-robust"]


def test_convert_writes_a_loadable_file(tmp_path, miniml_file, reference):
    out = tmp_path / "mine.minidet.safetensors"
    result = run("convert", miniml_file("gc-mepsp"), out, "--window-size", 3000,
                 "--event-direction", "positive", "--threshold", 0.6, "--description", "test model",
                 "--license", "MIT")
    assert result.exit_code == 0, result.output
    assert "wrote" in result.output
    m = read_metadata(out)
    assert (m.name, m.window_size, m.stride, m.threshold) == ("mine", 3000, 100, 0.6)
    assert (m.training_direction, m.event_direction) == ("negative", "positive")
    assert m.description == "test model" and m.license == "MIT"
    assert m.source_file == "lstm_transfer.h5"
    probs = load_model(out).predict_windows(reference["windows_raw"][:16])
    assert np.max(np.abs(probs - reference["pred_GC_mEPSP"][:16])) < 1e-4


def test_convert_refuses_to_overwrite_without_force(tmp_path, miniml_file):
    out = tmp_path / "gc.minidet.safetensors"
    out.write_bytes(b"precious")
    result = run("convert", miniml_file("gc"), out)
    assert result.exit_code == 2
    assert "exists" in result.output and "--force" in result.output
    assert out.read_bytes() == b"precious"
    result = run("convert", miniml_file("gc"), out, "--force", "--name", "mygc")
    assert result.exit_code == 0, result.output
    assert read_metadata(out).name == "mygc"


def test_convert_user_errors_are_one_line(tmp_path, miniml_file):
    for args in (
        (tmp_path / "missing.h5", tmp_path / "o.safetensors"),
        (__file__, tmp_path / "o.safetensors"),  # not a Keras file
        (miniml_file("gc"), tmp_path / "o.safetensors", "--threshold", 1.5),
        (miniml_file("gc"), tmp_path / "o.safetensors", "--stride", 0),
        (miniml_file("gc"), tmp_path / "no" / "such" / "o.safetensors"),
    ):
        result = run("convert", *args)
        assert result.exit_code == 2, (args, result.output)
        assert result.output.startswith("minidet: error:") and result.output.count("\n") == 1
        assert "Traceback" not in result.output
    assert not (tmp_path / "o.safetensors").exists()
