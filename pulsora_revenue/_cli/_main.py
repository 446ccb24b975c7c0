"""The ``pulsora-revenue`` command line."""

from __future__ import annotations

import argparse
import logging
import re
import signal
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from types import FrameType
from typing import Any

from .._config import is_loopback

_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0}


def parse_rate(text: str) -> tuple[int, float]:
    """Parse ``2000/h``, ``5/s`` or ``100/60`` into (requests, seconds)."""
    match = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+(?:\.\d+)?|[smh])\s*", text)
    if match is None or int(match[1]) < 1:
        raise argparse.ArgumentTypeError(
            f"expected REQUESTS/PERIOD such as 2000/h, 5/s or 100/60, not {text!r}"
        )
    period = _UNITS.get(match[2]) or float(match[2])
    if period <= 0:
        raise argparse.ArgumentTypeError(f"the period must be positive in {text!r}")
    return int(match[1]), period


def parse_positive(text: str) -> int:
    """Parse a count of 1 or more, so that a bad option is refused before any file is touched."""
    try:
        number = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, not {text!r}") from None
    if number < 1:
        raise argparse.ArgumentTypeError(f"must be 1 or more, not {number}")
    return number


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pulsora-revenue",
        description="Record revenue in Pulsora, and emulate its ingest API locally.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    dev = commands.add_parser(
        "dev",
        help="run the local ingest emulator (needs the 'server' extra)",
        description="Run Pulsora's ingest API locally, storing events in SQLite, with a "
        "page at / that shows totals, events and rejected requests.",
        epilog="examples:\n  pulsora-revenue dev\n"
        "  pulsora-revenue dev --port 9000 --db /tmp/events.sqlite --rate-limit 2000/h",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    dev.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    dev.add_argument("--port", type=int, default=8787, help="port (default 8787)")
    dev.add_argument(
        "--db", default="pulsora-dev.sqlite", help="SQLite file (default ./pulsora-dev.sqlite)"
    )
    dev.add_argument(
        "--token",
        action="append",
        metavar="TOKEN",
        help="accept only this token (repeatable); by default any sec_ or pub_ token",
    )
    dev.add_argument(
        "--rate-limit", type=parse_rate, metavar="N/PERIOD", help="answer 429 above this rate"
    )
    dev.add_argument(
        "--chaos", type=float, default=0.0, metavar="RATE", help="share of requests that fail"
    )
    dev.set_defaults(run=_dev)
    _add_backfill(commands)
    _add_validate(commands)
    _add_demo(commands)
    _add_outbox(commands)
    return parser


