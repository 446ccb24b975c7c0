"""Answers that are not Pulsora's: foreign 2xx bodies, and bodies too long to read whole."""

from __future__ import annotations

import itertools
import tracemalloc
from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import asynccontextmanager
from pathlib import Path

import anyio
import anyio.abc
import attrs
import httpx
import pytest

from pulsora_revenue import (
    APIError,
    Backend,
    RetryPolicy,
    Revenue,
    RevenueEvent,
    ServerError,
    UnexpectedResponseError,
)
from pulsora_revenue._failures import to_exception
from pulsora_revenue._retry import Observation, Verdict, decide
from pulsora_revenue._transports._reply import (
    MAX_ACCEPTANCE_BODY,
    MAX_ERROR_BODY,
    answered,
    is_acceptance,
)

from ..data import EVENT, TOKEN
from ..raw_http import next_request

pytestmark = pytest.mark.anyio

NGINX = (
    b"<!DOCTYPE html>\n<html>\n<head>\n<title>Welcome to nginx!</title>\n</head>\n"
    b"<body>\n<h1>Welcome to nginx!</h1>\n</body>\n</html>\n"
)
REFUSAL = b'{"success": false, "error": "Invalid API token"}'

#: Bodies a server streams: what it sends at most, so that every test stops by itself.
CHUNK = b"x" * 65536
CAP = 1024  # chunks: 64 MiB


# -- the pure part --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "body"),
    [
        (202, b'{"success":true}'),
        (202, b'{"success": true}'),
        (200, b'{"success": true, "queued": 1}'),
        (201, b'\n{ "success" : true }\n'),
        (202, b""),
        (204, b""),
    ],
)
def test_pulsoras_acceptances(status: int, body: bytes) -> None:
    assert is_acceptance(status, body)
    assert answered(status, {}, body, str).seen == Observation(status)


@pytest.mark.parametrize(
    ("status", "body"),
    [
        (200, NGINX),
        (200, REFUSAL),
        (200, b""),
        (201, b"{}"),
        (202, b'{"success": "true"}'),
        (202, b'{"success": 1}'),
        (202, b"[true]"),
        (202, b"OK"),
        (202, b"[" * 100_000),  # no RecursionError
    ],
)
def test_foreign_2xx_bodies(status: int, body: bytes) -> None:
    assert not is_acceptance(status, body)
    reply = answered(status, {}, body, str)
    assert reply.seen == Observation(status, foreign=True)
    assert not reply.seen.accepted
    assert reply.message.startswith(body.decode()[:40].strip())


def test_a_foreign_2xx_is_not_retried() -> None:
    decision = decide(
        RetryPolicy(),
        Observation(200, foreign=True),
        attempt=1,
        elapsed=0.0,
        maybe_delivered=True,  # not even a retry's: a 2xx is not a 409
    )
    assert decision.verdict is Verdict.GIVE_UP


def test_a_cut_acceptance_is_foreign() -> None:
    reply = answered(202, {}, b'{"success": true, "padding": "', str, cut=True)
    assert reply.seen.foreign
    assert reply.cut


def test_the_error_says_what_came_and_what_to_do() -> None:
    reply = answered(200, {}, NGINX + f"token {TOKEN}".encode(), lambda t: t.replace(TOKEN, "T"))
    url = "https://pulsora.example/api/ingest"
    error = to_exception(reply, event=RevenueEvent(**EVENT), attempts=1, url=url)
    assert isinstance(error, UnexpectedResponseError)
    assert isinstance(error, APIError)
    assert (error.status_code, error.attempts) == (200, 1)
    assert error.message.startswith("<!DOCTYPE html>")
    text = str(error)
    assert text.startswith("HTTP 200 for transaction 'tx_1' after 1 attempt")
    assert "Welcome to nginx!" in text
    assert f"{url} does not look like Pulsora's ingest API" in text
    assert TOKEN not in text


# -- a raw server on loopback -----------------------------------------------------------


