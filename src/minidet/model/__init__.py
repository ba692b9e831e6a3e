"""Classifier network, model files and the bundled model zoo.

``load_model(name_or_path)`` returns a :class:`MinidetModel` from a bundled short name
(:func:`available_models`), a minidet model file (``.minidet.safetensors``) or a miniML Keras
file (``.h5`` / ``.keras``).
"""

from __future__ import annotations

from .core import MinidetModel, from_keras, load_model, resolve_device
from .keras import read_keras
from .modelfile import ModelMetadata, read_metadata, read_model_file, save_model_file
from .network import INPUT_SCALINGS, MiniMLNet, minmax_scale, noise_scale
from .zoo import available_models, list_models

__all__ = [
    "MiniMLNet", "MinidetModel", "ModelMetadata", "available_models", "from_keras",
    "list_models", "load_model", "minmax_scale", "noise_scale", "INPUT_SCALINGS", "read_keras", "read_metadata",
    "read_model_file", "resolve_device", "save_model_file",
]
