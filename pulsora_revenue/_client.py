"""The ``Revenue`` client: validate, send, retry, and report."""

from __future__ import annotations

import functools
import logging
import warnings
from collections.abc import Mapping
from datetime import timedelta
from importlib.metadata import PackageNotFoundError, version
from types import TracebackType
from typing import Any, Self

import attrs
import httpx

from . import _clock, _json
from ._config import redact, resolve_endpoint, resolve_token
from ._convert import make_converter
from ._errors import ClientClosedError, ConfigurationError
from ._event import RevenueEvent
from ._http import Reply, idempotency_key, send_once, to_exception
from ._retry import RetryPolicy, Verdict, decide, to_seconds

logger = logging.getLogger("pulsora_revenue")

_CONVERTER = make_converter()


@attrs.frozen
class TrackResult:
    """What happened to one tracked event.

    ``status_code`` is the accepting HTTP status (None when queued), ``attempts``
    the number of requests made, ``elapsed`` the seconds the call took, and
    ``duplicate`` whether Pulsora reported the event as already recorded by an
    earlier attempt of this same call.
    """

    event: RevenueEvent
    status_code: int | None
    attempts: int
    elapsed: float
    duplicate: bool = False
    queued: bool = False


def to_event(event: object, fields: Mapping[str, Any]) -> RevenueEvent:
    """Return a validated event from an event, a mapping, or keyword fields."""
    if event is not None and fields:
        raise TypeError("pass either an event (or mapping) or keyword fields, not both")
    if isinstance(event, RevenueEvent):
        return event
    return _CONVERTER.structure(fields if event is None else event, RevenueEvent)


def encode(event: RevenueEvent) -> bytes:
    """Return the request body for *event*: ``{"type": "revenue", "data": ...}``."""
    return _json.dumps({"type": "revenue", "data": _CONVERTER.unstructure(event)})


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
        return await self._deliver(revenue_event, encode(revenue_event))

    def _http(self) -> httpx.AsyncClient:
        if self._closed:
            raise ClientClosedError(f"{self!r} is closed; create a new Revenue client")
        if self._client is None:
            self._client = httpx.AsyncClient(transport=self._transport)
        return self._client

    async def _deliver(self, event: RevenueEvent, body: bytes) -> TrackResult:
        policy = self._retry
        key = idempotency_key(event)
        watch = _clock.Stopwatch()
        maybe_delivered = False
        attempt = 0
        while True:
            attempt += 1
            client = self._http()  # raises ClientClosedError if closed while waiting
            request = client.build_request(
                "POST",
                self._url,
                content=body,
                headers={**self._headers, "Idempotency-Key": key},
                timeout=self._timeout,
            )
            budget = max(0.0, policy.deadline - watch.elapsed())
            reply = await send_once(client, request, budget=budget, scrub=self._scrub)
            elapsed = watch.elapsed()
            self._log_attempt(event, reply, attempt, elapsed)
            decision = decide(
                policy,
                reply.seen,
                attempt=attempt,
                elapsed=elapsed,
                maybe_delivered=maybe_delivered,
            )
            maybe_delivered = maybe_delivered or reply.seen.may_have_landed
            if decision.verdict is Verdict.DELIVERED:
                return TrackResult(
                    event=event,
                    status_code=reply.seen.status_code,
                    attempts=attempt,
                    elapsed=elapsed,
                    duplicate=decision.duplicate,
                )
            if decision.verdict is Verdict.GIVE_UP:
                # Not chained: the httpx failure holds the request, and so the token.
                raise to_exception(reply, event=event, attempts=attempt, url=self._shown_url)
            if self._debug:
                logger.debug("retrying %s in %.3f s", _summary(event), decision.delay)
            await watch.sleep(decision.delay)

    def _scrub(self, text: str) -> str:
        """Remove the token from anything the server echoed back."""
        return text.replace(self._token, redact(self._token)) if self._token in text else text

    def _log_attempt(self, event: RevenueEvent, reply: Reply, attempt: int, elapsed: float) -> None:
        if not self._debug:
            return
        status = reply.seen.status_code
        answer = str(status) if status is not None else type(reply.failure).__name__
        logger.debug(
            "POST %s -> %s (attempt %d, %.3f s) %s",
            self._shown_url,
            answer,
            attempt,
            elapsed,
            _summary(event),
        )


def _summary(event: RevenueEvent) -> str:
    """Describe an event for a log line without its visitor or session ids."""
    kind = event.event_type.value if event.event_type else "-"
    amount = f"{event.amount} {event.currency}"
    return f"transaction_id={event.transaction_id} event_type={kind} amount={amount}"


@functools.cache
def _version() -> str:
    try:
        return version("pulsora-revenue")
    except PackageNotFoundError:  # running from a source tree that is not installed
        return "0+unknown"
