"""One ``track()`` against the POST it makes: the caller's CPU per call, and a FastAPI route's.

Run: ``python benchmarks/bench_track.py [all|calls|app] [--rounds R] [--count N] [--quick]``
for the tables and the targets of issue 19 (a default run takes about two minutes on
two cores), or ``python benchmarks/bench_track.py profile [--cases c a] [--count N]`` for
where one ``track()`` spends its CPU at 32 callers (pyinstrument if installed, else
cProfile).

**calls**: each case sends the same requests (the body ``track`` would send for the
same keyword fields, with the headers ``track`` sends, ``Idempotency-Key`` included)
to the raw keep-alive ingest server of ``bench_transports.py``, which answers 202 in
its own process. A case runs in a fresh client process on asyncio: it sets up its
client, warms it up (2,000 calls with several callers: until then httpx's pool costs
2.5 times what it costs after), then ``concurrency`` tasks call in a loop until
``count`` calls are made, timed with ``time.perf_counter`` and ``time.process_time``
(the caller's own CPU: the server is elsewhere). The httpx cases make a third as many
calls: each costs 15 to 20 times an aiohttp call at 32 callers. The cases:

- (a) a bare aiohttp POST, handed the body and key ready-made, as a handler holding
  the bytes would have them; (a2) the same, encoding a ready ``RevenueEvent`` and
  deriving its key in each call (``_convert.encode``, ``_event.idempotency_key``);
  (a3) the same, also validating the keyword fields (``RevenueEvent(**fields)``);
- (b) a bare httpx POST, body and key ready-made, ``httpx.AsyncClient`` with 32
  connections at most (as our httpx sender);
- (c) ``Revenue(backend="aiohttp").track(**fields)`` (the default path with the
  ``speed`` extra), (d) ``Revenue(backend="httpx").track(**fields)``.

Cases take turns within a round, in an order that rotates between rounds; the best
(lowest) CPU and wall time of the rounds is kept.

**app**: a FastAPI app under uvicorn (its own process, one worker, uvloop if
installed, no access log) with three routes, each answering ``{"ok": true}``:
``/plain`` does nothing else, ``/bare`` makes the POST of (a) with one app-wide
``aiohttp.ClientSession``, ``/track`` calls ``await revenue.track(**fields)`` with one
app-wide ``Revenue``, both opened in the app's lifespan and found in ``request.state``
(``get_revenue``), both against the ingest server; they cycle through 4,096 bodies
and keys made at startup, and 4,096 sets of fields. A load generator (this process,
raw keep-alive sockets, 32 connections) sends ``count`` requests to one route at a
time, after a warm-up; the app's CPU is read from ``/proc/<pid>/stat`` (user + system
clock ticks) before and after each batch. Routes take turns as the cases do; the best
round is kept, the median and worst shown. What ``track`` adds to a route is
``track - plain``; what a bare POST adds, ``bare - plain``.

**profile**: in this process, on asyncio, 32 callers, the same calls as the cases
named (default (c), then (a)), sampled by pyinstrument every 0.5 ms: self time by
group (our modules, aiohttp's and asyncio's by file) for each case side by side, then
for the first case the top self-time spots and the inclusive time of the functions a
``track()`` goes through. µs per call are shares of the profiled time times the CPU per
call of an unprofiled run of as many calls just before: the profiler costs about as
much as what it measures, and more in code with many small calls, so they are estimates.

**Reading it**: "x (a)" is a case's CPU per call over the bare aiohttp POST's at the
same concurrency; "targets" prints the issue's ratios with PASS or MISS (the exit code
is 0 either way). Only ratios within one run mean anything: single figures move by
5 to 10% between runs on this machine, more when something else runs, which
"spread@32" (the worst round over the best, at 32 callers) and the app's "worst"
column show; above some 15%, run it again.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import itertools
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager, contextmanager
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from statistics import median
from typing import Any, Literal

import bench_transports as bench  # the sibling script: Python puts its folder on sys.path

#: Our aiohttp sender's pool (``_client.POOL_SIZE``) and httpx's (``HttpxSender.MAX_CONNECTIONS``).
AIOHTTP_POOL = 64
HTTPX_POOL = 32
CONCURRENCY = (1, 32)
#: Calls before the clock starts, with several callers: httpx's pool costs 2.5 times more a
#: call for the first 1,700 or so (httpcore's ``_assign_requests_to_connections`` scans
#: four times as many connections a request), aiohttp's first thousand 10 to 20% more.
WARMUP_MANY = 2000
#: Issue 19's targets: (ours, bare, at most).
TARGETS = (("c", "a", 1.25), ("d", "b", 1.10))
APP_TARGET = 1.25
#: Prepared requests the app's routes cycle through.
APP_PREPARED = 4096
APP_CONNECTIONS = 32
PACKAGES = ("aiohttp", "httpx", "anyio", "orjson", "fastapi", "starlette", "uvicorn", "uvloop")

Kind = Literal["bare_aiohttp", "bare_httpx", "track"]
Prepared = Literal["ready", "event", "fields"]
Call = Callable[[Any], Awaitable[None]]
Handler = Callable[[Any], Awaitable[dict[str, bool]]]


@dataclass(frozen=True)
class Case:
    """One row of the calls table: what one call does."""

    key: str
    label: str
    kind: Kind
    given: Prepared = "ready"  # what each call is handed
    backend: Literal["aiohttp", "httpx"] = "aiohttp"
    share: float = 1.0  # of --count: an httpx call costs 15 to 20 aiohttp calls at 32 callers

    def calls(self, count: int) -> int:
        return max(200, round(count * self.share))

    def payloads(self, count: int, run: str) -> list[Any]:
        """What this case's calls are handed, one item a call, made before the clock starts."""
        if self.given == "fields":
            return list(fields(count, run))
        events = make_events(count, run)
        return events if self.given == "event" else [prepare(event) for event in events]


