"""Stripe webhook payloads for tests, built on the real shapes in ``fixtures/stripe/``.

Every builder copies a fixture that Stripe (or its SDKs, or a project that
recorded live traffic) wrote, and changes only the fields that a test step
needs; everything else stays as Stripe sent it, placeholders included. Two
API shapes: ``"old"`` (before 2025-03-31: ``invoice.subscription``,
``invoice.payment_intent``, lines with a ``price``, tax in
``total_tax_amounts`` / ``tax``) and ``"basil"`` (2025-03-31 and later:
``invoice.parent.subscription_details``, optional ``payments``, lines with
``pricing`` and ``parent``, tax in ``total_taxes``).

Amounts are integer minor units, as Stripe sends them.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping, Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal

import attrs

FIXTURES = Path(__file__).parent / "fixtures" / "stripe"
ATTRIBUTION = {"visitor_fingerprint": "fp_browser", "session_id": "sess_browser"}

Shape = Literal["old", "basil"]
API_VERSION: Mapping[Shape, str] = {"old": "2024-06-20", "basil": "2025-03-31.basil"}


@functools.cache
def _text(name: str) -> str:
    return (FIXTURES / f"{name}.json").read_text()


def fixture(name: str) -> dict[str, Any]:
    """A fresh copy of ``fixtures/stripe/{name}.json``."""
    loaded: dict[str, Any] = json.loads(_text(name))
    return loaded


def envelope(
    kind: str,
    obj: dict[str, Any],
    *,
    id: str,
    created: int,
    shape: Shape = "old",
    previous: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """*obj* in an event envelope (``event.json``), as Stripe sends it."""
    event = fixture("event")
    event.update(id=id, type=kind, created=created, api_version=API_VERSION[shape])
    event["data"] = {"object": obj}
    if previous is not None:
        event["data"]["previous_attributes"] = previous
    return event


@attrs.frozen
class Price:
    """A price in minor units; ``interval`` None is a one-time price."""

    id: str
    unit: Decimal  # minor units; a fraction of one is allowed (``unit_amount_decimal``)
    currency: str  # lower case, as Stripe writes it
    interval: str | None = "month"
    count: int = 1


@attrs.frozen
class Item:
    id: str
    price: Price
    quantity: int


@attrs.frozen
class Coupon:
    id: str
    percent: str  # "25", "33.33": exact, as the dashboard takes it
    duration: str  # "forever", "repeating" or "once"


@attrs.frozen
class Line:
    """An invoice line: a subscription item's (``item`` set) or a one-time invoice item's."""

    id: str
    price: Price
    quantity: int
    amount: int  # before discounts; negative for a proration credit
    period: tuple[int, int]
    item: str | None = None
    proration: bool = False
    discount: int = 0


def price_object(price: Price) -> dict[str, Any]:
    """A ``price`` object, from the subscription fixture's item price."""
    obj: dict[str, Any] = fixture("subscription")["items"]["data"][0]["price"]
    whole = price.unit == price.unit.to_integral_value()
    obj.update(
        id=price.id,
        currency=price.currency,
        unit_amount=int(price.unit) if whole else None,
        unit_amount_decimal=str(price.unit),
        transform_quantity=None,  # the fixture's is a schema placeholder
        product=f"prod_{price.id}",
    )
    if price.interval is None:
        obj.update(type="one_time", recurring=None)
    else:
        obj["recurring"].update(interval=price.interval, interval_count=price.count)
    return obj


def _plan(price: Price) -> dict[str, Any]:
    """The legacy ``plan`` of an item, kept in line with its price."""
    plan: dict[str, Any] = fixture("subscription")["items"]["data"][0]["plan"]
    whole = price.unit == price.unit.to_integral_value()
    plan.update(
        id=price.id,
        amount=int(price.unit) if whole else None,
        amount_decimal=str(price.unit),
        billing_scheme="per_unit",
        currency=price.currency,
        interval=price.interval,
        interval_count=price.count,
        livemode=False,
        product=f"prod_{price.id}",
        transform_usage=None,
    )
    return plan


