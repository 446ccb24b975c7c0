"""Paddle Billing webhooks: verify the signature, and turn events into revenue events.

No dependency on Paddle's SDK. In a webhook route::

    event = paddle.verify(await request.body(), request.headers.get("Paddle-Signature"),
                          PADDLE_WEBHOOK_SECRET)
    for revenue_event in await paddle.to_revenue_events(event, resolver=lookup, ledger=ledger):
        await revenue.track(revenue_event)

==============================  =================================  ===============================
Paddle event                    with a ledger                      without a ledger
==============================  =================================  ===============================
transaction.completed without   purchase                           purchase
a subscription
... origin ``web`` / ``api``    subscription, MRR moved (+ its     subscription, with the MRR of
(the first payment)             recurring lines' MRR when new)     its recurring lines
... ``subscription_recurring``  renewal; if the MRR moved:         renewal, no MRR
                                subscription, upgrade, downgrade
... ``subscription_update``     upgrade (downgrade if the MRR      upgrade, no MRR
(a plan change's proration)     fell), with the MRR moved
... ``subscription_charge``     purchase; as above if it moved     purchase
... any other origin            purchase                           purchase
adjustment.created / .updated   refund (negative amount)           refund (negative amount)
``approved``: ``refund``,
``chargeback``
... ``chargeback_reverse``      purchase                           purchase
... ``credit``, other actions   nothing                            nothing
subscription.* with status      churn (amount 0) of the MRR        .paused: churn of its items'
``paused`` (.paused, .updated)  reported, once per pause           MRR, unless it never billed
subscription.* with status      churn of the MRR reported;         .canceled: churn of its items'
``canceled``                    nothing if none was (a trial)      MRR, unless it never billed or
                                                                   was paused
other subscription.* (created,  nothing: the ledger keeps the      nothing
activated, updated, trialing,   state; an MRR change rides on the
resumed, past_due, imported)    next payment, pause or end
anything else                   nothing                            nothing
==============================  =================================  ===============================

``amount`` is what the customer paid, net of discounts and credits, without
tax (the transaction's ``grand_total`` less its ``grand_total_tax``); refunds
and chargebacks are the adjustment's ``total`` less its ``tax``, so that a
full refund nets its payment out. ``include_tax=True`` counts tax in both. A
transaction of nothing (a trial's checkout, a downgrade's credit) is no
event. A credit adjustment is nothing: it lowers the grand total of the
transaction it is spent on. Amounts are strings of minor units, converted by
the currency's ISO 4217 exponent. The transaction id is Paddle's ``txn_...``
(one per payment), ``adj_...``, or the subscription's id for its end
(``sub_...:paused:<paused_at>`` for a pause).

MRR is normalised to a month from each price's billing cycle, times quantity,
without tax and one-time items. A transaction states the MRR of its recurring
lines, net of discounts; a subscription entity that of its ``active`` items
at list price, 0 while trialing, paused or cancelled, and nothing while a
discount applies or a price includes tax (their amounts are not in it).

With a ledger (``MemoryLedger``, ``SQLiteLedger``) every subscription event
and every subscription's transaction tells it the state, and the MRR
telescopes; an older state arriving late is not applied. Without one, the
limits: a plan change's MRR (``subscription.updated``) is never reported, so
a later cancellation subtracts the new MRR; a trial's first payment is a
renewal and adds no MRR; a resumed subscription regains its MRR nowhere; a
discount makes the MRR a cancellation subtracts unknown.

Attribution comes from ``custom_data`` under the keys ``visitor_fingerprint``
and ``session_id`` unless *keys* says otherwise, then from the resolver;
adjustments carry no ``custom_data`` and need the resolver. Events that map
to nothing need no attribution.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any

from .._event import RevenueEvent
from .._fields import EventType
from .._money import currency_exponent
from . import _signing
from ._common import (
    DEFAULT_KEYS,
    Resolver,
    attribute,
    build,
    currency,
    major,
    moment,
    net_of_tax,
    payment_kind,
)
from ._ledger import Ledger, Movement, Observation
from ._paddle_prices import lost_mrr, paid, snapshot_mrr, transaction_mrr
from ._payload import Node

__all__ = ["sign", "to_revenue_events", "verify"]

_SCHEME = _signing.Scheme("Paddle", "Paddle-Signature", ";", "ts", "h1", b":")

PROCESSOR = "paddle"

#: A subscription transaction's origin: its type when the MRR did not move, and
#: whether it states the subscription's whole MRR (a full period of every item).
_ORIGINS: Mapping[str, tuple[EventType, bool]] = {
    "web": (EventType.SUBSCRIPTION, True),  # the checkout that created the subscription
    "api": (EventType.SUBSCRIPTION, True),
    "subscription_recurring": (EventType.RENEWAL, True),
    "subscription_update": (EventType.UPGRADE, False),  # a plan change's proration
    "subscription_charge": (EventType.PURCHASE, False),  # a one-off charge on a subscription
}

#: Approved adjustments that move money: refunds and chargebacks out, reversals in.
_ADJUSTMENTS: Mapping[str, EventType] = {
    "refund": EventType.REFUND,
    "chargeback": EventType.REFUND,
    "chargeback_reverse": EventType.PURCHASE,
}

#: Notifications that carry a subscription entity: a snapshot of its state.
_SNAPSHOT_KINDS = "created imported activated updated trialing past_due paused resumed canceled"
_SNAPSHOTS = frozenset(f"subscription.{kind}" for kind in _SNAPSHOT_KINDS.split())


def verify(
    payload: bytes | str,
    header: str | None,
    secret: str | Sequence[str],
    *,
    tolerance: float | None = 5,
    now: float | None = None,
) -> Any:
    """Check a ``Paddle-Signature`` header against the raw body, and decode the event.

    The signature is checked before the time, so that a forged request is reported as
    forged, not as late. Every verification failure is a ``WebhookVerificationError``:
    answer it with a 400.

    Args:
        payload: the raw request body, as received (not re-encoded JSON).
        header: the ``Paddle-Signature`` header's value; None when it is absent.
        secret: the notification destination's secret key (``pdl_ntfset_...``), or
            several while one is rotated: any one may match.
        tolerance: how many seconds the signature's time may be from *now*, in the past
            or the future; 5 by default, Paddle's own window. None checks no time.
        now: the current Unix time; None (the default) for the system clock.

    Returns:
        The decoded JSON body: the event, for ``to_revenue_events``.

    Raises:
        MissingSignatureError: when the header is missing or empty.
        MalformedSignatureError: when the header is not in Paddle's format.
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
    """Sign a payload as Paddle does, for tests.

    Args:
        payload: the request body to sign.
        secret: the notification destination's secret key.
        timestamp: the signature's Unix time.

    Returns:
        A valid ``Paddle-Signature`` header value.
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
    """Map a verified Paddle Billing event to the revenue events it stands for (often none).

    The events to subscribe to, and what each maps to, are in this module's
    documentation; every other event maps to an empty list.

    Args:
        event: the event, as ``verify`` returns it.
        resolver: an async ``resolver(customer_id)`` that returns
            ``(visitor_fingerprint, session_id)`` or None, asked when ``custom_data``
            has no attribution (adjustments never have it).
        ledger: a ``MemoryLedger`` or ``SQLiteLedger``: pass the same one for every
            event, so that the MRR telescopes; without one, each event says only what it
            can alone.
        include_tax: count tax in ``amount`` (of payments, refunds and chargebacks); by
            default amounts are revenue, without tax.
        keys: the ``custom_data`` keys of the visitor fingerprint and the session id;
            by default ``("visitor_fingerprint", "session_id")``.

    Returns:
        The revenue events, ready for ``Revenue.track``.

    Raises:
        WebhookPayloadError: when the payload has an unexpected shape (a missing field,
            a null where a number belongs, an unknown currency); ``field`` names the path.
        MissingAttributionError: when an event to track has no visitor fingerprint and
            session id, in ``custom_data`` or from the resolver.
        TypeError: when the resolver returns anything but a pair of strings or None.
        ValueError: when the resolver returns blank ids.
    """
    context = _Context(Node(event), resolver, ledger, include_tax, keys)
    if context.kind == "transaction.completed":
        return await _transaction(context)
    if context.kind in ("adjustment.created", "adjustment.updated"):
        return await _adjustment(context)
    if context.kind in _SNAPSHOTS:
        return await _snapshot(context)
    return []


class _Context:
    """One notification being mapped, with the caller's settings."""

    def __init__(
        self,
        envelope: Node,
        resolver: Resolver | None,
        ledger: Ledger | None,
        include_tax: bool,
        keys: tuple[str, str],
    ) -> None:
        self.envelope, self.resolver, self.ledger = envelope, resolver, ledger
        self.include_tax, self.keys = include_tax, keys
        self.kind = envelope.text("event_type")
        self.data = envelope.child("data")

    @property
    def event_id(self) -> str:
        """The notification's event id (``evt_...``): a redelivery has the same."""
        return self.envelope.maybe_text("event_id") or self.envelope.text("notification_id")

    async def fields(self, customer_id: str) -> dict[str, Any]:
        """Attribution and the fields every event of this notification shares."""
        sources = [(f"{self.data.path}.custom_data", self.data.metadata("custom_data"))]
        fingerprint, session = await attribute(
            sources, customer_id=customer_id, resolver=self.resolver, keys=self.keys
        )
        return {
            "visitor_fingerprint": fingerprint,
            "session_id": session,
            "customer_id": customer_id,
            "payment_processor": PROCESSOR,
            "occurred_at": moment(self.envelope.get("occurred_at"), "occurred_at"),
        }

    async def observe(
        self,
        subscription: str,
        as_of: tuple[str, ...],
        mrr: Decimal | None,
        *,
        settle: bool,
        churn: bool = False,
    ) -> Movement | None:
        """Tell the ledger, if any, the subscription's state; get the MRR reported before and after.

        The state held at the first of the entity's *as_of* fields that has a time.
        """
        if self.ledger is None:
            return None
        when = _as_of(self.data, *as_of)
        ended = self.data.get("status") == "canceled"
        seen = Observation(
            f"{PROCESSOR}:{subscription}", self.event_id, when, mrr, settle, ended, churn=churn
        )
        return await self.ledger.observe(seen)


