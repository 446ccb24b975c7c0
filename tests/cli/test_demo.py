"""The demo as a user meets it, and the failures file a backfill leaves (issue 21)."""

from __future__ import annotations

import json
import re
import shlex
import signal
import subprocess
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path

import anyio
import httpx
import pytest

from pulsora_revenue._cli import main
from pulsora_revenue._cli._backfill import default_paths

from ..conftest import DevServer
from ..data import EVENT
from .helpers import purchases, summary_counts, write_jsonl

#: The demo, run as its command runs it, then: did this process load the server stack?
DEMO = (
    "import sys\n"
    "from pulsora_revenue._cli import main\n"
    "code = main(sys.argv[1:])\n"
    "print('uvicorn loaded here:', 'uvicorn' in sys.modules)\n"
    "sys.exit(code)\n"
)


def run_demo(*args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-c", DEMO, "demo", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=120)


def test_the_demo_leaves_no_dead_link_and_a_command_to_copy(tmp_path: Path) -> None:
    done = run_demo("--events", "300", "--dir", str(tmp_path))
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    assert "Generated 300 payments" in out
    counts = summary_counts(out)
    assert counts["sent"] + counts["repeated in the input (skipped)"] + counts["invalid"] == 300
    # The emulator stopped with the demo: no link to it, only to the one the command serves.
    assert set(re.findall(r"http://[\w.:]+", out)) == {"http://127.0.0.1:8787"}
    (line,) = [line for line in out.splitlines() if "pulsora-revenue dev --db" in line]
    command = shlex.split(line.split("with: ", 1)[1].split("  (then")[0])
    assert command[:3] == ["pulsora-revenue", "dev", "--db"]
    assert Path(command[3]) == tmp_path / "pulsora-demo.sqlite"
    assert Path(command[3]).is_file()
    # Its files are named as backfill names them.
    failures = tmp_path / "payments.jsonl.failures.jsonl"
    assert f"{counts['invalid']} rows went to {failures}; fix them" in out
    assert len(failures.read_text().splitlines()) == counts["invalid"]
    assert (tmp_path / "payments.jsonl.checkpoint.sqlite").is_file()
    assert not (tmp_path / "payments.failures.jsonl").exists()
    # Its emulator ran in a process of its own: not taking turns with the backfill.
    assert "uvicorn loaded here: False" in out
    again = run_demo("--events", "300", "--dir", str(tmp_path))  # afresh, in the same folder
    assert again.returncode == 0, again.stdout + again.stderr
    assert summary_counts(again.stdout)["already recorded (duplicate)"] == 0


def test_a_demo_of_one_event_shows_its_retries_and_sends_it(tmp_path: Path) -> None:
    done = run_demo("--events", "1", "--dir", str(tmp_path))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Generated 1 payment in" in done.stdout
    assert summary_counts(done.stdout)["sent"] == 1
    assert "1 event went through on a retry." in done.stdout


def test_the_demo_with_keep_serves_its_page_until_ctrl_c(tmp_path: Path) -> None:
    command = [sys.executable, "-m", "pulsora_revenue", "demo", "--keep", "--events", "20"]
    command += ["--dir", str(tmp_path)]
    with subprocess.Popen(command, stdout=subprocess.PIPE, text=True) as process:
        assert process.stdout is not None
        for line in process.stdout:
            if line.startswith("The events, totals and rejections: "):
                url = line.split()[5]
                break
        else:
            pytest.fail("no link to the page")
        page = httpx.get(url)
        process.send_signal(signal.SIGINT)  # to the demo alone: its emulator stops with it
        rest = process.stdout.read()
    assert page.status_code == 200
    assert "pi_demo_0000001" in page.text
    assert process.returncode == 0
    assert "Look at them later with: pulsora-revenue dev --db" in rest
    with pytest.raises(httpx.ConnectError):
        httpx.get(url)


# -- backfilling a failures file --------------------------------------------------------


@pytest.mark.parametrize(
    ("file", "checkpoint", "failures"),
    [
        ("p.jsonl", "p.jsonl.checkpoint.sqlite", "p.jsonl.failures.jsonl"),
        ("p.jsonl.failures.jsonl", "p.jsonl.failures.jsonl.checkpoint.sqlite", "=file"),
        ("old.failures.jsonl", "old.failures.jsonl.checkpoint.sqlite", "=file"),
        ("-", "pulsora-backfill.checkpoint.sqlite", "pulsora-backfill.failures.jsonl"),
    ],
)
def test_default_paths(file: str, checkpoint: str, failures: str) -> None:
    expected = (Path(checkpoint), Path(file if failures == "=file" else failures))
    assert default_paths(file) == expected


def test_backfilling_a_failures_file_rewrites_it(env: DevServer, tmp_path: Path) -> None:
    source = write_jsonl(tmp_path / "p.jsonl", [*purchases(2), {**EVENT, "amount": "-2"}])
    assert main(["backfill", str(source), "--no-progress"]) == 1
    failures = tmp_path / "p.jsonl.failures.jsonl"
    (first,) = [json.loads(line) for line in failures.read_text().splitlines()]
    assert main(["backfill", str(failures), "--no-progress"]) == 1  # not fixed yet
    (again,) = [json.loads(line) for line in failures.read_text().splitlines()]
    assert again["_error"] == first["_error"]
    assert "p.jsonl.failures.jsonl.failures.jsonl" not in [p.name for p in tmp_path.iterdir()]


def test_an_interrupted_backfill_of_a_failures_file_leaves_it_as_it_was(
    env: DevServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    failures = tmp_path / "p.jsonl.failures.jsonl"
    fixed = {**EVENT, "_line": 3, "_error": "...", "transaction_id": "fixed"}
    still_bad = {**EVENT, "_line": 4, "_error": "...", "amount": "-2"}
    write_jsonl(failures, [fixed, still_bad])
    before = failures.read_text()
    run = anyio.run

    def run_then_ctrl_c(function: Callable[[], Awaitable[None]]) -> None:
        run(function)
        raise KeyboardInterrupt

    monkeypatch.setattr(anyio, "run", run_then_ctrl_c)
    assert main(["backfill", str(failures), "--no-progress"]) == 130
    assert failures.read_text() == before
    assert f"{failures} is as it was." in capsys.readouterr().out
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "p.jsonl.failures.jsonl",
        "p.jsonl.failures.jsonl.checkpoint.sqlite",
    ]


def test_the_input_is_never_the_failures_file_unless_it_is_one(
    env: DevServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = write_jsonl(tmp_path / "p.jsonl", purchases(1))
    assert main(["backfill", str(source), "--failures", str(source)]) == 2
    assert "--failures must not be the input file" in capsys.readouterr().err
    assert source.read_text() == write_jsonl(tmp_path / "q.jsonl", purchases(1)).read_text()
