"""What a Chargebee subscription entity says: its MRR, when that held, and its attribution.

The MRR is computed from the subscription's items rather than read from its
``mrr`` field: Chargebee computes ``mrr`` asynchronously (it sends a separate
``mrr_updated`` event when it has), so the ``mrr`` inside a
``subscription_changed`` may still be the one from before the change, and
it follows the site's own MRR settings (discounts, currencies) that a
webhook does not show. The items are the change itself.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from fractions import Fraction
from typing import Any

from ._common import moment, monthly
from ._payload import Node

#: Statuses in which a subscription bills its items.
BILLING = frozenset({"active", "non_renewing"})

#: Item types that recur (``charge`` items are one-time).
_RECURRING = frozenset({"plan", "addon"})

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def snapshot_mrr(subscription: Node) -> Fraction | None:
    """The subscription's MRR in minor units: 0 unless it bills; None when it cannot be told.

    It cannot be told while a coupon or discount applies (its amount per period
    is not in the entity), or when an item states no price.
    """
    if subscription.get("status") not in BILLING:
        return Fraction(0)
    return items_mrr(subscription)


def items_mrr(subscription: Node) -> Fraction | None:
    """What the recurring items bill a month, at list price; None when unknown."""
    if subscription.items("coupons") or subscription.items("discounts"):
        return None
    if subscription.get("coupon"):
        return None
    items = subscription.items("subscription_items")
    if not items and subscription.get("plan_id") is not None:
        return _catalog_v1_mrr(subscription)
    total = Fraction(0)
    for item in items:
        if item.get("item_type") not in _RECURRING:
            continue
        amount = _per_period(item)
        if amount is None:
            return None
        total += _per_month(amount, item, subscription)
    return total


def _per_period(item: Node) -> int | None:
    """What one item bills each period, in minor units: ``amount``, or unit price x quantity."""
    if item.get("amount") is not None:
        return item.minor_units("amount")
    if item.get("unit_price") is None:
        return None
    return item.minor_units("unit_price") * (item.maybe_integer("quantity") or 1)


def _per_month(amount: int, item: Node, subscription: Node) -> Fraction:
    owner = item if item.get("billing_period_unit") is not None else subscription
    unit = str(owner.get("billing_period_unit") or "month")
    count = owner.maybe_integer("billing_period") or 1
    return monthly(amount, unit, count, f"{owner.path}.billing_period_unit")


def _catalog_v1_mrr(subscription: Node) -> Fraction | None:
    """Product Catalog 1.0: ``plan_*`` fields and ``addons``, billed every plan period."""
    if subscription.get("plan_amount") is not None:
        per_period = subscription.minor_units("plan_amount")
    elif subscription.get("plan_unit_price") is not None:
        quantity = subscription.maybe_integer("plan_quantity") or 1
        per_period = subscription.minor_units("plan_unit_price") * quantity
    else:
        return None
    for addon in subscription.items("addons"):
        part = _per_period(addon)
        if part is None:
            return None
        per_period += part
    unit = str(subscription.get("billing_period_unit") or "month")
    count = subscription.maybe_integer("billing_period") or 1
    return monthly(per_period, unit, count, f"{subscription.path}.billing_period_unit")


def as_of(entity: Node) -> datetime:
    """When the entity's state held: its ``resource_version`` (ms), else ``updated_at`` (s)."""
    version = entity.get("resource_version")
    if isinstance(version, int) and not isinstance(version, bool) and version > 0:
        return _EPOCH + timedelta(milliseconds=version)
    for key in ("updated_at", "created_at"):
        found = moment(entity.get(key), f"{entity.path}.{key}")
        if found is not None:
            return found
    raise entity.wrong("resource_version", "a timestamp in milliseconds", version)


def attribution_sources(*entities: Node | None, keys: tuple[str, str]) -> list[tuple[str, Any]]:
    """Where attribution may be: each entity's ``meta_data``, then its ``cf_`` custom fields."""
    sources: list[tuple[str, Mapping[str, Any]]] = []
    for entity in entities:
        if entity is None:
            continue
        sources.append((f"{entity.path}.meta_data", entity.metadata("meta_data")))
        custom = {key: entity.get(f"cf_{key}") for key in keys}
        sources.append((f"{entity.path}.cf_{keys[0]} / cf_{keys[1]}", custom))
    return sources


def share(part: int, of: int, whole: int) -> int:
    """*part* of *of* scaled to *whole*, rounded half to even: the tax in a part-payment."""
    if whole <= 0:
        return 0
    return round(Fraction(part) * Fraction(min(of, whole), whole))
