#!/usr/bin/env bash
# Create a separate virtual environment holding the original miniML (PyPI: miniml-detect 1.1.2,
# TensorFlow 2.15, Python 3.11) for the side-by-side benchmark in predict_speed.py.
# It is never a dependency of minidet.
#
# Usage: bash benchmarks/setup_miniml_venv.sh [VENV_PATH]   (default /work/miniml-venv)
set -euo pipefail
VENV="${1:-/work/miniml-venv}"
PY="${PYTHON:-python3.11}"
if ! command -v "$PY" >/dev/null 2>&1; then
    echo "error: $PY not found; miniml-detect 1.1.2 needs Python 3.11 (set PYTHON=...)" >&2
    exit 2
fi
if [ ! -x "$VENV/bin/python" ]; then
    "$PY" -m venv "$VENV"
fi
"$VENV/bin/python" -m pip install --upgrade pip >/dev/null
"$VENV/bin/python" -m pip install "miniml-detect==1.1.2"
"$VENV/bin/python" - <<'PY'
import importlib.metadata as md
import tensorflow as tf
print("miniml-detect", md.version("miniml-detect"), "tensorflow", tf.__version__)
PY
echo "original miniML installed in $VENV"
