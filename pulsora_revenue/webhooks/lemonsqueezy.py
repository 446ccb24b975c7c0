"""Lemon Squeezy webhooks: verify the signature, and turn events into revenue events.

No dependency on a Lemon Squeezy SDK. In a webhook route::

    event = lemonsqueezy.verify(await request.body(), request.headers.get("X-Signature"),
                                LEMONSQUEEZY_SIGNING_SECRET)
    for revenue_event in await lemonsqueezy.to_revenue_events(
        event, resolver=lookup, ledger=ledger, prices=PRICES
    ):
        await revenue.track(revenue_event)

Each event to subscribe to, and what it maps to with a ledger (and without one,
where that differs):

- ``order_created`` (paid): purchase. Nothing for a subscription's order,
  told by its price in *prices*: the first payment is its ``initial`` invoice.
- ``subscription_payment_success``, by ``billing_reason``:
    - ``initial`` (the first payment): subscription, with the MRR moved
      (without a ledger: no MRR). Without *prices*, nothing: the order was the
      payment.
    - ``renewal``: renewal; if the MRR moved: subscription, upgrade or downgrade
      (without a ledger: renewal, no MRR).
    - ``updated`` (a plan change's proration): upgrade, or downgrade if the MRR
      fell, with the MRR moved (without a ledger: upgrade, no MRR).
- ``order_refunded``, ``subscription_payment_refunded``: refund (negative) of
  what was newly refunded (without a ledger: of the amount refunded so far,
  once per order or invoice). Nothing for a subscription's order; without
  *prices*, nothing for an ``initial`` invoice (its order's refund says it).
- ``subscription_expired``: churn (amount 0) of the MRR reported (without a
  ledger: of its item's MRR, unless it ended in its trial).
- ``subscription_paused``: churn of the MRR reported, once per pause (without
  a ledger: of its item's MRR).
- ``subscription_created``, ``_updated``, ``_cancelled``, ``_resumed``,
  ``_unpaused``: nothing; the ledger keeps the state, and an MRR change rides
  on the next payment, pause or end (without a ledger: nothing).
- anything else: nothing.

``amount`` is what the customer paid, net of discounts, without tax (``total``
less ``tax``); a refund is the ``refunded_amount`` less its share of the tax,
so that a full refund nets its payment out. ``include_tax=True`` counts tax in
both. Amounts are integers of minor units, converted by the currency's ISO
4217 exponent (a JPY ``total`` of 1000 is 1000 yen). Lemon Squeezy sends the
refunded amount so far: with a ledger each refund reports what is new, so that
partial refunds add up; without one, only the first notification of a refund
counts. Transaction ids are the resource's type and id (``orders:1``,
``subscription-invoices:7``, ``subscriptions:3`` for its end).

A cancelled subscription still bills until its period ends, then it expires:
``subscription_cancelled`` is no churn, ``subscription_expired`` is.

MRR needs *prices*: Lemon Squeezy's subscription webhooks name the price
(``first_subscription_item.price_id``) and quantity, never its amount or
interval. Pass ``prices={price_id: Price(...)}`` (``Price.from_api`` builds one
from the API's price object); MRR is the unit price times quantity,
normalised to a month from the interval and its count, without tax, at list
price (the payloads do not say a subscription's discount), in the price's
currency. Without a price, a subscription's MRR is unknown: nothing is added,
and its end subtracts nothing. *prices* also tells a subscription's order from
a one-time purchase. Without it, each first payment is counted once, as its
order's purchase (the ``initial`` invoice then maps to nothing); with it, as
the ``initial`` invoice's subscription event.

A ledger (``MemoryLedger``, ``SQLiteLedger``) is told every subscription's
state and payments, and the MRR telescopes; an older state arriving late is
not applied. Lemon Squeezy sends no event id: a notification is known by its
event name, resource and ``updated_at``, so a redelivery gets the same answer.

Attribution comes from ``meta.custom_data`` (what checkout's
``checkout_data[custom]`` carries) under the keys ``visitor_fingerprint`` and
``session_id`` unless *keys* says otherwise, then from the resolver, asked with
the Lemon Squeezy ``customer_id``. Events that map to nothing need no
attribution.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from decimal import Decimal
from fractions import Fraction
from typing import Any

from .._event import RevenueEvent
from .._fields import EventType
from .._money import currency_exponent
from . import _lemonsqueezy_signing
from ._common import (
    DEFAULT_KEYS,
    Resolver,
    build,
    currency,
    impact,
    major,
    moved_kind,
    net_of_tax,
)
from ._ledger import Ledger
from ._lemonsqueezy_context import REFUNDS, Context, as_of, ident
from ._lemonsqueezy_prices import BILLING, Price, item_mrr, recurring
from ._payload import Node

__all__ = ["Price", "sign", "to_revenue_events", "verify"]


#: A paid subscription invoice's type when the MRR did not move, by ``billing_reason``.
_INVOICES: Mapping[str, EventType] = {
    "initial": EventType.SUBSCRIPTION,
    "renewal": EventType.RENEWAL,
    "updated": EventType.UPGRADE,  # a plan change's proration
}

#: An order's statuses once it was paid (a refund changes the status, not the payment).
_PAID = frozenset({"paid", "refunded", "partial_refund"})

_SNAPSHOT_KINDS = "created updated cancelled resumed expired paused unpaused"
_SNAPSHOTS = frozenset(f"subscription_{kind}" for kind in _SNAPSHOT_KINDS.split())


def verify(payload: bytes | str, signature: str | None, secret: str | Sequence[str]) -> Any:
    """Check an ``X-Signature`` header against the raw body, and decode the event.

    Lemon Squeezy signs the raw body with HMAC-SHA256 under the webhook's signing
    secret and sends the hex digest; it signs no time, so a replay cannot be told
    from a redelivery (the ledger answers both alike). Every verification failure is
    a ``WebhookVerificationError``: answer it with a 400.

    Args:
        payload: the raw request body, as received (not re-encoded JSON).
        signature: the ``X-Signature`` header's value; None when it is absent.
        secret: the webhook's signing secret, or several while one is rotated: any
            one may match.

    Returns:
        The decoded JSON body: the event, for ``to_revenue_events``.

    Raises:
        MissingSignatureError: when the header is missing or empty.
        MalformedSignatureError: when the header is not 64 hex digits.
        SignatureMismatchError: when the signature matches the body under no secret.
        WebhookPayloadError: when the verified body is not JSON.
        TypeError: when an argument is of the wrong type (a ``dict`` for *payload*).
        ValueError: when a secret is empty.
    """
    return _lemonsqueezy_signing.verify(payload, signature, secret)


def sign(payload: bytes | str, secret: str) -> str:
    """Sign a payload as Lemon Squeezy does, for tests.

    Args:
        payload: the request body to sign.
        secret: the webhook's signing secret.

    Returns:
        A valid ``X-Signature`` header value.
    """
    return _lemonsqueezy_signing.sign(payload, secret)


async def to_revenue_events(
    event: Mapping[str, Any],
    *,
    resolver: Resolver | None = None,
    ledger: Ledger | None = None,
    include_tax: bool = False,
    keys: tuple[str, str] = DEFAULT_KEYS,
    prices: Mapping[Any, Price] | None = None,
) -> list[RevenueEvent]:
    """Map a verified Lemon Squeezy event to the revenue events it stands for (often none).

    The events to subscribe to, and what each maps to, are in this module's
    documentation; every other event maps to an empty list.

    Args:
        event: the event, as ``verify`` returns it.
        resolver: an async ``resolver(customer_id)`` that returns
            ``(visitor_fingerprint, session_id)`` or None, asked when
            ``meta.custom_data`` has no attribution (renewals made off-session do not).
        ledger: a ``MemoryLedger`` or ``SQLiteLedger``: pass the same one for every
            event, so that the MRR telescopes and partial refunds add up; without one,
            each event says only what it can alone.
        include_tax: count tax in ``amount`` (of payments and refunds); by default
            amounts are revenue, without tax.
        keys: the ``custom_data`` keys of the visitor fingerprint and the session id;
            by default ``("visitor_fingerprint", "session_id")``.
        prices: the store's subscription prices by price id (int or str), for the MRR
            and to tell a subscription's order; without them the MRR is unknown.

    Returns:
        The revenue events, ready for ``Revenue.track``.

    Raises:
        WebhookPayloadError: when the payload has an unexpected shape (a missing field,
            a null where a number belongs, an unknown currency); ``field`` names the path.
        MissingAttributionError: when an event to track has no visitor fingerprint and
            session id, in ``meta.custom_data`` or from the resolver.
        TypeError: when the resolver returns anything but a pair of strings or None.
        ValueError: when the resolver returns blank ids.
    """
    context = Context(Node(event), resolver, ledger, include_tax, keys, prices)
    if context.kind == "order_created":
        return await _order(context)
    if context.kind == "subscription_payment_success":
        return await _invoice(context)
    if context.kind in REFUNDS:
        return await _refund(context)
    if context.kind in _SNAPSHOTS:
        return await _snapshot(context)
    return []


async def _order(context: Context) -> list[RevenueEvent]:
    order = context.attributes
    if order.get("status") not in _PAID or _subscription_order(context):
        return []  # unpaid; or a subscription's, whose first payment is its initial invoice
    code = currency(order, "currency")
    amount = major(_paid(context, order), currency_exponent(code))
    if amount <= 0:
        return []
    return [
        build(
            context.data.path,
            **await context.fields("created_at"),
            amount=amount,
            currency=code,
            transaction_id=context.resource,
            event_type=EventType.PURCHASE,
        )
    ]


async def _invoice(context: Context) -> list[RevenueEvent]:
    invoice = context.attributes
    if _order_paid_it(context):
        return []  # its order_created is the payment
    subscription = ident(invoice, "subscription_id")
    code = currency(invoice, "currency")
    amount = major(_paid(context, invoice), currency_exponent(code))
    otherwise = _INVOICES.get(str(invoice.get("billing_reason")), EventType.PURCHASE)
    # An invoice says nothing of the MRR: it settles what the snapshots said.
    movement = await context.observe(subscription, None, settle=amount > 0)
    if amount <= 0:
        return []
    kind = otherwise if movement is None else moved_kind(movement, otherwise)
    return [
        build(
            context.data.path,
            **await context.fields("created_at"),
            amount=amount,
            currency=code,
            transaction_id=context.resource,
            event_type=kind,
            customer_subscription_id=subscription,
            mrr_impact=impact(movement),
            is_recurring=otherwise is not EventType.PURCHASE,
        )
    ]


async def _refund(context: Context) -> list[RevenueEvent]:
    paid = context.attributes
    if context.kind == "order_refunded" and _subscription_order(context):
        return []  # its payment was the initial invoice, whose refund reports it
    if context.kind == "subscription_payment_refunded" and _order_paid_it(context):
        return []  # its payment was the order, whose refund (order_refunded) reports it
    code = currency(paid, "currency")
    exponent = currency_exponent(code)
    so_far = major(_refunded(context, paid), exponent)
    # Lemon Squeezy sends the amount refunded so far: the ledger keeps what was
    # reported per payment, as it does a subscription's MRR, and answers what is new.
    movement = await context.observe(f"refunded:{context.resource}", so_far, settle=True)
    refund = so_far if movement is None else movement.change
    if refund <= 0:
        return []  # nothing new: a redelivery answered before, or an older notification
    suffix = "" if movement is None else f":{movement.after}"
    subscription = ident(paid, "subscription_id") if paid.get("subscription_id") else None
    return [
        build(
            context.data.path,
            **await context.fields("refunded_at"),
            amount=-refund,
            currency=code,
            transaction_id=f"{context.resource}:refund{suffix}",
            event_type=EventType.REFUND,
            customer_subscription_id=subscription,
        )
    ]


async def _snapshot(context: Context) -> list[RevenueEvent]:
    subscription = context.attributes
    status = subscription.text("status")
    stated = item_mrr(subscription.maybe_child("first_subscription_item"), context.prices)
    stops = status in ("paused", "expired")
    if context.ledger is None:
        return await _stateless(context, stated) if stops else []
    mrr = None if stated is None else major(stated[0], currency_exponent(stated[1]))
    movement = await context.observe(
        ident(context.data, "id"),
        mrr,
        billing=status in BILLING,
        ended=status == "expired",
        settle=stops,
        churn=stops,
    )
    if movement is None or not stops or movement.change >= 0:
        return []  # a change rides on the next payment; a trial never had MRR
    # A loss means some price stated an MRR: the store's prices share its currency.
    code = stated[1] if stated is not None else _store_currency(context.prices)
    return [await _churn(context, code, movement.change)]


async def _stateless(context: Context, stated: tuple[Fraction, str] | None) -> list[RevenueEvent]:
    """Churn for a pause or the end, minus the item's MRR, unless it never billed."""
    subscription = context.attributes
    trial_ends = as_of(subscription, "trial_ends_at") if subscription.get("trial_ends_at") else None
    if trial_ends is not None and as_of(subscription, "updated_at") <= trial_ends:
        return []  # ended in its trial: it never had MRR to lose
    if subscription.get("status") == "expired" and subscription.get("pause") is not None:
        return []  # it ended while paused: the MRR was lost at the pause
    if stated is None:
        return []  # its MRR is unknown: nothing to subtract, and no currency to say it in
    monthly, code = stated
    return [await _churn(context, code, major(-monthly, currency_exponent(code)) or None)]


