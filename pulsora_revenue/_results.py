"""What the client reports: a ``TrackResult`` per call; per bulk run, an ``Outcome`` per
event, ``Progress`` and a ``BatchReport``.

A leaf: these records import nothing of the client's that could import them.
"""

from __future__ import annotations

import enum
from datetime import datetime
from typing import NamedTuple

import attrs

from ._errors import received
from ._event import RevenueEvent


@attrs.frozen
class TrackResult:
    """What happened to one tracked event.

    Attributes:
        event: the event, validated.
        status_code: the HTTP status that accepted it (409 for a ``duplicate``); None
            when it was queued.
        attempts: the number of requests made.
        elapsed: the seconds the call took.
        duplicate: whether Pulsora reported the event as already recorded after an
            earlier attempt of this same call lost its answer.
        queued: whether the event went to the outbox, to be delivered later, instead.
    """

    event: RevenueEvent
    status_code: int | None
    attempts: int
    elapsed: float
    duplicate: bool = False
    queued: bool = False


class Delivered(NamedTuple):
    """How one event was delivered: what its ``TrackResult`` says, without the event.

    ``track_many`` builds the ``TrackResult`` only when someone will see it.
    """

    status_code: int | None
    attempts: int
    elapsed: float
    duplicate: bool

    def result(self, event: RevenueEvent) -> TrackResult:
        """The ``TrackResult`` of *event*, delivered so."""
        # By position: keywords cost a fifth more, for every event tracked.
        return TrackResult(event, self.status_code, self.attempts, self.elapsed, self.duplicate)


class OutcomeStatus(enum.StrEnum):
    """What became of one event of a bulk run."""

    SENT = "sent"  # accepted by Pulsora in this run
    DUPLICATE = "duplicate"  # Pulsora had already recorded it before this run
    SKIPPED = "skipped"  # a repeat, in this input, of an event already taken
    INVALID = "invalid"  # failed validation; never sent
    FAILED = "failed"  # retries exhausted, or a final error status


@attrs.frozen
class Outcome:
    """The outcome of one event of a ``track_many`` run.

    Attributes:
        index: the event's position in the input, from 0.
        event: the validated event; None when the input was invalid.
        input: what the input yielded for it.
        status: what became of it.
        error: the error of an invalid, failed or duplicate event; None otherwise.
        result: the ``TrackResult`` of a sent event; None otherwise.
    """

    index: int
    event: RevenueEvent | None
    input: object = attrs.field(repr=received)  # shown short: it may be huge, deep or hostile
    status: OutcomeStatus
    error: Exception | None = None
    result: TrackResult | None = None


@attrs.frozen
class BatchFailure:
    """An invalid or failed event, kept in ``BatchReport.failures``.

    Attributes:
        index: the event's position in the input, from 0.
        input: what the input yielded for it.
        error: why it was invalid, or why it failed.
    """

    index: int
    input: object = attrs.field(repr=received)
    error: Exception


@attrs.frozen
class Progress:
    """Counters of a running ``track_many`` run, passed to ``on_progress``.

    Attributes:
        done: how many events have their outcome.
        sent: how many Pulsora accepted.
        duplicates: how many Pulsora had recorded before the run.
        skipped: how many repeated an earlier event of the input.
        invalid: how many failed validation.
        failed: how many could not be delivered.
        in_flight: how many are being sent now.
        rate: events done per second, so far.
        elapsed: the seconds since the run started.
    """

    done: int
    sent: int
    duplicates: int
    skipped: int
    invalid: int
    failed: int
    in_flight: int
    rate: float  # events done per second
    elapsed: float


