"""Exceptions raised by pulsora_revenue.

The hierarchy::

    PulsoraError
    ├── ValidationError            (also a ValueError; raised before any I/O)
    ├── ConfigurationError         (also a ValueError; mostly raised at construction)
    ├── ClientClosedError          (the client was already closed)
    ├── EndpointError              (a track_many run stopped: a wrong endpoint)
    ├── OutboxError                (the outbox file could not be written or read)
    ├── APIError                   (the API answered, but not with success)
    │   ├── BadRequestError            400
    │   ├── AuthenticationError        401
    │   ├── PermissionDeniedError      403
    │   ├── DuplicateTransactionError  409
    │   ├── RateLimitError             429
    │   ├── ServerError                5xx
    │   └── UnexpectedResponseError    a 2xx that is not Pulsora's acceptance
    └── APIConnectionError         (the API gave no answer)
        └── APITimeoutError

No message ever contains the API token.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

import attrs

if TYPE_CHECKING:
    from ._results import BatchReport


#: How much of a received value a message shows.
SHOWN = 80


def received(value: object) -> str:
    """Describe a received value for a message: short, whatever the value is.

    Bounded in time and size: long text is cut, and so are long or deep lists,
    tuples and dicts (never rendered whole); an int too long to show is given by
    its size, and a value whose ``repr`` fails is named by its type.
    """
    text = _shown(value, SHOWN + 1)
    return text if len(text) <= SHOWN else f"{text[: SHOWN - 3]}..."


def _shown(value: object, room: int) -> str:
    """A repr of *value*, at most about *room* characters long (cut by the caller)."""
    if type(value) is str:
        return repr(value[:room])
    if type(value) is int and value.bit_length() > _INT_BITS_SHOWN:
        return f"<an int of {value.bit_length()} bits>"  # its digits: quadratic time
    if type(value) is list or type(value) is tuple or type(value) is dict:
        return _shown_container(value, room)
    try:
        text = repr(value)
    except Exception:  # raised by a __repr__, or a value too deep to render
        return _unrepresentable(value)
    return text[:room]


#: An int longer than a message can show is described by its size.
_INT_BITS_SHOWN = 4 * SHOWN


def _shown_container(
    value: list[object] | tuple[object, ...] | dict[object, object], room: int
) -> str:
    """Render a list, tuple or dict until *room* is used up; each level takes some."""
    opening, closing = _BRACKETS[type(value)]
    parts = [opening]
    used = len(opening)
    entries = value.items() if isinstance(value, dict) else ((_NO_KEY, v) for v in value)
    for count, (key, item) in enumerate(entries):
        if used >= room:
            parts.append("...")
            break
        if count:
            parts.append(", ")
            used += 2
        text = "" if key is _NO_KEY else f"{_shown(key, room - used)}: "
        text += _shown(item, room - used - len(text))
        parts.append(text)
        used += len(text)
    if type(value) is tuple and len(value) == 1:
        parts.append(",")
    parts.append(closing)
    return "".join(parts)


_NO_KEY = object()  # the key of a list's or tuple's items
_BRACKETS = {list: ("[", "]"), tuple: ("(", ")"), dict: ("{", "}")}


def _unrepresentable(value: object) -> str:
    kind = type(value)
    base = next((b for b in kind.__mro__[1:] if b.__module__ == "builtins"), object)
    if base is not object:
        return f"<unrepresentable {base.__name__} subclass>"
    return f"<unrepresentable {kind.__qualname__}>"


class PulsoraError(Exception):
    """Root of every exception this library raises on purpose."""

    def __reduce__(self) -> tuple[Any, ...]:
        # Our constructors take keyword-only context; rebuild without calling them,
        # so that errors survive pickling (process pools, task queues) and copying.
        return (_rebuild, (type(self), self.args, self.__dict__))


def _rebuild(cls: type[PulsoraError], args: tuple[Any, ...], state: dict[str, Any]) -> Any:
    error = cls.__new__(cls, *args)
    error.args = args
    error.__dict__.update(state)
    return error


@attrs.frozen
class FieldError:
    """One problem with one field of an event: where, what, and what was received."""

    path: str
    message: str

    def __str__(self) -> str:
        return self.message


class ValidationError(PulsoraError, ValueError):
    """An event is invalid; ``errors`` lists every problem, not only the first."""

    errors: tuple[FieldError, ...]

    def __init__(self, errors: Iterable[FieldError], *, subject: str = "event") -> None:
        self.errors = tuple(errors)
        count = len(self.errors)
        noun = "problem" if count == 1 else "problems"
        lines = [f"Invalid {subject} ({count} {noun}):"]
        lines += [f"  {e.path}: {e.message}" for e in self.errors]
        super().__init__("\n".join(lines))

    @property
    def paths(self) -> Sequence[str]:
        """The path of every bad field, in the order found."""
        return [e.path for e in self.errors]


class ConfigurationError(PulsoraError, ValueError):
    """The client or a policy was configured in a way that cannot work."""


class ClientClosedError(PulsoraError, RuntimeError):
    """The client was used after it was closed, or closed while a call waited to try again.

    When closing the client stopped a ``track_many`` run, ``report`` holds that
    run's report.
    """

    report: BatchReport | None = None


class APIError(PulsoraError):
    """Pulsora answered, but did not accept the event.

    ``status_code`` is the final HTTP status, ``message`` the server's own error
    text, and ``attempts`` how many requests were made in all. When the error
    stopped a ``track_many`` run, ``report`` holds that run's report.
    """

    status_code: int
    message: str
    attempts: int
    report: BatchReport | None = None

    def __init__(self, description: str, *, status_code: int, message: str, attempts: int) -> None:
        super().__init__(description)
        self.status_code = status_code
        self.message = message
        self.attempts = attempts


class BadRequestError(APIError):
    """400, 413, 422: Pulsora refused the event itself (malformed, too large, invalid).

    Retrying will not help.
    """


class AuthenticationError(APIError):
    """401: the token is missing, unknown or disabled."""


class PermissionDeniedError(APIError):
    """403: the token may not send revenue events (a public ``pub_`` token)."""


class DuplicateTransactionError(APIError):
    """409: this (transaction_id, event_type) was already recorded before this call."""


class RateLimitError(APIError):
    """429: over the rate limit; ``retry_after`` is the server's wait in seconds."""

    retry_after: float | None

    def __init__(
        self,
        description: str,
        *,
        status_code: int,
        message: str,
        attempts: int,
        retry_after: float | None,
    ) -> None:
        super().__init__(description, status_code=status_code, message=message, attempts=attempts)
        self.retry_after = retry_after


