"""Webhook signatures made the way Stripe and Paddle make them, to test your routes."""

from __future__ import annotations

import time

from ..webhooks import paddle, stripe


def sign_stripe(payload: bytes | str, secret: str, *, timestamp: int | None = None) -> str:
    """Sign a payload as Stripe does, to test a webhook route.

    Args:
        payload: the request body to sign.
        secret: the endpoint secret the route verifies with (``whsec_...``).
        timestamp: the signature's Unix time; None (the default) for now.

    Returns:
        A valid ``Stripe-Signature`` header value.
    """
    return stripe.sign(payload, secret, timestamp=_now() if timestamp is None else timestamp)


def sign_paddle(payload: bytes | str, secret: str, *, timestamp: int | None = None) -> str:
    """Sign a payload as Paddle does, to test a webhook route.

    Args:
        payload: the request body to sign.
        secret: the secret key the route verifies with.
        timestamp: the signature's Unix time; None (the default) for now.

    Returns:
        A valid ``Paddle-Signature`` header value.
    """
    return paddle.sign(payload, secret, timestamp=_now() if timestamp is None else timestamp)


def _now() -> int:
    return int(time.time())
