from __future__ import annotations

import importlib.util
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import attrs
import httpx
import pytest
from hypothesis import settings

from pulsora_revenue import testing

#: Hypothesis' own default number of examples, the scale tests chose theirs on.
HYPOTHESIS_DEFAULT = 100

#: A modest search by default, so that the suite does not wait; one 20 times wider
#: with ``PULSORA_HYPOTHESIS=thorough`` (before a release, or after touching a parser).
settings.register_profile("quick", max_examples=HYPOTHESIS_DEFAULT // 4)
settings.register_profile("thorough", max_examples=HYPOTHESIS_DEFAULT * 5)
settings.load_profile(os.environ.get("PULSORA_HYPOTHESIS", "quick"))


def examples(count: int) -> int:
    """*count* examples, as a test would choose them at Hypothesis' default, for this profile."""
    return max(1, round(count * settings().max_examples / HYPOTHESIS_DEFAULT))


#: Every async test runs on asyncio, on uvloop (which uvicorn uses when it is
#: installed: its own clock and transports), and on trio. A test whose behaviour
#: cannot depend on the event loop (pure code, or a server in its own thread)
#: takes ``ONE_BACKEND`` instead.
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


#: For ``@pytest.mark.parametrize("anyio_backend", ONE_BACKEND)``: asyncio only.
ONE_BACKEND = ["asyncio"]


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
    monkeypatch.delenv("PULSORA_LOG", raising=False)


pytest_plugins = ["pulsora_revenue.testing.pytest_plugin"]


@attrs.define
class DevServer:
    """A running dev server: its base URL, ingest endpoint, and database file.

    It is scripted and read through one kept-open client: a new httpx client costs
    some 25 ms of CPU (its TLS context), and every test that uses the server resets it.
    """

    url: str
    db: Path
    http: httpx.Client = attrs.field(repr=False)

    @property
    def endpoint(self) -> str:
        return f"{self.url}/api/ingest"

    def reset(self) -> None:
        self.http.delete(f"{self.url}/api/events").raise_for_status()
        self.http.delete(f"{self.url}/api/faults").raise_for_status()

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
        self.http.post(f"{self.url}/api/faults", json=spec).raise_for_status()

    def events(self, transaction_id: str | None = None) -> list[dict[str, object]]:
        params = {"transaction_id": transaction_id} if transaction_id else {}
        response = self.http.get(f"{self.url}/api/events", params=params)
        response.raise_for_status()
        result: list[dict[str, object]] = response.json()
        return result


@pytest.fixture(scope="session")
def dev_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevServer]:
    """The real ``pulsora-revenue dev`` app, served by uvicorn on loopback (as users serve it)."""
    db = tmp_path_factory.mktemp("dev") / "events.sqlite"
    # Connections kept for 1 s at most: uvicorn closes them after 5 s idle, and a
    # request must never race that close.
    limits = httpx.Limits(keepalive_expiry=1.0)
    with testing.serve_emulator(db) as emulator, httpx.Client(limits=limits) as http:
        yield DevServer(emulator.url, emulator.db, http)


@pytest.fixture
def server(dev_server: DevServer) -> DevServer:
    """The session's dev server, emptied for this test."""
    dev_server.reset()
    return dev_server
