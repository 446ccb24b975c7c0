"""What every Stripe handler shares: the event being mapped, its options, and its money."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal
from fractions import Fraction
from typing import Any

from .._money import currency_exponent
from ._common import Resolver, attribute, major, moment, net_of_tax
from ._ledger import Ledger, Payment
from ._payload import Node

PROCESSOR = "stripe"

#: Where Stripe counts decimals differently from ISO 4217 (docs.stripe.com/currencies).
EXPONENTS: Mapping[str, int] = {"ISK": 2, "MGA": 0}
"""Where Stripe counts a currency's decimals differently from ISO 4217.

Stripe's amounts in ISK have two decimals (ISO 4217 says none) and in MGA none (ISO
says two): docs.stripe.com/currencies. The Stripe adapter converts by these first.
"""

#: Metadata to look in, in order, each with its path: for your own customer id,
#: the visitor fingerprint and the session id.
Sources = list[tuple[str, Mapping[str, Any]]]


class Context:
    """One event being mapped: its envelope, object, and the caller's options."""

    def __init__(
        self,
        envelope: Node,
        *,
        resolver: Resolver | None,
        keys: tuple[str, str],
        ledger: Ledger | None,
        include_tax: bool,
    ) -> None:
        self.envelope, self.resolver, self.keys = envelope, resolver, keys
        self.ledger, self.include_tax = ledger, include_tax
        self.data = envelope.child("data")
        self.object = self.data.child("object")

    @property
    def event_id(self) -> str:
        return self.envelope.text("id")

    @property
    def created(self) -> datetime:
        """When Stripe made the event: the time of the state its object shows."""
        created = moment(self.envelope.get("created"), "created")
        if created is None:
            raise self.envelope.wrong("created", "a timestamp", None)
        return created

    async def attribution(self, sources: Sources, customer_id: str | None) -> dict[str, str]:
        fingerprint, session = await attribute(
            sources, customer_id=customer_id, resolver=self.resolver, keys=self.keys
        )
        return {"visitor_fingerprint": fingerprint, "session_id": session}

    def has_attribution(self, sources: Sources) -> bool:
        """Whether the metadata in *sources* holds both attribution keys."""
        return any(all(metadata.get(key) for key in self.keys) for _, metadata in sources)

    def common(self) -> dict[str, Any]:
        return {
            "payment_processor": PROCESSOR,
            "occurred_at": moment(self.envelope.get("created"), "created"),
        }

    async def revenue(self, payment_id: str, gross: int, tax: int) -> int:
        """The revenue in a payment, in minor units: without its tax, unless asked for.

        With a ledger, the first event that reports a payment fixes it for the
        others (a Checkout Session knows its tax, its PaymentIntent does not).
        """
        net = net_of_tax(gross, tax, include_tax=self.include_tax)
        if self.ledger is None:
            return net
        first = await self.ledger.payment(payment_id, Payment(gross, net))
        return net if first is None else first.net

    async def refunded(self, payment_id: str, before: int, after: int) -> int:
        """The revenue a refund takes back, of *after* − *before* refunded so far (minor units).

        With a ledger that saw the payment, in proportion of its revenue to what
        was paid, rounded on the running totals so refunds add up to it exactly.
        """
        paid = None if self.ledger is None else await self.ledger.payment(payment_id, None)
        if paid is None or not paid.gross:
            return after - before
        return _share(after, paid) - _share(before, paid)


def _share(refunded: int, paid: Payment) -> int:
    return round(Fraction(refunded * paid.net, paid.gross))  # half to even; all of it: all


def exponent(code: str) -> int:
    """The decimals Stripe counts in *code*."""
    return EXPONENTS.get(code, currency_exponent(code))


def money(minor: Fraction | int, code: str) -> Decimal:
    """Minor units of *code* in major units, rounded once (half to even)."""
    return major(minor, exponent(code))


def customer(node: Node, sources: Sources) -> str | None:
    """Your own ``customer_id`` from the first metadata that has one, else Stripe's customer."""
    for _, metadata in sources:
        own = metadata.get("customer_id")
        if isinstance(own, str) and own:
            return own
    return node.id("customer")


def own_metadata(node: Node) -> Sources:
    return [(f"{node.path}.metadata", node.metadata("metadata"))]


def guest(payment: str) -> str:
    """The customer id of a payment made without a Stripe customer (a guest checkout).

    Stripe creates no customer for most one-off payments; the payment's own id
    stands in, so that the purchase and a later refund of it agree.
    """
    return f"guest:{payment}"


def required(node: Node, customer_id: str | None) -> str:
    if customer_id is None:
        raise node.wrong("customer", "a customer id", None)
    return customer_id


def extra(**values: str | None) -> dict[str, str]:
    """Metadata of the values that are there."""
    return {key: value for key, value in values.items() if value}
