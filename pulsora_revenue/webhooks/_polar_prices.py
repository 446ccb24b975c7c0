"""The monthly recurring revenue a Polar subscription states, in minor units."""

from __future__ import annotations

from fractions import Fraction

from ._common import monthly
from ._payload import Node

#: Statuses in which a subscription bills its amount (past due: still owed, still MRR).
BILLING = frozenset({"active", "past_due"})

#: Statuses in which it bills nothing: a trial, an unfinished checkout, a pause, the end.
QUIET = frozenset({"trialing", "incomplete", "incomplete_expired", "unpaid", "paused", "canceled"})


def subscription_mrr(subscription: Node) -> Fraction | None:
    """The MRR of a subscription entity: 0 while it bills nothing, None when unknown.

    Unknown: a discount applies (``amount`` is the list price), a price includes
    tax, or a status this module does not know.
    """
    status = subscription.text("status")
    if status in QUIET:
        return Fraction(0)
    if status not in BILLING:
        return None
    return list_mrr(subscription)


def list_mrr(subscription: Node) -> Fraction | None:
    """What its ``amount`` bills a month, whatever its status; None when unknown."""
    if subscription.get("discount_id") or subscription.get("discount"):
        return None  # the amount is before the discount, which may also run out
    if any(price.get("tax_behavior") == "inclusive" for price in subscription.items("prices")):
        return None  # the amount holds tax
    interval = subscription.text("recurring_interval")
    count = subscription.maybe_integer("recurring_interval_count") or 1
    path = f"{subscription.path}.recurring_interval"
    return monthly(subscription.minor_units("amount"), interval, count, path)
