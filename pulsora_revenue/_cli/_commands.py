"""The commands ``backfill``, ``validate``, ``demo`` and ``outbox`` (the ``cli`` extra).

``sqlite3`` is imported by the commands that use it, not here: ``validate`` goes without.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
from collections.abc import Callable
from contextlib import closing
from decimal import Decimal
from pathlib import Path

import anyio
import httpx
from rich.console import Console

from .._client import Revenue
from .._config import Token, hide, resolve_endpoint, resolve_token
from .._convert import to_event
from .._errors import ConfigurationError, OutboxError, PulsoraError, ValidationError
from ._rows import count_rows, guess_format, opened, read


def run_backfill(args: argparse.Namespace, console: Console) -> int:
    """``pulsora-revenue backfill FILE``: exit 0 only if nothing failed or was invalid.

    Every option is checked, and the input opened, before any file is written:
    a refused run changes neither the checkpoint nor the failures file.
    """
    from ._backfill import Tally, backfill, replacing
    from ._checkpoint import Checkpoint
    from ._console import Display, report_table

    token = _token(args)
    revenue = Revenue(token.reveal(), endpoint=args.endpoint)
    form = guess_format(args.file, args.format)
    stem = "pulsora-backfill" if args.file == "-" else args.file  # stdin: the current folder
    checkpoint_path = Path(args.checkpoint or f"{stem}.checkpoint.sqlite")
    failures_path = Path(args.failures or f"{stem}.failures.jsonl")
    if args.file != "-" and failures_path.resolve() == Path(args.file).resolve():
        raise ConfigurationError("--failures must not be the input file")
    total = count_rows(args.file, form)
    rate = args.rate[0] / args.rate[1] if args.rate else None
    tally = Tally()
    with (
        opened(args.file) as handle,
        replacing(failures_path) as failures,
        closing(Checkpoint(checkpoint_path, endpoint=revenue.endpoint, token=token)) as checkpoint,
    ):
        with Display(console, total=total, tally=tally) as display:

            async def main() -> None:
                async with revenue:
                    await backfill(
                        revenue,
                        read(handle, form),
                        checkpoint=checkpoint,
                        failures=failures,
                        tally=tally,
                        concurrency=args.concurrency,
                        rate_limit=rate,
                        on_progress=display.update if args.progress else None,
                    )

            try:
                anyio.run(main)
            except KeyboardInterrupt:  # what was found so far still replaces the failures
                console.print(
                    f"\nInterrupted: {tally.sent} sent in this run, {len(checkpoint)} done "
                    f"in all. Run the same command again to resume ({checkpoint_path}).",
                    highlight=False,
                )
                return 130
        console.print(report_table(tally))
    bad = tally.invalid + tally.failed
    if bad:
        console.print(f"{bad} rows went to {failures_path}; fix them and backfill that file.")
    return 0 if tally.ok else 1


def run_validate(args: argparse.Namespace, console: Console) -> int:
    """``pulsora-revenue validate FILE``: every problem of every bad row, with its line."""
    form = guess_format(args.file, args.format)
    rows = bad = 0
    with opened(args.file) as handle:
        for row in read(handle, form):
            rows += 1
            problems = [row.problem] if row.fields is None else _problems(row.fields)
            if problems:
                bad += 1
                for problem in problems:
                    console.print(f"line {row.line}: {problem}", highlight=False, markup=False)
    verdict = "all valid" if not bad else f"{bad} invalid"
    console.print(f"{rows} rows checked, {verdict}.", highlight=False)
    return 1 if bad else 0


def _problems(fields: dict[str, object]) -> list[str]:
    try:
        to_event(fields, {})
    except ValidationError as exc:
        return [f"{e.path}: {e.message}" for e in exc.errors]
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


def run_demo(args: argparse.Namespace, console: Console) -> int:
    """``pulsora-revenue demo``: the emulator, a generated backfill, and its summary."""
    from .._emulator._app import create_app, serve_in_thread

    folder = Path(args.dir) if args.dir else Path(tempfile.mkdtemp(prefix="pulsora-demo-"))
    folder.mkdir(parents=True, exist_ok=True)
    db, sample = folder / "pulsora-demo.sqlite", folder / "payments.jsonl"
    checkpoint = folder / "payments.checkpoint.sqlite"
    for old in (db, checkpoint):  # every demo starts afresh (its emulator, on a new port)
        for path in (old, old.with_name(f"{old.name}-wal"), old.with_name(f"{old.name}-shm")):
            path.unlink(missing_ok=True)
    written = write_sample(sample, args.events, random.Random(args.seed))
    console.print(f"Generated {written} payments in {sample} (a few invalid, a few repeated).")
    with serve_in_thread(create_app(db)) as url:
        console.print(f"Pulsora emulator running at {url}/")
        httpx.post(f"{url}/api/faults", json=_STORM).raise_for_status()
        console.print("Scripted: a burst of 429s (Retry-After: 1) and 503s at the start.\n")
        ns = argparse.Namespace(
            file=str(sample),
            format="jsonl",
            token_file=None,
            endpoint=f"{url}/api/ingest",
            checkpoint=str(checkpoint),
            failures=str(folder / "payments.failures.jsonl"),
            concurrency=8,
            rate=None,
            progress=True,
            token="sec_demo_0000000000",
        )
        code = run_backfill(ns, console)
        console.print(f"\nThe events, totals and rejections: {url}/")
        if args.keep:
            console.print("Serving until Ctrl-C.")
            _wait_for_ctrl_c()
    console.print(
        f"Browse them again with: pulsora-revenue dev --db {db}  (then http://127.0.0.1:8787/)",
        highlight=False,
    )
    return 0 if code in (0, 1) else code  # the invalid rows are there on purpose


_STORM = {
    "faults": [{"status": 429, "retry_after": 1}] * 4 + [{"status": 503}] * 6,
}


def write_sample(path: Path, count: int, rng: random.Random) -> int:
    """Write *count* plausible payments, about 1% invalid and 1% repeated."""
    kinds = ["purchase"] * 6 + ["subscription", "renewal", "renewal", "refund"]
    with path.open("w", encoding="utf-8") as out:
        for n in range(count):
            kind = rng.choice(kinds)
            amount = f"{rng.randint(5, 300)}.{rng.randint(0, 99):02d}"
            row: dict[str, object] = {
                "visitor_fingerprint": f"fp_{rng.getrandbits(48):012x}",
                "session_id": f"sess_{rng.getrandbits(40):010x}",
                "customer_id": f"cus_{rng.randint(1, count // 3 + 1):06d}",
                "amount": f"-{amount}" if kind == "refund" else amount,
                "currency": rng.choice(["usd", "usd", "eur", "gbp", "jpy"]),
                "transaction_id": f"pi_demo_{n:07d}",
                "payment_processor": "stripe",
                "event_type": kind,
            }
            if row["currency"] == "jpy":  # no decimals in yen
                row["amount"] = str((Decimal(str(row["amount"])) * 150).to_integral_value())
            if kind == "subscription":
                row["mrr_impact"] = row["amount"]
            if n % 97 == 13:
                row["amount"] = "-1" if kind != "refund" else "1"  # invalid: wrong sign
            if n % 89 == 7 and n > 0:
                row["transaction_id"] = f"pi_demo_{n - 1:07d}"  # a repeat of the row before
                row["event_type"] = "purchase"
            out.write(json.dumps(row) + "\n")
    return count


def _wait_for_ctrl_c() -> None:
    import time

    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass


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
                    f"Exported {len(rows)} pending events for {endpoint} to {args.export}"
                    f"{left_out}.",
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
                    f"Delivered {delivered} events; {buried} refused for good (dead letters); "
                    f"{left} still waiting{elsewhere}."
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
            f"{stats.pending} events waiting (oldest queued {oldest}), {stats.dead} dead letters."
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


COMMANDS: dict[str, Callable[[argparse.Namespace, Console], int]] = {
    "outbox": run_outbox,
    "backfill": run_backfill,
    "validate": run_validate,
    "demo": run_demo,
}


def run(name: str, args: argparse.Namespace) -> int:
    """Run command *name*; a configuration or I/O problem is one line, not a traceback."""
    console = Console()
    errors = Console(stderr=True, soft_wrap=True, highlight=False)
    try:
        return COMMANDS[name](args, console)
    # An OutboxError is its file's fault (damaged, unreadable, locked), not Pulsora's.
    except (ConfigurationError, OutboxError, OSError) as exc:
        message = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        where = f" ({exc.filename})" if isinstance(exc, OSError) and exc.filename else ""
        errors.print(f"error: {message}{where}", markup=False)
        return 2
    except UnicodeDecodeError as exc:
        errors.print(f"error: the input is not UTF-8 text ({exc.reason} at byte {exc.start})")
        return 2
    except _sqlite_errors() as exc:
        errors.print(f"error: not a usable SQLite file: {exc}", markup=False)
        return 2
    except PulsoraError as exc:
        errors.print(f"error: {exc}", markup=False)
        return 1


def _sqlite_errors() -> tuple[type[Exception], ...]:
    """SQLite's errors, once a command has loaded ``sqlite3``: until then none can be raised."""
    sqlite3 = sys.modules.get("sqlite3")
    return () if sqlite3 is None else (sqlite3.DatabaseError,)
