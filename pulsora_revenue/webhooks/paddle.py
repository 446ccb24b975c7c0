"""Paddle Billing webhooks: verify the signature, and turn events into revenue events.

No dependency on Paddle's SDK. In a webhook route::

    event = paddle.verify(await request.body(), request.headers.get("Paddle-Signature"),
                          PADDLE_WEBHOOK_SECRET)
    for revenue_event in await paddle.to_revenue_events(event, resolver=lookup):
        await revenue.track(revenue_event)

=================================  ==========================================
Paddle event                       revenue event
=================================  ==========================================
transaction.completed              purchase (no subscription, or a one-off
                                   charge on one), subscription (its first
                                   transaction) or renewal
adjustment.created / .updated      refund, once an adjustment with action
                                   ``refund`` is ``approved``
subscription.canceled              churn (amount 0, negative MRR)
anything else                      nothing (an empty list)
=================================  ==========================================

Paddle sends amounts as strings of minor units; they are converted by the
currency's ISO 4217 exponent. Attribution comes from ``custom_data`` under the
keys ``visitor_fingerprint`` and ``session_id`` unless *keys* says otherwise.
Adjustments carry no ``custom_data``: refunds need the resolver.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from fractions import Fraction
from typing import Any

from .._event import RevenueEvent
from .._fields import EventType
from .._money import currency_exponent
from . import _signing
from ._common import DEFAULT_KEYS, Resolver, attribute, build, currency, major, moment, monthly
from ._payload import Node

__all__ = ["SCHEME", "sign", "to_revenue_events", "verify"]

SCHEME = _signing.Scheme("Paddle", "Paddle-Signature", ";", "ts", "h1", b":")

PROCESSOR = "paddle"

#: ``await attribution(customer_id)``: the attribution and common fields of an event.
Attribution = Callable[[str], Awaitable[dict[str, Any]]]

_ORIGINS = {
    "web": EventType.SUBSCRIPTION,  # the checkout that created the subscription
    "api": EventType.SUBSCRIPTION,
    "subscription_recurring": EventType.RENEWAL,
    "subscription_charge": EventType.PURCHASE,  # a one-off charge on a subscription
}


def verify(
    payload: bytes | str,
    header: str | None,
    secret: str | Sequence[str],
    *,
    tolerance: float = 300,
    now: float | None = None,
) -> Any:
    """Check a ``Paddle-Signature`` header against the raw body; return the event.

    *secret* is the notification destination's secret key (``pdl_ntfset_...``),
    or several while one is rotated. Raises a ``WebhookVerificationError``
    subclass when the header is missing, malformed, outside *tolerance*
    seconds of *now*, or matches no secret.
    """
    return _signing.verify(SCHEME, payload, header, secret, tolerance=tolerance, now=now)


def sign(payload: bytes | str, secret: str, *, timestamp: int) -> str:
    """A valid ``Paddle-Signature`` value for *payload*, for tests."""
    return _signing.sign(SCHEME, payload, secret, timestamp=timestamp)


async def to_revenue_events(
    event: Mapping[str, Any],
    *,
    resolver: Resolver | None = None,
    keys: tuple[str, str] = DEFAULT_KEYS,
) -> list[RevenueEvent]:
    """The revenue events that a verified Paddle Billing *event* stands for (often none)."""
    envelope = Node(event)
    kind = envelope.text("event_type")
    data = envelope.child("data")
    occurred = moment(envelope.get("occurred_at"), "occurred_at")
    common: dict[str, Any] = {"payment_processor": PROCESSOR, "occurred_at": occurred}

    async def attribution(customer_id: str) -> dict[str, str]:
        sources = [(f"{data.path}.custom_data", data.metadata("custom_data"))]
        fingerprint, session = await attribute(
            sources, customer_id=customer_id, resolver=resolver, keys=keys
        )
        return {"visitor_fingerprint": fingerprint, "session_id": session, **common}

    if kind == "transaction.completed":
        return await _transaction(data, attribution)
    if kind in ("adjustment.created", "adjustment.updated"):
        return await _adjustment(data, attribution)
    if kind == "subscription.canceled":
        return await _canceled(data, attribution)
    return []


async def _transaction(data: Node, attribution: Attribution) -> list[RevenueEvent]:
    subscription = data.maybe_text("subscription_id")
    kind = EventType.PURCHASE if subscription is None else _ORIGINS.get(str(data.get("origin")))
    if kind is None:
        return []  # an update's proration or a payment method change: no new revenue
    code = currency(data, "currency_code")
    exponent = currency_exponent(code)
    totals = data.child("details").child("totals")
    amount = major(totals.minor_units("grand_total"), exponent)
    if amount <= 0:
        return []  # a free or fully credited transaction is no revenue
    customer = data.text("customer_id")
    mrr = None
    if kind is EventType.SUBSCRIPTION:
        monthly_minor = _items_mrr(data.items("items"), code, data.child("details"))
        mrr = None if monthly_minor is None else major(monthly_minor, exponent)
    return [
        build(
            data.path,
            **await attribution(customer),
            customer_id=customer,
            amount=amount,
            currency=code,
            transaction_id=data.text("id"),
            event_type=kind,
            customer_subscription_id=subscription,
            mrr_impact=mrr,
            is_recurring=None if subscription is None else kind is not EventType.PURCHASE,
        )
    ]


def _items_mrr(items: list[Node], code: str, details: Node | None = None) -> Fraction | None:
    """The monthly amount, in minor units, of the recurring items; None if unknown.

    A price is in Paddle's base currency; a transaction in another currency
    (a localised price) has the unit price in its own currency in
    ``details.line_items``. Without that, the ``unit_price_overrides`` in *code*
    give it, if they agree on one amount; else the amount in *code* is unknown.
    """
    lines = (
        {str(line.get("price_id")): line for line in details.items("line_items")} if details else {}
    )
    total = Fraction(0)
    for item in items:
        price = item.child("price")
        cycle = price.maybe_child("billing_cycle")
        if cycle is None:
            continue  # a one-time item
        unit = _unit_price(price, code, lines.get(str(price.get("id"))))
        if unit is None:
            return None
        quantity = item.integer("quantity")
        total += monthly(
            unit * quantity, cycle.text("interval"), cycle.integer("frequency"), cycle.path
        )
    return total


def _unit_price(price: Node, code: str, line: Node | None) -> int | None:
    """The unit price in minor units of *code*: the base price's, the line's, or an override's."""
    unit_price = price.child("unit_price")
    if unit_price.get("currency_code") in (None, code):
        return unit_price.minor_units("amount")
    if line is not None:
        return line.child("unit_totals").minor_units("subtotal")
    overrides = {
        override.child("unit_price").minor_units("amount")
        for override in price.items("unit_price_overrides")
        if override.child("unit_price").get("currency_code") == code
    }
    return overrides.pop() if len(overrides) == 1 else None  # several amounts: which country?


