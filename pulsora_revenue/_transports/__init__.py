"""Transports: one POST of an event body, over httpx or aiohttp, reduced to a ``Reply``.

httpx is the default and what users configure (``http_client=``, ``transport=``).
aiohttp, installed with the ``speed`` extra, is several times cheaper per
request; it is used on asyncio when the user configured nothing else, and
imported only then (the httpx sender too: ``import pulsora_revenue`` stays cheap).
``resolve_backend`` settles what was asked for once, at
construction; ``open_sender`` makes the sender, with the event loop running.
"""

from __future__ import annotations

import functools
import logging
import os
from typing import Literal

import httpx

from .._config import SecretHeaders, Token
from .._errors import ConfigurationError
from ._reply import Reply, Sender

__all__ = [
    "BACKEND_ENV",
    "Backend",
    "Reply",
    "Sender",
    "open_sender",
    "request_headers",
    "resolve_backend",
]

logger = logging.getLogger("pulsora_revenue")

#: Which HTTP library sends: ``"auto"`` (aiohttp on asyncio when the ``speed``
#: extra is installed, else httpx), ``"httpx"`` or ``"aiohttp"``.
Backend = Literal["auto", "httpx", "aiohttp"]
"""Which HTTP library sends: ``"auto"``, ``"httpx"`` or ``"aiohttp"``.

``"auto"`` (the default) sends with aiohttp on asyncio when the ``speed`` extra is
installed, and with httpx otherwise (on trio, or with an httpx ``http_client`` or
``transport``). ``PULSORA_HTTP_BACKEND`` sets it when ``Revenue(backend=...)`` does not.
"""
BACKEND_ENV = "PULSORA_HTTP_BACKEND"
_BACKENDS = ("auto", "httpx", "aiohttp")


@functools.cache
def have_aiohttp() -> bool:
    """Whether the ``speed`` extra's aiohttp is installed (found, not imported)."""
    import importlib.util

    return importlib.util.find_spec("aiohttp") is not None


def resolve_backend(backend: Backend | None, *, configured: bool) -> Backend:
    """The backend asked for, by *backend* or the environment, read once, at construction.

    *configured* means the user passed an httpx client or transport, which
    settles it. What could never be honoured is refused here.
    """
    wanted = backend or os.environ.get(BACKEND_ENV, "auto")
    if wanted not in _BACKENDS:
        raise ConfigurationError(f"backend must be one of {_BACKENDS}, not {wanted!r}")
    if configured:
        if backend == "aiohttp":
            raise ConfigurationError(
                "backend='aiohttp' cannot use an httpx http_client or transport"
            )
        return "httpx"
    if wanted == "aiohttp" and not have_aiohttp():
        raise ConfigurationError(
            "backend='aiohttp' needs the speed extra: pip install 'pulsora-revenue[speed]'"
        )
    return "aiohttp" if wanted == "aiohttp" else "httpx" if wanted == "httpx" else "auto"


def on_this_loop(backend: Backend) -> Literal["httpx", "aiohttp"]:
    """The library that sends for *backend* on the running loop: aiohttp runs on asyncio only."""
    if backend == "httpx":
        return "httpx"
    import sniffio

    on_asyncio = sniffio.current_async_library() == "asyncio"
    if backend == "aiohttp" and not on_asyncio:
        raise ConfigurationError("backend='aiohttp' needs asyncio (aiohttp does not run on trio)")
    return "aiohttp" if on_asyncio and have_aiohttp() else "httpx"


def open_sender(
    backend: Backend,
    url: httpx.URL,
    token: Token,
    timeout: float,
    *,
    pool: int,
    client: httpx.AsyncClient | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
) -> Sender:
    """A sender to *url* for *backend*, with *pool* connections at most (with the loop running).

    An httpx *client* of the user's is used but never closed; a *transport*
    of the user's goes into a client of ours.
    """
    headers = SecretHeaders(request_headers(token.reveal()), token)
    library = on_this_loop(backend)
    logger.debug("sending with %s (%d connections at most)", library, pool)
    if library == "aiohttp":
        from ._aiohttp import AiohttpSender

        return AiohttpSender(str(url), headers, timeout, limit=pool)
    from ._httpx import HttpxSender, make_httpx_client

    if client is not None:
        return HttpxSender(client, url, headers, timeout, owned=False)
    # httpx's pool slows down as it grows (benchmarks/README.md): a run with
    # more workers queues them in the sender, for one of MAX_CONNECTIONS.
    connections = min(pool, HttpxSender.MAX_CONNECTIONS)
    limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
    ours = make_httpx_client(url, transport=transport, limits=limits)
    # A transport of the user's has no pool of ours to wait for: nothing to queue.
    queue = connections if transport is None else None
    return HttpxSender(ours, url, headers, timeout, owned=True, connections=queue)


def request_headers(token: str) -> dict[str, str]:
    """The headers of every request (the ``Idempotency-Key`` is added per event)."""
    return {
        "X-API-Token": token,
        "Content-Type": "application/json",
        "Accept": "application/json",
        "User-Agent": f"pulsora-revenue-python/{_version()}",
    }


@functools.cache
def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version  # costly: only when sending

    try:
        return version("pulsora-revenue")
    except PackageNotFoundError:  # running from a source tree that is not installed
        return "0+unknown"
