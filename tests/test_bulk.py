"""track_many: streaming, counting, pausing, stopping and cancelling."""

from __future__ import annotations

import itertools
import random
from collections.abc import AsyncIterator, Iterable, Iterator
from typing import Any

import anyio
import anyio.lowlevel
import httpx
import pytest

from pulsora_revenue import (
    AuthenticationError,
    ClientClosedError,
    ConfigurationError,
    Outcome,
    OutcomeStatus,
    Progress,
    RateLimitError,
    RetryPolicy,
    Revenue,
    _bulk,
    _clock,
    testing,
)
from pulsora_revenue._bulk import PREPARE_CHUNK
from pulsora_revenue.testing import FakePulsora, Fault

from .conftest import DevServer
from .data import EVENT, TOKEN

pytestmark = pytest.mark.anyio


def events(count: int, start: int = 0) -> Iterator[dict[str, Any]]:
    for n in range(start, start + count):
        yield {**EVENT, "transaction_id": f"tx_{n}"}


async def test_counts_and_order_under_random_latency() -> None:
    rng = random.Random(3)
    fake = FakePulsora(latency=lambda: rng.uniform(0, 0.004))
    outcomes: list[Outcome] = []
    async with Revenue(TOKEN, transport=fake.transport) as revenue:
        report = await revenue.track_many(events(200), concurrency=8, on_result=outcomes.append)
    assert (report.total, report.sent, report.failed) == (200, 200, 0)
    assert sorted(o.index for o in outcomes) == list(range(200))
    assert [o.index for o in outcomes] != list(range(200)), "completion order, not input order"
    assert {o.event.transaction_id for o in outcomes if o.event} == {f"tx_{n}" for n in range(200)}
    assert len(fake.events) == 200
    assert 1 < fake.peak_concurrency <= 8


@pytest.mark.parametrize("concurrency", [1, 3, 16])
async def test_peak_concurrency_never_exceeds_the_setting(concurrency: int) -> None:
    fake = FakePulsora(latency=0.02)
    async with Revenue(TOKEN, transport=fake.transport) as revenue:
        await revenue.track_many(events(8 * concurrency), concurrency=concurrency)  # 8 waves
    assert concurrency // 2 <= fake.peak_concurrency <= concurrency


async def as_async(items: Iterable[dict[str, Any]]) -> AsyncIterator[dict[str, Any]]:
    for item in items:
        yield item


@pytest.mark.parametrize("asynchronous", [False, True], ids=["iterable", "async-iterable"])
async def test_every_worker_stays_busy_to_the_end(asynchronous: bool) -> None:
    """16 events, 8 workers: two full waves, each answered only once all 8 are in flight."""
    waiting: list[anyio.Event] = []

    async def barrier(request: httpx.Request) -> httpx.Response:
        arrived = anyio.Event()
        waiting.append(arrived)
        if len(waiting) == 8:
            for event in waiting:
                event.set()
            waiting.clear()
        await arrived.wait()
        return httpx.Response(202, json={"success": True})

    source = as_async(events(16)) if asynchronous else events(16)
    async with Revenue(TOKEN, transport=httpx.MockTransport(barrier)) as revenue:
        with anyio.fail_after(5):  # a wave short of a worker would wait forever
            report = await revenue.track_many(source, concurrency=8)
    assert report.sent == 16


@pytest.mark.parametrize("concurrency", [1, 8])
@pytest.mark.parametrize("asynchronous", [False, True], ids=["iterable", "async-iterable"])
async def test_the_input_is_read_only_a_little_ahead(concurrency: int, asynchronous: bool) -> None:
    pulled = done = 0
    ahead: list[int] = []

    def counted() -> Iterator[dict[str, Any]]:
        nonlocal pulled
        for event in events(300):
            pulled += 1
            yield event

    async def counted_async() -> AsyncIterator[dict[str, Any]]:
        for event in counted():
            yield event

    def on_result(outcome: Outcome) -> None:
        nonlocal done
        done += 1
        ahead.append(pulled - done)

    source = counted_async() if asynchronous else counted()
    async with Revenue(TOKEN, transport=FakePulsora().transport) as revenue:
        report = await revenue.track_many(source, concurrency=concurrency, on_result=on_result)
    assert report.sent == 300
    # what workers hold, one chunk being prepared, and the async producer's buffer
    assert max(ahead) <= 2 * concurrency + PREPARE_CHUNK


