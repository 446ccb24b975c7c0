"""``SyncRevenue`` from plain threads, ``Revenue`` across event loops, and process lifecycles."""

from __future__ import annotations

import asyncio
import importlib.util
import inspect
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import httpx
import pytest

from pulsora_revenue import (
    AuthenticationError,
    BadRequestError,
    ClientClosedError,
    ConfigurationError,
    Revenue,
    SyncRevenue,
    TrackResult,
    ValidationError,
)
from pulsora_revenue.testing import FakePulsora

from .conftest import DevServer
from .data import EVENT, TOKEN


def test_track_returns_what_revenue_returns() -> None:
    fake = FakePulsora()
    with SyncRevenue(TOKEN, transport=fake.transport) as revenue:
        result = revenue.track(EVENT)
        assert isinstance(result, TrackResult)
        assert (result.status_code, result.attempts) == (202, 1)
        assert revenue.track(**{**EVENT, "transaction_id": "kw_1"}).status_code == 202
    assert [e.transaction_id for e in fake.events] == [EVENT["transaction_id"], "kw_1"]


def test_errors_are_the_same_exceptions() -> None:
    fake = FakePulsora(tokens={"sec_another_one_0000"})
    with SyncRevenue(TOKEN, transport=fake.transport) as revenue:
        with pytest.raises(ValidationError):
            revenue.track({**EVENT, "amount": "abc"})
        with pytest.raises(AuthenticationError):
            revenue.track(EVENT)
    with pytest.raises(ConfigurationError):
        SyncRevenue(TOKEN, timeout=0)  # in the caller's thread, at construction


