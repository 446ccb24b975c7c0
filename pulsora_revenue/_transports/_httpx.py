"""The httpx sender: the default, and what users configure (``http_client=``, ``transport=``).

It translates httpx's exceptions at exactly this boundary, reads at most
``body_limit`` bytes of an answer, and never sends a loopback endpoint's
requests through a proxy.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping

import anyio
import httpx

from ._proxy import direct
from ._reply import (
    DEADLINE_PASSED,
    Reply,
    answered,
    attempt_limit,
    body_limit,
    broken,
    no_answer,
    out_of_time,
)

#: The most chunks of a closed response's body that ``run_out`` goes through
#: (those buffered before it was closed): what it reads is thrown away.
RUN_OUT = 64


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
        self._within = f"within {timeout:g} s"  # how a timed-out attempt is described
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
            return DEADLINE_PASSED
        started = anyio.current_time()
        with anyio.move_on_after(budget) as waiting:
            await slots.acquire()
        if waiting.cancelled_caught:  # not acquired: the request never went out
            return no_answer(
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
            return no_answer(exc, f"could not connect {self._within}", sent=False, timed_out=True)
        except httpx.PoolTimeout as exc:
            return no_answer(exc, f"no free connection {self._within}", sent=False, timed_out=True)
        except httpx.TimeoutException as exc:
            return no_answer(exc, f"no answer {self._within}", timed_out=True)
        except httpx.ConnectError as exc:
            return broken(exc, scrub, sent=False)
        except (httpx.NetworkError, httpx.RemoteProtocolError, httpx.DecodingError) as exc:
            return broken(exc, scrub)  # the answer was lost on the way
        except httpx.HTTPError as exc:
            return broken(exc, scrub, sent=False, retryable=False)
        return answered(response.status_code, response.headers, content, scrub, cut=cut)

    async def aclose(self) -> None:
        if self._owned:
            await self._client.aclose()
