"""Fixtures for the web apps: a scoring server in a subprocess, a headless Chromium."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "train"))

from train_synthetic import synthetic_recording, write_h5_recording  # noqa: E402
from web_helpers import CliServer  # noqa: E402

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"


@pytest.fixture
def extracted(tmp_path: Path) -> Path:
    """A dataset extracted from a short synthetic recording that sits next to it."""
    from minidet.train.dataset import write_dataset
    from minidet.train.extract import ExtractSettings, extract
    from minidet import load

    rec, _ = synthetic_recording(duration_s=3, n_events=20, amplitude=12, noise_sd=2.0)
    source = write_h5_recording(tmp_path / "cell.h5", rec)
    ds, _ = extract([load(source)], ExtractSettings(window_size=600))
    return write_dataset(tmp_path / "ds.h5", ds)


@pytest.fixture
def score_server():
    servers: list[CliServer] = []

    def start(dataset: Path, *extra: str) -> CliServer:
        server = CliServer("score", dataset, *extra, cwd=dataset.parent)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.kill()


def _browser_missing() -> str | None:
    if not os.path.exists(CHROMIUM):
        return f"{CHROMIUM} is not installed (apt-get install chromium chromium-driver)"
    if not os.path.exists(CHROMEDRIVER):
        return f"{CHROMEDRIVER} is not installed (apt-get install chromium-driver)"
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "the selenium package is not installed (pip install -e '.[test]')"
    return None


@pytest.fixture
def browser():
    """Headless Debian Chromium driven by Selenium. Skips without it, except under CI (fails)."""
    missing = _browser_missing()
    if missing:
        if os.environ.get("CI"):
            pytest.fail(f"browser test cannot run under CI: {missing}")
        pytest.skip(missing)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--window-size=1400,900", "--force-device-scale-factor=1"):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()