@attrs.frozen
class BatchReport:
    """The totals of a ``track_many`` run.

    A run ends early for a refused token, a wrong endpoint (its first events all
    failed the same way) or a closed client, raised with this report; or for its
    ``time_limit``, returned: every event read then has its outcome, those not
    sent a failed one, and the input was read no further than index ``total``.

    Attributes:
        total: how many events got an outcome.
        sent: how many Pulsora accepted in this run.
        duplicates: how many Pulsora had recorded before this run (a 409).
        skipped: how many repeated an earlier ``(transaction_id, event_type)`` of the
            input, and were not sent again.
        invalid: how many failed validation.
        failed: how many could not be delivered.
        elapsed: the seconds the run took.
        failures: the invalid and failed events, in completion order, when
            ``keep_failures`` was true.
        stop_reason: why the run ended early; empty when it did not.
    """

    total: int = 0
    sent: int = 0
    duplicates: int = 0
    skipped: int = 0
    invalid: int = 0
    failed: int = 0
    elapsed: float = 0.0
    failures: tuple[BatchFailure, ...] = ()
    stop_reason: str = ""

    @property
    def stopped(self) -> bool:
        """True when the run ended early; ``stop_reason`` says why."""
        return bool(self.stop_reason)

    @property
    def ok(self) -> bool:
        """True when nothing was invalid, nothing failed, and the run was not stopped."""
        return not (self.invalid or self.failed or self.stopped)


@attrs.define
class Counts:
    """The running counters of a bulk run: its one writer is the run (or the CLI's tally)."""

    keep_failures: bool = True
    total: int = 0
    sent: int = 0
    duplicates: int = 0
    skipped: int = 0
    invalid: int = 0
    failed: int = 0
    failures: list[BatchFailure] = attrs.Factory(list)

    def count(self, outcome: Outcome) -> None:
        """Add *outcome* to the counters."""
        self.total += 1
        match outcome.status:
            case OutcomeStatus.SENT:
                self.sent += 1
            case OutcomeStatus.DUPLICATE:
                self.duplicates += 1
            case OutcomeStatus.SKIPPED:
                self.skipped += 1
            case OutcomeStatus.INVALID:
                self.invalid += 1
            case OutcomeStatus.FAILED:
                self.failed += 1
        if self.keep_failures and outcome.error is not None and outcome.status in _FAILURES:
            self.failures.append(BatchFailure(outcome.index, outcome.input, outcome.error))

    def count_sent(self) -> None:
        """Count an event sent that no ``on_result`` sees, without making its ``Outcome``."""
        self.total += 1
        self.sent += 1

    def progress(self, *, in_flight: int, elapsed: float) -> Progress:
        """A snapshot of the counters."""
        rate = self.total / elapsed if elapsed > 0 else 0.0
        return Progress(
            done=self.total,
            sent=self.sent,
            duplicates=self.duplicates,
            skipped=self.skipped,
            invalid=self.invalid,
            failed=self.failed,
            in_flight=in_flight,
            rate=rate,
            elapsed=elapsed,
        )

    def report(self, *, elapsed: float, stop_reason: str = "") -> BatchReport:
        """The report of the run so far."""
        return BatchReport(
            total=self.total,
            sent=self.sent,
            duplicates=self.duplicates,
            skipped=self.skipped,
            invalid=self.invalid,
            failed=self.failed,
            elapsed=elapsed,
            failures=tuple(self.failures),
            stop_reason=stop_reason,
        )


_FAILURES = (OutcomeStatus.INVALID, OutcomeStatus.FAILED)


@attrs.frozen
class DeadLetter:
    """An event the outbox gave up on, kept in it: refused for good, or unreadable.

    Pulsora refused it for good (a 400, 413 or 422), or this version could not read
    what was queued.

    Attributes:
        id: its number in the outbox, which ``Revenue.retry_dead_letters`` goes by.
        transaction_id: the event's ``transaction_id``.
        event_type: the event's ``event_type``; empty when it had none.
        event: the event; None when this version cannot read what was queued.
        error: the refusal, or why the event could not be read.
        queued_at: when the event was first queued (UTC).
        died_at: when it became a dead letter (UTC).
    """

    id: int
    transaction_id: str
    event_type: str
    event: RevenueEvent | None
    error: str
    queued_at: datetime
    died_at: datetime
