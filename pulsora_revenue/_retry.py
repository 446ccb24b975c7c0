"""When to try again: the retry policy and the pure decision after each attempt.

Nothing here does I/O or sleeps, so every rule can be tested directly; the
client's loop only carries out what ``decide`` says.
"""

from __future__ import annotations

import enum
import random
import time
from collections.abc import Callable
from datetime import timedelta
from email.utils import parsedate_to_datetime

import attrs

from ._errors import APIConnectionError, APIError, ConfigurationError

#: Statuses worth another attempt; every other 4xx is final.
RETRYABLE_STATUSES = frozenset({408, 429, 500, 502, 503, 504})

#: Final statuses that may pass later: what the outbox keeps instead of raising
#: (with every failure to get an answer at all), and hooks report as failed, not refused.
QUEUEABLE_STATUSES = RETRYABLE_STATUSES | {501, 505}

#: The most added on top of a server's Retry-After, so that clients that were
#: told the same wait do not all come back in the same instant.
RETRY_AFTER_JITTER = 0.5

#: A retry is only worth making if this much of the deadline (or a tenth of it,
#: if that is less) is left for it after the wait.
MIN_ATTEMPT_TIME = 1.0


def to_seconds(value: float | timedelta) -> float:
    """Return a duration in seconds from a number or a ``timedelta``."""
    seconds = value.total_seconds() if isinstance(value, timedelta) else value
    if isinstance(seconds, bool) or not isinstance(seconds, int | float):
        raise ConfigurationError(f"a duration must be seconds or a timedelta, not {value!r}")
    return float(seconds)


def _non_negative(_: object, attribute: attrs.Attribute[float], value: float) -> None:
    if not value >= 0:
        raise ConfigurationError(f"{attribute.name} must be zero or more, not {value!r}")


@attrs.frozen
class RetryPolicy:
    """How ``track`` and ``track_many`` retry a failed attempt.

    Before retry *n* (1, 2, ...) the client waits a random time between
    ``initial_delay`` and ``min(max_delay, initial_delay * 2**(n-1))`` (full
    jitter with a floor), or at least as long as a ``Retry-After`` header asks,
    plus up to 0.5 s. Durations are seconds or ``timedelta``; a policy that cannot
    work (fewer than one attempt, a negative delay, ``max_delay`` below
    ``initial_delay``, a deadline that is not positive) raises ``ConfigurationError``.

    Attributes:
        max_attempts: requests in all, the first included.
        initial_delay: the floor of every wait, in seconds.
        max_delay: the cap of every back-off, in seconds.
        deadline: the seconds one ``track`` call, or one event of ``track_many``, may
            take from start to finish, its waits included.
        uniform: the random source, ``uniform(low, high)``; replaceable for tests.
    """

    max_attempts: int = attrs.field(default=4)
    initial_delay: float = attrs.field(default=0.5, converter=to_seconds, validator=_non_negative)
    max_delay: float = attrs.field(default=8.0, converter=to_seconds, validator=_non_negative)
    deadline: float = attrs.field(default=30.0, converter=to_seconds, validator=_non_negative)
    uniform: Callable[[float, float], float] = attrs.field(
        default=random.uniform, eq=False, repr=False, kw_only=True
    )

    @max_attempts.validator
    def _check_attempts(self, _: object, value: int) -> None:
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ConfigurationError(f"max_attempts must be an int of 1 or more, not {value!r}")

    def __attrs_post_init__(self) -> None:
        if self.max_delay < self.initial_delay:
            raise ConfigurationError(
                f"max_delay ({self.max_delay}) must not be below "
                f"initial_delay ({self.initial_delay})"
            )
        if self.deadline <= 0:
            raise ConfigurationError(f"deadline must be positive, not {self.deadline!r}")

    def backoff(self, retry: int) -> float:
        """Draw the wait before a retry.

        Args:
            retry: the number of the retry: 1 for the first (the second attempt).

        Returns:
            The seconds to wait: between ``initial_delay`` and
            ``min(max_delay, initial_delay * 2**(retry-1))``.
        """
        ceiling = min(self.max_delay, self.initial_delay * 2.0 ** min(retry - 1, 64))
        return self.uniform(self.initial_delay, ceiling)