CASES = (
    Case("a", "bare aiohttp POST, body + key ready", "bare_aiohttp"),
    Case("a2", "bare aiohttp, + encode + key per call", "bare_aiohttp", "event"),
    Case("a3", "bare aiohttp, + validate, encode, key", "bare_aiohttp", "fields"),
    Case("b", "bare httpx POST, body + key ready", "bare_httpx", share=0.3),
    Case("c", "track(**fields), aiohttp", "track", "fields", "aiohttp"),
    Case("d", "track(**fields), httpx", "track", "fields", "httpx", share=0.3),
)
BY_KEY = {case.key: case for case in CASES}


# -- payloads -----------------------------------------------------------------------------


def fields(count: int, run: str) -> Iterator[dict[str, Any]]:
    """Keyword fields of *count* distinct purchases, as a webhook handler would pass them."""
    for n in range(count):
        digest = hashlib.sha256(f"{run}/{n}".encode()).hexdigest()
        yield {
            "visitor_fingerprint": digest[:32],
            "session_id": f"sess_{digest[32:48]}",
            "customer_id": f"cus_{digest[48:62]}",
            "amount": f"{n % 500 + 1}.99",
            "currency": "EUR",
            "transaction_id": f"pi_{run}_{n:09d}",
            "event_type": "purchase",
            "metadata": {"order_id": f"ord_{n}", "plan": "pro"},
        }


def make_events(count: int, run: str) -> list[Any]:
    from pulsora_revenue import RevenueEvent

    return [RevenueEvent(**row) for row in fields(count, run)]


def prepare(event: Any) -> tuple[bytes, str]:
    """The body ``track`` sends for *event*, and its idempotency key."""
    from pulsora_revenue._convert import encode
    from pulsora_revenue._event import idempotency_key

    return encode(event), idempotency_key(event)


# -- the callers --------------------------------------------------------------------------


def warmup(concurrency: int) -> int:
    return bench.WARMUP_MIN if concurrency == 1 else WARMUP_MANY


@asynccontextmanager
async def bare_aiohttp(url: str, case: Case) -> AsyncIterator[Call]:
    import aiohttp  # type: ignore[import-not-found, unused-ignore]

    from pulsora_revenue import RevenueEvent
    from pulsora_revenue._convert import encode
    from pulsora_revenue._event import idempotency_key

    given = case.given
    connector = aiohttp.TCPConnector(limit=AIOHTTP_POOL)
    headers = bench.request_headers()  # the session's, as ours: not merged into each request's
    async with aiohttp.ClientSession(connector=connector, headers=headers) as session:

        async def call(item: Any) -> None:
            if given == "ready":
                body, key = item
            else:
                event = item if given == "event" else RevenueEvent(**item)
                body, key = encode(event), idempotency_key(event)
            async with session.post(url, data=body, headers={"Idempotency-Key": key}) as answer:
                await answer.read()
                if answer.status != 202:
                    raise RuntimeError(f"HTTP {answer.status}")

        yield call


@asynccontextmanager
async def bare_httpx(url: str, case: Case) -> AsyncIterator[Call]:
    import httpx

    limits = httpx.Limits(max_connections=HTTPX_POOL, max_keepalive_connections=HTTPX_POOL)
    headers = bench.request_headers()
    async with httpx.AsyncClient(headers=headers, limits=limits) as client:

        async def call(item: tuple[bytes, str]) -> None:
            body, key = item
            answer = await client.post(url, content=body, headers={"Idempotency-Key": key})
            if answer.status_code != 202:
                raise RuntimeError(f"HTTP {answer.status_code}")

        yield call


