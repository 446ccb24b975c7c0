"""``FakePulsora``: the ingest contract in process, as an httpx transport."""

from __future__ import annotations

import random
from collections.abc import Callable, Collection, Iterable

import anyio
import attrs
import httpx

from .. import _clock
from .._event import RevenueEvent
from ._contract import Answer, Ingest, RateLimit
from ._faults import Fault, FaultSchedule, respond


@attrs.frozen
class Rejection:
    """A request the emulator refused: its status, error message and body.

    Attributes:
        status: the HTTP status it was answered with.
        message: the error message of the answer.
        body: the request's body as text, shortened, with its token blanked out.
    """

    status: int
    message: str
    body: str


@attrs.define
class MemoryStore:
    """Accepted events and refused requests, in memory: ``FakePulsora``'s store."""

    events: list[RevenueEvent] = attrs.Factory(list)
    rejected: list[Rejection] = attrs.Factory(list)
    _keys: set[tuple[str, str]] = attrs.Factory(set)

    def record(self, event: RevenueEvent) -> bool:
        """Keep *event*; return False (keeping nothing) if its key was seen before."""
        if event.dedup_key in self._keys:
            return False
        self._keys.add(event.dedup_key)
        self.events.append(event)
        return True

    def reject(self, answer: Answer, body: str) -> None:
        """Keep a refused request with the answer it got; *body* is as it may be shown."""
        self.rejected.append(Rejection(answer.status, answer.message, body))

    def clear(self) -> None:
        """Forget every event and refusal."""
        self.events.clear()
        self.rejected.clear()
        self._keys.clear()


class FakePulsora:
    """An in-process Pulsora for tests: ``Revenue(..., transport=fake.transport)``.

    It follows the same contract as the real API (and the dev server): it
    validates, authenticates, de-duplicates and answers 202, 400, 401, 403, 409
    or 429. ``events`` holds the accepted ``RevenueEvent``s, ``rejected`` the
    refused requests. Script faults for the next requests with ``fail_next``,
    ``drop_next`` and ``delay_next`` (or ``script``), an ``outage``, or set
    ``chaos``; ``clear_faults`` forgets them.

    Args:
        tokens: the valid tokens; None (the default) for any ``sec_`` or ``pub_`` token.
        rate_limit: ``(requests, seconds)``: above it, a 429 with ``Retry-After``, in
            fixed windows; None for no limit.
        latency: how long each request takes, in seconds (real time, even in test mode),
            or a function that returns it (for answers out of order).
        seed: the seed of ``chaos``'s draws, for the same faults on every run.

    Attributes:
        transport: the ``httpx.MockTransport`` to give ``Revenue(transport=...)``.
        requests: how many requests it received.
        concurrency: how many requests it is handling now.
        peak_concurrency: the most requests it handled at once.
    """

    def __init__(
        self,
        *,
        tokens: Collection[str] | None = None,
        rate_limit: tuple[int, float] | None = None,
        latency: float | Callable[[], float] = 0.0,
        seed: int | None = None,
    ) -> None:
        self._store = MemoryStore()
        limit = RateLimit(*rate_limit) if rate_limit is not None else None
        self._ingest = Ingest(self._store, tokens=tokens, rate_limit=limit)
        self._schedule = FaultSchedule(rng=random.Random(seed))
        self.requests = 0
        self.concurrency = 0
        self.peak_concurrency = 0
        self._latency = latency if callable(latency) else (lambda: latency)
        self.transport = httpx.MockTransport(self._handle)

    def __repr__(self) -> str:
        return (
            f"<FakePulsora events={len(self.events)} rejected={len(self.rejected)} "
            f"requests={self.requests}>"
        )

    @property
    def events(self) -> list[RevenueEvent]:
        """The accepted events, in the order received."""
        return self._store.events

    @property
    def rejected(self) -> list[Rejection]:
        """The refused requests (scripted faults included), in the order received."""
        return self._store.rejected

    @property
    def chaos(self) -> float:
        """The share of requests (0 to 1) that get a random fault."""
        return self._schedule.chaos

    @chaos.setter
    def chaos(self, rate: float) -> None:
        if not 0 <= rate <= 1:
            raise ValueError(f"chaos must be between 0 and 1, not {rate!r}")
        self._schedule.chaos = rate

    def script(self, faults: Iterable[Fault]) -> None:
        """Apply faults to the next requests, one each, in order.

        Args:
            faults: the ``Fault``s, for the next requests in turn.
        """
        self._schedule.script(faults)

    def fail_next(self, *statuses: int, retry_after: float | None = None) -> None:
        """Answer the next requests with error statuses, without recording their events.

        Each such request is kept in ``rejected``.

        Args:
            *statuses: the status of each next request, in order (``fail_next(503, 503)``:
                the next two).
            retry_after: the ``Retry-After`` header of each, in seconds; None for none.
        """
        self.script(Fault(status=s, retry_after=retry_after) for s in statuses)

    def drop_next(self, count: int = 1) -> None:
        """Handle the next requests as usual, then close the connection without an answer.

        Their events are recorded: the lost answer that makes a retry land twice.

        Args:
            count: how many requests, from the next one on.
        """
        self.script(Fault(drop=True) for _ in range(count))

    def delay_next(self, seconds: float, count: int = 1) -> None:
        """Answer the next requests late, their events recorded first.

        Args:
            seconds: how late, in real seconds.
            count: how many requests, from the next one on.
        """
        self.script(Fault(delay=seconds) for _ in range(count))

    def outage(self, status: int, seconds: float, *, retry_after: float | None = None) -> None:
        """Answer every request with an error status for a while, from the next request on.

        The seconds are those of the test clock: in test mode, waits skipped by
        retries count.

        Args:
            status: the status of every answer, such as 503.
            seconds: how long the outage lasts, from the next request on.
            retry_after: the ``Retry-After`` header of each answer, in seconds; None for
                none.
        """
        self._schedule.outage(Fault(status=status, retry_after=retry_after), seconds=seconds)

    def clear_faults(self) -> None:
        """Forget scripted faults, end an outage and turn chaos off; keep the events."""
        self._schedule.clear()

    def reset(self) -> None:
        """Forget events, rejections, faults, the rate limit's window and the counts."""
        self._store.clear()
        self.clear_faults()
        if self._ingest.rate_limit is not None:
            self._ingest.rate_limit.reset()
        self.requests = self.peak_concurrency = 0

    async def _handle(self, request: httpx.Request) -> httpx.Response:
        self.requests += 1
        self.concurrency += 1
        self.peak_concurrency = max(self.peak_concurrency, self.concurrency)
        try:
            body = await request.aread()
            if latency := self._latency():
                await anyio.sleep(latency)  # real time, even in test mode: it is the server's
            answer = await respond(
                self._ingest, self._schedule, request.headers, body, clock=_clock.now
            )
        finally:
            self.concurrency -= 1
        if answer is None:
            raise httpx.RemoteProtocolError(
                "Server disconnected without sending a response.", request=request
            )
        return httpx.Response(answer.status, headers=answer.headers, content=answer.encode())
