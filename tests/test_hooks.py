"""Hooks: every attempt, outcome and outbox change is reported; a failing hook breaks nothing."""

from __future__ import annotations

import logging
import sqlite3
import threading
from pathlib import Path
from typing import Any

import attrs
import httpx
import pytest

from pulsora_revenue import (
    APIConnectionError,
    Attempt,
    AuthenticationError,
    Backend,
    BadRequestError,
    ConfigurationError,
    Delivery,
    DeliveryOutcome,
    DuplicateTransactionError,
    Hooks,
    OutboxChange,
    OutboxChangeKind,
    PulsoraError,
    RetryPolicy,
    Revenue,
    RevenueEvent,
    ServerError,
    SyncRevenue,
    UnexpectedResponseError,
    _clock,
    testing,
)
from pulsora_revenue.testing import FakePulsora

from .conftest import DevServer
from .data import EVENT, TOKEN

pytestmark = pytest.mark.anyio

URL = "https://pulsora.co/api/ingest"
QUICK = RetryPolicy(max_attempts=2, initial_delay=0.01, max_delay=0.01)

Record = Attempt | Delivery | OutboxChange


class Recorder(Hooks):
    """Keeps every record, and the thread each came in."""

    def __init__(self) -> None:
        self.records: list[Record] = []
        self.threads: set[str] = set()

    def on_attempt(self, attempt: Attempt) -> None:
        self._keep(attempt)

    def on_delivery(self, delivery: Delivery) -> None:
        self._keep(delivery)

    def on_outbox(self, change: OutboxChange) -> None:
        self._keep(change)

    def _keep(self, record: Record) -> None:
        self.records.append(record)
        self.threads.add(threading.current_thread().name)

    @property
    def attempts(self) -> list[Attempt]:
        return [r for r in self.records if isinstance(r, Attempt)]

    @property
    def deliveries(self) -> list[Delivery]:
        return [r for r in self.records if isinstance(r, Delivery)]

    @property
    def changes(self) -> list[OutboxChange]:
        return [r for r in self.records if isinstance(r, OutboxChange)]


def answers(attempts: list[Attempt]) -> list[tuple[int, int | None, float | None]]:
    """Each attempt's number, status and wait."""
    return [(a.number, a.status_code, a.wait) for a in attempts]


def events(count: int, prefix: str = "hk") -> list[dict[str, Any]]:
    return [{**EVENT, "transaction_id": f"{prefix}_{n}"} for n in range(count)]


def refusing(token_in_message: bool = False) -> httpx.MockTransport:
    """A transport to which Pulsora is unreachable (the error may quote the token)."""

    def refuse(request: httpx.Request) -> httpx.Response:
        said = f" while sending X-API-Token: {TOKEN}" if token_in_message else ""
        raise httpx.ConnectError(f"connection refused{said}", request=request)

    return httpx.MockTransport(refuse)


@pytest.fixture
def fake() -> FakePulsora:
    return FakePulsora()


async def test_a_delivered_event_reports_its_attempt_then_its_outcome(fake: FakePulsora) -> None:
    hooks = Recorder()
    async with Revenue(TOKEN, transport=fake.transport, hooks=[hooks]) as revenue:
        result = await revenue.track(EVENT)
    attempt, delivery = hooks.records
    assert isinstance(attempt, Attempt)
    assert (attempt.event, attempt.endpoint, attempt.number) == (result.event, URL, 1)
    assert (attempt.status_code, attempt.error, attempt.wait) == (202, None, None)
    assert 0 <= attempt.duration <= attempt.elapsed <= result.elapsed
    assert delivery == Delivery(result.event, DeliveryOutcome.DELIVERED, 1, 202, result.elapsed)


