"""Stripe prices: the monthly amount of subscription items and invoice lines."""

from __future__ import annotations

from decimal import Decimal
from fractions import Fraction

from ._common import major, monthly
from ._payload import Node


def invoice_mrr(lines: Node | None, exponent: int) -> Decimal | None:
    """The monthly amount of an invoice's subscription lines; None if the shape hides it.

    Invoices of API versions from 2025-03-31 carry only a price id on their
    lines, not its interval: then the MRR is not in the payload.
    """
    total = Fraction(0)
    for line in lines.items("data") if lines else []:
        if line.get("proration") is True:
            continue
        price = line.maybe_child("price")
        if price is None:
            return None
        recurring = price.maybe_child("recurring")
        if recurring is None:
            continue  # a one-off item on the invoice
        amount = _monthly_price(price, recurring, _quantity(line))
        if amount is None:
            return None
        total += amount
    return major(total, exponent)


def _quantity(node: Node) -> int:
    """The quantity of an item or line; absent means one (zero stays zero)."""
    return 1 if node.get("quantity") is None else node.integer("quantity")


def _monthly_price(price: Node, recurring: Node, quantity: int) -> Fraction | None:
    """The monthly amount in minor units; None for prices without a unit amount (tiered)."""
    if recurring.get("usage_type") == "metered":
        return Fraction(0)  # billed by use afterwards: not recurring revenue
    if price.get("unit_amount_decimal") is not None:
        unit = price.decimal("unit_amount_decimal")
    elif price.get("unit_amount") is not None:
        unit = price.decimal("unit_amount")
    else:
        return None  # tiered or custom pricing: the amount depends on usage we do not see
    count = 1 if recurring.get("interval_count") is None else recurring.integer("interval_count")
    billed = _packages(price.maybe_child("transform_quantity"), quantity)
    return monthly(Fraction(unit) * billed, recurring.text("interval"), count, recurring.path)


def _packages(transform: Node | None, quantity: int) -> int:
    """How many units are billed: with package pricing, packages of ``divide_by``."""
    if transform is None:
        return quantity
    divide_by, rounding = transform.integer("divide_by"), transform.get("round")
    if divide_by < 1:
        raise transform.wrong("divide_by", "a positive integer", divide_by)
    if rounding not in ("up", "down"):
        raise transform.wrong("round", '"up" or "down"', rounding)
    packages, rest = divmod(quantity, divide_by)
    return packages + 1 if rest and rounding == "up" else packages


def items_mrr(items: list[Node]) -> Fraction | None:
    """The monthly amount, in minor units, of subscription items; None if unknown."""
    total = Fraction(0)
    for item in items:
        price = item.child("price")
        recurring = price.maybe_child("recurring")
        if recurring is not None:
            amount = _monthly_price(price, recurring, _quantity(item))
            if amount is None:
                return None
            total += amount
    return total
