"""The client against httpx.MockTransport: request shape, retries, errors."""

from __future__ import annotations

import json
import pickle
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import anyio
import httpx
import pytest

from pulsora_revenue import (
    APIConnectionError,
    APIError,
    APITimeoutError,
    AuthenticationError,
    BadRequestError,
    ClientClosedError,
    ConfigurationError,
    DuplicateTransactionError,
    FieldError,
    PermissionDeniedError,
    RateLimitError,
    RetryPolicy,
    Revenue,
    RevenueEvent,
    ServerError,
    ValidationError,
    testing,
)
from pulsora_revenue.testing import FakePulsora

from .conftest import ONE_BACKEND
from .data import EVENT, TOKEN

pytestmark = pytest.mark.anyio

URL = "https://pulsora.co/api/ingest"


Step = int | tuple[int, dict[str, str]] | Exception


class Script:
    """A MockTransport handler answering with scripted statuses or exceptions."""

    def __init__(self, *steps: Step, body: dict[str, Any] | None = None) -> None:
        self.steps = list(steps)
        self.requests: list[httpx.Request] = []
        self.body = body

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        step = self.steps.pop(0) if self.steps else 202
        if isinstance(step, Exception):
            raise step
        status, headers = step if isinstance(step, tuple) else (step, {})
        body = self.body or ({"success": True} if status < 300 else {"error": f"status {status}"})
        return httpx.Response(status, json=body, headers=headers)

    @property
    def bodies(self) -> list[Any]:
        return [json.loads(r.content) for r in self.requests]


@pytest.fixture
def client_for() -> Iterator[Callable[..., Revenue]]:
    clients: list[Revenue] = []

    def make(script: Script, **options: Any) -> Revenue:
        options.setdefault("retry", RetryPolicy(uniform=lambda low, high: high))
        client = Revenue(TOKEN, transport=httpx.MockTransport(script), **options)
        clients.append(client)
        return client

    yield make
    for client in clients:
        assert client._closed or client._client is None, "test left a client open"


async def test_request_shape() -> None:
    script = Script()
    async with Revenue(TOKEN, transport=httpx.MockTransport(script)) as revenue:
        fields = {**EVENT, "amount": Decimal("0.1") + Decimal("0.2"), "metadata": {"seats": 5}}
        result = await revenue.track(**fields)
    (request,) = script.requests
    assert request.method == "POST"
    assert str(request.url) == URL
    assert request.headers["X-API-Token"] == TOKEN
    assert request.headers["Content-Type"] == "application/json"
    assert len(request.headers["Idempotency-Key"]) == 64
    assert request.content == (
        b'{"type":"revenue","data":{"visitor_fingerprint":"fp_1","session_id":"sess_1",'
        b'"customer_id":"cus_1","amount":0.3,"transaction_id":"tx_1","currency":"USD",'
        b'"event_type":"purchase","metadata":{"seats":5}}}'
    )
    assert "token" not in json.loads(request.content)
    assert result.status_code == 202
    assert result.attempts == 1
    assert not result.duplicate
    assert not result.queued
    assert result.event.amount == Decimal("0.3")


async def test_big_amount_keeps_every_digit() -> None:
    script = Script()
    async with Revenue(TOKEN, transport=httpx.MockTransport(script)) as revenue:
        await revenue.track({**EVENT, "amount": Decimal(10**20) + Decimal("0.01")})
    assert b'"amount":100000000000000000000.01,' in script.requests[0].content


async def test_accepts_event_mapping_and_keywords_alike() -> None:
    script = Script()
    event = RevenueEvent(**EVENT)
    async with Revenue(TOKEN, transport=httpx.MockTransport(script)) as revenue:
        await revenue.track(event)
        await revenue.track(EVENT)
        await revenue.track(**EVENT)
    first, *rest = (r.content for r in script.requests)
    assert rest == [first, first]


