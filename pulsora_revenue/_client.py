"""The ``Revenue`` client: validate, send, retry, and report."""

from __future__ import annotations

import functools
import warnings
from collections.abc import AsyncIterable, Callable, Iterable, Mapping
from datetime import timedelta
from importlib.metadata import PackageNotFoundError, version
from types import TracebackType
from typing import Any, Self

import attrs
import httpx

from ._bulk import make_batch
from ._config import redact, resolve_endpoint, resolve_token
from ._convert import encode, to_event
from ._delivery import Channel, TrackResult
from ._errors import ClientClosedError, ConfigurationError
from ._event import RevenueEvent
from ._report import BatchReport, Outcome, Progress
from ._retry import RetryPolicy, to_seconds

#: Connections kept by the client we create; track_many with a higher
#: concurrency uses a pool of its own, sized to match.
POOL_SIZE = 64


class Revenue:
    """An async client that records revenue events in Pulsora.

    Use it as ``async with Revenue() as revenue: await revenue.track(...)``.
    The token comes from *api_token* or ``PULSORA_SECRET_TOKEN`` and must be a
    secret ``sec_`` token. Construction does no I/O; the HTTP client is created
    on first use. An *http_client* you pass is used but never closed here.
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
    ) -> None:
        self._token = resolve_token(api_token)
        self._url = resolve_endpoint(endpoint)
        self._shown_url = str(self._url)
        self._timeout = to_seconds(timeout)
        if not self._timeout > 0:
            raise ConfigurationError(f"timeout must be positive, not {timeout!r}")
        if retry is not None and not isinstance(retry, RetryPolicy):
            raise ConfigurationError(f"retry must be a RetryPolicy, not {retry!r}")
        if http_client is not None and transport is not None:
            raise ConfigurationError("pass http_client or transport, not both")
        self._retry = retry or RetryPolicy()
        self._client = http_client
        self._owns_client = http_client is None
        self._transport = transport
        self._debug = debug
        self._closed = False
        self._headers = {
            "X-API-Token": self._token,
            "Content-Type": "application/json",
            "Accept": "application/json",
            "User-Agent": f"pulsora-revenue-python/{_version()}",
        }
        self._channel = Channel(
            http=self._http,
            url=self._url,
            headers=self._headers,
            timeout=self._timeout,
            policy=self._retry,
            scrub=self._scrub,
            debug=debug,
        )

    def __repr__(self) -> str:
        state = " closed" if self._closed else ""
        return f"<Revenue{state} endpoint={self._shown_url!r} token={redact(self._token)!r}>"

    @property
    def retry(self) -> RetryPolicy:
        """The retry policy in force."""
        return self._retry

    async def __aenter__(self) -> Self:
        self._http()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the HTTP client if we created it; calling it again does nothing."""
        if self._closed:
            return
        self._closed = True
        if self._owns_client and self._client is not None:
            await self._client.aclose()

    def __del__(self) -> None:
        if getattr(self, "_owns_client", False) and self._client is not None and not self._closed:
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
        return await self._channel.deliver(revenue_event, encode(revenue_event))

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
        """
        batch = make_batch(
            self._channel,
            concurrency=concurrency,
            rate_limit=rate_limit,
            on_result=on_result,
            on_progress=on_progress,
            keep_failures=keep_failures,
        )
        self._http()  # fail now, not in every worker, if the client is closed
        if not self._owns_client or concurrency <= POOL_SIZE:
            return await batch.run(events)
        limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
        async with httpx.AsyncClient(transport=self._transport, limits=limits) as pool:

            def pooled() -> httpx.AsyncClient:
                self._http()  # raises if the Revenue client was closed meanwhile
                return pool

            batch.channel = attrs.evolve(self._channel, http=pooled)
            return await batch.run(events)

    def _http(self) -> httpx.AsyncClient:
        if self._closed:
            raise ClientClosedError(f"{self!r} is closed; create a new Revenue client")
        if self._client is None:
            limits = httpx.Limits(max_connections=POOL_SIZE, max_keepalive_connections=POOL_SIZE)
            self._client = httpx.AsyncClient(transport=self._transport, limits=limits)
        return self._client

    def _scrub(self, text: str) -> str:
        """Remove the token from anything the server echoed back."""
        return text.replace(self._token, redact(self._token)) if self._token in text else text


@functools.cache
def _version() -> str:
    try:
        return version("pulsora-revenue")
    except PackageNotFoundError:  # running from a source tree that is not installed
        return "0+unknown"
