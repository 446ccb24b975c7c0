"""The backend is settled once, at construction: later changes to the environment do not count."""

from __future__ import annotations

import pytest

from pulsora_revenue import ConfigurationError, Revenue
from pulsora_revenue.testing import FakePulsora

from ..data import EVENT, TOKEN

pytestmark = pytest.mark.anyio


async def test_the_environment_is_read_once_at_construction(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PULSORA_HTTP_BACKEND", "httpx")
    fake = FakePulsora()
    revenue = Revenue(TOKEN, transport=fake.transport)
    monkeypatch.setenv("PULSORA_HTTP_BACKEND", "bogus")  # read again, it would be refused
    async with revenue:
        assert (await revenue.track(EVENT)).status_code == 202
    assert len(fake.events) == 1


def test_a_backend_the_environment_names_wrongly_fails_at_construction(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PULSORA_HTTP_BACKEND", "aiohtp")
    with pytest.raises(ConfigurationError, match="backend must be one of"):
        Revenue(TOKEN)
