"""Paddle prices: the monthly amount of a subscription's items and of a transaction's lines.

All amounts are ``Fraction``s of minor units, rounded once by the caller, and
None where the payload does not say the amount: a price in another currency
without one override in the subscription's, a tax-inclusive price (the tax in
it is not in the payload), a discount whose amount the subscription does not
carry, a prorated line.
"""

from __future__ import annotations

from datetime import datetime
from fractions import Fraction

from ._common import moment, monthly, net_of_tax
from ._payload import Node

#: Statuses in which a subscription bills nothing: its MRR is 0.
NOT_BILLING = frozenset({"trialing", "paused", "canceled"})


def snapshot_mrr(subscription: Node, code: str, as_of: datetime) -> Fraction | None:
    """The MRR a subscription entity states: 0 while it bills nothing; None if unknown.

    Only items that bill now count (item status ``active``; ``trialing`` and
    ``inactive`` items bill nothing) and only recurring ones. A discount's
    amount is not in the entity, so while one applies the MRR is unknown.
    """
    if subscription.text("status") in NOT_BILLING:
        return Fraction(0)
    if discounted(subscription, as_of):
        return None
    billing = [
        item for item in subscription.items("items") if item.get("status") in (None, "active")
    ]
    return items_mrr(billing, code)


def lost_mrr(subscription: Node, code: str, as_of: datetime) -> Fraction | None:
    """The MRR a paused or cancelled subscription billed before it stopped; None if unknown.

    Its items may be ``inactive`` by now; ``trialing`` ones never billed.
    """
    if discounted(subscription, as_of):
        return None
    return items_mrr(
        [i for i in subscription.items("items") if i.get("status") != "trialing"], code
    )


def discounted(subscription: Node, as_of: datetime) -> bool:
    """Whether a discount applies to the subscription at *as_of* (its end is open or later)."""
    discount = subscription.maybe_child("discount")
    if discount is None:
        return False
    ends = moment(discount.get("ends_at"), f"{discount.path}.ends_at")
    return ends is None or ends > as_of


def items_mrr(items: list[Node], code: str) -> Fraction | None:
    """The monthly amount of recurring *items* at their list prices in *code*; None if unknown."""
    total = Fraction(0)
    for item in items:
        price = item.child("price")
        cycle = price.maybe_child("billing_cycle")
        if cycle is None or item.get("recurring") is False:
            continue  # a one-time item
        unit = unit_price(price, code)
        if unit is None:
            return None
        total += _monthly(unit * item.integer("quantity"), cycle)
    return total


def transaction_mrr(transaction: Node, code: str) -> Fraction | None:
    """The monthly amount of a transaction's recurring lines, net of discounts, without tax.

    A line is matched to its item's price for the billing cycle. Without
    line items, the items' list prices; a prorated line (not a whole period)
    says nothing of the MRR: None.
    """
    lines = transaction.child("details").items("line_items")
    if not lines:
        return items_mrr(transaction.items("items"), code)
    cycles = _cycles(transaction.items("items"))
    total = Fraction(0)
    for line in lines:
        cycle = cycles.get(str(line.get("price_id")))
        if cycle is None:
            continue  # a one-time line
        if _prorated(line):
            return None
        totals = line.child("totals")
        net = net_of_tax(totals.minor_units("total"), totals.minor_units("tax"), include_tax=False)
        total += _monthly(net, cycle)
    return total


def paid(transaction: Node, *, include_tax: bool) -> int:
    """What the customer paid, in minor units: after discounts and credits, less its tax.

    ``grand_total_tax`` is the tax in the grand total once credits are spent
    (Paddle, 2026); before, ``tax`` was.
    """
    totals = transaction.child("details").child("totals")
    tax_key = "grand_total_tax" if totals.get("grand_total_tax") is not None else "tax"
    grand_total = totals.minor_units("grand_total")
    return net_of_tax(grand_total, totals.minor_units(tax_key), include_tax=include_tax)


def unit_price(price: Node, code: str) -> int | None:
    """The unit price in minor units of *code*, without tax; None when the payload hides it.

    A price is in Paddle's base currency; a subscription in another currency
    is billed at the ``unit_price_overrides`` in *code*, if they agree on one
    amount (several amounts: which country?). A tax-inclusive price has an
    unknown tax in it.
    """
    if price.get("tax_mode") == "internal":
        return None
    unit = price.child("unit_price")
    if unit.get("currency_code") in (None, code):
        return unit.minor_units("amount")
    overrides = {
        override.child("unit_price").minor_units("amount")
        for override in price.items("unit_price_overrides")
        if override.child("unit_price").get("currency_code") == code
    }
    return overrides.pop() if len(overrides) == 1 else None


def _cycles(items: list[Node]) -> dict[str, Node]:
    """The billing cycle of each recurring item's price, by price id."""
    cycles = {}
    for item in items:
        price = item.child("price")
        cycle = price.maybe_child("billing_cycle")
        if cycle is not None:
            cycles[str(price.get("id"))] = cycle
    return cycles


def _prorated(line: Node) -> bool:
    """Whether *line* bills part of a period (a proration rate other than 1)."""
    proration = line.maybe_child("proration")
    return proration is not None and proration.decimal("rate") != 1


def _monthly(per_cycle: Fraction | int, cycle: Node) -> Fraction:
    return monthly(per_cycle, cycle.text("interval"), cycle.integer("frequency"), cycle.path)
