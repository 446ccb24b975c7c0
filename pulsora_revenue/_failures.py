"""The exception for a delivery that failed: its last ``Reply``, in the words of ``_errors``."""

from __future__ import annotations

from collections.abc import Mapping

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
    UnexpectedResponseError,
)
from ._event import RevenueEvent
from ._transports._reply import ACCEPTANCE, MAX_ACCEPTANCE_BODY, MAX_ERROR_BODY, Reply

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
    408: (
        APIError,
        "Pulsora, or a proxy on the way, gave up waiting for the request: track it again "
        "later (it is safe: Pulsora de-duplicates by transaction_id and event_type).",
    ),
    409: (
        DuplicateTransactionError,
        "Pulsora already recorded this (transaction_id, event_type); nothing was added. "
        "Use a new transaction_id if this is a different payment.",
    ),
    413: (BadRequestError, "Pulsora refused the event as too large; trim its metadata."),
    422: (BadRequestError, "Pulsora refused the event as invalid; fix it, retrying won't help."),
    429: (
        RateLimitError,
        "Rate limited by Pulsora: slow down, or pass rate_limit= to track_many.",
    ),
}


def to_exception(
    reply: Reply, *, event: RevenueEvent, attempts: int, url: str, maybe_delivered: bool = False
) -> PulsoraError:
    """Build the exception for a final, failed *reply* (whose message is redacted).

    *maybe_delivered* says that an earlier attempt's answer was lost: the
    message then says that the event may have been recorded.
    """
    status = reply.seen.status_code
    what = f"transaction {event.transaction_id!r}"
    tries = f"{attempts} attempt{'s' if attempts != 1 else ''}"
    earlier = " An earlier attempt may have been recorded: its answer was lost."
    if status is not None and reply.seen.foreign:
        text = f"HTTP {status} for {what} after {tries}, {_not_pulsoras(reply, url)}"
        text += earlier if maybe_delivered else ""
        return UnexpectedResponseError(
            text, status_code=status, message=reply.message, attempts=attempts
        )
    if status is None:
        kind = APITimeoutError if reply.timed_out else None
        cause = reply.failure
        text = (
            f"No answer from Pulsora at {url} for {what} after {tries} ({cause}). "
            "The event may not be recorded; track it again later (it is safe: "
            "Pulsora de-duplicates by transaction_id and event_type)."
        )
        return (kind or APIConnectionError)(
            text, attempts=attempts, failure=cause, connected=reply.seen.sent
        )
    error_class, advice = _ADVICE.get(
        status,
        (
            ServerError,
            "Pulsora had trouble, and may or may not have recorded the event: track it again "
            "later (it is safe: Pulsora de-duplicates by transaction_id and event_type).",
        )
        if status >= 500
        else (APIError, "Unexpected answer from Pulsora: check the endpoint URL."),
    )
    quoted = f": {reply.message}" if reply.message else ""
    if reply.cut:
        quoted += f" [body cut off at {MAX_ERROR_BODY} bytes; the connection was dropped]"
    text = f"HTTP {status}{quoted} for {what} after {tries}. {advice}"
    if maybe_delivered and status < 500:
        text += earlier
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


def _not_pulsoras(reply: Reply, url: str) -> str:
    """Say why a 2xx *reply* is not Pulsora's acceptance, and what to do."""
    if reply.cut:
        body = (
            f"with a body longer than Pulsora's answer (read up to {MAX_ACCEPTANCE_BODY} "
            f"bytes, then the connection was dropped): {reply.message}"
        )
    else:
        body = f"with the body: {reply.message}" if reply.message else "with an empty body"
    return (
        f"{body}. That is not Pulsora's acceptance ({ACCEPTANCE}): {url} does not "
        "look like Pulsora's ingest API. Nothing says the event was recorded; check the "
        "endpoint URL (and any proxy on the way), then track it again (it is safe: Pulsora "
        "de-duplicates by transaction_id and event_type)."
    )
