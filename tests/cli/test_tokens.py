"""A token typed on the command line is never shown back (issue 21)."""

from __future__ import annotations

from pathlib import Path

import pytest

from pulsora_revenue._cli import main
from pulsora_revenue._cli._redaction import scrub

from .helpers import purchases, run_cli, write_jsonl

SECRET = "sec_live_secret_value_1234"
HIDDEN = "live_secret_value"  # what must never be printed: all but the kind and last four


@pytest.mark.parametrize(
    "argv",
    [
        ["backfill", "FILE", "--token", SECRET],  # was taken for --token-file, and echoed
        ["backfill", "--token", SECRET, "FILE"],
        ["backfill", "FILE", f"--token={SECRET}"],
        ["backfill", "FILE", "--tok", SECRET],
        ["backfill", "FILE", "--token", SECRET.removeprefix("sec_")],  # no prefix to spot
        ["backfill", "FILE", "--token-file", SECRET],  # a token where its file goes
        ["backfill", "FILE", "--concurrency", SECRET],
        ["validate", "FILE", "--token", SECRET],
        ["outbox", "FILE", "--token", SECRET],
        ["demo", "--token", SECRET],
        ["dev", "--token", SECRET, "--port", "not-a-port"],
        [SECRET],
    ],
)
def test_a_token_on_the_command_line_is_never_shown(argv: list[str], tmp_path: Path) -> None:
    source = write_jsonl(tmp_path / "p.jsonl", purchases(1))
    done = run_cli(*[str(source) if arg == "FILE" else arg for arg in argv])
    assert done.returncode != 0
    assert HIDDEN not in done.stdout + done.stderr
    assert not list(tmp_path.glob("*.sqlite"))  # refused before anything was written


def test_a_token_option_says_where_the_token_comes_from(tmp_path: Path) -> None:
    source = write_jsonl(tmp_path / "p.jsonl", purchases(1))
    done = run_cli("backfill", str(source), "--token", SECRET)
    assert done.returncode == 2
    assert "unrecognized arguments: --token sec_…1234" in done.stderr
    assert "PULSORA_SECRET_TOKEN" in done.stderr
    assert "--token-file PATH" in done.stderr


def test_options_are_never_abbreviated(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    source = write_jsonl(tmp_path / "p.jsonl", purchases(1))
    with pytest.raises(SystemExit) as info:
        main(["backfill", str(source), "--no-prog"])
    assert info.value.code == 2
    assert "unrecognized arguments: --no-prog" in capsys.readouterr().err


@pytest.mark.parametrize("command", [[], ["backfill"], ["outbox"]])
def test_help_says_where_the_token_comes_from(
    command: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit):
        main([*command, "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "PULSORA_SECRET_TOKEN" in text
    assert "--token-file" in text
    assert "never the command line" in text or "no --token option" in text


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("unknown: --token abc_secret_5678", "unknown: --token …5678"),
        ("unknown: --api-token=abc_secret_5678 -x", "unknown: --api-token=…5678 -x"),
        ("the token file sec_live_secret_value_1234: gone", "the token file sec_…1234: gone"),
        ("invalid choice: 'pub_live_secret_value_1234'", "invalid choice: 'pub_…1234'"),
        ("cannot read /data/sec_filings.csv", "cannot read /data/sec_filings.csv"),
        ("argument --token-file: /srv/token", "argument --token-file: /srv/token"),
        ("argument --token: expected one argument", "argument --token: expected one argument"),
        ("needs a secret API token (sec_...): pass", "needs a secret API token (sec_...): pass"),
        ("a secret sec_ token, not pub_…abcd", "a secret sec_ token, not pub_…abcd"),
    ],
)
def test_scrub(text: str, shown: str) -> None:
    assert scrub(text) == shown
