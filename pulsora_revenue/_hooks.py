"""Hooks: what the client does, reported as it happens, to code of the user's.

``Hooks`` is the protocol: a base class whose methods do nothing, which users
subclass. The client calls them through one ``HookSet``, which skips the
methods a hook does not override and logs (once per hook and kind of error)
whatever a hook raises: a hook never breaks a delivery. A client without hooks
has no ``HookSet`` at all, so that its hot path costs one ``is not None`` test.
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, TypeVar

import attrs

from ._errors import (
    APIConnectionError,
    APIError,
    ConfigurationError,
    DuplicateTransactionError,
    OutboxError,
)
from ._event import RevenueEvent
from ._results import Delivered, TrackResult
from ._retry import may_pass_later

if TYPE_CHECKING:
    from ._transports import Reply

logger = logging.getLogger("pulsora_revenue")

_R = TypeVar("_R")


@attrs.frozen
class Attempt:
    """One HTTP request of a delivery, reported once its answer (or its failure) is in.

    Attributes:
        event: the event sent.
        endpoint: the ingest URL it was sent to.
        number: which request of the delivery it was: 1 for the first. A 429 waited out
            by ``track_many`` counts, as every request does (``TrackResult.attempts``).
        status_code: the HTTP status of the answer; None when no answer came.
        error: why the attempt failed when no answer came (``"ReadTimeout: ..."``), or
            why a 2xx answer was not Pulsora's acceptance; None otherwise (the status
            says it). Text only, with the token scrubbed.
        duration: the seconds this request took.
        elapsed: the seconds since the delivery began, this request included.
        wait: the seconds chosen to wait before the next request (a back-off, a
            ``Retry-After``, ``track_many``'s 429 pause); None when none follows.
    """

    event: RevenueEvent
    endpoint: str
    number: int
    status_code: int | None
    error: str | None
    duration: float
    elapsed: float
    wait: float | None


class DeliveryOutcome(enum.StrEnum):
    """What became of one event given to ``track`` or ``track_many``."""

    DELIVERED = "delivered"  # Pulsora accepted it
    DUPLICATE = "duplicate"  # Pulsora had recorded it already (a 409)
    QUEUED = "queued"  # kept in the outbox, to be delivered later
    REFUSED = "refused"  # refused for good: an answer no retry can change (400, 401, 403...)
    FAILED = "failed"  # no answer, or a 408, 429 or 5xx, after the retries; or not sent


@attrs.frozen
class Delivery:
    """The final outcome of one event given to ``track`` or ``track_many``.

    Attributes:
        event: the event.
        outcome: what became of it.
        attempts: how many requests were made.
        status_code: the status of the last answer (the accepting one, a 409 for a
            duplicate, the refusal); None when no answer came, or none was asked for.
        elapsed: the seconds the delivery took, queueing included.
        error: the exception ``track`` raises (or ``track_many`` reports) for it, or, for a
            queued event, the failure that made it queued; None when delivered.
    """

    event: RevenueEvent
    outcome: DeliveryOutcome
    attempts: int
    status_code: int | None
    elapsed: float
    error: Exception | None = None


class OutboxChangeKind(enum.StrEnum):
    """How the outbox changed."""

    QUEUED = "queued"  # ``track`` put an event in it
    DELIVERED = "delivered"  # an event in it was delivered (or found recorded already)
    DEAD_LETTERED = "dead_lettered"  # an event in it was refused for good, or is unreadable


@attrs.frozen
class OutboxChange:
    """One change of a client's outbox.

    Attributes:
        change: what happened.
        event: the event; None for a dead letter this version could not read.
        depth: how many events of the client's endpoint wait in the outbox since the
            change, as last counted in this process with its own changes since; None
            before it was first counted (a client not entered with ``async with``).
        error: why the event was queued (the delivery's failure) or dead-lettered (the
            refusal, or why it could not be read); None when delivered.
    """

    change: OutboxChangeKind
    event: RevenueEvent | None
    depth: int | None
    error: Exception | None = None


class Hooks:
    """The protocol of hooks: subclass it, and override the methods you need.

    Pass instances as ``Revenue(hooks=[...])`` (or ``SyncRevenue``). Each method is
    called synchronously, on the event loop's thread (``SyncRevenue``'s own), as the
    client works: keep them quick, and never block. What a hook raises is logged on
    the ``pulsora_revenue`` logger (once per hook and kind of error) and otherwise
    ignored. The records hold no API token. ``pulsora_revenue.otel.OpenTelemetryHooks``
    is one such hook.
    """

    def on_attempt(self, attempt: Attempt) -> None:
        """Called after every HTTP request, by ``track``, ``track_many`` and the outbox.

        Args:
            attempt: the request: its event, number, status or error, duration, and the
                wait chosen before the next one.
        """

    def on_delivery(self, delivery: Delivery) -> None:
        """Called once per event sent by ``track`` or ``track_many``, with its outcome.

        Events ``track_many`` did not send (invalid, or repeated in its input) and calls
        cancelled, or ended by closing the client, report none.

        Args:
            delivery: the event, its outcome, the requests made and the time taken.
        """

    def on_outbox(self, change: OutboxChange) -> None:
        """Called when the outbox queues an event, delivers one, or makes one a dead letter.

        Args:
            change: what changed, for which event, and how many events wait since.
        """


_METHODS = ("on_attempt", "on_delivery", "on_outbox")


@attrs.define
class HookSet:
    """The hooks of one client, each method called inside its own ``try``.

    Each tuple holds the methods, bound, of the hooks that override it.
    """

    attempts: tuple[Callable[[Attempt], object], ...]
    deliveries: tuple[Callable[[Delivery], object], ...]
    outbox_changes: tuple[Callable[[OutboxChange], object], ...]
    _logged: set[tuple[int, str, type[BaseException]]] = attrs.Factory(set)

    def attempt(
        self,
        event: RevenueEvent,
        endpoint: str,
        reply: Reply,
        number: int,
        duration: float,
        elapsed: float,
        wait: float | None,
    ) -> None:
        """Report request *number* of *event*'s delivery, which got *reply*."""
        if self.attempts:
            seen = reply.seen
            error = reply.failure or None
            if seen.foreign:
                error = f"not Pulsora's acceptance: {reply.message}"
            status = seen.status_code
            record = Attempt(event, endpoint, number, status, error, duration, elapsed, wait)
            self._call(self.attempts, record)

    def delivered(self, event: RevenueEvent, delivered: Delivered) -> None:
        """Report an event delivered as *delivered* says (a duplicate, perhaps)."""
        if self.deliveries:
            status, attempts, elapsed, duplicate = delivered
            outcome = DeliveryOutcome.DUPLICATE if duplicate else DeliveryOutcome.DELIVERED
            self._call(self.deliveries, Delivery(event, outcome, attempts, status, elapsed))

    def tracked(self, result: TrackResult) -> None:
        """Report an event delivered by ``track``, as its *result* says."""
        if self.deliveries:
            status, attempts, elapsed = result.status_code, result.attempts, result.elapsed
            self.delivered(result.event, Delivered(status, attempts, elapsed, result.duplicate))

    def failed(self, event: RevenueEvent, error: Exception, elapsed: float) -> None:
        """Report an event whose delivery raised *error*."""
        if self.deliveries:
            self._call(self.deliveries, delivery_of(event, error, elapsed))

    def queued(self, event: RevenueEvent, error: Exception, elapsed: float) -> None:
        """Report an event kept in the outbox after its delivery raised *error*."""
        if self.deliveries:
            record = delivery_of(event, error, elapsed)
            self._call(self.deliveries, attrs.evolve(record, outcome=DeliveryOutcome.QUEUED))

    def outbox(
        self,
        change: OutboxChangeKind,
        event: RevenueEvent | None,
        depth: int | None,
        error: Exception | None = None,
    ) -> None:
        """Report a change of the outbox."""
        if self.outbox_changes:
            self._call(self.outbox_changes, OutboxChange(change, event, depth, error))

    def _call(self, methods: tuple[Callable[[_R], object], ...], record: _R) -> None:
        for method in methods:
            try:
                method(record)
            except Exception as exc:
                self._raised(method, exc)

    def _raised(self, method: Callable[..., object], error: Exception) -> None:
        hook = getattr(method, "__self__", method)
        name = getattr(method, "__name__", "?")
        kind = (id(hook), name, type(error))
        if kind in self._logged:
            logger.debug("hook %r raised in %s again: ignored", hook, name, exc_info=error)
            return
        self._logged.add(kind)
        logger.error(
            "hook %r raised in %s, which is ignored (logged once per hook and kind of error)",
            hook,
            name,
            exc_info=error,
        )


