"""The commands ``backfill``, ``validate``, ``demo`` and ``outbox`` (the ``cli`` extra).

``sqlite3`` is imported by the commands that use it, not here: ``validate`` goes without.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Iterator
from contextlib import closing
from pathlib import Path
from typing import IO, TYPE_CHECKING

import anyio
from rich.console import Console

from .._client import Revenue
from .._config import Token, hide, resolve_endpoint, resolve_token
from .._convert import to_event
from .._errors import ConfigurationError, OutboxError, PulsoraError, ValidationError
from ._redaction import scrub
from ._rows import Columns, Row, count_rows, explain, guess_format, opened, read
from ._words import counted

if TYPE_CHECKING:
    from ._backfill import Tally
    from ._checkpoint import Checkpoint


def run_backfill(args: argparse.Namespace, console: Console, tally: Tally | None = None) -> int:
    """``pulsora-revenue backfill FILE``: exit 0 only if nothing failed or was invalid.

    Every option is checked, and the input opened (a CSV's header read), before any
    file is written: a refused run changes neither the checkpoint nor the failures
    file. *tally*, if given, is filled in as the run goes.
    """
    from ._backfill import Tally, replacing
    from ._checkpoint import Checkpoint

    token = _token(args)
    revenue = Revenue(token.reveal(), endpoint=args.endpoint)
    form = guess_format(args.file, args.format)
    checkpoint_path, failures_path, in_place = _paths(args)
    total = count_rows(args.file, form)
    tally = Tally() if tally is None else tally
    with opened(args.file) as handle:
        rows = read(handle, form, _columns(args), lambda names: _say_ignored(console, names))
        try:
            with (
                replacing(failures_path) as failures,
                closing(
                    Checkpoint(checkpoint_path, endpoint=revenue.endpoint, token=token)
                ) as done,
            ):
                try:
                    _send(args, console, revenue, rows, done, failures, tally, total)
                except KeyboardInterrupt:
                    console.print(
                        f"\nInterrupted: {counted(tally.sent, 'event')} sent in this run, "
                        f"{len(done)} done in all. Run the same command again to resume "
                        f"({checkpoint_path}).",
                        highlight=False,
                    )
                    if in_place:  # the rows not read yet are in it, and nowhere else
                        raise
                    return 130  # what was found so far replaces the failures file
        except KeyboardInterrupt:  # the failures file is not replaced
            console.print(f"{failures_path} is as it was.", highlight=False)
            return 130
    _summary(console, tally, failures_path)
    return 0 if tally.ok else 1


def _paths(args: argparse.Namespace) -> tuple[Path, Path, bool]:
    """A backfill's checkpoint and failures files; and whether the latter is the input."""
    from ._backfill import FAILURES_SUFFIX, default_paths

    checkpoint, failures = default_paths(args.file)
    checkpoint, failures = Path(args.checkpoint or checkpoint), Path(args.failures or failures)
    in_place = args.file != "-" and failures.resolve() == Path(args.file).resolve()
    if in_place and not args.file.endswith(FAILURES_SUFFIX):  # a failures file is rewritten
        raise ConfigurationError("--failures must not be the input file")
    return checkpoint, failures, in_place


def _send(
    args: argparse.Namespace,
    console: Console,
    revenue: Revenue,
    rows: Iterator[Row],
    checkpoint: Checkpoint,
    failures: IO[str],
    tally: Tally,
    total: int | None,
) -> None:
    """Backfill *rows* with a progress display."""
    from ._backfill import backfill
    from ._console import Display

    rate = args.rate[0] / args.rate[1] if args.rate else None
    with Display(console, total=total, tally=tally) as display:

        async def main() -> None:
            async with revenue:
                await backfill(
                    revenue,
                    rows,
                    checkpoint=checkpoint,
                    failures=failures,
                    tally=tally,
                    concurrency=args.concurrency,
                    rate_limit=rate,
                    on_progress=display.update if args.progress else None,
                )

        anyio.run(main)


def _summary(console: Console, tally: Tally, failures: Path) -> None:
    from ._console import report_table

    console.print(report_table(tally), soft_wrap=False)  # a table: its title centred
    bad = tally.invalid + tally.failed
    if bad:
        them = "it" if bad == 1 else "them"
        console.print(
            f"{counted(bad, 'row')} went to {failures}; fix {them} and backfill that file.",
            highlight=False,
        )


def _columns(args: argparse.Namespace) -> Columns:
    return Columns(metadata=args.metadata_columns, strict=args.strict_columns)


def _say_ignored(console: Console, names: list[str]) -> None:
    """Name, once, the CSV columns not sent (an email column is personal data)."""
    console.print(
        f"Ignored {counted(len(names), 'column')}, not sent: {', '.join(names)} "
        "(--metadata-columns sends chosen ones as metadata; --strict-columns refuses them).",
        highlight=False,
        markup=False,
    )


def run_validate(args: argparse.Namespace, console: Console) -> int:
    """``pulsora-revenue validate FILE``: every problem of every bad row, with its line."""
    form = guess_format(args.file, args.format)
    rows = bad = 0
    with opened(args.file) as handle:
        for row in read(handle, form, _columns(args), lambda n: _say_ignored(console, n)):
            rows += 1
            problems = [row.problem] if row.fields is None else _problems(row.fields, row)
            if problems:
                bad += 1
                for problem in problems:
                    console.print(f"line {row.line}: {problem}", highlight=False, markup=False)
    verdict = "all valid" if not bad else f"{bad} invalid"
    console.print(f"{counted(rows, 'row')} checked, {verdict}.", highlight=False)
    return 1 if bad else 0


def _problems(fields: dict[str, object], row: Row | None = None) -> list[str]:
    """Every problem of an event's *fields*, said in the terms of the *row* they came from."""
    try:
        to_event(fields, {})
    except ValidationError as exc:
        return [f"{e.path}: {explain(row, e) if row else e.message}" for e in exc.errors]
    return []


def _token(args: argparse.Namespace) -> Token:
    """The secret token of a command: demo's, ``--token-file``'s, else the environment's.

    It is never held as text in a local: a traceback may be shown with them.
    """
    demo = getattr(args, "token", None)  # the demo's own, made up: no secret
    token = hide(demo) if demo else _read_token(args.token_file) if args.token_file else None
    return resolve_token(token, passed_as="--token-file PATH")


def _read_token(path: str) -> Token:
    try:
        token = Token(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigurationError(f"cannot read the token file {path}: {exc.strerror}") from None
    if not token.reveal().strip():
        raise ConfigurationError(f"the token file {path} is empty")
    return token


def run_outbox(args: argparse.Namespace, console: Console) -> int:
    """``pulsora-revenue outbox PATH``: what waits, the dead letters; drain or export."""
    from datetime import UTC, datetime

    from .._outbox import Outbox, is_outbox

    if not Path(args.path).is_file():
        raise ConfigurationError(f"there is no outbox at {args.path}")
    if not is_outbox(args.path):  # a checkpoint, say: show nothing, and change nothing in it
        raise ConfigurationError(f"{args.path} is not an outbox: check the path")

    async def main() -> int:
        outbox = Outbox(args.path)
        left = 0  # what --drain could not deliver of its endpoint's events
        try:
            first = await outbox.stats()
            if args.export:  # for a backfill to one endpoint: the rows queued for it
                endpoint = str(resolve_endpoint(args.endpoint))
                rows = await outbox.export(endpoint)
                await anyio.Path(args.export).write_text("".join(f"{row}\n" for row in rows))
                others = first.pending - len(rows)
                left_out = f"; {others} queued for other endpoints left out" if others else ""
                console.print(
                    f"Exported {counted(len(rows), 'pending event')} for {endpoint} to "
                    f"{args.export}{left_out}.",
                    highlight=False,
                    markup=False,
                )
            dead_before = first.dead
            if args.drain:
                async with Revenue(
                    _token(args).reveal(), endpoint=args.endpoint, outbox=args.path
                ) as revenue:
                    before = await revenue.outbox_size()
                    left = await revenue.flush(timeout=args.timeout)
                after = await outbox.stats()
                buried, others = after.dead - dead_before, after.pending - left
                delivered = before - left - buried
                elsewhere = f"; {others} queued for other endpoints, left alone" if others else ""
                console.print(
                    f"Delivered {counted(delivered, 'event')}; {buried} refused for good "
                    f"(dead letters); {left} still waiting{elsewhere}.",
                    highlight=False,
                )
            stats = await outbox.stats()
            dead = await outbox.dead_letters()
        finally:
            await outbox.close()
        oldest = (
            datetime.fromtimestamp(stats.oldest, UTC).isoformat(timespec="seconds")
            if stats.oldest is not None
            else "-"
        )
        console.print(
            f"{counted(stats.pending, 'event')} waiting (oldest queued {oldest}), "
            f"{counted(stats.dead, 'dead letter')}.",
            highlight=False,
        )
        for endpoint, count in stats.elsewhere.items():
            console.print(f"  {count} of them queued for {endpoint}", highlight=False, markup=False)
        for letter in dead[-20:]:
            kind = letter.event_type or "-"
            console.print(
                f"dead: {letter.transaction_id} ({kind}): {letter.error}",
                highlight=False,
                markup=False,
            )
        refused = args.drain and stats.dead > dead_before
        return 1 if args.drain and (left or refused) else 0  # others' events are not its own

    return anyio.run(main)


def _run_demo(args: argparse.Namespace, console: Console) -> int:
    from ._demo import run_demo

    return run_demo(args, console)


COMMANDS: dict[str, Callable[[argparse.Namespace, Console], int]] = {
    "outbox": run_outbox,
    "backfill": run_backfill,
    "validate": run_validate,
    "demo": _run_demo,
}


def run(name: str, args: argparse.Namespace) -> int:
    """Run command *name*; a configuration or I/O problem is one line, not a traceback.

    Output is wrapped for a terminal only: to a pipe or a file, each message is
    one line, which a script or a search can take whole.
    """
    console = Console()
    console.soft_wrap = not console.is_terminal
    errors = Console(stderr=True, soft_wrap=True, highlight=False)
    try:
        return COMMANDS[name](args, console)
    # An OutboxError is its file's fault (damaged, unreadable, locked), not Pulsora's.
    except (ConfigurationError, OutboxError, OSError) as exc:
        message = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        where = f" ({exc.filename})" if isinstance(exc, OSError) and exc.filename else ""
        errors.print(scrub(f"error: {message}{where}"), markup=False)
        return 2
    except UnicodeDecodeError as exc:
        errors.print(f"error: the input is not UTF-8 text ({exc.reason} at byte {exc.start})")
        return 2
    except _sqlite_errors() as exc:
        errors.print(f"error: not a usable SQLite file: {exc}", markup=False)
        return 2
    except PulsoraError as exc:
        errors.print(scrub(f"error: {exc}"), markup=False)
        return 1
    except KeyboardInterrupt:  # backfill says what it did; the others had nothing to say
        errors.print("Interrupted.")
        return 130


def _sqlite_errors() -> tuple[type[Exception], ...]:
    """SQLite's errors, once a command has loaded ``sqlite3``: until then none can be raised."""
    sqlite3 = sys.modules.get("sqlite3")
    return () if sqlite3 is None else (sqlite3.DatabaseError,)