async def _transaction(context: _Context) -> list[RevenueEvent]:
    transaction = context.data
    subscription = transaction.maybe_text("subscription_id")
    code = currency(transaction, "currency_code")
    exponent = currency_exponent(code)
    amount = major(paid(transaction, include_tax=context.include_tax), exponent)
    origin = str(transaction.get("origin")) if subscription else ""
    otherwise, states_mrr = _ORIGINS.get(origin, (EventType.PURCHASE, False))
    monthly = transaction_mrr(transaction, code) if states_mrr else None
    mrr = None if monthly is None else major(monthly, exponent)
    movement = None
    if subscription is not None:
        # A transaction of nothing still shows the ledger the subscription's
        # state, but no change can ride on it (amounts are positive): a moved
        # MRR waits for the next payment or churn.
        as_of = ("updated_at", "billed_at")
        movement = await context.observe(subscription, as_of, mrr, settle=amount > 0)
    if amount <= 0:
        return []
    kind, mrr_impact = payment_kind(otherwise, mrr, movement)
    return [
        build(
            transaction.path,
            **await context.fields(transaction.text("customer_id")),
            amount=amount,
            currency=code,
            transaction_id=transaction.text("id"),
            event_type=kind,
            customer_subscription_id=subscription,
            mrr_impact=mrr_impact,
            is_recurring=None if subscription is None else otherwise is not EventType.PURCHASE,
        )
    ]


