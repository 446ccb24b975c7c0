"""The event loop of a ``SyncRevenue``, in a daemon thread of its own.

The loop is uvloop's where uvloop is installed (the ``speed`` extra brings it):
its hand-off between threads costs a third less CPU than asyncio's. Calls from
other threads are handed over in batches (``Running.call``), not through
anyio's blocking portal nor ``run_coroutine_threadsafe``, which cost 1.5 to 2
times as much: the hop between threads is most of what a ``SyncRevenue`` call
adds to a ``Revenue`` call (benchmarks/README.md). Loaded with the first call:
``import pulsora_revenue`` does not load asyncio.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import contextvars
import threading
from collections.abc import Coroutine
from typing import Any, Generic, TypeVar, cast

from ._client import Revenue
from ._errors import ClientClosedError

_T = TypeVar("_T")


def start(revenue: Revenue) -> Running:
    """Run *revenue* on a new loop in a daemon thread; return once it is entered.

    What entering it raises (a bad outbox path) is raised here.
    """
    started: list[Running | BaseException] = []
    ready = threading.Event()

    async def main() -> None:
        try:
            async with revenue:
                running = Running(asyncio.get_running_loop(), threading.current_thread())
                started.append(running)
                ready.set()
                await running.until_stopped()
        except BaseException as exc:
            if not ready.is_set():  # entering failed: the caller raises it
                started.append(exc)
                ready.set()
                return
            raise

    thread = threading.Thread(target=_run, args=(main(),), name="pulsora-revenue", daemon=True)
    thread.start()
    ready.wait()
    outcome = started[0]
    if isinstance(outcome, BaseException):
        thread.join()
        raise outcome
    return outcome


def _run(main: Coroutine[Any, Any, None]) -> None:
    """Run *main* on a new event loop: uvloop's where it is installed, asyncio's otherwise."""
    try:
        import uvloop
    except ImportError:
        factory = None
    else:
        factory = uvloop.new_event_loop
    with asyncio.Runner(loop_factory=factory) as runner:
        runner.run(main)


class Running:
    """A client's event loop, running in its thread: the calls it serves, and its stop.

    Calls are handed over in batches: a calling thread appends its call to a
    queue and wakes the loop only when no wake-up is pending, so that one
    wake-up serves the calls of every thread that arrived meanwhile; the loop
    hands each outcome back by releasing the caller's own lock. Each call then
    costs the loop a task, not a wake-up and a chain of futures
    (``run_coroutine_threadsafe``): benchmarks/README.md has the figures.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop, thread: threading.Thread) -> None:
        self.loop, self.thread = loop, thread
        self._stopped = asyncio.Event()
        self._calls: set[asyncio.Task[Any]] = set()
        self._arrived: collections.deque[
            tuple[_Slot[Any], Coroutine[Any, Any, Any], contextvars.Context]
        ] = collections.deque()
        self._guard = threading.Lock()  # orders arrivals against the end of the loop
        self._wake_pending = False
        self._ended = False

    def call(self, call: Coroutine[Any, Any, _T]) -> _T:
        """Run *call* on the loop from another thread, and wait for its outcome.

        It runs in a copy of the calling thread's context: the caller's current
        OpenTelemetry span, say, is its hooks' too.
        """
        slot: _Slot[_T] = _Slot()
        context = contextvars.copy_context()
        with self._guard:
            if self._ended:
                call.close()
                raise ClientClosedError("the client was closed while this call was made")
            self._arrived.append((slot, call, context))
            wake, self._wake_pending = not self._wake_pending, True
            if wake:  # under the guard: the loop is still open
                self.loop.call_soon_threadsafe(self._start_arrived)
        return slot.wait()

    def _start_arrived(self) -> None:
        """In the loop: start a task for every call that arrived since the last wake-up."""
        with self._guard:
            arrived, self._wake_pending = list(self._arrived), False
            self._arrived.clear()
        for slot, call, context in arrived:
            task = self.loop.create_task(self._serve(slot, call), context=context)
            self._calls.add(task)
            task.add_done_callback(self._calls.discard)

    async def _serve(self, slot: _Slot[_T], call: Coroutine[Any, Any, _T]) -> None:
        try:
            slot.value = await call
        except BaseException as exc:  # the caller raises it, cancellation included
            slot.error = exc
        finally:
            slot.done.release()

    async def until_stopped(self) -> None:
        """Return once ``stop`` was called and the calls in progress have ended.

        Calls that arrive after that raise ``ClientClosedError`` in their thread.
        """
        await self._stopped.wait()
        while True:
            while self._calls:
                await asyncio.wait(set(self._calls))
            with self._guard:
                if not self._arrived:
                    self._ended = True
                    return
            self._start_arrived()  # arrived before the end: served, as those before stop

    def stop(self) -> None:
        """Ask the loop to stop, from any thread, without waiting for it."""
        with contextlib.suppress(RuntimeError):  # it has stopped already
            self.loop.call_soon_threadsafe(self._stopped.set)


class _Slot(Generic[_T]):
    """Where the loop leaves one call's outcome, and the lock its caller waits on."""

    __slots__ = ("done", "error", "value")

    def __init__(self) -> None:
        self.done = threading.Lock()
        self.done.acquire()  # released by the loop once the outcome is in
        self.value: _T | None = None
        self.error: BaseException | None = None

    def wait(self) -> _T:
        self.done.acquire()
        if self.error is not None:
            raise self.error
        return cast(_T, self.value)  # set with the outcome, before done was released
