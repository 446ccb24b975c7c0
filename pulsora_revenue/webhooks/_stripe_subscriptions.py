"""Stripe subscriptions: paid invoices, and the subscription's own events, through the ledger.

With a ledger, every subscription event and paid invoice is a snapshot of
the subscription's MRR; a paid invoice carries the MRR change since the last
one reported, and a cancellation or pause carries it as a churn of amount 0.
Without one, each event says what it can alone (see the README's limits).
"""

from __future__ import annotations

from decimal import Decimal
from fractions import Fraction

from .._event import RevenueEvent
from .._fields import EventType
from ._common import build, currency, impact, moment, moved_kind
from ._ledger import Observation
from ._payload import Node
from ._stripe_context import (
    Context,
    Sources,
    customer,
    extra,
    money,
    own_metadata,
    required,
)
from ._stripe_prices import billing, invoice_mrr, items_mrr, subscription_mrr

#: The type of a paid invoice of a subscription, by ``billing_reason``, when the MRR
#: did not move (or there is no ledger to say).
_KINDS = {
    "subscription_create": EventType.SUBSCRIPTION,
    "subscription_cycle": EventType.RENEWAL,
    "subscription_update": EventType.UPGRADE,  # a prorated charge: more was bought
    "subscription_threshold": EventType.RENEWAL,  # usage billed before the period ends
}

#: Invoices whose lines are the subscription's whole recurring bill.
_WHOLE = frozenset({"subscription_create", "subscription_cycle"})


async def invoice_paid(context: Context) -> list[RevenueEvent]:
    """``invoice.paid``: cash, of a subscription or not; with a ledger, the MRR it moved."""
    invoice = context.object
    code = currency(invoice, "currency")
    reason = str(invoice.get("billing_reason"))
    subscription = _subscription_of(invoice)
    paid = invoice.integer("amount_paid")
    payment = _payment_intent(invoice) or invoice.text("id")
    amount = await context.revenue(payment, paid, _tax_in(invoice, paid)) if paid > 0 else 0
    lines = invoice.maybe_child("lines")
    # With a ledger, only lines that say the MRR exactly; the subscription's snapshots do.
    whole = invoice_mrr(lines, code, exact=context.ledger is not None) if reason in _WHOLE else None
    mrr = None if whole is None or amount <= 0 else money(whole, code)
    movement = None
    if subscription is not None and context.ledger is not None:
        seen = Observation(
            f"stripe:{subscription}",
            context.event_id,
            as_of=moment(invoice.get("created"), f"{invoice.path}.created") or context.created,
            mrr=mrr,
            settle=amount > 0,
            billing=True if amount > 0 and reason in _WHOLE else None,  # paid for: it bills
        )
        movement = await context.ledger.observe(seen)
    if amount <= 0:
        return []  # a trial's or a fully discounted invoice: no revenue, no MRR to carry
    otherwise = _KINDS.get(reason, EventType.PURCHASE) if subscription else EventType.PURCHASE
    kind = otherwise if movement is None else moved_kind(movement, otherwise)
    sources = _invoice_sources(invoice)
    customer_id = customer(invoice, sources)
    return [
        build(
            invoice.path,
            **await context.attribution(sources, customer_id),
            **context.common(),
            customer_id=required(invoice, customer_id),
            amount=money(amount, code),
            currency=code,
            transaction_id=payment,
            event_type=kind,
            customer_subscription_id=subscription,
            mrr_impact=impact(movement) if movement else _stateless_mrr(kind, mrr),
            is_recurring=subscription is not None and kind is not EventType.PURCHASE,
            metadata=extra(stripe_invoice=invoice.text("id")),
        )
    ]


def _stateless_mrr(kind: EventType, mrr: Decimal | None) -> Decimal | None:
    """Without a ledger, only a subscription's first invoice says its MRR (all of it)."""
    return mrr if kind is EventType.SUBSCRIPTION else None


