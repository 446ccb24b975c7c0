"""Instructions per event, counted by valgrind: the speed path's layers, with little noise.

Run: ``python benchmarks/bench_instructions.py [--clients e e3 h i e2 g] [--concurrency 32]
[--count 6000]``. Needs valgrind (``apt install valgrind``).

CPU time on a shared machine moves by 5 to 10% between runs, more than the
differences between the speed path's layers. The number of instructions a
process runs moves by about 1% (how many answers one turn of the event loop
finds ready varies a little). So each client of ``bench_transports.py`` runs
here under valgrind's cachegrind, twice: sending ``count // 4`` events, then
``count``, after building the payloads for ``count`` both times. The difference
of the two totals, divided by the difference of the counts, is what one more
event costs: start-up, imports, set-up and warm-up cancel out. Shorter runs
count more per event (at 2,000 and 500 events, about 1% more for ``track_many``
and 0.5% for the bare loop that encodes); at 6,000 and 12,000 the figures agree.

Instructions are not time: they do not see cache misses, and our per-event work
runs between two HTTP requests, from cold caches. So far CPU time has put our
overhead higher than instructions do; ``bench_transports.py`` gives CPU times.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import sys
from concurrent.futures import ThreadPoolExecutor

import bench_transports as bench  # the sibling script: Python puts its folder on sys.path

VALGRIND = ("valgrind", "--tool=cachegrind", "--cache-sim=no", "--cachegrind-out-file=/dev/null")
#: Under valgrind a process runs up to about this many times slower.
SLOWDOWN = 80.0
TOTAL = re.compile(r"I\s+refs:\s+([\d,]+)")


def counted(client: bench.Client, url: str, count: int, setup: int, concurrency: int) -> int:
    """The instructions one run of *client* executes, start to end."""
    done = bench.run_child(
        client, url, count, concurrency, setup=setup, prefix=VALGRIND, slowdown=SLOWDOWN
    )
    if isinstance(done, str):
        raise RuntimeError(f"{client.label}: {done}")
    found = TOTAL.search(done.stderr)
    if found is None:
        raise RuntimeError(f"{client.label}: no instruction count in valgrind's output")
    return int(found.group(1).replace(",", ""))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    keys = [client.key for client in bench.CLIENTS]
    parser.add_argument("--clients", nargs="+", default=list(bench.LAYERS), choices=keys)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[32])
    parser.add_argument("--count", type=int, default=6000, help="events of the longer run")
    args = parser.parse_args()
    if args.count < 8 or min(args.concurrency) < 1:
        parser.error("--count must be 8 or more, --concurrency positive")
    if shutil.which("valgrind") is None:
        raise SystemExit("valgrind is not installed: apt install valgrind")
    clients = [bench.BY_KEY[key] for key in args.clients]
    if skipped := [client.label for client in clients if bench.missing(client)]:
        raise SystemExit(f"not installed for {', '.join(skipped)}: pip install -e '.[speed]'")
    short, long = args.count // 4, args.count
    print(f"== instructions per event: runs of {short} and {long} events under valgrind")
    print(f"   Python {sys.version.split()[0]}; {bench.package_versions()}")
    with bench.ingest_server() as url, ThreadPoolExecutor(os.cpu_count()) as pool:
        runs = {
            (client.key, concurrency, count): pool.submit(
                counted, client, url, count, long, concurrency
            )
            for client in clients
            for concurrency in args.concurrency
            for count in (short, long)
        }
        for concurrency in args.concurrency:
            per_event = {
                client.key: (
                    runs[client.key, concurrency, long].result()
                    - runs[client.key, concurrency, short].result()
                )
                / (long - short)
                for client in clients
            }
            report(per_event, concurrency)


def report(per_event: dict[str, float], concurrency: int) -> None:
    bases = [key for key in ("e", "e2", "e3") if key in per_event]
    header = "".join(f"{'x (' + key + ')':>9}" for key in bases)
    print(f"\n== concurrency {concurrency}")
    print(f"{'client':<44}{'instructions':>13}{header}")
    for key, count in per_event.items():
        cells = "".join(f"{count / per_event[base]:>9.3f}" for base in bases)
        print(f"{bench.BY_KEY[key].label:<44}{count:>13,.0f}{cells}")
    if "g" in per_event and bases:
        print("target (2): track_many's overhead over the bare loop, in instructions")
        for base in bases:
            overhead = per_event["g"] / per_event[base] - 1
            print(f"    (g) over ({base}): {overhead:+.1%} (target < +10%)")


if __name__ == "__main__":
    main()
