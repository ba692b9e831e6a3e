"""Test helper shared by the lazy-recording tests (tests/ is on sys.path via conftest.py)."""

from __future__ import annotations

import numpy as np

from minidet.recording import LazyTrace


def lazy(x: np.ndarray, max_read: int | None = None) -> LazyTrace:
    """``x`` read on demand; ``max_read`` fails any read longer than that many samples."""

    def read(a: int, b: int) -> np.ndarray:
        if max_read is not None:
            assert b - a <= max_read, f"read of {b - a} samples"
        return x[a:b]

    return LazyTrace(x.size, read, "test")
