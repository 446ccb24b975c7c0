"""Transport benchmark: track_many over httpx, httpx2 and aiohttp, against bare loops.

Run: ``python benchmarks/bench_transports.py [--count N] [--concurrency 1 8 32 64]
[--rounds R]`` for the comparison table and the issue's target ratios, or
``python benchmarks/bench_transports.py profile [--client g]`` for where ``track_many``
over plain httpx (or another stack) spends its time (pyinstrument if installed,
else cProfile).

Every client sends the same requests (~400-byte bodies, with the headers
``track_many`` sends, an ``Idempotency-Key`` included) to the same raw HTTP/1.1
server (a separate process on a free 127.0.0.1 port, on uvloop if installed,
answering 202 to every POST), at the same concurrency. The bare loops are handed
each body and key ready-made, except (e2), which encodes each event and derives
its key as it goes, as ``track_many`` must. Each measurement runs in a fresh client
process: set up the client, warm it up (connections, lazy imports), then time
``count`` requests with ``time.perf_counter`` and ``time.process_time`` (the
client's own CPU, the server being elsewhere). Clients alternate within a round
and the best of the rounds is kept: only the ratios within one run mean anything.

httpx2 cannot be handed to ``Revenue`` directly: an ``httpx2.AsyncClient`` as
``http_client=`` rejects the ``httpx.URL`` we build requests with (TypeError), and
an httpx2 transport under an ``httpx.AsyncClient`` returns an httpx2 response
stream that httpx's client refuses (AssertionError). So the httpx2 rows run in a
process where ``httpx2.alias_httpx()`` makes ``import httpx`` resolve to httpx2:
the library itself then runs on httpx2 (exceptions included).

aiohttp, httpx_aiohttp, httpx2, uvloop and pyinstrument are optional (the
``bench`` extra installs them all): the rows that need a missing one are
skipped, and say so.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import importlib.util
import json
import os
import re
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Iterator, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager, contextmanager, suppress
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING, Any, Literal, TypeVar, cast

# httpx and the library are imported inside functions, never here: a measuring
# process may first have to make ``import httpx`` resolve to httpx2.
if TYPE_CHECKING:
    from pulsora_revenue import RevenueEvent

TOKEN = "sec_benchmark_0000"
PATH = "/api/ingest"
#: A server left behind by a killed parent stops by itself after this long.
SERVER_LIFETIME = 4 * 3600.0
#: Requests sent before the timed ones, to open the connections and warm caches.
WARMUP_MIN = 200

T = TypeVar("T")
Sender = Callable[[Sequence[T]], Awaitable[None]]
Kind = Literal["track_many", "bare_httpx", "bare_aiohttp", "raw", "sender", "deliver"]


@dataclass(frozen=True)
class Client:
    """One row of the table: what sends (track_many, a bare loop), over which stack."""

    key: str
    kind: Kind
    stack: str
    httpx2: bool = False  # run with ``httpx2.alias_httpx()``
    aiohttp_transport: bool = False  # httpx over ``httpx_aiohttp.AiohttpTransport``
    needs: tuple[str, ...] = ()
    backend: Literal["httpx", "aiohttp"] = "httpx"  # ``Revenue(backend=...)``
    encodes: bool = False  # a bare loop that encodes and keys each event as it sends it
    reads: bool = True  # a bare loop that reads every answer's body, a 2xx's too

    @property
    def label(self) -> str:
        what = "track_many" if self.kind == "track_many" else "bare"
        return f"({self.key}) {what} {self.stack}"

    def payloads(self, count: int, run: str) -> Sequence[Any]:
        """What this client is given to send: events, or what it needs ready-made."""
        if self.kind in ("sender", "deliver"):
            return make_jobs(count, run)
        if self.kind == "track_many" or self.encodes:
            return make_events(count, run)
        return [(body, key) for _, body, key in make_jobs(count, run)]


AIOHTTP = ("aiohttp", "httpx_aiohttp")
CLIENTS = (
    Client("a", "track_many", "httpx"),
    Client("b", "track_many", "httpx2", httpx2=True, needs=("httpx2",)),
    Client("c", "track_many", "httpx+aiohttp", aiohttp_transport=True, needs=AIOHTTP),
    Client("c2", "track_many", "httpx2+aiohttp", True, True, ("httpx2", *AIOHTTP)),
    Client("g", "track_many", "aiohttp (speed extra)", needs=("aiohttp",), backend="aiohttp"),
    Client("d", "bare_httpx", "httpx"),
    Client("d2", "bare_httpx", "httpx2", httpx2=True, needs=("httpx2",)),
    Client("d3", "bare_httpx", "httpx+aiohttp", aiohttp_transport=True, needs=AIOHTTP),
    Client("e", "bare_aiohttp", "aiohttp", needs=("aiohttp",)),
    Client("e2", "bare_aiohttp", "aiohttp, encoding+keying", needs=("aiohttp",), encodes=True),
    Client("e3", "bare_aiohttp", "aiohttp, no 2xx body read", needs=("aiohttp",), reads=False),
    Client("f", "raw", "asyncio keep-alive (raw)"),
    # The speed path's layers, each in a bare loop: where (g)'s overhead over (e) goes.
    Client("h", "sender", "loop, our aiohttp sender", needs=("aiohttp",)),
    Client("i", "deliver", "loop, our retry loop + sender", needs=("aiohttp",)),
)
BY_KEY = {client.key: client for client in CLIENTS}
#: Target (2): each track_many row against the bare loop of its own transport.
SAME_TRANSPORT = (
    ("a", "d"),
    ("b", "d2"),
    ("c", "d3"),
    ("c", "e"),
    ("c2", "e"),
    ("g", "e"),
    ("g", "e2"),
    ("g", "e3"),
)
SPEED_PATHS = ("b", "c", "c2", "g")
#: The layers of (g), from the bottom: (e) aiohttp, (h) + our sender, (i) + the retry loop,
#: (e2) aiohttp + encoding and keying each event, (g) all of track_many; and (e3), aiohttp without
#: reading an acceptance's body, as our sender does.
LAYERS = ("e", "e3", "h", "i", "e2", "g")
PACKAGES = (
    "pulsora-revenue",
    "httpx",
    "httpcore",
    "h11",
    "anyio",
    "httpx2",
    "httpcore2",
    "aiohttp",
    "httpx-aiohttp",
    "yarl",
    "multidict",
    "uvloop",
    "pyinstrument",
)


def available(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def missing(client: Client) -> list[str]:
    return [module for module in client.needs if not available(module)]


# -- payloads -----------------------------------------------------------------------------


def rows(count: int, run: str) -> Iterator[dict[str, Any]]:
    """Generate *count* distinct, valid subscription rows of about 400 bytes encoded."""
    for n in range(count):
        digest = hashlib.sha256(f"{run}/{n}".encode()).hexdigest()
        yield {
            "visitor_fingerprint": digest[:32],
            "session_id": f"sess_{digest[32:48]}",
            "customer_id": f"cus_{digest[56:64]}{n % 983:06d}",
            "amount": f"{n % 500 + 1}.99",
            "currency": "eur",
            "transaction_id": f"pi_{run}_{n:09d}",
            "payment_processor": "stripe",
            "event_type": "subscription",
            "customer_subscription_id": f"sub_{digest[48:62]}",
            "mrr_impact": f"{n % 500 + 1}.99",
            "is_recurring": True,
            "metadata": {"plan": "pro-annual", "seats": n % 10 + 1},
        }


def make_events(count: int, run: str) -> list[RevenueEvent]:
    from pulsora_revenue import RevenueEvent

    return [RevenueEvent(**row) for row in rows(count, run)]


def make_bodies(count: int, run: str) -> list[bytes]:
    from pulsora_revenue._convert import encode

    return [encode(event) for event in make_events(count, run)]


def request_headers() -> dict[str, str]:
    """The headers ``track_many`` sends, for the bare loops: the same request on the wire."""
    from pulsora_revenue._transports import request_headers

    return request_headers(TOKEN)


def make_jobs(count: int, run: str) -> list[tuple[RevenueEvent, bytes, str]]:
    """Events with their bodies and idempotency keys, made before the clock starts."""
    from pulsora_revenue._convert import encode
    from pulsora_revenue._event import idempotency_key

    return [(event, encode(event), idempotency_key(event)) for event in make_events(count, run)]


# -- the server ---------------------------------------------------------------------------

CONTENT_LENGTH = re.compile(rb"\r\ncontent-length:[ \t]*(\d+)", re.IGNORECASE)
CHUNKED = re.compile(rb"\r\ntransfer-encoding:[^\r]*chunked", re.IGNORECASE)
CLOSE = re.compile(rb"\r\nconnection:[ \t]*close", re.IGNORECASE)
ANSWER = b'{"success":true}'
ACCEPTED = b"HTTP/1.1 202 Accepted\r\nContent-Type: application/json\r\n"
ACCEPTED += b"Content-Length: %d\r\n\r\n%s" % (len(ANSWER), ANSWER)
NOT_FOUND = b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n"
NOT_IMPLEMENTED = b"HTTP/1.1 501 Not Implemented\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
MAX_PENDING = 1 << 20


class Ingest(asyncio.Protocol):
    """Answer 202 to every POST on a keep-alive HTTP/1.1 connection (pipelining too)."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        assert self.transport is not None
        buffer = self.buffer
        buffer += data
        answers: list[bytes] = []
        start, close = 0, False
        while (end := buffer.find(b"\r\n\r\n", start)) >= 0:
            head = bytes(buffer[start:end])
            length = CONTENT_LENGTH.search(head)
            if length is None and CHUNKED.search(head):
                answers.append(NOT_IMPLEMENTED)  # every client here sends Content-Length
                close = True
                break
            stop = end + 4 + (int(length.group(1)) if length else 0)
            if len(buffer) < stop:
                break
            answers.append(ACCEPTED if head.startswith(b"POST ") else NOT_FOUND)
            start = stop
            if CLOSE.search(head):
                close = True
                break
        del buffer[:start]
        if answers:
            self.transport.write(b"".join(answers))
        if close or len(buffer) > MAX_PENDING:
            self.transport.close()


