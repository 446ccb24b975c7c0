"""Type-checked by mypy, never run: pins the types of the public API."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import httpx

from pulsora_revenue import (
    Attempt,
    Delivery,
    DeliveryOutcome,
    EventType,
    Hooks,
    OutboxChange,
    OutboxChangeKind,
    RateLimitError,
    RetryPolicy,
    Revenue,
    RevenueEvent,
    TrackResult,
    ValidationError,
    currency_exponent,
    from_minor_units,
    to_minor_units,
)

event = RevenueEvent(
    visitor_fingerprint="fp",
    session_id="s",
    customer_id="c",
    amount=Decimal("1.00"),
    transaction_id="t",
    event_type=EventType.PURCHASE,
)
amount: Decimal = event.amount
kind: EventType | None = event.event_type
policy = RetryPolicy(max_attempts=2, initial_delay=timedelta(seconds=1), deadline=5.0)
revenue = Revenue(
    "sec_x", retry=policy, transport=httpx.MockTransport(lambda r: httpx.Response(202))
)
exponent: int = currency_exponent("usd")
major: Decimal = from_minor_units(9999, "usd")
minor: int = to_minor_units(major, "usd")


async def track() -> None:
    async with Revenue() as client:
        result: TrackResult = await client.track(event)
        result = await client.track({"amount": "1"})
        result = await client.track(amount="1", transaction_id="t")
        seconds: float = result.elapsed
        attempts: int = result.attempts
        duplicate: bool = result.duplicate
        status: int | None = result.status_code
    try:
        pass
    except ValidationError as exc:
        paths: list[str] = [e.path for e in exc.errors]
    except RateLimitError as exc:
        wait: float | None = exc.retry_after


async def webhooks(payload: bytes, header: str) -> None:
    from pulsora_revenue.webhooks import Ledger, MemoryLedger, SQLiteLedger, paddle, stripe

    ledger: Ledger = MemoryLedger()
    async with SQLiteLedger("ledger.sqlite") as on_disk:
        ledger = on_disk
    event = stripe.verify(payload, header, "whsec_x", tolerance=None)
    events: list[RevenueEvent] = await stripe.to_revenue_events(
        event, ledger=ledger, include_tax=True
    )
    event = paddle.verify(payload, header, ["pdl_a", "pdl_b"], tolerance=5.0)
    events = await paddle.to_revenue_events(event, ledger=ledger)


class Counting(Hooks):
    def on_attempt(self, attempt: Attempt) -> None:
        number: int = attempt.number
        status: int | None = attempt.status_code
        error: str | None = attempt.error
        wait: float | None = attempt.wait
        seconds: float = attempt.duration + attempt.elapsed

    def on_delivery(self, delivery: Delivery) -> None:
        outcome: DeliveryOutcome = delivery.outcome
        failure: Exception | None = delivery.error
        sent: RevenueEvent = delivery.event

    def on_outbox(self, change: OutboxChange) -> None:
        kind: OutboxChangeKind = change.change
        depth: int | None = change.depth
        queued: RevenueEvent | None = change.event


async def observed() -> None:
    from pulsora_revenue.otel import OpenTelemetryHooks

    async with Revenue(hooks=[Counting(), OpenTelemetryHooks()]) as client:
        await client.track(event)
