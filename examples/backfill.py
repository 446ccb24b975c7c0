"""Backfill historical payments from a JSON Lines file with ``track_many``.

Usage: ``python examples/backfill.py [FILE.jsonl]``. With no file, it writes a
sample of 2,000 rows (a few of them invalid or repeated) and sends them to an
in-process ``FakePulsora`` (both deleted at the end); with a file, it sends to
the endpoint in ``PULSORA_ENDPOINT`` (default: Pulsora itself) with
``PULSORA_SECRET_TOKEN``, and writes the failures to ``failures.jsonl`` beside it.
"""

from __future__ import annotations

import json
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio

from pulsora_revenue import Outcome, OutcomeStatus, Progress, Revenue
from pulsora_revenue.testing import FakePulsora


def read_jsonl(path: Path) -> Iterator[Any]:
    """Yield one decoded row per non-blank line, reading lazily."""
    with path.open(encoding="utf-8") as lines:
        for line in lines:
            if line.strip():
                yield json.loads(line)


def write_sample(path: Path, count: int = 2000) -> None:
    with path.open("w", encoding="utf-8") as out:
        for n in range(count):
            row = {
                "visitor_fingerprint": f"fp_{n}",
                "session_id": f"sess_{n}",
                "customer_id": f"cus_{n % 300}",
                "amount": f"{n % 90 + 9}.99",
                "currency": "eur" if n % 3 else "usd",
                "transaction_id": f"pi_{n % 1990}",  # the last ten repeat earlier rows
                "event_type": "purchase",
            }
            if n % 500 == 7:
                row["amount"] = "-1"  # invalid: a purchase must be positive
            out.write(json.dumps(row) + "\n")


async def backfill(path: Path, failures_path: Path, revenue: Revenue) -> bool:
    """Send every row of *path*; write failures to *failures_path*; True if all went."""
    with failures_path.open("w", encoding="utf-8") as failures:

        def on_result(outcome: Outcome) -> None:
            if outcome.status in (OutcomeStatus.INVALID, OutcomeStatus.FAILED):
                row = {"index": outcome.index, "error": str(outcome.error), "input": outcome.input}
                failures.write(json.dumps(row, default=str) + "\n")

        def on_progress(progress: Progress) -> None:
            print(
                f"\r{progress.done} done, {progress.sent} sent, "
                f"{progress.failed + progress.invalid} invalid or failed, {progress.rate:.0f}/s",
                end="",
                file=sys.stderr,
            )

        report = await revenue.track_many(
            read_jsonl(path),
            concurrency=8,
            on_result=on_result,
            on_progress=on_progress,
            keep_failures=False,  # they are in failures.jsonl already
        )
    print(
        f"\n{report.sent} sent, {report.duplicates} already recorded, "
        f"{report.skipped} repeats skipped, {report.invalid} invalid, {report.failed} failed "
        f"in {report.elapsed:.1f} s"
    )
    return report.ok


async def main() -> int:
    if len(sys.argv) > 1:
        path = Path(sys.argv[1])
        failures = path.with_name("failures.jsonl")
        async with Revenue() as revenue:
            ok = await backfill(path, failures, revenue)
        if not ok:
            print(f"The invalid and failed rows are in {failures}")
        return 0 if ok else 1
    fake = FakePulsora()
    with tempfile.TemporaryDirectory() as folder:
        sample = Path(folder) / "payments.jsonl"
        write_sample(sample)
        async with Revenue("sec_example_0000", transport=fake.transport) as revenue:
            await backfill(sample, Path(folder) / "failures.jsonl", revenue)
    print(f"FakePulsora holds {len(fake.events)} events")
    return 0


if __name__ == "__main__":
    sys.exit(anyio.run(main))
