"""Pytest fixtures for testing code that uses pulsora_revenue.

Enable them with one line in your ``conftest.py``::

    pytest_plugins = ["pulsora_revenue.testing.pytest_plugin"]
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from . import FakePulsora, set_testing


@pytest.fixture
def fake_pulsora() -> Iterator[FakePulsora]:
    """A fresh ``FakePulsora``, with retries in test mode (no real waiting)."""
    set_testing(True)
    try:
        yield FakePulsora()
    finally:
        set_testing(False)