def coupon_object(coupon: Coupon, created: int) -> dict[str, Any]:
    return {
        "id": coupon.id,
        "object": "coupon",
        "amount_off": None,
        "created": created,
        "currency": None,
        "duration": coupon.duration,
        "duration_in_months": 3 if coupon.duration == "repeating" else None,
        "livemode": False,
        "max_redemptions": None,
        "metadata": {},
        "name": None,
        "percent_off": float(coupon.percent),
        "redeem_by": None,
        "times_redeemed": 1,
        "valid": True,
    }


def subscription_object(
    *,
    id: str,
    customer: str,
    currency: str,
    items: Sequence[Item],
    status: str,
    created: int,
    period: tuple[int, int],
    pause_behavior: str | None = None,
    cancel_at_period_end: bool = False,
    coupon: Coupon | None = None,
    expanded_discounts: bool = False,
    trial: tuple[int, int] | None = None,
    ended_at: int | None = None,
    metadata: Mapping[str, str] = ATTRIBUTION,
) -> dict[str, Any]:
    """A ``subscription`` from ``subscription.json``.

    A coupon is the older ``discount`` object with its coupon, or (with
    *expanded_discounts*) an expanded ``discounts`` entry whose ``source``
    holds it, as 2024 and later API versions write it.
    """
    sub = fixture("subscription")
    template = sub["items"]["data"][0]
    data = []
    for item in items:
        entry = json.loads(json.dumps(template))
        entry.update(
            id=item.id,
            quantity=item.quantity,
            subscription=id,
            price=price_object(item.price),
            plan=_plan(item.price),
            current_period_start=period[0],
            current_period_end=period[1],
        )
        data.append(entry)
    sub["items"].update(data=data, url=f"/v1/subscription_items?subscription={id}")
    sub.update(
        id=id,
        customer=customer,
        currency=currency,
        status=status,
        created=created,
        start_date=created,
        billing_cycle_anchor=period[0],
        metadata=dict(metadata),
        pause_collection=None
        if pause_behavior is None
        else {"behavior": pause_behavior, "resumes_at": None},
        cancel_at_period_end=cancel_at_period_end,
        cancel_at=period[1] if cancel_at_period_end else None,
        canceled_at=ended_at,
        ended_at=ended_at,
        trial_start=None if trial is None else trial[0],
        trial_end=None if trial is None else trial[1],
        latest_invoice=None,
        pending_update=None,  # the fixture's is a placeholder
        next_pending_invoice_item_invoice=None,
        discounts=[],
    )
    sub["discount"] = None
    if coupon is not None:
        discount: dict[str, Any] = {
            "id": f"di_{coupon.id}",
            "object": "discount",
            "checkout_session": None,
            "customer": customer,
            "end": None,
            "invoice": None,
            "invoice_item": None,
            "promotion_code": None,
            "start": created,
            "subscription": id,
            "subscription_item": None,
        }
        if expanded_discounts:
            discount["source"] = {"type": "coupon", "coupon": coupon_object(coupon, created)}
            sub["discounts"] = [discount]
        else:
            discount["coupon"] = coupon_object(coupon, created)
            sub["discount"] = discount
            sub["discounts"] = [discount["id"]]
    return sub


