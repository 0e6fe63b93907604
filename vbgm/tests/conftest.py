"""Shared fixtures: where the real data lives (../shared/data or $VBGM_DATA)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def _data_root() -> Path | None:
    env = os.environ.get("VBGM_DATA")
    candidates = [Path(env)] if env else []
    candidates.append(REPO.parent / "shared" / "data")
    for c in candidates:
        if c.is_dir():
            return c
    return None


@pytest.fixture(scope="session")
def data_root() -> Path:
    """The shared real-data folder; skipped when absent, an error in CI (CI=true)."""
    root = _data_root()
    if root is None:
        if os.environ.get("CI") == "true":
            pytest.fail("real data not found at ../shared/data or $VBGM_DATA, and CI=true")
        pytest.skip("real data not found at ../shared/data or $VBGM_DATA")
    return root


@pytest.fixture(scope="session")
def midi_root(data_root: Path) -> Path:
    """Folder of real MIDI files."""
    return data_root / "midi"


@pytest.fixture(scope="session")
def video_root(data_root: Path) -> Path:
    """Folder of real video clips."""
    return data_root / "videos"


@pytest.fixture
def one_thread():
    """Small torch workloads: one thread is faster, and far faster on a shared CPU."""
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="session")
def chromium():
    """A real headless Chromium (Debian's chromium + chromium-driver, driven by Selenium): the
    browser tests' page. Skipped when absent, an error in CI (CI=true)."""
    import shutil

    browser, driver = shutil.which("chromium"), shutil.which("chromedriver")
    if not (browser and driver):
        if os.environ.get("CI") == "true":
            pytest.fail("chromium / chromedriver not installed, and CI=true (make setup installs "
                        "them)")
        pytest.skip("chromium / chromedriver not installed (Debian: chromium chromium-driver)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = browser
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                "--window-size=1280,1600"):
        options.add_argument(arg)
    page = webdriver.Chrome(service=Service(driver), options=options)
    page.set_page_load_timeout(120)
    yield page
    page.quit()
