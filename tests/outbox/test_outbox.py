"""The outbox: nothing is lost while Pulsora is unreachable, nothing arrives twice."""

from __future__ import annotations

import contextlib
import logging
import os
import pickle
import signal
import socket
import sqlite3
import subprocess
import sys
import textwrap
import threading
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest

from pulsora_revenue import (
    APIConnectionError,
    BadRequestError,
    ClientClosedError,
    ConfigurationError,
    OutboxError,
    PulsoraError,
    RetryPolicy,
    Revenue,
    RevenueEvent,
    testing,
)
from pulsora_revenue._outbox import Outbox, OutboxService, _drainer
from pulsora_revenue._outbox._drainer import Drainer
from pulsora_revenue.testing import FakePulsora, Fault

from ..conftest import DevServer
from ..data import EVENT, TOKEN

pytestmark = pytest.mark.anyio

QUICK = RetryPolicy(max_attempts=2, initial_delay=0.01, max_delay=0.01)


def service(revenue: Revenue) -> OutboxService:
    """The outbox service inside *revenue*, for the tests of what users cannot reach."""
    assert revenue._outbox is not None
    return revenue._outbox


def drainer(revenue: Revenue) -> Drainer:
    return service(revenue)._drainer


async def drain(revenue: Revenue, *, due_only: bool = False) -> int:
    """One drain of *revenue*'s outbox, as its background drainer or ``flush`` makes."""
    return await drainer(revenue).drain(await revenue._sender(), due_only=due_only)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def events(count: int, prefix: str = "ob") -> list[dict[str, Any]]:
    return [{**EVENT, "transaction_id": f"{prefix}_{n}"} for n in range(count)]


def refusing() -> httpx.MockTransport:
    """A transport to which Pulsora is unreachable: every event ends up in the outbox."""

    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    return httpx.MockTransport(refuse)


async def queue_while_down(
    outbox: Path, rows: list[dict[str, Any]], endpoint: str | None = None
) -> None:
    """Track *rows* while Pulsora (at *endpoint*, default Pulsora's) is unreachable:
    every one ends up in *outbox*, queued for *endpoint*."""
    async with Revenue(
        TOKEN, endpoint=endpoint, transport=refusing(), retry=QUICK, outbox=outbox
    ) as down:
        for row in rows:
            assert (await down.track(row)).queued


EMULATOR = "http://127.0.0.1:8787/api/ingest"


