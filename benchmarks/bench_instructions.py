"""Instructions per event, counted by valgrind: the speed path's layers, with little noise.

Run: ``python benchmarks/bench_instructions.py [--clients e e3 h i e2 g] [--concurrency 32]
[--count 6000]``. Needs valgrind (``apt install valgrind``).

``--hooks [--baseline REV] [--repeat N]`` counts what the instrumentation (hooks,
issue 23) costs ``track_many`` on the speed path (g) instead: without any hook,
with a hook that does nothing (its three methods overridden, so that every
record is built and dispatched), and, with ``--baseline``, the code of git
revision REV (before the instrumentation: its ``pulsora_revenue`` is exported to
a temporary folder put first on ``PYTHONPATH``), each the median of N runs.

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
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from io import BytesIO
from pathlib import Path
from typing import Any

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
    parser.add_argument("--hooks", action="store_true", help="what the hooks cost (g) instead")
    parser.add_argument("--baseline", metavar="REV", help="with --hooks: the code before them")
    parser.add_argument("--repeat", type=int, default=1, help="with --hooks: runs per median")
    args = parser.parse_args()
    if args.count < 8 or min(args.concurrency) < 1 or args.repeat < 1:
        parser.error("--count must be 8 or more, --concurrency and --repeat positive")
    if args.baseline and not args.hooks:
        parser.error("--baseline goes with --hooks")
    if shutil.which("valgrind") is None:
        raise SystemExit("valgrind is not installed: apt install valgrind")
    if args.hooks:
        compare_hooks(args.count, args.concurrency, args.baseline, args.repeat)
        return
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


# -- what the hooks cost ----------------------------------------------------------------------


@dataclass(frozen=True)
class Variant:
    """One way of running track_many (g): with a no-op hook or not, on this code or another's."""

    label: str
    hooks: bool = False
    code: str | None = None  # a folder holding another revision's pulsora_revenue


def install_no_op_hook() -> None:
    """Make ``pulsora_revenue.Revenue`` (as bench_transports imports it) take a no-op hook."""
    import pulsora_revenue
    from pulsora_revenue import Attempt, Delivery, Hooks, OutboxChange, Revenue

    class NoOp(Hooks):
        def on_attempt(self, attempt: Attempt) -> None:
            pass

        def on_delivery(self, delivery: Delivery) -> None:
            pass

        def on_outbox(self, change: OutboxChange) -> None:
            pass

    class Hooked(Revenue):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, hooks=[NoOp()], **kwargs)

    vars(pulsora_revenue)["Revenue"] = Hooked


def measure_child(spec: str) -> None:
    """The hidden ``_measure`` sub-command: bench_transports' own, with a no-op hook if asked."""
    settings = json.loads(spec)
    if settings.pop("hooks"):
        install_no_op_hook()
    bench.measure_child(json.dumps(settings))


def counted_variant(variant: Variant, url: str, count: int, setup: int, concurrency: int) -> int:
    """The instructions one run of track_many (g) as *variant* executes, start to end."""
    spec = {"client": "g", "url": url, "count": count, "concurrency": concurrency}
    spec |= {"uvloop": False, "setup": setup, "hooks": variant.hooks}
    env = {key: value for key, value in os.environ.items() if "proxy" not in key.lower()}
    env["PYTHONHASHSEED"] = "0"
    if variant.code is not None:
        env["PYTHONPATH"] = variant.code  # before the editable install's path
    command = [*VALGRIND, sys.executable, __file__, "_measure", json.dumps(spec)]
    limit = (120 + setup / 20) * SLOWDOWN
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=limit)
    found = TOTAL.search(done.stderr)
    if done.returncode != 0 or found is None:
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise RuntimeError(f"{variant.label}: {last}")
    return int(found.group(1).replace(",", ""))


@contextmanager
def exported(revision: str) -> Iterator[str]:
    """A temporary folder holding the ``pulsora_revenue`` of git *revision*."""
    root = Path(__file__).resolve().parent.parent
    archive = subprocess.run(
        ["git", "-C", str(root), "archive", revision, "pulsora_revenue"],
        capture_output=True,
        check=True,
    ).stdout
    with tempfile.TemporaryDirectory(prefix="pulsora-baseline-") as folder:
        with tarfile.open(fileobj=BytesIO(archive)) as tar:
            tar.extractall(folder, filter="data")
        yield folder


def compare_hooks(
    count: int, concurrencies: Sequence[int], baseline: str | None, repeat: int
) -> None:
    """Print track_many's instructions per event with and without hooks, side by side."""
    if bench.missing(bench.BY_KEY["g"]):
        raise SystemExit("aiohttp is not installed: pip install -e '.[speed]'")
    short, long = count // 4, count
    print(f"== what the hooks cost track_many (g): runs of {short} and {long} events,")
    print(f"   the median of {repeat}, under valgrind; {bench.package_versions()}")
    with (
        exported(baseline) if baseline else _nothing() as code,
        bench.ingest_server() as url,
        ThreadPoolExecutor(os.cpu_count()) as pool,
    ):
        variants = [Variant("(g) no hook"), Variant("(g) a no-op hook", hooks=True)]
        if code is not None:
            variants.insert(0, Variant(f"(g) at {baseline}, before hooks", code=code))
        runs = {
            (variant, concurrency, events, n): pool.submit(
                counted_variant, variant, url, events, long, concurrency
            )
            for variant in variants
            for concurrency in concurrencies
            for events in (short, long)
            for n in range(repeat)
        }
        for concurrency in concurrencies:

            def median(variant: Variant, events: int, concurrency: int = concurrency) -> float:
                found = [runs[variant, concurrency, events, n].result() for n in range(repeat)]
                return statistics.median(found)

            per_event = {
                variant: (median(variant, long) - median(variant, short)) / (long - short)
                for variant in variants
            }
            report_hooks(per_event, concurrency)


@contextmanager
def _nothing() -> Iterator[None]:
    yield None


def report_hooks(per_event: dict[Variant, float], concurrency: int) -> None:
    base = next(iter(per_event.values()))
    print(f"\n== concurrency {concurrency}")
    print(f"{'track_many':<44}{'instructions':>13}{'x (first)':>11}")
    for variant, count in per_event.items():
        print(f"{variant.label:<44}{count:>13,.0f}{count / base:>11.3f}")
    first, *rest = per_event
    if first.code is not None:
        overhead = per_event[rest[0]] / per_event[first] - 1
        print(f"target: the instrumentation without hooks adds {overhead:+.2%} (target <= +2%)")


if __name__ == "__main__":
    if sys.argv[1:2] == ["_measure"]:
        measure_child(sys.argv[2])
    else:
        main()