async def test_async_generator_input() -> None:
    async def source() -> AsyncIterator[dict[str, Any]]:
        for event in events(30):
            await anyio.lowlevel.checkpoint()
            yield event

    fake = FakePulsora()
    async with Revenue(TOKEN, transport=fake.transport) as revenue:
        report = await revenue.track_many(source(), concurrency=4)
    assert report.sent == 30
    assert len(fake.events) == 30


async def test_mixed_input_exact_counts() -> None:
    fake = FakePulsora()
    already = {**EVENT, "transaction_id": "tx_old"}
    async with Revenue(TOKEN, transport=fake.transport) as revenue:
        await revenue.track(already)
        rows: list[Any] = [
            *events(10),
            {**EVENT, "transaction_id": "tx_3"},  # repeat in the input: skipped
            {**EVENT, "transaction_id": "tx_3", "event_type": "renewal"},  # another key
            {**EVENT, "amount": "-5", "transaction_id": "bad_1"},  # invalid
            {"nonsense": True},  # invalid
            "not a mapping",  # invalid
            already,  # recorded before this run: duplicate
        ]
        outcomes: list[Outcome] = []
        report = await revenue.track_many(rows, on_result=outcomes.append)
    assert (report.total, report.sent, report.skipped, report.invalid, report.duplicates) == (
        16,
        11,
        1,
        3,
        1,
    )
    assert report.failed == 0
    assert sorted(f.index for f in report.failures) == [12, 13, 14]
    assert report.failures[0].error is not None
    by_index = {o.index: o for o in outcomes}
    assert by_index[10].status is OutcomeStatus.SKIPPED
    assert by_index[14].input == "not a mapping"
    assert by_index[14].event is None
    assert by_index[15].status is OutcomeStatus.DUPLICATE
    assert not report.ok
    assert len(fake.events) == 12  # tx_old, tx_0..tx_9, and tx_3 as a renewal


async def test_failures_do_not_stop_the_run_and_can_be_dropped() -> None:
    fake = FakePulsora()
    fake.fail_next(*([400] * 3))
    async with Revenue(TOKEN, transport=fake.transport) as revenue:
        report = await revenue.track_many(events(20), concurrency=1, keep_failures=False)
    assert (report.total, report.sent, report.failed) == (20, 17, 3)
    assert report.failures == ()


async def test_authentication_error_stops_the_run() -> None:
    fake = FakePulsora(latency=0.001)
    seen = 0

    async def revoke_after_50(request: httpx.Request) -> httpx.Response:
        nonlocal seen
        seen += 1
        if seen > 50:
            return httpx.Response(401, json={"error": "Invalid API token"})
        return await fake.transport.handle_async_request(request)

    outcomes: list[Outcome] = []
    async with Revenue(TOKEN, transport=httpx.MockTransport(revoke_after_50)) as revenue:
        with pytest.raises(AuthenticationError) as info:
            await revenue.track_many(events(10_000), concurrency=8, on_result=outcomes.append)
    report = info.value.report
    assert report is not None
    assert report.stopped
    assert seen <= 50 + 8, "stops within `concurrency` further requests"
    assert report.sent == len(fake.events) <= 50  # those in flight at the 401 were cancelled
    assert report.failed >= 1
    assert report.total == len(outcomes)


async def test_429_pauses_every_worker_without_using_attempts() -> None:
    """When requests are sent, on the virtual clock: the 1 s at the gate is not slept."""
    fake = FakePulsora(latency=0.01)
    fake.fail_next(429, retry_after=1)
    sent_at: list[float] = []

    async def timed(request: httpx.Request) -> httpx.Response:
        sent_at.append(_clock.now())
        return await fake.transport.handle_async_request(request)

    policy = RetryPolicy(max_attempts=1)
    async with Revenue(TOKEN, transport=httpx.MockTransport(timed), retry=policy) as revenue:
        report = await revenue.track_many(events(40), concurrency=4)
    assert report.sent == 40, "the 429 did not use up the event's only attempt"
    first = sent_at[0]
    in_flight_then = [t for t in sent_at[1:] if t < first + 0.01]
    later = sent_at[1 + len(in_flight_then) :]
    assert len(in_flight_then) <= 3
    assert min(later) >= first + 1.0, "every worker waited out the Retry-After"


