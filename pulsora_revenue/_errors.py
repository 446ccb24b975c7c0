"""Exceptions raised by pulsora_revenue.

The hierarchy::

    PulsoraError
    ├── ValidationError            (also a ValueError; raised before any I/O)
    ├── ConfigurationError         (also a ValueError; raised at construction)
    ├── ClientClosedError          (the Revenue client was already closed)
    ├── APIError                   (the API answered, but not with success)
    │   ├── BadRequestError            400
    │   ├── AuthenticationError        401
    │   ├── PermissionDeniedError      403
    │   ├── DuplicateTransactionError  409
    │   ├── RateLimitError             429
    │   └── ServerError                5xx
    └── APIConnectionError         (the API gave no answer)
        └── APITimeoutError

No message ever contains the API token.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

import attrs

if TYPE_CHECKING:
    from ._report import BatchReport


def received(value: object) -> str:
    """Describe a received value for a message, shortened if it is long."""
    try:
        text = repr(value)
    except ValueError:  # an int too long for repr (sys.set_int_max_str_digits)
        return f"<an int of {value.bit_length()} bits>" if isinstance(value, int) else "<?>"
    return text if len(text) <= 80 else f"{text[:77]}..."


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
    """The ``Revenue`` client was used after ``aclose()``.

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
    """Pulsora gave no answer: the connection failed or broke."""

    attempts: int

    def __init__(self, description: str, *, attempts: int) -> None:
        super().__init__(description)
        self.attempts = attempts


class APITimeoutError(APIConnectionError):
    """Pulsora gave no answer in time."""