async def subscription_changed(context: Context) -> list[RevenueEvent]:
    """``customer.subscription.*``: a snapshot; a churn when it ends or pauses what was reported."""
    subscription = context.object
    code = currency(subscription, "currency")
    ended = context.envelope.get("type") == "customer.subscription.deleted" or subscription.get(
        "status"
    ) in ("canceled", "incomplete_expired")
    paused = not ended and (
        subscription.get("status") == "paused" or bool(subscription.get("pause_collection"))
    )
    if context.ledger is None:
        return await _stateless_end(context, code) if ended else []
    mrr = Fraction(0) if ended else subscription_mrr(subscription, code)
    seen = Observation(
        f"stripe:{subscription.text('id')}",
        context.event_id,
        as_of=context.created,
        mrr=None if mrr is None else money(mrr, code),
        settle=ended or paused,
        ended=ended,
        billing=billing(subscription),
        churn=True,
    )
    movement = await context.ledger.observe(seen)
    if movement.change >= 0:
        return []  # nothing was lost (a trial that never paid); gains ride on the next invoice
    return [await _churn(context, code, movement.change, paused=paused)]


async def _churn(
    context: Context, code: str, mrr_impact: Decimal | None, *, paused: bool
) -> RevenueEvent:
    subscription = context.object
    subscription_id = subscription.text("id")
    sources = own_metadata(subscription)
    customer_id = customer(subscription, sources)
    return build(
        subscription.path,
        **await context.attribution(sources, customer_id),
        **context.common(),
        customer_id=required(subscription, customer_id),
        amount=0,
        currency=code,
        # One churn per subscription; a pause is its own, each time.
        transaction_id=f"{subscription_id}:paused:{context.event_id}"
        if paused
        else subscription_id,
        event_type=EventType.CHURN,
        customer_subscription_id=subscription_id,
        mrr_impact=mrr_impact,
        is_recurring=True,
        metadata={"reason": "paused" if paused else "canceled"},
    )


async def _stateless_end(context: Context, code: str) -> list[RevenueEvent]:
    """Without a ledger: the MRR of the items as lost, unless it never billed (a trial)."""
    subscription = context.object
    items = subscription.child("items").items("data")
    if not items or _never_billed(subscription):
        return []
    lost = items_mrr(items, code)
    mrr_impact = None if lost is None else money(-lost, code)
    return [await _churn(context, code, mrr_impact, paused=False)]


def _never_billed(subscription: Node) -> bool:
    """Whether a subscription ended before it ever billed: in its trial, or never paid."""
    if subscription.get("status") == "incomplete_expired":
        return True
    trial_end = moment(subscription.get("trial_end"), f"{subscription.path}.trial_end")
    ended = moment(
        subscription.get("ended_at") or subscription.get("canceled_at"),
        f"{subscription.path}.ended_at",
    )
    return trial_end is not None and ended is not None and ended <= trial_end


def _subscription_of(invoice: Node) -> str | None:
    parent = invoice.maybe_child("parent")
    details = parent.maybe_child("subscription_details") if parent else None
    return (details.id("subscription") if details else None) or invoice.id("subscription")


def _payment_intent(invoice: Node) -> str | None:
    """The PaymentIntent that paid *invoice*: the canonical id of its payment, when named."""
    older = invoice.id("payment_intent")
    if older is not None:
        return older
    payments = invoice.maybe_child("payments")
    for entry in payments.items("data") if payments else []:
        payment = entry.maybe_child("payment")
        if payment is not None and entry.get("status") in (None, "paid"):
            found = payment.id("payment_intent")
            if found is not None:
                return found
    return None


def _tax_in(invoice: Node, paid: int) -> int:
    """The tax in what was paid of *invoice*, in minor units (in proportion, if part-paid)."""
    tax = _tax(invoice)
    total = invoice.maybe_integer("total")
    if not tax or total is None or total <= 0 or total == paid:
        return tax
    return round(Fraction(tax * paid, total))


def _tax(invoice: Node) -> int:
    for key in ("total_taxes", "total_tax_amounts"):  # 2025-03-31 and later; before
        if invoice.get(key) is not None:
            return sum(tax.integer("amount") for tax in invoice.items(key))
    return invoice.maybe_integer("tax") or 0


def _invoice_sources(invoice: Node) -> Sources:
    """Where an invoice's attribution may be: its own metadata, its subscription's, its lines'."""
    sources = own_metadata(invoice)
    parent = invoice.maybe_child("parent")
    details = parent.maybe_child("subscription_details") if parent else None
    for where in (details, invoice.maybe_child("subscription_details")):
        if where is not None:
            sources.append((f"{where.path}.metadata", where.metadata("metadata")))
    lines = invoice.maybe_child("lines")
    for line in lines.items("data") if lines else []:
        sources.append((f"{line.path}.metadata", line.metadata("metadata")))
    return sources
