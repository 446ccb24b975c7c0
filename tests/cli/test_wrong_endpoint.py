"""A backfill to a wrong endpoint stops within seconds, says why in one line, and resumes."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ..conftest import DevServer
from ..data import EVENT, TOKEN


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])  # closed again: nothing listens there


def backfill(source: Path, endpoint: str) -> tuple[subprocess.CompletedProcess[str], float]:
    """Run ``pulsora-revenue backfill`` as a process, stdout a pipe; return it and its time."""
    env = {**os.environ, "PULSORA_SECRET_TOKEN": TOKEN, "PULSORA_ENDPOINT": endpoint}
    command = [sys.executable, "-m", "pulsora_revenue", "backfill", str(source)]
    started = time.monotonic()
    done = subprocess.run(command, capture_output=True, text=True, timeout=120, env=env)
    return done, time.monotonic() - started


@pytest.fixture
def rows(tmp_path: Path) -> Path:
    source = tmp_path / "rows.jsonl"
    lines = (json.dumps({**EVENT, "transaction_id": f"tx_{n}"}) for n in range(2_000))
    source.write_text("\n".join(lines) + "\n")
    return source


@pytest.mark.parametrize("wrong", ["nothing listening", "a 404 path"])
def test_a_wrong_endpoint_stops_the_backfill_and_it_resumes(
    wrong: str, rows: Path, server: DevServer
) -> None:
    if wrong == "nothing listening":
        endpoint = f"http://127.0.0.1:{closed_port()}/api/ingest"
    else:
        endpoint = f"{server.url}/api/v2/ingest"
    done, took = backfill(rows, endpoint)
    assert done.returncode == 1, done.stdout + done.stderr
    assert took < 30, "within seconds, not one failure after another for every row"
    (line,) = [line for line in done.stderr.splitlines() if line.strip()]
    assert line.startswith("error: Stopped: the first 5 events all failed the same way at ")
    assert endpoint in line
    assert ("could not connect" if wrong == "nothing listening" else "HTTP 404") in line
    assert "Traceback" not in done.stdout + done.stderr
    assert TOKEN not in done.stdout + done.stderr

    again, _ = backfill(rows, server.endpoint)  # the endpoint fixed: the run resumes
    assert again.returncode == 0, again.stdout + again.stderr
    assert len(server.events()) == 2_000
