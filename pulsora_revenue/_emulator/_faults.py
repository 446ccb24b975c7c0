"""Scriptable faults for the emulator: error statuses, delays, dropped answers.

A ``FaultSchedule`` decides what happens to each next request: an outage, then
the scripted faults in order, then random ones at an optional chaos rate.
``respond`` carries a fault out around the ingest contract; the front ends only
translate its result into HTTP.
"""

from __future__ import annotations

import math
import random
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import anyio
import attrs

from .._errors import received
from .._money import parse_decimal
from ._contract import Answer, Ingest

_REASONS: Mapping[int, str] = {
    401: "Invalid API token",  # the contract's own messages, as Pulsora words them
    403: "Revenue events require secret token",
    409: "Duplicate transaction",
    408: "Request timeout",
    429: "Rate limited",
    500: "Internal server error",
    502: "Bad gateway",
    503: "Service unavailable",
    504: "Gateway timeout",
}


_FAULT_KEYS = ("status", "retry_after", "delay", "drop")


@attrs.frozen(kw_only=True)
class Fault:
    """What to do to one request instead of (or besides) answering it normally.

    Attributes:
        status: answer with this status and record no event.
        retry_after: the ``Retry-After`` header of a ``status`` answer, in seconds.
        delay: wait this many seconds before answering, after the event was recorded:
            a client that times out meanwhile has lost an answer, as with ``drop``.
        drop: handle the request normally (the event is recorded), then close the
            connection without an answer: the lost answer that makes retries land twice.
    """

    status: int | None = None
    retry_after: float | None = None
    delay: float = 0.0
    drop: bool = False

    @classmethod
    def from_json(cls, value: Mapping[str, Any]) -> Fault:
        """Build a fault from its JSON form, as ``POST /api/faults`` takes it.

        Args:
            value: the fault's JSON object, with any of the keys ``status``,
                ``retry_after``, ``delay`` and ``drop``.

        Returns:
            The fault.

        Raises:
            ValueError: when a key is unknown, or a value is not of its kind (a status
                outside 100 to 599, a negative number of seconds).
        """
        unknown = [key for key in value if key not in _FAULT_KEYS]
        if unknown:
            raise ValueError(f"unknown fault keys: {received(unknown)}")
        status = value.get("status")
        if status is not None and (type(status) is not int or not 100 <= status <= 599):
            raise ValueError(f"status must be an HTTP status code, not {received(status)}")
        drop = value.get("drop", False)
        if not isinstance(drop, bool):
            raise ValueError(f"drop must be true or false, not {received(drop)}")
        return cls(
            status=status,
            retry_after=_seconds(value.get("retry_after"), "retry_after"),
            delay=_seconds(value.get("delay"), "delay") or 0.0,
            drop=drop,
        )


def _status_answer(status: int, retry_after: float | None) -> Answer:
    """The answer a status fault gives: *status*, in Pulsora's words where it has some."""
    headers = {}
    if retry_after is not None:
        headers["Retry-After"] = f"{retry_after:g}"
    reason = _REASONS.get(status, "Scripted fault")
    return Answer(status, {"error": reason}, headers)


def _seconds(value: object, name: str) -> float | None:
    if value is None:
        return None
    number = parse_decimal(value) if not isinstance(value, str) else None  # no huge int converted
    if number is not None and number >= 0 and math.isfinite(float(number)):
        return float(number)
    raise ValueError(f"{name} must be a number of seconds, not {received(value)}")


#: The faults chaos mode draws from.
CHAOS_MENU = (
    Fault(status=503),
    Fault(status=500),
    Fault(status=429, retry_after=1),
    Fault(drop=True),
)


@attrs.define
class FaultSchedule:
    """The fault each next request meets, if any.

    An outage first (the same fault for every request, for a while), then the
    scripted faults in order, then random ones from ``CHAOS_MENU`` at the
    ``chaos`` rate, drawn with *rng*.
    """

    chaos: float = 0.0
    rng: random.Random = attrs.Factory(random.Random)
    _queue: deque[Fault] = attrs.Factory(deque)
    _outage: Fault | None = None
    _outage_seconds: float = 0.0
    _outage_until: float | None = None

    def outage(self, fault: Fault, *, seconds: float) -> None:
        """Apply *fault* to every request for *seconds*, from the next request on."""
        self._outage, self._outage_seconds, self._outage_until = fault, seconds, None

    def script(self, faults: Iterable[Fault]) -> None:
        """Apply *faults* to the next requests, one each, in order."""
        self._queue.extend(faults)

    def clear(self) -> None:
        """Forget scripted faults, end an outage, and turn chaos off."""
        self._queue.clear()
        self.chaos = 0.0
        self._outage = None

    @property
    def pending(self) -> int:
        """How many scripted faults are still waiting for a request."""
        return len(self._queue)

    def next(self, now: float) -> Fault | None:
        """Return the fault for a request arriving at *now*, if any."""
        if self._outage is not None:
            if self._outage_until is None:
                self._outage_until = now + self._outage_seconds
            if now < self._outage_until:
                return self._outage
        if self._queue:
            return self._queue.popleft()
        if self.chaos and self.rng.random() < self.chaos:
            return self.rng.choice(CHAOS_MENU)
        return None


async def respond(
    ingest: Ingest,
    schedule: FaultSchedule,
    headers: Mapping[str, str],
    body: bytes,
    *,
    clock: Callable[[], float],
) -> Answer | None:
    """Answer one request under the next fault; None means: drop the connection."""
    fault = schedule.next(clock())
    if fault is not None and fault.status is not None:
        answer = _status_answer(fault.status, fault.retry_after)
        ingest.reject(answer, body)
    else:
        answer = ingest.handle(headers, body, now=clock())
    if fault is not None and fault.delay:
        await anyio.sleep(fault.delay)  # decided (and recorded) already: a late answer
    return None if fault is not None and fault.drop else answer
