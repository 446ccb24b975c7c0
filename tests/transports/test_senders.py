"""Choosing and configuring the HTTP library."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from contextlib import asynccontextmanager

import anyio
import anyio.abc
import attrs
import httpx
import pytest

from pulsora_revenue import Backend, ConfigurationError, Revenue, testing
from pulsora_revenue._convert import encode, to_event
from pulsora_revenue._event import idempotency_key
from pulsora_revenue._retry import Observation
from pulsora_revenue._transports import Reply, Sender
from pulsora_revenue._transports._aiohttp import AiohttpSender
from pulsora_revenue._transports._httpx import HttpxSender, make_httpx_client
from pulsora_revenue._transports._proxy import direct, env_proxy

from ..conftest import DevServer
from ..data import EVENT, TOKEN
from ..raw_http import next_request

pytestmark = pytest.mark.anyio


PROXY_VARIABLES = ("HTTPS", "HTTP", "ALL", "NO")


@pytest.fixture
def no_proxies(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in PROXY_VARIABLES:
        monkeypatch.delenv(f"{name}_PROXY", raising=False)
        monkeypatch.delenv(f"{name.lower()}_proxy", raising=False)
    return monkeypatch


def test_proxies_come_from_the_environment(no_proxies: pytest.MonkeyPatch) -> None:
    assert env_proxy("https://pulsora.co/api/ingest") is None
    no_proxies.setenv("HTTPS_PROXY", "http://proxy.internal:3128")
    assert env_proxy("https://pulsora.co/api/ingest") == "http://proxy.internal:3128"
    no_proxies.setenv("NO_PROXY", "pulsora.co")
    assert env_proxy("https://pulsora.co/api/ingest") is None


@pytest.mark.parametrize(
    ("variable", "value", "proxy"),
    [
        ("ALL_PROXY", "http://proxy.internal:3128", "http://proxy.internal:3128"),
        ("HTTPS_PROXY", "proxy.internal:3128", "http://proxy.internal:3128"),
    ],
    ids=["ALL_PROXY for any scheme", "no scheme: http"],
)
def test_proxies_are_read_as_httpx_reads_them(
    no_proxies: pytest.MonkeyPatch, variable: str, value: str, proxy: str
) -> None:
    no_proxies.setenv(variable, value)
    assert env_proxy("https://pulsora.co/api/ingest") == proxy


def test_aiohttp_cannot_use_an_httpx_transport() -> None:
    with pytest.raises(ConfigurationError, match="cannot use an httpx"):
        Revenue(
            TOKEN, backend="aiohttp", transport=httpx.MockTransport(lambda r: httpx.Response(202))
        )


def skip_off_asyncio(backend: str, anyio_backend_name: str) -> None:
    if backend == "aiohttp" and anyio_backend_name != "asyncio":
        pytest.skip("aiohttp runs on asyncio only")


def sender_to(backend: str, url: str, timeout: float = 5) -> Sender:
    """A sender of *backend* to *url*, with one connection."""
    headers = {"X-API-Token": TOKEN, "Content-Type": "application/json"}
    if backend == "aiohttp":
        return AiohttpSender(url, headers, timeout, limit=1)
    client = httpx.AsyncClient(limits=httpx.Limits(max_connections=1))
    return HttpxSender(client, httpx.URL(url), headers, timeout, owned=True)


@pytest.fixture(params=["httpx", "aiohttp"])
async def make_sender(
    request: pytest.FixtureRequest, anyio_backend_name: str, server: DevServer
) -> AsyncIterator[Callable[[float], Sender]]:
    """Build senders of one backend to the dev server (one connection each), given a timeout."""
    skip_off_asyncio(request.param, anyio_backend_name)
    made: list[Sender] = []

    def make(timeout: float) -> Sender:
        made.append(sender_to(request.param, server.endpoint, timeout))
        return made[-1]

    yield make
    for sender in made:
        await sender.aclose()


def _post(sender: Sender, budget: float) -> Awaitable[Reply]:
    event = to_event(EVENT, {})
    return sender.post(encode(event), idempotency_key(event), budget=budget, scrub=str)


@pytest.mark.parametrize(
    ("attempt_timeout", "budget", "retryable", "says"),
    [(0.2, 30, True, "no answer within 0.2 s"), (10, 0.2, False, "the call's deadline ran out")],
    ids=["the attempt's timeout: may have landed, retry", "the deadline: final"],
)
async def test_a_late_answer_is_cut_off_by_the_nearer_limit(
    make_sender: Callable[[float], Sender],
    server: DevServer,
    attempt_timeout: float,
    budget: float,
    retryable: bool,
    says: str,
) -> None:
    testing.set_testing(False)
    server.script({"delay": 2})
    started = anyio.current_time()
    reply = await _post(make_sender(attempt_timeout), budget=budget)
    assert anyio.current_time() - started < 1.5
    assert reply.seen == Observation(None, sent=True, retryable=retryable)
    assert reply.timed_out
    assert says in reply.failure


async def test_an_answer_within_the_timeout_is_taken(
    make_sender: Callable[[float], Sender], server: DevServer
) -> None:
    reply = await _post(make_sender(5), budget=5)
    assert reply.seen.status_code == 202
    assert len(server.events("tx_1")) == 1


@pytest.fixture
def black_hole() -> Iterator[str]:
    """An endpoint that never accepts a connection: its listening queue is full."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(0)
        port = listener.getsockname()[1]
        with socket.create_connection(("127.0.0.1", port)):  # fills the queue
            yield f"http://127.0.0.1:{port}/api/ingest"