async def test_idempotency_key_depends_on_transaction_and_type() -> None:
    script = Script()
    async with Revenue(TOKEN, transport=httpx.MockTransport(script)) as revenue:
        await revenue.track(EVENT)
        await revenue.track({**EVENT, "amount": "1.00"})
        await revenue.track({**EVENT, "event_type": "renewal"})
        await revenue.track({**EVENT, "transaction_id": "tx_2"})
    keys = [r.headers["Idempotency-Key"] for r in script.requests]
    assert keys[0] == keys[1]
    assert len(set(keys)) == 3


async def test_invalid_event_never_reaches_the_network() -> None:
    script = Script()
    async with Revenue(TOKEN, transport=httpx.MockTransport(script)) as revenue:
        with pytest.raises(ValidationError) as info:
            await revenue.track({**EVENT, "amount": True, "currency": "XYZ", "extra": 1})
    assert set(info.value.paths) == {"<event>", "amount", "currency"}
    assert script.requests == []


async def test_event_and_fields_together_is_a_type_error() -> None:
    async with Revenue(TOKEN, transport=httpx.MockTransport(Script())) as revenue:
        with pytest.raises(TypeError, match="not both"):
            await revenue.track(EVENT, amount=5)


async def test_retries_503_until_accepted(client_for: Callable[..., Revenue]) -> None:
    script = Script(503, 503, 202)
    async with client_for(script) as revenue:
        with testing.fast_retries() as sleeps:
            result = await revenue.track(EVENT)
    assert result.attempts == 3
    assert result.status_code == 202
    assert len(script.requests) == 3
    assert sleeps == [0.5, 1.0]  # ceilings of full jitter: 0.5 * 2**(n-1)
    keys = {r.headers["Idempotency-Key"] for r in script.requests}
    assert len(keys) == 1


@pytest.mark.parametrize(
    ("status", "error"),
    [
        (400, BadRequestError),
        (401, AuthenticationError),
        (403, PermissionDeniedError),
        (404, Exception),
        (501, ServerError),
    ],
)
async def test_final_statuses_are_not_retried(
    client_for: Callable[..., Revenue], status: int, error: type[Exception]
) -> None:
    script = Script(status)
    async with client_for(script) as revenue:
        with pytest.raises(error) as info:
            await revenue.track(EVENT)
    assert len(script.requests) == 1
    assert info.value.status_code == status  # type: ignore[attr-defined]
    assert info.value.attempts == 1  # type: ignore[attr-defined]
    assert info.value.message == f"status {status}"  # type: ignore[attr-defined]


async def test_gives_up_after_max_attempts(client_for: Callable[..., Revenue]) -> None:
    script = Script(500, 502, 503, 504, 202)
    async with client_for(script) as revenue:
        with pytest.raises(ServerError) as info:
            await revenue.track(EVENT)
    assert len(script.requests) == 4
    assert info.value.attempts == 4
    assert info.value.status_code == 504
    assert "after 4 attempts" in str(info.value)


async def test_server_message_from_validation_body(client_for: Callable[..., Revenue]) -> None:
    script = Script(400, body={"message": "amount must be a positive number."})
    async with client_for(script) as revenue:
        with pytest.raises(BadRequestError, match="amount must be a positive number"):
            await revenue.track(EVENT)


@pytest.mark.parametrize(
    ("status", "error", "advice"),
    [
        (408, APIError, "gave up waiting for the request: track it again later"),
        (413, BadRequestError, "too large; trim its metadata"),
        (422, BadRequestError, "invalid; fix it, retrying won't help"),
    ],
)
async def test_final_statuses_come_with_their_own_advice(
    client_for: Callable[..., Revenue], status: int, error: type[APIError], advice: str
) -> None:
    async with client_for(Script(status), retry=RetryPolicy(max_attempts=1)) as revenue:
        with pytest.raises(error, match=advice) as info:
            await revenue.track(EVENT)
    assert "check the endpoint URL" not in str(info.value)


