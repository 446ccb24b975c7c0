"""Stripe webhooks: verify the signature, and turn events into revenue events.

No dependency on Stripe's SDK. In a webhook route::

    event = stripe.verify(await request.body(), request.headers.get("Stripe-Signature"),
                          STRIPE_WEBHOOK_SECRET)
    for revenue_event in await stripe.to_revenue_events(event, resolver=lookup):
        await revenue.track(revenue_event)

=================================  ==========================================
Stripe event                       revenue event
=================================  ==========================================
checkout.session.completed         purchase (mode ``payment``, once paid;
 (and .async_payment_succeeded)    the same transaction when paid later)
invoice.paid                       subscription (``subscription_create``) or
                                   renewal (``subscription_cycle``)
customer.subscription.updated      upgrade or downgrade, when the monthly
                                   amount changed (price or quantity)
customer.subscription.deleted      churn (amount 0, negative MRR)
charge.refunded                    refund of the newly refunded part
anything else                      nothing (an empty list)
=================================  ==========================================

Amounts are in the object's currency (a price in another one counts through
its ``currency_options``), converted by the exponent Stripe counts. The
visitor fingerprint, session id and your own ``customer_id`` are read from the
metadata of the object (for invoices, then of its subscription and lines),
under the keys ``visitor_fingerprint`` and ``session_id`` unless *keys* says otherwise.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from .._event import RevenueEvent
from .._fields import EventType
from .._money import currency_exponent
from . import _signing
from ._common import DEFAULT_KEYS, Resolver, attribute, build, currency, major, moment
from ._payload import Node
from ._stripe_prices import invoice_mrr, items_mrr

__all__ = ["SCHEME", "sign", "to_revenue_events", "verify"]

SCHEME = _signing.Scheme("Stripe", "Stripe-Signature", ",", "t", "v1", b".")

#: Where Stripe counts decimals differently from ISO 4217 (docs.stripe.com/currencies).
EXPONENTS: Mapping[str, int] = {"ISK": 2, "MGA": 0}

PROCESSOR = "stripe"

#: Metadata to look in, in order, each with its path: for your own customer id,
#: the visitor fingerprint and the session id.
Sources = list[tuple[str, Mapping[str, Any]]]


def verify(
    payload: bytes | str,
    header: str | None,
    secret: str | Sequence[str],
    *,
    tolerance: float = 300,
    now: float | None = None,
) -> Any:
    """Check a ``Stripe-Signature`` header against the raw body; return the event.

    *secret* is the endpoint's ``whsec_...`` secret (or several, while one is
    rolled). Raises a ``WebhookVerificationError`` subclass when the header is
    missing, malformed, too old or too new (beyond *tolerance* seconds of
    *now*), or matches no secret.
    """
    return _signing.verify(SCHEME, payload, header, secret, tolerance=tolerance, now=now)


def sign(payload: bytes | str, secret: str, *, timestamp: int) -> str:
    """A valid ``Stripe-Signature`` value for *payload*, for tests."""
    return _signing.sign(SCHEME, payload, secret, timestamp=timestamp)


async def to_revenue_events(
    event: Mapping[str, Any],
    *,
    resolver: Resolver | None = None,
    keys: tuple[str, str] = DEFAULT_KEYS,
) -> list[RevenueEvent]:
    """The revenue events that a verified Stripe *event* stands for (often none)."""
    envelope = Node(event)
    kind = envelope.text("type")
    handler = _HANDLERS.get(kind)
    if handler is None:
        return []
    return await handler(_Context(envelope, resolver, keys))


class _Context:
    """One event being mapped: its envelope, object, and attribution settings."""

    def __init__(self, envelope: Node, resolver: Resolver | None, keys: tuple[str, str]) -> None:
        self.envelope, self.resolver, self.keys = envelope, resolver, keys
        self.data = envelope.child("data")
        self.object = self.data.child("object")

    async def attribution(
        self, sources: Sequence[tuple[str, Mapping[str, Any]]], customer_id: str | None
    ) -> dict[str, str]:
        fingerprint, session = await attribute(
            sources, customer_id=customer_id, resolver=self.resolver, keys=self.keys
        )
        return {"visitor_fingerprint": fingerprint, "session_id": session}

    def common(self) -> dict[str, Any]:
        return {
            "payment_processor": PROCESSOR,
            "occurred_at": moment(self.envelope.get("created"), "created"),
        }


def _exponent(code: str) -> int:
    return EXPONENTS.get(code, currency_exponent(code))


def _customer(node: Node, sources: Sources) -> str | None:
    """Your own ``customer_id`` from the first metadata that has one, else Stripe's customer."""
    for _, metadata in sources:
        own = metadata.get("customer_id")
        if isinstance(own, str) and own:
            return own
    return node.id("customer")


