"""A Flask app whose route records a payment with one app-wide ``SyncRevenue``.

Run it (``pip install pulsora-revenue flask``)::

    PULSORA_SECRET_TOKEN=sec_... flask --app examples/flask_app run
    curl localhost:5000/payments -H 'Content-Type: application/json' -d '{"id": "pi_1",
      "customer": "cus_1", "amount": "49.99", "currency": "usd",
      "visitor_fingerprint": "fp_from_the_page", "session_id": "session_from_the_page"}'

``create_app`` makes the one client of the app (or takes yours, as tests do:
``create_app(SyncRevenue(token, transport=fake.transport))``). Flask serves
requests from several threads: they share the client, its connections and its
retries. With ``PULSORA_OUTBOX`` set to a file, an event Pulsora cannot take
now is kept there and delivered in the background, and the route still answers
200. Flask has no shutdown hook, and none is needed: the process exits at once.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from flask import Flask, request
from flask.typing import ResponseReturnValue

from pulsora_revenue import DuplicateTransactionError, PulsoraError, SyncRevenue


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


def create_app(revenue: SyncRevenue | None = None) -> Flask:
    """The app; its client is *revenue*, or one configured from the environment."""
    if revenue is None:
        revenue = SyncRevenue(outbox=os.environ.get("PULSORA_OUTBOX"))  # and PULSORA_SECRET_TOKEN
    app = Flask(__name__)

    @app.post("/payments")
    def record_payment() -> ResponseReturnValue:
        payment = request.get_json(silent=True)
        try:
            result = revenue.track(purchase(payment if isinstance(payment, dict) else {}))
        except DuplicateTransactionError:
            return {"tracked": True, "duplicate": True}  # Pulsora had it already
        except PulsoraError as exc:  # invalid (a ValueError), or Pulsora unreachable
            return {"error": str(exc)}, 400 if isinstance(exc, ValueError) else 503
        return {"tracked": True, "queued": result.queued}

    return app
