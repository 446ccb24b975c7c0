"""The dev server over real HTTP (uvicorn on loopback), driven by the real client."""

from __future__ import annotations

import html
import logging
from decimal import Decimal
from pathlib import Path

import anyio
import httpx
import pytest

from pulsora_revenue import (
    APITimeoutError,
    AuthenticationError,
    BadRequestError,
    ConfigurationError,
    DuplicateTransactionError,
    RateLimitError,
    RetryPolicy,
    Revenue,
    ServerError,
    ValidationError,
    testing,
)

from ..conftest import ONE_BACKEND, DevServer
from ..data import EVENT as PURCHASE
from ..data import TOKEN

pytestmark = pytest.mark.anyio


@pytest.fixture(autouse=True, params=["auto", "httpx"])
def backend(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Every test twice: with the default choice (aiohttp on asyncio), and with httpx."""
    monkeypatch.setenv("PULSORA_HTTP_BACKEND", str(request.param))
    return str(request.param)


EVENT = {**PURCHASE, "currency": "eur"}


async def test_track_is_stored(server: DevServer) -> None:
    async with Revenue(TOKEN, endpoint=server.endpoint) as revenue:
        result = await revenue.track({**EVENT, "metadata": {"plan": "pro"}})
    assert result.status_code == 202
    (stored,) = server.events("tx_1")
    assert stored["amount"] == 49.99
    assert stored["currency"] == "EUR"
    assert stored["metadata"] == {"plan": "pro"}


async def test_validation_error_never_reaches_the_server(server: DevServer) -> None:
    async with Revenue(TOKEN, endpoint=server.endpoint) as revenue:
        with pytest.raises(ValidationError):
            await revenue.track({**EVENT, "amount": -1})
    assert server.events() == []


async def test_server_validation_answer(server: DevServer) -> None:
    async with httpx.AsyncClient() as client:
        response = await client.post(
            server.endpoint,
            headers={"X-API-Token": TOKEN},
            json={"type": "revenue", "data": {**EVENT, "amount": -1}},
        )
    assert response.status_code == 400
    assert response.json()["message"] == "amount must be a positive number. Received: -1."


async def test_duplicate_from_an_earlier_call(server: DevServer) -> None:
    async with Revenue(TOKEN, endpoint=server.endpoint) as revenue:
        await revenue.track(EVENT)
        with pytest.raises(DuplicateTransactionError):
            await revenue.track(EVENT)
    assert len(server.events()) == 1


async def test_429_with_retry_after_is_waited_out(server: DevServer) -> None:
    server.script({"status": 429, "retry_after": 2})
    async with Revenue(TOKEN, endpoint=server.endpoint) as revenue:
        with testing.fast_retries() as sleeps:
            result = await revenue.track(EVENT)
    assert result.attempts == 2
    assert 2 <= sleeps[0] <= 2.5
    assert len(server.events()) == 1


async def test_rate_limited_server(tmp_path: Path) -> None:
    with testing.serve_emulator(tmp_path / "db.sqlite", rate_limit=(1, 3600)) as emulator:
        async with Revenue(TOKEN, endpoint=emulator.endpoint) as revenue:
            await revenue.track(EVENT)
            with pytest.raises(RateLimitError) as info:
                await revenue.track({**EVENT, "transaction_id": "tx_2"})
    assert info.value.retry_after is not None
    assert 3500 < info.value.retry_after <= 3600


async def test_dropped_answer_then_retry_is_delivered_once(server: DevServer) -> None:
    server.script({"drop": True})
    async with Revenue(TOKEN, endpoint=server.endpoint) as revenue:
        result = await revenue.track(EVENT)
    assert result.duplicate
    assert result.attempts == 2
    assert len(server.events("tx_1")) == 1


async def test_lost_answer_by_timeout_is_delivered_once(server: DevServer) -> None:
    server.script({"delay": 0.5})
    policy = RetryPolicy(initial_delay=0.01, max_delay=0.01)
    async with Revenue(TOKEN, endpoint=server.endpoint, timeout=0.1, retry=policy) as revenue:
        result = await revenue.track(EVENT)
    assert result.duplicate
    assert len(server.events("tx_1")) == 1


async def test_bad_request_from_the_server(server: DevServer) -> None:
    async def corrupt(request: httpx.Request) -> httpx.Response:
        async with httpx.AsyncClient() as client:
            content = request.content.replace(b'"currency":"EUR"', b'"currency":"XYZ"')
            return await client.post(str(request.url), headers=request.headers, content=content)

    async with Revenue(
        TOKEN, endpoint=server.endpoint, transport=httpx.MockTransport(corrupt)
    ) as revenue:
        with pytest.raises(BadRequestError, match="active ISO 4217"):
            await revenue.track(EVENT)


async def test_page_shows_totals_and_escapes(server: DevServer) -> None:
    rows = [
        {**EVENT, "transaction_id": "<script>alert(1)</script>", "amount": "100.10"},
        {**EVENT, "transaction_id": "re_1", "event_type": "refund", "amount": "-20.05"},
        {
            **EVENT,
            "transaction_id": "sub_1",
            "event_type": "subscription",
            "amount": "30",
            "mrr_impact": "30",
        },
        {**EVENT, "transaction_id": "jp_1", "currency": "JPY", "amount": 5000},
    ]
    async with Revenue(TOKEN, endpoint=server.endpoint) as revenue:
        for row in rows:
            await revenue.track(row)
    async with httpx.AsyncClient() as client:
        await client.post(server.endpoint, content=b"{}")  # a rejection: no token
        page = (await client.get(server.url)).text
    assert "<script>alert(1)</script>" not in page
    assert html.escape("<script>alert(1)</script>") in page
    eur = page[page.index("<td>EUR</td>") :]
    assert "130.10" in eur[:200]  # gross: 100.10 + 30
    assert "-20.05" in eur[:200]  # refunds
    assert "110.05" in eur[:200]  # net
    assert "Missing API token" in page
    assert "JPY" in page


async def test_events_endpoint_reset_and_filter(server: DevServer) -> None:
    async with Revenue(TOKEN, endpoint=server.endpoint) as revenue:
        await revenue.track(EVENT)
        await revenue.track({**EVENT, "transaction_id": "tx_2"})
    assert [e["transaction_id"] for e in server.events("tx_2")] == ["tx_2"]
    assert len(server.events()) == 2
    server.reset()
    assert server.events() == []


@pytest.mark.parametrize(
    ("status", "error"),
    [(409, DuplicateTransactionError), (401, AuthenticationError)],
)
async def test_a_scripted_contract_status_says_what_pulsora_says(
    server: DevServer, status: int, error: type[Exception]
) -> None:
    server.script({"status": status})
    async with Revenue(TOKEN, endpoint=server.endpoint) as revenue:
        with pytest.raises(error) as info:
            await revenue.track(EVENT)
    assert "Scripted fault" not in str(info.value)


@pytest.mark.parametrize("anyio_backend", ONE_BACKEND)  # a database across restarts
async def test_events_survive_a_restart(tmp_path: Path) -> None:
    db = tmp_path / "events.sqlite"
    for transaction_id in ("tx_1", "tx_2"):
        with testing.serve_emulator(db) as emulator:
            async with Revenue(TOKEN, endpoint=emulator.endpoint) as revenue:
                await revenue.track({**EVENT, "transaction_id": transaction_id})
    with testing.serve_emulator(db) as emulator:
        async with httpx.AsyncClient() as client:
            events = (await client.get(f"{emulator.url}/api/events")).json()
        async with Revenue(TOKEN, endpoint=emulator.endpoint) as revenue:
            with pytest.raises(DuplicateTransactionError):
                await revenue.track(EVENT)
    assert sorted(e["transaction_id"] for e in events) == ["tx_1", "tx_2"]
    assert Decimal(str(events[0]["amount"])) == Decimal("49.99")


async def test_scripted_outage(server: DevServer) -> None:
    server.script(outage={"status": 503, "seconds": 30})
    policy = RetryPolicy(max_attempts=2)
    async with Revenue(TOKEN, endpoint=server.endpoint, retry=policy) as revenue:
        with pytest.raises(ServerError, match="Service unavailable"):
            await revenue.track(EVENT)
    server.reset()
    async with Revenue(TOKEN, endpoint=server.endpoint) as revenue:
        assert (await revenue.track(EVENT)).status_code == 202


async def test_no_token_in_any_log_over_real_http(
    server: DevServer, caplog: pytest.LogCaptureFixture
) -> None:
    secret = "sec_live_RealHttpSecret_0123_WXYZ"
    caplog.set_level(logging.DEBUG)
    server.script({"status": 503}, {"status": 429, "retry_after": 1}, {"drop": True})
    async with Revenue(secret, endpoint=server.endpoint, debug=True) as revenue:
        result = await revenue.track(EVENT)
    assert result.attempts == 4
    assert any(r.name == "pulsora_revenue" for r in caplog.records)
    assert secret not in caplog.text
    assert all(secret not in r.getMessage() for r in caplog.records)


async def test_the_deadline_holds_against_a_server_that_answers_too_late(server: DevServer) -> None:
    testing.set_testing(False)
    late: dict[str, object] = {"delay": 3}
    server.script(*([late] * 10))
    policy = RetryPolicy(deadline=0.3, initial_delay=0.05, max_delay=0.05)
    async with Revenue(TOKEN, endpoint=server.endpoint, timeout=5, retry=policy) as revenue:
        started = anyio.current_time()
        with pytest.raises(APITimeoutError):
            await revenue.track(EVENT)
    assert anyio.current_time() - started < 1.5  # the deadline, not the 5 s timeout


def test_a_bad_backend_in_the_environment_is_refused_at_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PULSORA_HTTP_BACKEND", "aiohtp")
    with pytest.raises(ConfigurationError, match="backend"):
        Revenue(TOKEN)
