"""Time for the retry loop, with a test mode in which waits are recorded, not slept.

In test mode a wait is recorded and counted as time passed by the call that
waited (its ``Stopwatch``), so that deadlines behave as they would in
production while the test runs instantly. ``now()`` adds every skipped wait of
every call, for emulators that need a clock that moves in test mode.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import anyio
import anyio.lowlevel
import attrs


@attrs.define
class TestMode:
    """Internal state behind ``pulsora_revenue.testing.set_testing``."""

    enabled: bool = False
    sleeps: list[float] = attrs.Factory(list)
    offset: float = 0.0


MODE = TestMode()


def now() -> float:
    """Return the event loop's clock, advanced by every wait skipped in test mode."""
    return anyio.current_time() + MODE.offset


async def sleep(seconds: float) -> None:
    """Wait *seconds* in the caller's cancel scope (in test mode, only record it)."""
    if MODE.enabled:
        MODE.sleeps.append(seconds)
        MODE.offset += seconds
        await anyio.lowlevel.checkpoint()
    else:
        await anyio.sleep(seconds)


def loop_clock() -> Callable[[], float]:
    """The running event loop's clock, as a plain function (cheaper than anyio's per call)."""
    try:  # cheaper than asking sniffio, and this runs for every event
        loop = asyncio.get_running_loop()
    except RuntimeError:  # not asyncio: trio
        return anyio.current_time
    clock = loop.time
    if getattr(clock, "__func__", None) is _STOCK_TIME:  # asyncio's own clock is
        return time.monotonic  # time.monotonic: read it without a Python frame between
    return clock  # uvloop's, or one a test replaced


_STOCK_TIME = asyncio.BaseEventLoop.time


class Stopwatch:
    """The time one call has taken, its own skipped waits included in test mode.

    A plain slotted class: one is made for every event sent.
    """

    __slots__ = ("_clock", "skipped", "started")

    def __init__(self, clock: Callable[[], float] | None = None) -> None:
        """Start now, by *clock* (default: the running loop's, from ``loop_clock``)."""
        self._clock = clock or loop_clock()
        self.started = self._clock()
        self.skipped = 0.0

    def elapsed(self) -> float:
        """Seconds since the stopwatch started."""
        return self._clock() - self.started + self.skipped

    async def sleep(self, seconds: float) -> None:
        """Wait *seconds* (in test mode: record them, and count them as elapsed)."""
        if MODE.enabled:
            self.skipped += seconds
        await sleep(seconds)

    def exclude(self, seconds: float) -> None:
        """Leave *seconds* (that just passed) out of the elapsed time."""
        self.started += seconds