def hook_set(hooks: Sequence[Hooks]) -> HookSet | None:
    """The ``HookSet`` of *hooks* as given to a client, checked; None for no hooks.

    Raises ``ConfigurationError`` for anything but a sequence of ``Hooks``.
    """
    if isinstance(hooks, Hooks | str | bytes) or not isinstance(hooks, Sequence):
        raise ConfigurationError(f"hooks must be a sequence of Hooks (hooks=[...]), not {hooks!r}")
    for hook in hooks:
        if not isinstance(hook, Hooks):
            raise ConfigurationError(
                f"each hook must be a Hooks (a subclass of pulsora_revenue.Hooks), not {hook!r}"
            )
    if not hooks:
        return None
    attempts, deliveries, changes = (tuple(_overriding(hooks, name)) for name in _METHODS)
    return HookSet(attempts, deliveries, changes)


def _overriding(hooks: Sequence[Hooks], name: str) -> list[Callable[..., object]]:
    """The methods *name* of *hooks*, bound, where their class overrides ``Hooks``'."""
    default = getattr(Hooks, name)
    return [getattr(hook, name) for hook in hooks if getattr(type(hook), name) is not default]


def outcome_of(error: Exception) -> DeliveryOutcome:
    """The outcome of a delivery that raised *error*: a duplicate, refused for good, or failed.

    Failed is what may pass later (what an outbox would queue): no answer, a 408,
    429, 500 to 505; or an error that is not Pulsora's answer at all.
    """
    if isinstance(error, DuplicateTransactionError):
        return DeliveryOutcome.DUPLICATE
    if isinstance(error, APIError) and not may_pass_later(error):
        return DeliveryOutcome.REFUSED
    return DeliveryOutcome.FAILED


def delivery_of(event: RevenueEvent, error: Exception, elapsed: float) -> Delivery:
    """The ``Delivery`` of *event*, whose delivery raised *error* after *elapsed* seconds.

    An ``OutboxError`` (the event could be neither delivered nor queued) tells the
    requests made by its ``delivery_error``.
    """
    sent = error.delivery_error if isinstance(error, OutboxError) else error
    attempts = sent.attempts if isinstance(sent, APIError | APIConnectionError) else 0
    status = sent.status_code if isinstance(sent, APIError) else None
    return Delivery(event, outcome_of(error), attempts, status, elapsed, error)
