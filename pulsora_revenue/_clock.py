"""Time for the retry loop, with a test mode in which waits are recorded, not slept.

In test mode a wait is recorded and counted as time passed by the call that
waited (its ``Stopwatch``), so that deadlines behave as they would in
production while the test runs instantly. ``now()`` adds every skipped wait of
every call, for emulators that need a clock that moves in test mode.
"""

from __future__ import annotations

import sys
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


def running_loop() -> object:
    """The running event loop, as something to compare: asyncio's loop, or anyio's token.

    asyncio's is read without anyio's detour through sniffio, and a tenth of its cost.
    """
    asyncio = sys.modules.get("asyncio")
    if asyncio is not None:
        try:
            return asyncio.get_running_loop()
        except RuntimeError:  # not asyncio: trio
            pass
    return anyio.lowlevel.current_token()


def loop_clock() -> Callable[[], float]:
    """The running event loop's clock, as a plain function (cheaper than anyio's per call)."""
    # Cheaper than asking sniffio, and asyncio is not imported here: a program that
    # has not imported it runs no asyncio loop.
    asyncio = sys.modules.get("asyncio")
    try:
        loop = asyncio.get_running_loop() if asyncio is not None else None
    except RuntimeError:  # not asyncio: trio
        loop = None
    if asyncio is None or loop is None:
        return anyio.current_time
    clock: Callable[[], float] = loop.time
    if getattr(clock, "__func__", None) is asyncio.BaseEventLoop.time:  # asyncio's own
        return time.monotonic  # clock is time.monotonic: read it without a Python frame
    return clock  # uvloop's, or one a test replaced


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
