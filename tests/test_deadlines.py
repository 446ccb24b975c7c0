"""Deadlines mean deadlines: the bulk 429 gate counts, and track_many's own time limit.

Every test runs on the virtual clock of test mode: waits are recorded, not slept,
and ``_clock.now()`` moves by them.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import timedelta
from typing import Any

import anyio
import httpx
import pytest

from pulsora_revenue import (
    APITimeoutError,
    ConfigurationError,
    Outcome,
    OutcomeStatus,
    RateLimitError,
    RetryPolicy,
    Revenue,
    ServerError,
    _clock,
    testing,
)
from pulsora_revenue._bulk import PREPARE_CHUNK
from pulsora_revenue._pacing import RateGate
from pulsora_revenue._retry import leaves_time

from .data import EVENT, TOKEN

pytestmark = pytest.mark.anyio

Handler = Callable[[httpx.Request], httpx.Response]
ACCEPTED = {"success": True}


def events(count: int) -> Iterator[dict[str, Any]]:
    for n in range(count):
        yield {**EVENT, "transaction_id": f"tx_{n}"}


def too_many(retry_after: str) -> Handler:
    """A server that answers 429 forever."""
    return lambda _: httpx.Response(
        429, headers={"Retry-After": retry_after}, json={"error": "Slow"}
    )


def stopwatch() -> Callable[[], float]:
    """Seconds since now on the virtual clock (the skipped waits included)."""
    started = _clock.now()
    return lambda: _clock.now() - started


@pytest.mark.parametrize("deadline", [3.0, 8.0])
async def test_429s_forever_with_retry_after_0_fail_each_event_within_its_deadline(
    deadline: float,
) -> None:
    """The finding: 3 events took 43-111 s to fail under a 3-8 s deadline."""
    policy = RetryPolicy(deadline=deadline, uniform=random.Random(1).uniform)
    outcomes: list[Outcome] = []
    async with Revenue(TOKEN, transport=httpx.MockTransport(too_many("0")), retry=policy) as rev:
        with testing.fast_retries() as sleeps:
            report = await rev.track_many(events(3), concurrency=1, on_result=outcomes.append)
    assert (report.total, report.failed) == (3, 3)
    assert all(isinstance(o.error, RateLimitError) for o in outcomes)
    assert sum(sleeps) <= 3 * deadline, "every wait at the gate counts against the deadline"


async def test_a_retry_after_beyond_the_deadline_fails_every_event_at_once() -> None:
    """The finding: Retry-After: 3600 allowed hours per event."""
    requests = 0

    def answer(request: httpx.Request) -> httpx.Response:
        nonlocal requests
        requests += 1
        return too_many("3600")(request)

    outcomes: list[Outcome] = []
    async with Revenue(TOKEN, transport=httpx.MockTransport(answer)) as revenue:
        with testing.fast_retries() as sleeps:
            report = await revenue.track_many(events(5), concurrency=2, on_result=outcomes.append)
    assert report.failed == 5
    assert sleeps == [], "nothing waited for the gate: it opens past every deadline"
    errors = [o.error for o in outcomes]
    assert all(isinstance(e, RateLimitError) and e.retry_after == 3600 for e in errors)
    assert requests <= 2, "the gate turned the later events away without a request"
    assert sorted(e.attempts for e in errors if isinstance(e, RateLimitError))[-1] == 1


async def test_a_gate_closed_past_its_deadline_fails_an_event_as_track_does() -> None:
    """The message and fields of the error are those of ``track``'s RateLimitError."""
    async with Revenue(TOKEN, transport=httpx.MockTransport(too_many("120"))) as revenue:
        with pytest.raises(RateLimitError) as tracked:
            await revenue.track(EVENT)
        outcomes: list[Outcome] = []
        await revenue.track_many([EVENT], on_result=outcomes.append)
    bulk = outcomes[0].error
    assert isinstance(bulk, RateLimitError)
    assert (bulk.retry_after, bulk.attempts) == (tracked.value.retry_after, 1) == (120, 1)
    assert "Pulsora asked to wait 120 s" in str(bulk)


def scripted(seed: int) -> Handler:
    """A server that answers at random: accepted, 503, 429 with any Retry-After, or nothing."""
    rng = random.Random(seed)

    def answer(request: httpx.Request) -> httpx.Response:
        roll = rng.random()
        if roll < 0.15:
            return httpx.Response(202, json=ACCEPTED)
        if roll < 0.35:
            return httpx.Response(503, json={"error": "down"})
        if roll < 0.45:
            raise httpx.ConnectTimeout("slow", request=request)
        retry_after = rng.choice(["0", "1", "4", None])  # longer: every event fails at once
        if retry_after is None:
            return httpx.Response(429, json={"error": "Slow"})
        return httpx.Response(429, headers={"Retry-After": retry_after}, json={"error": "Slow"})

    return answer


