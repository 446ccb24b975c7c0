"""``serve_emulator``: the emulator over real HTTP, in a thread, for your tests.

Starlette and uvicorn (the ``server`` extra) are imported only when it is
called, so that ``pulsora_revenue.testing`` imports without them.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Collection, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import attrs


@attrs.frozen
class EmulatorServer:
    """A running emulator, as ``serve_emulator`` yields it.

    Attributes:
        url: the base URL, for the page and the ``/api/events`` and ``/api/faults``
            endpoints of ``pulsora-revenue dev``.
        endpoint: the ingest URL, to pass as ``Revenue(endpoint=...)``.
        db: the SQLite file of the events.
    """

    url: str
    endpoint: str
    db: Path


@contextmanager
def serve_emulator(
    db: str | os.PathLike[str] | None = None,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    tokens: Collection[str] | None = None,
    rate_limit: tuple[int, float] | None = None,
) -> Iterator[EmulatorServer]:
    """Serve the emulator over HTTP in a background thread while a block runs.

    It is the ``pulsora-revenue dev`` app (the contract of ``FakePulsora``, over a
    real socket). The server has stopped when the block ends. Needs the ``server``
    extra (Starlette and uvicorn).

    Args:
        db: the SQLite file that keeps the events; None (the default) for a temporary
            one, removed when the block ends.
        host: the IPv4 address to listen on; loopback by default.
        port: the port to listen on; 0 (the default) for a free one.
        tokens: the valid tokens, as for ``FakePulsora``; None for any ``sec_`` or
            ``pub_`` token.
        rate_limit: ``(requests, seconds)``, as for ``FakePulsora``; None for no limit.

    Yields:
        The ``EmulatorServer``, with its URLs and database.

    Raises:
        ImportError: when the ``server`` extra is not installed.
    """
    try:
        from .._emulator._app import INGEST_PATH, create_app, serve_in_thread
    except ImportError as exc:
        raise ImportError(
            f"serve_emulator needs the server extra ({exc.name} is missing): "
            "pip install 'pulsora-revenue[server]'",
            name=exc.name,
        ) from exc
    with ExitStack() as stack:  # unwound in reverse: the server stops, then the folder goes
        if db is None:
            folder = stack.enter_context(tempfile.TemporaryDirectory(prefix="pulsora-emulator-"))
            db = Path(folder, "events.sqlite")
        app = create_app(Path(db), tokens=tokens, rate_limit=rate_limit)
        url = stack.enter_context(serve_in_thread(app, host, port))
        yield EmulatorServer(url=url, endpoint=f"{url}{INGEST_PATH}", db=Path(db))
