"""``PULSORA_LOG`` turns the library's logging on without code; records carry structured fields."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from pulsora_revenue import RetryPolicy, Revenue, _logging
from pulsora_revenue.testing import FakePulsora

from .data import EVENT, TOKEN

pytestmark = pytest.mark.anyio

LOGGER = logging.getLogger("pulsora_revenue")

#: Two clients, each tracking one event (the second after a 503), and a third, in a
#: fresh process.
SCRIPT = textwrap.dedent(
    """
    import asyncio, logging
    from pulsora_revenue import Revenue, testing
    from pulsora_revenue.testing import FakePulsora

    async def main():
        testing.set_testing(True)
        for n in range(2):
            fake = FakePulsora()
            fake.fail_next(*[503] * n)
            async with Revenue({token!r}, transport=fake.transport) as revenue:
                await revenue.track({{**{event!r}, "transaction_id": f"tx_{{n}}"}})
        Revenue({token!r})  # made at another line: warned about once all the same
        logger = logging.getLogger("pulsora_revenue")
        print(logging.getLevelName(logger.level), len(logger.handlers))

    asyncio.run(main())
    """
)


def fields(record: logging.LogRecord, *names: str) -> tuple[object, ...]:
    """The structured fields *names* of *record* (None for those it lacks)."""
    return tuple(getattr(record, name, None) for name in names)


def run(value: str | None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PULSORA_")}
    if value is not None:
        env["PULSORA_LOG"] = value
    script = SCRIPT.format(token=TOKEN, event=EVENT)
    return subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=env, check=True
    )


def test_debug_logs_every_attempt_to_stderr_through_one_handler() -> None:
    done = run("debug")
    assert done.stdout.split() == ["DEBUG", "1"], "one handler, however many clients"
    lines = done.stderr.splitlines()
    attempts = [line for line in lines if "POST https://pulsora.co/api/ingest ->" in line]
    assert len(attempts) == 3, "each attempt once: 202, then 503 and 202"
    assert all(" DEBUG pulsora_revenue: " in line for line in attempts)
    assert any("retrying transaction_id=tx_1" in line for line in lines)
    assert TOKEN not in done.stderr


def test_info_switches_the_logger_on_without_the_attempts() -> None:
    done = run("INFO")
    assert done.stdout.split() == ["INFO", "1"]
    assert "POST" not in done.stderr


def test_without_it_nothing_changes() -> None:
    done = run(None)
    assert done.stdout.split() == ["NOTSET", "0"]
    assert done.stderr == ""


def test_an_unknown_value_is_ignored_with_one_warning() -> None:
    done = run("verbose")
    assert done.stdout.split() == ["NOTSET", "0"]
    warnings = [line for line in done.stderr.splitlines() if "RuntimeWarning" in line]
    assert len(warnings) == 1, done.stderr
    assert (
        "PULSORA_LOG='verbose' is ignored: use PULSORA_LOG=info or PULSORA_LOG=debug"
        in (warnings[0])
    )


@pytest.fixture
def switched(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The logger as it was, after the test switched it."""
    handlers, level = list(LOGGER.handlers), LOGGER.level
    yield
    LOGGER.handlers[:] = handlers
    LOGGER.setLevel(level)
    monkeypatch.delenv("PULSORA_LOG", raising=False)


def test_the_switch_follows_the_variable_as_clients_are_made(
    monkeypatch: pytest.MonkeyPatch, switched: None
) -> None:
    monkeypatch.setenv("PULSORA_LOG", "info")
    debugging = Revenue(TOKEN, debug=True)._channel.debug
    assert LOGGER.level == logging.INFO, "applied with debug=True too"
    monkeypatch.setenv("PULSORA_LOG", "debug")
    assert Revenue(TOKEN)._channel.debug
    monkeypatch.delenv("PULSORA_LOG")
    assert not Revenue(TOKEN)._channel.debug
    assert debugging, "debug=True stands"
    ours = [h for h in LOGGER.handlers if h.name == _logging.HANDLER_NAME]
    assert len(ours) == 1
    assert ours[0].level == LOGGER.level == logging.DEBUG, "the latest level; unset undoes nothing"


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_attempt_records_carry_structured_fields(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="pulsora_revenue")
    fake = FakePulsora()
    fake.fail_next(503)
    async with Revenue(TOKEN, transport=fake.transport, debug=True) as revenue:
        await revenue.track(EVENT)
    records = [r for r in caplog.records if r.getMessage().startswith(("POST", "retrying"))]
    shown = [fields(r, "event_type", "transaction_id", "attempt", "status_code") for r in records]
    assert shown == [
        ("purchase", "tx_1", 1, 503),
        ("purchase", "tx_1", 1, None),
        ("purchase", "tx_1", 2, 202),
    ]
    assert getattr(records[1], "wait", 0.0) > 0
    assert getattr(records[0], "elapsed", -1.0) >= 0
    for record in records:
        text = str(vars(record))
        assert TOKEN not in text
        assert EVENT["visitor_fingerprint"] not in text
        assert EVENT["customer_id"] not in text


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_outbox_records_carry_structured_fields(
    caplog: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    caplog.set_level(logging.INFO, logger="pulsora_revenue")

    def refuse(request: httpx.Request) -> httpx.Response:
        return httpx.Response(503, json={"error": "down"})

    quick = RetryPolicy(max_attempts=1)
    outbox = tmp_path / "outbox.sqlite"
    async with Revenue(
        TOKEN, transport=httpx.MockTransport(refuse), retry=quick, outbox=outbox
    ) as revenue:
        assert (await revenue.track(EVENT)).queued
    (queued,) = [r for r in caplog.records if r.getMessage().startswith("queued")]
    assert fields(queued, "event_type", "transaction_id", "status_code", "depth") == (
        "purchase",
        "tx_1",
        503,
        1,
    )
    fake = FakePulsora()
    fake.fail_next(400)
    revenue = Revenue(TOKEN, transport=fake.transport, outbox=outbox)
    await revenue.flush(timeout=10)
    await revenue.aclose()
    (dead,) = [r for r in caplog.records if r.getMessage().startswith("outbox: dead letter")]
    assert fields(dead, "levelname", "transaction_id", "status_code", "depth") == (
        "WARNING",
        "tx_1",
        400,
        0,
    )