@pytest.mark.parametrize("seed", range(6))
async def test_no_answer_holds_an_event_past_its_deadline(seed: int) -> None:
    """One event at a time, so that the virtual clock measures each one alone."""
    deadline = 6.0
    policy = RetryPolicy(max_attempts=6, deadline=deadline, uniform=random.Random(seed).uniform)
    spans: list[float] = []
    elapsed = stopwatch()

    def took(outcome: Outcome) -> None:
        spans.append(elapsed() - sum(spans))

    transport = httpx.MockTransport(scripted(seed))
    async with Revenue(TOKEN, transport=transport, retry=policy) as revenue:
        report = await revenue.track_many(events(40), concurrency=1, on_result=took)
    assert report.total == 40
    assert max(spans) <= deadline + 0.5  # the real time of the test, besides
    assert report.sent > 0


async def test_the_wait_at_the_gate_is_part_of_an_events_elapsed_time() -> None:
    answers = itertools.chain(
        [httpx.Response(429, headers={"Retry-After": "2"}, json={"error": "Slow"})],
        itertools.repeat(httpx.Response(202, json=ACCEPTED)),
    )
    outcomes: list[Outcome] = []
    transport = httpx.MockTransport(lambda _: next(answers))
    async with Revenue(TOKEN, transport=transport) as revenue:
        await revenue.track_many(events(1), on_result=outcomes.append)
    result = outcomes[0].result
    assert result is not None
    assert (result.attempts, outcomes[0].status) == (2, OutcomeStatus.SENT)
    assert result.elapsed >= 2.0, "the 2 s at the gate are the event's own"


async def test_the_token_buckets_wait_is_not_counted_against_the_deadline() -> None:
    """The caller's own rate limit: at most concurrency / rate_limit a request."""
    policy = RetryPolicy(deadline=1.0)
    outcomes: list[Outcome] = []
    transport = httpx.MockTransport(lambda _: httpx.Response(202, json=ACCEPTED))
    async with Revenue(TOKEN, transport=transport, retry=policy) as revenue:
        report = await revenue.track_many(
            events(12), concurrency=4, rate_limit=0.5, on_result=outcomes.append
        )
    assert report.sent == 12, "a 2 s slot, under a 1 s deadline, fails nothing"


def test_the_rule_for_every_wait_is_the_retry_decisions() -> None:
    assert leaves_time(30.0, 20.0, 9.0)
    assert not leaves_time(30.0, 20.0, 9.5)  # an attempt needs a second
    assert leaves_time(3.0, 1.0, 1.7)
    assert not leaves_time(3.0, 1.0, 1.8)  # or a tenth of a short deadline
    assert not leaves_time(30.0, 0.0, float("nan"))


async def test_the_gate_turns_away_without_waiting_and_with_the_429_that_closed_it() -> None:
    gate = RateGate(lambda low, high: high)
    assert await gate.wait(_clock.Stopwatch(), 5.0) is None, "never closed: open"
    gate.close_for(10.0)
    refusal = await gate.wait(_clock.Stopwatch(), 5.0)
    assert refusal is not None
    assert refusal.seen.status_code == 429
    assert refusal.seen.retry_after == pytest.approx(10.0, abs=0.1)
    with testing.fast_retries() as sleeps:
        watch = _clock.Stopwatch()
        assert await gate.wait(watch, 30.0) is None
        assert sleeps == [pytest.approx(10.5, abs=0.1)]
        assert watch.elapsed() >= 10.0, "counted as the waiting event's time"


# track_many(time_limit=...)


def five_seconds_each(answer: Handler) -> Handler:
    """Answers that take five seconds each, on the virtual clock."""

    def slow(request: httpx.Request) -> httpx.Response:
        _clock.MODE.offset += 5.0  # as a skipped wait would
        return answer(request)

    return slow