@pytest.mark.parametrize("backend", ["httpx", "aiohttp"])
async def test_an_attempt_that_cannot_connect_in_time_was_not_sent(
    backend: str, anyio_backend_name: str, black_hole: str
) -> None:
    skip_off_asyncio(backend, anyio_backend_name)
    testing.set_testing(False)
    sender = sender_to(backend, black_hole, 0.3)  # no connection comes, however long
    try:
        reply = await _post(sender, budget=30)
    finally:
        await sender.aclose()
    assert reply.seen == Observation(None, sent=False, retryable=True)
    assert reply.timed_out
    assert "could not connect within 0.3 s" in reply.failure


ACCEPTED = b'HTTP/1.1 202 Accepted\r\nContent-Length: 16\r\n\r\n{"success":true}'
#: An acceptance whose body breaks off: the server closes the connection after it.
BROKEN = b'HTTP/1.1 202 Accepted\r\nContent-Length: 100\r\n\r\n{"succ'


@attrs.define
class Loopback:
    url: str
    connections: int = 0


@asynccontextmanager
async def loopback(answers: Sequence[bytes], *, host: str = "127.0.0.1") -> AsyncIterator[Loopback]:
    """A raw HTTP/1.1 server that gives each request the next of *answers*, on keep-alive."""
    pending = iter(answers)
    listener = await anyio.create_tcp_listener(local_host=host)
    port = listener.extra(anyio.abc.SocketAttribute.local_port)
    server = Loopback(f"http://{f'[{host}]' if ':' in host else host}:{port}/")

    async def answer(stream: anyio.abc.SocketStream) -> None:
        server.connections += 1
        buffer = b""
        async with stream:
            try:
                while True:
                    buffer = await next_request(stream, buffer)
                    answer = next(pending)
                    await stream.send(answer)
                    if answer is BROKEN:
                        return
            except (anyio.EndOfStream, anyio.BrokenResourceError):
                pass  # the client closed the connection

    async with listener, anyio.create_task_group() as group:
        group.start_soon(listener.serve, answer)
        yield server
        group.cancel_scope.cancel()


@pytest.mark.parametrize("backend", ["httpx", "aiohttp"])
async def test_an_acceptance_leaves_its_connection_to_the_next_request(
    backend: str, anyio_backend_name: str
) -> None:
    skip_off_asyncio(backend, anyio_backend_name)
    async with loopback([ACCEPTED] * 3) as server:
        sender = sender_to(backend, server.url)
        try:
            replies = [await _post(sender, budget=5) for _ in range(3)]
        finally:
            await sender.aclose()
    assert [reply.seen.status_code for reply in replies] == [202, 202, 202]
    assert server.connections == 1


