"""The ``pulsora-revenue`` command line: parse the arguments, run the command."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from ._parser import build_parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit code."""
    args = build_parser().parse_args(argv)
    if args.command == "dev":
        return _dev(args)
    return _run(args.command, args)


def _run(name: str, args: argparse.Namespace) -> int:
    try:
        from ._commands import run
    except ImportError as exc:
        return _missing("cli", name, exc)
    return run(name, args)


def _dev(args: argparse.Namespace) -> int:
    try:
        import starlette  # noqa: F401  # the server extra, checked even once ._dev is loaded
        import uvicorn  # noqa: F401

        from ._dev import run_dev
    except ImportError as exc:
        return _missing("server", "dev", exc)
    return run_dev(args)


def _missing(extra: str, name: str, exc: ImportError) -> int:
    print(
        f"pulsora-revenue {name} needs the {extra} extra ({exc.name} is missing): "
        f"pip install 'pulsora-revenue[{extra}]'",
        file=sys.stderr,
    )
    return 2
