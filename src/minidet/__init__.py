"""minidet: find and measure synaptic events with a deep-learning classifier.

The public API is imported lazily so that ``import minidet`` stays light (no torch until a
model is needed).
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

#: the model used where none is named (CLI, API, batch, analysis app): minidet's own noise-scaled
#: granule-cell model with its threshold chosen per recording; ``"gc"`` is miniML's base model
#: (README, "Accuracy": how it was chosen)
DEFAULT_MODEL = "gc-robust"

# public name -> "module:attribute"
_API = {
    "Recording": "minidet.recording:Recording",
    "load": "minidet.io:load",
    "describe": "minidet.io:describe",
    "preprocess": "minidet.preprocess:",
    "errors": "minidet.errors:",
    "load_model": "minidet.model:load_model",
    "predict": "minidet.detection.predict:predict",
    "detect": "minidet.detection.pipeline:detect",
    "run_batch": "minidet.batch:run_batch",
    "BatchSettings": "minidet.batch:BatchSettings",
    "simulate": "minidet.simulation:simulate",
    "SimulationSettings": "minidet.simulation:SimulationSettings",
    "read_truth": "minidet.simulation:read_truth",
    "evaluate": "minidet.evaluation:evaluate",
    "classic": "minidet.classic:",
    "suggest_window": "minidet.train.window:suggest_window",
    "ExtractSettings": "minidet.train.extract:ExtractSettings",
    "extract_snippets": "minidet.train.extract:extract",
    "read_dataset": "minidet.train.dataset:read_dataset",
    "train_model": "minidet.train.fit:train_model",
    "TrainSettings": "minidet.train.fit:TrainSettings",
}

__all__ = sorted(_API) + ["DEFAULT_MODEL", "__version__"]


def __getattr__(name: str) -> Any:
    target = _API.get(name)
    if target is None:
        raise AttributeError(f"module 'minidet' has no attribute {name!r}")
    module_name, _, attr = target.partition(":")
    module = importlib.import_module(module_name)
    value = getattr(module, attr) if attr else module
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