async def test_a_retry_reports_the_wait_chosen_before_it(fake: FakePulsora) -> None:
    fake.fail_next(503, 503)
    hooks = Recorder()
    async with Revenue(TOKEN, transport=fake.transport, hooks=[hooks]) as revenue:
        result = await revenue.track(EVENT)
    first, second = testing.recorded_sleeps()
    assert answers(hooks.attempts) == [(1, 503, first), (2, 503, second), (3, 202, None)]
    elapsed = [a.elapsed for a in hooks.attempts]
    assert elapsed == sorted(elapsed)
    assert elapsed[1] - elapsed[0] >= first, "the skipped wait counts as time passed"
    assert hooks.deliveries == [
        Delivery(result.event, DeliveryOutcome.DELIVERED, 3, 202, result.elapsed)
    ]


async def test_a_429_pause_of_track_many_is_an_attempt_with_its_wait(fake: FakePulsora) -> None:
    fake.fail_next(429, retry_after=3)
    hooks = Recorder()
    async with Revenue(TOKEN, transport=fake.transport, hooks=[hooks]) as revenue:
        report = await revenue.track_many([EVENT], concurrency=1)
    assert report.sent == 1
    assert answers(hooks.attempts) == [(1, 429, 3.0), (2, 202, None)]
    (delivery,) = hooks.deliveries
    assert (delivery.outcome, delivery.attempts, delivery.status_code) == (
        DeliveryOutcome.DELIVERED,
        2,
        202,
    )
    assert delivery.elapsed >= 3.0


async def test_a_lost_answer_then_a_409_is_a_duplicate(fake: FakePulsora) -> None:
    fake.drop_next()
    hooks = Recorder()
    async with Revenue(TOKEN, transport=fake.transport, hooks=[hooks]) as revenue:
        result = await revenue.track(EVENT)
    assert result.duplicate
    lost, found = hooks.attempts
    assert lost.status_code is None
    assert lost.error is not None
    assert lost.error.startswith("RemoteProtocolError: ")
    assert lost.wait is not None
    assert (found.status_code, found.error, found.wait) == (409, None, None)
    assert hooks.deliveries == [
        Delivery(result.event, DeliveryOutcome.DUPLICATE, 2, 409, result.elapsed)
    ]


async def test_an_event_recorded_before_the_call_is_a_duplicate_with_its_error(
    fake: FakePulsora,
) -> None:
    hooks = Recorder()
    async with Revenue(TOKEN, transport=fake.transport, hooks=[hooks]) as revenue:
        await revenue.track(EVENT)
        with pytest.raises(DuplicateTransactionError) as info:
            await revenue.track(EVENT)
    delivery = hooks.deliveries[-1]
    assert (delivery.outcome, delivery.status_code, delivery.attempts) == (
        DeliveryOutcome.DUPLICATE,
        409,
        1,
    )
    assert delivery.error is info.value


@pytest.mark.parametrize(
    ("statuses", "outcome", "error"),
    [
        ((400,), DeliveryOutcome.REFUSED, BadRequestError),
        ((401,), DeliveryOutcome.REFUSED, AuthenticationError),
        ((503, 503, 503, 503), DeliveryOutcome.FAILED, ServerError),
    ],
    ids=["400", "401", "503s"],
)
async def test_what_pulsora_refuses_for_good_is_refused_what_may_pass_later_failed(
    fake: FakePulsora,
    statuses: tuple[int, ...],
    outcome: DeliveryOutcome,
    error: type[PulsoraError],
) -> None:
    fake.fail_next(*statuses)
    hooks = Recorder()
    async with Revenue(TOKEN, transport=fake.transport, hooks=[hooks]) as revenue:
        with pytest.raises(error) as info:
            await revenue.track(EVENT)
    (delivery,) = hooks.deliveries
    assert (delivery.outcome, delivery.status_code, delivery.error) == (
        outcome,
        statuses[-1],
        info.value,
    )
    assert delivery.attempts == len(statuses) == len(hooks.attempts)
    assert hooks.attempts[-1].wait is None, "no try follows the last"


async def test_no_answer_after_the_retries_is_failed_with_the_failure_text() -> None:
    hooks = Recorder()
    async with Revenue(TOKEN, transport=refusing(), retry=QUICK, hooks=[hooks]) as revenue:
        with pytest.raises(APIConnectionError) as info:
            await revenue.track(EVENT)
    assert [(a.status_code, a.error) for a in hooks.attempts] == [
        (None, "ConnectError: connection refused")
    ] * 2
    (delivery,) = hooks.deliveries
    assert (delivery.outcome, delivery.attempts, delivery.status_code) == (
        DeliveryOutcome.FAILED,
        2,
        None,
    )
    assert delivery.error is info.value