@attrs.define
class Server:
    """What a raw server saw: requests, connections, and the body bytes of each answer."""

    url: str
    requests: int = 0
    connections: int = 0
    active: int = 0
    sent: list[int] = attrs.Factory(list)
    dropped: list[bool] = attrs.Factory(list)  # the client closed before the body's end


def chunked(frames: Iterable[bytes]) -> Iterable[bytes]:
    """*frames* in chunked transfer coding (never ending it: the bodies here go on)."""
    return (b"%x\r\n%s\r\n" % (len(frame), frame) for frame in frames)


@asynccontextmanager
async def serving(head: bytes, body: Callable[[], Iterable[bytes]]) -> AsyncIterator[Server]:
    """A raw HTTP/1.1 server answering each request with *head*, then the parts of *body*.

    A body that the client stops reading ends when the client drops the
    connection; at the latest, after what *body* yields.
    """
    listener = await anyio.create_tcp_listener(local_host="127.0.0.1")
    port = listener.extra(anyio.abc.SocketAttribute.local_port)
    server = Server(f"http://127.0.0.1:{port}/api/ingest")

    async def answer(stream: anyio.abc.SocketStream) -> None:
        server.connections += 1
        server.active += 1
        buffer = b""
        async with stream:
            try:
                while True:
                    buffer = await next_request(stream, buffer)
                    server.requests += 1
                    await stream.send(head)
                    server.sent.append(0)
                    server.dropped.append(False)
                    for part in body():
                        await stream.send(part)
                        server.sent[-1] += len(part)
            except (anyio.BrokenResourceError, anyio.ClosedResourceError):
                if server.dropped:
                    server.dropped[-1] = True
            except anyio.EndOfStream:
                pass  # the client closed an idle connection
            finally:
                server.active -= 1

    async with listener, anyio.create_task_group() as group:
        group.start_soon(listener.serve, answer)
        yield server
        with anyio.move_on_after(5):  # until each connection has seen the client go
            while server.active:  # noqa: ASYNC110 (a raw server has no event for it)
                await anyio.sleep(0.005)
        group.cancel_scope.cancel()


def once(payload: bytes) -> Callable[[], Iterable[bytes]]:
    return lambda: [payload]


def answer_head(status: str, payload: bytes, content_type: str = "application/json") -> bytes:
    return (
        f"HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\n"
        f"Content-Length: {len(payload)}\r\n\r\n"
    ).encode()


@pytest.fixture(params=["httpx", "aiohttp"])
def backend(request: pytest.FixtureRequest, anyio_backend_name: str) -> Backend:
    if request.param == "aiohttp" and anyio_backend_name != "asyncio":
        pytest.skip("aiohttp runs on asyncio only")
    name: Backend = request.param
    return name


def client(backend: Backend, url: str, attempts: int = 4) -> Revenue:
    policy = RetryPolicy(max_attempts=attempts, uniform=lambda low, high: low)
    return Revenue(TOKEN, endpoint=url, backend=backend, retry=policy, timeout=5)


# -- acceptance means Pulsora accepted ------------------------------------------------


@pytest.mark.parametrize(
    ("status", "payload", "content_type"),
    [
        ("200 OK", NGINX, "text/html"),
        ("200 OK", REFUSAL, "application/json"),
        ("200 OK", b"", "text/plain"),
        ("201 Created", b"{}", "application/json"),
    ],
    ids=["nginx welcome page", "success false", "empty 200", "empty object"],
)
async def test_a_2xx_that_is_not_pulsoras_answer_is_an_error(
    backend: Backend, status: str, payload: bytes, content_type: str
) -> None:
    head = answer_head(status, payload, content_type)
    async with serving(head, once(payload)) as server, client(backend, server.url) as revenue:
        with pytest.raises(UnexpectedResponseError) as caught:
            await revenue.track(EVENT)
    error = caught.value
    assert (error.status_code, error.attempts, server.requests) == (int(status[:3]), 1, 1)
    assert "does not look like Pulsora's ingest API" in str(error)
    assert payload.decode()[:40].strip() in error.message
    assert TOKEN not in str(error)