async def test_a_run_ends_at_its_time_limit_and_reports_what_it_did_not_send() -> None:
    source = events(1000)
    outcomes: list[Outcome] = []
    transport = httpx.MockTransport(five_seconds_each(lambda _: httpx.Response(202, json=ACCEPTED)))
    async with Revenue(TOKEN, transport=transport) as revenue:
        report = await revenue.track_many(
            source, concurrency=1, time_limit=timedelta(seconds=21.5), on_result=outcomes.append
        )
    assert report.stopped
    assert not report.ok
    assert report.sent == 5, "started at 0, 5, 10, 15 and 20 s: then less than 1 s was left"
    assert report.total == PREPARE_CHUNK, "every event read got an outcome; no more was read"
    assert sorted(o.index for o in outcomes) == list(range(report.total))
    unsent = [o for o in outcomes if o.status is OutcomeStatus.FAILED]
    assert len(unsent) == report.failed == PREPARE_CHUNK - 5
    assert all(isinstance(o.error, APITimeoutError) for o in unsent)
    assert "Not sent: the time limit of track_many (21.5 s)" in str(unsent[0].error)
    assert [f.index for f in report.failures] == [o.index for o in unsent]
    assert next(source)["transaction_id"] == f"tx_{report.total}", "the rest is still there"


async def test_an_event_started_near_the_limit_gets_only_the_time_left() -> None:
    """A 503 forever, and a 30 s deadline: the run still ends at its 10 s limit."""
    elapsed = stopwatch()
    outcomes: list[Outcome] = []
    policy = RetryPolicy(max_attempts=20, uniform=random.Random(2).uniform)
    transport = httpx.MockTransport(lambda _: httpx.Response(503, json={"error": "down"}))
    async with Revenue(TOKEN, transport=transport, retry=policy) as revenue:
        report = await revenue.track_many(
            events(50), concurrency=1, time_limit=10, on_result=outcomes.append
        )
    assert elapsed() <= 10.0
    assert report.stopped
    assert isinstance(outcomes[0].error, ServerError), "the first one was tried, until 10 s"
    assert report.total == report.failed == PREPARE_CHUNK


async def test_an_async_input_cut_short_by_the_time_limit_loses_nothing_it_read() -> None:
    produced: list[int] = []
    closed = anyio.Event()

    async def source() -> AsyncIterator[dict[str, Any]]:
        try:
            for n in itertools.count():
                produced.append(n)
                yield {**EVENT, "transaction_id": f"tx_{n}"}
        finally:
            closed.set()

    outcomes: list[Outcome] = []
    transport = httpx.MockTransport(five_seconds_each(lambda _: httpx.Response(202, json=ACCEPTED)))
    async with Revenue(TOKEN, transport=transport) as revenue:
        report = await revenue.track_many(
            source(), concurrency=3, time_limit=30, on_result=outcomes.append
        )
    assert report.stopped
    assert closed.is_set(), "the input was closed, as for any early stop"
    assert sorted(o.index for o in outcomes) == produced, "each event read has its outcome"
    assert report.sent + report.failed == report.total == len(produced)
    assert 0 < report.sent < report.total


async def test_a_stalled_input_does_not_hold_a_run_past_its_time_limit() -> None:
    async def stalling() -> AsyncIterator[dict[str, Any]]:
        yield EVENT
        await anyio.sleep_forever()  # a queue that never delivers again
        yield EVENT  # pragma: no cover

    outcomes: list[Outcome] = []
    transport = httpx.MockTransport(lambda _: httpx.Response(202, json=ACCEPTED))
    async with Revenue(TOKEN, transport=transport) as revenue:
        with anyio.fail_after(5):  # a guard: the limit itself is a millisecond
            report = await revenue.track_many(
                stalling(), time_limit=0.001, on_result=outcomes.append
            )
    assert report.stopped
    assert report.total == len(outcomes) == 1


async def test_a_run_within_its_time_limit_is_not_stopped() -> None:
    transport = httpx.MockTransport(lambda _: httpx.Response(202, json=ACCEPTED))
    async with Revenue(TOKEN, transport=transport) as revenue:
        report = await revenue.track_many(events(100), time_limit=60)
        unbounded = await revenue.track_many(events(10), time_limit=float("inf"))
    assert (report.sent, report.stopped, report.ok) == (100, False, True)
    assert unbounded.sent == 10


@pytest.mark.parametrize("limit", [0, -1, float("nan"), "60", True])
async def test_refuses_nonsense_time_limits(limit: Any) -> None:
    async with Revenue(TOKEN, transport=httpx.MockTransport(lambda _: httpx.Response(202))) as rev:
        with pytest.raises(ConfigurationError, match=r"time_limit|duration"):
            await rev.track_many(events(1), time_limit=limit)