async def test_a_2xx_that_is_not_pulsoras_says_why_and_is_refused() -> None:
    def welcome(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, text="<h1>Welcome to nginx</h1>")

    hooks = Recorder()
    async with Revenue(TOKEN, transport=httpx.MockTransport(welcome), hooks=[hooks]) as revenue:
        with pytest.raises(UnexpectedResponseError):
            await revenue.track(EVENT)
    (attempt,) = hooks.attempts
    assert (attempt.status_code, attempt.wait) == (200, None)
    assert attempt.error == "not Pulsora's acceptance: <h1>Welcome to nginx</h1>"
    (delivery,) = hooks.deliveries
    assert (delivery.outcome, delivery.status_code) == (DeliveryOutcome.REFUSED, 200)


async def test_track_many_reports_each_event_it_sent_and_none_it_did_not(
    fake: FakePulsora,
) -> None:
    rows = [*events(3), {**EVENT, "amount": "lots"}, events(1)[0]]  # one invalid, one repeat
    fake.fail_next(400)
    hooks = Recorder()
    async with Revenue(TOKEN, transport=fake.transport, hooks=[hooks]) as revenue:
        report = await revenue.track_many(rows, concurrency=1)
    assert (report.sent, report.failed, report.invalid, report.skipped) == (2, 1, 1, 1)
    outcomes = [(d.event.transaction_id, d.outcome) for d in hooks.deliveries]
    assert outcomes == [
        ("hk_0", DeliveryOutcome.REFUSED),
        ("hk_1", DeliveryOutcome.DELIVERED),
        ("hk_2", DeliveryOutcome.DELIVERED),
    ]
    assert isinstance(hooks.deliveries[0].error, BadRequestError)


async def test_events_track_many_had_no_time_to_send_are_reported_failed() -> None:
    def slow(request: httpx.Request) -> httpx.Response:
        _clock.MODE.offset += 5.0  # five seconds each, on the virtual clock
        return httpx.Response(202, json={"success": True})

    hooks = Recorder()
    async with Revenue(TOKEN, transport=httpx.MockTransport(slow), hooks=[hooks]) as revenue:
        report = await revenue.track_many(events(40), concurrency=1, time_limit=21.5)
    assert report.sent == 5
    unsent = [d for d in hooks.deliveries if d.outcome is DeliveryOutcome.FAILED]
    assert len(unsent) == report.failed > 0
    assert {(d.attempts, d.status_code, d.elapsed) for d in unsent} == {(0, None, 0.0)}


async def test_queueing_reports_the_outbox_change_then_the_outcome(tmp_path: Path) -> None:
    hooks = Recorder()
    outbox = tmp_path / "outbox.sqlite"
    async with Revenue(
        TOKEN, transport=refusing(), retry=QUICK, outbox=outbox, hooks=[hooks]
    ) as revenue:
        first = await revenue.track(EVENT)
        await revenue.track(events(1)[0])
    assert first.queued
    assert [type(r).__name__ for r in hooks.records[:4]] == [
        "Attempt",
        "Attempt",
        "OutboxChange",
        "Delivery",
    ]
    change, delivery = hooks.records[2:4]
    assert isinstance(change, OutboxChange)
    assert isinstance(delivery, Delivery)
    assert (change.change, change.event, change.depth) == (OutboxChangeKind.QUEUED, first.event, 1)
    assert isinstance(change.error, APIConnectionError)
    assert delivery == Delivery(
        first.event, DeliveryOutcome.QUEUED, 2, None, first.elapsed, change.error
    )
    assert [c.depth for c in hooks.changes] == [1, 2]