@pytest.mark.parametrize("backend", ["httpx", "aiohttp"])
async def test_an_acceptance_whose_body_breaks_off_is_a_lost_answer(
    backend: str, anyio_backend_name: str
) -> None:
    skip_off_asyncio(backend, anyio_backend_name)
    async with loopback([BROKEN, ACCEPTED]) as server:
        sender = sender_to(backend, server.url)
        try:
            broken, then = [await _post(sender, budget=5) for _ in range(2)]
        finally:
            await sender.aclose()
    assert broken.seen == Observation(None, sent=True, retryable=True)  # it may have landed
    assert then.seen.status_code == 202
    assert server.connections == 2


PROXY = "http://proxy.internal:3128"

LOOPBACK_ENDPOINTS = [
    "http://127.0.0.1:8787/api/ingest",
    "http://localhost:8787/api/ingest",
    "http://[::1]:8787/api/ingest",
    "http://127.0.0.2/api/ingest",
    "https://localhost:8443/api/ingest",
    "https://[::1]/api/ingest",
]


@pytest.fixture
def proxied(no_proxies: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """An environment that sends everything through ``PROXY``."""
    for name in ("HTTPS", "HTTP", "ALL"):
        no_proxies.setenv(f"{name}_PROXY", PROXY)
    return no_proxies


@pytest.mark.parametrize("endpoint", LOOPBACK_ENDPOINTS)
def test_loopback_is_never_proxied(proxied: pytest.MonkeyPatch, endpoint: str) -> None:
    assert direct(endpoint)
    assert env_proxy(endpoint) is None
    client = make_httpx_client(endpoint, transport=None, limits=httpx.Limits())
    # httpx's own routing: the client's direct transport, not a proxy's.
    assert client._transport_for_url(httpx.URL(endpoint)) is client._transport


def test_https_endpoints_take_the_environments_proxy(proxied: pytest.MonkeyPatch) -> None:
    endpoint = "https://pulsora.co/api/ingest"
    assert not direct(endpoint)
    assert env_proxy(endpoint) == PROXY
    client = make_httpx_client(endpoint, transport=None, limits=httpx.Limits())
    assert client._transport_for_url(httpx.URL(endpoint)) is not client._transport
    proxied.setenv("NO_PROXY", "pulsora.co")
    client = make_httpx_client(endpoint, transport=None, limits=httpx.Limits())
    assert client._transport_for_url(httpx.URL(endpoint)) is client._transport


def test_a_transport_of_ones_own_is_kept(proxied: pytest.MonkeyPatch) -> None:
    transport = httpx.MockTransport(lambda r: httpx.Response(202))
    endpoint = LOOPBACK_ENDPOINTS[0]
    client = make_httpx_client(endpoint, transport=transport, limits=httpx.Limits())
    assert client._transport_for_url(httpx.URL(endpoint)) is transport


@pytest.mark.parametrize("backend", ["httpx", "aiohttp"])
@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "::1"])
async def test_a_loopback_endpoint_is_reached_directly_whatever_the_proxies(
    backend: Backend,
    host: str,
    anyio_backend_name: str,
    no_proxies: pytest.MonkeyPatch,
) -> None:
    skip_off_asyncio(backend, anyio_backend_name)
    async with loopback([ACCEPTED]) as proxy, loopback([ACCEPTED], host=host) as endpoint:
        for name in ("HTTPS", "HTTP", "ALL"):
            no_proxies.setenv(f"{name}_PROXY", proxy.url)
        url = f"{endpoint.url}api/ingest"
        async with Revenue(TOKEN, endpoint=url, backend=backend) as revenue:
            result = await revenue.track(EVENT)
    assert result.status_code == 202
    assert (endpoint.connections, proxy.connections) == (1, 0), "the token went to a proxy"
