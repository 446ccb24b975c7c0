"""Webhook adapters: from a processor's signed webhook to ``RevenueEvent``s.

``pulsora_revenue.webhooks.stripe`` and ``pulsora_revenue.webhooks.paddle``
each offer ``verify(payload, header, secret, *, tolerance=300, now=None)``,
returning the decoded event, and ``await to_revenue_events(event, *,
resolver=None, keys=...)``, returning a list of ``RevenueEvent``s. Neither
depends on the processor's SDK.
"""

from __future__ import annotations

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

__all__ = [
    "DEFAULT_KEYS",
    "MalformedSignatureError",
    "MissingAttributionError",
    "MissingSignatureError",
    "Resolver",
    "SignatureMismatchError",
    "StaleTimestampError",
    "WebhookPayloadError",
    "WebhookVerificationError",
]
