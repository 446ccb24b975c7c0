"""The secret token never appears in a log record, a repr, or an exception."""

from __future__ import annotations

import copy
import io
import json
import logging
import pickle
import socket
import socketserver
import threading
import traceback
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from rich.console import Console
from rich.traceback import Traceback

from pulsora_revenue import (
    APIConnectionError,
    APITimeoutError,
    AuthenticationError,
    Backend,
    BadRequestError,
    ClientClosedError,
    ConfigurationError,
    DuplicateTransactionError,
    PermissionDeniedError,
    PulsoraError,
    RateLimitError,
    RetryPolicy,
    Revenue,
    ServerError,
    ValidationError,
    _client,
)
from pulsora_revenue._config import SecretHeaders, Token, redact

from .conftest import DevServer

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
        # shutdown() waits for the loop's next poll: every 10 ms, not the default 0.5 s.
        serve = threading.Thread(target=proxy.serve_forever, args=(0.01,), daemon=True)
        serve.start()
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


# A traceback rendered with every frame's locals (traceback's capture_locals, rich's
# show_locals, Sentry) must not hold the token. A distinctive one, so that a part is
# found too; the tests pass it by this name, never as a local of their own.
CANARY = "sec_LEAKCANARY0123456789abcdef"
CANARY_SHOWN = "sec_…cdef"


def with_locals(error: BaseException, *, plain: bool = True) -> str:
    """*error* as ``traceback`` and rich render it with every frame's locals, uncut.

    Not *plain*: rich only (it survives a ``__repr__`` that raises).
    """
    tb = traceback.TracebackException.from_exception(error, capture_locals=True) if plain else None
    out = io.StringIO()
    rich = Traceback.from_exception(
        type(error),
        error,
        error.__traceback__,
        width=2000,
        show_locals=True,
        locals_max_length=1000,
        locals_max_string=10_000,
    )
    Console(file=out, width=2000, color_system=None).print(rich)
    shown = "".join(tb.format() if tb else ()) + out.getvalue()
    assert "LEAKCANARY" not in shown
    return shown


def test_the_token_shows_itself_only_redacted() -> None:
    token = Token(CANARY)
    shown = [repr(token), str(token), f"{token}", f"{token!r}", f"{token:>30}", repr([token])]
    assert [text for text in shown if "LEAKCANARY" in text] == []
    assert str(token) == CANARY_SHOWN
    assert token.reveal() == CANARY
    assert token.scrub(f"echo: {CANARY}!") == f"echo: {CANARY_SHOWN}!"
    assert copy.copy(token) is token
    assert copy.deepcopy([token])[0] is token


def test_request_headers_show_the_token_redacted() -> None:
    headers = SecretHeaders({"X-API-Token": CANARY, "Accept": "application/json"}, Token(CANARY))
    assert dict(headers) == {"X-API-Token": CANARY, "Accept": "application/json"}
    assert repr(headers) == (
        f"SecretHeaders({{'X-API-Token': '{CANARY_SHOWN}', 'Accept': 'application/json'}})"
    )
    with pytest.raises(TypeError, match="not pickled"):
        pickle.dumps(headers)


@pytest.mark.parametrize("protocol", range(pickle.HIGHEST_PROTOCOL + 1))
def test_no_pickle_holds_the_token(protocol: int) -> None:
    for value in (Token(CANARY), Revenue(CANARY)):
        with pytest.raises(TypeError, match=r"the API token \(sec_…cdef\) is not pickled"):
            pickle.dumps(value, protocol)


def test_repr_is_safe_on_a_half_built_client() -> None:
    assert repr(object.__new__(Revenue)) == "<Revenue endpoint='?' token='?'>"
    with pytest.raises(ConfigurationError) as info:
        Revenue(CANARY, endpoint="http://pulsora.example/api/ingest")
    frames = traceback.walk_tb(info.value.__traceback__)
    half_built = next(f.f_locals["self"] for f, _ in frames if f.f_code.co_name == "__init__")
    assert repr(half_built) == f"<Revenue endpoint='?' token='{CANARY_SHOWN}'>"


def _mock() -> httpx.MockTransport:
    return httpx.MockTransport(lambda request: httpx.Response(202))


