"""The ``Revenue`` client: validate, send, retry, and report."""

from __future__ import annotations

import logging
import warnings
from collections.abc import (
    AsyncGenerator,
    AsyncIterable,
    Callable,
    Iterable,
    Mapping,
    Sequence,
)
from contextlib import AsyncExitStack
from datetime import timedelta
from os import PathLike
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self

import anyio
import httpx

from . import _clock
from ._clock import loop_clock, running_loop
from ._config import hide, resolve_endpoint, resolve_token
from ._convert import encode, to_event
from ._delivery import Channel
from ._errors import (
    APIConnectionError,
    APIError,
    ClientClosedError,
    ConfigurationError,
    OutboxError,
)
from ._event import RevenueEvent
from ._hooks import Hooks, hook_set
from ._logging import apply_env
from ._results import BatchReport, DeadLetter, Outcome, Progress, TrackResult
from ._retry import RetryPolicy, may_pass_later, to_seconds
from ._transports import Backend, Sender, open_sender, resolve_backend

if TYPE_CHECKING:
    from ._outbox import OutboxService

logger = logging.getLogger("pulsora_revenue")

#: Connections kept by the client we create; track_many with a higher
#: concurrency uses a pool of its own, sized to match.
POOL_SIZE = 64


class Revenue:
    """An async client that records revenue events in Pulsora.

    Use it as ``async with Revenue() as revenue: await revenue.track(...)``, or close it
    with ``await revenue.aclose()``. Keep one per process: it holds the connections.
    Construction does no I/O and needs no running event loop; the connections are opened
    on first use, on the running loop. A client serves one event loop at a time, and a new
    one after the old one has ended; each loop's connections are closed as it ends.

    Args:
        api_token: the secret ``sec_`` token; by default ``$PULSORA_SECRET_TOKEN``.
        endpoint: the ingest URL; by default ``$PULSORA_ENDPOINT``, else
            ``https://pulsora.co/api/ingest``. Plain ``http://`` only for loopback hosts.
        timeout: how long one attempt may wait to connect and for the answer, in seconds
            or as a ``timedelta``.
        retry: how failed attempts are retried; by default ``RetryPolicy()``.
        http_client: an ``httpx.AsyncClient`` of yours to send with: used, never closed here.
        transport: an httpx transport (``httpx.MockTransport``, ``FakePulsora.transport``)
            for the client made here. Pass it or *http_client*, not both.
        debug: log every attempt at DEBUG on the ``pulsora_revenue`` logger (as
            ``PULSORA_LOG=debug`` does, which also logs it to stderr).
        backend: the HTTP library. ``"auto"`` (the default, also settable with
            ``$PULSORA_HTTP_BACKEND``) sends with aiohttp when the ``speed`` extra is
            installed and the loop is asyncio, and with httpx otherwise; ``"httpx"`` or
            ``"aiohttp"`` forces one. Passing *http_client* or *transport* means httpx.
        outbox: the path of an SQLite file that keeps what ``track`` could not deliver yet
            (see ``track``); while the client is entered (``async with``), a background
            task delivers it. None (the default) for no outbox.
        hooks: ``Hooks`` to call as the client works: after each attempt, with each
            event's outcome, and as the outbox changes (see ``Hooks``).

    Raises:
        ConfigurationError: when the token is missing, blank or not a secret one; the
            endpoint is not a usable URL; *timeout* is not a positive duration; *retry* is
            not a ``RetryPolicy``; both *http_client* and *transport* are given;
            *backend* cannot be honoured; or *hooks* is not a sequence of ``Hooks``.
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
        hooks: Sequence[Hooks] = (),
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
        self._hooks = hook_set(hooks)
        self._retry = retry or RetryPolicy()
        self._client = http_client
        self._transport = transport
        self._sender_in_use: Sender | None = None
        self._loop: object = None  # the event loop its sender is bound to (_clock.running_loop)
        self._clock: Callable[[], float] | None = None  # that loop's (_clock.loop_clock)
        self._guard: AsyncGenerator[None, None] | None = None  # closes the sender with its loop
        self._closed = False
        self._channel = Channel(
            url=self._shown_url,
            policy=self._retry,
            scrub=self._scrub,
            debug=apply_env() or debug,  # PULSORA_LOG, read as each client is made
            hooks=self._hooks,
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
        """Record one revenue event, and return once Pulsora has accepted it.

        The event is validated before any I/O. Failed attempts are retried as the
        ``RetryPolicy`` says, each with the same ``Idempotency-Key``, so that Pulsora
        records the event once. With an outbox, a final failure that may pass later (no
        answer, a timeout, a 408, 429 or 500 to 505) queues the event instead of raising.

        Args:
            event: a ``RevenueEvent``, or a mapping of its fields (webhook metadata, a JSON
                line); positional only. Pass it or *fields*, not both.
            **fields: the event's fields as keywords, instead of *event*.

        Returns:
            A ``TrackResult`` with the accepting status, the number of requests made and
            the seconds taken; its ``duplicate`` is true when a retry found the event
            recorded by an earlier attempt whose answer was lost, and ``queued`` when the
            event went to the outbox (then ``status_code`` is None).

        Raises:
            ValidationError: when the event is invalid; it lists every problem.
            TypeError: when both *event* and *fields* are given.
            ClientClosedError: when the client is closed, or closes while the call waits to
                try again.
            ConfigurationError: when another event loop, still running in another thread,
                uses this client.
            BadRequestError: when Pulsora refuses the event itself (400, 413, 422).
            AuthenticationError: when Pulsora refuses the token (401).
            PermissionDeniedError: when the token may not send revenue events (403).
            DuplicateTransactionError: when the event was recorded before this call (409).
            RateLimitError: when 429s outlast the retries, or a ``Retry-After`` reaches past
                the deadline; ``retry_after`` holds the wait asked for, if any.
            ServerError: when Pulsora still fails (5xx) after the retries.
            UnexpectedResponseError: when a 2xx answer is not Pulsora's acceptance (check
                the endpoint URL); not retried, and not queued.
            APIError: on any other final status (a proxy's 404, say).
            APITimeoutError: when no answer came in time, after the retries.
            APIConnectionError: when the connection failed or broke, after the retries.
            OutboxError: when the outbox cannot be written: the event was neither delivered
                nor kept (``delivery_error`` says why it was not delivered).
        """
        revenue_event = to_event(event, fields)
        sender = await self._sender()
        body = encode(revenue_event)
        if self._outbox is None and self._hooks is None:
            return await self._channel.deliver(sender, revenue_event, body, clock=self._clock)
        return await self._track(sender, revenue_event, body)

    async def _track(self, sender: Sender, event: RevenueEvent, body: bytes) -> TrackResult:
        """``track`` with an outbox or hooks: queue what may pass later, report the outcome."""
        hooks, started = self._hooks, _clock.now()  # with the waits test mode skips
        try:
            result = await self._channel.deliver(sender, event, body, clock=self._clock)
        except (APIConnectionError, APIError) as exc:
            # Refused for good is raised: a queue must not fill with what can never pass.
            if self._outbox is None or not may_pass_later(exc):
                if hooks is not None:
                    hooks.failed(event, exc, _clock.now() - started)
                raise
            try:
                await self._outbox.put(event, body, exc)
            except OutboxError as lost:  # neither delivered nor kept
                if hooks is not None:
                    hooks.failed(event, lost, _clock.now() - started)
                raise
            result = TrackResult(event, None, exc.attempts, _clock.now() - started, queued=True)
            if hooks is not None:
                hooks.queued(event, exc, result.elapsed)
            return result
        if hooks is not None:
            hooks.tracked(result)
        return result

    async def flush(self, timeout: float | None = None) -> int:  # noqa: ASYNC109 (the API)
        """Deliver the events in the outbox now, for at most *timeout* seconds.

        Only the events queued for this client's endpoint are delivered and counted.
        Events waiting out a back-off are tried at once; while Pulsora is down, tries are
        spaced by the drainer's back-off. Without an outbox it does nothing.

        Args:
            timeout: the most seconds to spend; None (the default) to go on until no event
                is left.

        Returns:
            How many of this endpoint's events are still in the outbox (0 without one).

        Raises:
            OutboxError: when the outbox file cannot be written or read, after delivering
                what it could.
            ClientClosedError: when the client (with an outbox) is closed, or closes
                meanwhile.
        """
        if self._outbox is None:
            return 0
        sender = await self._sender()
        return await self._outbox.flush(sender, timeout)

    async def outbox_size(self) -> int:
        """Count the events for this client's endpoint that wait in the outbox.

        Returns:
            How many there are; 0 without an outbox.

        Raises:
            OutboxError: when the outbox file cannot be read.
            ClientClosedError: when the client (with an outbox) is closed.
        """
        return 0 if self._outbox is None else await self._outbox.size()

    async def dead_letters(self) -> list[DeadLetter]:
        """List the events of this client's endpoint that the outbox gave up on, oldest first.

        A queued event that Pulsora later refused for good (a 400, 413 or 422), or that
        this version could not read back, is kept as a ``DeadLetter`` with the reason, and
        never retried unless ``retry_dead_letters`` queues it again.

        Returns:
            The dead letters; an empty list without an outbox.

        Raises:
            OutboxError: when the outbox file cannot be read.
            ClientClosedError: when the client (with an outbox) is closed.
        """
        return [] if self._outbox is None else await self._outbox.dead_letters()

    async def retry_dead_letters(self, letters: Iterable[DeadLetter] | None = None) -> int:
        """Queue dead letters again, once what made Pulsora refuse them is fixed.

        They are delivered in the background like any queued event (``flush`` delivers
        them now). Letters of another endpoint, or no longer dead, are left alone.

        Args:
            letters: the ``DeadLetter``s to queue again (from ``dead_letters``); None (the
                default) for every dead letter of this client's endpoint.

        Returns:
            How many were queued again.

        Raises:
            ConfigurationError: when the client has no outbox.
            ClientClosedError: when the client is closed.
            OutboxError: when the outbox file cannot be written.
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

        *concurrency* workers take events from *events* as they go, so memory stays flat
        however long the input is. Invalid events, repeats within the input and failures
        are reported per event and do not stop the run. A 429 pauses every worker until
        its ``Retry-After`` has passed, without using up any event's attempts (the wait
        counts against each event's deadline). What *events*, *on_result* or
        *on_progress* raise is raised: the input's once the events read before it are
        sent, a callback's at once. An async generator given as *events* is closed when a
        run stops early.

        Args:
            events: ``RevenueEvent``s or mappings of their fields, from an iterable or an
                async iterable; read as the workers need them.
            concurrency: how many workers send at once. A run of more than 64 (the
                connections the client keeps on aiohttp) opens connections of its own, as
                many, unless the client was given an *http_client* or a *transport*. On
                httpx a client of ours keeps 32 at most, which the workers queue for.
            rate_limit: the most requests per second (a token bucket); None for no limit.
            on_result: a plain (not async) callable, called with each event's ``Outcome``
                as it completes.
            on_progress: a plain (not async) callable, called with a ``Progress`` about
                four times a second, and once at the end.
            keep_failures: whether the report keeps every invalid and failed event in
                ``failures``.
            time_limit: how long the whole run may take, in seconds or as a ``timedelta``;
                None for no limit. Once it has passed no event starts, one in flight has
                only the time left, and every event read but not sent gets a ``failed``
                outcome; the report is returned ``stopped``, and the input is read no
                further (index ``total`` on).

        Returns:
            The ``BatchReport`` of the run: how many events were sent, duplicates, skipped,
            invalid and failed, the time taken, and the failures kept.

        Raises:
            AuthenticationError: when Pulsora refuses the token: the run stops at once, and
                the error's ``report`` is the run's.
            PermissionDeniedError: when the token may not send revenue events; as above.
            EndpointError: when the run's first 5 events sent all failed the same way, for
                a reason no event can fix (a wrong endpoint); ``report`` is the run's.
            ClientClosedError: when the client is closed, or closes during the run (then
                ``report`` is the run's).
            ConfigurationError: when *concurrency*, *rate_limit* or *time_limit* is not
                usable, or another event loop, still running, uses this client.
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
