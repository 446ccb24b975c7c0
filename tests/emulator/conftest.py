from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from selenium.webdriver.chrome.webdriver import WebDriver


@pytest.fixture(scope="module")
def browser() -> Iterator[WebDriver]:
    """One headless Chromium for a test module, at 1280x900; quit, with its processes, after."""
    from .browser import start_chromium  # selenium, loaded only by the tests that use it

    driver = start_chromium()
    try:
        yield driver
    finally:
        driver.quit()
