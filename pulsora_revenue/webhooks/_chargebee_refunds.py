"""Chargebee refunds: one refund transaction, described by two events, reported once.

``payment_refunded`` carries the refund transaction; ``credit_note_created`` the
credit note, whose ``linked_refunds`` name the same transaction. Both report it under
the refund transaction's id, net of the credit note's taxes in proportion.
"""

from __future__ import annotations

from .._event import RevenueEvent
from .._fields import EventType
from .._money import currency_exponent
from ._chargebee_context import PROCESSOR, SUCCEEDED, Context, invoice_tax
from ._chargebee_state import share
from ._common import build, currency, major, net_of_tax
from ._payload import Node


async def refund(context: Context) -> list[RevenueEvent]:
    transaction = context.content.child("transaction")
    if transaction.get("type") != "refund" or transaction.get("status") not in SUCCEEDED:
        return []
    gross = transaction.minor_units("amount")
    credit_note = context.content.maybe_child("credit_note")
    invoice = context.content.maybe_child("invoice")
    original = _original(transaction)
    if credit_note is not None:
        tax = _credit_note_tax(credit_note, gross)
    elif invoice is not None:
        tax = invoice_tax(invoice, gross)
    else:
        tax = await _tax_as_paid(context, original, gross)
    subscription = transaction.maybe_text("subscription_id") or (
        invoice and invoice.maybe_text("subscription_id")
    )
    return await _refund_event(
        context,
        transaction,
        refund_id=transaction.text("id"),
        gross=gross,
        tax=tax,
        code=currency(transaction, "currency_code"),
        subscription=subscription or None,
        customer_id=context.customer_id(transaction, credit_note, invoice),
        original=original,
    )


async def credit_note(context: Context) -> list[RevenueEvent]:
    credit_note = context.content.child("credit_note")
    code = currency(credit_note, "currency_code")
    events = []
    for refund in credit_note.items("linked_refunds"):
        if refund.get("txn_status") not in SUCCEEDED:
            continue  # not (yet) money returned: payment_refunded will say when it is
        gross = refund.minor_units("applied_amount")
        events += await _refund_event(
            context,
            refund,
            refund_id=refund.text("txn_id"),
            gross=gross,
            tax=_credit_note_tax(credit_note, gross),
            code=code,
            subscription=credit_note.maybe_text("subscription_id"),
            customer_id=context.customer_id(credit_note),
            original=None,
        )
    return events


async def _refund_event(
    context: Context,
    node: Node,
    *,
    refund_id: str,
    gross: int,
    tax: int,
    code: str,
    subscription: str | None,
    customer_id: str | None,
    original: str | None,
) -> list[RevenueEvent]:
    net = net_of_tax(gross, tax, include_tax=context.include_tax)
    refunded = await context.first(refund_id, gross, net)
    amount = major(refunded.net, currency_exponent(code))
    if amount <= 0:
        return []
    return [
        build(
            node.path,
            **await context.fields(customer_id),
            amount=-amount,
            currency=code,
            transaction_id=refund_id,
            event_type=EventType.REFUND,
            customer_subscription_id=subscription,
            metadata={} if original is None else {"original_transaction": original},
        )
    ]


def _credit_note_tax(credit_note: Node, refunded: int) -> int:
    """The tax in *refunded* of the credit note: its taxes, in proportion to its total."""
    tax = sum(entry.minor_units("amount") for entry in credit_note.items("taxes"))
    total = credit_note.minor_units("total") if credit_note.get("total") is not None else refunded
    return share(tax, refunded, total)


def _original(transaction: Node) -> str | None:
    """The payment a refund transaction returns, if it says."""
    for key in ("reference_transaction_id", "refunded_txn_id"):
        found = transaction.maybe_text(key)
        if found:
            return found
    linked = transaction.items("linked_payments")
    return linked[0].maybe_text("id") if linked else None


async def _tax_as_paid(context: Context, original: str | None, gross: int) -> int:
    """Without an invoice or credit note: the tax in the same share as the payment had."""
    if original is None or context.ledger is None:
        return 0
    paid = await context.ledger.payment(f"{PROCESSOR}:{original}", None)
    if paid is None or paid.gross <= 0:
        return 0
    return share(paid.gross - paid.net, gross, paid.gross)
