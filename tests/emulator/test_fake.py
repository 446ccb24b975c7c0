"""FakePulsora, the in-process emulator, driven through the real client."""

from __future__ import annotations

from decimal import Decimal

import httpx
import pytest

from pulsora_revenue import (
    AuthenticationError,
    BadRequestError,
    DuplicateTransactionError,
    EventType,
    RateLimitError,
    RetryPolicy,
    Revenue,
    ServerError,
)
from pulsora_revenue.testing import FakePulsora, Fault, fast_retries

from ..data import EVENT, TOKEN

pytestmark = pytest.mark.anyio


async def test_records_events_as_revenue_events(fake_pulsora: FakePulsora) -> None:
    async with Revenue(TOKEN, transport=fake_pulsora.transport) as revenue:
        await revenue.track(EVENT)
        await revenue.track(
            {**EVENT, "transaction_id": "re_1", "event_type": "refund", "amount": -5}
        )
    purchase, refund = fake_pulsora.events
    assert purchase.amount == Decimal("49.99")
    assert refund.event_type is EventType.REFUND
    assert fake_pulsora.rejected == []
    assert fake_pulsora.requests == 2


async def test_duplicate_from_an_earlier_call(fake_pulsora: FakePulsora) -> None:
    async with Revenue(TOKEN, transport=fake_pulsora.transport) as revenue:
        await revenue.track(EVENT)
        with pytest.raises(DuplicateTransactionError, match="Duplicate transaction"):
            await revenue.track(EVENT)
    assert len(fake_pulsora.events) == 1
    assert [r.status for r in fake_pulsora.rejected] == [409]


async def test_dropped_answer_then_retry_is_delivered_once(fake_pulsora: FakePulsora) -> None:
    fake_pulsora.drop_next()
    async with Revenue(TOKEN, transport=fake_pulsora.transport) as revenue:
        result = await revenue.track(EVENT)
    assert result.duplicate
    assert result.attempts == 2
    assert len(fake_pulsora.events) == 1


async def test_scripted_statuses_and_retry_after(fake_pulsora: FakePulsora) -> None:
    fake_pulsora.fail_next(503)
    fake_pulsora.fail_next(429, retry_after=3)
    async with Revenue(TOKEN, transport=fake_pulsora.transport) as revenue:
        with fast_retries() as sleeps:
            result = await revenue.track(EVENT)
    assert result.attempts == 3
    assert sleeps[1] >= 3
    assert [r.status for r in fake_pulsora.rejected] == [503, 429]
    assert len(fake_pulsora.events) == 1


async def test_rate_limit_is_enforced() -> None:
    fake = FakePulsora(rate_limit=(1, 60))
    async with Revenue(TOKEN, transport=fake.transport) as revenue:
        await revenue.track(EVENT)
        with pytest.raises(RateLimitError) as info:
            await revenue.track({**EVENT, "transaction_id": "tx_2"})
    assert info.value.retry_after == 60


async def test_reset_opens_a_new_rate_limit_window() -> None:
    fake = FakePulsora(rate_limit=(1, 3600))
    async with Revenue(TOKEN, transport=fake.transport) as revenue:
        await revenue.track(EVENT)
        fake.reset()
        result = await revenue.track({**EVENT, "transaction_id": "tx_2"})
    assert result.status_code == 202


async def test_token_list(fake_pulsora: FakePulsora) -> None:
    fake = FakePulsora(tokens={"sec_other_0123456789"})
    async with Revenue(TOKEN, transport=fake.transport) as revenue:
        with pytest.raises(AuthenticationError, match="Invalid API token"):
            await revenue.track(EVENT)


async def test_server_side_validation_is_the_same(fake_pulsora: FakePulsora) -> None:
    """A client that skipped validation would be refused with the same message."""

    async def bypass(request: httpx.Request) -> httpx.Response:
        bad = request.content.replace(b'"amount":49.99', b'"amount":-1')
        return await fake_pulsora.transport.handle_async_request(
            httpx.Request("POST", request.url, headers=request.headers, content=bad)
        )

    async with Revenue(TOKEN, transport=httpx.MockTransport(bypass)) as revenue:
        with pytest.raises(BadRequestError, match="amount must be a positive number"):
            await revenue.track(EVENT)


async def test_delay_beyond_the_deadline_times_out(fake_pulsora: FakePulsora) -> None:
    fake_pulsora.delay_next(5)
    policy = RetryPolicy(max_attempts=1, deadline=0.2)
    async with Revenue(TOKEN, transport=fake_pulsora.transport, retry=policy) as revenue:
        with pytest.raises(Exception, match="deadline"):
            await revenue.track(EVENT)


async def chaos_run(seed: int) -> FakePulsora:
    """Track 50 events through a fake with chaos at 0.3, drawn with *seed*."""
    fake = FakePulsora(seed=seed)
    fake.chaos = 0.3
    policy = RetryPolicy(max_attempts=10, deadline=600)
    async with Revenue(TOKEN, transport=fake.transport, retry=policy) as revenue:
        with fast_retries():
            for n in range(50):
                await revenue.track({**EVENT, "transaction_id": f"tx_{n}"})
    return fake


async def test_chaos_loses_nothing() -> None:
    fake = await chaos_run(seed=7)
    assert sorted(e.transaction_id for e in fake.events) == sorted(f"tx_{n}" for n in range(50))
    assert fake.requests > 50


async def test_a_seed_makes_chaos_draw_the_same_faults() -> None:
    first, again = await chaos_run(seed=7), await chaos_run(seed=7)
    assert [r.status for r in first.rejected] == [r.status for r in again.rejected]
    assert first.requests == again.requests > 50


async def test_clear_faults_ends_them_all_and_keeps_the_events(fake_pulsora: FakePulsora) -> None:
    async with Revenue(TOKEN, transport=fake_pulsora.transport) as revenue:
        await revenue.track(EVENT)
        fake_pulsora.outage(503, seconds=3600)
        fake_pulsora.fail_next(500)
        fake_pulsora.chaos = 1
        fake_pulsora.clear_faults()
        result = await revenue.track({**EVENT, "transaction_id": "tx_2"})
    assert result.attempts == 1
    assert [e.transaction_id for e in fake_pulsora.events] == ["tx_1", "tx_2"]
    assert fake_pulsora.chaos == 0


def test_chaos_must_be_a_share() -> None:
    with pytest.raises(ValueError, match="between 0 and 1"):
        FakePulsora().chaos = 2


async def test_script_and_reset(fake_pulsora: FakePulsora) -> None:
    fake_pulsora.script([Fault(status=500)] * 4)
    async with Revenue(TOKEN, transport=fake_pulsora.transport) as revenue:
        with pytest.raises(ServerError) as info:
            await revenue.track(EVENT)
    assert info.value.attempts == 4
    assert fake_pulsora.events == []
    fake_pulsora.reset()
    assert (fake_pulsora.events, fake_pulsora.rejected, fake_pulsora.requests) == ([], [], 0)


async def test_outage_answers_everything_until_it_ends(fake_pulsora: FakePulsora) -> None:
    fake_pulsora.outage(503, seconds=3)
    policy = RetryPolicy(uniform=lambda low, high: high)  # waits 0.5, 1 and 2 s
    async with Revenue(TOKEN, transport=fake_pulsora.transport, retry=policy) as revenue:
        with fast_retries() as sleeps:
            result = await revenue.track(EVENT)
    assert sum(sleeps) >= 3  # the retries waited the outage out (on the test clock)
    assert result.attempts == len(fake_pulsora.rejected) + 1
    assert {r.status for r in fake_pulsora.rejected} == {503}
