"""A resumable backfill: rows from a file, through ``track_many``, with a checkpoint.

Rows already in the checkpoint are skipped; every accepted event is added to
it as its answer arrives; invalid and failed rows go to a failures file in JSON
Lines, each with its ``_line`` and ``_error``, which ``backfill`` takes as
input again once the data is fixed: that run rewrites the failures file with the
rows that still fail.
"""

from __future__ import annotations

import itertools
import os
import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

import attrs

from .. import _json
from .._client import Revenue
from .._results import Counts, Outcome, OutcomeStatus, Progress
from ._checkpoint import Checkpoint, normalise_key
from ._rows import Row, explained

_DONE = (OutcomeStatus.SENT, OutcomeStatus.DUPLICATE)
_BAD = (OutcomeStatus.INVALID, OutcomeStatus.FAILED)

#: How a failures file's name ends: ``payments.jsonl.failures.jsonl``.
FAILURES_SUFFIX = ".failures.jsonl"


def default_paths(file: str) -> tuple[Path, Path]:
    """The checkpoint and failures files of a backfill of *file* (``-``: standard input).

    ``FILE.checkpoint.sqlite`` and ``FILE.failures.jsonl``, in the current folder
    for ``-``. A failures file is its own failures file, rewritten with the rows
    that still fail: never ``FILE.failures.jsonl.failures.jsonl``.
    """
    stem = "pulsora-backfill" if file == "-" else file
    failures = file if file.endswith(FAILURES_SUFFIX) else f"{stem}{FAILURES_SUFFIX}"
    return Path(f"{stem}.checkpoint.sqlite"), Path(failures)


@attrs.define
class Tally:
    """A backfill's counts, kept up to date as it runs (so that Ctrl-C can report them).

    ``backfill`` is its one writer. ``counts`` holds the outcomes of
    ``track_many`` as they come; ``resumed`` counts the rows the checkpoint had
    from an earlier run, and ``unreadable`` the rows that never reached
    ``track_many`` (they count as invalid); ``retried`` the events accepted
    after more than one request (a 429, a 503). ``elapsed`` and ``stopped`` are
    set when the run ends.
    """

    counts: Counts = attrs.Factory(lambda: Counts(keep_failures=False))  # to the file, not memory
    resumed: int = 0
    unreadable: int = 0
    retried: int = 0
    elapsed: float = 0.0
    stopped: bool = False

    @property
    def settled(self) -> int:
        """The rows settled before ``track_many`` saw them: resumed, or unreadable."""
        return self.resumed + self.unreadable

    @property
    def sent(self) -> int:
        """The events Pulsora accepted in this run."""
        return self.counts.sent

    @property
    def duplicates(self) -> int:
        """The events Pulsora had recorded before this run."""
        return self.counts.duplicates

    @property
    def skipped(self) -> int:
        """The repeats, in this input, of an event already taken."""
        return self.counts.skipped

    @property
    def invalid(self) -> int:
        """The rows refused by validation, and the unreadable ones."""
        return self.counts.invalid + self.unreadable

    @property
    def failed(self) -> int:
        """The events not delivered: retries exhausted, or a final error status."""
        return self.counts.failed

    @property
    def ok(self) -> bool:
        """True when no row was invalid, none failed, and the run was not stopped."""
        return not (self.invalid or self.failed or self.stopped)


@contextmanager
def replacing(path: Path) -> Iterator[IO[str]]:
    """Write a new *path*: it replaces the old one only if the block ends without an error.

    The text goes to a temporary file beside *path*, renamed over it at the end,
    so a run refused or failed part-way leaves an earlier file (and the fixes a
    user made in it) as it was. A *path* that is no regular file (``/dev/null``,
    a pipe) is written in place.
    """
    target = path.resolve()  # through a link: replace the file, not the link
    if target.exists() and not target.is_file():
        with target.open("w", encoding="utf-8") as out:
            yield out
        return
    partial = target.with_name(f"{target.name}.{os.getpid()}.tmp")
    try:
        with _open_beside(partial, path) as out:
            yield out
        if target.exists():
            shutil.copymode(target, partial)  # as writing over it would have kept it
        partial.replace(target)
    finally:
        partial.unlink(missing_ok=True)


def _open_beside(partial: Path, path: Path) -> IO[str]:
    """Open *partial* for writing; an error names *path*, the file the user asked for."""
    try:
        return partial.open("w", encoding="utf-8")
    except OSError as exc:
        raise OSError(exc.errno, exc.strerror, str(path)) from None


def write_failure(out: IO[str], line: int, row: object, error: str) -> None:
    """One line of the failures file: the row's fields, with ``_line`` and ``_error``.

    Decimals keep their digits; a line that was not JSON is kept whole in ``_input``.
    Whatever the row holds, the line is written: what JSON cannot hold, or is
    nested too deep for any event, is written as text that describes it (the row
    is invalid either way, and stays so when it is read again).
    """
    record: dict[str, Any] = {"_line": line, "_error": error}
    if isinstance(row, dict):
        record.update(row)
    elif row is not None:
        record["_input"] = row
    out.write(_json.dumps_lenient(record) + "\n")
    out.flush()


async def backfill(
    revenue: Revenue,
    rows: Iterator[Row],
    *,
    checkpoint: Checkpoint,
    failures: IO[str],
    tally: Tally,
    concurrency: int = 8,
    rate_limit: float | None = None,
    on_progress: Callable[[Progress], object] | None = None,
) -> Tally:
    """Send every row not yet in *checkpoint*; fill in *tally* as it goes."""
    in_flight: dict[int, Row] = {}  # index in the run -> its row, while in flight
    indexes = itertools.count()

    def feed() -> Iterator[dict[str, Any]]:
        for row in rows:
            if row.fields is None:
                tally.unreadable += 1
                write_failure(failures, row.line, row.raw or None, row.problem)
                continue
            key = normalise_key(row.fields.get("transaction_id"), row.fields.get("event_type"))
            # Accepted by an earlier run: skip it. A row accepted earlier in this run
            # goes on: track_many validates it, and skips it as a repeat if it is valid.
            if key is not None and checkpoint.done_earlier(key):
                tally.resumed += 1
                continue
            in_flight[next(indexes)] = row
            yield row.fields

    def on_result(outcome: Outcome) -> None:
        row = in_flight.pop(outcome.index)
        tally.counts.count(outcome)
        if outcome.status in _DONE and outcome.event is not None:
            checkpoint.add(outcome.event.dedup_key)
            if outcome.result is not None and outcome.result.attempts > 1:
                tally.retried += 1
        elif outcome.status in _BAD:
            write_failure(failures, row.line, outcome.input, explained(row, outcome.error))

    report = await revenue.track_many(
        feed(),
        concurrency=concurrency,
        rate_limit=rate_limit,
        on_result=on_result,
        on_progress=on_progress,
        keep_failures=False,
    )
    tally.elapsed, tally.stopped = report.elapsed, report.stopped
    return tally
