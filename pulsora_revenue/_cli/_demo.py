"""``pulsora-revenue demo``: a generated sample, backfilled into the emulator, and its summary.

The emulator runs in a process of its own (``_demo_server``). In this one, the
server and the backfill would take turns on one interpreter lock: each SQLite
call of the backfill's checkpoint, which lets go of the lock, would wait for
the server's turn to end, and the demo ran at half a real backfill's rate.
"""

from __future__ import annotations

import argparse
import json
import random
import shlex
import subprocess
import sys
import tempfile
import time
import urllib.request
from decimal import Decimal
from pathlib import Path
from typing import Self

from rich.console import Console

from .._errors import ConfigurationError
from ._backfill import Tally, default_paths
from ._commands import run_backfill
from ._words import counted


def storm(events: int) -> dict[str, object]:
    """The faults scripted at the start, a few for each of a small sample's events.

    A 429 holds every worker for its Retry-After (a second, and the client's
    jitter); a 503 makes one event wait for its retry (half a second).
    """
    too_many: dict[str, object] = {"status": 429, "retry_after": 1}
    return {"faults": [too_many] * min(4, events) + [{"status": 503}] * min(6, events)}


#: The token the demo sends with: made up, the emulator takes any sec_ token.
DEMO_TOKEN = "sec_demo_0000000000"


def run_demo(args: argparse.Namespace, console: Console) -> int:
    """Generate a sample, backfill it into an emulator of its own, and print the summary."""
    folder = Path(args.dir) if args.dir else Path(tempfile.mkdtemp(prefix="pulsora-demo-"))
    folder.mkdir(parents=True, exist_ok=True)
    db, sample = folder / "pulsora-demo.sqlite", folder / "payments.jsonl"
    checkpoint, _ = default_paths(str(sample))  # backfill's own names
    for old in (db, checkpoint):  # every demo starts afresh (its emulator, on a new port)
        for path in (old, old.with_name(f"{old.name}-wal"), old.with_name(f"{old.name}-shm")):
            path.unlink(missing_ok=True)
    tally = Tally()
    with EmulatorProcess(db) as emulator:  # it starts while the sample is written
        written = write_sample(sample, args.events, random.Random(args.seed))
        console.print(
            f"Generated {counted(written, 'payment')} in {sample} (about 1% invalid, 1% repeated).",
            highlight=False,
        )
        url = emulator.url()
        where = f"at {url}/ until Ctrl-C" if args.keep else "for this demo (--keep keeps it)"
        console.print(f"Pulsora emulator running {where}.", highlight=False)
        _script(url, storm(args.events))
        console.print("Scripted: a burst of 429s (Retry-After: 1) and 503s at the start.\n")
        code = run_backfill(_backfill_args(sample, url), console, tally)
        if code not in (0, 1):  # stopped: the invalid rows (code 1) are there on purpose
            return code
        if tally.retried:
            console.print(f"{counted(tally.retried, 'event')} went through on a retry.")
        if args.keep:
            console.print(f"\nThe events, totals and rejections: {url}/  (Ctrl-C to stop)")
            _wait_for_ctrl_c()
    console.print(
        f"\nLook at them later with: pulsora-revenue dev --db {shlex.quote(str(db))}  "
        "(then http://127.0.0.1:8787/)",
        highlight=False,
        soft_wrap=True,  # one line even on a terminal: a command to copy whole
    )
    return 0


def _script(url: str, faults: dict[str, object]) -> None:
    """Script *faults* into the emulator at *url* (urllib: an httpx client costs more)."""
    request = urllib.request.Request(
        f"{url}/api/faults", json.dumps(faults).encode(), {"Content-Type": "application/json"}
    )
    no_proxy = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback
    no_proxy.open(request, timeout=10).close()


def _backfill_args(sample: Path, url: str) -> argparse.Namespace:
    """The arguments of ``backfill SAMPLE``, with every default, into the emulator at *url*."""
    return argparse.Namespace(
        file=str(sample),
        format="jsonl",
        metadata_columns=(),
        strict_columns=False,
        token_file=None,
        endpoint=f"{url}/api/ingest",
        checkpoint=None,
        failures=None,
        concurrency=8,
        rate=None,
        progress=True,
        token=DEMO_TOKEN,
    )


class EmulatorProcess:
    """The emulator, storing in *db*, run in a child process from construction on.

    The child stops when its standard input ends: on ``close`` (or leaving a
    ``with`` block), or when this process ends in any way.
    """

    def __init__(self, db: Path) -> None:
        command = [sys.executable, "-m", "pulsora_revenue._cli._demo_server", str(db)]
        self._child = subprocess.Popen(
            command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        self._url = ""

    def url(self) -> str:
        """The emulator's base URL, once it accepts connections."""
        if not self._url and self._child.stdout is not None:
            self._url = self._child.stdout.readline().strip()
        if not self._url.startswith("http://"):
            code = self._child.wait()
            raise ConfigurationError(f"the emulator could not start (exit code {code})")
        return self._url

    def close(self) -> None:
        """Stop the emulator, and wait for it to end (10 s at most, then kill it)."""
        for pipe in (self._child.stdin, self._child.stdout):
            if pipe is not None:
                pipe.close()
        try:
            self._child.wait(10)
        except subprocess.TimeoutExpired:
            self._child.kill()
            self._child.wait()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def write_sample(path: Path, count: int, rng: random.Random) -> int:
    """Write *count* plausible payments, about 1% invalid and 1% repeated."""
    kinds = ["purchase"] * 6 + ["subscription", "renewal", "renewal", "refund"]
    with path.open("w", encoding="utf-8") as out:
        for n in range(count):
            kind = rng.choice(kinds)
            amount = f"{rng.randint(5, 300)}.{rng.randint(0, 99):02d}"
            row: dict[str, object] = {
                "visitor_fingerprint": f"fp_{rng.getrandbits(48):012x}",
                "session_id": f"sess_{rng.getrandbits(40):010x}",
                "customer_id": f"cus_{rng.randint(1, count // 3 + 1):06d}",
                "amount": f"-{amount}" if kind == "refund" else amount,
                "currency": rng.choice(["usd", "usd", "eur", "gbp", "jpy"]),
                "transaction_id": f"pi_demo_{n:07d}",
                "payment_processor": "stripe",
                "event_type": kind,
            }
            if row["currency"] == "jpy":  # no decimals in yen
                row["amount"] = str((Decimal(str(row["amount"])) * 150).to_integral_value())
            if kind == "subscription":
                row["mrr_impact"] = row["amount"]
            if n % 97 == 13:
                row["amount"] = "-1" if kind != "refund" else "1"  # invalid: wrong sign
            if n % 89 == 7 and n > 0:
                row["transaction_id"] = f"pi_demo_{n - 1:07d}"  # a repeat of the row before
                row["event_type"] = "purchase"
            out.write(json.dumps(row) + "\n")
    return count


def _wait_for_ctrl_c() -> None:
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
