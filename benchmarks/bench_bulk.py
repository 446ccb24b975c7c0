"""track_many benchmarks: throughput, flat memory, and a 429 storm.

Run: ``python benchmarks/bench_bulk.py [throughput|memory|storm|all]``. Every
figure is measured side by side with its reference in the same run; the ratios
matter, not the absolute numbers (this machine is shared and noisy). The
throughput and storm benchmarks start ``pulsora-revenue dev`` on a free loopback
port; the memory benchmark runs each size in a fresh process against an instant
in-process transport.
"""

from __future__ import annotations

import argparse
import resource
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import anyio
import httpx

from pulsora_revenue import Backend, Revenue, RevenueEvent
from pulsora_revenue._convert import encode
from pulsora_revenue._event import idempotency_key
from pulsora_revenue._transports import request_headers

TOKEN = "sec_benchmark_0000"
#: The headers track_many sends (the Idempotency-Key is added per event).
HEADERS = request_headers(TOKEN)


def rows(count: int, run: str) -> Iterator[dict[str, Any]]:
    """Generate *count* distinct, valid purchase rows."""
    for n in range(count):
        yield {
            "visitor_fingerprint": f"fp_{n % 997}",
            "session_id": f"sess_{n % 991}",
            "customer_id": f"cus_{n % 983}",
            "amount": f"{n % 500 + 1}.99",
            "currency": "usd",
            "transaction_id": f"{run}_{n}",
            "payment_processor": "stripe",
            "event_type": "purchase",
            "metadata": {"plan": "pro", "seats": n % 10 + 1},
        }


