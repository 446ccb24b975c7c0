"""The ``pulsora-revenue`` arguments: every command, its options, and how a value is read.

Options are never abbreviated (``--token`` would be taken for ``--token-file``),
and no error shows a token that was typed (``_redaction``).
"""

from __future__ import annotations

import argparse
import math
import re
from typing import Any, NoReturn

from .._config import ENDPOINT_ENV, TOKEN_ENV
from ._redaction import hint, scrub

_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0}


class Parser(argparse.ArgumentParser):
    """An argument parser that takes no abbreviation, and hides tokens in its errors."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(allow_abbrev=False, **kwargs)

    def error(self, message: str) -> NoReturn:
        """Print the usage and *message*, with any token in it redacted, and exit with 2."""
        super().error(hint(scrub(message)))


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


def parse_seconds(text: str) -> float:
    """Parse a duration of 0 seconds or more."""
    try:
        seconds = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of seconds, not {text!r}") from None
    if not 0 <= seconds < math.inf:
        raise argparse.ArgumentTypeError(f"must be 0 seconds or more, not {text}")
    return seconds


def parse_columns(text: str) -> tuple[str, ...]:
    """Parse ``plan,seats`` into column names, in order, each once."""
    names = [name.strip() for name in text.split(",")]
    if not all(names):
        raise argparse.ArgumentTypeError(
            f"expected column names separated by commas, such as plan,seats, not {text!r}"
        )
    return tuple(dict.fromkeys(names))


def build_parser() -> Parser:
    """The parser of every command; ``args.command`` names the one to run."""
    parser = Parser(
        prog="pulsora-revenue",
        description="Record revenue in Pulsora, and emulate its ingest API locally.",
        epilog=f"The secret token comes from the {TOKEN_ENV} environment variable, or a "
        "file given with --token-file PATH: never the command line.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_dev(commands)
    _add_backfill(commands)
    _add_validate(commands)
    _add_demo(commands)
    _add_outbox(commands)
    return parser


def _add_dev(commands: Any) -> None:
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


def _add_outbox(commands: Any) -> None:
    outbox = commands.add_parser(
        "outbox",
        help="show, drain or export an outbox file",
        description="Show how many events wait in the outbox PATH, since when, for which "
        "endpoints, and its dead letters (events Pulsora refused for good, with the error). "
        f"--drain delivers now what waits for the endpoint (--endpoint, ${ENDPOINT_ENV} or "
        f"Pulsora; token from {TOKEN_ENV} or --token-file); --export "
        "writes those events as JSON Lines, which backfill takes. Events queued for another "
        "endpoint are left alone.",
        epilog="examples:\n  pulsora-revenue outbox revenue-outbox.sqlite\n"
        "  pulsora-revenue outbox revenue-outbox.sqlite --drain\n"
        "  pulsora-revenue outbox revenue-outbox.sqlite --export pending.jsonl",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    outbox.add_argument("path", metavar="PATH")
    outbox.add_argument(
        "--drain", action="store_true", help="deliver the endpoint's waiting events now"
    )
    outbox.add_argument(
        "--timeout", type=parse_seconds, default=60.0, metavar="SECONDS", help="for --drain (60)"
    )
    outbox.add_argument("--export", metavar="FILE", help="write the waiting events to FILE")
    _add_connection(outbox)


def _add_backfill(commands: Any) -> None:
    backfill = commands.add_parser(
        "backfill",
        help="send every event of a JSON Lines or CSV file, resumably",
        description="Stream FILE (JSON Lines or CSV; - for standard input) through "
        f"track_many with a progress bar. The token comes from {TOKEN_ENV} or "
        "--token-file (never the command line). A checkpoint of the accepted events lets "
        "a re-run after Ctrl-C or a crash skip them; invalid and failed rows go to a "
        "failures file that backfill takes again once fixed (a failures file given as FILE "
        "is rewritten with the rows that still fail). From standard input (-) they are "
        "./pulsora-backfill.checkpoint.sqlite and ./pulsora-backfill.failures.jsonl in the "
        "current folder, shared by every piped run there: pass --checkpoint and --failures "
        "to keep runs apart. Exit code 0 only if every row was sent (or already recorded).",
        epilog="examples:\n"
        "  pulsora-revenue backfill payments.jsonl\n"
        "  pulsora-revenue backfill export.csv --rate 2000/h --concurrency 4\n"
        "  pulsora-revenue backfill export.csv --metadata-columns plan,seats\n"
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
        help="default FILE.failures.jsonl (for -, in the current folder; a failures file is "
        "its own); replaced when the run ends",
    )
    backfill.add_argument(
        "--no-progress", dest="progress", action="store_false", help="no progress display"
    )


def _add_validate(commands: Any) -> None:
    validate = commands.add_parser(
        "validate",
        help="check every row of a file without sending anything",
        description="Check every row of FILE (JSON Lines or CSV; - for standard input) and "
        "print each problem of each bad row with its line number. Exit code 1 if any.",
        epilog="examples:\n  pulsora-revenue validate payments.jsonl\n"
        "  pulsora-revenue validate export.csv --metadata-columns plan,seats",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    validate.add_argument("file", metavar="FILE")
    _add_format(validate)


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
    demo.add_argument(
        "--events", type=parse_positive, default=3000, metavar="N", help="how many payments (3000)"
    )
    demo.add_argument(
        "--dir",
        metavar="PATH",
        help="where to write (default a temporary folder); a demo there before is replaced",
    )
    demo.add_argument("--seed", type=int, default=7, help="for the generated sample")
    demo.add_argument(
        "--keep",
        action="store_true",
        help="keep serving the emulator's page until Ctrl-C, and print its link",
    )


def _add_connection(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--endpoint", help=f"ingest URL (default ${ENDPOINT_ENV} or Pulsora)")
    parser.add_argument(
        "--token-file",
        metavar="PATH",
        help=f"read the secret token from the file PATH (default: the {TOKEN_ENV} environment "
        "variable; there is no --token option, which would leave it in the shell history)",
    )


def _add_format(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--format", choices=["jsonl", "csv"], help="default: by the file name (.csv or not)"
    )
    parser.add_argument(
        "--metadata-columns",
        type=parse_columns,
        default=(),
        metavar="NAMES",
        help="CSV: send these columns (comma-separated, e.g. plan,seats) in each event's "
        "metadata; other columns that are no event field are not sent, and the run names them",
    )
    parser.add_argument(
        "--strict-columns",
        action="store_true",
        help="CSV: a column that is no event field makes every row invalid, instead of "
        "being ignored",
    )


def _version() -> str:
    from importlib.metadata import version

    return version("pulsora-revenue")