def _own_metadata(node: Node) -> Sources:
    return [(f"{node.path}.metadata", node.metadata("metadata"))]


async def _checkout(context: _Context) -> list[RevenueEvent]:
    session = context.object
    paid = session.get("payment_status") in ("paid", "no_payment_required")
    if session.get("mode") != "payment" or not paid:
        return []  # subscriptions arrive as invoice.paid; unpaid ones are not revenue yet
    code = currency(session, "currency")
    amount = major(session.integer("amount_total"), _exponent(code))
    if not amount:
        return []  # a free checkout is not revenue
    sources = _own_metadata(session)
    payment_intent = session.id("payment_intent")
    customer = (
        _customer(session, sources)
        or session.maybe_text("client_reference_id")
        or _guest(payment_intent or session.text("id"))
    )
    extra = {"stripe_payment_intent": payment_intent}
    return [
        build(
            session.path,
            **await context.attribution(sources, customer),
            **context.common(),
            customer_id=customer,
            amount=amount,
            currency=code,
            transaction_id=session.text("id"),
            event_type=EventType.PURCHASE,
            metadata={k: v for k, v in extra.items() if v},
        )
    ]


_INVOICE_KINDS = {
    "subscription_create": EventType.SUBSCRIPTION,
    "subscription_cycle": EventType.RENEWAL,
}


async def _invoice(context: _Context) -> list[RevenueEvent]:
    invoice = context.object
    kind = _INVOICE_KINDS.get(str(invoice.get("billing_reason")))
    if kind is None:
        return []  # updates arrive as customer.subscription.updated; others are not ours
    code = currency(invoice, "currency")
    exponent = _exponent(code)
    amount = major(invoice.integer("amount_paid"), exponent)
    if not amount:
        return []  # a trial or a fully discounted invoice is no revenue
    parent = invoice.maybe_child("parent")
    details = parent.maybe_child("subscription_details") if parent else None
    legacy = invoice.maybe_child("subscription_details")
    subscription = (details.id("subscription") if details else None) or invoice.id("subscription")
    lines = invoice.maybe_child("lines")
    sources = _own_metadata(invoice)
    for where in (details, legacy):
        if where is not None:
            sources.append((f"{where.path}.metadata", where.metadata("metadata")))
    for line in lines.items("data") if lines else []:
        sources.append((f"{line.path}.metadata", line.metadata("metadata")))
    customer = _customer(invoice, sources)
    mrr = invoice_mrr(lines, code, exponent) if kind is EventType.SUBSCRIPTION else None
    return [
        build(
            invoice.path,
            **await context.attribution(sources, customer),
            **context.common(),
            customer_id=_required(invoice, customer),
            amount=amount,
            currency=code,
            transaction_id=invoice.text("id"),
            event_type=kind,
            customer_subscription_id=subscription,
            mrr_impact=mrr,
            is_recurring=True,
        )
    ]


