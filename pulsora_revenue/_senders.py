"""Senders: one POST of an event body, over httpx or aiohttp, reduced to a ``Reply``.

httpx is the default and what users configure (``http_client=``, ``transport=``).
aiohttp, installed with the ``speed`` extra, is several times cheaper per
request; it is used on asyncio when the user configured nothing else. Each
sender translates its library's exceptions at exactly this boundary, reads at
most ``body_limit`` bytes of an answer, and never sends a loopback endpoint's
requests through a proxy.
"""

from __future__ import annotations

import logging
import os
import urllib.parse
import urllib.request
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Literal, Protocol

import anyio
import httpx
import sniffio

from ._config import is_loopback
from ._errors import ConfigurationError

try:
    import aiohttp
except ImportError:  # pragma: no cover - the speed extra is not installed
    HAVE_AIOHTTP = False
else:
    HAVE_AIOHTTP = True
from ._http import Reply, answered, body_limit, lost, no_answer

logger = logging.getLogger("pulsora_revenue")

#: A whole attempt may take this many times its timeout: a little more, so that the
#: HTTP library's own connect and pool timeouts (at the timeout) fire first and
#: tell an attempt that never went out from one whose answer was lost.
ATTEMPT_SLACK = 1.1

#: The most chunks of a closed response's body that ``run_out`` goes through
#: (those buffered before it was closed): what it reads is thrown away.
RUN_OUT = 64

Backend = Literal["auto", "httpx", "aiohttp"]
BACKEND_ENV = "PULSORA_HTTP_BACKEND"
_BACKENDS = ("auto", "httpx", "aiohttp")


class Sender(Protocol):
    """Sends one request body; never raises for HTTP trouble, only reports it."""

    async def post(
        self, body: bytes, key: str, *, budget: float, scrub: Callable[[str], str]
    ) -> Reply:
        """POST *body* with ``Idempotency-Key: key``, within *budget* seconds."""

    async def aclose(self) -> None:
        """Release the connections, if this sender owns them."""


def direct(url: str) -> bool:
    """Whether *url* is reached without a proxy, whatever the environment says.

    Loopback hosts are, and plain http (allowed for them only): a proxy would
    carry the token across a network, in clear over http.
    """
    parts = urllib.parse.urlsplit(url)
    return parts.scheme != "https" or is_loopback(parts.hostname or "")


def env_proxy(url: str) -> str | None:
    """The proxy the environment (``HTTPS_PROXY``, ``ALL_PROXY``, ``NO_PROXY``...) sets for *url*.

    Read as httpx reads it: ``ALL_PROXY`` when the scheme has none of its own,
    and ``http://`` before a proxy written without a scheme. None for a
    ``direct`` URL.
    """
    if direct(url):
        return None
    parts = urllib.parse.urlsplit(url)
    proxies = urllib.request.getproxies()
    proxy = proxies.get(parts.scheme) or proxies.get("all")
    if not proxy or urllib.request.proxy_bypass(parts.hostname or ""):
        return None
    return proxy if "://" in proxy else f"http://{proxy}"


def make_httpx_client(
    url: httpx.URL | str,
    *,
    transport: httpx.AsyncBaseTransport | None,
    limits: httpx.Limits,
) -> httpx.AsyncClient:
    """Create our own httpx client for the endpoint *url*: never through a proxy if ``direct``.

    Otherwise httpx takes its proxies from the environment, as usual. The
    endpoint's origin is mounted on the client's own transport (``None``), which
    httpx's routing prefers to any proxy the environment sets for a whole scheme.
    """
    url = httpx.URL(url)
    mounts = {f"{url.scheme}://{url.netloc.decode('ascii')}": None} if direct(str(url)) else None
    return httpx.AsyncClient(transport=transport, limits=limits, mounts=mounts)


async def read_httpx(response: httpx.Response) -> tuple[bytes, bool]:
    """Read a streamed *response*'s body up to ``body_limit``; drop the connection if it goes on."""
    limit = body_limit(response.status_code)
    parts: list[bytes] = []
    size = 0
    chunks = response.aiter_bytes()
    async for chunk in chunks:
        parts.append(chunk)
        size += len(chunk)
        if size > limit:
            break
    else:
        return b"".join(parts), False
    await response.aclose()  # not released to the pool: the rest of the body is still coming
    await run_out(chunks)
    return b"".join(parts)[:limit], True


async def run_out(chunks: AsyncIterator[bytes]) -> None:
    """Run httpx's chain of async generators over a closed response's body to its end.

    That is what they had buffered, then the error of a closed connection.
    Left half-run, each would be finalised by the garbage collector, which
    trio warns about: ``aclosing`` would close only the outermost.
    """
    try:
        for _ in range(RUN_OUT):
            await anext(chunks)
    except (StopAsyncIteration, httpx.HTTPError, httpx.StreamError):
        pass


