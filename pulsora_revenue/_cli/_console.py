"""Terminal output of the command line: a progress bar (or plain lines), and tables."""

from __future__ import annotations

import time
from types import TracebackType
from typing import Self

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from .._results import Progress as Counters
from ._backfill import Tally
from ._words import counted

#: Seconds between two plain progress lines, when the output is not a terminal.
PLAIN_EVERY = 2.0


class Display:
    """Shows a backfill's progress: a live bar on a terminal, periodic lines elsewhere."""

    def __init__(self, console: Console, *, total: int | None, tally: Tally) -> None:
        self.console, self.total, self.tally = console, total, tally
        self._bar: Progress | None = None
        self._task: TaskID | None = None
        self._last_line = 0.0

    def __enter__(self) -> Self:
        if self.console.is_terminal:
            self._bar = Progress(
                TextColumn("[bold]backfill"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[rate]:>7.0f}/s"),
                TextColumn("[red]{task.fields[failures]} invalid or failed"),
                TimeElapsedColumn(),
                TimeRemainingColumn(),
                console=self.console,
            )
            self._bar.start()
            self._task = self._bar.add_task("backfill", total=self.total, rate=0.0, failures=0)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._bar is not None:
            self._bar.stop()

    def update(self, counters: Counters) -> None:
        """Called by ``track_many`` about four times a second."""
        done = counters.done + self.tally.settled  # track_many's, and the rows before it
        failures = self.tally.invalid + self.tally.failed
        if self._bar is not None and self._task is not None:
            self._bar.update(self._task, completed=done, rate=counters.rate, failures=failures)
            return
        now = time.monotonic()
        if now - self._last_line >= PLAIN_EVERY:
            self._last_line = now
            of = f"/{self.total}" if self.total is not None else ""
            self.console.print(
                f"{done}{of} done, {counters.sent} sent, {failures} invalid or failed, "
                f"{counters.rate:.0f}/s, {counters.elapsed:.0f} s",
                highlight=False,
            )


def report_table(tally: Tally) -> Table:
    """The table a backfill ends with: a row per outcome, the time taken and the rate."""
    table = Table(title="Backfill summary", show_header=True, header_style="bold")
    table.add_column("outcome")
    table.add_column("events", justify="right")
    rate = (tally.sent + tally.duplicates) / tally.elapsed if tally.elapsed else 0.0
    for name, value in (
        ("sent", tally.sent),
        ("already recorded (duplicate)", tally.duplicates),
        ("repeated in the input (skipped)", tally.skipped),
        ("done by an earlier run (resumed)", tally.resumed),
        ("invalid", tally.invalid),
        ("failed", tally.failed),
    ):
        style = "red" if value and name in ("invalid", "failed") else None
        table.add_row(name, str(value), style=style)
    table.add_section()
    table.add_row("elapsed", f"{tally.elapsed:.1f} s")
    table.add_row("rate", f"{counted(round(rate), 'event')}/s")
    return table
