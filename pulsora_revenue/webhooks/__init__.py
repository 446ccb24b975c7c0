"""Webhook adapters: from a processor's signed webhook to ``RevenueEvent``s.

One module per billing platform: ``stripe``, ``paddle``, ``lemonsqueezy``,
``polar`` and ``chargebee``. Each offers ``verify(payload, <the platform's
signature or credentials>, secret, ...)``, returning the decoded event, and
``await to_revenue_events(event, *, resolver=None, ledger=None,
include_tax=False, keys=...)``, returning a list of ``RevenueEvent``s. None
depends on the platform's SDK.

A ledger (``MemoryLedger``, ``SQLiteLedger``) remembers the MRR reported per
subscription, so that the ``mrr_impact`` of its events adds up to it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._common import DEFAULT_KEYS, Resolver
from ._errors import (
    MalformedSignatureError,
    MissingAttributionError,
    MissingSignatureError,
    SignatureMismatchError,
    StaleTimestampError,
    WebhookPayloadError,
    WebhookVerificationError,
)
from ._ledger import Ledger, MemoryLedger, Movement, Observation, Payment

if TYPE_CHECKING:
    from ._sqlite_ledger import SQLiteLedger

__all__ = [
    "DEFAULT_KEYS",
    "Ledger",
    "MalformedSignatureError",
    "MemoryLedger",
    "MissingAttributionError",
    "MissingSignatureError",
    "Movement",
    "Observation",
    "Payment",
    "Resolver",
    "SQLiteLedger",
    "SignatureMismatchError",
    "StaleTimestampError",
    "WebhookPayloadError",
    "WebhookVerificationError",
]


def __getattr__(name: str) -> Any:
    if name == "SQLiteLedger":  # sqlite3 loads only for those who use it
        from ._sqlite_ledger import SQLiteLedger

        return SQLiteLedger
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
