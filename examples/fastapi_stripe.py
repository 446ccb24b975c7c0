"""A FastAPI app whose Stripe webhook route verifies, maps and tracks revenue.

Run it (``pip install 'pulsora-revenue[speed]' fastapi uvicorn``)::

    export PULSORA_SECRET_TOKEN=sec_...   STRIPE_WEBHOOK_SECRET=whsec_...
    uvicorn examples.fastapi_stripe:app

The browser passes ``visitor_fingerprint`` and ``session_id`` into the payment's
metadata when it creates the Checkout Session (``metadata``, and
``subscription_data.metadata`` for subscriptions), so that the webhook can
attribute the money. Renewals and refunds made in Stripe's dashboard carry no
metadata: ``lookup_attribution`` is where your own records fill in.

The app keeps an outbox (``PULSORA_OUTBOX``, default ``revenue-outbox.sqlite``):
when Pulsora cannot be reached, ``track`` queues the event on disk and returns,
the webhook is acknowledged, and the event is delivered in the background. And a
subscription ledger (``PULSORA_LEDGER``, default ``revenue-ledger.sqlite``): it
remembers the MRR reported per subscription, so that the ``mrr_impact`` of a
subscription's events adds up to its MRR, and to 0 once it has ended.
"""

from __future__ import annotations

import logging
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any

from fastapi import Depends, FastAPI, HTTPException, Request

from pulsora_revenue import (
    BadRequestError,
    DuplicateTransactionError,
    PulsoraError,
    Revenue,
)
from pulsora_revenue.starlette import get_revenue, lifespan
from pulsora_revenue.webhooks import (
    Ledger,
    MissingAttributionError,
    SQLiteLedger,
    WebhookPayloadError,
    WebhookVerificationError,
    stripe,
)

logger = logging.getLogger("example")


async def lookup_attribution(customer_id: str) -> tuple[str, str] | None:
    """Your own store of (visitor_fingerprint, session_id) by Stripe customer, if any."""
    return None


def create_app(
    stripe_secret: str | None = None, *, ledger: Ledger | None = None, **revenue_options: Any
) -> FastAPI:
    """The app; *revenue_options* go to ``Revenue`` (token, endpoint, transport...).

    Without a *ledger*, each Stripe event is mapped on its own: plan changes,
    trials and pauses do not move MRR (the README says what else).
    """
    secret = stripe_secret or os.environ["STRIPE_WEBHOOK_SECRET"]
    revenue_lifespan = lifespan(**revenue_options)

    @asynccontextmanager
    async def run(app: FastAPI) -> AsyncIterator[dict[str, Any]]:
        async with revenue_lifespan(app) as state:
            yield state
        if isinstance(ledger, SQLiteLedger):
            await ledger.aclose()

    app = FastAPI(lifespan=run)

    @app.post("/webhooks/stripe")
    async def stripe_webhook(
        request: Request, revenue: Annotated[Revenue, Depends(get_revenue)]
    ) -> dict[str, Any]:
        payload = await request.body()  # the raw bytes: the signature covers them exactly
        try:
            event = stripe.verify(payload, request.headers.get("Stripe-Signature"), secret)
        except (WebhookVerificationError, WebhookPayloadError) as exc:
            raise HTTPException(400, str(exc)) from None
        try:
            revenue_events = await stripe.to_revenue_events(
                event, resolver=lookup_attribution, ledger=ledger
            )
        except (MissingAttributionError, WebhookPayloadError) as exc:
            # Retrying will not help: acknowledge, and keep the reason for a human.
            # (A redelivery would get the same answer: the ledger keeps it per event.)
            logger.warning("Stripe event not tracked: %s", exc)
            return {"tracked": 0, "skipped": str(exc)}
        tracked = 0
        for revenue_event in revenue_events:
            try:
                await revenue.track(revenue_event)
            except DuplicateTransactionError:
                continue  # a redelivered webhook: Pulsora has it already
            except BadRequestError as exc:  # this event is refused for good: retrying won't help
                logger.warning("Stripe event %s not tracked: %s", event.get("id"), exc)
                continue
            except PulsoraError as exc:
                # Pulsora unreachable or overloaded, a proxy in the way, or our token
                # wrong: answer 503 so that Stripe delivers the webhook again later
                # (de-duplicated: the ledger maps it to the same events again), once it
                # is fixed. Never acknowledge what was not kept.
                raise HTTPException(503, str(exc)) from None
            tracked += 1
        return {"tracked": tracked}

    return app


if os.environ.get("STRIPE_WEBHOOK_SECRET"):
    # With an outbox, a Pulsora outage does not fail the webhook: the event is
    # kept on disk and delivered in the background once Pulsora is back.
    app = create_app(
        outbox=os.environ.get("PULSORA_OUTBOX", "revenue-outbox.sqlite"),
        ledger=SQLiteLedger(os.environ.get("PULSORA_LEDGER", "revenue-ledger.sqlite")),
    )