async def test_non_json_error_body_is_quoted(client_for: Callable[..., Revenue]) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(502, text="<html>Bad gateway</html>" + "x" * 500)

    async with Revenue(
        TOKEN, transport=httpx.MockTransport(handler), retry=RetryPolicy(max_attempts=1)
    ) as revenue:
        with pytest.raises(ServerError) as info:
            await revenue.track(EVENT)
    assert info.value.message.startswith("<html>Bad gateway</html>")
    assert len(info.value.message) < 250


async def test_retry_after_is_a_minimum_wait(client_for: Callable[..., Revenue]) -> None:
    script = Script((429, {"Retry-After": "2"}), 202)
    async with client_for(script) as revenue:
        with testing.fast_retries() as sleeps:
            result = await revenue.track(EVENT)
    assert result.attempts == 2
    (wait,) = sleeps
    assert 2.0 <= wait <= 2.5


async def test_retry_after_as_http_date(client_for: Callable[..., Revenue]) -> None:
    later = datetime.now(UTC) + timedelta(seconds=5)
    header = later.strftime("%a, %d %b %Y %H:%M:%S GMT")
    script = Script((503, {"Retry-After": header}), 202)
    async with client_for(script) as revenue:
        with testing.fast_retries() as sleeps:
            await revenue.track(EVENT)
    (wait,) = sleeps
    assert 3.0 <= wait <= 6.0


async def test_retry_after_beyond_deadline_raises_at_once(
    client_for: Callable[..., Revenue],
) -> None:
    script = Script((429, {"Retry-After": "3600"}), 202)
    async with client_for(script) as revenue:
        with testing.fast_retries() as sleeps, pytest.raises(RateLimitError) as info:
            await revenue.track(EVENT)
    assert sleeps == []
    assert len(script.requests) == 1
    assert info.value.retry_after == 3600
    assert info.value.status_code == 429


async def test_deadline_bounds_the_whole_call(client_for: Callable[..., Revenue]) -> None:
    script = Script(503, 503, 503, 503, 503)
    policy = RetryPolicy(
        max_attempts=10, initial_delay=4, max_delay=8, deadline=10, uniform=lambda a, b: b
    )
    async with client_for(script, retry=policy) as revenue:
        with testing.fast_retries() as sleeps, pytest.raises(ServerError):
            await revenue.track(EVENT)
    assert sleeps == [4.0]  # the next wait (8 s) would end past the 10 s deadline
    assert len(script.requests) == 2


async def test_lost_answer_then_409_counts_as_delivered(
    client_for: Callable[..., Revenue],
) -> None:
    script = Script(httpx.ReadTimeout("lost"), 409)
    async with client_for(script) as revenue:
        result = await revenue.track(EVENT)
    assert result.duplicate
    assert result.attempts == 2
    assert result.status_code == 409


async def test_a_final_5xx_says_the_event_may_be_recorded(
    client_for: Callable[..., Revenue],
) -> None:
    # A 5xx may come from a gateway after Pulsora recorded the event.
    async with client_for(Script(503), retry=RetryPolicy(max_attempts=1)) as revenue:
        with pytest.raises(ServerError) as info:
            await revenue.track(EVENT)
    assert "may or may not have recorded" in str(info.value)
    assert "safe" in str(info.value)


async def test_a_final_refusal_after_a_lost_answer_says_it_may_be_recorded(
    client_for: Callable[..., Revenue],
) -> None:
    script = Script(httpx.ReadTimeout("lost"), 429, 429)
    async with client_for(script, retry=RetryPolicy(max_attempts=3)) as revenue:
        with pytest.raises(RateLimitError) as info:
            await revenue.track(EVENT)
    assert "An earlier attempt may have been recorded" in str(info.value)
    async with client_for(Script(429, 429, 429), retry=RetryPolicy(max_attempts=3)) as revenue:
        with pytest.raises(RateLimitError) as info:
            await revenue.track(EVENT)
    assert "earlier attempt" not in str(info.value)


async def test_409_on_first_attempt_is_an_error(client_for: Callable[..., Revenue]) -> None:
    script = Script(409)
    async with client_for(script) as revenue:
        with pytest.raises(DuplicateTransactionError) as info:
            await revenue.track(EVENT)
    assert info.value.attempts == 1


