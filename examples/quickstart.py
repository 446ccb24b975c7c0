"""Track revenue against a stand-in for Pulsora: no network, no account needed.

Run it with ``python examples/quickstart.py``. The stand-in is an
``httpx.MockTransport`` that answers like Pulsora's ingest API, once with a
503 so that you can see a retry; point ``endpoint=`` at the real API (or leave
the default) and drop ``transport=`` to send for real.
"""

from __future__ import annotations

import json
import logging
import sys
from decimal import Decimal

import anyio
import httpx

from pulsora_revenue import Revenue, ValidationError, from_minor_units

answers = iter([503])


def fake_pulsora(request: httpx.Request) -> httpx.Response:
    """Answer like Pulsora's ingest endpoint, failing the first request."""
    status = next(answers, 202)
    if status != 202:
        return httpx.Response(status, json={"error": "Service unavailable"})
    data = json.loads(request.content)["data"]
    print(f"  Pulsora received {data['event_type']} {data['amount']} {data['currency']}")
    return httpx.Response(202, json={"success": True})


async def main() -> None:
    # debug=True logs every attempt on the "pulsora_revenue" logger, at DEBUG.
    logging.basicConfig(stream=sys.stdout, format="  log: %(message)s")
    logging.getLogger("pulsora_revenue").setLevel(logging.DEBUG)
    transport = httpx.MockTransport(fake_pulsora)
    async with Revenue("sec_example_0000", transport=transport, debug=True) as revenue:
        # Stripe sends 4999 (cents) and "usd"; JPY would have no decimals at all.
        amount = from_minor_units(4999, "usd")
        result = await revenue.track(
            visitor_fingerprint="fp_from_checkout_metadata",
            session_id="session_from_checkout_metadata",
            customer_id="cus_123",
            amount=amount,
            currency="usd",
            transaction_id="pi_3MtwBwLkdIwHu7ix28a3tqPa",
            payment_processor="stripe",
            event_type="purchase",
            metadata={"plan": "pro", "seats": 5, "price": Decimal("49.99")},
        )
        print(f"accepted with {result.status_code} after {result.attempts} attempts")

        try:
            await revenue.track(
                visitor_fingerprint="fp",
                session_id="",
                customer_id="cus_123",
                amount=49.99,
                transaction_id="re_123",
                event_type="refund",
            )
        except ValidationError as exc:
            print(f"refused before sending:\n{exc}")


if __name__ == "__main__":
    anyio.run(main)
