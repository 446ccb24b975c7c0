"""Helpers for testing code that uses pulsora_revenue.

``FakePulsora`` is Pulsora's ingest API in process, usable as
``Revenue(..., transport=fake.transport)``; the pytest fixture ``fake_pulsora``
comes with ``pytest_plugins = ["pulsora_revenue.pytest_plugin"]``.

``set_testing(True)`` makes retries wait no real time: every wait the client
would sleep is recorded instead (see ``recorded_sleeps``), and deadlines are
measured as if the waits had happened.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

from ._clock import MODE
from ._fake import FakePulsora, Rejection
from ._faults import Fault
from .webhooks import paddle, stripe

__all__ = [
    "FakePulsora",
    "Fault",
    "Rejection",
    "fast_retries",
    "is_testing",
    "recorded_sleeps",
    "set_testing",
    "sign_paddle",
    "sign_stripe",
]


def set_testing(testing: bool) -> None:
    """Turn test mode on or off; either way, forget the recorded waits."""
    MODE.enabled = testing
    MODE.sleeps = []
    MODE.offset = 0.0


def is_testing() -> bool:
    """Return whether test mode is on."""
    return MODE.enabled


def recorded_sleeps() -> list[float]:
    """Return the waits requested since test mode was last set, in seconds."""
    return list(MODE.sleeps)


@contextmanager
def fast_retries() -> Iterator[list[float]]:
    """Run a block in test mode; yield the live list of requested waits."""
    was = MODE.enabled
    set_testing(True)
    try:
        yield MODE.sleeps
    finally:
        set_testing(was)


def sign_stripe(payload: bytes | str, secret: str, *, timestamp: int | None = None) -> str:
    """A valid ``Stripe-Signature`` header value for *payload*, to test your routes."""
    return stripe.sign(
        payload, secret, timestamp=int(time.time()) if timestamp is None else timestamp
    )


def sign_paddle(payload: bytes | str, secret: str, *, timestamp: int | None = None) -> str:
    """A valid ``Paddle-Signature`` header value for *payload*, to test your routes."""
    return paddle.sign(
        payload, secret, timestamp=int(time.time()) if timestamp is None else timestamp
    )
