"""CSV columns that are no event field, and empty cells (issue 21)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pulsora_revenue._cli import main

from ..conftest import DevServer
from .helpers import cli_env, run_cli, write_jsonl

HEADER = "visitor_fingerprint,session_id,customer_id,amount,transaction_id,email,note,plan\n"


def export(path: Path, *rows: str) -> Path:
    """A CSV export as a shop's admin writes it: with columns that are no event field."""
    path.write_text(HEADER + "".join(f"{row}\n" for row in rows))
    return path


def test_columns_that_are_no_event_field_are_not_sent_and_named_once(
    env: DevServer, tmp_path: Path
) -> None:
    source = export(
        tmp_path / "export.csv",
        "fp,s,c,5,t1,ann@example.com,called twice,pro",
        "fp,s,c,6,t2,bob@example.com,,basic",
    )
    done = run_cli("backfill", str(source), env=cli_env(env))
    assert done.returncode == 0, done.stdout + done.stderr
    said = "Ignored 3 columns, not sent: email, note, plan"
    assert done.stdout.count(said) == 1
    stored = env.events()
    assert len(stored) == 2
    assert "example.com" not in json.dumps(stored)  # personal data stays home


def test_validate_names_the_ignored_columns_too(tmp_path: Path) -> None:
    source = export(tmp_path / "export.csv", "fp,s,c,5,t1,ann@example.com,,pro")
    done = run_cli("validate", str(source))
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.splitlines() == [
        "Ignored 3 columns, not sent: email, note, plan (--metadata-columns sends chosen ones "
        "as metadata; --strict-columns refuses them).",
        "1 row checked, all valid.",
    ]


def test_metadata_columns_go_into_the_metadata(env: DevServer, tmp_path: Path) -> None:
    source = export(tmp_path / "export.csv", "fp,s,c,5,t1,ann@example.com,vip,pro")
    argv = ["backfill", str(source), "--no-progress", "--metadata-columns", "plan, note"]
    assert main(argv) == 0
    (stored,) = env.events("t1")
    assert stored["metadata"] == {"plan": "pro", "note": "vip"}
    assert "email" not in stored


def test_strict_columns_refuse_every_row(
    env: DevServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = export(tmp_path / "export.csv", "fp,s,c,5,t1,ann@example.com,vip,pro")
    assert main(["validate", str(source), "--strict-columns", "--metadata-columns", "plan"]) == 1
    assert "line 2: <event>: unknown field(s): 'email', 'note'" in capsys.readouterr().out
    assert main(["backfill", str(source), "--no-progress", "--strict-columns"]) == 1
    assert env.events() == []


@pytest.mark.parametrize(
    ("columns", "says"),
    [
        ("plan,seats", "--metadata-columns names 1 column the CSV does not have: seats"),
        ("amount,plan", "--metadata-columns names 1 event field, which is sent as such: amount"),
    ],
)
def test_metadata_columns_the_csv_cannot_give_are_refused_before_any_file_is_written(
    env: DevServer, tmp_path: Path, capsys: pytest.CaptureFixture[str], columns: str, says: str
) -> None:
    source = export(tmp_path / "export.csv", "fp,s,c,5,t1,ann@example.com,vip,pro")
    assert main(["backfill", str(source), "--metadata-columns", columns]) == 2
    assert says in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["export.csv"]


def test_column_options_are_for_csv(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    source = write_jsonl(tmp_path / "p.jsonl", [{"a": 1}])
    assert main(["validate", str(source), "--metadata-columns", "a"]) == 2
    assert "are for CSV files" in capsys.readouterr().err


@pytest.mark.parametrize("value", ["", ",", "plan,,seats"])
def test_metadata_columns_must_name_columns(value: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["validate", "x.csv", "--metadata-columns", value])
    assert "expected column names separated by commas" in capsys.readouterr().err


def test_an_empty_cell_is_reported_as_empty_not_as_none(tmp_path: Path) -> None:
    source = tmp_path / "gaps.csv"
    source.write_text(
        "visitor_fingerprint,session_id,customer_id,amount,transaction_id\n"
        "fp,s,,,t1\n"  # no customer, no amount
    )
    done = run_cli("validate", str(source))
    assert done.returncode == 1
    assert "None" not in done.stdout
    assert done.stdout.splitlines()[:2] == [
        "line 2: customer_id: customer_id is required. Its cell is empty.",
        "line 2: amount: amount must be a positive number: it is missing. Its cell is empty.",
    ]


def test_a_missing_column_is_reported_as_missing(
    env: DevServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = tmp_path / "short.csv"
    source.write_text("visitor_fingerprint,session_id,amount,transaction_id\nfp,s,5,t1\n")
    assert main(["validate", str(source)]) == 1
    out = capsys.readouterr().out
    assert (
        "line 2: customer_id: customer_id is required. The file has no customer_id column." in out
    )
    assert main(["backfill", str(source), "--no-progress"]) == 1
    (failure,) = (tmp_path / "short.csv.failures.jsonl").read_text().splitlines()
    assert "The file has no customer_id column." in json.loads(failure)["_error"]
    assert "None" not in json.loads(failure)["_error"]