async def test_429_storm_sends_no_more_than_concurrency_while_closed() -> None:
    """A storm of 1 s on the virtual clock, which moves by the waits at the gate."""
    storm_until = 0.0
    during_storm = 0
    fake = FakePulsora()

    async def storm(request: httpx.Request) -> httpx.Response:
        nonlocal storm_until, during_storm
        now = _clock.now()
        if not storm_until:
            storm_until = now + 1.0
        if now < storm_until:
            during_storm += 1
            return httpx.Response(429, headers={"Retry-After": "1"}, json={"error": "Rate limited"})
        return await fake.transport.handle_async_request(request)

    async with Revenue(TOKEN, transport=httpx.MockTransport(storm)) as revenue:
        report = await revenue.track_many(events(20), concurrency=4)
    assert report.sent == 20
    assert during_storm <= 4


@pytest.mark.parametrize("answer", [503, 429], ids=["back-off", "429 gate"])
async def test_aclose_during_a_run_ends_its_waits_with_client_closed(answer: int) -> None:
    testing.set_testing(False)  # real waits of ten minutes, which aclose must not wait out
    sent = anyio.Event()

    def refuse(request: httpx.Request) -> httpx.Response:
        sent.set()
        return httpx.Response(answer, headers={"Retry-After": "600"}, json={"error": "busy"})

    policy = RetryPolicy(initial_delay=600.0, max_delay=600.0, deadline=3000.0)
    revenue = Revenue(TOKEN, transport=httpx.MockTransport(refuse), retry=policy)

    async def run() -> None:
        with pytest.raises(ClientClosedError):
            await revenue.track_many(events(10), concurrency=2)

    with anyio.fail_after(20):  # a guard: the waits alone are ten minutes
        async with anyio.create_task_group() as group:
            group.start_soon(run)
            await sent.wait()
            await anyio.sleep(0.05)  # now waiting
            await revenue.aclose()


async def test_aclose_stops_a_run_with_its_report() -> None:
    testing.set_testing(False)
    answers = iter([202] * 3)
    waiting = anyio.Event()
    seen: list[Progress] = []

    def answer(request: httpx.Request) -> httpx.Response:
        status = next(answers, 503)
        if status == 503:
            waiting.set()
        return httpx.Response(status, json={"success": True} if status < 300 else {})

    policy = RetryPolicy(initial_delay=600.0, max_delay=600.0, deadline=3000.0)
    revenue = Revenue(TOKEN, transport=httpx.MockTransport(answer), retry=policy)

    async def run() -> None:
        with pytest.raises(ClientClosedError) as caught:
            await revenue.track_many(events(6), concurrency=1, on_progress=seen.append)
        report = caught.value.report
        assert report is not None
        assert (report.sent, report.total, report.stopped) == (3, 3, True)
        assert seen[-1].sent == 3, "a last progress, as for any end of a run"

    with anyio.fail_after(20):  # a guard: the back-off alone is ten minutes
        async with anyio.create_task_group() as group:
            group.start_soon(run)
            await waiting.wait()
            await anyio.sleep(0.05)  # now waiting out the back-off
            await revenue.aclose()


@pytest.mark.parametrize("retry_after", ["3601", "1e20"])
async def test_a_429_asking_for_more_than_an_hour_fails_its_event(retry_after: str) -> None:
    answers = itertools.chain(
        [httpx.Response(429, headers={"Retry-After": retry_after}, json={"error": "Slow"})],
        itertools.repeat(httpx.Response(202, json={"success": True})),
    )
    outcomes: list[Outcome] = []
    async with Revenue(TOKEN, transport=httpx.MockTransport(lambda _: next(answers))) as revenue:
        with testing.fast_retries() as sleeps:
            report = await revenue.track_many(events(4), concurrency=1, on_result=outcomes.append)
    assert (report.sent, report.failed) == (3, 1)
    assert isinstance(outcomes[0].error, RateLimitError)
    assert outcomes[0].error.retry_after == float(retry_after)
    assert sleeps == [], "nothing waited for it"