async def serve() -> None:
    """Listen on a free loopback port, print it, and serve until stdin closes.

    The parent holds the other end of stdin: when it closes it, or dies, the server
    stops; in any case after ``SERVER_LIFETIME`` seconds.
    """
    loop = asyncio.get_running_loop()
    server = await loop.create_server(Ingest, "127.0.0.1", 0, backlog=1024)
    parent = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(parent), sys.stdin)
    print(server.sockets[0].getsockname()[1], flush=True)
    async with server:
        with suppress(TimeoutError):
            await asyncio.wait_for(parent.read(), SERVER_LIFETIME)


def run_loop(main: Coroutine[Any, Any, T], *, uvloop: bool) -> T:
    """Run *main* on asyncio, or on uvloop if asked and installed."""
    if uvloop and available("uvloop"):
        import uvloop as uv  # type: ignore[import-not-found, unused-ignore]

        with asyncio.Runner(loop_factory=uv.new_event_loop) as runner:
            return runner.run(main)
    with asyncio.Runner() as runner:
        return runner.run(main)


@contextmanager
def ingest_server() -> Iterator[str]:
    """Start the server in its own process; yield its ingest URL; stop it."""
    command = [sys.executable, __file__, "_serve"]
    server = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    assert server.stdin is not None
    assert server.stdout is not None
    try:
        line = server.stdout.readline()
        if not line.strip().isdigit():
            raise RuntimeError(f"the benchmark server did not start ({line!r})")
        yield f"http://127.0.0.1:{int(line)}{PATH}"
    finally:
        server.stdin.close()  # the server's signal to stop
        try:
            server.wait(10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        server.stdout.close()


# -- the clients ----------------------------------------------------------------------------


def aiohttp_transport(concurrency: int) -> Any:
    """An ``AiohttpTransport`` whose aiohttp connector allows *concurrency* connections."""
    import httpx
    from httpx_aiohttp import (  # type: ignore[import-not-found, unused-ignore]
        AiohttpTransport,
    )

    size = max(concurrency, 100)
    return AiohttpTransport(limits=httpx.Limits(max_connections=size))


async def start_workers(concurrency: int, work: Callable[[], Coroutine[Any, Any, None]]) -> None:
    async with asyncio.TaskGroup() as group:
        for _ in range(concurrency):
            group.create_task(work())


@asynccontextmanager
async def track_many_sender(
    url: str, concurrency: int, client: Client
) -> AsyncIterator[Sender[RevenueEvent]]:
    from pulsora_revenue import Revenue

    transport = aiohttp_transport(concurrency) if client.aiohttp_transport else None
    revenue = Revenue(TOKEN, endpoint=url, transport=transport, backend=client.backend)
    async with revenue:

        async def send(events: Sequence[RevenueEvent]) -> None:
            report = await revenue.track_many(events, concurrency=concurrency)
            if report.sent != len(events):
                raise RuntimeError(f"track_many did not send everything: {report}")

        yield send


@asynccontextmanager
async def bare_httpx_sender(
    url: str, concurrency: int, client: Client
) -> AsyncIterator[Sender[tuple[bytes, str]]]:
    import httpx

    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    transport = aiohttp_transport(concurrency) if client.aiohttp_transport else None
    headers = request_headers()  # the client's, as ours: not merged into each request's
    async with httpx.AsyncClient(headers=headers, limits=limits, transport=transport) as session:

        async def send(jobs: Sequence[tuple[bytes, str]]) -> None:
            pending = iter(jobs)

            async def worker() -> None:
                for body, key in pending:
                    extra = {"Idempotency-Key": key}
                    response = await session.post(url, content=body, headers=extra)
                    if response.status_code != 202:
                        raise RuntimeError(f"HTTP {response.status_code}: {response.text}")

            await start_workers(concurrency, worker)

        yield send


@asynccontextmanager
async def bare_aiohttp_sender(
    url: str, concurrency: int, client: Client
) -> AsyncIterator[Sender[Any]]:
    import aiohttp  # type: ignore[import-not-found, unused-ignore]

    from pulsora_revenue._convert import encode
    from pulsora_revenue._event import idempotency_key

    headers = request_headers()  # the session's, as ours: not merged into each request's
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector, headers=headers) as session:

        async def send(payloads: Sequence[Any]) -> None:
            pending = iter(payloads)

            async def worker() -> None:
                for payload in pending:
                    if client.encodes:  # an event: encode it and derive its key, as we must
                        body, key = encode(payload), idempotency_key(payload)
                    else:
                        body, key = payload
                    extra = {"Idempotency-Key": key}
                    async with session.post(url, data=body, headers=extra) as response:
                        if response.status != 202:
                            text = await response.read()
                            raise RuntimeError(f"HTTP {response.status}: {text!r}")
                        if client.reads:
                            await response.read()

            await start_workers(concurrency, worker)

        yield send