def _add_outbox(commands: Any) -> None:
    outbox = commands.add_parser(
        "outbox",
        help="show, drain or export an outbox file",
        description="Show how many events wait in the outbox PATH, since when, for which "
        "endpoints, and its dead letters (events Pulsora refused for good, with the error). "
        "--drain delivers now what waits for the endpoint (--endpoint, $PULSORA_ENDPOINT or "
        "Pulsora; token from PULSORA_SECRET_TOKEN or --token-file); --export writes those "
        "events as JSON Lines, which backfill takes. Events queued for another endpoint are "
        "left alone.",
        epilog="examples:\n  pulsora-revenue outbox revenue-outbox.sqlite\n"
        "  pulsora-revenue outbox revenue-outbox.sqlite --drain\n"
        "  pulsora-revenue outbox revenue-outbox.sqlite --export pending.jsonl",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    outbox.add_argument("path", metavar="PATH")
    outbox.add_argument(
        "--drain", action="store_true", help="deliver the endpoint's waiting events now"
    )
    outbox.add_argument("--timeout", type=float, default=60.0, help="for --drain (60 s)")
    outbox.add_argument("--export", metavar="FILE", help="write the waiting events to FILE")
    _add_connection(outbox)
    outbox.set_defaults(run=lambda args: _run("outbox", args))


def _add_backfill(commands: Any) -> None:
    backfill = commands.add_parser(
        "backfill",
        help="send every event of a JSON Lines or CSV file, resumably",
        description="Stream FILE (JSON Lines or CSV; - for standard input) through "
        "track_many with a progress bar. The token comes from PULSORA_SECRET_TOKEN or "
        "--token-file (never the command line). A checkpoint of the accepted events lets "
        "a re-run after Ctrl-C or a crash skip them; invalid and failed rows go to a "
        "failures file that backfill takes again once fixed. From standard input (-) they are "
        "./pulsora-backfill.checkpoint.sqlite and ./pulsora-backfill.failures.jsonl in the "
        "current folder, shared by every piped run there: pass --checkpoint and --failures "
        "to keep runs apart. Exit code 0 only if every row was sent (or already recorded).",
        epilog="examples:\n"
        "  pulsora-revenue backfill payments.jsonl\n"
        "  pulsora-revenue backfill export.csv --rate 2000/h --concurrency 4\n"
        "  zcat old.jsonl.gz | pulsora-revenue backfill - --checkpoint old.checkpoint.sqlite\n"
        "  pulsora-revenue backfill payments.jsonl.failures.jsonl  # after fixing them",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    backfill.add_argument("file", metavar="FILE")
    _add_format(backfill)
    backfill.add_argument(
        "--concurrency", type=parse_positive, default=8, metavar="N", help="requests at once (8)"
    )
    backfill.add_argument(
        "--rate", type=parse_rate, metavar="N/PERIOD", help="at most this rate, e.g. 2000/h"
    )
    _add_connection(backfill)
    backfill.add_argument(
        "--checkpoint",
        metavar="PATH",
        help="default FILE.checkpoint.sqlite (for -, in the current folder)",
    )
    backfill.add_argument(
        "--failures",
        metavar="PATH",
        help="default FILE.failures.jsonl (for -, in the current folder); replaced when the "
        "run ends",
    )
    backfill.add_argument(
        "--no-progress", dest="progress", action="store_false", help="no progress display"
    )
    backfill.set_defaults(run=lambda args: _run("backfill", args))


def _add_validate(commands: Any) -> None:
    validate = commands.add_parser(
        "validate",
        help="check every row of a file without sending anything",
        description="Check every row of FILE (JSON Lines or CSV; - for standard input) and "
        "print each problem of each bad row with its line number. Exit code 1 if any.",
        epilog="examples:\n  pulsora-revenue validate payments.jsonl\n"
        "  pulsora-revenue validate export.csv",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    validate.add_argument("file", metavar="FILE")
    _add_format(validate)
    validate.set_defaults(run=lambda args: _run("validate", args))


def _add_demo(commands: Any) -> None:
    demo = commands.add_parser(
        "demo",
        help="backfill a generated sample into the local emulator, and show the result",
        description="Start the emulator on a free loopback port, generate a sample of "
        "payments (a few invalid, a few repeated), script a burst of 429s and 503s, "
        "backfill the sample with the progress bar, and print the summary.",
        epilog="examples:\n  pulsora-revenue demo\n  pulsora-revenue demo --keep",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    demo.add_argument("--events", type=int, default=3000, help="how many payments (3000)")
    demo.add_argument(
        "--dir",
        metavar="PATH",
        help="where to write (default a temporary folder); a demo there before is replaced",
    )
    demo.add_argument("--seed", type=int, default=7, help="for the generated sample")
    demo.add_argument("--keep", action="store_true", help="keep the emulator running after")
    demo.set_defaults(run=lambda args: _run("demo", args))


def _add_connection(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--endpoint", help="ingest URL (default $PULSORA_ENDPOINT or Pulsora)")
    parser.add_argument("--token-file", metavar="PATH", help="read the secret token from PATH")


def _add_format(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--format", choices=["jsonl", "csv"], help="default: by the file name (.csv or not)"
    )


def _run(name: str, args: argparse.Namespace) -> int:
    try:
        from ._commands import run
    except ImportError as exc:
        print(
            f"pulsora-revenue {name} needs the cli extra ({exc.name} is missing): "
            "pip install 'pulsora-revenue[cli]'",
            file=sys.stderr,
        )
        return 2
    return run(name, args)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit code."""
    args = build_parser().parse_args(argv)
    code: int = args.run(args)
    return code


def _dev(args: argparse.Namespace) -> int:
    import sqlite3  # here, not above: --help and the other commands go without it

    try:
        import uvicorn

        from .._emulator._app import create_app
    except ImportError as exc:
        print(
            f"pulsora-revenue dev needs the server extra ({exc.name} is missing): "
            "pip install 'pulsora-revenue[server]'",
            file=sys.stderr,
        )
        return 2
    if not 0 <= args.chaos <= 1:
        print("--chaos must be between 0 and 1", file=sys.stderr)
        return 2
    if not 0 <= args.port <= 65535:
        print(f"--port must be between 0 and 65535, not {args.port}", file=sys.stderr)
        return 2
    if not is_loopback(args.host):
        print(f"warning: serving on {args.host}, not only on this machine", file=sys.stderr)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    try:
        app = create_app(args.db, tokens=args.token, rate_limit=args.rate_limit, chaos=args.chaos)
    except (sqlite3.Error, OSError) as exc:
        print(f"cannot use {args.db} as the emulator's database: {exc}", file=sys.stderr)
        return 2
    base = f"http://{args.host}:{args.port}"
    print(f"Pulsora ingest emulator: {base}/  (POST events to {base}/api/ingest)", flush=True)
    print(f"Events are stored in {args.db}. Stop with Ctrl-C.", flush=True)
    with _exit_quietly_on_signals():
        uvicorn.run(app, host=args.host, port=args.port, access_log=False, log_level="warning")
    print("Stopped.", flush=True)
    return 0


class _Stop(Exception):
    """Raised by our signal handler once uvicorn has shut down and re-raised the signal."""


@contextmanager
def _exit_quietly_on_signals() -> Iterator[None]:
    """Let Ctrl-C and SIGTERM end the server with exit code 0.

    uvicorn shuts down gracefully on these signals, then raises the signal again
    with the handlers it found; ours turns that into a clean return.
    """

    def stop(signum: int, frame: FrameType | None) -> None:
        raise _Stop

    wanted = (signal.SIGINT, signal.SIGTERM)
    previous = {s: signal.signal(s, stop) for s in wanted}
    try:
        yield
    except _Stop:
        pass
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)


def _version() -> str:
    from importlib.metadata import version

    return version("pulsora-revenue")