async def _adjustment(context: _Context) -> list[RevenueEvent]:
    adjustment = context.data
    action = str(adjustment.get("action"))
    kind = _ADJUSTMENTS.get(action)
    if kind is None or adjustment.get("status") != "approved":
        return []  # a credit (spent on a later transaction), or not approved (yet)
    totals = adjustment.child("totals")
    code = currency(totals if totals.get("currency_code") else adjustment, "currency_code")
    minor = net_of_tax(
        totals.minor_units("total"), totals.minor_units("tax"), include_tax=context.include_tax
    )
    amount = major(minor, currency_exponent(code))
    if amount <= 0:
        return []
    extra = {} if action == "refund" else {"adjustment_action": action}
    return [
        build(
            adjustment.path,
            **await context.fields(adjustment.text("customer_id")),
            amount=-amount if kind is EventType.REFUND else amount,
            currency=code,
            transaction_id=adjustment.text("id"),
            event_type=kind,
            customer_subscription_id=adjustment.maybe_text("subscription_id"),
            metadata={"original_transaction": adjustment.text("transaction_id"), **extra},
        )
    ]


async def _snapshot(context: _Context) -> list[RevenueEvent]:
    if context.ledger is None:
        return await _stateless(context)
    subscription = context.data
    code = currency(subscription, "currency_code")
    monthly = snapshot_mrr(subscription, code, _as_of(subscription, "updated_at"))
    mrr = None if monthly is None else major(monthly, currency_exponent(code))
    stops = subscription.text("status") in ("paused", "canceled")
    movement = await context.observe(
        subscription.text("id"), ("updated_at",), mrr, settle=stops, churn=stops
    )
    if movement is None or not stops or movement.change >= 0:
        return []  # the change, if any, rides on the next payment; a trial never had MRR
    return [await _churn(context, code, movement.change)]