@asynccontextmanager
async def raw_sender(
    url: str, concurrency: int, client: Client
) -> AsyncIterator[Sender[tuple[bytes, str]]]:
    """The physical limit: one persistent connection a worker, HTTP/1.1 by hand."""
    match = re.fullmatch(r"http://(127\.0\.0\.1):(\d+)(/.*)", url)
    if match is None:
        raise ValueError(f"the raw client only speaks to http://127.0.0.1:PORT/..., not {url}")
    host, port, path = match[1], int(match[2]), match[3]
    head = f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\n"
    head += "".join(f"{name}: {value}\r\n" for name, value in request_headers().items())
    template = head.encode() + b"Idempotency-Key: %s\r\nContent-Length: %d\r\n\r\n"
    connections = [await asyncio.open_connection(host, port) for _ in range(concurrency)]
    try:

        async def send(jobs: Sequence[tuple[bytes, str]]) -> None:
            pending = iter(jobs)

            async def worker(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
                for body, key in pending:
                    writer.write(template % (key.encode(), len(body)) + body)
                    answer = await reader.readuntil(b"\r\n\r\n")
                    length = CONTENT_LENGTH.search(answer)
                    await reader.readexactly(int(length.group(1)) if length else 0)
                    if answer[9:12] != b"202":
                        raise RuntimeError(f"unexpected answer {answer!r}")

            async with asyncio.TaskGroup() as group:
                for reader, writer in connections:
                    group.create_task(worker(reader, writer))

        yield send
    finally:
        for _, writer in connections:
            writer.close()


@asynccontextmanager
async def layer_sender(url: str, concurrency: int, client: Client) -> AsyncIterator[Sender[Any]]:
    """Our aiohttp sender, or the retry loop over it, in a bare loop of pre-encoded events."""
    from pulsora_revenue import Revenue

    async with Revenue(TOKEN, endpoint=url, backend="aiohttp") as revenue:
        channel = revenue._channel  # the retry loop that track and track_many share
        sender = await revenue._sender()  # its aiohttp sender

        async def send(jobs: Sequence[tuple[RevenueEvent, bytes, str]]) -> None:
            pending = iter(jobs)

            async def worker() -> None:
                for event, body, key in pending:
                    if client.kind == "deliver":
                        status = (await channel.send(sender, event, body, key=key)).status_code
                    else:
                        reply = await sender.post(body, key, budget=30, scrub=str)
                        status = reply.seen.status_code
                    if status != 202:
                        raise RuntimeError(f"HTTP {status}")

            await start_workers(concurrency, worker)

        yield send


SENDERS: dict[Kind, Callable[[str, int, Client], AbstractAsyncContextManager[Sender[Any]]]] = {
    "track_many": track_many_sender,
    "bare_httpx": bare_httpx_sender,
    "bare_aiohttp": bare_aiohttp_sender,
    "raw": raw_sender,
    "sender": layer_sender,
    "deliver": layer_sender,
}


async def timed(
    client: Client, url: str, count: int, concurrency: int, setup: int | None = None
) -> dict[str, float]:
    """Build the payloads, set up and warm up *client*, then time *count* requests.

    *setup* payloads are built (default: *count*), and the first *count* sent: runs
    of different counts then do the same work before the clock starts.
    """
    warm = client.payloads(max(WARMUP_MIN, 4 * concurrency), "warm")
    payload = client.payloads(max(count, setup or count), "timed")[:count]
    async with SENDERS[client.kind](url, concurrency, client) as send:
        await send(warm)
        wall, cpu = time.perf_counter(), time.process_time()
        await send(payload)
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    return {"seconds": wall, "cpu": cpu}


def measure_child(spec: str) -> None:
    """The hidden ``_measure`` sub-command: one measurement, printed as JSON."""
    settings = json.loads(spec)
    client = BY_KEY[settings["client"]]
    if client.httpx2:
        import httpx2  # type: ignore[import-not-found, unused-ignore]

        httpx2.alias_httpx()  # before anything imports httpx
        import httpx

        if httpx.__name__ != "httpx2":
            raise RuntimeError("httpx2.alias_httpx() did not take effect")
    count, setup = settings["count"], settings.get("setup")
    main = timed(client, settings["url"], count, settings["concurrency"], setup)
    print(json.dumps(run_loop(main, uvloop=settings["uvloop"])))


def run_child(
    client: Client,
    url: str,
    count: int,
    concurrency: int,
    *,
    uvloop: bool = False,
    setup: int | None = None,
    prefix: Sequence[str] = (),
    slowdown: float = 1.0,
) -> subprocess.CompletedProcess[str] | str:
    """Run one measurement in a fresh process, under *prefix* (a tool such as valgrind)
    if given; return the finished process, or why it failed."""
    spec = {"client": client.key, "url": url, "count": count, "concurrency": concurrency}
    spec |= {"uvloop": uvloop, "setup": setup}
    # Loopback only: no proxy from the environment may see these requests.
    env = {key: value for key, value in os.environ.items() if "proxy" not in key.lower()}
    env["PYTHONHASHSEED"] = "0"  # the same dict and set layouts in every run
    command = [*prefix, sys.executable, __file__, "_measure", json.dumps(spec)]
    limit = (120 + max(count, setup or 0) / 20) * slowdown
    try:
        done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=limit)
    except subprocess.TimeoutExpired:
        return "timed out"
    if done.returncode != 0:
        lines = done.stderr.strip().splitlines() or ["no output"]
        return lines[-1][:90]
    return done