async def test_409_after_a_refused_connection_is_an_error(
    client_for: Callable[..., Revenue],
) -> None:
    # A refused connection never reached the server, so the 409 is not ours.
    script = Script(httpx.ConnectError("refused"), 409)
    async with client_for(script) as revenue:
        with pytest.raises(DuplicateTransactionError):
            await revenue.track(EVENT)


@pytest.mark.parametrize(
    ("failure", "error"),
    [
        (httpx.ConnectError("refused"), APIConnectionError),
        (httpx.ReadError("reset"), APIConnectionError),
        (httpx.RemoteProtocolError("closed"), APIConnectionError),
        (httpx.ReadTimeout("slow"), APITimeoutError),
        (httpx.ConnectTimeout("slow"), APITimeoutError),
    ],
)
async def test_network_failures_are_retried_then_raised(
    client_for: Callable[..., Revenue], failure: Exception, error: type[Exception]
) -> None:
    script = Script(failure, failure, failure, failure)
    async with client_for(script) as revenue:
        with pytest.raises(error) as info:
            await revenue.track(EVENT)
    assert len(script.requests) == 4
    assert info.value.attempts == 4  # type: ignore[attr-defined]
    assert type(failure).__name__ in str(info.value)
    assert info.value.__cause__ is None  # the httpx failure holds the token-bearing request


async def test_unsupported_protocol_is_not_retried(client_for: Callable[..., Revenue]) -> None:
    script = Script(httpx.UnsupportedProtocol("nope"))
    async with client_for(script) as revenue:
        with pytest.raises(APIConnectionError):
            await revenue.track(EVENT)
    assert len(script.requests) == 1


async def test_cancellation_during_backoff_sends_nothing_more() -> None:
    testing.set_testing(False)  # a real sleep, so that there is something to cancel
    script = Script(503, 503, 503)
    policy = RetryPolicy(initial_delay=30, max_delay=30, deadline=120)
    async with Revenue(TOKEN, transport=httpx.MockTransport(script), retry=policy) as revenue:
        with anyio.move_on_after(0.2) as scope:
            await revenue.track(EVENT)
        await anyio.sleep(0.1)
    assert scope.cancelled_caught
    assert len(script.requests) == 1


async def test_an_already_cancelled_caller_sends_nothing() -> None:
    fake = FakePulsora()  # answers at once: nothing on the way would notice a cancellation
    async with Revenue(TOKEN, transport=fake.transport) as revenue:
        with anyio.CancelScope() as scope:
            scope.cancel()
            await revenue.track(EVENT)
    assert scope.cancelled_caught
    assert fake.requests == 0


async def test_passed_in_client_is_used_but_not_closed() -> None:
    script = Script()
    async with httpx.AsyncClient(transport=httpx.MockTransport(script)) as http:
        async with Revenue(TOKEN, http_client=http) as revenue:
            await revenue.track(EVENT)
        assert not http.is_closed
        await http.get("https://example.invalid/")  # still usable
    assert len(script.requests) == 2


async def test_aclose_is_idempotent_and_final() -> None:
    revenue = Revenue(TOKEN, transport=httpx.MockTransport(Script()))
    await revenue.track(EVENT)
    await revenue.aclose()
    await revenue.aclose()
    with pytest.raises(ClientClosedError):
        await revenue.track(EVENT)
    assert "closed" in repr(revenue)


def test_construction_needs_no_event_loop() -> None:
    revenue = Revenue(TOKEN)
    assert revenue._client is None  # nothing opened, so nothing to close


@pytest.mark.parametrize("token", [None, "", "   ", "pub_abcdef0123456789", "abc123"])
def test_refuses_missing_public_or_unknown_tokens(token: str | None) -> None:
    with pytest.raises(ConfigurationError, match="secret"):
        Revenue(token)


