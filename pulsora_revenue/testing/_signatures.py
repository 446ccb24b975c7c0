"""Webhook signatures made the way Stripe and Paddle make them, to test your routes."""

from __future__ import annotations

import time

from ..webhooks import paddle, stripe


def sign_stripe(payload: bytes | str, secret: str, *, timestamp: int | None = None) -> str:
    """Return a valid ``Stripe-Signature`` header value for *payload* (signed now, by default)."""
    return stripe.sign(payload, secret, timestamp=_now() if timestamp is None else timestamp)


def sign_paddle(payload: bytes | str, secret: str, *, timestamp: int | None = None) -> str:
    """Return a valid ``Paddle-Signature`` header value for *payload* (signed now, by default)."""
    return paddle.sign(payload, secret, timestamp=_now() if timestamp is None else timestamp)


def _now() -> int:
    return int(time.time())
