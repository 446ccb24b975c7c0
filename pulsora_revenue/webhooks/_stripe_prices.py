"""Stripe prices: the monthly amount of subscriptions and of invoices' subscription lines."""

from __future__ import annotations

import calendar
from collections.abc import Mapping
from datetime import UTC, datetime
from decimal import Decimal
from fractions import Fraction

from ._common import MONTHS_PER_INTERVAL, monthly
from ._payload import Node

#: Subscription statuses that bill nothing: their MRR is 0 (``canceled`` ends it).
NOT_BILLING = frozenset({"trialing", "incomplete", "incomplete_expired", "paused", "canceled"})


def billing(subscription: Node) -> bool:
    """Whether *subscription* bills its items: not in a trial, a pause, nor before paying."""
    return subscription.get("status") not in NOT_BILLING and not subscription.get(
        "pause_collection"
    )


def subscription_mrr(subscription: Node, code: str) -> Fraction | None:
    """The monthly amount, in minor units of *code*, that *subscription*'s items bill.

    Net of its recurring discounts where the payload holds the coupon; what
    it bills while in a trial or paused too (``billing`` says whether it does).
    None when the payload does not say (a tiered price).
    """
    items = subscription.child("items").items("data")
    gross = items_mrr(items, code)
    if gross is None:
        return None
    return _discounted(gross, subscription, code, items)


def invoice_mrr(lines: Node | None, code: str, *, exact: bool) -> Fraction | None:
    """The monthly amount, in minor units of *code*, of an invoice's subscription lines.

    Both shapes: lines with a ``price`` (before API 2025-03-31) and lines
    with ``pricing.price_details``, which carry no interval: that is guessed
    from the line's period, unless *exact*. Discounts on the lines are taken
    off, unless *exact*, which says nothing then (the subscription knows
    whether its coupon recurs). None when the payload hides it: lines absent
    or only their first page, every subscription line prorated, a tiered price.
    """
    if lines is None or lines.get("has_more") is True:
        return None
    recurring = [line for line in lines.items("data") if _recurring(line)]
    billed = [line for line in recurring if not _prorated(line)]
    if not billed or (exact and any(_discount(line) for line in billed)):
        return None
    total = Fraction(0)
    for line in billed:
        amount = _line_mrr(line, code, exact=exact)
        if amount is None:
            return None
        total += amount
    return total


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


def _recurring(line: Node) -> bool:
    """Whether an invoice line bills a subscription item (not a one-off invoice item)."""
    price = line.maybe_child("price")
    if price is not None:
        return price.get("recurring") is not None
    parent = line.maybe_child("parent")
    return parent is not None and parent.get("type") == "subscription_item_details"


def _prorated(line: Node) -> bool:
    if line.get("price") is not None:  # the shape before 2025-03-31
        return line.get("proration") is True
    parent = line.maybe_child("parent")
    details = parent.maybe_child("subscription_item_details") if parent else None
    return details is not None and details.get("proration") is True


def _line_mrr(line: Node, code: str, *, exact: bool) -> Fraction | None:
    discount = _discount(line)
    price = line.maybe_child("price")
    if price is not None:
        recurring = price.child("recurring")
        gross = _monthly_price(price, recurring, _quantity(line), code)
        return None if gross is None else gross - _per_month(discount, recurring)
    pricing = line.maybe_child("pricing")
    unit = None if pricing is None or exact else _unit_amount(pricing)
    months = _period_months(line.child("period"))
    if unit is None or months is None:
        return None
    return (Fraction(unit) * _quantity(line) - discount) / months


def _discount(line: Node) -> int:
    """What discounts took off a line, in minor units."""
    return sum(each.minor_units("amount") for each in line.items("discount_amounts"))


