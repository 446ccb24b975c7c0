"""Stripe webhooks: verify the signature, and turn events into revenue events.

No dependency on Stripe's SDK. In a webhook route::

    event = stripe.verify(await request.body(), request.headers.get("Stripe-Signature"),
                          STRIPE_WEBHOOK_SECRET)
    for revenue_event in await stripe.to_revenue_events(event, ledger=ledger):
        await revenue.track(revenue_event)

=================================  ==========================================
Stripe event                       revenue event
=================================  ==========================================
checkout.session.completed         purchase (mode ``payment``, once paid;
 (and .async_payment_succeeded)    the same transaction when paid later)
payment_intent.succeeded           purchase, for a PaymentIntent of no
                                   invoice that carries the attribution
invoice.paid                       the cash of any invoice: subscription,
                                   renewal, upgrade, downgrade or purchase;
                                   with a ledger, the MRR it moved
customer.subscription.*            with a ledger: churn (amount 0) when it
                                   ends or pauses; else only a snapshot.
                                   Without: churn on ``.deleted``
charge.refunded                    refund of the newly refunded part
anything else                      nothing (an empty list)
=================================  ==========================================

A payment's ``transaction_id`` is its PaymentIntent id wherever the payload
names one, so the events that describe one payment agree. Amounts exclude
tax unless ``include_tax=True``, in the object's currency, converted by the
exponent Stripe counts. Attribution and your own ``customer_id`` are read
from the metadata of the object (for invoices, then of its subscription and
lines), under the keys ``visitor_fingerprint`` and ``session_id`` unless
*keys* says otherwise.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

from .._event import RevenueEvent
from .._fields import EventType
from . import _signing
from ._common import DEFAULT_KEYS, Resolver, build, currency
from ._ledger import Ledger
from ._payload import Node
from ._stripe_context import EXPONENTS, Context, customer, extra, guest, money, own_metadata
from ._stripe_subscriptions import invoice_paid, subscription_changed

__all__ = ["EXPONENTS", "sign", "to_revenue_events", "verify"]

_SCHEME = _signing.Scheme("Stripe", "Stripe-Signature", ",", "t", "v1", b".")


def verify(
    payload: bytes | str,
    header: str | None,
    secret: str | Sequence[str],
    *,
    tolerance: float | None = 300,
    now: float | None = None,
) -> Any:
    """Check a ``Stripe-Signature`` header against the raw body, and decode the event.

    The signature is checked before the time, so that a forged request is reported as
    forged, not as late. Every verification failure is a ``WebhookVerificationError``:
    answer it with a 400.

    Args:
        payload: the raw request body, as received (not re-encoded JSON).
        header: the ``Stripe-Signature`` header's value; None when it is absent.
        secret: the endpoint's ``whsec_...`` secret, or several while one is rolled: any
            one may match.
        tolerance: how many seconds the signature's time may be from *now*, in the past
            or the future; 300 by default, as Stripe's. None checks no time, as
            stripe-python.
        now: the current Unix time; None (the default) for the system clock.

    Returns:
        The decoded JSON body: the event, for ``to_revenue_events``.

    Raises:
        MissingSignatureError: when the header is missing or empty.
        MalformedSignatureError: when the header is not in Stripe's format.
        SignatureMismatchError: when no signature in the header matches the body and
            a secret.
        StaleTimestampError: when the signature was made more than *tolerance* seconds
            before or after *now*.
        WebhookPayloadError: when the verified body is not JSON.
        TypeError: when an argument is of the wrong type (a ``dict`` for *payload*).
        ValueError: when an argument's value is impossible (an empty secret, a negative
            tolerance).
    """
    return _signing.verify(_SCHEME, payload, header, secret, tolerance=tolerance, now=now)


def sign(payload: bytes | str, secret: str, *, timestamp: int) -> str:
    """Sign a payload as Stripe does, for tests.

    Args:
        payload: the request body to sign.
        secret: the endpoint secret (``whsec_...``).
        timestamp: the signature's Unix time.

    Returns:
        A valid ``Stripe-Signature`` header value.
    """
    return _signing.sign(_SCHEME, payload, secret, timestamp=timestamp)


async def to_revenue_events(
    event: Mapping[str, Any],
    *,
    resolver: Resolver | None = None,
    ledger: Ledger | None = None,
    include_tax: bool = False,
    keys: tuple[str, str] = DEFAULT_KEYS,
) -> list[RevenueEvent]:
    """Map a verified Stripe event to the revenue events it stands for (often none).

    The events to subscribe to, and what each maps to, are in this module's
    documentation; every other event maps to an empty list.

    Args:
        event: the event, as ``verify`` returns it.
        resolver: an async ``resolver(customer_id)`` that returns
            ``(visitor_fingerprint, session_id)`` or None, asked when the payload's
            metadata has no attribution (renewals, refunds, dashboard events).
        ledger: a ``MemoryLedger`` or ``SQLiteLedger`` that remembers each
            subscription's MRR, so that the ``mrr_impact`` of its events adds up to it;
            without one, each event says only what it can alone.
        include_tax: count tax in ``amount`` (gross volume); by default amounts are
            revenue, without tax.
        keys: the metadata keys of the visitor fingerprint and the session id;
            by default ``("visitor_fingerprint", "session_id")``.

    Returns:
        The revenue events, ready for ``Revenue.track``.

    Raises:
        WebhookPayloadError: when the payload has an unexpected shape (a missing field,
            a null where a number belongs, an unknown currency); ``field`` names the path.
        MissingAttributionError: when an event to track has no visitor fingerprint and
            session id, in its metadata or from the resolver.
        TypeError: when the resolver returns anything but a pair of strings or None.
        ValueError: when the resolver returns blank ids.
    """
    envelope = Node(event)
    kind = envelope.text("type")
    handler = _HANDLERS.get(kind) or _subscription_handler(kind)
    if handler is None:
        return []
    context = Context(
        envelope, resolver=resolver, keys=keys, ledger=ledger, include_tax=include_tax
    )
    return await handler(context)


def _subscription_handler(kind: str) -> Handler | None:
    return subscription_changed if kind.startswith("customer.subscription.") else None


async def _checkout(context: Context) -> list[RevenueEvent]:
    session = context.object
    paid = session.get("payment_status") in ("paid", "no_payment_required")
    if session.get("mode") != "payment" or not paid:
        return []  # subscriptions arrive as invoice.paid; unpaid ones are not revenue yet
    code = currency(session, "currency")
    total = session.integer("amount_total")
    if total <= 0:
        return []  # a free checkout is not revenue
    payment_intent = session.id("payment_intent")
    payment = payment_intent or session.text("id")
    details = session.maybe_child("total_details")
    tax = (details.maybe_integer("amount_tax") if details else None) or 0
    if details is not None and not 0 <= tax <= total:
        raise details.wrong("amount_tax", f"an amount from 0 to amount_total ({total})", tax)
    amount = await context.revenue(payment, total, tax)
    sources = own_metadata(session)
    customer_id = (
        customer(session, sources) or session.maybe_text("client_reference_id") or guest(payment)
    )
    return [
        build(
            session.path,
            **await context.attribution(sources, customer_id),
            **context.common(),
            customer_id=customer_id,
            amount=money(amount, code),
            currency=code,
            transaction_id=payment,
            event_type=EventType.PURCHASE,
            metadata=extra(stripe_checkout_session=session.text("id")),
        )
    ]


async def _payment_intent(context: Context) -> list[RevenueEvent]:
    """A PaymentIntent you made yourself, outside Checkout and invoices: a purchase.

    An invoice's PaymentIntent is its invoice's (``invoice.paid``). From API
    2025-03-31 a PaymentIntent no longer names its invoice, so only one whose
    own metadata carries the attribution keys is taken as a payment of its own.
    """
    intent = context.object
    sources = own_metadata(intent)
    if _of_invoice(intent) or not context.has_attribution(sources):
        return []
    code = currency(intent, "currency")
    received = intent.integer("amount_received")
    if received <= 0:
        return []
    payment = intent.text("id")
    amount = await context.revenue(payment, received, 0)  # a Checkout Session may know its tax
    customer_id = customer(intent, sources) or guest(payment)
    return [
        build(
            intent.path,
            **await context.attribution(sources, customer_id),
            **context.common(),
            customer_id=customer_id,
            amount=money(amount, code),
            currency=code,
            transaction_id=payment,
            event_type=EventType.PURCHASE,
        )
    ]


def _of_invoice(intent: Node) -> bool:
    """Whether a PaymentIntent pays an invoice: it says so before 2025-03-31, or after by
    ``payment_details.order_reference`` (an invoice id)."""
    if intent.get("invoice") is not None:
        return True
    details = intent.maybe_child("payment_details")
    reference = details.get("order_reference") if details else None
    return isinstance(reference, str) and reference.startswith("in_")


async def _refunded(context: Context) -> list[RevenueEvent]:
    charge = context.object
    refunded = charge.integer("amount_refunded")
    previous = context.data.maybe_child("previous_attributes")
    refunds = charge.maybe_child("refunds")
    if previous is not None and previous.get("amount_refunded") is not None:
        before = previous.integer("amount_refunded")
    elif refunds is not None and refunds.items("data"):
        before = refunded - refunds.items("data")[0].integer("amount")  # newest first
    else:
        before = 0
    if refunded - before <= 0:
        return []
    code = currency(charge, "currency")
    charge_id = charge.text("id")
    payment_intent = charge.id("payment_intent")
    payment = payment_intent or charge_id
    taken_back = await context.refunded(payment, before, refunded)
    if taken_back <= 0:
        return []  # only tax was refunded: no revenue taken back
    sources = own_metadata(charge)
    customer_id = customer(charge, sources) or guest(payment)
    return [
        build(
            charge.path,
            **await context.attribution(sources, customer_id),
            **context.common(),
            customer_id=customer_id,
            amount=money(-taken_back, code),
            currency=code,
            transaction_id=f"{charge_id}:refund:{refunded}",
            event_type=EventType.REFUND,
            metadata=extra(original_charge=charge_id, stripe_payment_intent=payment_intent),
        )
    ]


Handler = Callable[[Context], Awaitable[list[RevenueEvent]]]

_HANDLERS: Mapping[str, Handler] = {
    "checkout.session.completed": _checkout,
    "checkout.session.async_payment_succeeded": _checkout,  # paid later (bank debits)
    "payment_intent.succeeded": _payment_intent,
    "invoice.paid": invoice_paid,
    "charge.refunded": _refunded,
}
