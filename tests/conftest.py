"""Shared test fixtures: paths to ../shared (read-only data of the project)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"


@pytest.fixture(scope="session")
def shared() -> Path:
    if not SHARED.is_dir():
        pytest.skip("../shared is not present next to the checkout")
    return SHARED


@pytest.fixture(scope="session")
def abf_dir(shared: Path) -> Path:
    return shared / "data" / "abf"


@pytest.fixture(scope="session")
def public30_reference(shared: Path):
    """``(recording, reference)``: ../shared/reference/public30.h5 in pA and the original
    miniML's outputs on it (public30_miniml.npz, as a dict)."""
    import h5py

    from minidet.recording import Recording

    with h5py.File(shared / "reference" / "public30.h5") as f:
        x = f["mini_data"][:] * 1e12
        dt = float(f.attrs["sampling"])
    ref = dict(np.load(shared / "reference" / "public30_miniml.npz"))
    return Recording(x, 1 / dt, unit="pA", source="public30.h5"), ref
