"""The Polar event being mapped: its envelope, the caller's settings, attribution, the ledger."""

from __future__ import annotations

import hashlib
import json
from datetime import datetime
from decimal import Decimal
from typing import Any

from ._common import Resolver, attribute, moment
from ._ledger import Ledger, Movement, Observation
from ._payload import Node

PROCESSOR = "polar"


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
        self.kind = envelope.text("type")
        self.data = envelope.child("data")

    @property
    def event_id(self) -> str:
        """A digest of the whole event: Polar's body has no id, and a redelivery repeats it."""
        canonical = json.dumps(self.envelope.value, sort_keys=True, default=str)
        return f"polar_{hashlib.sha256(canonical.encode()).hexdigest()[:32]}"

    @property
    def as_of(self) -> datetime:
        """When the entity's state held: the event's ``timestamp``, else its own times."""
        for node, key in ((self.envelope, "timestamp"), (self.data, "modified_at")):
            found = moment(node.get(key), f"{node.path}.{key}".lstrip("."))
            if found is not None:
                return found
        found = moment(self.data.get("created_at"), f"{self.data.path}.created_at")
        if found is None:
            raise self.envelope.wrong("timestamp", "a timestamp with a time zone", None)
        return found

    async def fields(self, *extra: Node | None) -> dict[str, Any]:
        """Attribution and the fields every event of this notification shares."""
        nodes = [self.data, *[node for node in extra if node is not None]]
        sources = [
            (f"{node.path}.{key}", node.metadata(key))
            for node in nodes
            for key in ("metadata", "custom_field_data")
        ]
        customer_id = self.data.text("customer_id")
        fingerprint, session = await attribute(
            sources, customer_id=customer_id, resolver=self.resolver, keys=self.keys
        )
        return {
            "visitor_fingerprint": fingerprint,
            "session_id": session,
            "customer_id": customer_id,
            "payment_processor": PROCESSOR,
            "occurred_at": moment(self.envelope.get("timestamp"), "timestamp"),
        }

    async def observe(
        self,
        key: str,
        mrr: Decimal | None,
        *,
        settle: bool,
        ended: bool = False,
        churn: bool = False,
    ) -> Movement | None:
        """Tell the ledger, if any, what this event says; get what was reported before and after."""
        if self.ledger is None:
            return None
        seen = Observation(key, self.event_id, self.as_of, mrr, settle, ended, churn=churn)
        return await self.ledger.observe(seen)