async def test_rate_limit_spaces_requests() -> None:
    fake = FakePulsora()
    async with Revenue(TOKEN, transport=fake.transport) as revenue:
        with testing.fast_retries() as sleeps:
            report = await revenue.track_many(events(11), concurrency=4, rate_limit=10)
    assert report.sent == 11
    assert sum(sleeps) == pytest.approx(1.0, abs=0.05)  # 10 intervals of 0.1 s


async def test_lost_answers_in_bulk_are_sent_once() -> None:
    fake = FakePulsora()
    fake.script([Fault(drop=True), Fault(), Fault(drop=True)])
    async with Revenue(TOKEN, transport=fake.transport) as revenue:
        outcomes: list[Outcome] = []
        report = await revenue.track_many(events(10), concurrency=1, on_result=outcomes.append)
    assert report.sent == 10
    assert [o.index for o in outcomes if o.result and o.result.duplicate] == [0, 1]
    assert len(fake.events) == 10


async def test_progress_reports_counters() -> None:
    fake = FakePulsora(latency=0.002)
    seen: list[Progress] = []
    async with Revenue(TOKEN, transport=fake.transport) as revenue:
        await revenue.track_many(events(300), concurrency=2, on_progress=seen.append)
    assert seen
    assert seen[-1].done == seen[-1].sent == 300
    assert seen[-1].in_flight == 0
    assert all(a.done <= b.done for a, b in itertools.pairwise(seen))
    assert seen[-1].rate > 0


async def test_cancellation_leaves_no_task_and_a_consistent_report() -> None:
    fake = FakePulsora(latency=0.002)
    outcomes: list[Outcome] = []
    before = len(anyio.get_running_tasks())
    async with Revenue(TOKEN, transport=fake.transport) as revenue:
        with anyio.move_on_after(0.1) as scope:
            await revenue.track_many(events(100_000), concurrency=8, on_result=outcomes.append)
    assert scope.cancelled_caught
    await anyio.sleep(0.05)
    assert len(anyio.get_running_tasks()) == before
    recorded = {e.transaction_id for e in fake.events}
    reported = {o.event.transaction_id for o in outcomes if o.event}
    assert recorded == reported, "on_result was called for every event that got an answer"
    assert 0 < len(outcomes) < 100_000


@pytest.mark.parametrize("backend", ["auto", "httpx"])
async def test_concurrency_beyond_the_pool_gets_its_own_pool(
    server: DevServer, monkeypatch: pytest.MonkeyPatch, backend: str
) -> None:
    pools: list[int] = []
    new_sender = Revenue._new_sender

    def recording(self: Revenue, pool: int) -> Any:
        pools.append(pool)
        return new_sender(self, pool)

    monkeypatch.setattr(Revenue, "_new_sender", recording)
    monkeypatch.setenv("PULSORA_HTTP_BACKEND", backend)
    async with Revenue(TOKEN, endpoint=server.endpoint) as revenue:
        await revenue.track_many(events(16), concurrency=8)
        report = await revenue.track_many(events(100, start=16), concurrency=100)
        assert (await revenue.track({**EVENT, "transaction_id": "after"})).status_code == 202
    assert report.sent == 100
    assert pools == [64, 100]  # the client's own pool, then one sized to the run
    assert len(server.events()) == 117


async def test_a_users_transport_is_never_closed_by_a_big_run() -> None:
    fake = FakePulsora(latency=0.01)
    async with Revenue(TOKEN, transport=fake.transport) as revenue:
        await revenue.track_many(events(150), concurrency=100)
        report = await revenue.track_many(events(150, start=150), concurrency=100)
    assert report.sent == 150
    assert fake.peak_concurrency > 64


@pytest.mark.parametrize("concurrency", [0, -1, 1.5, True])
async def test_refuses_nonsense_concurrency(concurrency: Any) -> None:
    async with Revenue(TOKEN, transport=FakePulsora().transport) as revenue:
        with pytest.raises(ConfigurationError):
            await revenue.track_many(events(1), concurrency=concurrency)


