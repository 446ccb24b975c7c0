"""Lemon Squeezy prices: what a subscription bills a month, which its webhooks do not say.

A subscription's webhook names its price (``first_subscription_item.price_id``)
and quantity, never the amount or the interval; the caller tells them, once, as
``Price`` values. All amounts are ``Fraction``s of minor units, rounded once by
the caller.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from fractions import Fraction
from typing import Any

import attrs

from .._errors import ValidationError
from .._money import currency_exponent
from ._common import MONTHS_PER_INTERVAL, monthly
from ._payload import Node

#: Statuses in which a subscription bills its price: a cancelled one bills
#: until its period ends (then it expires).
BILLING = frozenset({"active", "past_due", "cancelled"})


def _check_interval(_: object, attribute: attrs.Attribute[Any], value: str | None) -> None:
    if value is not None and value not in MONTHS_PER_INTERVAL:
        raise ValueError(f"interval must be day, week, month, year or None, not {value!r}")


def _check_positive(_: object, attribute: attrs.Attribute[Any], value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{attribute.name} must be a positive integer, not {value!r}")


def _check_amount(_: object, attribute: attrs.Attribute[Any], value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{attribute.name} must be an integer of minor units >= 0, not {value!r}")


def _check_currency(_: object, attribute: attrs.Attribute[Any], value: str) -> None:
    try:
        currency_exponent(value)
    except ValidationError:
        raise ValueError(f"currency must be an ISO 4217 code, not {value!r}") from None


def _upper(value: str) -> str:
    return value.upper() if isinstance(value, str) else value


@attrs.frozen
class Price:
    """A Lemon Squeezy price, as the MRR needs it: build one per price id at startup.

    Attributes:
        unit_price: what one unit (or one package) costs per interval, in minor units
            of *currency*, without tax (Lemon Squeezy's ``unit_price``).
        currency: the store's currency, whose minor units *unit_price* counts.
        interval: ``"day"``, ``"week"``, ``"month"`` or ``"year"`` (Lemon Squeezy's
            ``renewal_interval_unit``); None for a one-time price.
        interval_count: intervals between two bills (``renewal_interval_quantity``).
        package_size: units per package, for the ``package`` scheme; 1 otherwise.
    """

    unit_price: int = attrs.field(validator=_check_amount)
    currency: str = attrs.field(converter=_upper, validator=_check_currency)
    interval: str | None = attrs.field(default=None, validator=_check_interval)
    interval_count: int = attrs.field(default=1, validator=_check_positive)
    package_size: int = attrs.field(default=1, validator=_check_positive)

    @classmethod
    def from_api(cls, price: Mapping[str, Any], currency: str) -> Price:
        """Build a price from a Lemon Squeezy Price object (``GET /v1/prices/{id}``).

        Args:
            price: the API's price resource, or its ``attributes``.
            currency: the store's currency code (the store's ``currency``).

        Returns:
            The price, one-time unless its ``category`` is ``subscription``.

        Raises:
            ValueError: for a tiered (``graduated``, ``volume``) or usage-based price,
                whose monthly amount depends on usage, or a price with no unit price.
        """
        attributes = price.get("attributes", price)
        scheme = attributes.get("scheme", "standard")
        if scheme not in ("standard", "package") or attributes.get("usage_aggregation"):
            raise ValueError(f"a {scheme} or usage-based price has no fixed monthly amount")
        recurring = attributes.get("category") == "subscription"
        return cls(
            unit_price=attributes.get("unit_price"),
            currency=currency,
            interval=attributes.get("renewal_interval_unit") if recurring else None,
            interval_count=attributes.get("renewal_interval_quantity") or 1 if recurring else 1,
            package_size=attributes.get("package_size") or 1 if scheme == "package" else 1,
        )


def find(prices: Mapping[Any, Price] | None, price_id: object) -> Price | None:
    """The price of *price_id* (an int or its string), or None when the caller gave none."""
    if prices is None or isinstance(price_id, bool) or not isinstance(price_id, int | str):
        return None
    found = prices.get(price_id)
    if found is None:
        found = prices.get(str(price_id))
    if found is None and isinstance(price_id, str) and price_id.isdigit():
        found = prices.get(int(price_id))
    return found


def item_mrr(item: Node | None, prices: Mapping[Any, Price] | None) -> tuple[Fraction, str] | None:
    """The monthly amount of a subscription's item at list price, and its currency.

    None when the item or its price is unknown (a price the caller did not give).
    """
    if item is None:
        return None
    price = find(prices, item.get("price_id"))
    if price is None or price.interval is None:
        return None
    quantity = item.maybe_integer("quantity")
    packages = math.ceil((1 if quantity is None else quantity) / price.package_size)
    per_interval = price.unit_price * packages
    return monthly(per_interval, price.interval, price.interval_count, item.path), price.currency


def recurring(prices: Mapping[Any, Price] | None, price_id: object) -> bool:
    """Whether *price_id* is known to be a subscription's price."""
    price = find(prices, price_id)
    return price is not None and price.interval is not None
