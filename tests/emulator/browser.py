"""A headless Chromium for the page's tests: Debian's chromium and chromedriver, through selenium.

Selenium is handed the driver's path, so that it never runs selenium-manager
(which would download a browser: the tests run offline). Where either program
is missing, the tests that need them are skipped, saying which.
"""

from __future__ import annotations

import os
import shutil

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.chrome.webdriver import WebDriver

#: The window the page is looked at in, as on a laptop.
WIDTH, HEIGHT = 1280, 900

#: Where Debian puts them (apt-get install chromium chromium-driver), if not on PATH.
DEBIAN = {"chromium": "/usr/bin/chromium", "chromedriver": "/usr/bin/chromedriver"}

_ARGUMENTS = (
    "--headless=new",
    "--no-sandbox",  # as root in a container, Chromium runs only without its sandbox
    "--disable-dev-shm-usage",
    "--disable-gpu",
    "--disable-background-networking",  # offline: no updates, no phoning home
    "--disable-extensions",
    "--no-first-run",
    f"--window-size={WIDTH},{HEIGHT}",
)


def find(program: str) -> str | None:
    """The path of *program*: on PATH, else where Debian puts it; None if neither."""
    found = shutil.which(program)
    if found is None and os.access(DEBIAN[program], os.X_OK):
        found = DEBIAN[program]
    return found


def start_chromium() -> WebDriver:
    """Start a headless Chromium; skip the calling test if chromium or chromedriver is missing."""
    chromium, driver = find("chromium"), find("chromedriver")
    missing = [
        name for name, path in (("chromium", chromium), ("chromedriver", driver)) if not path
    ]
    if chromium is None or driver is None:
        pytest.skip(
            f"the page's browser tests need {' and '.join(missing)}, not found on PATH or in"
            " /usr/bin (apt-get install chromium chromium-driver)"
        )
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for argument in _ARGUMENTS:
        options.add_argument(argument)
    return webdriver.Chrome(service=Service(driver), options=options)