def measure(
    client: Client, url: str, count: int, concurrency: int, uvloop: bool
) -> dict[str, float] | str:
    """Run one measurement in a fresh process; return its figures or why it failed."""
    done = run_child(client, url, count, concurrency, uvloop=uvloop)
    if isinstance(done, str):
        return done
    return cast(dict[str, float], json.loads(done.stdout.strip().splitlines()[-1]))


# -- the comparison ---------------------------------------------------------------------------


def package_versions() -> str:
    found = []
    for name in PACKAGES:
        try:
            found.append(f"{name} {version(name)}")
        except PackageNotFoundError:
            found.append(f"{name} (not installed)")
    return ", ".join(found)


def ratio(top: float | None, bottom: float | None) -> str:
    return f"{top / bottom:.2f}" if top is not None and bottom else "-"


def compare(args: argparse.Namespace) -> None:
    chosen = [BY_KEY[key] for key in args.clients]
    skipped = {client.key: missing(client) for client in chosen if missing(client)}
    runnable = [client for client in chosen if client.key not in skipped]
    body = len(make_bodies(1, "size")[0])
    server_loop = "uvloop" if available("uvloop") else "asyncio (uvloop not installed)"
    client_loop = "uvloop" if args.uvloop_clients and available("uvloop") else "asyncio"
    print(f"== transports: {args.count} requests of {body} bytes a measurement, best of")
    print(f"   {args.rounds} rounds; server: raw HTTP/1.1 on {server_loop}, own process;")
    print(f"   client loop: {client_loop}, a fresh process a measurement, warmed up first")
    print(f"   Python {sys.version.split()[0]}; {package_versions()}")
    for key, modules in skipped.items():
        print(f"   skipped {BY_KEY[key].label}: {', '.join(modules)} not installed")
    best: dict[tuple[str, int], dict[str, float]] = {}
    failures: dict[tuple[str, int], str] = {}
    with ingest_server() as url:
        for round_ in range(args.rounds):
            for concurrency in args.concurrency:
                shift = round_ % len(runnable)  # alternate the order between rounds
                for client in runnable[shift:] + runnable[:shift]:
                    result = measure(client, url, args.count, concurrency, args.uvloop_clients)
                    place = (client.key, concurrency)
                    if isinstance(result, str):
                        failures[place] = result
                        continue
                    previous = best.get(place, {"seconds": float("inf"), "cpu": float("inf")})
                    best[place] = {name: min(previous[name], result[name]) for name in result}
            print(f"   round {round_ + 1} of {args.rounds} done", flush=True)

    def rate(key: str, concurrency: int) -> float | None:
        figures = best.get((key, concurrency))
        return args.count / figures["seconds"] if figures else None

    def cpu(key: str, concurrency: int) -> float | None:
        figures = best.get((key, concurrency))
        return figures["cpu"] / args.count * 1000 if figures else None

    for concurrency in args.concurrency:
        print(f"\n== concurrency {concurrency}")
        print(f"{'client':<40} {'events/s':>9} {'CPU s/1k':>9} {'x raw':>6}")
        for client in runnable:
            speed, used = rate(client.key, concurrency), cpu(client.key, concurrency)
            if speed is None or used is None:
                why = failures.get((client.key, concurrency), "no result")
                print(f"{client.label:<40} failed: {why}")
                continue
            versus = ratio(speed, rate("f", concurrency))
            print(f"{client.label:<40} {speed:>9.0f} {used:>9.3f} {versus:>6}")

    print("\n== targets")
    at = 32 if 32 in args.concurrency else args.concurrency[-1]
    paths = [key for key in SPEED_PATHS if rate(key, at) is not None]
    speed_path = max(paths, key=lambda key: rate(key, at) or 0.0) if paths else None
    if speed_path is None:
        print("(1), (3): no speed-path track_many row was measured")
    else:
        name = BY_KEY[speed_path].label
        print(f"(1) concurrency {at}: best speed path {name} / bare aiohttp loop:")
        print(f"    {ratio(rate(speed_path, at), rate('e', at))} (target >= 0.6)")
    columns = "".join(f"{'c=' + str(c):>7}" for c in args.concurrency)
    print("(2) track_many / the bare loop of its own transport (target >= 0.9):")
    print(f"    {'':<68}{columns}")
    for ours, bare in SAME_TRANSPORT:
        if ours in args.clients and bare in args.clients:
            cells = "".join(f"{ratio(rate(ours, c), rate(bare, c)):>7}" for c in args.concurrency)
            pair = f"({ours}) / ({bare}): {BY_KEY[ours].stack} / bare {BY_KEY[bare].stack}"
            print(f"    {pair:<68}{cells}")
    layers = [key for key in LAYERS if key in args.clients]
    if len(layers) > 1:
        print("    the speed path layer by layer, client CPU in µs per event:")
        for key in layers:
            micros = [(cpu(key, c) or float("nan")) * 1000 for c in args.concurrency]
            cells = "".join(f"{m:>7.1f}" for m in micros)
            print(f"    {BY_KEY[key].label:<68}{cells}")
    if speed_path is not None:
        print(f"(3) CPU per 1,000 events, ({speed_path}) / (a) (target <= 0.25):")
        cells = "".join(f"{ratio(cpu(speed_path, c), cpu('a', c)):>7}" for c in args.concurrency)
        print(f"    {'':<68}{columns}\n    {'':<68}{cells}")


