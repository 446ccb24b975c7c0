"""An AWS Lambda handler that records one payment, in a process that may end right after.

Deploy ``serverless.handler`` behind a Lambda function URL or an API Gateway
(``pip install pulsora-revenue -t package/``), with ``PULSORA_SECRET_TOKEN``
set; the request's body is a payment such as ``SAMPLE`` below (verify your
processor's signature first, with ``pulsora_revenue.webhooks``). Try it here
with ``PULSORA_SECRET_TOKEN=sec_... python examples/serverless.py``: it calls
the handler once, as Lambda would, and exits.

The client is made once per container, outside the handler, so that warm
invocations reuse its connections. ``track`` returns once Pulsora has accepted
the event: nothing is left in flight when the handler returns, so the runtime
may freeze or end the process at once, and no ``close()`` is needed.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from typing import Any

from pulsora_revenue import DuplicateTransactionError, PulsoraError, SyncRevenue

revenue = SyncRevenue()  # PULSORA_SECRET_TOKEN, and PULSORA_ENDPOINT when set

SAMPLE = {
    "id": "pi_3MtwBwLkdIwHu7ix28a3tqPa",
    "customer": "cus_123",
    "amount": "49.99",
    "currency": "usd",
    "visitor_fingerprint": "fp_from_the_page",
    "session_id": "session_from_the_page",
}


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


def handler(event: Mapping[str, Any], context: object) -> dict[str, Any]:
    """Record the payment in the body of an HTTP *event*; answer as an API Gateway expects."""
    body = event.get("body") or "{}"
    payment = json.loads(base64.b64decode(body) if event.get("isBase64Encoded") else body)
    try:
        revenue.track(purchase(payment))
    except DuplicateTransactionError:
        pass  # a redelivery: Pulsora has it already
    except PulsoraError as exc:  # invalid (400), or Pulsora unreachable: deliver it again later
        return {"statusCode": 400 if isinstance(exc, ValueError) else 503, "body": str(exc)}
    return {"statusCode": 200, "body": json.dumps({"tracked": True})}


if __name__ == "__main__":
    print(handler({"body": json.dumps(SAMPLE)}, None))
