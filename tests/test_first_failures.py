"""track_many stops early when its first events all fail the same way at a wrong endpoint."""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from pulsora_revenue import (
    APIConnectionError,
    APIError,
    Backend,
    EndpointError,
    Outcome,
    OutcomeStatus,
    Revenue,
    UnexpectedResponseError,
)
from pulsora_revenue._first_failures import FIRST_FAILURES, endpoint_fault
from pulsora_revenue.testing import FakePulsora

from .conftest import ONE_BACKEND, DevServer
from .data import EVENT, TOKEN

pytestmark = pytest.mark.anyio

Answer = Callable[[httpx.Request], httpx.Response]


def events(count: int) -> Iterator[dict[str, Any]]:
    for n in range(count):
        yield {**EVENT, "transaction_id": f"tx_{n}"}


def counting(answer: Answer) -> tuple[httpx.MockTransport, list[httpx.Request]]:
    seen: list[httpx.Request] = []

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return answer(request)

    return httpx.MockTransport(handle), seen


def refused(request: httpx.Request) -> httpx.Response:
    raise httpx.ConnectError("[Errno 111] Connection refused", request=request)


WRONG_ENDPOINTS: dict[str, tuple[Answer, str]] = {
    "404": (lambda _: httpx.Response(404, text="Not Found"), "HTTP 404: Not Found"),
    "405": (lambda _: httpx.Response(405), "HTTP 405"),
    "a web page": (
        lambda _: httpx.Response(200, html="<h1>Welcome to nginx!</h1>"),
        "an answer that is not Pulsora's",
    ),
    "refused": (refused, "could not connect (ConnectError: [Errno 111] Connection refused)"),
}


@pytest.mark.parametrize("case", WRONG_ENDPOINTS)
@pytest.mark.parametrize("anyio_backend", ONE_BACKEND)
async def test_a_wrong_endpoint_stops_the_run_with_why(case: str) -> None:
    answer, fault = WRONG_ENDPOINTS[case]
    transport, seen = counting(answer)
    outcomes: list[Outcome] = []
    async with Revenue(TOKEN, transport=transport) as revenue:
        with pytest.raises(EndpointError) as info:
            await revenue.track_many(events(10_000), concurrency=4, on_result=outcomes.append)
    error = info.value
    assert error.endpoint == revenue.endpoint
    assert fault in str(error)
    assert revenue.endpoint in str(error)
    assert "\n" not in str(error), "one line"
    assert str(error).startswith(f"Stopped: the first {FIRST_FAILURES} events all failed")
    assert isinstance(error.__cause__, APIError | APIConnectionError)
    report = error.report
    assert report is not None
    assert report.stopped
    assert report.stop_reason == str(error)
    assert report.failed == len(outcomes) >= FIRST_FAILURES
    assert report.total < 10_000
    events_tried = {r.headers["Idempotency-Key"] for r in seen}
    assert len(events_tried) <= FIRST_FAILURES + 4, "stops within `concurrency` more events"


async def test_one_delivered_event_means_the_endpoint_is_right() -> None:
    fake = FakePulsora()
    answers = iter([None] + [404] * 50)

    async def first_then_404(request: httpx.Request) -> httpx.Response:
        if next(answers) is None:
            return await fake.transport.handle_async_request(request)
        return httpx.Response(404, text="gone")

    async with Revenue(TOKEN, transport=httpx.MockTransport(first_then_404)) as revenue:
        report = await revenue.track_many(events(20), concurrency=1)
    assert (report.sent, report.failed, report.stopped) == (1, 19, False)


async def test_a_duplicate_means_the_endpoint_is_right() -> None:
    fake = FakePulsora()
    answers = iter([409] + [404] * 50)

    def duplicate_then_404(request: httpx.Request) -> httpx.Response:
        status = next(answers)
        return httpx.Response(status, json={"error": "Duplicate transaction"})

    del fake
    async with Revenue(TOKEN, transport=httpx.MockTransport(duplicate_then_404)) as revenue:
        report = await revenue.track_many(events(20), concurrency=1)
    assert (report.duplicates, report.failed, report.stopped) == (1, 19, False)


async def test_failures_of_different_kinds_do_not_stop_the_run() -> None:
    statuses = iter([404, 405] * 20)

    def mixed(request: httpx.Request) -> httpx.Response:
        return httpx.Response(next(statuses))

    async with Revenue(TOKEN, transport=httpx.MockTransport(mixed)) as revenue:
        report = await revenue.track_many(events(20), concurrency=1)
    assert (report.failed, report.stopped) == (20, False)