@pytest.mark.parametrize(
    ("head", "payload"),
    [
        (answer_head("202 Accepted", b'{"success":true}'), b'{"success":true}'),
        (answer_head("200 OK", b'{"success": true, "id": 7}'), b'{"success": true, "id": 7}'),
        (answer_head("202 Accepted", b""), b""),
        (b"HTTP/1.1 204 No Content\r\n\r\n", b""),
    ],
    ids=["202", "200 with more keys", "empty 202", "204"],
)
async def test_pulsoras_answers_are_acceptances(
    backend: Backend, head: bytes, payload: bytes
) -> None:
    async with serving(head, once(payload)) as server, client(backend, server.url) as revenue:
        results = [await revenue.track(EVENT) for _ in range(2)]
    assert [result.status_code for result in results] == [int(head[9:12])] * 2
    assert server.connections == 1  # the connection went back to the pool


async def test_the_outbox_keeps_an_event_that_a_foreign_2xx_answered(tmp_path: Path) -> None:
    answers = iter([503, 503])  # queued by track (QUICK: two attempts)

    def answer(request: httpx.Request) -> httpx.Response:
        status = next(answers, None)
        if status is not None:
            return httpx.Response(status, json={"error": "Service unavailable"})
        if foreign:
            return httpx.Response(200, content=NGINX, headers={"Content-Type": "text/html"})
        return httpx.Response(202, json={"success": True})

    foreign = True
    quick = RetryPolicy(max_attempts=2, initial_delay=0.01, max_delay=0.01)
    outbox = tmp_path / "outbox.sqlite"
    transport = httpx.MockTransport(answer)
    async with Revenue(TOKEN, transport=transport, retry=quick, outbox=outbox) as revenue:
        assert (await revenue.track(EVENT)).queued
        assert await revenue.flush(timeout=0.2) == 1  # kept, as for a proxy's 404
        assert await revenue.dead_letters() == []
        foreign = False
        assert await revenue.flush(timeout=10) == 0


# -- bounded reads --------------------------------------------------------------------


async def track_bounded(revenue: Revenue, error: type[APIError]) -> tuple[APIError, int]:
    """Track an event that fails with *error*; return it, with the peak of memory allocated."""
    tracemalloc.start()
    try:
        with anyio.fail_after(10), pytest.raises(error) as caught:
            await revenue.track(EVENT)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    return caught.value, peak


async def test_an_endless_error_body_is_cut_off(backend: Backend) -> None:
    head = b"HTTP/1.1 503 Service Unavailable\r\nTransfer-Encoding: chunked\r\n\r\n"
    endless = lambda: chunked(itertools.repeat(CHUNK, CAP))  # noqa: E731
    async with serving(head, endless) as server, client(backend, server.url, 2) as revenue:
        error, peak = await track_bounded(revenue, ServerError)
    assert error.attempts == 2
    assert server.connections == 2, "a cut answer's connection is not used again"
    assert server.dropped == [True, True]
    assert max(server.sent) < CAP * len(CHUNK) // 4
    assert peak < 8 * 2**20
    assert error.message.startswith("xxxx")
    assert f"body cut off at {MAX_ERROR_BODY} bytes; the connection was dropped" in str(error)


@pytest.mark.parametrize("framing", ["content-length", "chunked"])
async def test_a_huge_2xx_body_is_cut_off(backend: Backend, framing: str) -> None:
    if framing == "chunked":
        head = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
        huge = lambda: chunked(itertools.repeat(CHUNK, CAP))  # noqa: E731
    else:
        head = b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % (CAP * len(CHUNK))
        huge = lambda: itertools.repeat(CHUNK, CAP)  # noqa: E731
    async with serving(head, huge) as server, client(backend, server.url) as revenue:
        error, peak = await track_bounded(revenue, UnexpectedResponseError)
    assert (error.attempts, server.dropped) == (1, [True])
    assert peak < 8 * 2**20
    assert f"read up to {MAX_ACCEPTANCE_BODY} bytes, then the connection was dropped" in str(error)
