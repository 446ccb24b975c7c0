"""``testing.serve_emulator``: the emulator over real HTTP for users' tests."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import httpx
import pytest

from pulsora_revenue import Revenue
from pulsora_revenue.testing import EmulatorServer, serve_emulator

from ..data import EVENT, TOKEN


@pytest.fixture(scope="module")
def emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmulatorServer]:
    """One emulator for the module: starting and stopping one is the slow part."""
    with serve_emulator(tmp_path_factory.mktemp("emulator") / "events.sqlite") as served:
        yield served


@pytest.mark.anyio
async def test_a_revenue_tracks_an_event_into_it(emulator: EmulatorServer) -> None:
    async with httpx.AsyncClient(base_url=emulator.url) as client:
        (await client.delete("/api/events")).raise_for_status()  # a run per event loop
        async with Revenue(TOKEN, endpoint=emulator.endpoint) as revenue:
            result = await revenue.track(EVENT)
        stored = (await client.get("/api/events")).json()
    assert result.status_code == 202
    assert [(e["transaction_id"], Decimal(str(e["amount"]))) for e in stored] == [
        ("tx_1", Decimal("49.99"))
    ]
    assert emulator.endpoint == f"{emulator.url}/api/ingest"
    assert emulator.db.exists()


def test_only_the_tokens_given_are_valid(tmp_path: Path) -> None:
    with serve_emulator(tmp_path / "events.sqlite", tokens={"sec_other_0123456789"}) as served:
        answer = httpx.post(
            served.endpoint, headers={"X-API-Token": TOKEN}, json={"type": "revenue", "data": EVENT}
        )
    assert (answer.status_code, answer.json()) == (401, {"error": "Invalid API token"})
    assert (tmp_path / "events.sqlite").exists()  # a database given is kept


def test_it_stops_on_exit_and_removes_its_temporary_database() -> None:
    with serve_emulator() as served:
        assert httpx.get(f"{served.url}/api/health").json() == {"ok": True, "events": 0}
        assert served.url.startswith("http://127.0.0.1:")
        assert served.db.exists()
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{served.url}/api/health")
    assert not served.db.parent.exists()


def test_without_the_server_extra_it_says_which_to_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "uvicorn", None)  # import uvicorn now fails
    monkeypatch.delitem(sys.modules, "pulsora_revenue._emulator._app", raising=False)
    with pytest.raises(ImportError, match=r"pulsora-revenue\[server\]"), serve_emulator():
        pass


def test_importing_testing_loads_no_server_stack() -> None:
    # rich is left out: httpx imports it for its command line whenever it is installed.
    code = (
        "import sys, pulsora_revenue.testing;"
        "print([m for m in ('starlette', 'uvicorn', 'sqlite3') if m in sys.modules])"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert loaded.strip() == "[]"
