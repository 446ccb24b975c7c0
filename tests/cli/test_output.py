"""What the command line prints: one line per message off a terminal, counts said right."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import anyio
import pytest

from pulsora_revenue._cli import main
from pulsora_revenue._cli._words import counted

from ..conftest import DevServer
from ..data import EVENT
from .helpers import purchases, run_cli, write_jsonl


def test_messages_to_a_pipe_are_never_wrapped(tmp_path: Path) -> None:
    rows = [{**EVENT, "amount": "x" * 70}, {**EVENT, "currency": "a very long currency name"}]
    source = write_jsonl(tmp_path / f"{'long-name-' * 8}.jsonl", rows)
    done = run_cli("validate", str(source), env={**os.environ, "COLUMNS": "80"})
    assert done.returncode == 1
    lines = done.stdout.splitlines()
    assert len(lines) == 3, done.stdout  # one line per problem, and the verdict
    assert [line.split(":")[0] for line in lines[:2]] == ["line 1", "line 2"]
    assert max(len(line) for line in lines) > 80


def test_counts_are_said_with_the_right_number(
    env: DevServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    one = write_jsonl(tmp_path / "one.jsonl", purchases(1))
    assert run_cli("validate", str(one)).stdout == "1 row checked, all valid.\n"
    bad = write_jsonl(tmp_path / "bad.jsonl", [{**EVENT, "amount": "-2"}])
    assert main(["backfill", str(bad), "--no-progress"]) == 1
    out = capsys.readouterr().out
    assert f"1 row went to {bad}.failures.jsonl; fix it and backfill that file." in out
    assert "│ rate                             │ 0 events/s │" in out


def test_counted() -> None:
    assert [counted(n, "event") for n in (0, 1, 2)] == ["0 events", "1 event", "2 events"]
    assert counted(1, "dead letter") == "1 dead letter"
    assert counted(3, "entry", "entries") == "3 entries"


def test_outbox_counts_are_said_with_the_right_number(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from .test_cli import queue_one_while_down

    outbox = tmp_path / "outbox.sqlite"
    anyio.run(queue_one_while_down, outbox)
    assert main(["outbox", str(outbox)]) == 0
    assert "1 event waiting (oldest queued " in capsys.readouterr().out


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (["demo", "--events", "-5"], "argument --events: must be 1 or more, not -5"),
        (["demo", "--events", "0"], "argument --events: must be 1 or more, not 0"),
        (["backfill", "x.jsonl", "--concurrency", "0"], "must be 1 or more, not 0"),
        (["outbox", "x.sqlite", "--timeout", "-1"], "must be 0 seconds or more, not -1"),
    ],
)
def test_counts_below_one_are_refused(argv: list[str], says: str) -> None:
    done = run_cli(*argv)  # demo --events -5 used to say "Generated -5 payments", and exit 0
    assert done.returncode == 2
    assert says in done.stderr
    assert done.stdout == ""


def test_dev_on_a_busy_port_says_so_in_one_line_and_no_banner(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        done = run_cli("dev", "--port", str(port), "--db", str(tmp_path / "dev.sqlite"))
    assert done.returncode == 2
    assert done.stdout == ""  # no "Pulsora ingest emulator: http://..." that serves nothing
    assert done.stderr == f"error: port {port} is in use; pass --port\n"


def test_dev_on_port_0_says_the_port_it_took(tmp_path: Path) -> None:
    command = [sys.executable, "-m", "pulsora_revenue", "dev", "--port", "0"]
    command += ["--db", str(tmp_path / "dev.sqlite")]
    with subprocess.Popen(command, stdout=subprocess.PIPE, text=True) as process:
        try:
            assert process.stdout is not None
            banner = process.stdout.readline()
        finally:
            process.terminate()
    assert banner.startswith("Pulsora ingest emulator: http://127.0.0.1:")
    assert ":0/" not in banner
