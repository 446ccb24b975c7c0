"""Chargebee webhooks: check the basic auth credentials, and turn events into revenue events.

**Chargebee signs nothing.** Its webhooks can only be protected by the HTTP
basic auth username and password set on the webhook (sent as
``Authorization: Basic ...``, so only ever over HTTPS) and by accepting calls
only from the addresses Chargebee publishes for its region. That is all
Chargebee offers; ``verify`` checks both. No dependency on Chargebee's SDK.
In a webhook route::

    event = chargebee.verify(await request.body(), request.headers.get("Authorization"),
                             (USERNAME, PASSWORD), source_ip=request.client.host,
                             allowed_ips=CHARGEBEE_IPS)
    for revenue_event in await chargebee.to_revenue_events(event, ledger=ledger):
        await revenue.track(revenue_event)

What each event becomes, with a ledger (and without one, where it differs):

- ``payment_succeeded``, the first invoice of a subscription: subscription, with
  the MRR moved (without a ledger: with its items' MRR).
- ``payment_succeeded``, a renewal (a recurring invoice): renewal; if the MRR
  moved, subscription, upgrade or downgrade (without: renewal, no MRR).
- ``payment_succeeded``, any other invoice of a subscription: purchase; as
  above if the MRR moved (without: purchase).
- ``payment_succeeded`` without a subscription: purchase.
- ``payment_refunded``: refund (a negative amount).
- ``credit_note_created`` with refunds in its ``linked_refunds``: a refund for
  each, the same ones ``payment_refunded`` reports; without refunds (credits,
  adjustments): nothing.
- ``subscription_cancelled``: churn (amount 0) of the MRR reported, nothing if
  none was (a trial); without a ledger: churn of its items' MRR, unless it
  never activated.
- ``subscription_created``, ``subscription_changed``,
  ``subscription_reactivated``: nothing; the ledger keeps the state, and an MRR
  change rides on the next payment or cancellation.
- Anything else: nothing.

``amount`` is what the transaction took, without tax: the transaction's
``amount`` less its share of the invoice's ``tax`` (all of it when it pays
the whole invoice). A refund is the refund transaction's amount less its
share of the credit note's taxes, as a negative amount. ``include_tax=True``
counts tax in both. Amounts are integers of minor units, converted by the
currency's ISO 4217 exponent (0 decimals for JPY, 3 for KWD).

One refund is described by both ``payment_refunded`` (its ``transaction``)
and ``credit_note_created`` (the credit note's ``linked_refunds``): both map
it under the refund transaction's id (``txn_...``), so that Pulsora counts
it once; with a ledger, the second description reports the first one's
amount. A payment's transaction id is its ``txn_...``; a cancellation's is
``<subscription id>:cancelled:<cancelled_at>``.

MRR is computed from the subscription's items (``plan`` and ``addon``, not
one-time ``charge`` items): each item's ``amount`` (or unit price times
quantity) normalised to a month from its billing period and unit, without
tax; 0 unless the subscription is ``active`` or ``non_renewing``. It is not
read from the subscription's ``mrr`` field, which Chargebee computes
asynchronously (announced by a later ``mrr_updated``), so that inside a
``subscription_changed`` it may still be the MRR before the change. While a
coupon or discount applies the MRR is unknown (its amount is not in the
subscription), and the older word stands until the coupon is gone. A price
that includes tax counts its tax in the MRR.

With a ledger (``MemoryLedger``, ``SQLiteLedger``) every event that carries
the subscription tells it the state, ordered by the subscription's
``resource_version``, and the MRR telescopes; an older state arriving late is
not applied. A cancellation is not final (``subscription_reactivated`` can
follow): it reports the MRR falling to 0, and a reactivation's MRR rides on
its next payment. Without a ledger, the limits: a plan change's MRR is never
reported, so a cancellation subtracts the new MRR; a reactivated
subscription regains its MRR nowhere.

Attribution comes from the subscription's, then the customer's ``meta_data``
under the keys ``visitor_fingerprint`` and ``session_id`` (or their custom
fields ``cf_visitor_fingerprint`` and ``cf_session_id``) unless *keys* says
otherwise, then from the resolver (``credit_note_created`` carries no
subscription or customer: it needs the resolver). Events that map to nothing
need no attribution.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from decimal import Decimal
from typing import Any

from .._event import RevenueEvent
from .._fields import EventType
from .._money import currency_exponent
from . import _chargebee_auth as _auth
from . import _chargebee_refunds as _refunds
from ._chargebee_auth import (
    CredentialsMismatchError,
    MalformedCredentialsError,
    MissingCredentialsError,
    SourceAddressError,
    basic_auth,
)
from ._chargebee_context import SUCCEEDED, Context, invoice_tax
from ._chargebee_state import items_mrr, snapshot_mrr
from ._common import (
    DEFAULT_KEYS,
    Resolver,
    build,
    currency,
    major,
    net_of_tax,
    payment_kind,
)
from ._ledger import Ledger
from ._payload import Node
from ._signing import decode

__all__ = [
    "CredentialsMismatchError",
    "MalformedCredentialsError",
    "MissingCredentialsError",
    "SourceAddressError",
    "basic_auth",
    "to_revenue_events",
    "verify",
]

#: Events that carry a subscription entity: a snapshot of its state.
_SNAPSHOTS = frozenset(
    f"subscription_{kind}" for kind in ("created", "changed", "cancelled", "reactivated")
)


def verify(
    payload: bytes | str,
    authorization: str | None,
    credentials: tuple[str, str],
    *,
    source_ip: str | ipaddress.IPv4Address | ipaddress.IPv6Address | None = None,
    allowed_ips: Iterable[str | _auth.Network | _auth.Address] | None = None,
) -> Any:
    """Check a Chargebee webhook's basic auth credentials (and source address), and decode it.

    Chargebee signs nothing: this is all it offers. The credentials are the
    username and password set on the webhook in Chargebee; they travel in clear
    inside the request, so the webhook URL must be HTTPS. The comparison takes
    the same time wherever the credentials differ. Every verification failure is
    a ``WebhookVerificationError``: answer it with a 401 (or 400).

    Args:
        payload: the raw request body.
        authorization: the ``Authorization`` header's value; None when it is absent.
        credentials: the webhook's ``(username, password)``.
        source_ip: the address the request came from (``request.client.host``, or the
            address your own proxy reports); required when *allowed_ips* is given.
        allowed_ips: Chargebee's published addresses for your site's region, as
            addresses or networks (``"192.0.2.25"``, ``"192.0.2.0/24"`` or ``ipaddress``
            objects); None (the default) checks no address.

    Returns:
        The decoded JSON body: the event, for ``to_revenue_events``.

    Raises:
        MissingCredentialsError: when the ``Authorization`` header is missing or empty
            (a ``MissingSignatureError``).
        MalformedCredentialsError: when it is not ``Basic <base64 of username:password>``
            (a ``MalformedSignatureError``).
        CredentialsMismatchError: when the username or the password is wrong (a
            ``SignatureMismatchError``).
        SourceAddressError: when *source_ip* is outside *allowed_ips*.
        WebhookPayloadError: when the verified body is not JSON.
        TypeError: when an argument is of the wrong type.
        ValueError: when an argument's value is impossible (empty credentials, an empty
            or invalid *allowed_ips*, *allowed_ips* without *source_ip*).
    """
    body = _raw(payload)
    expected = _auth.credentials(credentials)
    allowed = None if allowed_ips is None else _auth.networks(allowed_ips)
    if allowed is not None:
        _auth.check_source(source_ip, allowed)
    _auth.check_authorization(authorization, expected)
    return decode(body)


def _raw(payload: object) -> bytes:
    if isinstance(payload, bytes | bytearray | memoryview):
        return bytes(payload)
    if isinstance(payload, str):
        return payload.encode("utf-8", "surrogatepass")
    raise TypeError(
        f"payload must be the raw request body as bytes or str, not {type(payload).__name__}"
    )


async def to_revenue_events(
    event: Mapping[str, Any],
    *,
    resolver: Resolver | None = None,
    ledger: Ledger | None = None,
    include_tax: bool = False,
    keys: tuple[str, str] = DEFAULT_KEYS,
) -> list[RevenueEvent]:
    """Map a verified Chargebee event to the revenue events it stands for (often none).

    The events to subscribe to, and what each maps to, are in this module's
    documentation; every other event maps to an empty list.

    Args:
        event: the event, as ``verify`` returns it.
        resolver: an async ``resolver(customer_id)`` that returns
            ``(visitor_fingerprint, session_id)`` or None, asked when the subscription's
            and the customer's ``meta_data`` and custom fields have no attribution.
        ledger: a ``MemoryLedger`` or ``SQLiteLedger``: pass the same one for every
            event, so that the MRR telescopes; without one, each event says only what it
            can alone.
        include_tax: count tax in ``amount`` (of payments and refunds); by default
            amounts are revenue, without tax.
        keys: the ``meta_data`` keys of the visitor fingerprint and the session id; by
            default ``("visitor_fingerprint", "session_id")``.

    Returns:
        The revenue events, ready for ``Revenue.track``.

    Raises:
        WebhookPayloadError: when the payload has an unexpected shape (a missing field,
            a null where a number belongs, an unknown currency); ``field`` names the path.
        MissingAttributionError: when an event to track has no visitor fingerprint and
            session id, in the payload or from the resolver.
        TypeError: when the resolver returns anything but a pair of strings or None.
        ValueError: when the resolver returns blank ids.
    """
    context = Context(Node(event), resolver, ledger, include_tax, keys)
    if context.kind == "payment_succeeded":
        return await _payment(context)
    if context.kind == "payment_refunded":
        return await _refunds.refund(context)
    if context.kind == "credit_note_created":
        return await _refunds.credit_note(context)
    if context.kind in _SNAPSHOTS:
        return await _snapshot(context)
    return []


async def _payment(context: Context) -> list[RevenueEvent]:
    transaction = context.content.child("transaction")
    if transaction.get("type") != "payment" or transaction.get("status") not in SUCCEEDED:
        return []
    invoice = context.content.maybe_child("invoice")
    code = currency(transaction, "currency_code")
    exponent = currency_exponent(code)
    gross = transaction.minor_units("amount")
    tax = 0 if invoice is None else invoice_tax(invoice, gross)
    paid = await context.first(
        transaction.text("id"), gross, net_of_tax(gross, tax, include_tax=context.include_tax)
    )
    amount = major(paid.net, exponent)
    subscription = _subscription_id(context, invoice, transaction)
    otherwise = _payment_kind(invoice)
    mrr = _mrr(context, subscription, exponent)
    movement = None
    if subscription is not None:
        movement = await context.observe(subscription, mrr, settle=amount > 0)
    if amount <= 0:
        return []
    kind, mrr_impact = payment_kind(otherwise, mrr, movement)
    recurring = None if subscription is None else bool(invoice and invoice.get("recurring"))
    metadata = {} if invoice is None else {"invoice": invoice.text("id")}
    return [
        build(
            transaction.path,
            **await context.fields(context.customer_id(transaction, invoice)),
            amount=amount,
            currency=code,
            transaction_id=transaction.text("id"),
            event_type=kind,
            customer_subscription_id=subscription,
            mrr_impact=mrr_impact,
            is_recurring=recurring,
            metadata=metadata,
        )
    ]


def _subscription_id(context: Context, invoice: Node | None, transaction: Node) -> str | None:
    for entity in (invoice, transaction):
        found = None if entity is None else entity.maybe_text("subscription_id")
        if found:
            return found
    return None if context.subscription is None else context.subscription.text("id")


def _payment_kind(invoice: Node | None) -> EventType:
    """A payment's type when the MRR did not move: by its invoice."""
    if invoice is None or not invoice.get("subscription_id"):
        return EventType.PURCHASE
    if invoice.get("first_invoice") is True:
        return EventType.SUBSCRIPTION
    return EventType.RENEWAL if invoice.get("recurring") is True else EventType.PURCHASE


