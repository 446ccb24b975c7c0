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

    ``status_code`` is the accepting HTTP status (409 for a ``duplicate``, None
    when queued), ``attempts`` the number of requests made, ``elapsed`` the
    seconds the call took, and ``duplicate`` whether Pulsora reported the event
    as already recorded after an earlier attempt of this same call lost its answer.
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
    """The outcome of event number ``index`` (0-based) of the input.

    ``event`` is None when the input was invalid; ``input`` is what the
    iterable yielded; ``error`` is set for invalid, failed and duplicate events;
    ``result`` is the ``TrackResult`` of a sent event.
    """

    index: int
    event: RevenueEvent | None
    input: object = attrs.field(repr=received)  # shown short: it may be huge, deep or hostile
    status: OutcomeStatus
    error: Exception | None = None
    result: TrackResult | None = None


@attrs.frozen
class BatchFailure:
    """An invalid or failed event, kept in ``BatchReport.failures``."""

    index: int
    input: object = attrs.field(repr=received)
    error: Exception


@attrs.frozen
class Progress:
    """Counters of a running bulk run, passed to ``on_progress``."""

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
    """The totals of a bulk run.

    ``total`` counts every event that got an outcome; ``failures`` lists the
    invalid and failed ones (when ``keep_failures`` was true), in completion
    order. ``stop_reason`` says why the run ended early, and is empty when it
    did not: a refused token, a wrong endpoint (its first events all failed the
    same way) or a closed client (raised, with this report), or its
    ``time_limit`` (returned: every event read then has its outcome, those not
    sent a failed one, and the input was read no further than index ``total``).
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
    """An event that Pulsora refused for good (a 400, 413 or 422), kept in the outbox.

    ``event`` is None when this version cannot read what was queued. ``id``
    names it for ``Revenue.retry_dead_letters``; ``error`` is the refusal.
    """

    id: int
    transaction_id: str
    event_type: str
    event: RevenueEvent | None
    error: str
    queued_at: datetime
    died_at: datetime
