"""A generic headless-Chromium fixture for browser tests (selenium + Debian's chromedriver).

    def test_page(chromium_driver, tmp_path):
        chromium_driver.get(path.as_uri())
        screenshot(chromium_driver, tmp_path / "page.png")

Tests using `chromium_driver` skip, with the reason, only when Chromium or its driver is not
installed (Debian: apt-get install chromium chromium-driver). Selenium is a declared test
dependency (pyproject.toml `test` extra); its absence is an error, not a skip.
Nothing is downloaded: the browser and driver paths are given, so Selenium Manager is unused.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome")
CHROMEDRIVER = "/usr/bin/chromedriver"
WINDOW = (1440, 1000)


def chromium_binary() -> str | None:
    """The Chromium executable ($KMATRIX_CHROMIUM, else the first on PATH), or None."""
    explicit = os.environ.get("KMATRIX_CHROMIUM")
    if explicit:
        return explicit if Path(explicit).is_file() else None
    for name in CHROMIUM_NAMES:
        found = shutil.which(name)
        if found:
            return found
    return None


def chromedriver_binary() -> str | None:
    """chromedriver ($KMATRIX_CHROMEDRIVER, /usr/bin/chromedriver, else PATH), or None."""
    explicit = os.environ.get("KMATRIX_CHROMEDRIVER")
    if explicit:
        return explicit if Path(explicit).is_file() else None
    if Path(CHROMEDRIVER).is_file():
        return CHROMEDRIVER
    return shutil.which("chromedriver")


def screenshot(driver: Any, path: Path, full_page: bool = True) -> Path:
    """Save a PNG of the current page (the whole page height when full_page); returns path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if full_page:
        height = driver.execute_script(
            "return Math.max(document.body.scrollHeight, document.documentElement.scrollHeight)")
        driver.set_window_size(WINDOW[0], min(max(int(height) + 40, WINDOW[1]), 8000))
    driver.save_screenshot(str(path))
    if full_page:
        driver.set_window_size(*WINDOW)
    return path


@pytest.fixture
def chromium_driver() -> Iterator[Any]:
    """A selenium WebDriver for headless Chromium; quit after the test."""
    browser, driver_path = chromium_binary(), chromedriver_binary()
    if browser is None:
        pytest.skip("Chromium is not installed (apt-get install chromium chromium-driver)")
    if driver_path is None:
        pytest.skip("chromedriver is not installed (apt-get install chromium-driver)")
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        pytest.fail("selenium is not installed: pip install -e '.[test]'")
    options = webdriver.ChromeOptions()
    options.binary_location = browser
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                f"--window-size={WINDOW[0]},{WINDOW[1]}", "--hide-scrollbars",
                "--force-device-scale-factor=1", "--allow-file-access-from-files"):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(executable_path=driver_path), options=options)
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()