def test_threads_share_one_client_and_each_event_is_sent_once() -> None:
    fake = FakePulsora()
    with SyncRevenue(TOKEN, transport=fake.transport) as revenue:

        def send(thread: int) -> None:
            for n in range(25):
                revenue.track({**EVENT, "transaction_id": f"t{thread}_{n}"})

        threads = [threading.Thread(target=send, args=(t,)) for t in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    ids = [e.transaction_id for e in fake.events]
    assert sorted(ids) == sorted(f"t{t}_{n}" for t in range(8) for n in range(25))


def test_a_closed_client_refuses_calls_and_closing_again_is_harmless() -> None:
    revenue = SyncRevenue(TOKEN, transport=FakePulsora().transport)
    revenue.track(EVENT)
    revenue.close()
    revenue.close()
    with pytest.raises(ClientClosedError):
        revenue.track(EVENT)
    assert "sec_" not in repr(revenue).replace("sec_…", "")


def test_track_many_flush_and_dead_letters(tmp_path: Path) -> None:
    fake = FakePulsora()
    rows = [{**EVENT, "transaction_id": f"b{n}"} for n in range(20)]
    with SyncRevenue(TOKEN, transport=fake.transport, outbox=tmp_path / "o.sqlite") as revenue:
        report = revenue.track_many(rows, concurrency=4)
        assert (report.total, report.sent) == (20, 20)
        assert revenue.flush(timeout=5) == 0
        assert revenue.outbox_size() == 0
        assert revenue.dead_letters() == []
    assert len(fake.events) == 20


def test_a_bad_outbox_path_fails_where_the_client_is_opened(tmp_path: Path) -> None:
    revenue = SyncRevenue(TOKEN, outbox=tmp_path / "missing" / "o.sqlite")
    with pytest.raises(ConfigurationError, match="cannot open the outbox"), revenue:
        pass


def test_against_the_emulator_from_threads(server: DevServer) -> None:
    with SyncRevenue(TOKEN, endpoint=server.endpoint) as revenue:
        threads = [
            threading.Thread(target=revenue.track, args=({**EVENT, "transaction_id": f"emu_{n}"},))
            for n in range(8)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        server.script({"status": 400})
        with pytest.raises(BadRequestError):
            revenue.track({**EVENT, "transaction_id": "refused"})
    assert sorted(str(e["transaction_id"]) for e in server.events()) == [
        f"emu_{n}" for n in range(8)
    ]


def test_one_revenue_serves_one_asyncio_run_after_another() -> None:
    """The Celery pattern: a module-level client, and a new event loop for each task."""
    fake = FakePulsora()
    revenue = Revenue(TOKEN, transport=fake.transport)
    for n in range(3):
        result = asyncio.run(revenue.track({**EVENT, "transaction_id": f"run_{n}"}))
        assert result.status_code == 202
    asyncio.run(revenue.aclose())
    assert len(fake.events) == 3


def test_two_loops_at_once_is_one_clear_error() -> None:
    fake = FakePulsora()
    revenue = Revenue(TOKEN, transport=fake.transport)
    first_in, second_done = threading.Event(), threading.Event()
    errors: list[BaseException] = []

    async def hold() -> None:
        await revenue.track(EVENT)
        first_in.set()
        await asyncio.to_thread(second_done.wait)  # the first loop keeps running meanwhile

    def other() -> None:
        first_in.wait()
        try:
            asyncio.run(revenue.track({**EVENT, "transaction_id": "other"}))
        except BaseException as exc:
            errors.append(exc)
        finally:
            second_done.set()

    thread = threading.Thread(target=other)
    thread.start()
    asyncio.run(hold())
    thread.join()
    asyncio.run(revenue.aclose())
    (error,) = errors
    assert isinstance(error, ConfigurationError)
    assert "in use by another event loop" in str(error)
    assert "SyncRevenue" in str(error)


def run_script(script: str, *args: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(script), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def test_a_script_that_never_closes_exits_at_once_and_quietly(
    server: DevServer, tmp_path: Path
) -> None:
    script = """
        import sys
        from pulsora_revenue import SyncRevenue
        revenue = SyncRevenue("sec_script_0000_abcd", endpoint=sys.argv[1], outbox=sys.argv[2])
        print(revenue.track(visitor_fingerprint="fp", session_id="s", customer_id="c",
                            amount="1", transaction_id="script_1").status_code)
    """
    started = time.monotonic()
    done = run_script(script, server.endpoint, str(tmp_path / "o.sqlite"))
    assert (done.returncode, done.stdout.strip(), done.stderr) == (0, "202", "")
    assert time.monotonic() - started < 10
    assert [e["transaction_id"] for e in server.events()] == ["script_1"]


@pytest.mark.skipif(not hasattr(__import__("os"), "fork"), reason="no fork on this platform")
def test_a_client_made_before_a_fork_works_in_the_child(server: DevServer) -> None:
    script = """
        import os, sys
        from pulsora_revenue import SyncRevenue
        revenue = SyncRevenue("sec_fork_0000_abcd", endpoint=sys.argv[1])
        row = dict(visitor_fingerprint="fp", session_id="s", customer_id="c", amount="1")
        revenue.track({**row, "transaction_id": "parent"})
        pid = os.fork()
        if pid == 0:
            code = revenue.track({**row, "transaction_id": "child"}).status_code
            revenue.close()
            os._exit(0 if code == 202 else 1)
        _, status = os.waitpid(pid, 0)
        revenue.track({**row, "transaction_id": "parent_again"})
        revenue.close()
        sys.exit(os.waitstatus_to_exitcode(status))
    """
    done = run_script(script, server.endpoint)
    assert done.returncode == 0, done.stderr
    ids = sorted(str(e["transaction_id"]) for e in server.events())
    assert ids == ["child", "parent", "parent_again"]


def held_transport(entered: threading.Event, release: threading.Event) -> httpx.MockTransport:
    """A transport whose every request waits, off the loop, until *release* is set."""

    async def answer(request: httpx.Request) -> httpx.Response:
        entered.set()
        await asyncio.to_thread(release.wait)
        return httpx.Response(202, json={"success": True})

    return httpx.MockTransport(answer)


def test_close_lets_calls_in_progress_finish_and_refuses_new_ones() -> None:
    entered, release = threading.Event(), threading.Event()
    revenue = SyncRevenue(TOKEN, transport=held_transport(entered, release))
    results: list[int | None] = []
    caller = threading.Thread(target=lambda: results.append(revenue.track(EVENT).status_code))
    caller.start()
    assert entered.wait(10)
    closer = threading.Thread(target=revenue.close)
    closer.start()
    with pytest.raises(ClientClosedError):  # close() has begun: no new call is taken
        revenue.track({**EVENT, "transaction_id": "late"})
    release.set()
    caller.join(10)
    closer.join(10)
    assert results == [202]
    assert not closer.is_alive()


def test_a_call_that_reaches_a_stopped_loop_raises_instead_of_waiting_for_ever() -> None:
    """A thread that got the loop just before another thread closed the client."""
    revenue = SyncRevenue(TOKEN, transport=FakePulsora().transport)
    revenue.track(EVENT)
    running = revenue._running
    assert running is not None
    revenue.close()
    call = revenue._revenue.track({**EVENT, "transaction_id": "too_late"})
    with pytest.raises(ClientClosedError):
        running.call(call)
    assert inspect.getcoroutinestate(call) == "CORO_CLOSED"  # no "never awaited" warning


def test_a_call_from_a_callback_raises_instead_of_waiting_on_itself() -> None:
    errors: list[BaseException] = []
    with SyncRevenue(TOKEN, transport=FakePulsora().transport) as revenue:

        def on_result(outcome: object) -> None:
            try:
                revenue.track({**EVENT, "transaction_id": "from_the_callback"})
            except RuntimeError as exc:
                errors.append(exc)

        report = revenue.track_many([EVENT], on_result=on_result)
        assert report.sent == 1
    (error,) = errors
    assert "client's own thread" in str(error)


def test_the_loop_thread_runs_uvloop_where_it_is_installed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def loop_of(revenue: SyncRevenue) -> str:
        running = revenue._running
        assert running is not None
        return type(running.loop).__module__

    with SyncRevenue(TOKEN, transport=FakePulsora().transport) as revenue:
        revenue.track(EVENT)
        expected = "asyncio" if importlib.util.find_spec("uvloop") is None else "uvloop"
        assert loop_of(revenue).split(".")[0] == expected
    monkeypatch.setitem(sys.modules, "uvloop", None)  # as if it were not installed
    with SyncRevenue(TOKEN, transport=FakePulsora().transport) as revenue:
        revenue.track(EVENT)
        assert loop_of(revenue).split(".")[0] == "asyncio"