async def test_refuses_nonsense_rate_limit() -> None:
    async with Revenue(TOKEN, transport=FakePulsora().transport) as revenue:
        with pytest.raises(ConfigurationError):
            await revenue.track_many(events(1), rate_limit=0)


@pytest.mark.parametrize("status", [202, 400])
async def test_errors_in_callbacks_propagate_unwrapped(status: int) -> None:
    def explode(outcome: Outcome) -> None:
        raise RuntimeError("callback bug")

    fake = FakePulsora()
    fake.fail_next(*[status] * 5 if status >= 400 else [])
    async with Revenue(TOKEN, transport=fake.transport) as revenue:
        with pytest.raises(RuntimeError, match="callback bug") as info:
            await revenue.track_many(events(5), on_result=explode)
    assert info.value.__context__ is None, "not raised while handling the event's own error"


@pytest.mark.parametrize("concurrency", [1, 4])
@pytest.mark.parametrize("asynchronous", [False, True], ids=["iterable", "async-iterable"])
async def test_an_error_in_the_input_is_raised_once_what_was_read_is_sent(
    concurrency: int, asynchronous: bool
) -> None:
    def broken() -> Iterator[dict[str, Any]]:
        yield from events(20)
        raise OSError("disk gone")

    fake = FakePulsora(latency=0.001)
    outcomes: list[Outcome] = []
    source = as_async(broken()) if asynchronous else broken()
    async with Revenue(TOKEN, transport=fake.transport) as revenue:
        with pytest.raises(OSError, match="disk gone"):
            await revenue.track_many(source, concurrency=concurrency, on_result=outcomes.append)
    assert sorted(o.index for o in outcomes) == list(range(20))
    assert len(fake.events) == 20


async def test_a_run_of_invalid_rows_can_be_cancelled() -> None:
    fake = FakePulsora()

    def invalid_forever() -> Iterator[dict[str, Any]]:
        while True:
            yield {"amount": "not a number"}

    async with Revenue(TOKEN, transport=fake.transport) as revenue:
        with anyio.move_on_after(0.2) as scope:
            await revenue.track_many(invalid_forever(), keep_failures=False)
    assert scope.cancelled_caught
    assert fake.requests == 0


@pytest.mark.parametrize("watched", [True, False], ids=["on_result", "no-on_result"])
@pytest.mark.parametrize("status", [202, 400])
async def test_a_run_over_an_instant_transport_can_be_cancelled(status: int, watched: bool) -> None:
    # A transport that answers without ever suspending: the workers must still let
    # the event loop run now and then, whether the events are accepted or refused.
    requests = 0

    def answer(request: httpx.Request) -> httpx.Response:
        nonlocal requests
        requests += 1
        return httpx.Response(status, json={"error": "no"} if status >= 400 else {"success": True})

    outcomes: list[Outcome] = []
    on_result = outcomes.append if watched else None
    async with Revenue(TOKEN, transport=httpx.MockTransport(answer)) as revenue:
        with anyio.move_on_after(0.05) as scope:  # never yielding, it would do all 20,000
            await revenue.track_many(events(20_000), keep_failures=False, on_result=on_result)
    assert scope.cancelled_caught
    assert 0 < requests < 20_000
    if watched:
        assert len(outcomes) == requests
        assert {o.status for o in outcomes} == {
            OutcomeStatus.SENT if status == 202 else OutcomeStatus.FAILED
        }


async def test_an_already_cancelled_caller_sends_nothing() -> None:
    fake = FakePulsora()
    async with Revenue(TOKEN, transport=fake.transport) as revenue:
        with anyio.CancelScope() as scope:
            scope.cancel()
            await revenue.track_many(events(10), concurrency=4)
    assert scope.cancelled_caught
    assert fake.requests == 0