def _line(line: Line, shape: Shape, *, invoice: str, subscription: str | None) -> dict[str, Any]:
    discounts = [{"amount": line.discount, "discount": "di_line"}] if line.discount else []
    common = {
        "id": line.id,
        "amount": line.amount,
        "currency": line.price.currency,
        "invoice": invoice,
        "quantity": line.quantity,
        "period": {"start": line.period[0], "end": line.period[1]},
        "discount_amounts": discounts,
        "discountable": True,
        "metadata": {},
    }
    if shape == "basil":
        obj: dict[str, Any] = fixture("basil_invoice_line_item")
        obj.update(common)
        proration = {"credited_items": None}
        if line.item is not None:
            parent: dict[str, Any] = {
                "type": "subscription_item_details",
                "invoice_item_details": None,
                "subscription_item_details": {
                    "invoice_item": None,
                    "proration": line.proration,
                    "proration_details": proration,
                    "subscription": subscription,
                    "subscription_item": line.item,
                },
            }
        else:
            parent = {
                "type": "invoice_item_details",
                "subscription_item_details": None,
                "invoice_item_details": {
                    "invoice_item": f"ii_{line.id}",
                    "proration": line.proration,
                    "proration_details": proration,
                    "subscription": subscription,
                },
            }
        obj.update(
            parent=parent,
            pricing={
                "type": "price_details",
                "price_details": {"price": line.price.id, "product": f"prod_{line.price.id}"},
                "unit_amount_decimal": str(line.price.unit),
            },
            subtotal=line.amount,
            pretax_credit_amounts=[
                {"amount": line.discount, "discount": "di_line", "type": "discount"}
            ]
            if line.discount
            else [],
            taxes=[],
        )
        return obj
    obj = fixture("invoice")["lines"]["data"][0]
    for basil_only in ("parent", "pricing", "pretax_credit_amounts", "subtotal", "taxes"):
        obj.pop(basil_only, None)
    obj.pop("quantity_decimal", None)
    obj.update(common)
    obj.update(
        price=price_object(line.price),
        plan=None if line.item is None else _plan(line.price),
        proration=line.proration,
        subscription=subscription,
        subscription_item=line.item,
        type="subscription" if line.item is not None else "invoiceitem",
        invoice_item=None if line.item is not None else f"ii_{line.id}",
        tax_amounts=[],
    )
    return obj


def invoice_object(
    *,
    id: str,
    shape: Shape,
    customer: str | None,
    currency: str,
    reason: str,
    lines: Sequence[Line],
    created: int,
    tax: int = 0,
    tax_field: str = "total_tax_amounts",
    payment_intent: str | None = None,
    subscription: str | None = None,
    metadata: Mapping[str, str] | None = None,
    subscription_metadata: Mapping[str, str] | None = None,
    base: str = "invoice",
) -> dict[str, Any]:
    """A paid invoice; ``amount_paid`` is its lines less their discounts, plus *tax*.

    *payment_intent*, on a basil invoice, is written into its ``payments``
    (which webhooks carry only when expanded); None leaves them out.
    *tax_field* chooses where an old invoice says its tax: ``"total_tax_amounts"``
    (and ``tax``), or ``"tax"`` alone (the oldest versions).
    """
    invoice = fixture(base)
    subtotal = sum(line.amount for line in lines)
    discount = sum(line.discount for line in lines)
    total = subtotal - discount + tax
    paid = max(total, 0)
    invoice.update(
        id=id,
        object="invoice",
        customer=customer,
        currency=currency,
        billing_reason=reason,
        created=created,
        effective_at=created,
        period_start=created,
        period_end=created,
        status="paid",
        paid=True,
        attempted=True,
        attempt_count=1,
        amount_due=paid,
        amount_paid=paid,
        amount_remaining=0,
        amount_overpaid=0,
        subtotal=subtotal,
        subtotal_excluding_tax=subtotal,
        total=total,
        total_excluding_tax=total - tax,
        total_discount_amounts=[{"amount": discount, "discount": "di_line"}] if discount else [],
        metadata=dict(metadata or {}),
        from_invoice=None,
        last_finalization_error=None,
        shipping_cost=None,
        status_transitions={
            "finalized_at": created,
            "marked_uncollectible_at": None,
            "paid_at": created,
            "voided_at": None,
        },
    )
    invoice["lines"] = {
        "object": "list",
        "data": [_line(line, shape, invoice=id, subscription=subscription) for line in lines],
        "has_more": False,
        "total_count": len(lines),
        "url": f"/v1/invoices/{id}/lines",
    }
    details_metadata = dict(subscription_metadata or {})
    if shape == "basil":
        for old_only in ("subscription", "payment_intent", "tax", "total_tax_amounts", "charge"):
            invoice.pop(old_only, None)
        invoice["parent"] = (
            None
            if subscription is None
            else {
                "type": "subscription_details",
                "quote_details": None,
                "subscription_details": {
                    "metadata": details_metadata,
                    "subscription": subscription,
                },
            }
        )
        invoice["total_taxes"] = [
            {
                "amount": tax,
                "tax_behavior": "exclusive",
                "tax_rate_details": {"tax_rate": "txr_1"},
                "taxability_reason": "standard_rated",
                "taxable_amount": subtotal - discount,
                "type": "tax_rate_details",
            }
        ]
        if payment_intent is not None:
            entry = fixture("basil_invoice_payment")
            entry.update(
                id=f"inpay_{id}",
                invoice=id,
                currency=currency,
                amount_paid=paid,
                amount_requested=paid,
                created=created,
                is_default=True,
                livemode=False,
                status="paid",
                payment={"type": "payment_intent", "payment_intent": payment_intent},
                status_transitions={"canceled_at": None, "paid_at": created},
            )
            invoice["payments"] = {
                "object": "list",
                "data": [entry],
                "has_more": False,
                "url": f"/v1/invoice_payments?invoice={id}",
            }
        return invoice
    for basil_only in ("parent", "total_taxes", "total_pretax_credit_amounts", "payments"):
        invoice.pop(basil_only, None)
    invoice.update(subscription=subscription, payment_intent=payment_intent, charge=None)
    invoice["subscription_details"] = {"metadata": details_metadata}
    invoice["tax"] = tax
    if tax_field == "total_tax_amounts":
        invoice["total_tax_amounts"] = [{"amount": tax, "inclusive": False, "tax_rate": "txr_1"}]
    else:
        invoice.pop("total_tax_amounts", None)
    return invoice