def _period_months(period: Node) -> Fraction | None:
    """The months in a billing period, from its dates: whole months, else weeks or days."""
    start, end = (_utc(period, key) for key in ("start", "end"))
    if end <= start:
        return None
    months = (end.year - start.year) * 12 + end.month - start.month
    if months and start.time() == end.time() and _same_day_of_month(start, end):
        return Fraction(months)
    days, rest = divmod(int((end - start).total_seconds()), 86_400)
    if rest or not days:
        return None
    if days % 7 == 0:
        return MONTHS_PER_INTERVAL["week"] * (days // 7)
    return MONTHS_PER_INTERVAL["day"] * days


def _utc(period: Node, key: str) -> datetime:
    seconds = period.integer(key)
    try:
        return datetime.fromtimestamp(seconds, UTC)
    except (OverflowError, OSError, ValueError):
        raise period.wrong(key, "a timestamp", seconds) from None


def _same_day_of_month(start: datetime, end: datetime) -> bool:
    """Whether *end* falls on *start*'s day of the month, or its last day (a 31st anchor)."""
    if start.day == end.day:
        return True
    last_of_end = calendar.monthrange(end.year, end.month)[1]
    last_of_start = calendar.monthrange(start.year, start.month)[1]
    return (end.day == last_of_end and start.day > end.day) or (
        start.day == last_of_start and end.day > start.day
    )


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
    billed = _packages(price.maybe_child("transform_quantity"), quantity)
    return _per_month(Fraction(unit) * billed, recurring)


def _per_month(amount: Fraction | int, recurring: Node) -> Fraction:
    """*amount* billed every interval of *recurring*, per month."""
    count = 1 if recurring.get("interval_count") is None else recurring.integer("interval_count")
    return monthly(amount, recurring.text("interval"), count, recurring.path)


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


def _discounted(gross: Fraction, subscription: Node, code: str, items: list[Node]) -> Fraction:
    """*gross* less the recurring discounts whose coupon the payload holds."""
    total = gross
    for coupon in _coupons(subscription):
        if coupon.get("duration") == "once":
            continue  # the first invoice only: not recurring
        percent = coupon.get("percent_off")
        if isinstance(percent, int | float) and not isinstance(percent, bool):
            if not 0 <= percent <= 100:
                raise coupon.wrong("percent_off", "a percentage from 0 to 100", percent)
            total -= total * Fraction(Decimal(repr(percent))) / 100
        elif coupon.get("amount_off") is not None and coupon.maybe_text("currency") in (
            code,
            code.lower(),
        ):
            months = _one_interval(items)
            if months is not None:
                total -= Fraction(coupon.minor_units("amount_off")) / months
    return max(total, Fraction(0))


def _coupons(subscription: Node) -> list[Node]:
    """The coupons of a subscription's discounts, where expanded (an id alone says nothing).

    API versions before 2025-03-31 write the discount in ``discount`` and its
    id in ``discounts`` too: each discount counts once.
    """
    many = subscription.get("discounts")
    discounts = [*(many if isinstance(many, list) else []), subscription.get("discount")]
    coupons: dict[object, Node] = {}
    for index, discount in enumerate(discounts):
        if not isinstance(discount, Mapping):
            continue
        source = discount.get("source")
        coupon = source.get("coupon") if isinstance(source, Mapping) else None
        coupon = coupon or discount.get("coupon")
        if isinstance(coupon, Mapping):
            path = f"{subscription.path}.discounts[{index}].coupon"
            coupons.setdefault(discount.get("id") or index, Node(coupon, path))
    return list(coupons.values())


def _one_interval(items: list[Node]) -> Fraction | None:
    """The months of the one billing interval all recurring items share, if they do."""
    found = set()
    for item in items:
        recurring = item.child("price").maybe_child("recurring")
        if recurring is not None:
            count = recurring.get("interval_count") or 1
            found.add((recurring.get("interval"), count))
    if len(found) != 1:
        return None
    interval, count = found.pop()
    months = MONTHS_PER_INTERVAL.get(str(interval))
    return None if months is None or not isinstance(count, int) else months * count
