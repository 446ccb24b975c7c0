"""Whether a bulk run's first failures say that no event can be delivered at all.

A wrong endpoint fails every event the same way: nothing listens there, the host
is unknown, TLS fails, the path answers 404 or 405, or what answers is not
Pulsora. A backfill of 100,000 events would fail each of them, one by one, with
retries. ``FirstFailures`` watches a run's first deliveries: once the first
``FIRST_FAILURES`` of them have all failed the same way for such a reason, the
run stops with an ``EndpointError``; one delivered event ends the watch.
"""

from __future__ import annotations

import attrs

from ._errors import (
    APIConnectionError,
    APIError,
    APITimeoutError,
    EndpointError,
    UnexpectedResponseError,
)

#: How many failures, before any event of a run was delivered, show a wrong endpoint.
FIRST_FAILURES = 5

#: Statuses that say the URL is not an ingest endpoint: no such path, or no POST there.
_WRONG_PATH = frozenset({404, 405})


def endpoint_fault(error: Exception) -> str | None:
    """What *error* says is wrong with the endpoint itself, or None if an event may fix it.

    A timeout is not such a fault (a slow network may recover), nor is a
    connection broken after the request went out.
    """
    if isinstance(error, APIConnectionError):
        if error.connected or isinstance(error, APITimeoutError):
            return None
        return f"could not connect ({error.failure or 'no detail'})"
    if isinstance(error, UnexpectedResponseError):
        return f"HTTP {error.status_code} with an answer that is not Pulsora's"
    if isinstance(error, APIError) and error.status_code in _WRONG_PATH:
        said = f": {error.message[:80]}" if error.message else ""
        return f"HTTP {error.status_code}{said}"
    return None


@attrs.define
class FirstFailures:
    """Watches the first deliveries of a run to *endpoint* for a fault no event can fix."""

    endpoint: str
    _count: int = 0
    _fault: str | None = None
    _first: Exception | None = None
    _watching: bool = True

    def delivered(self) -> None:
        """An event was delivered: the endpoint works, whatever fails later."""
        self._watching = False

    def failed(self, error: Exception) -> EndpointError | None:
        """Count a failed delivery; return the run's stop if it is the last straw."""
        if not self._watching:
            return None
        fault = endpoint_fault(error)
        if fault is None or (self._fault is not None and fault != self._fault):
            self._watching = False  # not the same way each time: judge each event alone
            return None
        self._count += 1
        self._fault, self._first = fault, self._first or error
        if self._count < FIRST_FAILURES:
            return None
        self._watching = False
        stop = EndpointError(
            f"Stopped: the first {self._count} events all failed the same way at "
            f"{self.endpoint}: {fault}. No event can be delivered there; check the endpoint "
            "URL (and any proxy on the way), then run it again.",
            endpoint=self.endpoint,
        )
        stop.__cause__ = self._first
        return stop