async def test_events_queued_for_another_endpoint_are_left_for_it(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    outbox = tmp_path / "my outbox.sqlite"
    await queue_while_down(outbox, events(2, "dev"), EMULATOR)
    production, emulator = FakePulsora(), FakePulsora()
    async with Revenue(TOKEN, transport=production.transport, outbox=outbox) as revenue:
        assert await revenue.flush(timeout=10) == 0
        assert await revenue.outbox_size() == 0  # none of them is its own
        assert (await revenue.track(EVENT)).status_code == 202
    assert [e.transaction_id for e in production.events] == [EVENT["transaction_id"]]
    warning = " ".join(r.getMessage() for r in caplog.records if r.levelname == "WARNING")
    assert f"holds 2 event(s) queued for {EMULATOR}" in warning
    assert f"outbox '{outbox}' --drain --endpoint {EMULATOR}" in warning
    assert TOKEN not in caplog.text
    dev = Revenue(TOKEN, endpoint=EMULATOR, transport=emulator.transport, outbox=outbox)
    assert await dev.outbox_size() == 2
    assert await dev.flush(timeout=10) == 0
    await dev.aclose()
    assert sorted(e.transaction_id for e in emulator.events) == ["dev_0", "dev_1"]


@pytest.mark.parametrize("queued_by", ["production", "emulator"])
async def test_two_endpoints_sharing_a_file_at_once_keep_to_their_own(
    tmp_path: Path, queued_by: str
) -> None:
    outbox = tmp_path / "outbox.sqlite"
    production, emulator = FakePulsora(), FakePulsora()
    down, up = refusing(), {"production": production, "emulator": emulator}
    other = "emulator" if queued_by == "production" else "production"
    endpoints = {"production": None, "emulator": EMULATOR}
    async with (
        Revenue(
            TOKEN, endpoint=endpoints[queued_by], transport=down, retry=QUICK, outbox=outbox
        ) as queueing,
        Revenue(
            TOKEN, endpoint=endpoints[other], transport=up[other].transport, outbox=outbox
        ) as draining,
    ):  # both opened the file while it was empty
        assert (await queueing.track(EVENT)).queued
        assert await draining.flush(timeout=10) == 0
        assert await queueing.outbox_size() == 1, "still there, for its own endpoint"
    assert up[other].events == []


async def test_the_warning_names_the_file_from_anywhere(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.chdir(tmp_path)
    await queue_while_down(Path("revenue-outbox.sqlite"), events(1), EMULATOR)
    async with Revenue(TOKEN, transport=FakePulsora().transport, outbox="revenue-outbox.sqlite"):
        pass
    assert f"outbox {tmp_path / 'revenue-outbox.sqlite'} --drain" in caplog.text


def test_the_outbox_command_shows_every_endpoint_as_recorded(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from pulsora_revenue._cli import main

    path = tmp_path / "outbox.sqlite"
    shown = ["https://[fd00::1]/api/ingest", "https://pulsora.co/api/ingest?tag=[/]"]
    for n, endpoint in enumerate(shown):
        anyio.run(queue_while_down, path, events(1, f"e{n}"), endpoint)
    assert main(["outbox", str(path)]) == 0
    out = capsys.readouterr().out
    assert f"1 of them queued for {shown[0]}" in out
    assert f"1 of them queued for {shown[1]}" in out


async def test_events_queued_while_down_arrive_once_when_up(tmp_path: Path) -> None:
    port = free_port()
    endpoint = f"http://127.0.0.1:{port}/api/ingest"
    outbox = tmp_path / "outbox.sqlite"
    revenue = Revenue(TOKEN, endpoint=endpoint, retry=QUICK, outbox=outbox)
    results = [await revenue.track(event) for event in events(100)]
    assert all(r.queued and r.status_code is None for r in results)
    assert await revenue.outbox_size() == 100
    with testing.serve_emulator(tmp_path / "db.sqlite", port=port) as emulator:
        assert emulator.endpoint == endpoint
        assert await revenue.flush(timeout=60) == 0
        async with httpx.AsyncClient() as client:
            stored = (await client.get(f"{emulator.url}/api/events")).json()
    await revenue.aclose()
    assert sorted(e["transaction_id"] for e in stored) == sorted(f"ob_{n}" for n in range(100))


async def test_the_background_drainer_delivers_on_its_own(
    tmp_path: Path, server: DevServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The rows were put off by the first client's back-off: the drainer waits until
    # they fall due, not for its idle check (an hour here).
    monkeypatch.setattr(_drainer, "MIN_PAUSE", 0.2)
    monkeypatch.setattr(_drainer, "IDLE_CHECK", 3600.0)
    outbox = tmp_path / "outbox.sqlite"
    await queue_while_down(outbox, events(10), server.endpoint)
    async with Revenue(TOKEN, endpoint=server.endpoint, outbox=outbox) as revenue:
        with anyio.fail_after(20):
            while await revenue.outbox_size():  # noqa: ASYNC110 (polling what we test)
                await anyio.sleep(0.05)
    assert len(server.events()) == 10


async def test_final_refusals_still_raise_and_are_not_queued(
    tmp_path: Path, server: DevServer
) -> None:
    server.script({"status": 400})
    async with Revenue(TOKEN, endpoint=server.endpoint, outbox=tmp_path / "o.sqlite") as revenue:
        with pytest.raises(BadRequestError):
            await revenue.track(EVENT)
        assert await revenue.outbox_size() == 0


async def test_a_400_while_draining_becomes_a_dead_letter(
    tmp_path: Path, server: DevServer
) -> None:
    outbox = tmp_path / "outbox.sqlite"
    await queue_while_down(outbox, events(3), server.endpoint)
    server.script({"status": 400})
    revenue = Revenue(TOKEN, endpoint=server.endpoint, outbox=outbox)
    assert await revenue.flush(timeout=30) == 0
    dead = await revenue.dead_letters()
    await revenue.aclose()
    assert [d.transaction_id for d in dead] == ["ob_0"]
    assert "HTTP 400" in dead[0].error
    assert dead[0].event is not None
    assert dead[0].event.transaction_id == "ob_0"
    assert sorted(str(e["transaction_id"]) for e in server.events()) == ["ob_1", "ob_2"]


async def test_two_drainers_on_one_file_send_each_event_once(
    tmp_path: Path, server: DevServer
) -> None:
    outbox = tmp_path / "outbox.sqlite"
    await queue_while_down(outbox, events(150), server.endpoint)
    first = Revenue(TOKEN, endpoint=server.endpoint, outbox=outbox)
    second = Revenue(TOKEN, endpoint=server.endpoint, outbox=outbox)
    async with anyio.create_task_group() as group:
        group.start_soon(first.flush, 60)
        group.start_soon(second.flush, 60)
    await first.aclose()
    await second.aclose()
    assert len(server.events()) == 150
    async with httpx.AsyncClient() as client:
        page = (await client.get(server.url)).text
    assert ">409<" not in page, "no event was sent twice"


async def test_outbox_io_never_blocks_the_event_loop(
    tmp_path: Path, server: DevServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_drainer, "MIN_PAUSE", 0.05)
    testing.set_testing(False)
    outbox = tmp_path / "outbox.sqlite"
    worst = 0.0

    async def watch_the_loop() -> None:
        nonlocal worst
        while True:
            before = anyio.current_time()
            await anyio.sleep(0.002)
            worst = max(worst, anyio.current_time() - before - 0.002)

    async with anyio.create_task_group() as group:
        group.start_soon(watch_the_loop)
        await queue_while_down(outbox, events(100), server.endpoint)
        revenue = Revenue(TOKEN, endpoint=server.endpoint, outbox=outbox)
        assert await revenue.flush(timeout=60) == 0
        group.cancel_scope.cancel()
    await revenue.aclose()
    assert worst < 0.25, f"the loop was blocked for {worst * 1000:.0f} ms"


def test_a_killed_process_loses_nothing_it_queued(tmp_path: Path, server: DevServer) -> None:
    outbox = tmp_path / "outbox.sqlite"
    script = textwrap.dedent(
        f"""
        import anyio, sys, time
        from pulsora_revenue import Revenue, RetryPolicy
        async def main():
            revenue = Revenue({TOKEN!r}, endpoint={server.endpoint!r},
                              retry=RetryPolicy(max_attempts=1), outbox={str(outbox)!r})
            for n in range(20):
                result = await revenue.track({{**{EVENT!r}, "transaction_id": f"kill_{{n}}"}})
                assert result.queued
            print("queued", flush=True)
            time.sleep(60)
        anyio.run(main)
        """
    )
    server.script(outage={"status": 503, "seconds": 600})  # Pulsora is down while it queues
    process = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    assert process.stdout is not None
    assert process.stdout.readline().strip() == "queued"
    os.kill(process.pid, signal.SIGKILL)
    process.wait(10)
    process.stdout.close()
    server.reset()  # and up again

    async def deliver() -> int:
        revenue = Revenue(TOKEN, endpoint=server.endpoint, outbox=outbox)
        left = await revenue.flush(timeout=60)
        await revenue.aclose()
        return left

    assert anyio.run(deliver) == 0
    stored = sorted(str(e["transaction_id"]) for e in server.events())
    assert stored == sorted(f"kill_{n}" for n in range(20))


def test_the_outbox_command_shows_drains_and_exports(
    tmp_path: Path,
    server: DevServer,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from pulsora_revenue._cli import main

    outbox = tmp_path / "outbox.sqlite"

    anyio.run(queue_while_down, outbox, events(5, "cli"), server.endpoint)
    assert main(["outbox", str(outbox)]) == 0
    assert f"5 of them queued for {server.endpoint}" in capsys.readouterr().out
    monkeypatch.setenv("PULSORA_SECRET_TOKEN", TOKEN)
    assert main(["outbox", str(outbox), "--drain", "--timeout", "5"]) == 0  # none is Pulsora's
    assert "Delivered 0 events; 0 refused for good (dead letters); 0 still waiting; 5 queued" in (
        " ".join(capsys.readouterr().out.split())
    )
    export = tmp_path / "pending.jsonl"
    assert main(["outbox", str(outbox), "--export", str(export)]) == 0  # Pulsora's: none
    assert export.read_text() == ""
    assert "5 queued for other endpoints left out" in " ".join(capsys.readouterr().out.split())
    to_server = ["--export", str(export), "--endpoint", server.endpoint]
    assert main(["outbox", str(outbox), *to_server]) == 0
    assert len(export.read_text().splitlines()) == 5
    monkeypatch.setenv("PULSORA_ENDPOINT", server.endpoint)
    assert main(["outbox", str(outbox), "--drain"]) == 0
    assert "Delivered 5 events; 0 refused for good (dead letters); 0 still waiting." in (
        capsys.readouterr().out
    )
    assert len(server.events()) == 5
    assert main(["outbox", str(tmp_path / "nothing.sqlite")]) == 2


async def test_closing_while_draining_hands_the_rows_back(
    tmp_path: Path, server: DevServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_drainer, "MIN_PAUSE", 0.05)
    testing.set_testing(False)
    outbox = tmp_path / "outbox.sqlite"
    await queue_while_down(outbox, events(40), server.endpoint)
    slow: dict[str, object] = {"delay": 0.2}
    server.script(*([slow] * 40))
    async with Revenue(TOKEN, endpoint=server.endpoint, outbox=outbox):
        await anyio.sleep(0.3)  # the background drainer is in the middle of its batch
    server.reset()
    again = Revenue(TOKEN, endpoint=server.endpoint, outbox=outbox)
    with anyio.fail_after(20):  # not the 60 s lease of a claim left behind
        assert await again.flush(timeout=30) == 0
    await again.aclose()


async def test_a_bad_outbox_path_fails_at_the_start_and_closes_the_client(
    tmp_path: Path,
) -> None:
    revenue = Revenue(TOKEN, outbox=tmp_path / "missing" / "outbox.sqlite")
    with pytest.raises(ConfigurationError, match="cannot open the outbox"):
        async with revenue:
            pass
    assert repr(revenue).startswith("<Revenue closed")  # its connections too: no __aexit__ ran


async def test_an_unreadable_row_is_a_dead_letter_not_a_crash(
    tmp_path: Path, server: DevServer
) -> None:
    outbox = Outbox(tmp_path / "outbox.sqlite", endpoint=server.endpoint)
    await outbox.put("k" * 64, "tx_bad", "purchase", "{not json", b"{}")
    await outbox.close()
    await queue_while_down(tmp_path / "outbox.sqlite", events(2), server.endpoint)
    async with Revenue(
        TOKEN, endpoint=server.endpoint, outbox=tmp_path / "outbox.sqlite"
    ) as revenue:
        assert await revenue.flush(timeout=30) == 0
        (dead,) = await revenue.dead_letters()
    assert (dead.transaction_id, dead.event) == ("tx_bad", None)
    assert len(server.events()) == 2


async def test_a_408_is_queued_and_stays_queued(
    tmp_path: Path, server: DevServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_drainer, "MIN_PAUSE", 0.05)  # tried again and again within the flush
    timeout: dict[str, object] = {"status": 408}
    server.script(*([timeout] * 100))
    outbox = tmp_path / "outbox.sqlite"
    async with Revenue(TOKEN, endpoint=server.endpoint, retry=QUICK, outbox=outbox) as revenue:
        assert (await revenue.track(EVENT)).queued
        assert await revenue.flush(timeout=0.3) == 1
        assert await revenue.dead_letters() == []
        await anyio.to_thread.run_sync(server.reset)
        assert await revenue.flush(timeout=30) == 0
    assert len(server.events()) == 1


def fake_revenue(outbox: Path, fake: FakePulsora, **options: Any) -> Revenue:
    return Revenue(TOKEN, transport=fake.transport, outbox=outbox, **options)


@pytest.mark.parametrize("value", [1e-40, 6.02e33])
async def test_a_float_of_any_size_in_metadata_survives_the_outbox(
    tmp_path: Path, value: float
) -> None:
    outbox = tmp_path / "outbox.sqlite"
    await queue_while_down(outbox, [{**EVENT, "metadata": {"rate": value}}])
    fake = FakePulsora()
    revenue = fake_revenue(outbox, fake)
    assert await revenue.flush(timeout=5) == 0
    assert await revenue.dead_letters() == []
    await revenue.aclose()
    (stored,) = fake.events
    assert stored.metadata is not None
    rate = stored.metadata["rate"]
    assert isinstance(rate, Decimal)  # as JSON is read
    assert float(rate) == value


async def test_a_configuration_error_while_draining_buries_nothing(
    tmp_path: Path, anyio_backend_name: str
) -> None:
    if anyio_backend_name != "trio":
        pytest.skip("the error is aiohttp's refusal to run on trio")
    outbox = tmp_path / "outbox.sqlite"
    await queue_while_down(outbox, events(3))
    revenue = Revenue(TOKEN, backend="aiohttp", outbox=outbox)
    with pytest.raises(ConfigurationError):
        await revenue.flush(timeout=5)
    assert await revenue.dead_letters() == []
    assert await revenue.outbox_size() == 3
    await revenue.aclose()


async def test_the_back_off_resets_once_pulsora_accepts_again(tmp_path: Path) -> None:
    outbox = tmp_path / "outbox.sqlite"
    await queue_while_down(outbox, events(24))
    fake = FakePulsora()
    revenue = fake_revenue(outbox, fake)
    pauses = []
    for _ in range(4):  # a flaky Pulsora: three rows accepted, then one gets 503s
        fake.script([Fault(), Fault(), Fault(), Fault(status=503), Fault(status=503)])
        assert await drain(revenue) == 3
        pauses.append(drainer(revenue).pause)
    await revenue.aclose()
    assert pauses == [1.0] * 4  # not 1, 2, 4, 8: each batch was mostly accepted


@pytest.mark.parametrize(("retry_after", "pause"), [(30, 30), (10**20, 3600)])
async def test_a_429_holds_the_whole_queue_for_its_retry_after(
    tmp_path: Path, retry_after: float, pause: float
) -> None:
    outbox = tmp_path / "outbox.sqlite"
    await queue_while_down(outbox, events(3))
    fake = FakePulsora()
    fake.outage(429, seconds=3600, retry_after=retry_after)
    revenue = fake_revenue(outbox, fake)
    assert await drain(revenue) == 0
    assert drainer(revenue).pause == pause  # at most an hour: a proxy's absurd header is not obeyed
    assert await drain(revenue, due_only=True) == 0  # none is due before 30 s
    await revenue.aclose()
    assert fake.requests == 1  # its Retry-After is past the attempt's deadline: no retry


async def test_a_row_accepted_just_before_a_cancellation_is_not_sent_again(
    tmp_path: Path,
) -> None:
    outbox = tmp_path / "outbox.sqlite"
    await queue_while_down(outbox, events(2))
    fake = FakePulsora()
    scope = anyio.CancelScope()

    async def accept_then_cancel(request: httpx.Request) -> httpx.Response:
        response = await fake.transport.handle_async_request(request)
        scope.cancel()  # aclose() or a flush timeout, as the 202 comes back
        return response

    revenue = Revenue(TOKEN, transport=httpx.MockTransport(accept_then_cancel), outbox=outbox)
    with scope:
        await revenue.flush(timeout=10)
    await revenue.aclose()
    again = fake_revenue(outbox, fake)
    assert await again.flush(timeout=5) == 0  # the second row, at once: not left claimed
    await again.aclose()
    assert fake.requests == 2, fake.rejected


async def test_closing_during_a_flush_leaves_no_connection_open(tmp_path: Path) -> None:
    outbox = tmp_path / "outbox.sqlite"
    endpoint = f"http://127.0.0.1:{free_port()}/x"
    await queue_while_down(outbox, events(3), endpoint)
    revenue = Revenue(TOKEN, endpoint=endpoint, outbox=outbox)

    async def flushing() -> None:
        with contextlib.suppress(PulsoraError):
            await revenue.flush(timeout=5)

    testing.set_testing(False)  # real back-off waits: something to close in the middle of
    async with anyio.create_task_group() as group:
        group.start_soon(flushing)
        await anyio.sleep(0.3)
        await revenue.aclose()
    assert service(revenue).queue._db is None


async def test_closing_ends_a_flush_waiting_out_a_429_in_another_task(tmp_path: Path) -> None:
    outbox = tmp_path / "outbox.sqlite"
    await queue_while_down(outbox, events(1))
    slow = httpx.Response(429, headers={"Retry-After": "600"}, json={"error": "Rate limited"})
    waiting = anyio.Event()

    def refuse(request: httpx.Request) -> httpx.Response:
        waiting.set()  # the flush's attempt: its pause comes next
        return slow

    revenue = Revenue(TOKEN, transport=httpx.MockTransport(refuse), outbox=outbox)
    testing.set_testing(False)  # the flush's pause is real: ten minutes

    async def flush() -> None:
        with pytest.raises(ClientClosedError):
            await revenue.flush()

    with anyio.fail_after(20):  # a guard
        async with anyio.create_task_group() as group:
            group.start_soon(flush)
            await waiting.wait()
            await anyio.sleep(0.05)  # the flush now waits out the 429's pause
            await revenue.aclose()
    check = Revenue(TOKEN, transport=httpx.MockTransport(lambda _: slow), outbox=outbox)
    assert await check.outbox_size() == 1
    await check.aclose()


def test_the_outbox_command_leaves_a_file_that_is_no_outbox_alone(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from pulsora_revenue._cli import main

    other = tmp_path / "payments.checkpoint.sqlite"
    with contextlib.closing(sqlite3.connect(other)) as db:
        db.execute("CREATE TABLE done (transaction_id TEXT, event_type TEXT)")
        db.commit()
    assert main(["outbox", str(other)]) == 2
    assert "not an outbox" in capsys.readouterr().err
    with contextlib.closing(sqlite3.connect(other)) as db:
        tables = {name for (name,) in db.execute("SELECT name FROM sqlite_master")}
        assert tables == {"done"}
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "delete"


@contextlib.asynccontextmanager
async def write_locked(outbox: Path, seconds: float) -> AsyncIterator[None]:
    """Another process writing to the outbox file for *seconds*, or until the block ends."""
    held, done = threading.Event(), threading.Event()

    def hold() -> None:
        with contextlib.closing(sqlite3.connect(outbox, isolation_level=None)) as db:
            db.execute("BEGIN IMMEDIATE")
            held.set()
            done.wait(seconds)
            db.execute("COMMIT")

    thread = threading.Thread(target=hold)
    thread.start()
    await anyio.to_thread.run_sync(held.wait)
    try:
        yield
    finally:
        done.set()
        await anyio.to_thread.run_sync(thread.join)


def refusing_and_locking(
    outbox: Path, locking: contextlib.AsyncExitStack, *, seconds: float, on_request: int
) -> httpx.MockTransport:
    """Answers 503; request number *on_request* has another process lock the file."""
    requests = 0

    async def refuse(request: httpx.Request) -> httpx.Response:
        nonlocal requests
        requests += 1
        if requests == on_request:
            await locking.enter_async_context(write_locked(outbox, seconds))
        return httpx.Response(503, json={"error": "Service unavailable"})

    return httpx.MockTransport(refuse)


async def test_a_flush_keeps_its_timeout_while_another_process_writes(tmp_path: Path) -> None:
    testing.set_testing(False)
    outbox = tmp_path / "outbox.sqlite"
    await queue_while_down(outbox, events(2))
    revenue = fake_revenue(outbox, FakePulsora())
    await revenue.outbox_size()  # opened
    async with write_locked(outbox, 1.5):
        started = anyio.current_time()
        await revenue.flush(timeout=0.3)
        assert anyio.current_time() - started < 1.0  # not SQLite's busy timeout
    assert await revenue.flush(timeout=5) == 0
    await revenue.aclose()


async def test_queueing_while_another_process_writes_leaves_worker_threads_free(
    tmp_path: Path,
) -> None:
    testing.set_testing(False)
    outbox = tmp_path / "outbox.sqlite"
    endpoint = f"http://127.0.0.1:{free_port()}/x"
    revenue = Revenue(TOKEN, endpoint=endpoint, retry=QUICK, outbox=outbox)
    await revenue.outbox_size()
    threads = int(anyio.to_thread.current_default_thread_limiter().total_tokens)
    async with write_locked(outbox, 0.8), anyio.create_task_group() as group:
        for event in events(threads + 5):
            group.start_soon(revenue.track, event)  # webhooks, while Pulsora is down
        await anyio.sleep(0.3)
        started = anyio.current_time()
        await anyio.to_thread.run_sync(lambda: None)  # the application's own thread work
        assert anyio.current_time() - started < 0.5
    assert await revenue.outbox_size() == threads + 5
    await revenue.aclose()


async def test_closing_while_another_process_writes_does_not_wait_for_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    testing.set_testing(False)
    monkeypatch.setattr(_drainer, "SETTLE_WITHIN", 0.3)
    outbox = tmp_path / "outbox.sqlite"
    await queue_while_down(outbox, events(4))
    async with contextlib.AsyncExitStack() as locking:
        transport = refusing_and_locking(outbox, locking, seconds=2.0, on_request=1)
        revenue = Revenue(TOKEN, transport=transport, outbox=outbox)
        started = anyio.current_time()
        await revenue.flush(timeout=0.3)  # the 503's bookkeeping finds the file locked
        await revenue.aclose()
        assert anyio.current_time() - started < 1.4  # SETTLE_WITHIN per write, at most


async def test_a_refused_row_stays_when_writing_its_outcome_runs_out_of_time(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    testing.set_testing(False)
    monkeypatch.setattr(_drainer, "SETTLE_WITHIN", 0.3)
    outbox = tmp_path / "outbox.sqlite"
    await queue_while_down(outbox, events(2))
    async with contextlib.AsyncExitStack() as locking:
        # On the first row's last attempt: locked past the deadline, and only then.
        transport = refusing_and_locking(outbox, locking, seconds=0.45, on_request=2)
        revenue = Revenue(TOKEN, transport=transport, outbox=outbox)
        await drain(revenue)
    assert await revenue.outbox_size() == 2  # refused: kept, not deleted as delivered
    await revenue.aclose()


async def test_any_task_may_close_a_client_with_an_outbox(tmp_path: Path) -> None:
    fake = FakePulsora()
    async with Revenue(TOKEN, transport=fake.transport, outbox=tmp_path / "o.sqlite") as revenue:
        async with anyio.create_task_group() as group:
            group.start_soon(revenue.aclose)
        await anyio.sleep(0.01)  # the task that opened the client is not cancelled
        with pytest.raises(ClientClosedError):
            await revenue.track(EVENT)


async def test_closing_in_a_nested_cancel_scope_leaves_the_caller_running(tmp_path: Path) -> None:
    fake = FakePulsora()
    async with Revenue(TOKEN, transport=fake.transport, outbox=tmp_path / "o.sqlite") as revenue:
        with anyio.move_on_after(10) as scope:
            await revenue.aclose()
        await anyio.sleep(0.01)
    assert not scope.cancelled_caught


# A full disk (issue 17): SQLite's SQLITE_FULL, for real, from a database capped
# with PRAGMA max_page_count; and, where a cap cannot reach (a COMMIT, a DELETE),
# a connection that fails as SQLite does on a full disk.


class Switch:
    """A transport to the fake Pulsora that can be unreachable (``down``)."""

    def __init__(self, fake: FakePulsora, *, down: bool) -> None:
        self.fake, self.down = fake, down
        self.transport = httpx.MockTransport(self._handle)

    async def _handle(self, request: httpx.Request) -> httpx.Response:
        if self.down:
            raise httpx.ConnectError("connection refused", request=request)
        return await self.fake.transport.handle_async_request(request)


async def fill_up(revenue: Revenue, prefix: str) -> OutboxError:
    """Cap the outbox at its size, then track while down until the disk is "full"."""
    outbox = service(revenue).queue
    await outbox._run(lambda db: db.execute("PRAGMA max_page_count = 1"))  # to its size, at least
    for row in events(500, prefix):
        try:
            result = await revenue.track(row)
        except OutboxError as exc:
            return exc
        assert result.queued
    raise AssertionError("the outbox never filled up")


async def test_a_full_disk_makes_track_raise_an_outbox_error_that_says_the_event_is_lost(
    tmp_path: Path,
) -> None:
    switch = Switch(FakePulsora(), down=True)
    revenue = Revenue(TOKEN, transport=switch.transport, retry=QUICK, outbox=tmp_path / "o.sqlite")
    error = await fill_up(revenue, "full")
    assert isinstance(error.__cause__, sqlite3.OperationalError)
    assert error.__cause__.sqlite_errorcode == sqlite3.SQLITE_FULL
    assert "database or disk is full" in str(error)
    assert "is NOT kept" in str(error)
    assert "It was not delivered either: No answer from Pulsora" in str(error)
    assert isinstance(error.delivery_error, APIConnectionError), "the original failure"
    assert error.path == str(tmp_path / "o.sqlite")
    assert isinstance(error, PulsoraError), "caught where the docs' webhook route catches"
    copy = pickle.loads(pickle.dumps(error))
    assert (str(copy), copy.path) == (str(error), error.path)
    await revenue.aclose()


async def test_a_full_disk_still_lets_delivery_proceed(tmp_path: Path) -> None:
    fake = FakePulsora()
    switch = Switch(fake, down=True)
    revenue = Revenue(TOKEN, transport=switch.transport, retry=QUICK, outbox=tmp_path / "o.sqlite")
    lost = await fill_up(revenue, "full")
    queued = await revenue.outbox_size()
    assert queued > 0
    switch.down = False
    assert (await revenue.track({**EVENT, "transaction_id": "direct"})).status_code == 202
    assert await revenue.flush(timeout=60) == 0, "the queued events went out"
    sent = {e.transaction_id for e in fake.events}
    assert len(sent) == queued + 1
    assert "direct" in sent
    assert lost.delivery_error is not None
    assert not any(t in str(lost) for t in sent - {"direct"}), "the lost one is not among them"
    await revenue.aclose()


class FullDisk:
    """A connection on which *statement* fails as on a full disk, where a size cap cannot
    reach: SQLite has rolled the transaction back already when a COMMIT fails so."""

    def __init__(self, db: sqlite3.Connection, statement: str, times: int = 1) -> None:
        self._db, self._statement, self._times = db, statement, times

    def __getattr__(self, name: str) -> Any:
        return getattr(self._db, name)

    def execute(self, sql: str, *args: Any) -> sqlite3.Cursor:
        if sql.startswith(self._statement) and self._times:
            self._times -= 1
            if self._db.in_transaction:
                self._db.execute("ROLLBACK")
            raise sqlite3.OperationalError("database or disk is full")
        return self._db.execute(sql, *args)


async def on_a_full_disk(revenue: Revenue, statement: str) -> None:
    outbox = service(revenue).queue
    await revenue.outbox_size()  # opened
    assert outbox._db is not None
    outbox._db = FullDisk(outbox._db, statement)  # type: ignore[assignment]


async def test_a_flush_reports_the_full_disk_not_a_failed_rollback(tmp_path: Path) -> None:
    outbox = tmp_path / "o.sqlite"
    await queue_while_down(outbox, events(2))
    revenue = fake_revenue(outbox, FakePulsora())
    await on_a_full_disk(revenue, "COMMIT")
    with pytest.raises(OutboxError, match="database or disk is full") as caught:
        await revenue.flush(timeout=60)
    assert "cannot rollback" not in str(caught.value)
    assert str(caught.value.__cause__) == "database or disk is full"
    assert await revenue.flush(timeout=60) == 0, "once there is room, all goes out"
    await revenue.aclose()


async def test_a_row_whose_outcome_cannot_be_written_does_not_hold_up_the_rest(
    tmp_path: Path,
) -> None:
    outbox = tmp_path / "o.sqlite"
    await queue_while_down(outbox, events(6))
    fake = FakePulsora()
    revenue = fake_revenue(outbox, fake)
    await on_a_full_disk(revenue, "DELETE FROM outbox")  # the first delivered row stays
    with pytest.raises(OutboxError, match="database or disk is full"):
        await drain(revenue)
    assert len(fake.events) == 6, "every row was delivered"
    assert await revenue.outbox_size() == 1, "the one not deleted: its claim holds it back"
    assert await drain(revenue) == 0, "until its lease ends"
    await revenue.aclose()


class Records(logging.Handler):
    """Keeps the log records, and says when the first came."""

    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []
        self.first = anyio.Event()

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)
        self.first.set()


async def test_the_drainer_logs_a_full_disk_in_one_line_and_goes_on(tmp_path: Path) -> None:
    outbox = tmp_path / "o.sqlite"
    await queue_while_down(outbox, events(2))
    revenue = fake_revenue(outbox, FakePulsora())
    await on_a_full_disk(revenue, "BEGIN IMMEDIATE")
    records = Records()
    logger = logging.getLogger("pulsora_revenue")
    logger.addHandler(records)
    try:
        with anyio.fail_after(5):  # a guard
            async with anyio.create_task_group() as group:
                group.start_soon(drainer(revenue).run, await revenue._sender())
                await records.first.wait()
                group.cancel_scope.cancel()  # it was waiting out its back-off
    finally:
        logger.removeHandler(records)
    (record,) = [r for r in records.records if r.levelno >= logging.WARNING]
    assert record.levelno == logging.ERROR
    assert record.exc_info is None, "one line: the cause is in the message"
    assert "database or disk is full" in record.getMessage()
    assert "Next try in 1 s" in record.getMessage()
    assert drainer(revenue).pause == 1.0
    assert await revenue.flush(timeout=60) == 0, "the next drain delivers"
    await revenue.aclose()


async def test_dead_letters_are_seen_and_retried_through_the_client(tmp_path: Path) -> None:
    outbox = tmp_path / "outbox.sqlite"
    await queue_while_down(outbox, events(3))
    fake = FakePulsora()
    fake.script([Fault(status=422)])  # the first row is refused for good
    async with fake_revenue(outbox, fake) as revenue:
        assert await revenue.flush(timeout=10) == 0
        (dead,) = await revenue.dead_letters()
        assert (dead.transaction_id, dead.event_type) == ("ob_0", "purchase")
        assert dead.event == RevenueEvent(**{**EVENT, "transaction_id": "ob_0"})
        assert "HTTP 422" in dead.error
        assert dead.queued_at <= dead.died_at
        assert await revenue.retry_dead_letters([dead]) == 1
        assert await revenue.dead_letters() == []
        assert await revenue.flush(timeout=10) == 0
    assert sorted(e.transaction_id for e in fake.events) == ["ob_0", "ob_1", "ob_2"]


async def test_retrying_every_dead_letter_leaves_other_endpoints_alone(tmp_path: Path) -> None:
    outbox = tmp_path / "outbox.sqlite"
    for endpoint in (None, EMULATOR):
        await queue_while_down(outbox, events(2, "mine" if endpoint is None else "emu"), endpoint)
        switch = FakePulsora()
        switch.outage(400, seconds=3600)
        async with Revenue(
            TOKEN, endpoint=endpoint, transport=switch.transport, outbox=outbox
        ) as revenue:
            assert await revenue.flush(timeout=10) == 0
            assert len(await revenue.dead_letters()) == 2, "each endpoint sees its own"
    fake = FakePulsora()
    async with fake_revenue(outbox, fake) as revenue:
        assert await revenue.retry_dead_letters() == 2
        assert await revenue.flush(timeout=10) == 0
    assert sorted(e.transaction_id for e in fake.events) == ["mine_0", "mine_1"]
    async with Revenue(TOKEN, endpoint=EMULATOR, transport=fake.transport, outbox=outbox) as emu:
        assert [d.transaction_id for d in await emu.dead_letters()] == ["emu_0", "emu_1"]


async def test_without_an_outbox_there_are_no_dead_letters_to_retry() -> None:
    async with Revenue(TOKEN, transport=FakePulsora().transport) as revenue:
        assert await revenue.dead_letters() == []
        with pytest.raises(ConfigurationError, match="no outbox"):
            await revenue.retry_dead_letters()


async def test_an_event_queued_while_idle_is_sent_without_waiting_for_the_idle_check(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_drainer, "IDLE_CHECK", 3600.0)  # without a wake-up: an hour
    fake = FakePulsora()
    fake.script([Fault(status=503), Fault(status=503)])  # the track's two attempts
    accepted = anyio.Event()

    async def answer(request: httpx.Request) -> httpx.Response:
        response = await fake.transport.handle_async_request(request)
        if response.status_code == 202:
            accepted.set()
        return response

    transport = httpx.MockTransport(answer)
    outbox = tmp_path / "outbox.sqlite"
    async with Revenue(TOKEN, transport=transport, retry=QUICK, outbox=outbox) as revenue:
        await anyio.sleep(0.05)  # the drainer has found nothing, and waits
        assert (await revenue.track(EVENT)).queued
        with anyio.fail_after(5):
            await accepted.wait()
    assert [e.transaction_id for e in fake.events] == [EVENT["transaction_id"]]
