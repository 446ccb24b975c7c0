from __future__ import annotations

from collections.abc import Iterator

import pytest

from pulsora_revenue import testing


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(autouse=True)
def _no_real_sleeps() -> Iterator[None]:
    """Run every test in test mode unless it turns it off itself."""
    testing.set_testing(True)
    yield
    testing.set_testing(False)


@pytest.fixture(autouse=True)
def _no_token_in_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PULSORA_SECRET_TOKEN", raising=False)
    monkeypatch.delenv("PULSORA_ENDPOINT", raising=False)