# -- the profile ------------------------------------------------------------------------------

#: Where a frame's self time is counted: the first (path fragment, group) that matches.
GROUPS = (
    ("/pulsora_revenue/_delivery.py", "ours: _delivery.py"),
    ("/pulsora_revenue/_http.py", "ours: _http.py"),
    ("/pulsora_revenue/_bulk.py", "ours: _bulk.py"),
    ("/pulsora_revenue/_convert.py", "ours: _convert.py (encoding)"),
    ("/pulsora_revenue/_json.py", "ours: _json.py (encoding)"),
    ("/pulsora_revenue/", "ours: other modules"),
    ("/cattrs/", "cattrs (encoding)"),
    ("/json/", "json (stdlib)"),
    ("/httpx/_models.py", "httpx: request/response models"),
    ("/httpx/_client.py", "httpx: client"),
    ("/httpx/_urlparse.py", "httpx: URLs"),
    ("/httpx/_urls.py", "httpx: URLs"),
    ("/httpx/", "httpx: other"),
    ("/httpcore/_async/connection_pool.py", "httpcore: connection pool"),
    ("/httpcore/_synchronization.py", "httpcore: locks (anyio)"),
    ("/httpcore/", "httpcore: HTTP/1.1 connection"),
    ("/h11/", "h11: HTTP/1.1 parsing"),
    ("/aiohttp/", "aiohttp"),
    ("/multidict/", "aiohttp"),
    ("/yarl/", "aiohttp"),
    ("/anyio/", "anyio"),
    ("/sniffio/", "anyio"),
    ("/selectors.py", "idle: waiting for the server (epoll)"),
    ("/asyncio/", "asyncio event loop"),
    ("/logging/", "logging"),
)