async def _adjustment(data: Node, attribution: Attribution) -> list[RevenueEvent]:
    if data.get("action") != "refund" or data.get("status") != "approved":
        return []  # a credit or a chargeback, or a refund not approved (yet)
    totals = data.child("totals")
    code = (
        currency(totals, "currency_code")
        if totals.get("currency_code")
        else currency(data, "currency_code")
    )
    amount = major(totals.minor_units("total"), currency_exponent(code))
    if amount <= 0:
        return []
    customer = data.text("customer_id")
    return [
        build(
            data.path,
            **await attribution(customer),
            customer_id=customer,
            amount=-amount,
            currency=code,
            transaction_id=data.text("id"),
            event_type=EventType.REFUND,
            customer_subscription_id=data.maybe_text("subscription_id"),
            metadata={"original_transaction": data.text("transaction_id")},
        )
    ]


async def _canceled(data: Node, attribution: Attribution) -> list[RevenueEvent]:
    code = currency(data, "currency_code")
    lost_minor = _items_mrr(data.items("items"), code)
    lost = None if lost_minor is None else major(-lost_minor, currency_exponent(code))
    customer = data.text("customer_id")
    subscription = data.text("id")
    return [
        build(
            data.path,
            **await attribution(customer),
            customer_id=customer,
            amount=0,
            currency=code,
            transaction_id=subscription,
            event_type=EventType.CHURN,
            customer_subscription_id=subscription,
            mrr_impact=lost,
            is_recurring=True,
        )
    ]
