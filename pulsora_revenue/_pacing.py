"""Pacing for bulk sending: one shared 429 gate, and an optional token bucket.

Both run on anyio's clock (through ``_clock``, so test mode skips the waits) and
hold no lock: every decision is taken between two awaits, which on one event
loop makes it atomic.
"""

from __future__ import annotations

from collections.abc import Callable

import attrs

from . import _clock
from ._errors import ConfigurationError
from ._retry import RETRY_AFTER_JITTER


@attrs.define
class RateGate:
    """Closed by any 429 for its Retry-After; every sender waits while it is closed.

    Senders are released with a small random jitter each, so that they do not
    all come back in the same instant.
    """

    uniform: Callable[[float, float], float]
    _until: float = 0.0
    closures: int = 0

    def close_for(self, seconds: float) -> None:
        """Keep every sender waiting for *seconds* from now (or longer, if already)."""
        until = _clock.now() + seconds
        if until > self._until:
            self._until = until
            self.closures += 1

    @property
    def is_closed(self) -> bool:
        return self._until > _clock.now()

    async def wait(self) -> None:
        """Return once the gate is open (at once, if it is)."""
        if not self.closures:
            return  # never closed: spare the clock
        while (left := self._until - _clock.now()) > 0:
            await _clock.sleep(left + self.uniform(0.0, RETRY_AFTER_JITTER))


@attrs.define
class TokenBucket:
    """At most *rate* requests per second, spaced evenly (a bucket of one token).

    Each caller reserves the next free slot and sleeps until it; a caller
    cancelled while waiting leaves its slot unused, which only slows the rate.
    """

    rate: float
    _next: float = 0.0

    def __attrs_post_init__(self) -> None:
        if not self.rate > 0:
            raise ConfigurationError(
                f"rate_limit must be a positive number of requests per second, not {self.rate!r}"
            )

    async def acquire(self) -> None:
        """Wait for this caller's slot."""
        now = _clock.now()
        slot = max(now, self._next)
        self._next = slot + 1.0 / self.rate
        if slot > now:
            await _clock.sleep(slot - now)


@attrs.define
class Pacing:
    """What every request of a bulk run waits for: the 429 gate, then the bucket."""

    gate: RateGate
    bucket: TokenBucket | None = None

    @property
    def idle(self) -> bool:
        """True while there is nothing to wait for: no bucket, and the 429 gate open.

        The clock is read only once the gate has closed at least once; before
        that, as in most runs, it is known to be open.
        """
        return self.bucket is None and (not self.gate.closures or not self.gate.is_closed)

    async def wait(self) -> None:
        await self.gate.wait()
        if self.bucket is not None:
            await self.bucket.acquire()
            await self.gate.wait()  # a 429 may have closed it while we waited