async def test_a_cancellation_from_on_result_stops_the_next_send() -> None:
    fake = FakePulsora()  # answers at once: the workers would never notice on their own
    async with Revenue(TOKEN, transport=fake.transport) as revenue:
        with anyio.CancelScope() as scope:

            def stop_after_two(outcome: Outcome) -> None:
                if outcome.index == 1:
                    scope.cancel()

            await revenue.track_many(events(60), concurrency=1, on_result=stop_after_two)
    assert scope.cancelled_caught
    assert fake.requests == 2


@pytest.mark.parametrize("many", [False, True], ids=["track", "track_many"])
async def test_a_cancelled_caller_sends_nothing_over_a_pooled_connection(
    server: DevServer, many: bool
) -> None:
    # aiohttp writes a request on a pooled connection before it first waits.
    async with Revenue(TOKEN, endpoint=server.endpoint) as revenue:
        await revenue.track_many(events(4, start=100), concurrency=4)  # four pooled connections
        with anyio.CancelScope() as scope:
            scope.cancel()
            if many:
                await revenue.track_many(events(10), concurrency=4)
            else:
                await revenue.track(next(events(1)))
    assert scope.cancelled_caught
    assert len(server.events()) == 4


async def test_a_row_utf_8_cannot_carry_is_invalid_and_the_run_goes_on() -> None:
    rows = list(events(10))
    rows[3] = {**EVENT, "transaction_id": "tx_\ud800"}  # json.loads makes this of "tx_\\ud800"
    fake = FakePulsora()
    outcomes: list[Outcome] = []
    async with Revenue(TOKEN, transport=fake.transport) as revenue:
        report = await revenue.track_many(rows, on_result=outcomes.append)
    assert (report.total, report.sent, report.invalid) == (10, 9, 1)
    (bad,) = [o for o in outcomes if o.status is OutcomeStatus.INVALID]
    assert bad.index == 3
    assert "lone surrogate" in str(bad.error)


@pytest.mark.parametrize("stop", ["401", "cancelled"])
async def test_an_async_generator_left_unfinished_is_closed_at_once(stop: str) -> None:
    closed = False

    async def source() -> AsyncIterator[dict[str, Any]]:
        nonlocal closed
        try:
            for row in events(1000):
                yield row
        finally:
            closed = True  # a cursor closed, say: it must not wait for the garbage collector

    status = 401 if stop == "401" else 202
    transport = httpx.MockTransport(lambda _: httpx.Response(status, json={"error": "No"}))
    async with Revenue(TOKEN, transport=transport) as revenue:
        with anyio.CancelScope() as scope:
            if stop == "401":
                with pytest.raises(AuthenticationError):
                    await revenue.track_many(source(), concurrency=2)
            else:
                cancel = lambda _: scope.cancel()  # noqa: E731
                await revenue.track_many(source(), concurrency=2, on_result=cancel)
        assert closed


async def test_an_async_input_that_cannot_start_raises_its_own_error() -> None:
    class Unopenable:
        def __aiter__(self) -> AsyncIterator[dict[str, Any]]:
            raise OSError("the export cannot be opened")

    async with Revenue(TOKEN, transport=FakePulsora().transport) as revenue:
        with pytest.raises(OSError, match="cannot be opened"):
            await revenue.track_many(Unopenable())


@pytest.mark.parametrize("closing", ["slow", "failing"])
async def test_an_input_slow_or_failing_to_close_changes_nothing_of_the_outcome(
    closing: str, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    testing.set_testing(False)
    monkeypatch.setattr(_bulk, "CLOSE_INPUT_WITHIN", 0.05)  # not 2 s, in a test

    async def source() -> AsyncIterator[dict[str, Any]]:
        try:
            for row in events(1000):
                yield row
        finally:
            if closing == "slow":
                await anyio.sleep(30)  # a cursor that takes its time to close
            else:
                raise OSError("cursor already closed")

    transport = httpx.MockTransport(lambda _: httpx.Response(401, json={"error": "No"}))
    started = anyio.current_time()
    async with Revenue(TOKEN, transport=transport) as revenue:
        with pytest.raises(AuthenticationError):  # the run's own error, not the OSError
            await revenue.track_many(source(), concurrency=2)
    assert anyio.current_time() - started < 5  # not 30 s: the close was given up
    if closing == "failing":
        assert "closing the input of track_many failed" in caplog.text