async def _stateless(context: _Context) -> list[RevenueEvent]:
    """Churn for a pause or a cancellation, minus the items' MRR, unless it never billed."""
    subscription = context.data
    if context.kind not in ("subscription.paused", "subscription.canceled"):
        return []
    if subscription.get("first_billed_at") is None:
        return []  # cancelled in its trial: it never had MRR to lose
    if context.kind == "subscription.canceled" and subscription.get("paused_at") is not None:
        return []  # cancelled while paused: the MRR was lost at the pause
    code = currency(subscription, "currency_code")
    lost = lost_mrr(subscription, code, _as_of(subscription, "updated_at"))
    if lost == 0:
        return []
    change = None if lost is None else major(-lost, currency_exponent(code))
    return [await _churn(context, code, change)]


async def _churn(context: _Context, code: str, change: Decimal | None) -> RevenueEvent:
    """A churn (amount 0): the subscription's end, or one pause of it (its own transaction)."""
    subscription = context.data
    subscription_id = subscription.text("id")
    transaction_id, reason = subscription_id, "canceled"
    if subscription.get("status") == "paused":
        paused_at = subscription.maybe_text("paused_at") or context.event_id
        transaction_id, reason = f"{subscription_id}:paused:{paused_at}", "paused"
    return build(
        subscription.path,
        **await context.fields(subscription.text("customer_id")),
        amount=0,
        currency=code,
        transaction_id=transaction_id,
        event_type=EventType.CHURN,
        customer_subscription_id=subscription_id,
        mrr_impact=change,
        is_recurring=True,
        metadata={"reason": reason},
    )


def _as_of(node: Node, *keys: str) -> datetime:
    """When the entity's state held: the first of its *keys* that has a timestamp."""
    for key in keys:
        found = moment(node.get(key), f"{node.path}.{key}")
        if found is not None:
            return found
    raise node.wrong(keys[0], "a timestamp with a time zone", node.get(keys[0]))