async def read_aiohttp(response: aiohttp.ClientResponse) -> tuple[bytes, bool]:
    """Read *response*'s body up to ``body_limit``, dropping the connection if it goes on."""
    limit = body_limit(response.status)
    content = response.content
    if content.is_eof():  # all in already, as nearly always with the head: no waiting
        body = content.read_nowait(limit + 1)
    else:
        body = b""
        while len(body) <= limit and (chunk := await content.read(limit + 1 - len(body))):
            body += chunk
    if len(body) <= limit:
        return body, False
    response.close()  # not released to the pool: the rest of the body is still coming
    return body[:limit], True


def deadline_passed() -> Reply:
    return lost(TimeoutError(), "the call's deadline ran out", retryable=False, timed_out=True)


def timed_out(failure: BaseException, what: str, timeout: float, *, sent: bool = True) -> Reply:
    """The reply when one attempt ran out of its *timeout*: worth another attempt."""
    return lost(failure, f"{what} within {timeout:g} s", sent=sent, timed_out=True)


def attempt_limit(budget: float, timeout: float) -> float:
    """How long one attempt may take, with *budget* seconds left of the call's deadline."""
    return min(budget, timeout * ATTEMPT_SLACK)


def out_of_time(failure: TimeoutError, budget: float, timeout: float) -> Reply:
    """The reply when an attempt ran out of its ``attempt_limit``."""
    if attempt_limit(budget, timeout) == budget:  # the deadline was the nearer bound
        return deadline_passed()
    return timed_out(failure, "no answer", timeout)


class HttpxSender:
    """Over an ``httpx.AsyncClient``; redirects are never followed (they would carry the token).

    With *connections*, at most that many requests are in flight at once (the
    size of the client's pool): the others queue here, first come first served,
    before their attempt's timeout starts. Left to httpx's pool, that wait would
    count against the attempt (a ``PoolTimeout``, or the attempt's own limit),
    and a thousand requests sharing a few dozen connections time out. The wait
    still counts against the call's deadline (*budget*), and can be cancelled.
    """

    #: The most connections a client of ours is given, whatever the concurrency:
    #: more made track_many slower, and time out (benchmarks/README.md).
    MAX_CONNECTIONS = 32

    def __init__(
        self,
        client: httpx.AsyncClient,
        url: httpx.URL,
        headers: Mapping[str, str],
        timeout: float,
        *,
        owned: bool,
        connections: int | None = None,
    ) -> None:
        self._client, self._url, self._headers = client, url, dict(headers)
        self._timeout, self._owned = timeout, owned
        # fast_acquire: no extra trip through the event loop when a slot is free;
        # httpx's send yields soon after anyway.
        self._slots = (
            None if connections is None else anyio.Semaphore(connections, fast_acquire=True)
        )

    def __repr__(self) -> str:
        return f"<HttpxSender {str(self._url)!r}>"

    async def post(
        self, body: bytes, key: str, *, budget: float, scrub: Callable[[str], str]
    ) -> Reply:
        slots = self._slots
        if slots is None:
            return await self._send(body, key, budget=budget, scrub=scrub)
        if budget <= 0:
            return deadline_passed()
        started = anyio.current_time()
        with anyio.move_on_after(budget) as waiting:
            await slots.acquire()
        if waiting.cancelled_caught:  # not acquired: the request never went out
            return lost(
                TimeoutError(),
                "the call's deadline ran out waiting for a free connection",
                sent=False,
                retryable=False,
                timed_out=True,
            )
        try:
            left = budget - (anyio.current_time() - started)
            return await self._send(body, key, budget=max(left, 0.0), scrub=scrub)
        finally:
            slots.release()

    async def _send(
        self, body: bytes, key: str, *, budget: float, scrub: Callable[[str], str]
    ) -> Reply:
        request = self._client.build_request(
            "POST",
            self._url,
            content=body,
            headers={**self._headers, "Idempotency-Key": key},
            timeout=self._timeout,
        )
        try:
            with anyio.fail_after(attempt_limit(budget, self._timeout)):
                response = await self._client.send(request, follow_redirects=False, stream=True)
                try:
                    content, cut = await read_httpx(response)
                finally:
                    await response.aclose()
        except TimeoutError as exc:
            return out_of_time(exc, budget, self._timeout)
        except httpx.ConnectTimeout as exc:
            return timed_out(exc, "could not connect", self._timeout, sent=False)
        except httpx.PoolTimeout as exc:
            return timed_out(exc, "no free connection", self._timeout, sent=False)
        except httpx.TimeoutException as exc:
            return timed_out(exc, "no answer", self._timeout)
        except httpx.ConnectError as exc:
            return no_answer(exc, scrub, sent=False)
        except (httpx.NetworkError, httpx.RemoteProtocolError, httpx.DecodingError) as exc:
            return no_answer(exc, scrub)  # the answer was lost on the way
        except httpx.HTTPError as exc:
            return no_answer(exc, scrub, sent=False, retryable=False)
        return answered(response.status_code, response.headers, content, scrub, cut=cut)

    async def aclose(self) -> None:
        if self._owned:
            await self._client.aclose()


