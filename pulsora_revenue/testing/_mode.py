"""Test mode: retries wait no real time, and the waits they asked for are recorded."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from .._clock import MODE


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
