"""Choosing and configuring the HTTP library."""

from __future__ import annotations

import pytest

from pulsora_revenue import ConfigurationError, Revenue
from pulsora_revenue._senders import env_proxy

from .data import TOKEN


def test_proxies_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("HTTPS_PROXY", "https_proxy", "NO_PROXY", "no_proxy", "HTTP_PROXY", "http_proxy"):
        monkeypatch.delenv(name, raising=False)
    assert env_proxy("https://pulsora.co/api/ingest") is None
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.internal:3128")
    assert env_proxy("https://pulsora.co/api/ingest") == "http://proxy.internal:3128"
    monkeypatch.setenv("NO_PROXY", "pulsora.co")
    assert env_proxy("https://pulsora.co/api/ingest") is None


def test_aiohttp_cannot_use_an_httpx_transport() -> None:
    import httpx

    with pytest.raises(ConfigurationError, match="cannot use an httpx"):
        Revenue(
            TOKEN, backend="aiohttp", transport=httpx.MockTransport(lambda r: httpx.Response(202))
        )
