"""``SyncRevenue.track`` from 8 threads against ``Revenue.track`` at concurrency 8 (issue 20).

Run: ``python benchmarks/bench_sync.py [--rounds R] [--count N] [--quick]`` (a default
run takes about four minutes on two cores; ``--quick`` about a minute).

**What is measured.** Each case makes ``count`` calls of ``track(**fields)``, the keyword
fields a handler would pass (a purchase of "49.99" "usd", a unique ``transaction_id``),
against the raw keep-alive ingest server of ``bench_transports.py``, which answers 202
in its own process, so that the server's CPU is not in the caller's:

- (a) ``Revenue.track`` on asyncio, 8 tasks that each call in a loop; (au) the same
  on uvloop;
- (s) ``SyncRevenue.track`` from 8 threads that each call in a loop (a thread pool,
  as a WSGI server or a Celery worker with threads has), one shared client: its
  calls run on its own event loop (uvloop's, installed with ``speed``), in its own
  thread;
- (t) no client: ``http.client`` from the same 8 threads, each with a keep-alive
  connection of its own, validating, encoding and keying each event itself; no
  loop, no hand-off, no retries: the ceiling of any sync client from 8 threads;
- (ah), (ahu), (sh): (a), (au) and (s) on the httpx backend (``backend="httpx"``), with
  a third of the calls (an httpx call costs some ten times an aiohttp one).

(a), (au) and (s) use the aiohttp backend, the default with the ``speed`` extra. Every
measurement runs in a fresh process: it opens its client, warms it up (1,000 calls
from all 8 callers, so every connection is open), then times ``count`` calls with
``time.perf_counter`` (wall) and ``time.process_time`` (the CPU of the whole process:
the callers' threads and the client's loop thread alike). The sync cases also time
leaving ``with SyncRevenue(...)`` ("close ms"), and the parent times how long every
child takes to exit once it has printed its figures ("exit ms").

**Reading it.** The cases take turns within a round, in an order that rotates between
rounds, each sync case right next to its async pairs; the best (highest) calls/s and
lowest CPU per call of the rounds are kept. "sync / async" is the throughput of (s) over
(a) (and over (au); (t) over (a) for the ceiling), best against best (target: at least
0.8x, printed with PASS or MISS; the exit code is 0 either way), with the range of the
same ratio round by round, where the two ran a few seconds apart. Only ratios within one
run mean anything: on this shared machine single figures move by 5 to 10% between runs,
which "spread" (the worst round's wall time over the best's) shows; above some 15%, run
it again.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from statistics import median
from typing import Any, Literal

import bench_transports as bench  # the sibling script: Python puts its folder on sys.path

CALLERS = 8
WARMUP = 1000
TARGET = 0.8
PACKAGES = ("pulsora-revenue", "aiohttp", "httpx", "anyio", "orjson", "uvloop")

Fields = dict[str, Any]
Backend = Literal["aiohttp", "httpx"]


@dataclass(frozen=True)
class Case:
    """One row: who calls ``track`` (asyncio tasks or threads), over which backend."""

    key: str
    label: str
    sync: bool
    backend: Backend
    share: float = 1.0  # of --count: an httpx call costs about ten aiohttp calls
    uvloop: bool = False  # the async cases: run on uvloop rather than asyncio's own loop
    plain: bool = False  # no client: http.client from each thread (the ceiling of threads)

    def calls(self, count: int) -> int:
        return max(200, round(count * self.share))


CASES = (
    Case("a", f"Revenue.track, {CALLERS} tasks, aiohttp", False, "aiohttp"),
    Case("au", f"Revenue.track, {CALLERS} tasks, aiohttp, uvloop", False, "aiohttp", uvloop=True),
    Case("s", f"SyncRevenue.track, {CALLERS} threads, aiohttp", True, "aiohttp"),
    Case("t", f"http.client, {CALLERS} threads, no client", True, "aiohttp", plain=True),
    Case("ah", f"Revenue.track, {CALLERS} tasks, httpx", False, "httpx", 0.3),
    Case("ahu", f"Revenue.track, {CALLERS} tasks, httpx, uvloop", False, "httpx", 0.3, uvloop=True),
    Case("sh", f"SyncRevenue.track, {CALLERS} threads, httpx", True, "httpx", 0.3),
)
BY_KEY = {case.key: case for case in CASES}
GROUPS = (("s", "a", "au", "t"), ("sh", "ah", "ahu"))  # (sync, its async pairs)
PAIRS = (("s", "a"), ("s", "au"), ("t", "a"), ("sh", "ah"), ("sh", "ahu"))


def fields(count: int, run: str) -> list[Fields]:
    """Keyword fields of *count* distinct purchases, as a webhook handler would pass them."""
    return [
        {
            "visitor_fingerprint": f"fp_{run}_{n % 997:04d}",
            "session_id": f"sess_{run}_{n % 991:04d}",
            "customer_id": f"cus_{n % 983:06d}",
            "amount": "49.99",
            "currency": "usd",
            "transaction_id": f"pi_{run}_{n:09d}",
            "event_type": "purchase",
        }
        for n in range(count)
    ]


def check(status: int | None) -> None:
    if status != 202:
        raise RuntimeError(f"HTTP {status}")


# -- the two callers (in the measuring process) -------------------------------------------


class Clock:
    """Wall and CPU time (the whole process's: every thread) of what runs inside it."""

    def __enter__(self) -> Clock:
        self.wall, self.cpu = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *exc: object) -> None:
        self.wall = time.perf_counter() - self.wall
        self.cpu = time.process_time() - self.cpu


