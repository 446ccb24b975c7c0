"""One Chargebee event being mapped: its parts, attribution, and the ledger's answers."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from ._chargebee_state import as_of, attribution_sources, share
from ._common import Resolver, attribute, moment
from ._ledger import Ledger, Movement, Observation, Payment
from ._payload import Node

PROCESSOR = "chargebee"

#: The statuses of a transaction that moved money (absent: it says nothing else).
SUCCEEDED = (None, "success")


class Context:
    """One event being mapped, with the caller's settings."""

    def __init__(
        self,
        envelope: Node,
        resolver: Resolver | None,
        ledger: Ledger | None,
        include_tax: bool,
        keys: tuple[str, str],
    ) -> None:
        self.envelope, self.resolver, self.ledger = envelope, resolver, ledger
        self.include_tax, self.keys = include_tax, keys
        self.kind = envelope.text("event_type")
        self.content = envelope.child("content")
        self.subscription = self.content.maybe_child("subscription")
        self.customer = self.content.maybe_child("customer")

    async def fields(self, customer_id: str | None) -> dict[str, Any]:
        """Attribution and the fields every event of this notification shares."""
        sources = attribution_sources(self.subscription, self.customer, keys=self.keys)
        fingerprint, session = await attribute(
            sources, customer_id=customer_id, resolver=self.resolver, keys=self.keys
        )
        return {
            "visitor_fingerprint": fingerprint,
            "session_id": session,
            "customer_id": customer_id,
            "payment_processor": PROCESSOR,
            "occurred_at": moment(self.envelope.get("occurred_at"), "occurred_at"),
        }

    def customer_id(self, *entities: Node | None) -> str | None:
        """The first ``customer_id`` among *entities*, else the customer's id."""
        for entity in entities:
            found = None if entity is None else entity.maybe_text("customer_id")
            if found:
                return found
        return None if self.customer is None else self.customer.text("id")

    async def observe(
        self, subscription: str, mrr: Decimal | None, *, settle: bool, churn: bool = False
    ) -> Movement | None:
        """Tell the ledger, if any, the subscription's state; get the MRR reported."""
        if self.ledger is None:
            return None
        entity = self.subscription
        same = entity is not None and entity.get("id") == subscription
        when = as_of(entity) if same and entity is not None else self._occurred()
        seen = Observation(
            f"{PROCESSOR}:{subscription}",
            self.envelope.text("id"),
            when,
            mrr if same else None,
            settle,
            churn=churn,
        )
        return await self.ledger.observe(seen)

    def _occurred(self) -> datetime:
        found = moment(self.envelope.get("occurred_at"), "occurred_at")
        if found is None:
            raise self.envelope.wrong("occurred_at", "a timestamp", None)
        return found

    async def first(self, payment_id: str, gross: int, net: int) -> Payment:
        """The payment as first described (a refund has two descriptions)."""
        described = Payment(gross, net)
        if self.ledger is None:
            return described
        return await self.ledger.payment(f"{PROCESSOR}:{payment_id}", described) or described


def invoice_tax(invoice: Node, paid: int) -> int:
    """The tax in *paid* of the invoice: all of it for the whole invoice, else a share."""
    if invoice.get("tax") is None:
        return 0
    tax = invoice.minor_units("tax")
    total = invoice.minor_units("total") if invoice.get("total") is not None else paid
    return share(tax, paid, total)
