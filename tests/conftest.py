"""Shared test fixtures: paths to ../shared (read-only data of the project)."""

from __future__ import annotations

from pathlib import Path

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