def _mrr(context: Context, subscription: str | None, exponent: int) -> Decimal | None:
    """The MRR the event's subscription entity states, in major units; None when unknown."""
    entity = context.subscription
    if subscription is None or entity is None or entity.get("id") != subscription:
        return None
    monthly = snapshot_mrr(entity)
    return None if monthly is None else major(monthly, exponent)


async def _snapshot(context: Context) -> list[RevenueEvent]:
    subscription = context.content.child("subscription")
    if context.ledger is None:
        return await _stateless(context, subscription)
    code = currency(subscription, "currency_code")
    monthly = snapshot_mrr(subscription)
    mrr = None if monthly is None else major(monthly, currency_exponent(code))
    stops = subscription.get("status") in ("cancelled", "paused")
    movement = await context.observe(subscription.text("id"), mrr, settle=stops, churn=stops)
    if movement is None or not stops or movement.change >= 0:
        return []  # a change, if any, rides on the next payment; a trial never had MRR
    return [await _churn(context, subscription, code, movement.change)]


async def _stateless(context: Context, subscription: Node) -> list[RevenueEvent]:
    """Churn for a cancellation, minus the items' MRR, unless it never activated."""
    if context.kind != "subscription_cancelled" or subscription.get("activated_at") is None:
        return []  # a trial cancelled in its trial never had MRR to lose
    code = currency(subscription, "currency_code")
    lost = items_mrr(subscription)
    if lost == 0:
        return []
    change = None if lost is None else major(-lost, currency_exponent(code))
    return [await _churn(context, subscription, code, change)]


async def _churn(
    context: Context, subscription: Node, code: str, change: Decimal | None
) -> RevenueEvent:
    """A churn (amount 0): one cancellation or pause of the subscription (its own id)."""
    subscription_id = subscription.text("id")
    status = str(subscription.get("status") or "cancelled")
    when_key = "pause_date" if status == "paused" else "cancelled_at"
    when = subscription.get(when_key) or context.envelope.text("id")
    return build(
        subscription.path,
        **await context.fields(context.customer_id(subscription)),
        amount=0,
        currency=code,
        transaction_id=f"{subscription_id}:{status}:{when}",
        event_type=EventType.CHURN,
        customer_subscription_id=subscription_id,
        mrr_impact=change,
        is_recurring=True,
        metadata={"reason": status},
    )