async def async_calls(case: Case, url: str, warm: list[Fields], items: list[Fields]) -> Clock:
    """Call ``Revenue.track`` from CALLERS tasks: warm up, then time *items*."""
    import asyncio

    from pulsora_revenue import Revenue

    async with Revenue(bench.TOKEN, endpoint=url, backend=case.backend) as revenue:

        async def drive(batch: list[Fields]) -> None:
            pending = iter(batch)

            async def caller() -> None:
                for item in pending:
                    check((await revenue.track(**item)).status_code)

            async with asyncio.TaskGroup() as group:
                for _ in range(CALLERS):
                    group.create_task(caller())

        await drive(warm)
        with Clock() as clock:
            await drive(items)
    return clock


def in_threads(
    pool: ThreadPoolExecutor, call: Callable[[Fields], None], batch: list[Fields]
) -> None:
    """Make one call per item from CALLERS threads of *pool*, each calling in a loop."""
    pending = iter(batch)  # next() on a list iterator is one C call: safe between threads
    gate = threading.Barrier(CALLERS)

    def caller() -> None:
        gate.wait()  # start together: no thread takes a head start while others spawn
        for item in pending:
            call(item)

    for future in [pool.submit(caller) for _ in range(CALLERS)]:
        future.result()  # re-raises what a thread raised


def sync_calls(case: Case, url: str, warm: list[Fields], items: list[Fields]) -> dict[str, float]:
    """Call ``SyncRevenue.track`` from CALLERS threads: warm up, time *items*, then close."""
    from pulsora_revenue import SyncRevenue

    with ThreadPoolExecutor(CALLERS) as pool:
        revenue = SyncRevenue(bench.TOKEN, endpoint=url, backend=case.backend)
        with revenue:

            def call(item: Fields) -> None:
                check(revenue.track(**item).status_code)

            in_threads(pool, call, warm)  # the pool's threads start here, not on the clock
            with Clock() as clock:
                in_threads(pool, call, items)
            closing = time.perf_counter()
        closing = time.perf_counter() - closing
    return {"seconds": clock.wall, "cpu": clock.cpu, "close": closing}


