"""The public API: every name resolves, and functions are not shadowed by submodules."""

import importlib
import subprocess
import sys

import minidet


def test_every_public_name_resolves():
    for name in minidet.__all__:
        assert getattr(minidet, name) is not None, name


def test_functions_stay_functions_after_submodule_imports():
    # Importing a submodule binds it on the package; no public function may share its name.
    code = (
        "import minidet.detection.pipeline, minidet.simulation, minidet.evaluation, minidet.preprocess\n"
        "import minidet\n"
        "assert callable(minidet.detect) and minidet.detect.__module__ == 'minidet.detection.pipeline'\n"
        "assert callable(minidet.simulate) and minidet.simulate.__module__ == 'minidet.simulation'\n"
        "assert callable(minidet.evaluate) and minidet.evaluate.__module__ == 'minidet.evaluation'\n"
        "assert callable(minidet.predict) and callable(minidet.load) and callable(minidet.load_model)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr


def test_import_is_light():
    out = subprocess.run([sys.executable, "-c", "import minidet, sys; print('torch' in sys.modules)"],
                         capture_output=True, text=True)
    assert out.stdout.strip() == "False", out.stderr
    assert importlib.import_module("minidet.errors").MinidetError