@pytest.mark.parametrize("given", ["argument", "environment"])
@pytest.mark.parametrize(
    "options",
    [
        {"endpoint": "pulsora.co/api/ingest"},
        {"endpoint": "http://pulsora.example/api/ingest"},
        {"endpoint": "https://me:secret@pulsora.co/api/ingest"},
        {"timeout": 0},
        {"timeout": float("nan")},
        {"timeout": "10"},
        {"retry": 3},
        {"http_client": httpx.AsyncClient(transport=_mock()), "transport": _mock()},
        {"backend": "fast"},
        {"backend": "aiohttp", "transport": _mock()},
    ],
    ids=[
        "not a URL",
        "plain http, not loopback",
        "a password in the URL",
        "zero timeout",
        "NaN timeout",
        "timeout as text",
        "retry not a policy",
        "client and transport",
        "unknown backend",
        "aiohttp with a transport",
    ],
)
def test_a_constructor_error_shows_no_token_in_locals(
    options: dict[str, Any], given: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    if given == "environment":
        monkeypatch.setenv("PULSORA_SECRET_TOKEN", CANARY)
    with pytest.raises(ConfigurationError) as info:
        Revenue(CANARY if given == "argument" else None, **options)
    assert f"token = Token('{CANARY_SHOWN}')" in with_locals(info.value)


#: Tokens refused at construction, each with the canary in it.
REFUSED_TOKENS = {
    "public": "pub_LEAKCANARY0123456789abcdef",
    "not sec_": "sk_live_LEAKCANARY0123456789abcdef",
    "a space": "sec_LEAKCANARY 0123456789abcdef",
    "a control character": "sec_LEAKCANARY\x1b0123456789abcdef",
}


@pytest.mark.parametrize("given", ["argument", "environment"])
@pytest.mark.parametrize("name", list(REFUSED_TOKENS))
def test_a_refused_token_shows_nowhere(
    name: str, given: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    if given == "environment":
        monkeypatch.setenv("PULSORA_SECRET_TOKEN", REFUSED_TOKENS[name])
    with pytest.raises(ConfigurationError) as info:
        Revenue(REFUSED_TOKENS[name] if given == "argument" else None)
    assert "…cdef" in str(info.value)
    with_locals(info.value)


def test_a_token_that_is_not_text_is_refused_unshown() -> None:
    with pytest.raises(ConfigurationError, match="must be a str, not bytes") as info:
        Revenue(CANARY.encode())  # type: ignore[arg-type]
    with_locals(info.value)


def misbehaving(request: httpx.Request) -> httpx.Response:
    """Answer as the event's transaction_id says, quoting the token it was sent."""
    what = json.loads(request.content)["data"]["transaction_id"]
    echo = f"token {request.headers['X-API-Token']}"
    if what == "no connection":
        raise httpx.ConnectError(f"refused {echo}", request=request)
    if what == "no answer":
        raise httpx.ReadTimeout(f"timed out {echo}", request=request)
    return httpx.Response(401, json={"error": f"Invalid API token: {echo}"})


async def _track(revenue: Revenue, transaction_id: str) -> None:
    await revenue.track({**EVENT, "transaction_id": transaction_id})


async def _track_many(revenue: Revenue) -> None:
    await revenue.track_many([EVENT, {**EVENT, "transaction_id": "tx_2"}])


async def _after_close(revenue: Revenue) -> None:
    await revenue.aclose()
    await revenue.track(EVENT)


CALLS: dict[str, tuple[Callable[[Revenue], Awaitable[None]], type[PulsoraError]]] = {
    "401 quoting the token": (lambda r: _track(r, "tx_1"), AuthenticationError),
    "no connection": (lambda r: _track(r, "no connection"), APIConnectionError),
    "no answer in time": (lambda r: _track(r, "no answer"), APITimeoutError),
    "an invalid event": (lambda r: _track(r, ""), ValidationError),
    "track_many stopped by a 401": (_track_many, AuthenticationError),
    "a closed client": (_after_close, ClientClosedError),
}


@pytest.mark.parametrize(
    ("call", "outbox"),
    [
        pytest.param(call, outbox, id=f"{call}{' with an outbox' if outbox else ''}")
        for call, (_, error) in CALLS.items()
        for outbox in (False, True)
        if not (outbox and issubclass(error, APIConnectionError))  # queued, not raised
    ],
)
async def test_a_calls_error_shows_no_token_in_locals(
    call: str, outbox: bool, tmp_path: Path
) -> None:
    make_call, error = CALLS[call]
    revenue = Revenue(
        CANARY,
        transport=httpx.MockTransport(misbehaving),
        retry=RetryPolicy(max_attempts=2),
        outbox=tmp_path / "outbox.sqlite" if outbox else None,
    )
    async with revenue:
        with pytest.raises(error) as info:
            await make_call(revenue)
    assert f"token='{CANARY_SHOWN}'" in with_locals(info.value)


@pytest.fixture
def refused_port() -> str:
    """An endpoint on loopback where nothing listens."""
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{unused.getsockname()[1]}/api/ingest"


#: What the dev server is scripted to do, and the error a call raises then.
SERVER_FAULTS: dict[str, tuple[dict[str, object] | None, type[PulsoraError]]] = {
    "400": ({"status": 400}, BadRequestError),
    "401": ({"status": 401}, AuthenticationError),
    "403": ({"status": 403}, PermissionDeniedError),
    "409": ({"status": 409}, DuplicateTransactionError),
    "429": ({"status": 429, "retry_after": 1}, RateLimitError),
    "500": ({"status": 500}, ServerError),
    "a dropped answer": ({"drop": True}, APIConnectionError),
    "no answer in time": ({"delay": 1.5}, APITimeoutError),
    "nothing listening": (None, APIConnectionError),
}


@pytest.mark.parametrize("backend", ["httpx", "aiohttp"])
@pytest.mark.parametrize("fault", list(SERVER_FAULTS))
async def test_an_http_error_shows_no_token_in_locals(
    fault: str, backend: Backend, server: DevServer, refused_port: str, anyio_backend_name: str
) -> None:
    if backend == "aiohttp" and anyio_backend_name != "asyncio":
        pytest.skip("aiohttp runs on asyncio only")
    script, error = SERVER_FAULTS[fault]
    if script is not None:
        server.script(script)
    revenue = Revenue(
        CANARY,
        endpoint=server.endpoint if script is not None else refused_port,
        backend=backend,
        retry=RetryPolicy(max_attempts=1),
        timeout=0.1 if "delay" in (script or {}) else 5,
    )
    async with revenue:
        with pytest.raises(error) as info:
            await revenue.track(EVENT)
    assert f"token='{CANARY_SHOWN}'" in with_locals(info.value)


async def test_a_backend_refused_at_first_use_shows_no_token(anyio_backend_name: str) -> None:
    if anyio_backend_name != "trio":
        pytest.skip("aiohttp is refused on trio only")
    with pytest.raises(ConfigurationError, match="aiohttp does not run on trio") as info:
        async with Revenue(CANARY, backend="aiohttp"):
            pass
    shown = with_locals(info.value)
    assert f"'X-API-Token': '{CANARY_SHOWN}'" in shown, "the headers, built first, are shown"


async def test_a_bad_proxy_setting_shows_no_token(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HTTPS_PROXY", "gopher://proxy.internal:1")
    with pytest.raises(ValueError, match="proxy") as info:
        async with Revenue(CANARY, backend="httpx"):
            pass
    # httpx's Proxy.__repr__ raises on its half-built instance: traceback cannot render it.
    assert f"token='{CANARY_SHOWN}'" in with_locals(info.value, plain=False)


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_a_second_event_loop_shows_no_token(backend: str, monkeypatch: pytest.MonkeyPatch) -> None:
    revenue = Revenue(CANARY, transport=_mock())
    anyio.run(revenue.track, EVENT, backend=backend)
    # As if the first loop still ran, in another thread (tests/test_sync.py does it so).
    monkeypatch.setattr(_client, "_still_running", lambda loop: True)
    with pytest.raises(ConfigurationError, match="another event loop") as info:
        anyio.run(revenue.track, EVENT, backend=backend)
    monkeypatch.undo()
    anyio.run(revenue.aclose, backend=backend)
    with_locals(info.value)
