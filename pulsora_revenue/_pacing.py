"""Pacing for bulk sending: one shared 429 gate, and an optional token bucket.

Both run on anyio's clock (through ``_clock``, so test mode skips the waits) and
hold no lock: every decision is taken between two awaits, which on one event
loop makes it atomic.

A wait at the 429 gate is part of the waiting event's time, and counts against
its deadline: an event that the gate would hold past it is turned away at once,
with the 429 that closed the gate. A wait for the token bucket does not count:
it is the caller's own pacing, at most ``concurrency / rate_limit`` a request.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import attrs

from . import _clock
from ._errors import ConfigurationError
from ._retry import RETRY_AFTER_JITTER, Observation, leaves_time
from ._transports._reply import Reply


@attrs.define
class RateGate:
    """Closed by any 429 for its Retry-After; every sender waits while it is closed.

    Senders are released with a small random jitter each, so that they do not
    all come back in the same instant. ``reply`` is the 429 that closed it last.
    """

    uniform: Callable[[float, float], float]
    _until: float = 0.0
    closures: int = 0
    reply: Reply | None = None

    def close_for(self, seconds: float, reply: Reply | None = None) -> None:
        """Keep every sender waiting for *seconds* from now (or longer, if already).

        *reply* is the 429 that asked for it: the error of the events turned away.
        """
        until = _clock.now() + seconds
        if until > self._until:
            self._until = until
            self.closures += 1
            self.reply = reply or self.reply

    @property
    def is_closed(self) -> bool:
        return self._until > _clock.now()

    async def wait(
        self, watch: _clock.Stopwatch | None = None, deadline: float = math.inf
    ) -> Reply | None:
        """Return None once the gate is open (at once, if it is).

        With *watch*, the event's own, the wait counts as its time (in test mode
        too); if the gate would keep it past *deadline* (seconds by *watch*),
        return at once the 429 that closed the gate, without waiting.
        """
        if not self.closures:
            return None  # never closed: spare the clock
        while (left := self._until - _clock.now()) > 0:
            pause = left + self.uniform(0.0, RETRY_AFTER_JITTER)
            if watch is None:
                await _clock.sleep(pause)
            elif leaves_time(deadline, watch.elapsed(), pause):
                await watch.sleep(pause)
            else:
                return self.reply or Reply(Observation(429, retry_after=left))
        return None


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

    async def wait(
        self, watch: _clock.Stopwatch | None = None, deadline: float = math.inf
    ) -> Reply | None:
        """Wait for the gate, then for the bucket; see ``RateGate.wait``.

        Return None when the event may be sent; else the 429 that keeps the gate
        closed past *deadline*. The bucket's wait is left out of *watch*.
        """
        refusal = await self.gate.wait(watch, deadline)
        if refusal is not None or self.bucket is None:
            return refusal
        if watch is None:
            await self.bucket.acquire()
        else:
            before = watch.elapsed()
            await self.bucket.acquire()
            watch.exclude(watch.elapsed() - before)
        return await self.gate.wait(watch, deadline)  # a 429 may have closed it meanwhile