async def test_a_client_not_entered_counts_its_outbox_once_to_report_its_depth(
    tmp_path: Path,
) -> None:
    outbox = tmp_path / "outbox.sqlite"
    async with Revenue(TOKEN, transport=refusing(), retry=QUICK, outbox=outbox) as down:
        await down.track(EVENT)
    hooks = Recorder()
    revenue = Revenue(TOKEN, transport=refusing(), retry=QUICK, outbox=outbox, hooks=[hooks])
    for row in events(2):
        await revenue.track(row)
    await revenue.aclose()
    assert [c.depth for c in hooks.changes] == [2, 3]


async def test_the_outbox_reports_what_it_delivers_and_what_it_buries(
    tmp_path: Path, fake: FakePulsora
) -> None:
    outbox = tmp_path / "outbox.sqlite"
    async with Revenue(TOKEN, transport=refusing(), retry=QUICK, outbox=outbox) as down:
        for row in events(3, "ob"):
            await down.track(row)
    fake.fail_next(400)
    hooks = Recorder()
    revenue = Revenue(TOKEN, transport=fake.transport, outbox=outbox, hooks=[hooks])
    assert await revenue.flush(timeout=30) == 0
    await revenue.aclose()
    shown = [(c.change, c.event and c.event.transaction_id, c.depth) for c in hooks.changes]
    assert shown == [
        (OutboxChangeKind.DEAD_LETTERED, "ob_0", 2),
        (OutboxChangeKind.DELIVERED, "ob_1", 1),
        (OutboxChangeKind.DELIVERED, "ob_2", 0),
    ]
    assert isinstance(hooks.changes[0].error, BadRequestError)
    assert [c.error for c in hooks.changes[1:]] == [None, None]
    assert answers(hooks.attempts) == [(1, 400, None), (1, 202, None), (1, 202, None)]
    assert hooks.deliveries == [], "deliveries are track's and track_many's"


async def test_an_unreadable_row_is_reported_dead_without_an_event(tmp_path: Path) -> None:
    outbox = tmp_path / "outbox.sqlite"
    async with Revenue(TOKEN, transport=refusing(), retry=QUICK, outbox=outbox) as down:
        await down.track(EVENT)
    with sqlite3.connect(outbox) as db:
        db.execute('UPDATE outbox SET data = \'{"amount": "no"}\'')
    hooks = Recorder()
    revenue = Revenue(TOKEN, transport=FakePulsora().transport, outbox=outbox, hooks=[hooks])
    await revenue.flush(timeout=30)
    await revenue.aclose()
    (change,) = hooks.changes
    assert (change.change, change.event, change.depth) == (OutboxChangeKind.DEAD_LETTERED, None, 0)
    assert change.error is not None
    assert hooks.attempts == []


class Exploding(Hooks):
    def on_attempt(self, attempt: Attempt) -> None:
        raise RuntimeError("attempt hook failed")

    def on_delivery(self, delivery: Delivery) -> None:
        raise ValueError("delivery hook failed")


async def test_a_hook_that_raises_is_logged_once_per_kind_and_breaks_nothing(
    fake: FakePulsora, caplog: pytest.LogCaptureFixture
) -> None:
    after = Recorder()
    async with Revenue(TOKEN, transport=fake.transport, hooks=[Exploding(), after]) as revenue:
        for row in events(3):
            assert (await revenue.track(row)).status_code == 202
        await revenue.track_many(events(3, "bulk"))
    assert len(after.deliveries) == 6, "the next hook is still called"
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert sorted(r.getMessage().split(" raised in ")[1].split(",")[0] for r in errors) == [
        "on_attempt",
        "on_delivery",
    ]
    assert all(r.exc_info is not None for r in errors)
    assert "attempt hook failed" in caplog.text
    assert "delivery hook failed" in caplog.text


class OnlyDeliveries(Hooks):
    def __init__(self) -> None:
        self.seen: list[DeliveryOutcome] = []

    def on_delivery(self, delivery: Delivery) -> None:
        self.seen.append(delivery.outcome)


