"""The command line, through main() and as a real process."""

from __future__ import annotations

import argparse
import io
import json
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import anyio
import httpx
import pytest
from rich.console import Console

from pulsora_revenue import ConfigurationError, Progress, RetryPolicy, Revenue
from pulsora_revenue._cli import main
from pulsora_revenue._cli._backfill import Tally, backfill, replacing
from pulsora_revenue._cli._checkpoint import Checkpoint
from pulsora_revenue._cli._console import Display
from pulsora_revenue._cli._parser import parse_rate
from pulsora_revenue._cli._rows import count_rows, read
from pulsora_revenue._results import Counts

from ..conftest import DevServer
from ..data import EVENT, TOKEN
from .helpers import cli_env, purchases, run_cli, summary_counts, write_jsonl


@pytest.mark.parametrize(
    ("text", "rate"),
    [
        ("2000/h", (2000, 3600.0)),
        ("5/s", (5, 1.0)),
        ("100/60", (100, 60.0)),
        (" 3 / m ", (3, 60.0)),
    ],
)
def test_parse_rate(text: str, rate: tuple[int, float]) -> None:
    assert parse_rate(text) == rate


@pytest.mark.parametrize("text", ["", "5", "0/s", "5/0", "5/d", "-1/s", "a/s"])
def test_parse_rate_refuses(text: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError):
        parse_rate(text)


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["--version"])
    assert info.value.code == 0
    assert capsys.readouterr().out.startswith("pulsora-revenue ")


def test_dev_help_has_examples(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["dev", "--help"])
    out = capsys.readouterr().out
    assert "--port" in out
    assert "examples:" in out


