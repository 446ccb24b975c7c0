"""The secret token never appears in a log record, a repr, or an exception."""

from __future__ import annotations

import logging
import socketserver
import threading
import traceback
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import pytest

from pulsora_revenue import (
    APIConnectionError,
    ConfigurationError,
    PulsoraError,
    RetryPolicy,
    Revenue,
)
from pulsora_revenue._config import redact
from pulsora_revenue._senders import Backend

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


class EchoingProxy(socketserver.StreamRequestHandler):
    """Answers with a malformed header line that quotes the request's token header."""

    def handle(self) -> None:
        head = iter(self.rfile.readline, b"\r\n")  # the request's lines, up to the blank one
        token = next(line for line in head if line.lower().startswith(b"x-api-token")).strip()
        self.wfile.write(b"HTTP/1.1 502 Bad Gateway\r\nX-Echo " + token + b"\r\n\r\n")


@contextmanager
def echoing_proxy() -> Iterator[str]:
    with socketserver.ThreadingTCPServer(("127.0.0.1", 0), EchoingProxy) as proxy:
        threading.Thread(target=proxy.serve_forever, daemon=True).start()
        try:
            yield f"http://127.0.0.1:{proxy.server_address[1]}/api/ingest"
        finally:
            proxy.shutdown()


@pytest.mark.parametrize("backend", ["httpx", "aiohttp"])
async def test_an_http_librarys_own_error_text_is_redacted(
    backend: Backend, anyio_backend_name: str, caplog: pytest.LogCaptureFixture
) -> None:
    # h11 and aiohttp quote a malformed line they received: here, the echoed token.
    if backend == "aiohttp" and anyio_backend_name != "asyncio":
        pytest.skip("aiohttp runs on asyncio only")
    caplog.set_level(logging.DEBUG, logger="pulsora_revenue")
    policy = RetryPolicy(max_attempts=2)
    with echoing_proxy() as endpoint:
        async with Revenue(
            TOKEN, endpoint=endpoint, backend=backend, retry=policy, debug=True
        ) as revenue:
            with pytest.raises(APIConnectionError) as info:
                await revenue.track(EVENT)
    assert info.value.attempts == 2
    shown = [str(info.value), *(r.getMessage() for r in caplog.records)]
    assert "SuperSecret" not in "".join(shown)
    assert "sec_…WXYZ" in str(info.value), "the library's text is kept, with the token redacted"


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