@asynccontextmanager
async def tracking(url: str, case: Case) -> AsyncIterator[Call]:
    from pulsora_revenue import Revenue

    async with Revenue(bench.TOKEN, endpoint=url, backend=case.backend) as revenue:

        async def call(item: dict[str, Any]) -> None:
            result = await revenue.track(**item)
            if result.status_code != 202:
                raise RuntimeError(f"HTTP {result.status_code}")

        yield call


CALLERS: dict[Kind, Callable[[str, Case], AbstractAsyncContextManager[Call]]] = {
    "bare_aiohttp": bare_aiohttp,
    "bare_httpx": bare_httpx,
    "track": tracking,
}


async def drive(call: Call, items: Sequence[Any], concurrency: int) -> None:
    """Make one call per item, from *concurrency* tasks that each call in a loop."""
    pending = iter(items)

    async def caller() -> None:
        for item in pending:
            await call(item)

    async with asyncio.TaskGroup() as group:
        for _ in range(concurrency):
            group.create_task(caller())


async def timed(case: Case, url: str, count: int, concurrency: int) -> dict[str, float]:
    """Set up and warm up *case*, then time *count* calls."""
    warm = case.payloads(warmup(concurrency), "warm")
    items = case.payloads(count, "timed")
    async with CALLERS[case.kind](url, case) as call:
        await drive(call, warm, concurrency)
        wall, cpu = time.perf_counter(), time.process_time()
        await drive(call, items, concurrency)
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    return {"seconds": wall, "cpu": cpu}


def measure_child(spec: str) -> None:
    """The hidden ``_measure`` sub-command: one measurement, printed as JSON."""
    settings = json.loads(spec)
    run = timed(BY_KEY[settings["case"]], settings["url"], settings["count"], settings["c"])
    print(json.dumps(bench.run_loop(run, uvloop=False)))


def child_env() -> dict[str, str]:
    # Loopback only: no proxy from the environment may see these requests.
    env = {key: value for key, value in os.environ.items() if "proxy" not in key.lower()}
    env["PYTHONHASHSEED"] = "0"  # the same dict and set layouts in every run
    return env


def measure(case: Case, url: str, count: int, concurrency: int) -> dict[str, float] | str:
    """Run one measurement in a fresh process; return its figures or why it failed."""
    spec = json.dumps({"case": case.key, "url": url, "count": count, "c": concurrency})
    command = [sys.executable, __file__, "_measure", spec]
    try:
        done = subprocess.run(
            command, capture_output=True, text=True, env=child_env(), timeout=60 + count / 50
        )
    except subprocess.TimeoutExpired:
        return "timed out"
    if done.returncode != 0:
        return (done.stderr.strip().splitlines() or ["no output"])[-1][:90]
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


# -- the calls table ----------------------------------------------------------------------


def verdict(value: float | None, limit: float) -> str:
    if value is None:
        return "-"
    met = round(value, 2) <= limit  # as shown: the figures are not finer than that
    return f"{value:.2f}x (target <= {limit:.2f}x) {'PASS' if met else 'MISS'}"


