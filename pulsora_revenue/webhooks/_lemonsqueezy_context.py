"""One Lemon Squeezy notification being mapped: its parts, its identity, its attribution."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal
from typing import Any

from ._common import Resolver, attribute, moment
from ._ledger import Ledger, Movement, Observation
from ._lemonsqueezy_prices import Price
from ._payload import Node

PROCESSOR = "lemonsqueezy"

REFUNDS = frozenset({"order_refunded", "subscription_payment_refunded"})


class Context:
    """One notification being mapped, with the caller's settings."""

    def __init__(
        self,
        envelope: Node,
        resolver: Resolver | None,
        ledger: Ledger | None,
        include_tax: bool,
        keys: tuple[str, str],
        prices: Mapping[Any, Price] | None,
    ) -> None:
        self.envelope, self.resolver, self.ledger = envelope, resolver, ledger
        self.include_tax, self.keys, self.prices = include_tax, keys, prices
        self.meta = envelope.child("meta")
        self.kind = self.meta.text("event_name")
        self.data = envelope.child("data")
        self.attributes = self.data.child("attributes")

    @property
    def resource(self) -> str:
        """The resource's type and id: ``orders:1``, ``subscription-invoices:7``."""
        return f"{self.data.text('type')}:{ident(self.data, 'id')}"

    @property
    def event_id(self) -> str:
        """What tells this notification from another: Lemon Squeezy sends no event id."""
        seen = f"{self.kind}:{self.resource}:{self.attributes.get('updated_at')}"
        if self.kind in REFUNDS:  # two refunds in one second differ by the amount so far
            seen += f":{self.attributes.get('refunded_amount')}"
        return seen

    async def fields(self, when: str) -> dict[str, Any]:
        """Attribution and the fields every event of this notification shares."""
        customer_id = ident(self.attributes, "customer_id")
        sources = [(f"{self.meta.path}.custom_data", self.meta.metadata("custom_data"))]
        fingerprint, session = await attribute(
            sources, customer_id=customer_id, resolver=self.resolver, keys=self.keys
        )
        return {
            "visitor_fingerprint": fingerprint,
            "session_id": session,
            "customer_id": customer_id,
            "payment_processor": PROCESSOR,
            "occurred_at": as_of(self.attributes, when, "updated_at"),
        }

    async def observe(self, key: str, mrr: Decimal | None, **state: Any) -> Movement | None:
        """Tell the ledger, if any, what this notification says; get the amounts reported."""
        if self.ledger is None:
            return None
        when = as_of(self.attributes, "updated_at", "created_at")
        seen = Observation(f"{PROCESSOR}:{key}", self.event_id, when, mrr, **state)
        return await self.ledger.observe(seen)


def ident(node: Node, key: str) -> str:
    """An id at *key*: Lemon Squeezy sends integers in attributes, strings for ``data.id``."""
    value = node.get(key)
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return node.text(key)


def as_of(node: Node, *keys: str) -> datetime:
    """When the resource's state held: the first of its *keys* that has a timestamp."""
    for key in keys:
        found = moment(node.get(key), f"{node.path}.{key}")
        if found is not None:
            return found
    raise node.wrong(keys[0], "a timestamp with a time zone", node.get(keys[0]))
