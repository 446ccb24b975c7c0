from __future__ import annotations

import pytest

from ..conftest import DevServer
from ..data import TOKEN


@pytest.fixture
def env(server: DevServer, monkeypatch: pytest.MonkeyPatch) -> DevServer:
    """The dev server, with the token and its endpoint in the environment."""
    monkeypatch.setenv("PULSORA_SECRET_TOKEN", TOKEN)
    monkeypatch.setenv("PULSORA_ENDPOINT", server.endpoint)
    return server
