"""The secret token never appears in a log record, a repr, or an exception."""

from __future__ import annotations

import logging
import traceback

import httpx
import pytest

from pulsora_revenue import ConfigurationError, PulsoraError, RetryPolicy, Revenue
from pulsora_revenue._config import redact

pytestmark = pytest.mark.anyio

TOKEN = "sec_live_SuperSecretValue_0123_WXYZ"
EVENT = {
    "visitor_fingerprint": "fp_1",
    "session_id": "sess_1",
    "customer_id": "cus_1",
    "amount": "49.99",
    "transaction_id": "tx_1",
}


def test_redact_shows_kind_and_last_four() -> None:
    assert redact(TOKEN) == "sec_…WXYZ"
    assert redact("sec_short") == "sec_…"
    assert redact("pub_0123456789abcdef") == "pub_…cdef"


def test_repr_is_redacted() -> None:
    revenue = Revenue(TOKEN)
    assert TOKEN not in repr(revenue)
    assert "sec_…WXYZ" in repr(revenue)


@pytest.mark.parametrize("token", ["pub_SuperSecretValue_0123", "sec_Super Secret\nValue0"])
def test_configuration_errors_are_redacted(token: str) -> None:
    with pytest.raises(ConfigurationError) as info:
        Revenue(token)
    assert "SuperSecret" not in str(info.value)


async def test_failing_retried_call_leaks_nothing(caplog: pytest.LogCaptureFixture) -> None:
    answers = iter(
        [
            httpx.Response(503, json={"error": f"token {TOKEN} is overloaded"}),
            httpx.Response(429, headers={"Retry-After": "1"}, json={"error": "Rate limited"}),
            httpx.Response(401, json={"error": f"Invalid API token {TOKEN}"}),
        ]
    )

    def handler(request: httpx.Request) -> httpx.Response:
        assert request.headers["X-API-Token"] == TOKEN  # it is sent, only never shown
        return next(answers)

    caplog.set_level(logging.DEBUG)
    revenue = Revenue(
        TOKEN,
        transport=httpx.MockTransport(handler),
        retry=RetryPolicy(max_attempts=5),
        debug=True,
    )
    async with revenue:
        with pytest.raises(PulsoraError) as info:
            await revenue.track(EVENT)

    records = [r for r in caplog.records if r.name.startswith("pulsora_revenue")]
    assert len(records) >= 3, "debug=True logs each attempt"
    shown = [r.getMessage() for r in caplog.records]
    shown += [caplog.text, str(info.value), repr(info.value), repr(revenue)]
    shown += traceback.format_exception(info.value)
    shown += [str(v) for v in vars(info.value).values()]
    for text in shown:
        assert TOKEN not in text
    assert "sec_…WXYZ" in str(info.value)


async def test_a_truncated_echo_is_redacted_too() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(400, text="x" * 180 + f" token={TOKEN} " + "y" * 100)

    async with Revenue(TOKEN, transport=httpx.MockTransport(handler)) as revenue:
        with pytest.raises(PulsoraError) as info:
            await revenue.track(EVENT)
    assert "SuperSecret" not in str(info.value)


async def test_traceback_locals_hold_no_token() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    policy = RetryPolicy(max_attempts=2)
    async with Revenue(TOKEN, transport=httpx.MockTransport(handler), retry=policy) as revenue:
        with pytest.raises(PulsoraError) as info:
            await revenue.track(EVENT)
    report = "".join(
        traceback.TracebackException.from_exception(info.value, capture_locals=True).format()
    )
    assert "ConnectError" in report
    assert TOKEN not in report
    assert info.value.__cause__ is None