async def _subscription_updated(context: _Context) -> list[RevenueEvent]:
    subscription = context.object
    previous = context.data.maybe_child("previous_attributes")
    if previous is None:
        return []
    items = subscription.child("items").items("data")
    if previous.maybe_child("items") is not None:
        old_items = previous.child("items").items("data")
    elif "quantity" in previous.value and len(items) == 1:
        old_item = dict(items[0].value, quantity=previous.get("quantity"))
        old_items = [Node(old_item, items[0].path)]
    else:
        return []  # not a change of price or quantity
    if not items:
        return []
    code = currency(subscription, "currency")
    exponent = _exponent(code)
    new_minor, old_minor = items_mrr(items, code), items_mrr(old_items, code)
    if new_minor is None or old_minor is None:
        return []  # tiered prices: the monthly amount is not in the payload
    new_rounded, old_rounded = round(new_minor), round(old_minor)  # half to even, as in major()
    new, old = major(new_rounded, exponent), major(old_rounded, exponent)
    if new == old:
        return []  # a renewal or a flag changed, not the amount
    sources = _own_metadata(subscription)
    customer = _customer(subscription, sources)
    fields: dict[str, Any] = {
        **await context.attribution(sources, customer),
        **context.common(),
        "customer_id": _required(subscription, customer),
        "currency": code,
        "transaction_id": context.envelope.text("id"),
        "customer_subscription_id": subscription.text("id"),
        "mrr_impact": major(new_rounded - old_rounded, exponent),  # new - old, exactly
        "is_recurring": True,
    }
    if not new:  # down to nothing: that is churn
        return [build(subscription.path, **fields, amount=0, event_type=EventType.CHURN)]
    kind = EventType.UPGRADE if new > old else EventType.DOWNGRADE
    return [build(subscription.path, **fields, amount=new, event_type=kind)]


async def _subscription_deleted(context: _Context) -> list[RevenueEvent]:
    subscription = context.object
    items = subscription.child("items").items("data")
    if not items:
        return []
    code = currency(subscription, "currency")
    lost_minor = items_mrr(items, code)
    lost = None if lost_minor is None else major(-lost_minor, _exponent(code))
    sources = _own_metadata(subscription)
    customer = _customer(subscription, sources)
    return [
        build(
            subscription.path,
            **await context.attribution(sources, customer),
            **context.common(),
            customer_id=_required(subscription, customer),
            amount=0,
            currency=code,
            transaction_id=subscription.text("id"),
            event_type=EventType.CHURN,
            customer_subscription_id=subscription.text("id"),
            mrr_impact=lost,
            is_recurring=True,
        )
    ]


async def _refunded(context: _Context) -> list[RevenueEvent]:
    charge = context.object
    refunded = charge.integer("amount_refunded")
    previous = context.data.maybe_child("previous_attributes")
    refunds = charge.maybe_child("refunds")
    if previous is not None and previous.get("amount_refunded") is not None:
        new = refunded - previous.integer("amount_refunded")
    elif refunds is not None and refunds.items("data"):
        new = refunds.items("data")[0].integer("amount")  # newest first
    else:
        new = refunded
    if new <= 0:
        return []
    code = currency(charge, "currency")
    sources = _own_metadata(charge)
    charge_id = charge.text("id")
    payment_intent = charge.id("payment_intent")
    customer = _customer(charge, sources) or _guest(payment_intent or charge_id)
    extra = {"original_charge": charge_id, "stripe_payment_intent": payment_intent}
    return [
        build(
            charge.path,
            **await context.attribution(sources, customer),
            **context.common(),
            customer_id=customer,
            amount=major(-new, _exponent(code)),
            currency=code,
            transaction_id=f"{charge_id}:refund:{refunded}",
            event_type=EventType.REFUND,
            metadata={k: v for k, v in extra.items() if v},
        )
    ]


def _guest(payment: str) -> str:
    """The customer id of a payment made without a Stripe customer (a guest checkout).

    Stripe creates no customer for most one-off payments; the payment's own id
    stands in, so that the purchase and a later refund of it agree.
    """
    return f"guest:{payment}"


def _required(node: Node, customer: str | None) -> str:
    if customer is None:
        raise node.wrong("customer", "a customer id", None)
    return customer


_HANDLERS = {
    "checkout.session.completed": _checkout,
    "checkout.session.async_payment_succeeded": _checkout,  # paid later (bank debits)
    "invoice.paid": _invoice,
    "customer.subscription.updated": _subscription_updated,
    "customer.subscription.deleted": _subscription_deleted,
    "charge.refunded": _refunded,
}