@attrs.frozen
class Observation:
    """What one attempt produced, reduced to what the decision needs.

    ``status_code`` is None when no answer came. ``sent`` is false when the
    request provably never reached the server (the connection was refused).
    ``retryable`` is false for a failure that a new attempt cannot mend.
    ``foreign`` marks a 2xx that is not Pulsora's acceptance (a web server's
    welcome page, ``{"success": false}``): not accepted, and not retried.
    """

    status_code: int | None
    retry_after: float | None = None
    sent: bool = True
    retryable: bool = True
    foreign: bool = False

    @property
    def accepted(self) -> bool:
        """Whether Pulsora accepted the event (its own 2xx answer)."""
        return self.status_code is not None and 200 <= self.status_code < 300 and not self.foreign

    @property
    def may_have_landed(self) -> bool:
        """Whether the server may have recorded the event despite the outcome."""
        return self.sent and (self.status_code is None or self.status_code >= 500)


class Verdict(enum.Enum):
    """What to do after an attempt."""

    DELIVERED = "delivered"
    RETRY = "retry"
    GIVE_UP = "give up"


@attrs.frozen
class Decision:
    """The verdict after an attempt, with the wait before the next one."""

    verdict: Verdict
    delay: float = 0.0
    duplicate: bool = False


_DELIVERED = Decision(Verdict.DELIVERED)


def decide(
    policy: RetryPolicy,
    seen: Observation,
    *,
    attempt: int,
    elapsed: float,
    maybe_delivered: bool,
) -> Decision:
    """Decide what follows attempt number *attempt* (1-based).

    *elapsed* is the time since the first attempt started. *maybe_delivered*
    says whether an earlier attempt of this event may have reached the server
    although its answer was lost: then a 409 means our own earlier attempt was
    recorded, and the event counts as delivered.
    """
    if seen.accepted:
        return _DELIVERED
    if seen.status_code == 409 and maybe_delivered:
        return Decision(Verdict.DELIVERED, duplicate=True)
    if not is_retryable(seen) or attempt >= policy.max_attempts:
        return Decision(Verdict.GIVE_UP)
    delay = policy.backoff(attempt)
    if seen.retry_after is not None:
        delay = max(delay, seen.retry_after + policy.uniform(0.0, RETRY_AFTER_JITTER))
    if not leaves_time(policy.deadline, elapsed, delay):
        return Decision(Verdict.GIVE_UP)  # the next attempt would have next to no time
    return Decision(Verdict.RETRY, delay=delay)


def leaves_time(deadline: float, elapsed: float, wait: float) -> bool:
    """Whether waiting *wait* seconds, *elapsed* into *deadline*, leaves time for an attempt.

    Every wait of a delivery (a back-off, the bulk 429 gate) must pass this: an
    attempt needs ``MIN_ATTEMPT_TIME``, or a tenth of the deadline if that is less.
    """
    return elapsed + wait + min(MIN_ATTEMPT_TIME, deadline / 10) <= deadline


def is_retryable(seen: Observation) -> bool:
    """Whether another attempt could succeed after *seen* (never after a ``foreign`` 2xx)."""
    if seen.status_code is None:
        return seen.retryable
    return seen.status_code in RETRYABLE_STATUSES


def may_pass_later(error: APIConnectionError | APIError) -> bool:
    """Whether a delivery that ended with *error* may pass later: what an outbox keeps.

    No answer at all, or a final 408, 429 or 500 to 505. Any other answer (a 400,
    a 401, a proxy's 404, a 2xx that is not Pulsora's) no later attempt can change.
    """
    return not isinstance(error, APIError) or error.status_code in QUEUEABLE_STATUSES


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Return a ``Retry-After`` header as seconds to wait, or None if unusable.

    Both forms are understood: delta-seconds (``"120"``) and an HTTP date, which
    is measured from *now* (seconds since the epoch, default the system clock).
    """
    if value is None:
        return None
    text = value.strip()
    try:
        seconds = float(text)
    except ValueError:
        return _seconds_until(text, time.time() if now is None else now)
    return seconds if 0 <= seconds < float("inf") else None


def _seconds_until(http_date: str, now: float) -> float | None:
    try:
        moment = parsedate_to_datetime(http_date)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if moment.tzinfo is None:  # RFC 9110 dates are GMT
        return None
    return max(0.0, moment.timestamp() - now)
