"""Django views that record a payment: sync with ``SyncRevenue``, async with ``Revenue``.

Run it as a one-file project (``pip install pulsora-revenue django``), then POST
a payment as JSON to ``/payments/`` (or ``/payments/async/``), as
``examples/serverless.py``'s ``SAMPLE``::

    PULSORA_SECRET_TOKEN=sec_... python examples/django_views.py runserver

In a project, copy the views and the ``urlpatterns``. Both clients are made
once, at import: the sync views of every thread share the ``SyncRevenue``; the
``Revenue`` serves the async views, which Django under WSGI (runserver,
gunicorn) runs on a new event loop per request: it takes new connections on each.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping
from typing import Any

from django.http import HttpRequest, JsonResponse
from django.urls import path
from django.views.decorators.http import require_POST

from pulsora_revenue import DuplicateTransactionError, PulsoraError, Revenue, SyncRevenue

revenue = SyncRevenue()  # PULSORA_SECRET_TOKEN, and PULSORA_ENDPOINT when set
async_revenue = Revenue()


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


def refused(exc: PulsoraError) -> JsonResponse:
    """The answer for a payment not recorded: 400 if it is invalid, else 503 (try again later)."""
    return JsonResponse({"error": str(exc)}, status=400 if isinstance(exc, ValueError) else 503)


@require_POST
def record_payment(request: HttpRequest) -> JsonResponse:
    try:
        revenue.track(purchase(json.loads(request.body)))
    except DuplicateTransactionError:
        pass  # sent before: Pulsora has it already
    except PulsoraError as exc:
        return refused(exc)
    return JsonResponse({"tracked": True})


@require_POST
async def record_payment_async(request: HttpRequest) -> JsonResponse:
    try:
        await async_revenue.track(purchase(json.loads(request.body)))
    except DuplicateTransactionError:
        pass
    except PulsoraError as exc:
        return refused(exc)
    return JsonResponse({"tracked": True})


urlpatterns = [
    path("payments/", record_payment),
    path("payments/async/", record_payment_async),
]

if __name__ == "__main__":
    from django.conf import settings
    from django.core.management import execute_from_command_line

    settings.configure(DEBUG=True, SECRET_KEY="only-for-this-example", ROOT_URLCONF=__name__)
    execute_from_command_line(sys.argv)
