"""Polar webhooks: verify the Standard Webhooks signature, and turn events into revenue events.

No dependency on Polar's SDK or on ``standardwebhooks``. In a webhook route::

    event = polar.verify(await request.body(), request.headers, POLAR_WEBHOOK_SECRET)
    for revenue_event in await polar.to_revenue_events(event, resolver=lookup, ledger=ledger):
        await revenue.track(revenue_event)

Each event, and what it becomes with a ledger (without one, where it differs):

- ``order.paid`` with ``billing_reason``:
    - ``purchase`` (no subscription): purchase.
    - ``subscription_create`` (the first payment): subscription, with the MRR
      moved (without: its MRR).
    - ``subscription_cycle`` (a renewal): renewal; subscription, upgrade or
      downgrade when the MRR moved (without: renewal, no MRR).
    - ``subscription_update`` (a plan change's proration): upgrade, or downgrade
      if the MRR fell, with the MRR moved (without: upgrade, no MRR).
    - ``subscription_meter_cycle``, any other: purchase; as above if the MRR moved.
- ``order.refunded``: refund (negative) of what this event adds to the order's
  refunds (without: the order's refunds so far, counted for its first refund only).
- ``subscription.*`` with status ``canceled`` (``.revoked``, and ``.canceled``
  when immediate): churn (amount 0) of the MRR reported; nothing if none was,
  as after a trial (without: ``.revoked`` / ``.canceled`` churn of its MRR,
  unless it ended in its trial).
- ``subscription.*`` with status ``paused``: one churn of the MRR reported
  (without: nothing).
- Other ``subscription.*`` (``created``, ``updated``, ``active``, ``canceled`` at
  period end, ``uncanceled``, ``past_due``, ``resumed``): nothing; the ledger keeps
  the state, and a change rides on the next payment or the end.
- Anything else (``order.created``, ``order.updated``, ``checkout.*``,
  ``refund.*``): nothing.

``amount`` is the order's ``net_amount`` (after discounts, before tax);
``include_tax=True`` makes it ``total_amount``. A refund is the order's
``refunded_amount`` (``+ refunded_tax_amount`` with ``include_tax``), which
Polar keeps as a running total: with a ledger each ``order.refunded`` reports
what it adds, as its own transaction (``<order id>:refunded:<total so far>``),
so partial refunds net out exactly; without one, only an order's first refund
counts (``<order id>:refunded``). An order of nothing (a trial's start) is no
event. Amounts are integers of minor units, converted by the currency's ISO
4217 exponent. The transaction id of a payment is the order id; of the end,
the subscription id (``<id>:paused:<paused_at>`` for a pause).

MRR is the subscription's ``amount`` normalised to a month by its
``recurring_interval`` and ``recurring_interval_count``: the subscription
entity of ``subscription.*`` events, and the ``subscription`` an order embeds.
It is 0 while trialing, paused, unpaid or ended, and unknown (nothing said)
while a discount applies or a price includes tax. A subscription cancelled at
period end (``cancel_at_period_end``, status still ``active``) keeps its MRR
until it is revoked.

Polar's body has no event id: the ledger keys each event by a digest of its
body, which a redelivery repeats unchanged. Snapshots are ordered by the
envelope's ``timestamp``; an older state arriving late is not applied.

Attribution comes from the entity's ``metadata`` (where Polar copies the
checkout's), then its ``custom_field_data``, then an order's
``subscription.metadata``, under the keys ``visitor_fingerprint`` and
``session_id`` unless *keys* says otherwise, then from the resolver.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any

from .._event import RevenueEvent
from .._fields import EventType
from .._money import currency_exponent
from . import _polar_signing
from ._common import (
    DEFAULT_KEYS,
    Resolver,
    build,
    currency,
    major,
    moment,
    net_of_tax,
    payment_kind,
)
from ._ledger import Ledger
from ._payload import Node
from ._polar_context import PROCESSOR, Context
from ._polar_prices import list_mrr, subscription_mrr

__all__ = ["sign", "to_revenue_events", "verify"]

#: What a subscription's order is when the MRR did not move, by ``billing_reason``.
_REASONS: Mapping[str, EventType] = {
    "subscription_create": EventType.SUBSCRIPTION,
    "subscription_cycle": EventType.RENEWAL,
    "subscription_update": EventType.UPGRADE,  # a plan change's proration
}

_SNAPSHOT_KINDS = "created updated active canceled uncanceled revoked past_due paused resumed"
_SNAPSHOTS = frozenset(f"subscription.{kind}" for kind in _SNAPSHOT_KINDS.split())


def verify(
    payload: bytes | str,
    headers: Mapping[str, str] | None,
    secret: str | Sequence[str],
    *,
    tolerance: float | None = 300,
    now: float | None = None,
) -> Any:
    """Check Polar's Standard Webhooks signature against the raw body, and decode the event.

    The signature is checked before the time, so that a forged request is reported as
    forged, not as late. Every verification failure is a ``WebhookVerificationError``:
    answer it with a 400 (or 403).

    Args:
        payload: the raw request body, as received (not re-encoded JSON).
        headers: the request's headers (Starlette's ``request.headers``, or a dict):
            ``webhook-id``, ``webhook-timestamp`` and ``webhook-signature`` are read,
            whatever their case.
        secret: the endpoint's secret as Polar shows it, or several while one is
            rotated: any one may match.
        tolerance: how many seconds the signature's time may be from *now*, in the past
            or the future; 300 by default, as Polar's SDK. None checks no time.
        now: the current Unix time; None (the default) for the system clock.

    Returns:
        The decoded JSON body: the event, for ``to_revenue_events``.

    Raises:
        MissingSignatureError: when one of the three headers is missing or empty.
        MalformedSignatureError: when the timestamp is not Unix seconds, or no
            ``v1,<base64>`` signature is in ``webhook-signature``.
        SignatureMismatchError: when no signature matches the body and a secret.
        StaleTimestampError: when the signature was made more than *tolerance* seconds
            before or after *now*.
        WebhookPayloadError: when the verified body is not JSON.
        TypeError: when an argument is of the wrong type.
        ValueError: when an argument's value is impossible (an empty secret, a negative
            tolerance).
    """
    return _polar_signing.verify(payload, headers, secret, tolerance=tolerance, now=now)


def sign(
    payload: bytes | str, secret: str, *, msg_id: str | None = None, timestamp: int
) -> dict[str, str]:
    """Sign a payload as Polar does, for tests.

    Args:
        payload: the request body to sign.
        secret: the endpoint's secret.
        msg_id: the ``webhook-id``; None (the default) for one derived from the body,
            the same for every delivery of it.
        timestamp: the signature's Unix time.

    Returns:
        The ``webhook-id``, ``webhook-timestamp`` and ``webhook-signature`` headers.
    """
    body = payload.encode() if isinstance(payload, str) else bytes(payload)
    msg_id = msg_id or f"msg_{hashlib.sha256(body).hexdigest()[:24]}"
    return _polar_signing.sign(body, secret, msg_id=msg_id, timestamp=timestamp)


async def to_revenue_events(
    event: Mapping[str, Any],
    *,
    resolver: Resolver | None = None,
    ledger: Ledger | None = None,
    include_tax: bool = False,
    keys: tuple[str, str] = DEFAULT_KEYS,
) -> list[RevenueEvent]:
    """Map a verified Polar event to the revenue events it stands for (often none).

    The events to subscribe to, and what each maps to, are in this module's
    documentation; every other event maps to an empty list.

    Args:
        event: the event, as ``verify`` returns it.
        resolver: an async ``resolver(customer_id)`` that returns
            ``(visitor_fingerprint, session_id)`` or None, asked when the metadata has
            no attribution.
        ledger: a ``MemoryLedger`` or ``SQLiteLedger``: pass the same one for every
            event, so that the MRR telescopes and partial refunds net out; without one,
            each event says only what it can alone.
        include_tax: count tax in ``amount`` (of payments and refunds); by default
            amounts are revenue, without tax.
        keys: the metadata keys of the visitor fingerprint and the session id; by
            default ``("visitor_fingerprint", "session_id")``.

    Returns:
        The revenue events, ready for ``Revenue.track``.

    Raises:
        WebhookPayloadError: when the payload has an unexpected shape (a missing field,
            a null where a number belongs, an unknown currency); ``field`` names the path.
        MissingAttributionError: when an event to track has no visitor fingerprint and
            session id, in the metadata or from the resolver.
        TypeError: when the resolver returns anything but a pair of strings or None.
        ValueError: when the resolver returns blank ids.
    """
    context = Context(Node(event), resolver, ledger, include_tax, keys)
    if context.kind == "order.paid":
        return await _order(context)
    if context.kind == "order.refunded":
        return await _refund(context)
    if context.kind in _SNAPSHOTS:
        return await _snapshot(context)
    return []


async def _order(context: Context) -> list[RevenueEvent]:
    order = context.data
    subscription_id = order.maybe_text("subscription_id")
    code = currency(order, "currency")
    exponent = currency_exponent(code)
    paid = net_of_tax(
        order.minor_units("total_amount"),
        order.minor_units("tax_amount"),
        include_tax=context.include_tax,
    )
    amount = major(paid, exponent)
    otherwise = EventType.PURCHASE
    if subscription_id is not None:
        otherwise = _REASONS.get(str(order.get("billing_reason")), EventType.PURCHASE)
    embedded = order.maybe_child("subscription")
    monthly = None if embedded is None else subscription_mrr(embedded)
    mrr = None if monthly is None else major(monthly, exponent)
    movement = None
    if subscription_id is not None:
        # An order of nothing still shows the ledger the subscription's state, but
        # no change can ride on it (amounts are positive): it waits for the next.
        key = f"{PROCESSOR}:{subscription_id}"
        movement = await context.observe(key, mrr, settle=amount > 0)
    if amount <= 0:
        return []
    kind, mrr_impact = payment_kind(otherwise, mrr, movement)
    return [
        build(
            order.path,
            **await context.fields(embedded),
            amount=amount,
            currency=code,
            transaction_id=order.text("id"),
            event_type=kind,
            customer_subscription_id=subscription_id,
            mrr_impact=mrr_impact,
            is_recurring=None if subscription_id is None else otherwise is not EventType.PURCHASE,
        )
    ]


async def _refund(context: Context) -> list[RevenueEvent]:
    """A refund of what this event adds to the order's running total of refunds."""
    order = context.data
    order_id = order.text("id")
    code = currency(order, "currency")
    exponent = currency_exponent(code)
    refunded = order.minor_units("refunded_amount")
    total = net_of_tax(
        refunded + order.minor_units("refunded_tax_amount"),
        order.minor_units("refunded_tax_amount"),
        include_tax=context.include_tax,
    )
    transaction_id = f"{order_id}:refunded"
    amount = major(total, exponent)
    # The ledger keeps the refunds reported per order as a running total, under a
    # key of its own: each event reports only what it adds, a stale one nothing.
    movement = await context.observe(f"{PROCESSOR}:refunds:{order_id}", amount, settle=True)
    if movement is not None:
        amount, transaction_id = movement.change, f"{transaction_id}:{refunded}"
    if amount <= 0:
        return []  # nothing new (a redelivery's twin, a stale total), or a reversal
    embedded = order.maybe_child("subscription")
    return [
        build(
            order.path,
            **await context.fields(embedded),
            amount=-amount,
            currency=code,
            transaction_id=transaction_id,
            event_type=EventType.REFUND,
            customer_subscription_id=order.maybe_text("subscription_id"),
            metadata={"original_transaction": order_id},
        )
    ]


