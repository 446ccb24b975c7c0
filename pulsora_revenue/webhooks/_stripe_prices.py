"""Stripe prices: the monthly amount of subscription items and invoice lines."""

from __future__ import annotations

from decimal import Decimal
from fractions import Fraction

from ._common import major, monthly
from ._payload import Node


def invoice_mrr(lines: Node | None, code: str, exponent: int) -> Decimal | None:
    """The monthly amount of an invoice's subscription lines in *code*; None if the shape hides it.

    Invoices of API versions from 2025-03-31 carry only a price id on their
    lines, not its interval: then the MRR is not in the payload. Nor is it
    when the lines are absent or only their first page is there, or when
    every subscription line is a proration (a subscription anchored to a day).
    """
    if lines is None or lines.get("has_more") is True:
        return None
    billed = [line for line in lines.items("data") if line.get("proration") is not True]
    if any(line.maybe_child("price") is None for line in billed):
        return None
    recurring = [line for line in billed if line.child("price").get("recurring") is not None]
    total = items_mrr(recurring, code) if recurring else None
    return None if total is None else major(total, exponent)


def items_mrr(items: list[Node], code: str) -> Fraction | None:
    """The monthly amount, in minor units of *code*, of subscription items; None if unknown."""
    total = Fraction(0)
    for item in items:
        price = item.child("price")
        recurring = price.maybe_child("recurring")
        if recurring is not None:
            amount = _monthly_price(price, recurring, _quantity(item), code)
            if amount is None:
                return None
            total += amount
    return total


def _quantity(node: Node) -> int:
    """The quantity of an item or line; absent means one (zero stays zero)."""
    return 1 if node.get("quantity") is None else node.integer("quantity")


def _monthly_price(price: Node, recurring: Node, quantity: int, code: str) -> Fraction | None:
    """The monthly amount in minor units of *code*; None when the payload does not say it.

    That is a price without a unit amount (tiered), or in another currency
    without a unit amount in *code* among its ``currency_options``.
    """
    if recurring.get("usage_type") == "metered":
        return Fraction(0)  # billed by use afterwards: not recurring revenue
    amounts = _amounts_in(price, code)
    unit = None if amounts is None else _unit_amount(amounts)
    if unit is None:
        return None
    count = 1 if recurring.get("interval_count") is None else recurring.integer("interval_count")
    billed = _packages(price.maybe_child("transform_quantity"), quantity)
    return monthly(Fraction(unit) * billed, recurring.text("interval"), count, recurring.path)


def _amounts_in(price: Node, code: str) -> Node | None:
    """The node holding *price*'s unit amount in *code*: the price, or a currency option."""
    own = price.maybe_text("currency")
    if own is None or own.upper() == code:
        return price
    options = price.maybe_child("currency_options")
    return None if options is None else options.maybe_child(code.lower())


def _unit_amount(amounts: Node) -> Decimal | None:
    """The unit amount in minor units; None without one (tiered or custom pricing)."""
    if amounts.get("unit_amount_decimal") is not None:
        return amounts.decimal("unit_amount_decimal")
    if amounts.get("unit_amount") is not None:
        return amounts.decimal("unit_amount")
    return None


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
