"""What ``track_many`` reports: one ``Outcome`` per event, progress, and the totals."""

from __future__ import annotations

import enum

import attrs

from ._delivery import TrackResult
from ._errors import received
from ._event import RevenueEvent


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


@attrs.define
class BatchReport:
    """The totals of a bulk run.

    ``total`` counts every event that got an outcome; ``failures`` lists the
    invalid and failed ones (when ``keep_failures`` was true), in completion
    order. ``stopped`` is true when the run ended early: an authentication
    error or a closed client (raised, with this report), or its ``time_limit``
    (returned: every event read then has its outcome, those not sent a failed
    one, and the input was read no further than index ``total``).
    """

    total: int = 0
    sent: int = 0
    duplicates: int = 0
    skipped: int = 0
    invalid: int = 0
    failed: int = 0
    elapsed: float = 0.0
    failures: list[BatchFailure] = attrs.Factory(list)
    stopped: bool = False

    def count(self, outcome: Outcome, *, keep_failures: bool) -> None:
        """Add *outcome* to the totals.

        ``track_many`` counts a sent event that no ``on_result`` sees without
        making its Outcome: it adds to ``total`` and ``sent`` itself.
        """
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
        if keep_failures and outcome.error is not None and outcome.status in _FAILURES:
            self.failures.append(BatchFailure(outcome.index, outcome.input, outcome.error))

    @property
    def ok(self) -> bool:
        """True when nothing was invalid, nothing failed, and the run was not stopped."""
        return not (self.invalid or self.failed or self.stopped)

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


_FAILURES = (OutcomeStatus.INVALID, OutcomeStatus.FAILED)
