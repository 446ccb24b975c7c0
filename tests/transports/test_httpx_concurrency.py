"""track_many over httpx far beyond its pool: the workers queue for a connection, none time out."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from typing import Any

import anyio
import httpx
import pytest

from pulsora_revenue import Outcome, OutcomeStatus, Revenue
from pulsora_revenue._transports._httpx import HttpxSender

from ..conftest import DevServer
from ..data import EVENT, TOKEN

pytestmark = pytest.mark.anyio

#: Sixteen times the pool, two seconds a backend. Left to httpx's pool (the wait for a
#: connection inside the attempt, as before the cap), 50 to 500 of these events needed
#: a second attempt within ``TIMEOUT``; with the queue, none. At 256 the old pool got
#: by now and then; 2,000 events at 1,024 and a 10 s timeout told it too, in 15 s.
EVENTS = 600
CONCURRENCY = 16 * HttpxSender.MAX_CONNECTIONS
#: Seconds per attempt, not the default 10: here an attempt that waited its turn for a
#: connection takes some 0.1-0.3 s, and 512 requests in httpx's pool several seconds.
TIMEOUT = 1.5


def events(count: int) -> Iterator[dict[str, Any]]:
    for n in range(count):
        yield {**EVENT, "transaction_id": f"wide_{n}"}


async def test_concurrency_far_beyond_the_pool_fails_nothing_and_sends_nothing_twice(
    server: DevServer,
) -> None:
    attempts: Counter[int] = Counter()
    statuses: Counter[OutcomeStatus] = Counter()

    def count(outcome: Outcome) -> None:
        statuses[outcome.status] += 1
        if outcome.result is not None:
            attempts[outcome.result.attempts] += 1

    revenue = Revenue(TOKEN, endpoint=server.endpoint, backend="httpx", timeout=TIMEOUT)
    async with revenue:
        report = await revenue.track_many(events(EVENTS), concurrency=CONCURRENCY, on_result=count)
    assert (report.sent, report.failed, report.duplicates) == (EVENTS, 0, 0), report.failures[:3]
    assert statuses == {OutcomeStatus.SENT: EVENTS}
    # Nearly every event in one attempt: a retry now and then is a loaded machine's, but
    # the old pool timed out a tenth of them (and sent what it retried twice).
    assert attempts[1] >= EVENTS * 0.99, attempts
    stored = Counter(str(e["transaction_id"]) for e in server.events())
    assert len(stored) == EVENTS
    assert set(stored.values()) == {1}


async def test_the_pool_is_capped_and_the_rest_queue_in_the_sender(server: DevServer) -> None:
    in_flight = peak = 0

    class Counting(httpx.AsyncHTTPTransport):
        async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
            nonlocal in_flight, peak
            in_flight += 1
            peak = max(peak, in_flight)
            try:
                return await super().handle_async_request(request)
            finally:
                in_flight -= 1

    cap = HttpxSender.MAX_CONNECTIONS
    sender = HttpxSender(
        httpx.AsyncClient(transport=Counting(limits=httpx.Limits(max_connections=cap))),
        httpx.URL(server.endpoint),
        {"X-API-Token": TOKEN, "Content-Type": "application/json"},
        10.0,
        owned=True,
        connections=cap,
    )
    answered: list[int | None] = []

    async def post(n: int) -> None:
        reply = await sender.post(b'{"x": 1}', f"k{n}", budget=30.0, scrub=str)
        answered.append(reply.seen.status_code)

    try:
        async with anyio.create_task_group() as group:
            for n in range(4 * cap):
                group.start_soon(post, n)
    finally:
        await sender.aclose()
    assert peak == cap
    assert None not in answered
    assert len(answered) == 4 * cap


async def test_the_wait_for_a_connection_counts_against_the_deadline(server: DevServer) -> None:
    sender = HttpxSender(
        httpx.AsyncClient(),
        httpx.URL(server.endpoint),
        {"X-API-Token": TOKEN},
        10.0,
        owned=True,
        connections=1,
    )
    slots = sender._slots
    assert slots is not None
    try:
        await slots.acquire()  # the one connection is busy
        with anyio.fail_after(5):
            reply = await sender.post(b"{}", "k", budget=0.05, scrub=str)
        slots.release()
    finally:
        await sender.aclose()
    assert reply.timed_out
    assert not reply.seen.sent
    assert not reply.seen.retryable
    assert "waiting for a free connection" in reply.failure
