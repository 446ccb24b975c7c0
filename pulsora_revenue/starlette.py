"""Starlette and FastAPI: one ``Revenue`` client for the app's lifetime.

::

    from fastapi import Depends, FastAPI
    from pulsora_revenue import Revenue
    from pulsora_revenue.starlette import get_revenue, lifespan

    app = FastAPI(lifespan=lifespan())  # Revenue(**options), closed on shutdown

    @app.post("/paid")
    async def paid(revenue: Revenue = Depends(get_revenue)) -> None:
        await revenue.track(...)

With a lifespan of your own, open the client in it and yield it under
``STATE_KEY``: ``async with Revenue() as revenue: yield {STATE_KEY: revenue}``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

from starlette.requests import HTTPConnection

from ._client import Revenue

__all__ = ["STATE_KEY", "get_revenue", "lifespan"]

#: The key of the client in the lifespan state (``request.state.pulsora_revenue``).
STATE_KEY = "pulsora_revenue"
"""The key of the client in the lifespan state: ``request.state.pulsora_revenue``."""


def lifespan(**options: Any) -> Callable[[Any], AbstractAsyncContextManager[dict[str, Any]]]:
    """Make a lifespan that opens ``Revenue(**options)`` at startup and closes it at shutdown.

    The client is in the lifespan state under ``STATE_KEY``, where ``get_revenue``
    finds it. The options are checked at once, when the app is built, so that a
    missing token fails then, not at the first webhook.

    Args:
        **options: the arguments of ``Revenue``.

    Returns:
        The lifespan, for ``Starlette(lifespan=...)`` or ``FastAPI(lifespan=...)``.

    Raises:
        ConfigurationError: when the options cannot work (a missing token, say).
    """
    Revenue(**options)  # fail early on a bad configuration; it opens nothing

    @asynccontextmanager
    async def run(app: Any) -> AsyncIterator[dict[str, Any]]:
        async with Revenue(**options) as revenue:
            yield {STATE_KEY: revenue}

    return run


def get_revenue(connection: HTTPConnection) -> Revenue:
    """Return the app's ``Revenue`` client: a FastAPI dependency, or call it with the request.

    Args:
        connection: the request (or WebSocket) being handled.

    Returns:
        The client that ``lifespan`` opened.

    Raises:
        RuntimeError: when the app state holds no ``Revenue`` client: the app was made
            without ``lifespan``, and its own lifespan yields none under ``STATE_KEY``.
    """
    revenue = getattr(connection.state, STATE_KEY, None)
    if not isinstance(revenue, Revenue):
        raise RuntimeError(
            "No Revenue client in the app state: create the app with "
            "lifespan=pulsora_revenue.starlette.lifespan(), or yield "
            f"{{{STATE_KEY!r}: revenue}} from your own lifespan."
        )
    return revenue