class ServerError(APIError):
    """5xx: Pulsora had trouble; the event may or may not be recorded (track it again: safe)."""


class APIConnectionError(PulsoraError):
    """Pulsora gave no answer: the connection failed or broke.

    ``attempts`` is how many requests were tried; ``failure`` what went wrong on
    the last, as the HTTP library said it (``"ConnectError: ..."``); ``connected``
    is false when that attempt made no connection at all (refused, an unknown
    host, a failed TLS handshake): its request never went out.
    """

    attempts: int
    failure: str
    connected: bool

    def __init__(
        self, description: str, *, attempts: int, failure: str = "", connected: bool = True
    ) -> None:
        super().__init__(description)
        self.attempts = attempts
        self.failure = failure
        self.connected = connected


class APITimeoutError(APIConnectionError):
    """Pulsora gave no answer in time."""


class UnexpectedResponseError(APIError):
    """A 2xx that is not Pulsora's acceptance: the endpoint does not look like Pulsora's ingest.

    A web server's welcome page, a captive portal, or ``{"success": false}``:
    nothing says that the event was recorded. ``message`` holds the start of
    the body. Not retried (the endpoint needs fixing). ``track`` raises it even
    with an outbox; an event already in the outbox stays queued when its delivery
    meets one.
    """


class EndpointError(PulsoraError):
    """A ``track_many`` run stopped: its first events all failed the same way, at the endpoint.

    No server there, an unknown host, a failed TLS handshake, a 404 or 405, or an
    answer that is not Pulsora's: no event can be delivered to ``endpoint``, so
    the run stopped within seconds instead of failing every event. ``report``
    holds the run's report (``stopped`` is true, ``stop_reason`` says why), and
    ``__cause__`` the first event's error. Fix the endpoint URL (or the proxy on
    the way) and run it again: Pulsora de-duplicates what was sent.
    """

    endpoint: str
    report: BatchReport | None = None

    def __init__(self, description: str, *, endpoint: str) -> None:
        super().__init__(description)
        self.endpoint = endpoint


class OutboxError(PulsoraError):
    """The outbox file could not be written or read: a full disk, a damaged or locked file.

    ``path`` is the file, and the ``sqlite3`` error is the ``__cause__``. When
    ``track`` could not queue an event, ``delivery_error`` is the failure that
    made it try: the event was neither delivered nor kept, so track it again
    (it is safe: Pulsora de-duplicates by transaction_id and event_type).
    """

    path: str
    delivery_error: Exception | None

    def __init__(
        self, description: str, *, path: str, delivery_error: Exception | None = None
    ) -> None:
        super().__init__(description)
        self.path = path
        self.delivery_error = delivery_error
