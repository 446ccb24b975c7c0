"""The event loop of a ``SyncRevenue``, in a daemon thread of its own.

Calls from other threads go straight to asyncio (``run_coroutine_threadsafe``),
not through anyio's blocking portal, which costs a third more CPU a call. The
hop between threads is most of what a ``SyncRevenue`` call adds to a
``Revenue`` call (benchmarks/README.md). Loaded with the first call:
``import pulsora_revenue`` does not load asyncio.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

from ._client import Revenue

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

    thread = threading.Thread(
        target=asyncio.run, args=(main(),), name="pulsora-revenue", daemon=True
    )
    thread.start()
    ready.wait()
    outcome = started[0]
    if isinstance(outcome, BaseException):
        thread.join()
        raise outcome
    return outcome


class Running:
    """A client's event loop, running in its thread: the calls it serves, and its stop."""

    def __init__(self, loop: asyncio.AbstractEventLoop, thread: threading.Thread) -> None:
        self.loop, self.thread = loop, thread
        self._stopped = asyncio.Event()
        self._calls: set[asyncio.Task[Any]] = set()

    async def serve(self, call: Coroutine[Any, Any, _T]) -> _T:
        """Run *call*, counted among those ``until_stopped`` lets finish."""
        task = asyncio.current_task()
        assert task is not None
        self._calls.add(task)
        try:
            return await call
        finally:
            self._calls.discard(task)

    async def until_stopped(self) -> None:
        """Return once ``stop`` was called and the calls in progress have ended."""
        await self._stopped.wait()
        while self._calls:
            await asyncio.wait(set(self._calls))

    def stop(self) -> None:
        """Ask the loop to stop, from any thread, without waiting for it."""
        with contextlib.suppress(RuntimeError):  # it has stopped already
            self.loop.call_soon_threadsafe(self._stopped.set)

    def call(self, call: Coroutine[Any, Any, _T]) -> _T:
        """Run *call* on the loop from another thread, and wait for its outcome."""
        return asyncio.run_coroutine_threadsafe(self.serve(call), self.loop).result()