def test_dev_without_the_server_extra(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(sys.modules, "uvicorn", None)
    assert main(["dev"]) == 2
    assert "pulsora-revenue[server]" in capsys.readouterr().err


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def test_dev_server_process_serves_and_stops_cleanly(tmp_path: Path) -> None:
    port = free_port()
    db = tmp_path / "events.sqlite"
    command = [sys.executable, "-m", "pulsora_revenue", "dev", "--port", str(port), "--db", str(db)]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                httpx.get(f"{base}/api/health").raise_for_status()
                break
            except httpx.TransportError:
                if time.monotonic() > deadline or process.poll() is not None:
                    raise
                time.sleep(0.05)
        response = httpx.post(
            f"{base}/api/ingest",
            headers={"X-API-Token": "sec_cli_test_0123"},
            json={
                "type": "revenue",
                "data": {
                    "visitor_fingerprint": "fp",
                    "session_id": "s",
                    "customer_id": "c",
                    "amount": 5,
                    "transaction_id": "tx_cli",
                },
            },
        )
        assert response.status_code == 202
        assert "tx_cli" in httpx.get(base).text
    finally:
        process.send_signal(signal.SIGTERM)
        output, _ = process.communicate(timeout=20)
    assert process.returncode == 0, output
    assert f"{base}/api/ingest" in output
    assert "POST /api/ingest 202 accepted" in output
    assert db.exists()


# -- backfill, validate, demo ---------------------------------------------------------


def test_backfill_jsonl_with_exact_counts(
    env: DevServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rows = purchases(20)
    rows += [{**EVENT, "transaction_id": "tx_3"}]  # a repeat
    rows += [{**EVENT, "transaction_id": "bad", "amount": "-2"}]  # invalid
    source = write_jsonl(tmp_path / "payments.jsonl", rows, ["{not json\n"])
    code = main(["backfill", str(source), "--no-progress"])
    out = capsys.readouterr().out
    assert code == 1, out  # something was invalid
    assert len(env.events()) == 20
    failures = [
        json.loads(line)
        for line in (tmp_path / "payments.jsonl.failures.jsonl").read_text().splitlines()
    ]
    assert sorted(f["_line"] for f in failures) == [22, 23]
    assert any("positive" in f["_error"] for f in failures)
    assert "sent" in out
    assert "20" in out


def test_backfill_csv_with_metadata_columns(env: DevServer, tmp_path: Path) -> None:
    source = tmp_path / "export.csv"
    source.write_text(
        "visitor_fingerprint,session_id,customer_id,amount,currency,transaction_id,event_type,"
        "is_recurring,metadata.plan,metadata.seats,mrr_impact\n"
        "fp_1,s_1,cus_1,49.99,usd,csv_1,subscription,true,pro,5,49.99\n"
        "fp_2,s_2,cus_2,10,eur,csv_2,,,,,\n"
    )
    assert main(["backfill", str(source), "--no-progress"]) == 0
    first, second = env.events("csv_1")[0], env.events("csv_2")[0]
    assert first["metadata"] == {"plan": "pro", "seats": 5}
    assert first["is_recurring"] is True
    assert first["mrr_impact"] == 49.99
    assert "event_type" not in second
    assert "metadata" not in second
    assert second["currency"] == "EUR"


def test_failures_file_is_taken_as_input_again(env: DevServer, tmp_path: Path) -> None:
    source = write_jsonl(
        tmp_path / "p.jsonl", [{**EVENT, "transaction_id": "fix_me", "amount": "0"}]
    )
    assert main(["backfill", str(source), "--no-progress"]) == 1
    failures = tmp_path / "p.jsonl.failures.jsonl"
    (row,) = [json.loads(line) for line in failures.read_text().splitlines()]
    assert row["_line"] == 1
    failures.write_text(json.dumps({**row, "amount": "5"}) + "\n")
    assert main(["backfill", str(failures), "--no-progress"]) == 0
    assert [e["transaction_id"] for e in env.events()] == ["fix_me"]


def test_validate_reports_every_bad_row(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rows = purchases(3)
    rows.insert(1, {**EVENT, "amount": "x", "currency": "XYZ"})
    rows.append({"nonsense": 1})
    source = write_jsonl(tmp_path / "v.jsonl", rows)
    assert main(["validate", str(source)]) == 1
    out = capsys.readouterr().out
    assert "line 2: amount:" in out
    assert "line 2: currency:" in out
    assert "line 5: <event>: unknown field(s): 'nonsense'" in out
    assert "5 rows checked, 2 invalid." in out
    assert main(["validate", str(write_jsonl(tmp_path / "ok.jsonl", purchases(2)))]) == 0


def test_a_missing_token_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    source = write_jsonl(tmp_path / "p.jsonl", purchases(1))
    assert main(["backfill", str(source)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ")
    assert err.count("\n") <= 2
    assert "Traceback" not in err


def test_an_unreadable_file_is_one_line(
    env: DevServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["backfill", str(tmp_path / "missing.jsonl")]) == 2
    assert main(["validate", str(tmp_path / "missing.jsonl")]) == 2
    err = capsys.readouterr().err
    assert "No such file" in err
    assert "Traceback" not in err


def test_backfill_from_stdin_as_a_process(server: DevServer, tmp_path: Path) -> None:
    lines = "".join(json.dumps(r) + "\n" for r in purchases(15, "stdin"))
    checkpoint = tmp_path / "stdin.checkpoint.sqlite"
    failures = tmp_path / "f.jsonl"
    argv = ("backfill", "-", "--checkpoint", str(checkpoint), "--failures", str(failures))
    done = run_cli(*argv, stdin=lines, env=cli_env(server))
    assert done.returncode == 0, done.stdout + done.stderr
    assert len(server.events()) == 15
    again = run_cli(*argv, stdin=lines, env=cli_env(server))
    assert again.returncode == 0
    assert "15" in again.stdout  # all resumed from the checkpoint
    assert len(server.events()) == 15


def test_a_killed_backfill_resumes_without_resending(server: DevServer, tmp_path: Path) -> None:
    total = 400
    source = write_jsonl(tmp_path / "big.jsonl", purchases(total, "kill"))
    checkpoint = tmp_path / "big.checkpoint.sqlite"
    slow: dict[str, object] = {"delay": 0.02}
    server.script(*([slow] * total))  # slow enough to kill mid-way
    command = [
        sys.executable,
        "-m",
        "pulsora_revenue",
        "backfill",
        str(source),
        "--no-progress",
        "--concurrency",
        "4",
        "--checkpoint",
        str(checkpoint),
    ]
    process = subprocess.Popen(
        command, env=cli_env(server), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if checkpoint.exists() and _checkpointed(checkpoint) >= 60:
            break
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait(10)
    done_before = _checkpointed(checkpoint)
    assert 0 < done_before < total
    httpx.delete(f"{server.url}/api/faults").raise_for_status()
    rerun = run_cli(
        "backfill",
        str(source),
        "--no-progress",
        "--checkpoint",
        str(checkpoint),
        env=cli_env(server),
    )
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    events = server.events()
    assert sorted(str(e["transaction_id"]) for e in events) == sorted(
        f"kill_{n}" for n in range(total)
    )
    rejected_409 = httpx.get(server.url).text.count(">409<")
    assert rejected_409 <= 4, "only the events in flight at the kill were sent again"


def _checkpointed(path: Path) -> int:
    import sqlite3

    try:
        with sqlite3.connect(path) as db:
            return int(db.execute("SELECT COUNT(*) FROM done").fetchone()[0])
    except sqlite3.Error:
        return 0


@pytest.mark.parametrize("command", ["backfill", "validate", "demo"])
def test_every_command_has_help_with_examples(
    command: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as info:
        main([command, "--help"])
    assert info.value.code == 0
    assert "examples:" in capsys.readouterr().out


def test_a_checkpoint_is_for_one_endpoint(
    env: DevServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = write_jsonl(tmp_path / "p.jsonl", purchases(3))
    assert main(["backfill", str(source), "--no-progress"]) == 0
    elsewhere = "http://127.0.0.1:9/api/ingest"
    assert main(["backfill", str(source), "--no-progress", "--endpoint", elsewhere]) == 2
    assert f"was not made for {elsewhere}" in capsys.readouterr().err


def test_a_checkpoint_is_for_one_token(
    env: DevServer,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    source = write_jsonl(tmp_path / "p.jsonl", purchases(3))
    assert main(["backfill", str(source), "--no-progress"]) == 0
    monkeypatch.setenv("PULSORA_SECRET_TOKEN", "sec_another_project_0123456789")
    assert main(["backfill", str(source), "--no-progress"]) == 2  # not "all done already"
    error = capsys.readouterr().err
    assert "was not made with this token" in error
    assert "another_project" not in error
    checkpoint = (tmp_path / "p.jsonl.checkpoint.sqlite").read_bytes()
    assert TOKEN.encode() not in checkpoint


def test_a_checkpoint_that_holds_nothing_yet_takes_the_next_runs_token(tmp_path: Path) -> None:
    path, endpoint = tmp_path / "checkpoint.sqlite", "http://127.0.0.1:9/api/ingest"
    Checkpoint(path, endpoint=endpoint, token="sec_wrong_0123456789").close()  # stopped by a 401
    checkpoint = Checkpoint(path, endpoint=endpoint, token=TOKEN)
    checkpoint.add(("tx_1", "purchase"))
    checkpoint.close()
    with pytest.raises(ConfigurationError, match="with this token"):
        Checkpoint(path, endpoint=endpoint, token="sec_wrong_0123456789")


def test_csv_from_excel_with_zip_codes_and_flags(env: DevServer, tmp_path: Path) -> None:
    source = tmp_path / "excel.csv"
    source.write_bytes(
        "\ufeffvisitor_fingerprint,session_id,customer_id,amount,transaction_id,event_type,"
        "is_recurring,metadata.zip\nfp,s,c,12.50,xl_1,renewal,1,02134\n".encode()
    )
    assert main(["backfill", str(source), "--no-progress"]) == 0
    (stored,) = env.events("xl_1")
    assert stored["is_recurring"] is True
    assert stored["metadata"] == {"zip": "02134"}


def test_an_unparsable_line_is_kept_whole_in_the_failures(env: DevServer, tmp_path: Path) -> None:
    source = write_jsonl(tmp_path / "p.jsonl", purchases(1), ['{"amount": 5,\n'])
    assert main(["backfill", str(source), "--no-progress"]) == 1
    (failure,) = [
        json.loads(line) for line in (tmp_path / "p.jsonl.failures.jsonl").read_text().splitlines()
    ]
    assert failure["_input"] == '{"amount": 5,'
    assert failure["_line"] == 2


def test_a_repeat_of_a_row_accepted_in_this_run_is_skipped_not_resumed(
    env: DevServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # One worker takes the rows 16 at a time: tx_0 is accepted before its repeat is read.
    rows = [*purchases(20), {**EVENT, "transaction_id": "tx_0"}]
    source = write_jsonl(tmp_path / "payments.jsonl", rows)
    assert main(["backfill", str(source), "--no-progress", "--concurrency", "1"]) == 0
    counts = summary_counts(capsys.readouterr().out)
    assert counts["repeated in the input (skipped)"] == 1
    assert counts["done by an earlier run (resumed)"] == 0
    assert counts["sent"] == 20
    assert main(["backfill", str(source), "--no-progress"]) == 0  # again: all done before
    counts = summary_counts(capsys.readouterr().out)
    assert counts["done by an earlier run (resumed)"] == 21
    assert counts["sent"] == counts["repeated in the input (skipped)"] == 0


def test_progress_counts_the_rows_settled_before_sending(env: DevServer, tmp_path: Path) -> None:
    rows = [*purchases(20), {**EVENT, "transaction_id": "tx_0"}]  # tx_0 is sent before its repeat
    source = write_jsonl(tmp_path / "payments.jsonl", rows, ["{not json\n"])
    seen: list[Progress] = []
    tally = Tally()
    checkpoint = Checkpoint(tmp_path / "checkpoint.sqlite", endpoint=env.endpoint, token=TOKEN)

    async def run() -> None:
        async with Revenue(TOKEN, endpoint=env.endpoint) as revenue:
            with source.open() as handle, (tmp_path / "failures.jsonl").open("w") as failures:
                await backfill(
                    revenue,
                    read(handle, "jsonl"),
                    checkpoint=checkpoint,
                    failures=failures,
                    tally=tally,
                    concurrency=1,
                    on_progress=seen.append,
                )

    try:
        anyio.run(run)
    finally:
        checkpoint.close()
    assert (tally.settled, tally.skipped, tally.invalid, tally.sent) == (1, 1, 1, 20)
    assert seen[-1].done + tally.settled == count_rows(str(source), "jsonl") == 22


def test_a_row_utf_8_cannot_carry_is_one_failure_of_a_backfill(
    env: DevServer, tmp_path: Path
) -> None:
    source = tmp_path / "payments.jsonl"
    rows = [json.dumps(row) for row in purchases(3)]
    rows.insert(1, json.dumps({**EVENT, "transaction_id": "tx_\ud800"}))  # an escape in JSON
    source.write_text("\n".join(rows) + "\n")
    assert main(["backfill", str(source), "--no-progress"]) == 1  # one row failed
    assert len(env.events()) == 3
    (failure,) = (tmp_path / "payments.jsonl.failures.jsonl").read_text().splitlines()
    assert json.loads(failure)["_line"] == 2


def test_an_invalid_row_is_invalid_even_if_its_key_was_accepted_earlier_in_the_run(
    env: DevServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # One worker takes the rows 16 at a time: tx_0 is accepted before the last row is read.
    rows = [*purchases(20), {**EVENT, "transaction_id": "tx_0", "amount": "-5"}]
    source = write_jsonl(tmp_path / "payments.jsonl", rows)
    assert main(["backfill", str(source), "--no-progress", "--concurrency", "1"]) == 1
    counts = summary_counts(capsys.readouterr().out)
    assert (counts["invalid"], counts["repeated in the input (skipped)"]) == (1, 0)
    (failure,) = (tmp_path / "payments.jsonl.failures.jsonl").read_text().splitlines()
    assert json.loads(failure)["_line"] == 21


HEADER = "visitor_fingerprint,session_id,customer_id,amount,transaction_id,event_type\n"


def test_a_csv_cell_too_big_to_read_is_one_line_not_a_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = tmp_path / "big.csv"
    source.write_text(HEADER + "fp,s,c,1,t1,purchase\n" + f'fp,s,c,1,"{"x" * 200_000}",purchase\n')
    assert main(["validate", str(source)]) == 2
    assert "the CSV cannot be read at line 3" in capsys.readouterr().err


def test_a_json_line_nested_too_deep_is_one_bad_row(env: DevServer, tmp_path: Path) -> None:
    lines = [json.dumps(row) for row in purchases(3)]
    lines.insert(1, "[" * 100_000 + "]" * 100_000)
    source = tmp_path / "deep.jsonl"
    source.write_text("\n".join(lines) + "\n")
    assert main(["validate", str(source)]) == 1
    assert main(["backfill", str(source), "--no-progress"]) == 1
    assert len(env.events()) == 3  # the rows after it are sent too


@pytest.mark.parametrize(
    ("form", "text"),
    [("csv", HEADER + "fp,s,c,1,t1,purchase\n"), ("jsonl", json.dumps(EVENT) + "\n")],
)
def test_a_byte_order_mark_on_standard_input_is_dropped(form: str, text: str) -> None:
    done = run_cli("validate", "-", "--format", form, stdin="\ufeff" + text)
    assert done.returncode == 0, done.stdout + done.stderr


def test_a_csv_row_with_more_cells_than_columns_is_invalid(
    env: DevServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = tmp_path / "shifted.csv"
    source.write_text(
        "visitor_fingerprint,session_id,customer_id,amount,transaction_id,metadata.plan\n"
        "fp,s,c,49.99,t1,pro, annual\n"  # an unquoted comma: 'annual' would be lost
    )
    assert main(["validate", str(source)]) == 1
    assert "line 2: 1 more cell than the header has columns" in capsys.readouterr().out
    assert main(["backfill", str(source), "--no-progress"]) == 1
    (failure,) = (tmp_path / "shifted.csv.failures.jsonl").read_text().splitlines()
    assert json.loads(failure)["_input"] == "fp,s,c,49.99,t1,pro, annual"


def test_a_csv_record_over_several_lines_is_reported_where_it_starts(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = tmp_path / "notes.csv"
    source.write_text(
        "visitor_fingerprint,session_id,customer_id,amount,transaction_id,metadata.note\n"
        'fp,s,c,-1,t1,"two\nlines"\n'
        "\n"
        "fp,s,c,-1,t2,one\n"
        "fp,s,c,-1,t3,,,\n"  # trailing empty cells, as spreadsheets write them: not extra
    )
    assert main(["validate", str(source)]) == 1
    out = capsys.readouterr().out
    assert [line.split(":")[0] for line in out.splitlines()[:3]] == ["line 2", "line 5", "line 6"]
    assert "more cell" not in out


def test_a_line_that_is_no_object_is_kept_in_the_failures(env: DevServer, tmp_path: Path) -> None:
    source = write_jsonl(tmp_path / "p.jsonl", [EVENT], [json.dumps([EVENT]) + "\n"])
    assert main(["backfill", str(source), "--no-progress"]) == 1
    (failure,) = (tmp_path / "p.jsonl.failures.jsonl").read_text().splitlines()
    assert json.loads(failure)["_input"] == json.dumps([EVENT])


def test_an_unreadable_line_keeps_its_text_until_it_is_fixed(
    env: DevServer, tmp_path: Path
) -> None:
    source = write_jsonl(tmp_path / "p.jsonl", [EVENT], ['{"amount": 5,\n'])
    assert main(["backfill", str(source), "--no-progress"]) == 1
    failures = tmp_path / "p.jsonl.failures.jsonl"
    assert main(["backfill", str(failures), "--no-progress"]) == 1  # nothing fixed yet
    (record,) = [json.loads(line) for line in failures.read_text().splitlines()]
    assert record["_input"] == '{"amount": 5,'
    record["_input"] = json.dumps({**EVENT, "transaction_id": "fixed"})  # fixed in place
    failures.write_text(json.dumps(record) + "\n")
    assert main(["backfill", str(failures), "--no-progress"]) == 0
    assert len(env.events("fixed")) == 1
    assert failures.read_text() == ""  # nothing fails any more


def test_a_bad_byte_is_reported_by_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    source = tmp_path / "p.jsonl"
    good = "".join(json.dumps({**EVENT, "transaction_id": f"u_{n}"}) + "\n" for n in range(200))
    source.write_bytes(good.encode() + b'{"a": "\xff"}\n')
    assert main(["validate", str(source)]) == 2
    error = capsys.readouterr().err
    assert "not UTF-8 text" in error
    assert "after line" in error


@pytest.mark.parametrize(
    ("options", "says"),
    [
        (["--db", "/nonexistent/events.sqlite"], "cannot use /nonexistent/events.sqlite"),
        (["--port", "70000"], "--port must be between 0 and 65535"),
    ],
)
def test_dev_with_unusable_options_is_one_line(options: list[str], says: str) -> None:
    done = run_cli("dev", *options)  # a process with a timeout: it used to hang, not exit
    assert done.returncode == 2
    assert says in done.stderr
    assert "Traceback" not in done.stderr


# -- what a backfill leaves behind, and what it says ----------------------------------


def one_bad_row(path: Path) -> Path:
    return write_jsonl(path, [*purchases(2), {**EVENT, "transaction_id": "bad", "amount": "-2"}])


FIXED = '{"_line": 3, "amount": "2", "transaction_id": "bad"}\n'  # a user's fix, not yet sent


def exit_code(argv: list[str]) -> int:
    """What the process would exit with: argparse refuses an option by raising SystemExit."""
    try:
        return main(argv)
    except SystemExit as exc:
        return int(str(exc.code))


@pytest.mark.parametrize(
    "refused",
    [["--concurrency", "0"], ["--concurrency", "-3"], ["--endpoint", "http://127.0.0.1:9/x"]],
)
def test_a_refused_backfill_leaves_the_failures_file_as_it_was(
    env: DevServer, tmp_path: Path, refused: list[str]
) -> None:
    source = one_bad_row(tmp_path / "p.jsonl")
    assert main(["backfill", str(source), "--no-progress"]) == 1
    failures = tmp_path / "p.jsonl.failures.jsonl"
    failures.write_text(FIXED)
    assert exit_code(["backfill", str(source), "--no-progress", *refused]) == 2
    assert failures.read_text() == FIXED
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "p.jsonl",
        "p.jsonl.checkpoint.sqlite",
        "p.jsonl.failures.jsonl",
    ]


def test_a_backfill_that_fails_part_way_leaves_the_failures_file_as_it_was(
    env: DevServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = one_bad_row(tmp_path / "p.jsonl")
    failures = tmp_path / "p.jsonl.failures.jsonl"
    failures.write_text(FIXED)
    with source.open("ab") as out:
        out.write(b'{"a": "\xff"}\n')  # the rows before it are sent, then the run fails
    assert main(["backfill", str(source), "--no-progress"]) == 2
    assert "not UTF-8 text" in capsys.readouterr().err
    assert failures.read_text() == FIXED
    assert not list(tmp_path.glob("*.tmp"))


def test_an_interrupted_backfill_keeps_the_failures_found_so_far(
    env: DevServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = one_bad_row(tmp_path / "p.jsonl")
    (tmp_path / "p.jsonl.failures.jsonl").write_text(FIXED)
    run = anyio.run

    def run_then_ctrl_c(function: Callable[[], Awaitable[None]]) -> None:
        run(function)
        raise KeyboardInterrupt

    monkeypatch.setattr(anyio, "run", run_then_ctrl_c)
    assert main(["backfill", str(source), "--no-progress"]) == 130
    (failure,) = (tmp_path / "p.jsonl.failures.jsonl").read_text().splitlines()
    assert json.loads(failure)["_line"] == 3


def test_a_failures_file_behind_a_link_is_replaced_through_it(tmp_path: Path) -> None:
    (tmp_path / "real.jsonl").write_text(FIXED)
    link = tmp_path / "link.jsonl"
    link.symlink_to(tmp_path / "real.jsonl")
    with replacing(link) as out:
        out.write("new\n")
    assert link.is_symlink()
    assert (tmp_path / "real.jsonl").read_text() == "new\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["link.jsonl", "real.jsonl"]


def test_a_missing_input_leaves_no_checkpoint(env: DevServer, tmp_path: Path) -> None:
    assert main(["backfill", str(tmp_path / "nope.jsonl")]) == 2
    assert list(tmp_path.iterdir()) == []


def test_backfill_from_stdin_keeps_its_documented_files_in_the_current_folder(
    env: DevServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    source = one_bad_row(tmp_path / "p.jsonl")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(source.read_bytes())))
    assert main(["backfill", "-", "--no-progress"]) == 1
    assert (tmp_path / "pulsora-backfill.checkpoint.sqlite").is_file()
    assert (tmp_path / "pulsora-backfill.failures.jsonl").is_file()
    with pytest.raises(SystemExit):
        main(["backfill", "--help"])
    text = capsys.readouterr().out
    assert "./pulsora-backfill.checkpoint.sqlite and ./pulsora-backfill.failures.jsonl" in text


def test_plain_progress_lines_count_invalid_and_failed_as_the_bar_does() -> None:
    out = io.StringIO()
    console = Console(file=out, force_terminal=False)
    tally = Tally(Counts(sent=2853, invalid=30), unreadable=1)  # 30 refused, one unreadable
    counters = Progress(
        done=2901, sent=2853, duplicates=0, skipped=18, invalid=30, failed=0, in_flight=8,
        rate=900.0, elapsed=3.2,
    )  # fmt: skip
    with Display(console, total=3000, tally=tally) as display:
        display.update(counters)
    assert out.getvalue().startswith("2902/3000 done, 2853 sent, 31 invalid or failed, ")


def test_a_missing_token_names_the_command_line_options(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = write_jsonl(tmp_path / "p.jsonl", purchases(1))
    assert main(["backfill", str(source)]) == 2
    err = capsys.readouterr().err
    assert "--token-file PATH" in err
    assert "PULSORA_SECRET_TOKEN" in err
    assert "api_token" not in err
    (tmp_path / "token").write_text("\n")
    assert main(["backfill", str(source), "--token-file", str(tmp_path / "token")]) == 2
    assert f"the token file {tmp_path / 'token'} is empty" in capsys.readouterr().err


EXAMPLE = Path(__file__).parents[2] / "examples" / "backfill.py"


def test_the_backfill_example_prints_only_paths_that_exist(
    server: DevServer, tmp_path: Path
) -> None:
    source = one_bad_row(tmp_path / "p.jsonl")
    for args, code in (([], 0), ([str(source)], 1)):  # a sample in a folder it deletes; a file
        done = subprocess.run(
            [sys.executable, str(EXAMPLE), *args],
            capture_output=True,
            text=True,
            timeout=120,
            env=cli_env(server),
        )
        assert done.returncode == code, done.stdout + done.stderr
        printed = re.findall(r"(?<!\S)/\S+", done.stdout)
        assert [path for path in printed if not Path(path).exists()] == [], done.stdout
    assert f"in {tmp_path / 'failures.jsonl'}" in done.stdout


# -- hostile rows: deep, huge (issue 17) -------------------------------------------------


def deep_row(levels: int, field: str = "transaction_id") -> str:
    """A JSON line whose *field* is nested *levels* deep: deep, but not too deep to read."""
    return json.dumps({**EVENT, field: "__deep__"}).replace(
        '"__deep__"', "[" * levels + '"x"' + "]" * levels
    )


@pytest.mark.parametrize("field", ["transaction_id", "amount", "currency", "metadata"])
def test_a_row_nested_deep_is_one_failure_of_every_backfill(
    env: DevServer, tmp_path: Path, field: str
) -> None:
    source = write_jsonl(tmp_path / "p.jsonl", purchases(3), [deep_row(900, field) + "\n"])
    assert main(["backfill", str(source), "--no-progress"]) == 1  # one row failed
    assert len(env.events()) == 3
    failures = tmp_path / "p.jsonl.failures.jsonl"
    (line,) = failures.read_text().splitlines()
    record = json.loads(line)
    assert record["_line"] == 4
    assert f"{field}: " in record["_error"]
    for _ in range(2):  # and again, from the failures file: the same row, the same failure
        assert main(["backfill", str(failures), "--no-progress"]) == 1
        (again,) = [json.loads(text) for text in failures.read_text().splitlines()]
        assert (again["_line"], again["_error"]) == (1, record["_error"])


def test_validate_reports_rows_nested_deep(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # As deep as JSON is read, and deeper: where describing a value failed depends on the stack.
    rows = [deep_row(levels, "amount") + "\n" for levels in range(850, 1000)]
    source = write_jsonl(tmp_path / "p.jsonl", purchases(1), rows)
    assert main(["validate", str(source)]) == 1
    out = capsys.readouterr().out
    assert "line 2: amount: amount must be a positive number: a value of type list" in out
    assert "151 rows checked, 150 invalid." in out


def test_a_csv_number_of_thousands_of_digits_is_an_invalid_row(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = tmp_path / "p.csv"
    source.write_text(
        HEADER.replace("\n", ",metadata.n\n") + f"fp,s,c,5,t1,purchase,{'9' * 5000}\n"
    )
    assert main(["validate", str(source)]) == 1
    out = capsys.readouterr().out
    assert "line 2: metadata.n: metadata.n must be a finite number, with at most 400 digits" in out


# -- the outbox command, and what the commands load ------------------------------------


async def queue_one_while_down(outbox: Path) -> None:
    """Track one event while Pulsora is unreachable, as an application would: it is queued."""

    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    transport = httpx.MockTransport(refuse)
    retry = RetryPolicy(max_attempts=1)
    async with Revenue(TOKEN, transport=transport, retry=retry, outbox=outbox) as revenue:
        assert (await revenue.track(EVENT)).queued


def test_a_damaged_outbox_is_one_line_and_exit_code_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    outbox = tmp_path / "outbox.sqlite"
    anyio.run(queue_one_while_down, outbox)
    data = bytearray(outbox.read_bytes())
    page = int.from_bytes(data[16:18], "big")  # the first page, the schema, stays: an outbox
    data[page:] = b"\xa5" * (len(data) - page)
    outbox.write_bytes(bytes(data))
    assert main(["outbox", str(outbox)]) == 2  # the file's fault, not Pulsora's
    err = capsys.readouterr().err
    assert err.startswith(f"error: The outbox {str(outbox)!r} could not be written or read: ")
    assert err.count("\n") == 1
    assert "malformed" in err


def test_help_and_validate_load_neither_sqlite_nor_the_server_stack(tmp_path: Path) -> None:
    source = write_jsonl(tmp_path / "p.jsonl", purchases(1))
    script = (
        "import sys\n"
        "from pulsora_revenue._cli import main\n"
        f"assert main(['validate', {str(source)!r}]) == 0\n"  # it loads what --help does, and more
        "print(sorted({'sqlite3', 'starlette', 'uvicorn'} & set(sys.modules)))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-1] == "[]"
