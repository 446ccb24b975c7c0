"""The aiohttp sender (the ``speed`` extra): several times cheaper per request, asyncio only.

Imported only when a client chooses it. It translates aiohttp's exceptions at
exactly this boundary, reads at most ``body_limit`` bytes of an answer, and
never sends a loopback endpoint's requests through a proxy.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import aiohttp

from ._proxy import env_proxy
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


class AiohttpSender:
    """Over an ``aiohttp.ClientSession`` of its own, created on first use (asyncio only)."""

    def __init__(self, url: str, headers: Mapping[str, str], timeout: float, *, limit: int) -> None:
        self._url, self._headers, self._timeout, self._limit = url, dict(headers), timeout, limit
        self._within = f"within {timeout:g} s"  # how a timed-out attempt is described
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
            return DEADLINE_PASSED
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
            return no_answer(exc, f"could not connect {self._within}", sent=False, timed_out=True)
        except aiohttp.ServerTimeoutError as exc:  # a read timed out: it may have landed
            return no_answer(exc, f"no answer {self._within}", timed_out=True)
        except aiohttp.ClientConnectorError as exc:
            return broken(exc, scrub, sent=False)
        except (
            aiohttp.ClientConnectionError,
            aiohttp.ClientPayloadError,
            aiohttp.ClientResponseError,  # a malformed answer, after the request went out
        ) as exc:
            return broken(exc, scrub)  # the answer was lost on the way
        except TimeoutError as exc:
            return out_of_time(exc, budget, self._timeout)
        except aiohttp.ClientError as exc:
            return broken(exc, scrub, sent=False, retryable=False)

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