async def _churn(context: Context, code: str, change: Decimal | None) -> RevenueEvent:
    """A churn (amount 0): the subscription's end, or one pause of it (its own transaction)."""
    transaction_id, reason = context.resource, "expired"
    if context.attributes.get("status") == "paused":
        paused_at = context.attributes.get("updated_at")
        transaction_id, reason = f"{context.resource}:paused:{paused_at}", "paused"
    return build(
        context.data.path,
        **await context.fields("updated_at"),
        amount=0,
        currency=code,
        transaction_id=transaction_id,
        event_type=EventType.CHURN,
        customer_subscription_id=ident(context.data, "id"),
        mrr_impact=change,
        is_recurring=True,
        metadata={"reason": reason},
    )


def _store_currency(prices: Mapping[Any, Price] | None) -> str:
    """The currency of the caller's prices (a store has one)."""
    return next(iter((prices or {}).values())).currency


def _subscription_order(context: Context) -> bool:
    """Whether an order is a subscription's (its first payment), by its item's price."""
    item = context.attributes.maybe_child("first_order_item")
    return item is not None and recurring(context.prices, item.get("price_id"))


def _order_paid_it(context: Context) -> bool:
    """Whether an initial invoice's payment is its order's: so without ``prices``.

    Lemon Squeezy sends both ``order_created`` and an ``initial`` invoice for a
    subscription's first payment. Only ``prices`` tells a subscription's order
    from a one-off one: without them every order is a purchase, and its initial
    invoice must not count the payment a second time.
    """
    initial = context.attributes.get("billing_reason") == "initial"
    return initial and context.prices is None


def _paid(context: Context, paid: Node) -> int:
    """What an order or invoice was paid, in minor units: its total, less tax by default."""
    total, tax = paid.minor_units("total"), paid.minor_units("tax")
    return net_of_tax(total, tax, include_tax=context.include_tax)


def _refunded(context: Context, paid: Node) -> Fraction:
    """The amount refunded so far, less its share of the tax by default (minor units)."""
    total, tax = paid.minor_units("total"), paid.minor_units("tax")
    refunded = paid.maybe_integer("refunded_amount")
    if refunded is None:  # older payloads: a refund is a full refund
        refunded = total if paid.get("refunded") else 0
    if context.include_tax or total <= 0:
        return Fraction(refunded)
    return refunded - Fraction(round(Fraction(tax * refunded, total)))