def calls(url: str, count: int, rounds: int) -> None:
    """Measure every case at each concurrency, interleaved over *rounds*; print the table."""
    print(f"\n== calls: {count} calls a measurement (httpx: {BY_KEY['b'].calls(count)}), best of")
    print(f"   {rounds} rounds, a fresh process a measurement, on asyncio")
    runs: dict[tuple[str, int], list[dict[str, float]]] = {}
    failures: dict[tuple[str, int], str] = {}
    for round_ in range(rounds):
        for concurrency in CONCURRENCY:
            shift = round_ % len(CASES)  # a different order in every round
            for case in CASES[shift:] + CASES[:shift]:
                result = measure(case, url, case.calls(count), concurrency)
                if isinstance(result, str):
                    failures[case.key, concurrency] = result
                else:
                    runs.setdefault((case.key, concurrency), []).append(result)
        print(f"   round {round_ + 1} of {rounds} done", flush=True)

    def cpu(key: str, concurrency: int) -> float | None:
        """Best CPU µs per call."""
        done = runs.get((key, concurrency))
        return min(r["cpu"] for r in done) / BY_KEY[key].calls(count) * 1e6 if done else None

    def spread(key: str, concurrency: int) -> str:
        done = runs.get((key, concurrency), [])
        cpus = [r["cpu"] for r in done]
        return f"{max(cpus) / min(cpus) - 1:+.0%}" if len(cpus) > 1 else "-"

    def rate(key: str, concurrency: int) -> float | None:
        done = runs.get((key, concurrency))
        return BY_KEY[key].calls(count) / min(r["seconds"] for r in done) if done else None

    head = "".join(
        f" {'c=' + str(c) + ' µs/call':>14} {'calls/s':>8} {'x (a)':>6}" for c in CONCURRENCY
    )
    print(f"\n{'case':<44}{head} {'spread@32':>9}")
    for case in CASES:
        cells = ""
        for c in CONCURRENCY:
            used, speed, base = cpu(case.key, c), rate(case.key, c), cpu("a", c)
            if used is None or speed is None:
                cells += f" {'failed: ' + failures.get((case.key, c), '?'):>30}"
                continue
            versus = f"{used / base:.2f}" if base else "-"
            cells += f" {used:>14.1f} {speed:>8.0f} {versus:>6}"
        print(f"{'(' + case.key + ') ' + case.label:<44}{cells} {spread(case.key, 32):>9}")

    print("\n== targets (CPU per call, best of the rounds)")
    for ours, bare, limit in TARGETS:
        for c in CONCURRENCY:
            top, bottom = cpu(ours, c), cpu(bare, c)
            value = top / bottom if top is not None and bottom else None
            shown = verdict(value, limit) if c == 32 else f"{value or float('nan'):.2f}x"
            print(f"   ({ours}) / ({bare}) at c={c:<3} {shown}")
        for key in (ours, bare):  # a ratio of two bests: how far apart were the rounds?
            rounds_ = [r["cpu"] / BY_KEY[key].calls(count) * 1e6 for r in runs.get((key, 32), [])]
            print(
                f"      ({key}) at c=32, µs/call by round: {' '.join(f'{v:.0f}' for v in rounds_)}"
            )
    for ours, bare in (("c", "a2"), ("c", "a3")):
        top, bottom = cpu(ours, 32), cpu(bare, 32)
        if top is not None and bottom:
            print(f"   ({ours}) / ({bare}) at c=32  {top / bottom:.2f}x (for scale)")


# -- the FastAPI app ----------------------------------------------------------------------


def make_app(url: str) -> Any:
    """The app: ``/plain``, ``/bare`` and ``/track``, with one client of each kind."""
    import aiohttp  # type: ignore[import-not-found, unused-ignore]
    from fastapi import FastAPI, Request

    from pulsora_revenue import Revenue
    from pulsora_revenue.starlette import STATE_KEY, get_revenue

    prepared = list(fields(APP_PREPARED, "app"))
    requests = [prepare(event) for event in make_events(APP_PREPARED, "app")]
    next_fields, next_request = (
        itertools.cycle(prepared).__next__,
        itertools.cycle(requests).__next__,
    )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[dict[str, Any]]:
        connector = aiohttp.TCPConnector(limit=AIOHTTP_POOL)
        headers = bench.request_headers()
        async with (
            aiohttp.ClientSession(connector=connector, headers=headers) as session,
            Revenue(bench.TOKEN, endpoint=url, backend="aiohttp") as revenue,
        ):
            yield {"session": session, STATE_KEY: revenue}

    app = FastAPI(lifespan=lifespan)

    def route(handler: Handler) -> Handler:
        """Post *handler* at its name: FastAPI reads annotations, here strings of local names."""
        handler.__annotations__ = {"request": Request, "return": dict[str, bool]}
        return app.post(f"/{handler.__name__}")(handler)

    @route
    async def plain(request: Request) -> dict[str, bool]:
        return {"ok": True}

    @route
    async def bare(request: Request) -> dict[str, bool]:
        body, key = next_request()
        session = request.state.session
        async with session.post(url, data=body, headers={"Idempotency-Key": key}) as answer:
            await answer.read()
            if answer.status != 202:
                raise RuntimeError(f"HTTP {answer.status}")
        return {"ok": True}

    @route
    async def track(request: Request) -> dict[str, bool]:
        await get_revenue(request).track(**next_fields())
        return {"ok": True}

    return app


def serve_app(url: str) -> None:
    """The hidden ``_app`` sub-command: serve the app; print the port; stop when stdin closes."""
    import uvicorn

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1024)
    print(listener.getsockname()[1], flush=True)

    def stop_with_parent() -> None:
        sys.stdin.read()  # returns when the parent closes our stdin, or dies
        os.kill(os.getpid(), signal.SIGTERM)  # uvicorn's graceful shutdown

    threading.Thread(target=stop_with_parent, daemon=True).start()
    config = uvicorn.Config(
        make_app(url),
        loop="uvloop" if bench.available("uvloop") else "asyncio",
        lifespan="on",
        access_log=False,
        log_level="warning",
    )
    uvicorn.Server(config).run(sockets=[listener])