OTHER = "other (stdlib, builtins)"


def group_of(path: str) -> str:
    for fragment, group in GROUPS:
        if fragment in path:
            return group
    return OTHER


def summarise(spots: dict[tuple[str, str], float], wall: float, cpu: float) -> None:
    """Print self time by group and the top hot spots, as shares of the busy time."""
    by_group: dict[str, float] = {}
    for (place, _), seconds in spots.items():
        path = place.rsplit(":", 1)[0]
        group = group_of(path)
        by_group[group] = by_group.get(group, 0.0) + seconds
    idle = sum(s for g, s in by_group.items() if g.startswith("idle"))
    busy = sum(spots.values()) - idle
    print(
        f"wall {wall:.2f} s, client CPU {cpu:.2f} s; profiled busy {busy:.2f} s, idle {idle:.2f} s"
    )
    print(f"\n{'self time by group (share of busy time)':<48} {'s':>7} {'share':>6}")
    for group, seconds in sorted(by_group.items(), key=lambda item: -item[1]):
        if not group.startswith("idle"):
            print(f"{group:<48} {seconds:>7.2f} {seconds / busy:>6.1%}")
    print(f"\n{'top hot spots (self time)':<72} {'share':>6}")
    top = sorted(spots.items(), key=lambda item: -item[1])
    shown = [(key, s) for key, s in top if not group_of(key[0]).startswith("idle")][:15]
    for (place, function), seconds in shown:
        where = re.sub(r".*/(site-packages|lib/python3\.\d+|work/main)/", "", place)
        print(f"{(function + ' ' + where)[:72]:<72} {seconds / busy:>6.1%}")


