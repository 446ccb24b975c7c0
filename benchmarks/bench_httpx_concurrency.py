"""track_many over httpx at high concurrency: throughput, failures, repeats.

Run: ``python benchmarks/bench_httpx_concurrency.py [rows|caps|all] [--events N]``.
``rows`` runs ``track_many(backend="httpx")`` at concurrency 32, 256 and 1,024
against ``pulsora-revenue dev`` (an instant server, in its own process) and
prints events/s, failed events, events sent more than once, and the cap on
httpx's connections. ``caps`` runs concurrency 1,024 with the cap set to each
of 16 to 256 (how the cap was chosen); ``latency`` does the same against a
server that answers every request 50 ms late, as one across a network would.
Figures are from one run side by side: this machine is shared and noisy.
"""

from __future__ import annotations

import argparse
import time
import uuid
from typing import Any

import anyio
import httpx
from bench_bulk import TOKEN, dev_server, rows

from pulsora_revenue import Outcome, Revenue
from pulsora_revenue._transports._httpx import HttpxSender

CONCURRENCIES = (32, 256, 1024)
CAPS = (16, 32, 64, 128, 256)
MODES = ["rows", "caps", "latency", "all"]


def current_cap() -> str:
    cap = getattr(HttpxSender, "MAX_CONNECTIONS", None)
    return "none (pool = concurrency)" if cap is None else str(cap)


async def one_run(url: str, events: int, concurrency: int) -> tuple[float, int, int]:
    """Return (events/s, failed, sent more than once) of one run."""
    repeats = 0

    def count(outcome: Outcome) -> None:
        nonlocal repeats
        if outcome.result is not None and outcome.result.attempts > 1:
            repeats += 1

    async with Revenue(TOKEN, endpoint=url, backend="httpx") as revenue:
        started = time.perf_counter()
        report = await revenue.track_many(
            rows(events, uuid.uuid4().hex[:8]), concurrency=concurrency, on_result=count
        )
        elapsed = time.perf_counter() - started
    return events / elapsed, report.failed, repeats


def measure(url: str, events: int, concurrency: int) -> tuple[float, int, int, int]:
    """``one_run``, and how many events the server stored meanwhile."""
    health = url.removesuffix("/api/ingest") + "/api/health"
    before = httpx.get(health).json()["events"]
    rate, failed, repeats = anyio.run(one_run, url, events, concurrency)
    stored: int = httpx.get(health).json()["events"] - before
    return rate, failed, repeats, stored


def table(header: str, lines: list[list[Any]]) -> None:
    print(header)
    print("| " + " | ".join("---" for _ in header.split("|")[1:-1]) + " |")
    for line in lines:
        print("| " + " | ".join(str(cell) for cell in line) + " |")
    print()


def bench_rows(url: str, events: int) -> None:
    lines: list[list[Any]] = []
    for concurrency in CONCURRENCIES:
        rate, failed, repeats, stored = measure(url, events, concurrency)
        lines.append([concurrency, f"{rate:,.0f}", failed, repeats, stored, current_cap()])
    table(f"| concurrency | events/s | failed | sent twice | stored (of {events:,}) | cap |", lines)


def bench_caps(url: str, events: int, *, latency: float = 0.0) -> None:
    if not hasattr(HttpxSender, "MAX_CONNECTIONS"):
        print("no HttpxSender.MAX_CONNECTIONS in this version: no caps to compare\n")
        return
    saved = HttpxSender.MAX_CONNECTIONS
    lines: list[list[Any]] = []
    faults = url.removesuffix("/api/ingest") + "/api/faults"
    if latency:  # every answer comes this much later: a server across a network
        spec = {"outage": {"delay": latency, "seconds": 3600}}
        httpx.post(faults, json=spec).raise_for_status()
    try:
        for cap in CAPS:
            HttpxSender.MAX_CONNECTIONS = cap
            rate, failed, repeats, stored = measure(url, events, 1024)
            lines.append([cap, f"{rate:,.0f}", failed, repeats, stored])
    finally:
        HttpxSender.MAX_CONNECTIONS = saved
        httpx.delete(faults).raise_for_status()
    where = f"{latency * 1000:g} ms answers" if latency else "instant answers"
    table(
        f"| cap (concurrency 1,024, {where}) | events/s | failed | sent twice "
        f"| stored (of {events:,}) |",
        lines,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("which", nargs="?", default="all", choices=MODES)
    parser.add_argument("--events", type=int, default=3000)
    args = parser.parse_args()
    with dev_server() as url:
        if args.which in ("rows", "all"):
            bench_rows(url, args.events)
        if args.which in ("caps", "all"):
            bench_caps(url, args.events)
        if args.which in ("latency", "all"):
            bench_caps(url, args.events, latency=0.05)


if __name__ == "__main__":
    main()