def test_token_and_endpoint_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PULSORA_SECRET_TOKEN", TOKEN)
    monkeypatch.setenv("PULSORA_ENDPOINT", "http://127.0.0.1:8787/api/ingest")
    revenue = Revenue()
    assert "127.0.0.1:8787" in repr(revenue)
    assert revenue._token.reveal() == TOKEN


@pytest.mark.parametrize(
    "endpoint",
    [
        "http://127.0.0.1:8787/api/ingest",
        "http://127.3.4.5/api/ingest",
        "http://localhost:8000/api/ingest",
        "http://[::1]:8000/api/ingest",
        "https://analytics.example.com/api/ingest",
    ],
)
@pytest.mark.parametrize("anyio_backend", ONE_BACKEND)  # a URL, the same on every loop
async def test_accepted_endpoints(endpoint: str) -> None:
    """An accepted endpoint is where the events go."""
    script = Script()
    async with Revenue(TOKEN, endpoint=endpoint, transport=httpx.MockTransport(script)) as revenue:
        assert revenue.endpoint == endpoint
        await revenue.track(EVENT)
    assert [str(request.url) for request in script.requests] == [endpoint]


@pytest.mark.parametrize(
    "endpoint",
    [
        "http://pulsora.co/api/ingest",
        "http://10.0.0.1/api/ingest",
        "ftp://pulsora.co/",
        "not a url",
        "https://",
    ],
)
def test_refused_endpoints(endpoint: str) -> None:
    with pytest.raises(ConfigurationError):
        Revenue(TOKEN, endpoint=endpoint)


def test_refuses_transport_and_client_together() -> None:
    with pytest.raises(ConfigurationError, match="not both"):
        Revenue(TOKEN, transport=httpx.MockTransport(Script()), http_client=httpx.AsyncClient())


@pytest.mark.parametrize("timeout", [0, -1, timedelta(0)])
def test_refuses_non_positive_timeout(timeout: float | timedelta) -> None:
    with pytest.raises(ConfigurationError, match="timeout"):
        Revenue(TOKEN, timeout=timeout)


async def test_unclosed_client_warns() -> None:
    revenue = Revenue(TOKEN, transport=httpx.MockTransport(Script()))
    await revenue.track(EVENT)
    with pytest.warns(ResourceWarning, match="never closed"):
        revenue.__del__()
    await revenue.aclose()


async def test_redirects_are_not_followed_with_the_token() -> None:
    script = Script((307, {"Location": "https://elsewhere.example/api/ingest"}))
    transport = httpx.MockTransport(script)
    async with (
        httpx.AsyncClient(transport=transport, follow_redirects=True) as http,
        Revenue(TOKEN, http_client=http) as revenue,
    ):
        with pytest.raises(APIError, match=r"redirect to https://elsewhere\.example") as info:
            await revenue.track(EVENT)
    assert info.value.status_code == 307
    assert [str(r.url) for r in script.requests] == [URL]


#: A back-off far longer than the tests' guards: aclose() must not wait it out.
LONG_BACKOFF = RetryPolicy(initial_delay=60.0, max_delay=60.0, deadline=300.0)


async def track_until_closed(revenue: Revenue) -> None:
    with pytest.raises(ClientClosedError):
        await revenue.track(EVENT)


async def test_aclose_cuts_a_backoff_short_with_client_closed() -> None:
    testing.set_testing(False)  # a real back-off, which aclose must not wait out
    script = Script(503, 503)
    answered = anyio.Event()

    def answer(request: httpx.Request) -> httpx.Response:
        answered.set()
        return script(request)

    revenue = Revenue(TOKEN, transport=httpx.MockTransport(answer), retry=LONG_BACKOFF)
    with anyio.fail_after(20):  # a guard: the back-off alone is 60 s
        async with anyio.create_task_group() as group:
            group.start_soon(track_until_closed, revenue)
            await answered.wait()
            await anyio.sleep(0.05)  # now waiting out the back-off
            await revenue.aclose()
    assert len(script.requests) == 1


