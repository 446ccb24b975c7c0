"""What an HTTP attempt produced, in our terms, and the exception for a final one.

Senders (``_senders``) reduce each attempt to a ``Reply``; ``to_exception``
turns the last one of a failed delivery into the matching exception of
``_errors``.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Callable, Mapping
from importlib.metadata import PackageNotFoundError, version

import attrs

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
    UnexpectedResponseError,
)
from ._event import RevenueEvent
from ._retry import Observation, parse_retry_after

#: How much of a non-JSON error body is quoted in an exception message.
MAX_QUOTED_BODY = 200

#: The most of an answer's body that is read: Pulsora accepts with ``{"success": true}``,
#: and of an error only the start is quoted. The rest is not read, and the
#: connection is dropped, so that memory stays flat whatever a server sends.
MAX_ACCEPTANCE_BODY = 1024
MAX_ERROR_BODY = 8192

#: Pulsora's acceptance, as messages show it, and as it comes (recognised without
#: decoding JSON).
ACCEPTANCE = '{"success": true}'
_ACCEPTANCES = frozenset({ACCEPTANCE.encode(), ACCEPTANCE.replace(" ", "").encode()})


@attrs.frozen
class Reply:
    """One attempt's outcome: the observation and the server's text, or the failure.

    ``failure`` describes what went wrong when no answer came (``"ReadTimeout:
    ..."``); it is text, not the exception, which would hold the request and so
    the token.
    """

    seen: Observation
    message: str = ""
    failure: str = ""
    timed_out: bool = False
    cut: bool = False  # the body ran past ``body_limit``: the rest was not read


#: The replies to a success, made once: they are immutable, and the common case.
_ACCEPTED = {status: Reply(Observation(status)) for status in (200, 201, 202, 204)}


def request_headers(token: str) -> dict[str, str]:
    """The headers of every request (the ``Idempotency-Key`` is added per event)."""
    return {
        "X-API-Token": token,
        "Content-Type": "application/json",
        "Accept": "application/json",
        "User-Agent": f"pulsora-revenue-python/{_version()}",
    }


@functools.cache
def _version() -> str:
    try:
        return version("pulsora-revenue")
    except PackageNotFoundError:  # running from a source tree that is not installed
        return "0+unknown"


def idempotency_key(event: RevenueEvent) -> str:
    """Derive the same key for every attempt of one (transaction_id, event_type)."""
    return key_digest(event).hex()


def key_digest(event: RevenueEvent) -> bytes:
    """The SHA-256 digest that ``idempotency_key`` writes in hexadecimal."""
    transaction_id, event_type = event.dedup_key
    return hashlib.sha256(
        f"pulsora-revenue/1\x1f{transaction_id}\x1f{event_type}".encode()
    ).digest()


def body_limit(status: int) -> int:
    """How much of the body of an answer with *status* is read, at most."""
    return MAX_ACCEPTANCE_BODY if 200 <= status < 300 else MAX_ERROR_BODY


def answered(
    status: int,
    headers: Mapping[str, str],
    content: bytes,
    scrub: Callable[[str], str],
    *,
    cut: bool = False,
) -> Reply:
    """The reply for an HTTP answer: its status, Retry-After, and error text.

    *content* is at most ``body_limit(status)`` bytes of the body; *cut* says
    that the body went on. A 2xx counts only when it is Pulsora's acceptance.
    """
    if 200 <= status < 300:
        if not cut and is_acceptance(status, content):
            return _ACCEPTED.get(status) or Reply(Observation(status))
        start = shorten(scrub(content.decode("utf-8", errors="replace").strip()))
        return Reply(Observation(status, foreign=True), message=start, cut=cut)
    retry_after = parse_retry_after(headers.get("Retry-After"))
    message = shorten(scrub(server_message(status, headers, content)))
    return Reply(Observation(status, retry_after=retry_after), message=message, cut=cut)


def is_acceptance(status: int, content: bytes) -> bool:
    """Whether a 2xx body is Pulsora's: JSON with ``success`` true, or an empty 202 or 204."""
    if content in _ACCEPTANCES:  # the common case, without decoding
        return True
    if not content.strip():
        return status in (202, 204)
    try:
        body = _json.loads(content)
    except (ValueError, RecursionError):
        return False
    return isinstance(body, Mapping) and body.get("success") is True


def no_answer(
    failure: BaseException,
    scrub: Callable[[str], str],
    *,
    sent: bool = True,
    retryable: bool = True,
) -> Reply:
    """The reply when no answer came: *sent* if the request may have reached the server.

    The failure is described by its type and its own message, with the token
    scrubbed from it: an HTTP library may quote what it received, and a broken
    proxy may have echoed the request's headers.
    """
    return lost(failure, shorten(scrub(str(failure))), sent=sent, retryable=retryable)


def lost(
    failure: BaseException,
    detail: str,
    *,
    sent: bool = True,
    retryable: bool = True,
    timed_out: bool = False,
) -> Reply:
    """Like ``no_answer``, but described by its type and *detail*, our own words."""
    seen = Observation(None, sent=sent, retryable=retryable)
    return Reply(seen, failure=f"{type(failure).__name__}: {detail}", timed_out=timed_out)


def server_message(status: int, headers: Mapping[str, str], content: bytes) -> str:
    """Return the server's own error text: ``error`` or ``message``, else the body."""
    if 300 <= status < 400:
        return f"redirect to {headers.get('Location', '?')}"
    try:
        body = _json.loads(content)
    except (ValueError, RecursionError):
        body = None
    if isinstance(body, Mapping):
        for key in ("error", "message"):
            if isinstance(body.get(key), str):
                return str(body[key])
    return content.decode("utf-8", errors="replace").strip()


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
        return (kind or APIConnectionError)(text, attempts=attempts)
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
