"""Fixtures for the report tests: results from :mod:`report_fakes` (no model needed)."""

from __future__ import annotations

import pytest

from report_fakes import FakeResult, make_result


@pytest.fixture
def fake_result() -> FakeResult:
    return make_result()


@pytest.fixture
def empty_result() -> FakeResult:
    return make_result(events=[])