async def test_a_backoff_that_begins_after_aclose_is_not_waited_out() -> None:
    testing.set_testing(False)
    in_flight, release = anyio.Event(), anyio.Event()

    async def answer(request: httpx.Request) -> httpx.Response:
        in_flight.set()
        await release.wait()  # aclose() runs meanwhile: the back-off begins after it
        return httpx.Response(503, json={"error": "busy"})

    # The user's own client, which aclose() leaves open: the attempt gets its answer.
    async with httpx.AsyncClient(transport=httpx.MockTransport(answer)) as http:
        revenue = Revenue(TOKEN, http_client=http, retry=LONG_BACKOFF)
        with anyio.fail_after(20):  # a guard: the back-off alone is 60 s
            async with anyio.create_task_group() as group:
                group.start_soon(track_until_closed, revenue)
                await in_flight.wait()
                await revenue.aclose()
                release.set()


async def test_undecodable_answer_counts_as_lost(client_for: Callable[..., Revenue]) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if len(answers) == 0:
            answers.append(request)
            return httpx.Response(202, headers={"Content-Encoding": "gzip"}, content=b"junk")
        return httpx.Response(409, json={"error": "Duplicate transaction"})

    answers: list[httpx.Request] = []
    async with Revenue(TOKEN, transport=httpx.MockTransport(handler)) as revenue:
        result = await revenue.track(EVENT)
    assert result.duplicate
    assert result.attempts == 2


async def test_absurdly_nested_error_body(client_for: Callable[..., Revenue]) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(400, content=b"[" * 100_000)

    async with Revenue(TOKEN, transport=httpx.MockTransport(handler)) as revenue:
        with pytest.raises(BadRequestError) as info:
            await revenue.track(EVENT)
    assert len(info.value.message) < 250


async def test_concurrent_calls_in_test_mode_keep_their_own_deadlines() -> None:
    script = Script(*([503] * 12))
    policy = RetryPolicy(max_attempts=4, initial_delay=4, max_delay=4, deadline=20)
    async with Revenue(TOKEN, transport=httpx.MockTransport(script), retry=policy) as revenue:

        async def one(n: int) -> None:
            with pytest.raises(ServerError) as info:
                await revenue.track({**EVENT, "transaction_id": f"tx_{n}"})
            assert info.value.attempts == 4

        async with anyio.create_task_group() as group:
            for n in range(3):
                group.start_soon(one, n)
    assert len(script.requests) == 12


def test_errors_survive_pickling() -> None:
    error = RateLimitError(
        "r", status_code=429, message="Rate limited", attempts=2, retry_after=3.0
    )
    again = pickle.loads(pickle.dumps(error))
    assert (str(again), again.retry_after, again.attempts) == (str(error), 3.0, 2)
    invalid = pickle.loads(pickle.dumps(ValidationError([FieldError("amount", "bad")])))
    assert invalid.errors == (FieldError("amount", "bad"),)


@pytest.mark.parametrize(
    "endpoint", ["https://user:pw@pulsora.co/api/ingest", "http://app.localhost/api/ingest"]
)
def test_refused_endpoints_with_credentials_or_pseudo_loopback(endpoint: str) -> None:
    with pytest.raises(ConfigurationError) as info:
        Revenue(TOKEN, endpoint=endpoint)
    assert ":pw@" not in str(info.value)


def test_bare_prefix_is_not_a_token() -> None:
    with pytest.raises(ConfigurationError):
        Revenue("sec_")


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_a_client_serves_one_event_loop_after_another(backend: str) -> None:
    """A module-level client, and a new loop for each call (a Celery task's asyncio.run)."""
    fake = FakePulsora()
    revenue = Revenue(TOKEN, transport=fake.transport)  # at import time, say: no loop yet
    anyio.run(revenue.track, EVENT, backend=backend)
    anyio.run(revenue.track, {**EVENT, "transaction_id": "tx_2"}, backend=backend)
    anyio.run(revenue.aclose, backend=backend)
    assert [event.transaction_id for event in fake.events] == [EVENT["transaction_id"], "tx_2"]
