"""The ``Revenue`` client: validate, send, retry, and report."""

from __future__ import annotations

import logging
import warnings
from collections.abc import AsyncGenerator, AsyncIterable, Callable, Iterable, Mapping
from contextlib import AsyncExitStack
from datetime import timedelta
from os import PathLike
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self

import anyio
import httpx

from ._clock import loop_clock, running_loop
from ._config import hide, resolve_endpoint, resolve_token
from ._convert import encode, to_event
from ._delivery import Channel
from ._errors import APIConnectionError, APIError, ClientClosedError, ConfigurationError
from ._event import RevenueEvent
from ._results import BatchReport, DeadLetter, Outcome, Progress, TrackResult
from ._retry import RETRYABLE_STATUSES, RetryPolicy, to_seconds
from ._transports import Backend, Sender, open_sender, resolve_backend

if TYPE_CHECKING:
    from ._outbox import OutboxService

logger = logging.getLogger("pulsora_revenue")

#: Final statuses of ``track`` that the outbox keeps for later, instead of raising
#: (with every failure to get an answer at all).
QUEUEABLE_STATUSES = RETRYABLE_STATUSES | {501, 505}

#: Connections kept by the client we create; track_many with a higher
#: concurrency uses a pool of its own, sized to match.
POOL_SIZE = 64