def checkout_session_object(
    *,
    id: str,
    payment_intent: str | None,
    currency: str,
    total: int,
    tax: int,
    customer: str | None,
    created: int,
    mode: str = "payment",
    subscription: str | None = None,
) -> dict[str, Any]:
    """A completed, paid Checkout Session, from ``checkout_session.json``."""
    session = fixture("checkout_session")
    session.update(
        id=id,
        mode=mode,
        status="complete",
        payment_status="paid",
        payment_intent=payment_intent,
        subscription=subscription,
        currency=currency,
        amount_subtotal=total - tax,
        amount_total=total,
        customer=customer,
        created=created,
        metadata=dict(ATTRIBUTION),
        total_details={"amount_discount": 0, "amount_shipping": 0, "amount_tax": tax},
        shipping_cost=None,
        currency_conversion=None,
        url=None,
    )
    return session


def payment_intent_object(
    *,
    id: str,
    currency: str,
    amount: int,
    customer: str | None,
    created: int,
    metadata: Mapping[str, str],
    invoice: str | None = None,
    shape: Shape = "basil",
) -> dict[str, Any]:
    """A succeeded PaymentIntent, from ``basil_payment_intent.json``.

    Before 2025-03-31 a PaymentIntent named its ``invoice`` (null for one of
    its own); basil removed the field.
    """
    intent = fixture("basil_payment_intent")
    intent.update(
        id=id,
        client_secret=f"{id}_secret_test",
        currency=currency,
        amount=amount,
        amount_received=amount,
        amount_capturable=0,
        customer=customer,
        created=created,
        metadata=dict(metadata),
        status="succeeded",
        canceled_at=None,
        last_payment_error=None,
        next_action=None,
        latest_charge=f"ch_{id}",
        processing=None,
    )
    if shape == "old":
        intent["invoice"] = invoice
    return intent


def refunded_charge_object(
    *,
    id: str,
    payment_intent: str,
    currency: str,
    amount: int,
    refunded: int,
    customer: str | None,
    created: int,
    refunds: Sequence[int] = (),
    metadata: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """A charge after a refund, from ``charge.json``; *refunds* (each amount) newest first."""
    charge = fixture("charge")
    refund_objects = []
    for n, part in enumerate(refunds):
        refund = fixture("basil_refund")
        refund.update(
            id=f"re_{id}_{len(refunds) - n}",
            amount=part,
            charge=id,
            payment_intent=payment_intent,
            currency=currency,
            created=created,
        )
        refund_objects.append(refund)
    charge.update(
        id=id,
        payment_intent=payment_intent,
        currency=currency,
        amount=amount,
        amount_captured=amount,
        captured=True,
        amount_refunded=refunded,
        refunded=refunded == amount,
        customer=customer,
        created=created,
        metadata=dict(metadata or {}),
        source=None,  # the fixture's is a placeholder
    )
    charge["refunds"] = {
        "object": "list",
        "data": refund_objects,
        "has_more": False,
        "url": f"/v1/charges/{id}/refunds",
    }
    return charge
