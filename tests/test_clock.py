"""The loop's clock, as the retry loop reads it."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import anyio
import pytest

from pulsora_revenue import testing
from pulsora_revenue._clock import Stopwatch, loop_clock

pytestmark = pytest.mark.anyio

Backend = str | tuple[str, dict[str, Any]]


def on_uvloop(anyio_backend: Backend) -> bool:
    return isinstance(anyio_backend, tuple) and bool(anyio_backend[1].get("use_uvloop"))


async def test_the_clock_is_the_running_loops(anyio_backend: Backend) -> None:
    clock = loop_clock()
    if on_uvloop(anyio_backend):  # uvloop keeps a clock of its own: follow it
        loop = asyncio.get_running_loop()
        assert type(loop).__module__.startswith("uvloop")
        assert clock == loop.time
    elif anyio_backend == "asyncio":  # asyncio's loop reads time.monotonic: so do we
        assert clock is time.monotonic
        assert asyncio.get_running_loop().time() <= clock()
    else:
        assert clock is anyio.current_time


async def test_a_stopwatch_measures_a_real_wait() -> None:
    testing.set_testing(False)
    watch = Stopwatch()
    await anyio.sleep(0.05)
    assert 0.045 <= watch.elapsed() < 1.0  # uvloop's clock counts whole milliseconds


async def test_a_replaced_loop_clock_is_followed(anyio_backend: Backend) -> None:
    if anyio_backend != "asyncio":
        pytest.skip("only the stock asyncio loop's clock can be replaced")
    loop = asyncio.get_running_loop()
    now = 1000.0
    loop.time = lambda: now  # type: ignore[method-assign]  # as time-travel plugins do
    try:
        watch = Stopwatch()
        now += 2.5
        assert watch.elapsed() == 2.5
    finally:
        del loop.time  # the class's own again
