"""The emulator over HTTP: the ingest contract, its page and test endpoints, on Starlette.

``pulsora-revenue dev`` serves it, and ``serve_in_thread`` for ``pulsora-revenue
demo``, ``pulsora_revenue.testing.serve_emulator`` and our tests. Needs the
``server`` extra (Starlette and uvicorn).
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import AsyncIterator, Collection, Iterator
from contextlib import asynccontextmanager, contextmanager
from decimal import Decimal
from pathlib import Path
from typing import Any

import anyio
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from .. import _json
from . import _page
from ._contract import MAX_BODY_BYTES, Answer, Ingest, RateLimit
from ._database import SQLiteStore
from ._faults import Fault, FaultSchedule, respond

logger = logging.getLogger("pulsora_revenue.dev")

INGEST_PATH = "/api/ingest"


def json_response(value: Any, status: int = 200) -> Response:
    """A JSON response whose Decimals keep their exact digits."""
    return Response(_json.dumps(value), status, media_type="application/json")


class IngestEndpoint:
    """``POST /api/ingest`` as a raw ASGI app, so that it can drop a connection."""

    def __init__(self, ingest: Ingest, schedule: FaultSchedule) -> None:
        self.ingest = ingest
        self.schedule = schedule

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive)
        if request.method != "POST":
            await json_response({"error": "Use POST"}, 405)(scope, receive, send)
            return
        body = await _read_body(request)
        answer = await respond(
            self.ingest, self.schedule, request.headers, body, clock=anyio.current_time
        )
        if answer is None:
            logger.info("POST %s dropped without an answer (scripted)", INGEST_PATH)
            await _drop(send)
            return
        _log(answer, body)
        response = Response(
            answer.encode(), answer.status, dict(answer.headers), media_type="application/json"
        )
        await response(scope, receive, send)


async def _read_body(request: Request) -> bytes:
    """Read at most one byte more than the limit, so that huge bodies are refused cheaply."""
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        chunks.append(chunk)
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            break
    return b"".join(chunks)


async def _drop(send: Send) -> None:
    """Start an answer and end it half-way: the client sees the connection break."""
    await send(
        {
            "type": "http.response.start",
            "status": 202,
            "headers": [(b"content-type", b"application/json"), (b"content-length", b"64")],
        }
    )


def _log(answer: Answer, body: bytes) -> None:
    outcome = answer.message or "accepted"
    logger.info("POST %s %d %s (%d bytes)", INGEST_PATH, answer.status, outcome, len(body))


class _QuietDrops(logging.Filter):
    """Hide uvicorn's complaint about the answers we drop on purpose."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "without completing response" not in record.getMessage()


#: One filter, so that each app created adds nothing more (``addFilter`` skips a repeat).
_QUIET_DROPS = _QuietDrops()


def create_app(
    db: str | Path,
    *,
    tokens: Collection[str] | None = None,
    rate_limit: tuple[int, float] | None = None,
    chaos: float = 0.0,
) -> Starlette:
    """Return the emulator's Starlette app, with its database in the SQLite file *db*."""
    database = SQLiteStore(db)
    limit = RateLimit(*rate_limit) if rate_limit is not None else None
    ingest = Ingest(database, tokens=tokens, rate_limit=limit)
    schedule = FaultSchedule(chaos=chaos)
    logging.getLogger("uvicorn.error").addFilter(_QUIET_DROPS)

    async def page(request: Request) -> Response:
        endpoint = str(request.url_for("ingest"))
        asked = request.query_params.get("refresh")
        try:
            refresh = None if asked is None else _page.refresh_seconds(asked)
        except ValueError as exc:
            return PlainTextResponse(str(exc), 400)
        return HTMLResponse(_page.render(database.summary(), endpoint=endpoint, refresh=refresh))

    async def events(request: Request) -> Response:
        if request.method == "DELETE":
            database.clear()
            return json_response({"success": True})
        transaction_id = request.query_params.get("transaction_id")
        return json_response(database.events(transaction_id))

    async def script_faults(request: Request) -> Response:
        if request.method == "DELETE":
            schedule.clear()
            return json_response({"success": True})
        try:  # read all of it first: a refused script changes nothing
            spec = _json.loads(await request.body())
            scripted = [Fault.from_json(f) for f in spec.get("faults", [])]
            chaos = _chaos(spec["chaos"]) if "chaos" in spec else None
            outage = None
            if "outage" in spec:
                fields = dict(spec["outage"])
                seconds = float(fields.pop("seconds"))
                outage = Fault.from_json(fields), seconds
        except RecursionError:  # json.loads of a body nested about 1,000 deep
            return json_response({"error": "Bad fault script: it nests too deeply."}, 400)
        except (ValueError, TypeError, AttributeError, KeyError, OverflowError) as exc:
            return json_response({"error": f"Bad fault script: {exc}"}, 400)
        schedule.script(scripted)
        if chaos is not None:
            schedule.chaos = chaos
        if outage is not None:
            schedule.outage(outage[0], seconds=outage[1])
        return json_response({"success": True, "pending": schedule.pending})

    async def health(request: Request) -> Response:
        return json_response({"ok": True, "events": database.count()})

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        try:
            yield
        finally:
            database.close()

    return Starlette(
        routes=[
            Route("/", page),
            Route(INGEST_PATH, IngestEndpoint(ingest, schedule), name="ingest", methods=["POST"]),
            Route("/api/events", events, methods=["GET", "DELETE"]),
            Route("/api/faults", script_faults, methods=["POST", "DELETE"]),
            Route("/api/health", health),
        ],
        lifespan=lifespan,
    )


def _chaos(value: object) -> float:
    if isinstance(value, int | float | Decimal) and not isinstance(value, bool) and 0 <= value <= 1:
        return float(value)
    raise ValueError(f"chaos must be a number from 0 to 1, not {value!r}")


@contextmanager
def serve_in_thread(app: Starlette, host: str = "127.0.0.1", port: int = 0) -> Iterator[str]:
    """Serve *app* with uvicorn on *port* (default: a free one) of *host*, in a thread.

    Yield the base URL once the server accepts connections; stop it on exit.
    """
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        port = sock.getsockname()[1]
        config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="on")
        server = uvicorn.Server(config)
        thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
        thread.start()
        try:
            _wait_until_started(server, thread)
            yield f"http://{host}:{port}"
        finally:
            server.should_exit = True
            thread.join(10)
    finally:
        sock.close()


def _wait_until_started(server: uvicorn.Server, thread: threading.Thread) -> None:
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the emulator did not start")
        time.sleep(0.01)