async def profiled_run(url: str, count: int, concurrency: int, profiler: str, which: str) -> None:
    client = BY_KEY[which]
    warm, events = make_events(max(WARMUP_MIN, 4 * concurrency), "warm"), make_events(count, "p")
    spots: dict[tuple[str, str], float] = {}
    async with track_many_sender(url, concurrency, client) as send:
        await send(warm)
        wall, cpu = time.perf_counter(), time.process_time()
        if profiler == "pyinstrument":
            from pyinstrument import Profiler  # type: ignore[import-not-found, unused-ignore]

            sampler = Profiler(interval=0.001, async_mode="disabled")
            sampler.start()
            await send(events)
            session = sampler.stop()
            wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
            stack = [session.root_frame(trim_stem=False)]
            while stack:
                frame = stack.pop()
                if frame is None:
                    continue
                stack.extend(frame.children)
                if frame.is_synthetic:  # "[self]", "[await]": in their parent's self time
                    continue
                # C and stdlib helpers count in their caller's group, under their own name
                owner, function = frame, frame.function
                while group_of(owner.file_path or "") == OTHER and owner.parent is not None:
                    owner = owner.parent
                if owner is not frame:
                    own = frame.file_path or ""
                    function += f" [{'C' if own in ('', '<built-in>') else os.path.basename(own)}]"
                place = f"{owner.file_path}:{owner.line_no}"
                key = (place, function)
                spots[key] = spots.get(key, 0.0) + frame.total_self_time
        else:
            import cProfile
            import pstats

            tracer = cProfile.Profile()
            tracer.enable()
            await send(events)
            tracer.disable()
            wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
            table = cast(dict[tuple[str, int, str], tuple[Any, ...]], pstats.Stats(tracer).stats)  # type: ignore[attr-defined]
            for (path, line, function), (_, _, own, _, callers) in table.items():
                if path != "~":
                    key = (f"{path}:{line}", function)
                    spots[key] = spots.get(key, 0.0) + float(own)
                    continue
                # C functions count in their caller's group, under their own name
                for (by_path, by_line, _), (_, _, from_there, _) in callers.items():
                    key = (f"{by_path}:{by_line}", f"{function} [C]")
                    spots[key] = spots.get(key, 0.0) + float(from_there)
    print(f"== profile: ({which}) {client.label}, {count} events,")
    print(f"   concurrency {concurrency}, {profiler}")
    summarise(spots, wall, cpu)


