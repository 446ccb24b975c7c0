"""The command line: ``pulsora-revenue dev`` through main() and as a real process."""

from __future__ import annotations

import argparse
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from pulsora_revenue._cli import main, parse_rate


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