def plain_calls(url: str, warm: list[Fields], items: list[Fields]) -> dict[str, float]:
    """Validate, encode and POST each item with ``http.client`` from CALLERS threads.

    No loop and no hand-off: each thread has its own keep-alive connection and
    does in itself what a call costs besides the HTTP stack (the event, its body,
    its key). No retries, deadline or pool: what any sync client from 8 threads
    could reach at best.
    """
    import http.client
    from urllib.parse import urlsplit

    from pulsora_revenue import RevenueEvent
    from pulsora_revenue._convert import encode
    from pulsora_revenue._event import idempotency_key

    where = urlsplit(url)
    headers = bench.request_headers()
    local = threading.local()

    def call(item: Fields) -> None:
        if not hasattr(local, "connection"):
            local.connection = http.client.HTTPConnection(where.hostname or "", where.port)
        event = RevenueEvent(**item)
        body = encode(event)
        local.connection.request(
            "POST", where.path, body, headers | {"Idempotency-Key": idempotency_key(event)}
        )
        answer = local.connection.getresponse()
        answer.read()
        check(answer.status)

    with ThreadPoolExecutor(CALLERS) as pool:
        in_threads(pool, call, warm)
        with Clock() as clock:
            in_threads(pool, call, items)
    return {"seconds": clock.wall, "cpu": clock.cpu, "close": 0.0}


def timed(case: Case, url: str, count: int) -> dict[str, float]:
    """Set up and warm up *case*, then time *count* calls (their fields made beforehand)."""
    warm, items = fields(WARMUP, "warm"), fields(count, f"t{os.getpid()}")
    if case.plain:
        return plain_calls(url, warm, items)
    if case.sync:
        return sync_calls(case, url, warm, items)
    clock = bench.run_loop(async_calls(case, url, warm, items), uvloop=case.uvloop)
    return {"seconds": clock.wall, "cpu": clock.cpu}


def measure_child(spec: str) -> None:
    """The hidden ``_measure`` sub-command: one measurement, printed as JSON."""
    settings = json.loads(spec)
    figures = timed(BY_KEY[settings["case"]], settings["url"], settings["count"])
    print(json.dumps(figures | {"printed_at": time.time()}), flush=True)


def measure(case: Case, url: str, count: int) -> dict[str, float] | str:
    """Run one measurement in a fresh process; return its figures or why it failed."""
    spec = json.dumps({"case": case.key, "url": url, "count": count})
    # Loopback only: no proxy from the environment may see these requests.
    env = {key: value for key, value in os.environ.items() if "proxy" not in key.lower()}
    env["PYTHONHASHSEED"] = "0"  # the same dict and set layouts in every run
    command = [sys.executable, __file__, "_measure", spec]
    try:
        done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=120)
    except subprocess.TimeoutExpired:
        return "timed out (a hang?)"
    ended = time.time()
    if done.returncode != 0:
        return (done.stderr.strip().splitlines() or ["no output"])[-1][:90]
    figures: dict[str, float] = json.loads(done.stdout.strip().splitlines()[-1])
    figures["exit"] = ended - figures.pop("printed_at")
    if noise := done.stderr.strip():  # a quiet exit prints nothing
        figures["stderr_lines"] = len(noise.splitlines())
        print(f"   ({case.key}) wrote to stderr: {noise.splitlines()[-1][:90]}", flush=True)
    return figures


# -- the comparison ---------------------------------------------------------------------------


def package_versions() -> str:
    found = []
    for name in PACKAGES:
        try:
            found.append(f"{name} {version(name)}")
        except PackageNotFoundError:
            found.append(f"{name} (not installed)")
    return ", ".join(found)


def order(round_: int) -> list[Case]:
    """The cases of one round: groups take turns, and within a group the order rotates."""
    groups = [[BY_KEY[key] for key in group] for group in GROUPS]
    if round_ % 2:
        groups = groups[::-1]
    shift = round_ % len(GROUPS[0])
    return [case for group in groups for case in group[shift:] + group[:shift]]