@contextmanager
def app_server(url: str) -> Iterator[tuple[int, int]]:
    """Start the app in its own process; yield its pid and port; stop it."""
    command = [sys.executable, __file__, "_app", url]
    app = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=child_env())
    assert app.stdin is not None
    assert app.stdout is not None
    try:
        line = app.stdout.readline()
        if not line.strip().isdigit():
            raise RuntimeError(f"the app did not start ({line!r})")
        yield app.pid, int(line)
    finally:
        app.stdin.close()  # the app's signal to stop
        try:
            app.wait(15)
        except subprocess.TimeoutExpired:
            app.kill()
            app.wait()
        app.stdout.close()


def app_cpu(pid: int) -> float:
    """The CPU seconds (user + system) process *pid* has used so far."""
    with open(f"/proc/{pid}/stat") as stat:
        after_name = stat.read().rsplit(")", 1)[1].split()
    utime, stime = int(after_name[11]), int(after_name[12])  # fields 14 and 15
    return (utime + stime) / os.sysconf("SC_CLK_TCK")


class Load:
    """Keep-alive connections to the app, each sending a request and reading its answer."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.connections: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []

    async def open(self, count: int, patience: float = 30.0) -> None:
        deadline = time.monotonic() + patience
        while not self.connections:
            try:  # the app listens before its lifespan has started: a first request waits
                self.connections.append(await asyncio.open_connection("127.0.0.1", self.port))
            except OSError:
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.1)
        await self.send("/plain", 1)
        for _ in range(count - 1):
            self.connections.append(await asyncio.open_connection("127.0.0.1", self.port))

    async def send(self, path: str, count: int) -> None:
        request = f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{self.port}\r\n"
        request += "Content-Type: application/json\r\nContent-Length: 2\r\n\r\n{}"
        data = request.encode()
        left = iter(range(count))

        async def worker(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            for _ in left:
                writer.write(data)
                head = await reader.readuntil(b"\r\n\r\n")
                length = bench.CONTENT_LENGTH.search(head)
                await reader.readexactly(int(length.group(1)) if length else 0)
                if head[9:12] != b"200":
                    raise RuntimeError(f"{path}: {head[:40]!r}")

        async with asyncio.TaskGroup() as group:
            for reader, writer in self.connections:
                group.create_task(worker(reader, writer))

    def close(self) -> None:
        for _, writer in self.connections:
            writer.close()


ROUTES = ("/plain", "/bare", "/track")


async def load_app(pid: int, port: int, count: int, rounds: int) -> dict[str, list[float]]:
    """µs of the app's CPU per request, per route, one figure a round."""
    load = Load(port)
    await load.open(APP_CONNECTIONS)
    try:
        for route in ROUTES:  # warm-up: connections to the ingest server, caches, lazy imports
            await load.send(route, max(1000, count // 4))
        figures: dict[str, list[float]] = {route: [] for route in ROUTES}
        for round_ in range(rounds):
            shift = round_ % len(ROUTES)
            for route in ROUTES[shift:] + ROUTES[:shift]:
                before = app_cpu(pid)
                await load.send(route, count)
                figures[route].append((app_cpu(pid) - before) / count * 1e6)
            print(f"   round {round_ + 1} of {rounds} done", flush=True)
        return figures
    finally:
        load.close()


def app(url: str, count: int, rounds: int) -> None:
    """Measure the app's CPU per request on each route; print the table and the target."""
    loop = "uvloop" if bench.available("uvloop") else "asyncio"
    http = "httptools" if bench.available("httptools") else "h11"
    print(f"\n== FastAPI app: uvicorn, one worker, {loop}, {http}; {count} requests a route")
    print(f"   a round, {APP_CONNECTIONS} keep-alive connections; best of {rounds} rounds")
    with app_server(url) as (pid, port):
        figures = bench.run_loop(load_app(pid, port, count, rounds), uvloop=True)
    best = {route: min(values) for route, values in figures.items()}
    print(f"\n{'route':<10} {'app CPU µs/request':>19} {'median':>7} {'worst':>7} {'x plain':>8}")
    for route, values in figures.items():
        shown = f"{best[route]:>19.0f} {median(values):>7.0f} {max(values):>7.0f}"
        print(f"{route:<10} {shown} {best[route] / best['/plain']:>8.2f}")
    track, bare = best["/track"] - best["/plain"], best["/bare"] - best["/plain"]
    print(f"\n   what track adds (track - plain): {track:.0f} µs")
    print(f"   what a bare POST adds (bare - plain): {bare:.0f} µs")
    print(f"   ratio: {verdict(track / bare if bare > 0 else None, APP_TARGET)}")
    medians = {route: median(values) for route, values in figures.items()}
    added = medians["/bare"] - medians["/plain"]
    if added > 0:
        by_median = (medians["/track"] - medians["/plain"]) / added
        print(f"   (the same from the medians: {by_median:.2f}x)")


# -- the profile --------------------------------------------------------------------------

#: Where a frame's self time is counted: our modules and aiohttp's and asyncio's by file,
#: the rest by the first (path fragment, group) that matches.
BY_FILE = (("/pulsora_revenue/", "ours"), ("/aiohttp/", "aiohttp"), ("/asyncio/", "asyncio"))
GROUPS = (
    ("/multidict/", "aiohttp: multidict, yarl"),
    ("/yarl/", "aiohttp: multidict, yarl"),
    ("/propcache/", "aiohttp: multidict, yarl"),
    ("/cattrs/", "cattrs"),
    ("/attr/", "attrs"),
    ("/attrs/", "attrs"),
    ("/httpx/", "httpx"),
    ("/httpcore/", "httpcore"),
    ("/h11/", "h11"),
    ("/anyio/", "anyio"),
    ("/sniffio/", "anyio"),
    ("/selectors.py", "idle: waiting (epoll)"),
    ("bench_track.py", "the benchmark's caller loop"),
)
OTHER = "other (stdlib, builtins)"
#: Functions whose inclusive time per call is shown: (path fragment, function, what it is).
#: Only what runs in the calling task's steps counts: aiohttp's callbacks from the event
#: loop (``data_received``, ``socket.send`` of the transport) fall outside ``track``.
WATCHED = (
    ("/pulsora_revenue/_client.py", "track", "Revenue.track"),
    ("/pulsora_revenue/_client.py", "_sender", "  Revenue._sender"),
    ("/pulsora_revenue/_client.py", "_check_loop", "  Revenue._check_loop (current_token)"),
    ("/anyio/lowlevel.py", "current_token", "    anyio current_token"),
    ("/pulsora_revenue/_convert.py", "to_event", "  to_event (cattrs structure + validation)"),
    ("/pulsora_revenue/_event.py", "__init__", "    RevenueEvent.__init__ (validation)"),
    ("/pulsora_revenue/_convert.py", "encode", "  encode"),
    ("/pulsora_revenue/_delivery.py", "deliver", "  Channel.deliver"),
    ("/anyio/lowlevel.py", "checkpoint_if_cancelled", "    anyio checkpoint_if_cancelled"),
    ("/pulsora_revenue/_delivery.py", "send", "    Channel.send (the retry loop)"),
    ("/pulsora_revenue/_event.py", "idempotency_key", "      idempotency_key"),
    ("/pulsora_revenue/_clock.py", "__init__", "      Stopwatch()"),
    ("/pulsora_revenue/_clock.py", "elapsed", "      Stopwatch.elapsed"),
    ("/pulsora_revenue/_transports/_aiohttp.py", "post", "      AiohttpSender.post"),
    ("/aiohttp/client.py", "_request", "        aiohttp ClientSession._request"),
    ("/aiohttp/client.py", "_prepare_headers", "          _prepare_headers (merging)"),
    ("/aiohttp/helpers.py", "__enter__", "          TimerContext (the timeout)"),
    ("/aiohttp/client_reqrep.py", "update_headers", "          ClientRequest.update_headers"),
    ("/aiohttp/connector.py", "connect", "          connector.connect (pool)"),
    ("/aiohttp/client_reqrep.py", "send", "          ClientRequest.send"),
    ("/aiohttp/client_reqrep.py", "start", "          ClientResponse.start"),
    ("/pulsora_revenue/_transports/_aiohttp.py", "read_aiohttp", "        read_aiohttp"),
    ("/pulsora_revenue/_transports/_reply.py", "answered", "        answered (Reply)"),
    ("/pulsora_revenue/_results.py", "result", "    Delivered.result (TrackResult)"),
)


def group_of(path: str) -> str:
    for fragment, package in BY_FILE:
        if fragment in path:
            return f"{package}: {path.split(fragment, 1)[1]}"
    for fragment, group in GROUPS:
        if fragment in path:
            return group
    return OTHER


def short(path: str) -> str:
    return re.sub(r".*/(site-packages|lib/python3\.\d+|work/main)/", "", path)


@dataclass
class Profile:
    """What one profiled run measured: self time by (place, function), inclusive by function."""

    calls: int
    cpu: float  # without the profiler, in a run of as many calls just before
    profiled_cpu: float
    spots: dict[tuple[str, str], float]
    inclusive: dict[tuple[str, str], float]

    @property
    def busy(self) -> float:
        return sum(
            s for (place, _), s in self.spots.items() if not group_of(place).startswith("idle")
        )

    def per_call(self, seconds: float) -> float:
        """µs of CPU per call that *seconds* of profiled time stands for, without the profiler."""
        return seconds / self.busy * self.cpu / self.calls * 1e6 if self.busy else 0.0

    def groups(self) -> dict[str, float]:
        totals: dict[str, float] = {}
        for (place, _), seconds in self.spots.items():
            group = group_of(place.rsplit(":", 1)[0])
            totals[group] = totals.get(group, 0.0) + seconds
        return totals


def walk_pyinstrument(
    root: Any,
) -> tuple[dict[tuple[str, str], float], dict[tuple[str, str], float]]:
    """Self time by (place, function), C helpers in their Python caller; inclusive by function."""
    spots: dict[tuple[str, str], float] = {}
    inclusive: dict[tuple[str, str], float] = {}
    stack: list[tuple[Any, frozenset[tuple[str, str]]]] = [(root, frozenset())]
    while stack:
        frame, above = stack.pop()
        if frame is None or frame.is_synthetic:  # "[self]", "[await]": in the parent's self time
            continue
        path = frame.file_path or ""
        name = (short(path), frame.function)
        if name not in above:  # a recursion counts once
            inclusive[name] = inclusive.get(name, 0.0) + frame.time
        stack.extend((child, above | {name}) for child in frame.children)
        owner, function = frame, frame.function
        while group_of(owner.file_path or "") == OTHER and owner.parent is not None:
            owner = owner.parent
        if owner is not frame:
            function += f" [{'C' if path in ('', '<built-in>') else os.path.basename(path)}]"
        key = (f"{owner.file_path}:{owner.line_no}", function)
        spots[key] = spots.get(key, 0.0) + frame.total_self_time
    return spots, inclusive


def walk_cprofile(tracer: Any) -> tuple[dict[tuple[str, str], float], dict[tuple[str, str], float]]:
    import pstats

    spots: dict[tuple[str, str], float] = {}
    inclusive: dict[tuple[str, str], float] = {}
    table: dict[tuple[str, int, str], tuple[Any, ...]] = pstats.Stats(tracer).stats  # type: ignore[attr-defined]
    for (path, line, function), (_, _, own, total, callers) in table.items():
        name = (short(path), function)
        inclusive[name] = inclusive.get(name, 0.0) + float(total)
        if path != "~":
            spots[f"{path}:{line}", function] = float(own)
            continue
        for (by_path, by_line, _), (_, _, from_there, _) in callers.items():
            key = (f"{by_path}:{by_line}", f"{function} [C]")
            spots[key] = spots.get(key, 0.0) + float(from_there)
    return spots, inclusive


async def profiled(case: Case, url: str, count: int, concurrency: int, profiler: str) -> Profile:
    warm = case.payloads(warmup(concurrency), "warm")
    plain, items = case.payloads(count, "plain"), case.payloads(count, "profile")
    async with CALLERS[case.kind](url, case) as call:
        await drive(call, warm, concurrency)
        unprofiled = time.process_time()
        await drive(call, plain, concurrency)
        unprofiled = time.process_time() - unprofiled
        cpu = time.process_time()
        if profiler == "pyinstrument":
            from pyinstrument import Profiler  # type: ignore[import-not-found, unused-ignore]

            sampler = Profiler(interval=0.0005, async_mode="disabled")
            sampler.start()
            await drive(call, items, concurrency)
            session = sampler.stop()
            cpu = time.process_time() - cpu
            spots, inclusive = walk_pyinstrument(session.root_frame(trim_stem=False))
        else:
            import cProfile

            tracer = cProfile.Profile()
            tracer.enable()
            await drive(call, items, concurrency)
            tracer.disable()
            cpu = time.process_time() - cpu
            spots, inclusive = walk_cprofile(tracer)
    return Profile(count, unprofiled, cpu, spots, inclusive)


def report(cases: Sequence[Case], profiles: Sequence[Profile]) -> None:
    """Self time by group side by side, then the first case's top spots and watched functions."""
    keys = "".join(f" {'(' + case.key + ') µs':>10} {'share':>6}" for case in cases)
    print(f"\n{'self time by group, µs per call':<50}{keys}")
    groups = [p.groups() for p in profiles]
    for found in groups:  # subtotals for the groups taken by file
        for package in {package for _, package in BY_FILE}:
            total = sum(s for g, s in found.items() if g.startswith(package + ": "))
            found[f"{package} (all)"] = total

    def row(group: str) -> None:
        cells = ""
        for found, p in zip(groups, profiles, strict=True):
            seconds = found.get(group, 0.0)
            cells += f" {p.per_call(seconds):>10.1f} {seconds / p.busy:>6.1%}"
        print(f"{group[:50]:<50}{cells}")

    names = sorted({g for found in groups for g in found}, key=lambda g: -groups[0].get(g, 0.0))
    for group in names:
        shown = max(
            p.per_call(found.get(group, 0.0)) for found, p in zip(groups, profiles, strict=True)
        )
        if not group.startswith("idle") and "(all)" not in group and shown >= 0.3:
            row(group)
    print("-" * (50 + 18 * len(cases)))
    for group in names:
        if "(all)" in group:
            row(group)
    totals = "".join(f" {p.cpu / p.calls * 1e6:>10.1f} {'':>6}" for p in profiles)
    print(f"{'CPU per call (without the profiler)':<50}{totals}")
    totals = "".join(f" {p.profiled_cpu / p.calls * 1e6:>10.1f} {'':>6}" for p in profiles)
    print(f"{'CPU per call under the profiler':<50}{totals}")

    first = profiles[0]
    print(f"\n({cases[0].key}): top self-time spots{'µs/call':>57} {'share':>6}")
    spots = [(k, s) for k, s in first.spots.items() if not group_of(k[0]).startswith("idle")]
    for (place, function), seconds in sorted(spots, key=lambda item: -item[1])[:25]:
        where = f"{function} {short(place)}"
        print(f"  {where[:76]:<76} {first.per_call(seconds):>7.1f} {seconds / first.busy:>6.1%}")
    print(f"\n({cases[0].key}): inclusive time of the functions a call goes through{'µs/call':>17}")
    for fragment, function, label in WATCHED:
        seconds = sum(
            s
            for (path, name), s in first.inclusive.items()
            if fragment in "/" + path and name == function
        )
        if seconds:
            print(f"  {label:<76} {first.per_call(seconds):>7.1f}")


def profile(args: argparse.Namespace) -> None:
    profiler = args.profiler
    if profiler == "auto":
        profiler = "pyinstrument" if bench.available("pyinstrument") else "cProfile"
    cases = [BY_KEY[key] for key in args.cases]
    print(f"== profile: {', '.join(f'({c.key}) {c.label}' for c in cases)};")
    print(f"   {args.count} calls each, {args.concurrency} callers, asyncio, {profiler}")
    with bench.ingest_server() as url:
        profiles = [
            bench.run_loop(
                profiled(case, url, args.count, args.concurrency, profiler), uvloop=False
            )
            for case in cases
        ]
    report(cases, profiles)


# -- main ---------------------------------------------------------------------------------


def describe_run() -> None:
    found = []
    for name in ("pulsora-revenue", *PACKAGES):
        try:
            found.append(f"{name} {version(name)}")
        except PackageNotFoundError:
            found.append(f"{name} (not installed)")
    print(f"   Python {sys.version.split()[0]}; {', '.join(found)}")
    here = os.path.dirname(os.path.abspath(__file__))
    git = ["git", "-C", here]
    try:
        head = subprocess.run(
            [*git, "rev-parse", "--short", "HEAD"], capture_output=True, text=True
        )
        diff = subprocess.run([*git, "diff", "--stat"], capture_output=True, text=True)
    except OSError:
        return
    changes = (diff.stdout.strip().splitlines() or ["no uncommitted changes"])[-1].strip()
    print(f"   tree: {head.stdout.strip() or '?'}, {changes}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "which", nargs="?", default="all", choices=["all", "calls", "app", "profile"]
    )
    parser.add_argument("--rounds", type=int, default=4, help="keep the best of this many")
    parser.add_argument("--count", type=int, help="calls a measurement, requests a route a round")
    parser.add_argument("--quick", action="store_true", help="one round of 1,000: a smoke test")
    parser.add_argument("--cases", nargs="+", default=["c", "a"], choices=list(BY_KEY))
    parser.add_argument("--concurrency", type=int, default=32, help="callers (profile only)")
    parser.add_argument("--profiler", default="auto", choices=["auto", "pyinstrument", "cProfile"])
    args = parser.parse_args()
    if args.quick:
        args.rounds, args.count = 1, args.count or 1000
    if args.which == "profile":
        args.count = args.count or 20000
        if args.count < 1 or args.concurrency < 1:
            parser.error("--count and --concurrency must be positive")
        profile(args)
        return
    args.count = args.count or 3000
    if args.count < 1 or args.rounds < 1:
        parser.error("--count and --rounds must be positive")
    print(f"== one track() against the POST it makes (issue 19), {args.which}")
    describe_run()
    with bench.ingest_server() as url:
        if args.which in ("all", "calls"):
            calls(url, args.count, args.rounds)
        if args.which in ("all", "app"):
            app(url, args.count, args.rounds)


if __name__ == "__main__":
    if sys.argv[1:2] == ["_measure"]:
        measure_child(sys.argv[2])
    elif sys.argv[1:2] == ["_app"]:
        serve_app(sys.argv[2])
    else:
        main()
