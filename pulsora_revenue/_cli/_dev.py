"""``pulsora-revenue dev``: the emulator over HTTP, in the foreground, until Ctrl-C.

Needs the ``server`` extra; loaded only when the command runs.
"""

from __future__ import annotations

import argparse
import errno
import logging
import signal
import socket
import sqlite3
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

import uvicorn

from .._config import is_loopback
from .._emulator._app import create_app


def run_dev(args: argparse.Namespace) -> int:
    """Serve the emulator; print where only once its port is bound. Exit code 2 if it cannot."""
    problem = _problem(args)
    if problem:
        print(problem, file=sys.stderr)
        return 2
    if not is_loopback(args.host):
        print(f"warning: serving on {args.host}, not only on this machine", file=sys.stderr)
    try:
        sock = bind(args.host, args.port)
    except OSError as exc:
        print(_cannot_listen(args.host, args.port, exc), file=sys.stderr)
        return 2
    with sock:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
        try:
            app = create_app(
                args.db, tokens=args.token, rate_limit=args.rate_limit, chaos=args.chaos
            )
        except (sqlite3.Error, OSError) as exc:
            print(f"error: cannot use {args.db} as the emulator's database: {exc}", file=sys.stderr)
            return 2
        host = f"[{args.host}]" if ":" in args.host else args.host
        base = f"http://{host}:{sock.getsockname()[1]}"
        print(f"Pulsora ingest emulator: {base}/  (POST events to {base}/api/ingest)", flush=True)
        print(f"Events are stored in {args.db}. Stop with Ctrl-C.", flush=True)
        config = uvicorn.Config(app, access_log=False, log_level="warning")
        with exit_quietly_on_signals():
            uvicorn.Server(config).run(sockets=[sock])
    print("Stopped.", flush=True)
    return 0


def _problem(args: argparse.Namespace) -> str | None:
    if not 0 <= args.chaos <= 1:
        return "error: --chaos must be between 0 and 1"
    if not 0 <= args.port <= 65535:
        return f"error: --port must be between 0 and 65535, not {args.port}"
    return None


def bind(host: str, port: int) -> socket.socket:
    """A socket listening on *port* of *host*, as uvicorn would bind it."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(2048)
    except OSError:
        sock.close()
        raise
    return sock


def _cannot_listen(host: str, port: int, exc: OSError) -> str:
    if exc.errno == errno.EADDRINUSE:
        return f"error: port {port} is in use; pass --port"
    return f"error: cannot listen on {host} port {port}: {exc.strerror or exc}"


class _Stop(Exception):
    """Raised by our signal handler once uvicorn has shut down and re-raised the signal."""


@contextmanager
def exit_quietly_on_signals() -> Iterator[None]:
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
