"""Classifier network, model files and the bundled model zoo."""

from __future__ import annotations

from .network import MiniMLNet, minmax_scale

__all__ = ["MiniMLNet", "minmax_scale"]
