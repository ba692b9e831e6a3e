#!/usr/bin/env python
"""Regenerate the bundled models (src/minidet/models/) from miniML's Keras files.

    python scripts/convert_bundled_models.py [--source ../shared/models/miniml]
                                             [--out src/minidet/models] [--reference FILE]

Reads the six public miniML models with minidet's own Keras importer (no TensorFlow), writes
``<name>.minidet.safetensors`` (float32 weights + JSON metadata from minidet.model.zoo.ZOO)
and copies miniML's MIT licence to ``LICENSE-miniML``. With a reference file (default
``../shared/reference/keras_model_outputs.npz`` when present) it reloads every written file
and prints the largest difference from TensorFlow's probabilities; it fails above 1e-4.
The output is deterministic: running it twice gives byte-identical files.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

import numpy as np

from minidet.model import load_model
from minidet.model.keras import read_keras
from minidet.model.modelfile import FILE_SUFFIX, ModelMetadata, save_model_file
from minidet.model.zoo import MINIML_LICENSE, ZOO

REPO = Path(__file__).resolve().parent.parent
REFERENCE_KEYS = {"gc": "pred_GC_lstm_model", "gc-mepsp": "pred_GC_mEPSP", "nmj-wt": "pred_NMJ_wt",
                  "nmj-gluriia": "pred_NMJ_GluRIIA", "iglusnfr": "pred_iGluSnFR",
                  "zebrafish": "pred_zebrafish"}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--source", type=Path, default=REPO.parent / "shared" / "models" / "miniml",
                        help="miniML's models/ folder (GC_lstm_model.h5, transfer_learning/...)")
    parser.add_argument("--out", type=Path, default=REPO / "src" / "minidet" / "models")
    parser.add_argument("--reference", type=Path,
                        default=REPO.parent / "shared" / "reference" / "keras_model_outputs.npz",
                        help="npz with windows_raw and TensorFlow's pred_* (skipped if absent)")
    args = parser.parse_args(argv)

    args.out.mkdir(parents=True, exist_ok=True)
    licence = args.source / "LICENSE"
    if not licence.is_file():
        print(f"error: {licence} not found", file=sys.stderr)
        return 2
    shutil.copyfile(licence, args.out / "LICENSE-miniML")

    reference = np.load(args.reference) if args.reference.is_file() else None
    worst = 0.0
    for entry in ZOO.values():
        if not entry.source:  # trained by minidet (scripts/train_default_model.py), not converted
            continue
        source = args.source / entry.source
        km = read_keras(source)
        metadata = ModelMetadata(
            name=entry.name, window_size=entry.window_size, hyperparameters=km.hyperparameters,
            training_direction=entry.training_direction, event_direction=entry.event_direction,
            threshold=0.5, stride=None, resample=True, convolve_win=20, gradient_convolve_win=40,
            description=entry.description, source_file=f"miniML/models/{entry.source}",
            source_sha256=km.source_sha256, license=MINIML_LICENSE)
        target = args.out / f"{entry.name}{FILE_SUFFIX}"
        save_model_file(target, km.network, metadata, overwrite=True)
        line = f"{entry.name:12s} <- {entry.source:45s} {target.stat().st_size / 1e6:.2f} MB"
        if reference is not None:
            probs = load_model(target).predict_windows(reference["windows_raw"])
            diff = float(np.max(np.abs(probs - reference[REFERENCE_KEYS[entry.name]])))
            worst = max(worst, diff)
            line += f"  max |p - p_TF| = {diff:.2e}"
        print(line)
    if reference is not None and worst > 1e-4:
        print(f"error: largest difference {worst:.2e} exceeds 1e-4", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