async def _snapshot(context: Context) -> list[RevenueEvent]:
    if context.ledger is None:
        return await _stateless(context)
    subscription = context.data
    code = currency(subscription, "currency")
    monthly = subscription_mrr(subscription)
    mrr = None if monthly is None else major(monthly, currency_exponent(code))
    status = subscription.text("status")
    stops = status in ("paused", "canceled")
    key = f"{PROCESSOR}:{subscription.text('id')}"
    ended = status == "canceled"
    movement = await context.observe(key, mrr, settle=stops, ended=ended, churn=stops)
    if movement is None or not stops or movement.change >= 0:
        return []  # the change, if any, rides on the next payment; a trial never had MRR
    return [await _churn(context, code, movement.change)]


async def _stateless(context: Context) -> list[RevenueEvent]:
    """Churn for the end, minus the subscription's MRR, unless it ended in its trial."""
    subscription = context.data
    if context.kind not in ("subscription.canceled", "subscription.revoked"):
        return []
    if subscription.get("status") != "canceled" or _ended_in_trial(subscription):
        return []
    code = currency(subscription, "currency")
    lost = list_mrr(subscription)
    if lost == 0:
        return []
    change = None if lost is None else major(-lost, currency_exponent(code))
    return [await _churn(context, code, change)]


def _ended_in_trial(subscription: Node) -> bool:
    trial_end = moment(subscription.get("trial_end"), f"{subscription.path}.trial_end")
    if trial_end is None:
        return False
    for key in ("ended_at", "canceled_at"):
        ended = moment(subscription.get(key), f"{subscription.path}.{key}")
        if ended is not None:
            return ended <= trial_end
    return False


async def _churn(context: Context, code: str, change: Decimal | None) -> RevenueEvent:
    """A churn (amount 0): the subscription's end, or one pause of it (its own transaction)."""
    subscription = context.data
    subscription_id = subscription.text("id")
    transaction_id, reason = subscription_id, "canceled"
    if subscription.get("status") == "paused":
        paused_at = subscription.maybe_text("paused_at") or context.event_id
        transaction_id, reason = f"{subscription_id}:paused:{paused_at}", "paused"
    return build(
        subscription.path,
        **await context.fields(),
        amount=0,
        currency=code,
        transaction_id=transaction_id,
        event_type=EventType.CHURN,
        customer_subscription_id=subscription_id,
        mrr_impact=change,
        is_recurring=True,
        metadata={"reason": reason},
    )
