"""What the command line's tests share: input files, and the command line as a process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from ..conftest import DevServer
from ..data import EVENT, TOKEN


def write_jsonl(path: Path, rows: list[dict[str, object]], extra_lines: list[str] = []) -> Path:  # noqa: B006
    path.write_text("".join(json.dumps(r) + "\n" for r in rows) + "".join(extra_lines))
    return path


def purchases(count: int, prefix: str = "tx") -> list[dict[str, object]]:
    return [{**EVENT, "transaction_id": f"{prefix}_{n}"} for n in range(count)]


def run_cli(
    *args: str, stdin: str | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run ``python -m pulsora_revenue ARGS``, its standard output and error pipes."""
    command = [sys.executable, "-m", "pulsora_revenue", *args]
    return subprocess.run(
        command, input=stdin, capture_output=True, text=True, timeout=120, env=env
    )


def cli_env(server: DevServer) -> dict[str, str]:
    return {**os.environ, "PULSORA_SECRET_TOKEN": TOKEN, "PULSORA_ENDPOINT": server.endpoint}


def summary_counts(out: str) -> dict[str, int]:
    """The rows of the backfill's summary table: outcome -> events."""
    cells = [[cell.strip() for cell in line.strip("│ ").split("│")] for line in out.splitlines()]
    return {row[0]: int(row[1]) for row in cells if len(row) == 2 and row[1].isdigit()}