def profile(args: argparse.Namespace) -> None:
    profiler = args.profiler
    if profiler == "auto":
        profiler = "pyinstrument" if available("pyinstrument") else "cProfile"
    elif profiler == "pyinstrument" and not available("pyinstrument"):
        raise SystemExit("pyinstrument is not installed: pip install -e '.[bench]'")
    with ingest_server() as url:
        concurrency = args.concurrency[0] if len(args.concurrency) == 1 else 32
        run = profiled_run(url, args.count, concurrency, profiler, args.client)
        run_loop(run, uvloop=False)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("which", nargs="?", default="compare", choices=["compare", "profile"])
    parser.add_argument("--count", type=int, default=5000, help="timed requests a measurement")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 32, 64])
    parser.add_argument("--rounds", type=int, default=3, help="keep the best of this many")
    parser.add_argument(
        "--clients", nargs="+", default=[c.key for c in CLIENTS], choices=[c.key for c in CLIENTS]
    )
    parser.add_argument("--uvloop-clients", action="store_true", help="run clients on uvloop")
    parser.add_argument("--profiler", default="auto", choices=["auto", "pyinstrument", "cProfile"])
    parser.add_argument(
        "--client",
        default="a",
        choices=[c.key for c in CLIENTS if c.kind == "track_many"],
        help="what to profile (profile only)",
    )
    args = parser.parse_args()
    if args.count < 1 or args.rounds < 1 or min(args.concurrency) < 1:
        parser.error("--count, --rounds and --concurrency must be positive")
    if args.which == "profile":
        profile(args)
    else:
        compare(args)


if __name__ == "__main__":
    if sys.argv[1:2] == ["_serve"]:
        run_loop(serve(), uvloop=True)
    elif sys.argv[1:2] == ["_measure"]:
        measure_child(sys.argv[2])
    else:
        main()
