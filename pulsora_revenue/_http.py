"""One HTTP attempt, and the translation of its outcome into our terms.

This is the one boundary where httpx's exceptions and statuses become
``Observation``s for the retry decision and, when the client gives up, the
exceptions of ``_errors``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping

import anyio
import attrs
import httpx

from . import _json
from ._errors import (
    APIConnectionError,
    APIError,
    APITimeoutError,
    AuthenticationError,
    BadRequestError,
    DuplicateTransactionError,
    PermissionDeniedError,
    PulsoraError,
    RateLimitError,
    ServerError,
)
from ._event import RevenueEvent
from ._retry import Observation, parse_retry_after

#: How much of a non-JSON error body is quoted in an exception message.
MAX_QUOTED_BODY = 200


@attrs.frozen
class Reply:
    """One attempt's outcome: the observation, the server's text, or the failure."""

    seen: Observation
    message: str = ""
    failure: httpx.HTTPError | None = None


def idempotency_key(event: RevenueEvent) -> str:
    """Derive the same key for every attempt of one (transaction_id, event_type)."""
    transaction_id, event_type = event.dedup_key
    material = f"pulsora-revenue/1\x1f{transaction_id}\x1f{event_type}".encode()
    return hashlib.sha256(material).hexdigest()


async def send_once(
    client: httpx.AsyncClient,
    request: httpx.Request,
    *,
    budget: float,
    scrub: Callable[[str], str],
) -> Reply:
    """Send *request* once, giving up after *budget* seconds; never raise HTTP errors.

    Redirects are not followed: a redirect would carry the token to another URL.
    *scrub* removes secrets from the server's text before it is kept.
    """
    try:
        with anyio.fail_after(budget):
            response = await client.send(request, follow_redirects=False)
    except TimeoutError:
        failure = httpx.ReadTimeout("the call's deadline ran out", request=request)
        return Reply(Observation(None, retryable=False), failure=failure)
    except httpx.TimeoutException as exc:
        sent = not isinstance(exc, httpx.ConnectTimeout | httpx.PoolTimeout)
        return Reply(Observation(None, sent=sent), failure=exc)
    except httpx.ConnectError as exc:
        return Reply(Observation(None, sent=False), failure=exc)
    except (httpx.NetworkError, httpx.RemoteProtocolError, httpx.DecodingError) as exc:
        return Reply(Observation(None), failure=exc)  # the answer was lost on the way
    except httpx.HTTPError as exc:
        return Reply(Observation(None, sent=False, retryable=False), failure=exc)
    if response.is_success:
        return Reply(Observation(response.status_code))
    retry_after = parse_retry_after(response.headers.get("Retry-After"))
    seen = Observation(response.status_code, retry_after=retry_after)
    return Reply(seen, message=shorten(scrub(server_message(response))))


def server_message(response: httpx.Response) -> str:
    """Return the server's own error text: ``error`` or ``message``, else the body."""
    if response.is_redirect:
        return f"redirect to {response.headers.get('Location', '?')}"
    try:
        body = _json.loads(response.content)
    except (ValueError, RecursionError):
        body = None
    if isinstance(body, Mapping):
        for key in ("error", "message"):
            if isinstance(body.get(key), str):
                return str(body[key])
    return response.text.strip()


def shorten(text: str) -> str:
    """Cut *text* to ``MAX_QUOTED_BODY`` characters for a message."""
    return text if len(text) <= MAX_QUOTED_BODY else f"{text[:MAX_QUOTED_BODY]}..."


_ADVICE: Mapping[int, tuple[type[APIError], str]] = {
    400: (BadRequestError, "Pulsora rejected the event as malformed; fix it, retrying won't help."),
    401: (
        AuthenticationError,
        "Pulsora refused the API token: check that it is an active secret token.",
    ),
    403: (
        PermissionDeniedError,
        "The token may not send revenue events: use a secret sec_ token.",
    ),
    409: (
        DuplicateTransactionError,
        "Pulsora already recorded this (transaction_id, event_type); nothing was added. "
        "Use a new transaction_id if this is a different payment.",
    ),
    429: (
        RateLimitError,
        "Rate limited by Pulsora: slow down, or pass rate_limit= to track_many.",
    ),
}


def to_exception(reply: Reply, *, event: RevenueEvent, attempts: int, url: str) -> PulsoraError:
    """Build the exception for a final, failed *reply* (whose message is redacted)."""
    status = reply.seen.status_code
    what = f"transaction {event.transaction_id!r}"
    tries = f"{attempts} attempt{'s' if attempts != 1 else ''}"
    if status is None:
        kind = APITimeoutError if isinstance(reply.failure, httpx.TimeoutException) else None
        cause = f"{type(reply.failure).__name__}: {reply.failure}"
        text = (
            f"No answer from Pulsora at {url} for {what} after {tries} ({cause}). "
            "The event may not be recorded; track it again later (it is safe: "
            "Pulsora de-duplicates by transaction_id and event_type)."
        )
        return (kind or APIConnectionError)(text, attempts=attempts)
    error_class, advice = _ADVICE.get(
        status,
        (ServerError, "Pulsora had trouble; the event was probably not recorded, try again later.")
        if status >= 500
        else (APIError, "Unexpected answer from Pulsora: check the endpoint URL."),
    )
    quoted = f": {reply.message}" if reply.message else ""
    text = f"HTTP {status}{quoted} for {what} after {tries}. {advice}"
    if error_class is RateLimitError:
        retry_after = reply.seen.retry_after
        if retry_after is not None:
            text += f" Pulsora asked to wait {retry_after:g} s."
        return RateLimitError(
            text,
            status_code=status,
            message=reply.message,
            attempts=attempts,
            retry_after=retry_after,
        )
    return error_class(text, status_code=status, message=reply.message, attempts=attempts)