class Revenue:
    """An async client that records revenue events in Pulsora.

    Use it as ``async with Revenue() as revenue: await revenue.track(...)``.
    The token comes from *api_token* or ``PULSORA_SECRET_TOKEN`` and must be a
    secret ``sec_`` token. Construction does no I/O; the HTTP client is created
    on first use. An *http_client* you pass is used but never closed here.

    *backend* picks the HTTP library: ``"auto"`` (the default, also settable
    with ``PULSORA_HTTP_BACKEND``) uses aiohttp when the ``speed`` extra is
    installed and the loop is asyncio, and httpx otherwise; ``"httpx"`` forces
    httpx. Passing *http_client* or *transport* means httpx.
    """

    def __init__(
        self,
        api_token: str | None = None,
        *,
        endpoint: str | None = None,
        timeout: float | timedelta = 10.0,
        retry: RetryPolicy | None = None,
        http_client: httpx.AsyncClient | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        debug: bool = False,
        backend: Backend | None = None,
        outbox: str | PathLike[str] | None = None,
    ) -> None:
        # First of all: a traceback rendered with its locals (Sentry, rich) shows
        # this frame's, and from here on they hold the token only redacted.
        token = hide(api_token)
        del api_token
        self._token = resolve_token(token)
        self._url = resolve_endpoint(endpoint)
        self._shown_url = str(self._url)
        self._timeout = to_seconds(timeout)
        if not self._timeout > 0:
            raise ConfigurationError(f"timeout must be positive, not {timeout!r}")
        if retry is not None and not isinstance(retry, RetryPolicy):
            raise ConfigurationError(f"retry must be a RetryPolicy, not {retry!r}")
        if http_client is not None and transport is not None:
            raise ConfigurationError("pass http_client or transport, not both")
        configured = http_client is not None or transport is not None
        self._backend = resolve_backend(backend, configured=configured)
        self._retry = retry or RetryPolicy()
        self._client = http_client
        self._transport = transport
        self._sender_in_use: Sender | None = None
        self._loop: object = None  # the event loop its sender is bound to (_clock.running_loop)
        self._clock: Callable[[], float] | None = None  # that loop's (_clock.loop_clock)
        self._guard: AsyncGenerator[None, None] | None = None  # closes the sender with its loop
        self._closed = False
        self._channel = Channel(
            url=self._shown_url, policy=self._retry, scrub=self._scrub, debug=debug
        )
        self._outbox: OutboxService | None = None
        if outbox is not None:  # sqlite3 is loaded only for a client with an outbox
            from ._outbox import OutboxService

            self._outbox = OutboxService(outbox, endpoint=self._shown_url, channel=self._channel)
        self._services = AsyncExitStack()  # what __aenter__ started, which __aexit__ ends

    def __repr__(self) -> str:
        # Safe on a half-built client too: a traceback of a failed __init__ shows one.
        state = " closed" if getattr(self, "_closed", False) else ""
        endpoint, token = getattr(self, "_shown_url", "?"), getattr(self, "_token", "?")
        return f"<Revenue{state} endpoint={endpoint!r} token={str(token)!r}>"

    @property
    def endpoint(self) -> str:
        """The ingest URL events are sent to."""
        return self._shown_url

    @property
    def retry(self) -> RetryPolicy:
        """The retry policy in force."""
        return self._retry

    async def __aenter__(self) -> Self:
        sender = await self._sender()
        if self._outbox is not None:  # deliver what earlier runs queued, in the background
            try:  # a bad path fails here, not in the background
                await self._services.enter_async_context(self._outbox.running(sender))
            except BaseException:
                await self.aclose()  # no __aexit__ follows a failed __aenter__
                raise
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            await self.aclose()
        finally:  # exited where they were entered: in this task
            await self._services.aclose()

    async def aclose(self) -> None:
        """Stop delivering from the outbox, close the connections we opened; idempotent.

        Rows still in the outbox stay there for the next run. Any task may call
        it, in any cancel scope.
        """
        if self._closed:
            return
        self._closed = True
        # Calls waiting to try again end now, not after the wait; none tries again.
        self._channel.pauses.close(f"{self!r} is closed; create a new Revenue client")
        try:
            if self._outbox is not None:  # its task group is left to __aexit__, in its task
                await self._outbox.stop()
        finally:
            if self._guard is not None and running_loop() == self._loop:
                with anyio.CancelScope(shield=True):
                    await self._guard.aclose()  # closes the sender

    def __del__(self) -> None:
        opened = getattr(self, "_sender_in_use", None) is not None and self._client is None
        if opened and not self._closed:
            warnings.warn(
                f"{self!r} was never closed; use 'async with' or await aclose()",
                ResourceWarning,
                source=self,
                stacklevel=1,
            )

    async def track(
        self, event: RevenueEvent | Mapping[str, Any] | None = None, /, **fields: Any
    ) -> TrackResult:
        """Record one revenue event; return once Pulsora has accepted it.

        *event* is a ``RevenueEvent`` or a mapping of its fields; or pass the
        fields as keywords. Invalid input raises ``ValidationError`` before any
        I/O. Retryable failures are retried by the ``RetryPolicy``; a final
        failure raises the matching ``APIError`` or ``APIConnectionError``.
        """
        revenue_event = to_event(event, fields)
        sender = await self._sender()
        body = encode(revenue_event)
        if self._outbox is None:
            return await self._channel.deliver(sender, revenue_event, body, clock=self._clock)
        started = anyio.current_time()
        try:
            return await self._channel.deliver(sender, revenue_event, body, clock=self._clock)
        except (APIConnectionError, APIError) as exc:
            if isinstance(exc, APIError) and exc.status_code not in QUEUEABLE_STATUSES:
                raise  # refused for good: a queue must not fill with what can never pass
            await self._outbox.put(revenue_event, body, exc)
            attempts = exc.attempts
        elapsed = anyio.current_time() - started
        return TrackResult(revenue_event, None, attempts, elapsed, queued=True)

    async def flush(self, timeout: float | None = None) -> int:  # noqa: ASYNC109 (the API)
        """Deliver the outbox now, for at most *timeout* seconds; return what is left.

        Only the events queued for this client's endpoint are delivered and
        counted. Rows waiting out a back-off are tried at once; while Pulsora
        is down, tries are spaced by the drainer's back-off.
        """
        if self._outbox is None:
            return 0
        sender = await self._sender()
        return await self._outbox.flush(sender, timeout)

    async def outbox_size(self) -> int:
        """How many events for this client's endpoint wait in the outbox (0 without one)."""
        return 0 if self._outbox is None else await self._outbox.size()

    async def dead_letters(self) -> list[DeadLetter]:
        """The events of this client's endpoint that Pulsora refused for good, oldest first.

        The outbox keeps each queued event that Pulsora later refused (a 400,
        413 or 422) as a ``DeadLetter``, with the refusal; none without an outbox.
        """
        return [] if self._outbox is None else await self._outbox.dead_letters()

    async def retry_dead_letters(self, letters: Iterable[DeadLetter] | None = None) -> int:
        """Queue dead letters again (*letters*, or all of this endpoint's); return how many.

        They are delivered in the background as any queued event (``flush``
        delivers them now). Retry once what made Pulsora refuse them is fixed.
        """
        if self._outbox is None:
            raise ConfigurationError("this client has no outbox: pass outbox= to Revenue")
        self._check_open()
        return await self._outbox.retry_dead_letters(letters)

    async def track_many(
        self,
        events: Iterable[RevenueEvent | Mapping[str, Any]]
        | AsyncIterable[RevenueEvent | Mapping[str, Any]],
        *,
        concurrency: int = 8,
        rate_limit: float | None = None,
        on_result: Callable[[Outcome], object] | None = None,
        on_progress: Callable[[Progress], object] | None = None,
        keep_failures: bool = True,
        time_limit: float | timedelta | None = None,
    ) -> BatchReport:
        """Record many events, streamed from any iterable or async iterable.

        *concurrency* workers take events from *events* as they go, so memory
        stays flat however long the input is. Invalid events, repeats within the
        input and failures are reported per event and do not stop the run; an
        ``AuthenticationError`` or ``PermissionDeniedError`` stops it at once and
        is raised with the run's ``report`` attached. A 429 pauses every worker
        until its ``Retry-After`` has passed, without using up any event's
        attempts. *rate_limit* caps requests per second. *on_result* is called
        with each ``Outcome`` as it completes, *on_progress* with a ``Progress``
        about four times a second; both are plain (not async) callables.

        *time_limit* (seconds or a ``timedelta``) bounds the whole run: no event
        starts once it has passed, one in flight has only the time left, and
        every event read but not sent gets a ``failed`` outcome; the report is
        returned ``stopped``, and the input read no further (index ``total`` on).
        """
        from ._bulk import make_batch  # loaded on the first run: import pulsora_revenue is cheap

        batch = make_batch(
            self._channel,
            concurrency=concurrency,
            rate_limit=rate_limit,
            on_result=on_result,
            on_progress=on_progress,
            keep_failures=keep_failures,
            time_limit=time_limit,
        )
        sender = await self._sender()  # fail now, not in every worker, if the client is closed
        if self._client is not None or self._transport is not None or concurrency <= POOL_SIZE:
            return await batch.run(events, sender)
        pool = self._new_sender(concurrency)  # our own connections: size them to the run
        try:
            return await batch.run(events, pool)
        finally:
            with anyio.CancelScope(shield=True):
                await pool.aclose()

    async def _sender(self) -> Sender:
        """The sender for the running event loop: made on first use, and anew for a new loop.

        Connections belong to the loop that opened them: another loop (a second
        ``asyncio.run``, as a Celery task makes) can neither use them nor close
        them, so it gets its own. Each loop closes its own when it ends (see
        ``_closed_with_its_loop``). A loop still running elsewhere (another
        thread's) is refused, not robbed of them.
        """
        self._check_open()
        loop = running_loop()  # once a call, not once an attempt
        if loop != self._loop:
            await self._bind(loop)
        assert self._sender_in_use is not None
        return self._sender_in_use

    async def _bind(self, loop: object) -> None:
        if self._sender_in_use is not None and _still_running(self._loop):
            raise ConfigurationError(
                f"{self!r} is in use by another event loop, still running (in another "
                "thread): use one Revenue per event loop at a time, or SyncRevenue, which "
                "any thread may share"
            )
        sender = self._new_sender(POOL_SIZE)
        guard = _closed_with_its_loop(sender)
        await anext(guard)  # now the loop knows it, and closes it (and the sender) as it ends
        self._sender_in_use, self._guard = sender, guard
        self._loop, self._clock = loop, loop_clock()

    def _check_open(self) -> None:
        if self._closed:
            raise ClientClosedError(f"{self!r} is closed; create a new Revenue client")

    def _new_sender(self, pool: int) -> Sender:
        return open_sender(
            self._backend,
            self._url,
            self._token,
            self._timeout,
            pool=pool,
            client=self._client,
            transport=self._transport,
        )

    def _scrub(self, text: str) -> str:
        """Remove the token from anything the server echoed back."""
        return self._token.scrub(text)


def _still_running(loop: object) -> bool:
    """Whether *loop* (from ``running_loop``) still runs: asyncio's say; trio's have ended."""
    is_running = getattr(loop, "is_running", None)
    return bool(is_running is not None and is_running())


async def _closed_with_its_loop(sender: Sender) -> AsyncGenerator[None, None]:
    """Close *sender* when this generator is closed: by ``aclose()``, or as its loop ends.

    Started once, an async generator is known to its event loop, which closes it
    at its end (asyncio.run's ``shutdown_asyncgens``, trio's finalizer) while it
    can still run it: the only moment a loop's connections can still be closed
    by a client that is not told when the loop's program ends.
    """
    try:
        yield
    finally:
        with anyio.CancelScope(shield=True):
            await sender.aclose()