def run_rounds(url: str, count: int, rounds: int) -> dict[str, list[dict[str, float]]]:
    """Measure every case *rounds* times; a failure is reported and leaves a gap."""
    runs: dict[str, list[dict[str, float]]] = {case.key: [] for case in CASES}
    for round_ in range(rounds):
        for case in order(round_):
            result = measure(case, url, case.calls(count))
            if isinstance(result, str):
                print(f"   ({case.key}) failed in round {round_ + 1}: {result}", flush=True)
                continue
            result["rate"] = case.calls(count) / result["seconds"]
            result["us"] = result["cpu"] / case.calls(count) * 1e6
            runs[case.key].append(result)
        print(f"   round {round_ + 1} of {rounds} done", flush=True)
    return runs


def table(runs: dict[str, list[dict[str, float]]]) -> None:
    print(
        f"\n{'case':<46} {'calls/s':>8} {'µs/call':>8} {'spread':>7} {'close ms':>9} {'exit ms':>8}"
    )
    for case in CASES:
        done = runs[case.key]
        if not done:
            print(f"{'(' + case.key + ') ' + case.label:<46} {'failed':>8}")
            continue
        rate, used = max(r["rate"] for r in done), min(r["us"] for r in done)
        spread = f"{max(r['seconds'] for r in done) / min(r['seconds'] for r in done) - 1:+.0%}"
        closing = (
            f"{max(r['close'] for r in done) * 1e3:.0f}" if case.sync and not case.plain else "-"
        )
        exiting = f"{max(r['exit'] for r in done) * 1e3:.0f}"
        name = f"({case.key}) {case.label}"
        print(f"{name:<46} {rate:>8.0f} {used:>8.1f} {spread:>7} {closing:>9} {exiting:>8}")
    print("   best of the rounds; spread: worst wall time over best; close, exit: the worst")


def verdicts(runs: dict[str, list[dict[str, float]]]) -> None:
    print(f"\n== target: SyncRevenue's throughput at least {TARGET:.1f}x Revenue's")
    for sync, async_ in PAIRS:
        ours, theirs = runs[sync], runs[async_]
        if not ours or not theirs:
            print(f"   ({sync}) / ({async_}): -")
            continue
        best = max(r["rate"] for r in ours) / max(r["rate"] for r in theirs)
        paired = [s["rate"] / a["rate"] for s, a in zip(ours, theirs, strict=False)]
        cpu = min(r["us"] for r in ours) / min(r["us"] for r in theirs)
        verdict = "PASS" if best >= TARGET else "MISS"
        stack = "http.client" if BY_KEY[sync].plain else BY_KEY[sync].backend
        loop = "uvloop" if BY_KEY[async_].uvloop else "asyncio"
        print(
            f"   ({sync}) / ({async_}) {stack:<12}{loop:<8}{best:.2f}x {verdict}"
            f"  (round by round {min(paired):.2f}-{max(paired):.2f}x,"
            f" median {median(paired):.2f}x); CPU per call {cpu:.2f}x"
        )


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=5000, help="timed calls (httpx: 0.3x)")
    parser.add_argument("--rounds", type=int, default=5, help="keep the best of this many")
    parser.add_argument("--quick", action="store_true", help="2 rounds of 1,500 calls")
    args = parser.parse_args(argv)
    if args.quick:
        args.count, args.rounds = 1500, 2
    if args.count < 1 or args.rounds < 1:
        parser.error("--count and --rounds must be positive")
    httpx_calls = BY_KEY["ah"].calls(args.count)
    print(f"== SyncRevenue.track from {CALLERS} threads vs Revenue.track at concurrency {CALLERS}")
    print(f"   {args.count} calls a measurement (httpx: {httpx_calls}), best of {args.rounds}")
    print("   rounds, a fresh process a measurement; server: raw HTTP/1.1, own process")
    print(f"   Python {sys.version.split()[0]}; {package_versions()}")
    with bench.ingest_server() as url:
        runs = run_rounds(url, args.count, args.rounds)
    table(runs)
    # Other work on the machine squeezes both cases toward the CPU left to them: say so.
    print(f"   load average at the end: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    verdicts(runs)


if __name__ == "__main__":
    if sys.argv[1:2] == ["_measure"]:
        measure_child(sys.argv[2])
    else:
        main()
