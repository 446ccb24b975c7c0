from __future__ import annotations

import importlib.util
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import attrs
import httpx
import pytest

from pulsora_revenue import testing
from pulsora_revenue._server import create_app, serve_in_thread

#: Every async test runs on asyncio, on uvloop (which uvicorn uses when it is
#: installed: its own clock and transports), and on trio.
ANYIO_BACKENDS = [
    pytest.param("asyncio", id="asyncio"),
    pytest.param(
        ("asyncio", {"use_uvloop": True}),
        id="uvloop",
        marks=pytest.mark.skipif(
            importlib.util.find_spec("uvloop") is None, reason="uvloop is not installed"
        ),
    ),
    pytest.param("trio", id="trio"),
]


@pytest.fixture(params=ANYIO_BACKENDS)
def anyio_backend(request: pytest.FixtureRequest) -> str | tuple[str, dict[str, Any]]:
    backend: str | tuple[str, dict[str, Any]] = request.param
    return backend


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
    monkeypatch.delenv("PULSORA_HTTP_BACKEND", raising=False)


pytest_plugins = ["pulsora_revenue.pytest_plugin"]


@attrs.define
class DevServer:
    """A running dev server: its base URL, ingest endpoint, and database file."""

    url: str
    db: Path

    @property
    def endpoint(self) -> str:
        return f"{self.url}/api/ingest"

    def reset(self) -> None:
        httpx.delete(f"{self.url}/api/events").raise_for_status()
        httpx.delete(f"{self.url}/api/faults").raise_for_status()

    def script(
        self,
        *faults: dict[str, object],
        chaos: float | None = None,
        outage: dict[str, object] | None = None,
    ) -> None:
        spec: dict[str, object] = {"faults": list(faults)}
        if chaos is not None:
            spec["chaos"] = chaos
        if outage is not None:
            spec["outage"] = outage
        httpx.post(f"{self.url}/api/faults", json=spec).raise_for_status()

    def events(self, transaction_id: str | None = None) -> list[dict[str, object]]:
        params = {"transaction_id": transaction_id} if transaction_id else {}
        response = httpx.get(f"{self.url}/api/events", params=params)
        response.raise_for_status()
        result: list[dict[str, object]] = response.json()
        return result


@pytest.fixture(scope="session")
def dev_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevServer]:
    """The real ``pulsora-revenue dev`` app, served by uvicorn on loopback."""
    db = tmp_path_factory.mktemp("dev") / "events.sqlite"
    with serve_in_thread(create_app(db)) as url:
        yield DevServer(url, db)


@pytest.fixture
def server(dev_server: DevServer) -> DevServer:
    """The session's dev server, emptied for this test."""
    dev_server.reset()
    return dev_server