async def test_a_hook_needs_to_override_only_what_it_wants(fake: FakePulsora) -> None:
    hook = OnlyDeliveries()
    fake.fail_next(503)
    async with Revenue(TOKEN, transport=fake.transport, hooks=(hook,)) as revenue:
        await revenue.track(EVENT)
        hooks = revenue._channel.hooks
    assert hook.seen == [DeliveryOutcome.DELIVERED]
    assert hooks is not None
    assert (len(hooks.attempts), len(hooks.deliveries), len(hooks.outbox_changes)) == (0, 1, 0)


def test_without_hooks_the_retry_loop_has_none_to_call() -> None:
    assert Revenue(TOKEN)._channel.hooks is None
    assert Revenue(TOKEN, hooks=[])._channel.hooks is None


@pytest.mark.parametrize(
    "hooks",
    [Recorder(), [Recorder], [object()], "hooks", [Recorder(), None], 42],
    ids=["one-hook", "a-class", "an-object", "a-str", "a-none", "an-int"],
)
@pytest.mark.parametrize("client", [Revenue, SyncRevenue])
def test_hooks_are_checked_at_construction(client: type[Revenue | SyncRevenue], hooks: Any) -> None:
    with pytest.raises(ConfigurationError, match=r"hooks? must be a"):
        client(TOKEN, hooks=hooks)


async def test_no_record_holds_the_token() -> None:
    def echo(request: httpx.Request) -> httpx.Response:
        token = request.headers["X-API-Token"]
        return httpx.Response(400, json={"error": f"bad event from {token}"})

    hooks = Recorder()
    async with Revenue(TOKEN, transport=httpx.MockTransport(echo), hooks=[hooks]) as revenue:
        with pytest.raises(BadRequestError):
            await revenue.track(EVENT)
    async with Revenue(
        TOKEN, transport=refusing(token_in_message=True), retry=QUICK, hooks=[hooks]
    ) as revenue:
        with pytest.raises(APIConnectionError):
            await revenue.track(EVENT)
    assert len(hooks.deliveries) == 2
    shown = [repr(r) for r in hooks.records]
    shown += [str(r.error) for r in hooks.records if not isinstance(r, Attempt)]
    assert "sec_" in "".join(shown), "the token is shown, redacted"
    assert TOKEN not in "".join(shown)


def test_sync_revenue_calls_its_hooks_in_its_own_thread(fake: FakePulsora) -> None:
    hooks = Recorder()
    with SyncRevenue(TOKEN, transport=fake.transport, hooks=[hooks]) as revenue:
        result = revenue.track(EVENT)
        revenue.track_many(events(2))
    assert [d.outcome for d in hooks.deliveries] == [DeliveryOutcome.DELIVERED] * 3
    assert hooks.deliveries[0].event == result.event
    assert hooks.threads == {"pulsora-revenue"}


@pytest.mark.parametrize("backend", ["httpx", "aiohttp"])
async def test_hooks_report_the_same_on_either_http_backend(
    backend: Backend, anyio_backend_name: str, server: DevServer
) -> None:
    if backend == "aiohttp" and anyio_backend_name != "asyncio":
        pytest.skip("aiohttp runs on asyncio only")
    server.script({"status": 503}, {"drop": True})
    hooks = Recorder()
    async with Revenue(TOKEN, endpoint=server.endpoint, backend=backend, hooks=[hooks]) as rev:
        result = await rev.track(EVENT)
    assert result.duplicate
    assert [(a.number, a.status_code, a.endpoint) for a in hooks.attempts] == [
        (1, 503, server.endpoint),
        (2, None, server.endpoint),
        (3, 409, server.endpoint),
    ]
    assert [d.outcome for d in hooks.deliveries] == [DeliveryOutcome.DUPLICATE]


def test_records_are_frozen_values() -> None:
    event = RevenueEvent(**EVENT)
    attempt = Attempt(event, URL, 1, 202, None, 0.1, 0.1, None)
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        attempt.number = 2  # type: ignore[misc]
    assert attempt == Attempt(event, URL, 1, 202, None, 0.1, 0.1, None)
    assert [str(o) for o in DeliveryOutcome] == [
        "delivered",
        "duplicate",
        "queued",
        "refused",
        "failed",
    ]
    assert [str(c) for c in OutboxChangeKind] == ["queued", "delivered", "dead_lettered"]