class AiohttpSender:
    """Over an ``aiohttp.ClientSession`` of its own, created on first use (asyncio only)."""

    def __init__(self, url: str, headers: Mapping[str, str], timeout: float, *, limit: int) -> None:
        self._url, self._headers, self._timeout, self._limit = url, dict(headers), timeout, limit
        self._session: aiohttp.ClientSession | None = None
        # One total per attempt, not aiohttp's sock_read: that one re-arms a timer
        # on every chunk received, which costs a tenth of the request.
        self._each = attempt_limit(float("inf"), timeout)
        self._attempt_timeout = self._client_timeout(self._each)
        # Proxies from the environment, as httpx does; looked up once, not per request
        # (aiohttp's trust_env does it in a worker thread for every request).
        self._proxy = env_proxy(url)

    def __repr__(self) -> str:
        return f"<AiohttpSender {self._url!r}>"

    async def post(
        self, body: bytes, key: str, *, budget: float, scrub: Callable[[str], str]
    ) -> Reply:
        if budget <= 0:
            return deadline_passed()
        if self._session is None:
            connector = aiohttp.TCPConnector(limit=self._limit)
            self._session = aiohttp.ClientSession(connector=connector, headers=self._headers)
        timeout = self._attempt_timeout
        if budget < self._each:  # the deadline comes first
            timeout = self._client_timeout(budget)
        try:
            async with self._session.post(
                self._url,
                data=body,
                headers={"Idempotency-Key": key},
                timeout=timeout,
                allow_redirects=False,
                proxy=self._proxy,
            ) as response:
                content, cut = await read_aiohttp(response)
                return answered(response.status, response.headers, content, scrub, cut=cut)
        except aiohttp.ConnectionTimeoutError as exc:
            return timed_out(exc, "could not connect", self._timeout, sent=False)
        except aiohttp.ServerTimeoutError as exc:  # a read timed out: it may have landed
            return timed_out(exc, "no answer", self._timeout)
        except aiohttp.ClientConnectorError as exc:
            return no_answer(exc, scrub, sent=False)
        except (
            aiohttp.ClientConnectionError,
            aiohttp.ClientPayloadError,
            aiohttp.ClientResponseError,  # a malformed answer, after the request went out
        ) as exc:
            return no_answer(exc, scrub)  # the answer was lost on the way
        except TimeoutError as exc:
            return out_of_time(exc, budget, self._timeout)
        except aiohttp.ClientError as exc:
            return no_answer(exc, scrub, sent=False, retryable=False)

    def _client_timeout(self, total: float) -> aiohttp.ClientTimeout:
        # No rounding up to whole seconds (aiohttp's ceil_threshold): the connect
        # timeout must fire before the attempt's total.
        connect = self._timeout
        return aiohttp.ClientTimeout(
            total=total, connect=connect, sock_connect=connect, ceil_threshold=float("inf")
        )

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()


def choose_backend(backend: Backend | None, *, configured: bool) -> Literal["httpx", "aiohttp"]:
    """Pick the HTTP library: aiohttp on asyncio when available, else httpx.

    *configured* means the user passed an httpx client or transport, which
    settles it. Call this with the event loop running.
    """
    wanted = backend or os.environ.get(BACKEND_ENV, "auto")
    if wanted not in _BACKENDS:
        raise ConfigurationError(f"backend must be one of {_BACKENDS}, not {wanted!r}")
    if configured or wanted == "httpx":
        return "httpx"
    on_asyncio = sniffio.current_async_library() == "asyncio"
    if wanted == "aiohttp" and not (HAVE_AIOHTTP and on_asyncio):
        raise ConfigurationError(
            "backend='aiohttp' needs the speed extra (pip install 'pulsora-revenue[speed]') "
            "and asyncio (aiohttp does not run on trio)"
        )
    return "aiohttp" if HAVE_AIOHTTP and on_asyncio else "httpx"


def check_backend(backend: Backend | None, *, configured: bool) -> None:
    """Refuse, at construction, what ``choose_backend`` could never honour."""
    wanted = backend or os.environ.get(BACKEND_ENV, "auto")
    if wanted not in _BACKENDS:
        raise ConfigurationError(f"backend must be one of {_BACKENDS}, not {wanted!r}")
    if backend == "aiohttp" and configured:
        raise ConfigurationError("backend='aiohttp' cannot use an httpx http_client or transport")
    if wanted == "aiohttp" and not HAVE_AIOHTTP:
        raise ConfigurationError(
            "backend='aiohttp' needs the speed extra: pip install 'pulsora-revenue[speed]'"
        )