@contextmanager
def dev_server() -> Iterator[str]:
    """Run ``pulsora-revenue dev`` on a free loopback port; yield its ingest URL."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with tempfile.TemporaryDirectory() as folder:
        command = [sys.executable, "-m", "pulsora_revenue", "dev", "--port", str(port)]
        command += ["--db", f"{folder}/bench.sqlite"]
        server = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        base = f"http://127.0.0.1:{port}"
        try:
            for _ in range(200):
                try:
                    httpx.get(f"{base}/api/health").raise_for_status()
                    break
                except httpx.TransportError:
                    time.sleep(0.05)
            yield f"{base}/api/ingest"
        finally:
            server.terminate()
            server.wait(10)


async def bare_loop(url: str, jobs: list[tuple[bytes, str]], concurrency: int) -> float:
    """The reference: a bare httpx client, *concurrency* workers, pre-encoded bodies and keys."""
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    pending = iter(jobs)
    started = time.perf_counter()
    async with httpx.AsyncClient(headers=HEADERS, limits=limits) as client:

        async def worker() -> None:
            for body, key in pending:
                response = await client.post(url, content=body, headers={"Idempotency-Key": key})
                assert response.status_code == 202, response.text

        async with anyio.create_task_group() as group:
            for _ in range(concurrency):
                group.start_soon(worker)
    return time.perf_counter() - started


async def ours(url: str, events: list[Any], concurrency: int, backend: Backend) -> float:
    """``track_many`` over the same events, at the same concurrency."""
    started = time.perf_counter()
    async with Revenue(TOKEN, endpoint=url, backend=backend) as revenue:
        report = await revenue.track_many(events, concurrency=concurrency)
    assert report.sent == len(events), report
    return time.perf_counter() - started


def throughput(count: int, rounds: int) -> None:
    print(f"== throughput: {count} events a run, best of {rounds}, against pulsora-revenue dev")
    print("   track_many over httpx (the same transport), and with the default backend")
    header = f"{'concurrency':>11} {'bare httpx /s':>14} {'track_many /s':>14} {'ratio':>6}"
    print(f"{header} {'default /s':>11}")
    with dev_server() as url:
        for concurrency in (8, 32):
            best = dict.fromkeys(("bare", "httpx", "auto"), float("inf"))
            for _ in range(rounds):  # alternate, so that all see the same machine
                data = list(rows(count, uuid.uuid4().hex[:8]))
                made = [RevenueEvent(**row) for row in data]
                jobs = [(encode(event), idempotency_key(event)) for event in made]
                best["bare"] = min(best["bare"], anyio.run(bare_loop, url, jobs, concurrency))
                for backend in ("httpx", "auto"):
                    events = [RevenueEvent(**row) for row in rows(count, uuid.uuid4().hex[:8])]
                    seconds = anyio.run(ours, url, events, concurrency, backend)
                    best[backend] = min(best[backend], seconds)
            bare_rate, our_rate, auto_rate = (count / best[k] for k in ("bare", "httpx", "auto"))
            ratio = our_rate / bare_rate
            print(
                f"{concurrency:>11} {bare_rate:>14.0f} {our_rate:>14.0f} {ratio:>5.2f}x"
                f" {auto_rate:>11.0f}"
            )


def instant(request: httpx.Request) -> httpx.Response:
    return httpx.Response(202, content=b'{"success":true}')


async def memory_child(count: int) -> None:
    transport = httpx.MockTransport(instant)
    async with Revenue(TOKEN, transport=transport) as revenue:
        report = await revenue.track_many(rows(count, "m"), concurrency=8)
    assert report.sent == count
    print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)


def memory(small: int, large: int) -> None:
    print(f"== peak memory: {small} vs {large} generated events, instant transport")
    peaks = {}
    for count in (small, large):
        started = time.perf_counter()
        command = [sys.executable, __file__, "memory-child", str(count)]
        output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
        peaks[count] = int(output.split()[-1]) / 1024
        seconds = time.perf_counter() - started
        print(
            f"{count:>10} events: peak RSS {peaks[count]:.1f} MiB, {count / seconds:.0f} events/s"
        )
    print(f"ratio large/small: {peaks[large] / peaks[small]:.2f}x (target < 1.2x)")


async def storm_run(url: str, concurrency: int, gate: bool) -> int:
    """Count the requests sent while the server answers 429 for one second."""
    during = 0
    storm_ends = 0.0

    async def count(response: httpx.Response) -> None:
        nonlocal during
        if response.status_code == 429 and time.monotonic() < storm_ends:
            during += 1

    base = url.removesuffix("/api/ingest")
    async with httpx.AsyncClient(event_hooks={"response": [count]}) as client:
        outage = {"status": 429, "retry_after": 1, "seconds": 1}
        (await client.post(f"{base}/api/faults", json={"outage": outage})).raise_for_status()
        storm_ends = time.monotonic() + 1.0
        events = list(rows(200, uuid.uuid4().hex[:8]))
        if gate:
            async with Revenue(TOKEN, endpoint=url, http_client=client) as revenue:
                report = await revenue.track_many(events, concurrency=concurrency)
            assert report.sent == len(events)
        else:  # every worker for itself: retry each 429 after 50 ms, as scripts often do
            pending = iter(encode(RevenueEvent(**e)) for e in events)

            async def worker() -> None:
                for body in pending:
                    while (  # noqa: ASYNC110 (the naive loop is the point)
                        await client.post(url, content=body, headers=HEADERS)
                    ).status_code == 429:
                        await anyio.sleep(0.05)

            async with anyio.create_task_group() as group:
                for _ in range(concurrency):
                    group.start_soon(worker)
    return during


def storm() -> None:
    print("== 429 storm: the server answers 429 (Retry-After: 1) for one second")
    print(f"{'concurrency':>11} {'per-worker retry':>17} {'track_many':>11} {'target':>7}")
    with dev_server() as url:
        for concurrency in (8, 32):
            naive = anyio.run(storm_run, url, concurrency, False)
            gated = anyio.run(storm_run, url, concurrency, True)
            print(f"{concurrency:>11} {naive:>17} {gated:>11} {'<= ' + str(concurrency):>7}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "which", nargs="?", default="all", choices=["all", "throughput", "memory", "storm"]
    )
    parser.add_argument("--count", type=int, default=3000, help="events a throughput run")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--large", type=int, default=1_000_000)
    args = parser.parse_args()
    if args.which in ("all", "throughput"):
        throughput(args.count, args.rounds)
    if args.which in ("all", "memory"):
        memory(10_000, args.large)
    if args.which in ("all", "storm"):
        storm()


if __name__ == "__main__":
    if sys.argv[1:2] == ["memory-child"]:
        anyio.run(memory_child, int(sys.argv[2]))
    else:
        main()
