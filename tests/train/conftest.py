"""Fixtures for the training-set tests."""

from __future__ import annotations

import numpy as np
import pytest

from train_synthetic import synthetic_recording
from minidet.recording import Recording


@pytest.fixture
def gc_recording() -> tuple[Recording, np.ndarray]:
    """10 s at 50 kHz of granule-cell-like events (80, 20 pA) in 1.5 pA noise, and their onsets."""
    return synthetic_recording()