@pytest.mark.parametrize(
    "answer",
    [
        lambda _: httpx.Response(400, json={"error": "amount must be a positive number."}),
        lambda _: httpx.Response(503),
        lambda r: (_ for _ in ()).throw(httpx.ReadTimeout("slow", request=r)),
    ],
    ids=["400: the event itself", "503: Pulsora's trouble", "a timeout"],
)
async def test_failures_an_event_or_time_may_fix_do_not_stop_the_run(answer: Answer) -> None:
    async with Revenue(TOKEN, transport=httpx.MockTransport(answer)) as revenue:
        report = await revenue.track_many(events(8), concurrency=2)
    assert (report.failed, report.stopped, report.stop_reason) == (8, False, "")


async def test_a_run_shorter_than_the_judgement_just_fails() -> None:
    transport, _ = counting(lambda _: httpx.Response(404))
    async with Revenue(TOKEN, transport=transport) as revenue:
        report = await revenue.track_many(events(FIRST_FAILURES - 1))
    assert (report.failed, report.stopped) == (FIRST_FAILURES - 1, False)


async def test_invalid_rows_neither_count_nor_end_the_judgement() -> None:
    rows: list[dict[str, Any]] = [{"amount": "abc"}] * 3 + list(events(50))
    transport, _ = counting(lambda _: httpx.Response(404))
    async with Revenue(TOKEN, transport=transport) as revenue:
        with pytest.raises(EndpointError) as info:
            await revenue.track_many(rows, concurrency=1)
    report = info.value.report
    assert report is not None
    assert (report.invalid, report.failed) == (3, FIRST_FAILURES)


async def test_the_time_limit_is_a_stop_reason() -> None:
    fake = FakePulsora(latency=0.05)
    async with Revenue(TOKEN, transport=fake.transport) as revenue:
        report = await revenue.track_many(events(50), concurrency=1, time_limit=0.12)
    assert report.stopped
    assert report.stop_reason == "the time limit of 0.12 s passed"


def test_what_counts_as_a_fault_of_the_endpoint() -> None:
    def connection(*, connected: bool, timed_out: bool = False) -> APIConnectionError:
        from pulsora_revenue import APITimeoutError

        kind = APITimeoutError if timed_out else APIConnectionError
        return kind("...", attempts=3, failure="ConnectError: refused", connected=connected)

    def status(code: int) -> APIError:
        return APIError("...", status_code=code, message="", attempts=1)

    assert endpoint_fault(connection(connected=False)) == (
        "could not connect (ConnectError: refused)"
    )
    assert endpoint_fault(connection(connected=True)) is None  # broke after it went out
    assert endpoint_fault(connection(connected=False, timed_out=True)) is None
    assert endpoint_fault(status(404)) == "HTTP 404"
    assert endpoint_fault(status(405)) == "HTTP 405"
    for code in (400, 408, 413, 422, 500, 502, 503):
        assert endpoint_fault(status(code)) is None
    foreign = UnexpectedResponseError("...", status_code=200, message="<html>", attempts=1)
    assert endpoint_fault(foreign) == "HTTP 200 with an answer that is not Pulsora's"


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])  # closed again: nothing listens there


@pytest.mark.parametrize("backend", ["httpx", "aiohttp"])
async def test_nothing_listening_stops_a_run_on_every_backend(
    backend: Backend, anyio_backend_name: str
) -> None:
    if backend == "aiohttp" and anyio_backend_name == "trio":
        pytest.skip("aiohttp runs on asyncio only")
    endpoint = f"http://127.0.0.1:{closed_port()}/api/ingest"
    async with Revenue(TOKEN, endpoint=endpoint, backend=backend) as revenue:
        with pytest.raises(EndpointError, match="could not connect") as info:
            await revenue.track_many(events(1_000), concurrency=8)
    assert info.value.report is not None
    assert info.value.report.total < 1_000
    assert isinstance(info.value.__cause__, APIConnectionError)
    assert not info.value.__cause__.connected


async def test_a_wrong_path_on_the_emulator_stops_the_run(server: DevServer) -> None:
    async with Revenue(TOKEN, endpoint=f"{server.url}/api/ingest/v2") as revenue:
        with pytest.raises(EndpointError, match="HTTP 404") as info:
            await revenue.track_many(events(1_000), concurrency=8)
    report = info.value.report
    assert report is not None
    assert report.total < 100
    assert all(o.error is not None for o in report.failures)
    assert not server.events()


async def test_outcomes_of_a_stopped_run_are_failed() -> None:
    outcomes: list[Outcome] = []
    transport, _ = counting(lambda _: httpx.Response(404))
    async with Revenue(TOKEN, transport=transport) as revenue:
        with pytest.raises(EndpointError):
            await revenue.track_many(events(100), concurrency=1, on_result=outcomes.append)
    assert [o.status for o in outcomes] == [OutcomeStatus.FAILED] * FIRST_FAILURES
