"""The ``Revenue`` client: validate, send, retry, and report."""

from __future__ import annotations

import logging
import warnings
from collections.abc import AsyncIterable, Callable, Iterable, Mapping
from datetime import timedelta
from os import PathLike
from types import TracebackType
from typing import Any, Self

import anyio
import anyio.abc
import anyio.lowlevel
import attrs
import httpx

from . import _json
from ._bulk import make_batch
from ._config import SecretHeaders, hide, resolve_endpoint, resolve_token
from ._convert import CONVERTER, encode, to_event
from ._delivery import Channel, TrackResult
from ._drain import Drainer, drain_channel
from ._errors import APIConnectionError, APIError, ClientClosedError, ConfigurationError
from ._event import RevenueEvent
from ._http import idempotency_key, request_headers
from ._outbox import Outbox
from ._report import BatchReport, Outcome, Progress
from ._retry import RETRYABLE_STATUSES, RetryPolicy, to_seconds
from ._senders import (
    AiohttpSender,
    Backend,
    HttpxSender,
    Sender,
    check_backend,
    choose_backend,
    make_httpx_client,
)

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
        check_backend(backend, configured=http_client is not None or transport is not None)
        self._retry = retry or RetryPolicy()
        self._client = http_client
        self._transport = transport
        self._backend = backend
        self._sender_in_use: Sender | None = None
        self._loop: anyio.lowlevel.EventLoopToken | None = None  # the one its sender is bound to
        self._closed = False
        self._outbox = Outbox(outbox, endpoint=self._shown_url) if outbox is not None else None
        self._drainer: Drainer | None = None
        self._background: anyio.abc.TaskGroup | None = None
        self._draining: anyio.CancelScope | None = None  # the drainer's: aclose cancels it
        self._drained: anyio.Event | None = None
        self._channel = Channel(
            sender=self._sender,
            url=self._shown_url,
            policy=self._retry,
            scrub=self._scrub,
            debug=debug,
        )

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
        self._sender()
        self._check_loop()
        if self._outbox is not None:  # deliver what earlier runs queued, in the background
            try:
                await self._outbox.open()  # a bad path fails here, not in the background
            except BaseException:
                await self.aclose()  # no __aexit__ follows a failed __aenter__
                raise
            self._draining, self._drained = anyio.CancelScope(), anyio.Event()
            self._background = anyio.create_task_group()
            await self._background.__aenter__()
            self._background.start_soon(self._deliver_queued, self._draining, self._drained)
        return self

    async def _deliver_queued(self, scope: anyio.CancelScope, done: anyio.Event) -> None:
        try:
            with scope:
                await self._drain().run()
        finally:
            done.set()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            await self.aclose()
        finally:
            if self._background is not None:  # exited where it was entered: in this task
                background, self._background = self._background, None
                await background.__aexit__(None, None, None)

    async def aclose(self) -> None:
        """Stop delivering from the outbox, close the connections we opened; idempotent.

        Rows still in the outbox stay there for the next run. Any task may call
        it, in any cancel scope.
        """
        if self._closed:
            return
        self._closed = True
        self._channel.pauses.close()  # calls waiting to try again end now, not after the wait
        try:
            if self._draining is not None and self._drained is not None:
                self._draining.cancel()  # its task group is left to __aexit__, in its own task
                with anyio.CancelScope(shield=True):  # no closing the file under its last write
                    await self._drained.wait()
        finally:
            with anyio.CancelScope(shield=True):
                if self._outbox is not None:
                    await self._outbox.close()
                if self._sender_in_use is not None:
                    await self._sender_in_use.aclose()

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
        self._check_loop()
        body = encode(revenue_event)
        if self._outbox is None:
            return await self._channel.deliver(revenue_event, body)
        started = anyio.current_time()
        try:
            return await self._channel.deliver(revenue_event, body)
        except (APIConnectionError, APIError) as exc:
            if isinstance(exc, APIError) and exc.status_code not in QUEUEABLE_STATUSES:
                raise  # refused for good: a queue must not fill with what can never pass
            await self._queue(revenue_event, body, exc)
            attempts = exc.attempts
        elapsed = anyio.current_time() - started
        return TrackResult(revenue_event, None, attempts, elapsed, queued=True)

    async def _queue(self, event: RevenueEvent, body: bytes, error: Exception) -> None:
        assert self._outbox is not None
        transaction_id, event_type = event.dedup_key
        data = _json.dumps(CONVERTER.unstructure(event)).decode()
        await self._outbox.put(
            idempotency_key(event), transaction_id, event_type, data, body, failure=error
        )
        logger.info("queued %s in the outbox: %s", transaction_id, error)

    async def flush(self, timeout: float | None = None) -> int:  # noqa: ASYNC109 (the API)
        """Deliver the outbox now, for at most *timeout* seconds; return what is left.

        Only the events queued for this client's endpoint are delivered and
        counted. Rows waiting out a back-off are tried at once; while Pulsora
        is down, tries are spaced by the drainer's back-off.
        """
        if self._outbox is None:
            return 0
        self._check_loop()
        drainer = self._drain()
        with anyio.move_on_after(timeout):
            while await drainer.drain(due_only=False) or await self.outbox_size():
                with self._channel.pauses.cut_short():  # aclose() ends it, as it ends a back-off
                    await anyio.sleep(max(drainer.pause, 0.05))  # a paced poll, as the API is down
                self._check_open()
        return (await self._outbox.stats()).pending

    async def outbox_size(self) -> int:
        """How many events for this client's endpoint wait in the outbox (0 without one)."""
        return 0 if self._outbox is None else (await self._outbox.stats()).pending

    def _drain(self) -> Drainer:
        assert self._outbox is not None
        if self._drainer is None:
            self._drainer = Drainer(self._outbox, drain_channel(self._channel))
        return self._drainer

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
        batch = make_batch(
            self._channel,
            concurrency=concurrency,
            rate_limit=rate_limit,
            on_result=on_result,
            on_progress=on_progress,
            keep_failures=keep_failures,
            time_limit=time_limit,
        )
        self._sender()  # fail now, not in every worker, if the client is closed
        self._check_loop()
        if self._client is not None or self._transport is not None or concurrency <= POOL_SIZE:
            return await batch.run(events)
        pool = self._new_sender(concurrency)  # our own connections: size them to the run
        try:

            def pooled() -> Sender:
                self._check_open()  # the Revenue client may have been closed meanwhile
                return pool

            batch.channel = attrs.evolve(self._channel, sender=pooled)
            return await batch.run(events)
        finally:
            with anyio.CancelScope(shield=True):
                await pool.aclose()

    def _sender(self) -> Sender:
        """The sender for this client, created on first use (the loop must be running)."""
        self._check_open()
        if self._sender_in_use is None:
            self._sender_in_use = self._new_sender(POOL_SIZE)
            self._loop = anyio.lowlevel.current_token()
        return self._sender_in_use

    def _check_loop(self) -> None:
        """Refuse another event loop than the sender's, which holds its connections.

        Another loop (a second ``asyncio.run``) could not use them, nor even close
        them. Checked once a call, not once an attempt: it costs about 1.5 µs.
        """
        if self._loop is not None and anyio.lowlevel.current_token() != self._loop:
            raise ConfigurationError(
                f"{self!r} first ran in another event loop, which holds its connections: "
                "use one Revenue per event loop (open it with 'async with' in code that "
                "the loop runs)"
            )

    def _check_open(self) -> None:
        if self._closed:
            raise ClientClosedError(f"{self!r} is closed; create a new Revenue client")

    def _new_sender(self, pool: int) -> Sender:
        headers = SecretHeaders(request_headers(self._token.reveal()), self._token)
        configured = self._client is not None or self._transport is not None
        backend = choose_backend(self._backend, configured=configured)
        logger.debug("sending with %s (%d connections at most)", backend, pool)
        if backend == "aiohttp":
            return AiohttpSender(self._shown_url, headers, self._timeout, limit=pool)
        if self._client is not None:
            return HttpxSender(self._client, self._url, headers, self._timeout, owned=False)
        # httpx's pool slows down as it grows (benchmarks/README.md): a run with
        # more workers queues them in the sender, for one of MAX_CONNECTIONS.
        connections = min(pool, HttpxSender.MAX_CONNECTIONS)
        limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
        client = make_httpx_client(self._url, transport=self._transport, limits=limits)
        # A transport of the user's has no pool of ours to wait for: nothing to queue.
        queue = connections if self._transport is None else None
        return HttpxSender(client, self._url, headers, self._timeout, owned=True, connections=queue)

    def _scrub(self, text: str) -> str:
        """Remove the token from anything the server echoed back."""
        return self._token.scrub(text)
