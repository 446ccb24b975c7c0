"""What one HTTP attempt produced, in our terms: a ``Reply``, whichever library sent it.

Every sender reduces an attempt to a ``Reply`` at its own boundary: an answer
(``answered``), or no answer (``no_answer``), and never raises for HTTP
trouble. ``.._failures.to_exception`` turns the last reply of a failed delivery
into the matching exception.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Protocol

import attrs

from .. import _json
from .._retry import Observation, parse_retry_after

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

#: A whole attempt may take this many times its timeout: a little more, so that the
#: HTTP library's own connect and pool timeouts (at the timeout) fire first and
#: tell an attempt that never went out from one whose answer was lost.
ATTEMPT_SLACK = 1.1


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


class Sender(Protocol):
    """Sends one request body; never raises for HTTP trouble, only reports it."""

    async def post(
        self, body: bytes, key: str, *, budget: float, scrub: Callable[[str], str]
    ) -> Reply:
        """POST *body* with ``Idempotency-Key: key``, within *budget* seconds."""

    async def aclose(self) -> None:
        """Release the connections, if this sender owns them."""


#: The replies to a success, made once: they are immutable, and the common case.
_ACCEPTED = {status: Reply(Observation(status)) for status in (200, 201, 202, 204)}


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
    detail: str,
    *,
    sent: bool = True,
    retryable: bool = True,
    timed_out: bool = False,
) -> Reply:
    """The reply when no answer came: *failure*'s type, and *detail* (already scrubbed).

    *sent* says the request may have reached the server, *retryable* that
    another attempt may do better, *timed_out* that a timeout ended it.
    """
    seen = Observation(None, sent=sent, retryable=retryable)
    failed = f"{type(failure).__name__}: {shorten(detail)}"
    return Reply(seen, failure=failed, timed_out=timed_out)


def broken(
    failure: BaseException,
    scrub: Callable[[str], str],
    *,
    sent: bool = True,
    retryable: bool = True,
) -> Reply:
    """No answer, described by the HTTP library's own message with the token scrubbed.

    An HTTP library may quote what it received, and a broken proxy may have
    echoed the request's headers.
    """
    return no_answer(failure, scrub(str(failure)), sent=sent, retryable=retryable)


def attempt_limit(budget: float, timeout: float) -> float:
    """How long one attempt may take, with *budget* seconds left of the call's deadline."""
    return min(budget, timeout * ATTEMPT_SLACK)


def out_of_time(failure: TimeoutError, budget: float, timeout: float) -> Reply:
    """The reply when an attempt ran out of its ``attempt_limit``."""
    if attempt_limit(budget, timeout) == budget:  # the deadline was the nearer bound
        return DEADLINE_PASSED
    return no_answer(failure, f"no answer within {timeout:g} s", timed_out=True)


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


#: The reply of an attempt that the call's deadline ended (or never let start).
DEADLINE_PASSED = no_answer(
    TimeoutError(), "the call's deadline ran out", retryable=False, timed_out=True
)
