"""Time for the retry loop, with a test mode in which waits are recorded, not slept.

In test mode a wait advances a virtual offset instead of the real clock, so that
deadlines behave as they would in production while the test runs instantly.
"""

from __future__ import annotations

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
