"""Server-side revenue tracking for Pulsora, with full attribution.

Record a payment with the visitor fingerprint and session id that the browser
passed through the payment's metadata::

    async with Revenue() as revenue:
        await revenue.track(
            visitor_fingerprint=fp, session_id=sid, customer_id="cus_123",
            amount="49.99", currency="usd", transaction_id="pi_123",
            event_type="purchase",
        )
"""

from __future__ import annotations

from ._client import Revenue
from ._errors import (
    APIConnectionError,
    APIError,
    APITimeoutError,
    AuthenticationError,
    BadRequestError,
    ClientClosedError,
    ConfigurationError,
    DuplicateTransactionError,
    EndpointError,
    FieldError,
    OutboxError,
    PermissionDeniedError,
    PulsoraError,
    RateLimitError,
    ServerError,
    UnexpectedResponseError,
    ValidationError,
)
from ._event import RevenueEvent
from ._fields import EventType
from ._hooks import Attempt, Delivery, DeliveryOutcome, Hooks, OutboxChange, OutboxChangeKind
from ._money import currency_exponent, from_minor_units, to_minor_units
from ._results import (
    BatchFailure,
    BatchReport,
    DeadLetter,
    Outcome,
    OutcomeStatus,
    Progress,
    TrackResult,
)
from ._retry import RetryPolicy
from ._sync import SyncRevenue
from ._transports import Backend

__all__ = [
    "APIConnectionError",
    "APIError",
    "APITimeoutError",
    "Attempt",
    "AuthenticationError",
    "Backend",
    "BadRequestError",
    "BatchFailure",
    "BatchReport",
    "ClientClosedError",
    "ConfigurationError",
    "DeadLetter",
    "Delivery",
    "DeliveryOutcome",
    "DuplicateTransactionError",
    "EndpointError",
    "EventType",
    "FieldError",
    "Hooks",
    "OutboxChange",
    "OutboxChangeKind",
    "OutboxError",
    "Outcome",
    "OutcomeStatus",
    "PermissionDeniedError",
    "Progress",
    "PulsoraError",
    "RateLimitError",
    "RetryPolicy",
    "Revenue",
    "RevenueEvent",
    "ServerError",
    "SyncRevenue",
    "TrackResult",
    "UnexpectedResponseError",
    "ValidationError",
    "currency_exponent",
    "from_minor_units",
    "to_minor_units",
]


def __getattr__(name: str) -> str:
    if name == "__version__":
        from importlib.metadata import version

        return version("pulsora-revenue")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
