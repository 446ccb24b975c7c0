"""A Celery task that records a payment with a module-level ``SyncRevenue``.

Run a worker (``pip install pulsora-revenue celery``), with your broker::

    export PULSORA_SECRET_TOKEN=sec_...   CELERY_BROKER_URL=redis://localhost:6379/0
    cd examples && celery -A celery_tasks worker

and queue payments from your app: ``record_payment.delay(payment)``, where
*payment* is a dict such as ``{"id": "pi_1", "customer": "cus_1", "amount":
"49.99", "currency": "usd", "visitor_fingerprint": "fp_from_the_page",
"session_id": "session_from_the_page"}``.

The client is made once, at import, in the worker's main process; the prefork
pool's children each start a loop and connections of their own on first use.
The client retries within one call (backoff, 429s); a task that still fails
for want of Pulsora is retried by Celery later, with the same transaction id,
which Pulsora records once.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from celery import Celery

from pulsora_revenue import (
    APIConnectionError,
    DuplicateTransactionError,
    RateLimitError,
    ServerError,
    SyncRevenue,
)

app = Celery("celery_tasks")  # the broker from CELERY_BROKER_URL
revenue = SyncRevenue()  # PULSORA_SECRET_TOKEN, and PULSORA_ENDPOINT when set


def purchase(payment: Mapping[str, Any]) -> dict[str, Any]:
    """The revenue event of a payment; a missing field is named by ``track``'s ValidationError."""
    return {
        "visitor_fingerprint": payment.get("visitor_fingerprint"),
        "session_id": payment.get("session_id"),
        "customer_id": payment.get("customer"),
        "amount": payment.get("amount"),
        "currency": payment.get("currency"),
        "transaction_id": payment.get("id"),
        "event_type": "purchase",
    }


@app.task(
    autoretry_for=(APIConnectionError, RateLimitError, ServerError),
    retry_backoff=30,  # seconds, doubling: Pulsora may be down for a while
    max_retries=8,
)
def record_payment(payment: dict[str, Any]) -> bool:
    """Record *payment*; return False if Pulsora had it already (a repeated task)."""
    try:
        revenue.track(purchase(payment))
    except DuplicateTransactionError:
        return False
    return True
