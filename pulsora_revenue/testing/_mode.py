"""Test mode: retries wait no real time, and the waits they asked for are recorded."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from .._clock import MODE


def set_testing(testing: bool) -> None:
    """Turn test mode on or off; either way, forget the recorded waits.

    In test mode the client's waits between attempts (back-offs, ``Retry-After``,
    ``track_many``'s 429 gate and rate limit) are recorded instead of slept, and
    deadlines are measured as if the waits had happened.

    Args:
        testing: True to turn test mode on, False to turn it off.
    """
    MODE.enabled = testing
    MODE.sleeps = []
    MODE.offset = 0.0


def is_testing() -> bool:
    """Say whether test mode is on.

    Returns:
        True while test mode is on.
    """
    return MODE.enabled


def recorded_sleeps() -> list[float]:
    """Return the waits requested since test mode was last set.

    Returns:
        A copy of the waits, in seconds, in the order requested.
    """
    return list(MODE.sleeps)


@contextmanager
def fast_retries() -> Iterator[list[float]]:
    """Run a block in test mode, then put the mode back as it was.

    Yields:
        The live list of the waits requested in the block, in seconds.
    """
    was = MODE.enabled
    set_testing(True)
    try:
        yield MODE.sleeps
    finally:
        set_testing(was)
