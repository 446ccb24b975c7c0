"""The loop's clock, as the retry loop reads it."""

from __future__ import annotations

import asyncio
import time

import anyio
import pytest

from pulsora_revenue._clock import Stopwatch, loop_clock

pytestmark = pytest.mark.anyio


async def test_the_clock_is_the_running_loops(anyio_backend_name: str) -> None:
    clock = loop_clock()
    if anyio_backend_name == "asyncio":  # asyncio's loop reads time.monotonic: so do we
        assert clock is time.monotonic
        assert asyncio.get_running_loop().time() <= clock()
    else:
        assert clock is anyio.current_time


async def test_a_replaced_loop_clock_is_followed(anyio_backend_name: str) -> None:
    if anyio_backend_name != "asyncio":
        pytest.skip("only an asyncio loop's clock can be replaced")
    loop = asyncio.get_running_loop()
    now = 1000.0
    loop.time = lambda: now  # type: ignore[method-assign]  # as time-travel plugins do
    try:
        watch = Stopwatch()
        now += 2.5
        assert watch.elapsed() == 2.5
    finally:
        del loop.time  # the class's own again
