"""OpenTelemetry: the documented spans and metrics, read back from the SDK's in-memory exporters."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import attrs
import httpx
import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import (
    HistogramDataPoint,
    InMemoryMetricReader,
    NumberDataPoint,
)
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode, Tracer

from pulsora_revenue import (
    Attempt,
    Backend,
    BadRequestError,
    Delivery,
    RetryPolicy,
    Revenue,
    RevenueEvent,
    SyncRevenue,
    testing,
)
from pulsora_revenue.otel import OpenTelemetryHooks, _names
from pulsora_revenue.testing import FakePulsora

from .conftest import DevServer
from .data import EVENT, TOKEN

pytestmark = pytest.mark.anyio

URL = "https://pulsora.co/api/ingest"
QUICK = RetryPolicy(max_attempts=2, initial_delay=0.01, max_delay=0.01)
#: What no span or metric may hold: the token, and the ids of a visitor and a customer.
SECRETS = (TOKEN, EVENT["visitor_fingerprint"], EVENT["session_id"], EVENT["customer_id"])

Point = tuple[dict[str, Any], float]


@attrs.define
class Telemetry:
    """Hooks over an SDK that keeps what it records, and a tracer for the caller's spans."""

    hooks: OpenTelemetryHooks
    exporter: InMemorySpanExporter
    reader: InMemoryMetricReader
    tracer_provider: TracerProvider
    meter_provider: MeterProvider

    @property
    def tracer(self) -> Tracer:
        return self.tracer_provider.get_tracer("app")

    def spans(self, name: str | None = None) -> list[ReadableSpan]:
        finished = self.exporter.get_finished_spans()
        return [s for s in finished if name is None or s.name == name]

    def children(self, parent: ReadableSpan) -> list[ReadableSpan]:
        assert parent.context is not None
        return [s for s in self.spans() if s.parent and s.parent.span_id == parent.context.span_id]

    def metric(self, name: str) -> list[Point]:
        """Each point of metric *name*: its attributes, and its value (a histogram's count)."""
        data = self.reader.get_metrics_data()
        points: list[Point] = []
        for resource in data.resource_metrics if data else ():
            for scope in resource.scope_metrics:
                for metric in scope.metrics:
                    if metric.name != name:
                        continue
                    for point in metric.data.data_points:
                        if isinstance(point, HistogramDataPoint):
                            points.append((dict(point.attributes or {}), point.count))
                        elif isinstance(point, NumberDataPoint):
                            points.append((dict(point.attributes or {}), point.value))
        return points

    def units(self) -> dict[str, str]:
        data = self.reader.get_metrics_data()
        assert data is not None
        return {
            metric.name: metric.unit or ""
            for resource in data.resource_metrics
            for scope in resource.scope_metrics
            for metric in scope.metrics
        }

    def everything(self) -> str:
        """Every span and metric as JSON, as an exporter sends them."""
        data = self.reader.get_metrics_data()
        shown = [span.to_json() for span in self.spans()]
        return "\n".join([*shown, data.to_json() if data else ""])


@pytest.fixture
def telemetry() -> Iterator[Telemetry]:
    exporter = InMemorySpanExporter()
    tracers = TracerProvider()
    tracers.add_span_processor(SimpleSpanProcessor(exporter))
    reader = InMemoryMetricReader()
    meters = MeterProvider(metric_readers=[reader])
    hooks = OpenTelemetryHooks(tracer_provider=tracers, meter_provider=meters)
    yield Telemetry(hooks, exporter, reader, tracers, meters)
    tracers.shutdown()
    meters.shutdown()


def values(points: list[Point], *keys: str) -> dict[tuple[Any, ...], float]:
    """Points keyed by the values of attributes *keys*."""
    return {tuple(attributes.get(key) for key in keys): value for attributes, value in points}


def http(status: int | None, **more: Any) -> dict[str, Any]:
    """The attributes of a request span to ``URL`` that got *status*."""
    shown: dict[str, Any] = {
        "http.request.method": "POST",
        "server.address": "pulsora.co",
        "server.port": 443,
        "url.full": URL,
    }
    if status is not None:
        shown["http.response.status_code"] = status
    if status is not None and status >= 400:
        shown["error.type"] = str(status)
    return shown | more


def resends(span: ReadableSpan) -> int:
    """A request span's place among its event's: the first has no resend count.

    Not its start time: test mode skips the waits between requests, so that the
    requests' times may tie.
    """
    return int(str((span.attributes or {}).get("http.request.resend_count", 0)))


async def test_a_retried_track_is_a_span_under_the_callers_with_a_span_per_request(
    telemetry: Telemetry,
) -> None:
    fake = FakePulsora()
    fake.fail_next(503)
    async with Revenue(TOKEN, transport=fake.transport, hooks=[telemetry.hooks]) as revenue:
        with telemetry.tracer.start_as_current_span("checkout") as checkout:
            await revenue.track(EVENT)
    (wait,) = testing.recorded_sleeps()
    (track,) = telemetry.spans("pulsora.track")
    assert track.parent is not None
    assert track.parent.span_id == checkout.get_span_context().span_id
    assert track.kind is SpanKind.INTERNAL
    assert dict(track.attributes or {}) == {
        "pulsora.event.type": "purchase",
        "pulsora.event.currency": "USD",
        "pulsora.delivery.outcome": "delivered",
        "pulsora.delivery.attempts": 2,
        "pulsora.delivery.status_code": 202,
        "pulsora.delivery.duplicate": False,
        "pulsora.delivery.queued": False,
    }
    assert track.status.status_code is StatusCode.UNSET
    first, second = sorted(telemetry.children(track), key=resends)
    assert (first.name, first.kind, second.name, second.kind) == (
        "POST",
        SpanKind.CLIENT,
        "POST",
        SpanKind.CLIENT,
    )
    assert dict(first.attributes or {}) == http(503, **{"pulsora.retry.wait": wait})
    assert first.status.status_code is StatusCode.ERROR
    assert dict(second.attributes or {}) == http(202, **{"http.request.resend_count": 1})
    assert second.status.status_code is StatusCode.UNSET
    assert track.start_time is not None
    assert first.start_time is not None
    assert second.end_time is not None
    assert track.end_time is not None
    assert track.start_time <= first.start_time < second.end_time <= track.end_time

    assert values(telemetry.metric("pulsora.attempts"), "http.response.status_code") == {
        (503,): 1,
        (202,): 1,
    }
    assert values(telemetry.metric("pulsora.retries"), "http.response.status_code") == {(503,): 1}
    assert values(telemetry.metric("pulsora.events"), "pulsora.delivery.outcome") == {
        ("delivered",): 1
    }
    assert values(telemetry.metric("pulsora.delivery.duration"), "pulsora.event.type") == {
        ("purchase",): 1
    }
    assert sum(count for _, count in telemetry.metric("http.client.request.duration")) == 2
    assert telemetry.units() == {
        "pulsora.attempts": "{attempt}",
        "pulsora.retries": "{attempt}",
        "http.client.request.duration": "s",
        "pulsora.events": "{event}",
        "pulsora.delivery.duration": "s",
    }


async def test_a_429_pause_of_track_many_is_a_retry_with_its_wait(telemetry: Telemetry) -> None:
    fake = FakePulsora()
    fake.fail_next(429, retry_after=3)
    rows = [{**EVENT, "transaction_id": f"bulk_{n}"} for n in range(3)]
    async with Revenue(TOKEN, transport=fake.transport, hooks=[telemetry.hooks]) as revenue:
        with telemetry.tracer.start_as_current_span("backfill") as backfill:
            report = await revenue.track_many(rows, concurrency=1)
    assert report.sent == 3
    tracks = telemetry.spans("pulsora.track")
    assert len(tracks) == 3
    parents = {t.parent.span_id for t in tracks if t.parent}
    assert parents == {backfill.get_span_context().span_id}, "the workers run in its context"
    paused = [s for s in telemetry.spans("POST") if (s.attributes or {}).get("error.type")]
    assert [dict(s.attributes or {}) for s in paused] == [http(429, **{"pulsora.retry.wait": 3.0})]
    assert values(telemetry.metric("pulsora.retries"), "http.response.status_code") == {(429,): 1}
    assert values(telemetry.metric("pulsora.events"), "pulsora.delivery.outcome") == {
        ("delivered",): 3
    }


async def test_a_lost_answer_then_a_409_is_a_duplicate_span(telemetry: Telemetry) -> None:
    fake = FakePulsora()
    fake.drop_next()
    async with Revenue(TOKEN, transport=fake.transport, hooks=[telemetry.hooks]) as revenue:
        await revenue.track(EVENT)
    (track,) = telemetry.spans("pulsora.track")
    shown = track.attributes or {}
    assert (shown["pulsora.delivery.outcome"], shown["pulsora.delivery.duplicate"]) == (
        "duplicate",
        True,
    )
    assert shown["pulsora.delivery.status_code"] == 409
    assert track.status.status_code is StatusCode.UNSET, "recorded once: no error"
    lost, found = sorted(telemetry.children(track), key=resends)
    assert (found.attributes or {})["http.request.resend_count"] == 1
    assert (lost.attributes or {})["error.type"] == "RemoteProtocolError"
    assert "http.response.status_code" not in (lost.attributes or {})
    assert (found.attributes or {})["http.response.status_code"] == 409
    assert values(telemetry.metric("pulsora.events"), "pulsora.delivery.outcome") == {
        ("duplicate",): 1
    }


async def test_a_refusal_is_an_error_span_with_the_exception(telemetry: Telemetry) -> None:
    fake = FakePulsora()
    fake.fail_next(400)
    async with Revenue(TOKEN, transport=fake.transport, hooks=[telemetry.hooks]) as revenue:
        with pytest.raises(BadRequestError):
            await revenue.track(EVENT)
    (track,) = telemetry.spans("pulsora.track")
    shown = track.attributes or {}
    assert (shown["pulsora.delivery.outcome"], shown["error.type"]) == (
        "refused",
        "BadRequestError",
    )
    assert track.status.status_code is StatusCode.ERROR
    (exception,) = [e for e in track.events if e.name == "exception"]
    assert str((exception.attributes or {})["exception.type"]).endswith("BadRequestError")
    assert values(telemetry.metric("pulsora.events"), "pulsora.delivery.outcome") == {
        ("refused",): 1
    }


def refusing() -> httpx.MockTransport:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError(f"refused, with {request.headers['X-API-Token']}", request=request)

    return httpx.MockTransport(refuse)


async def test_queueing_is_a_queued_span_and_deepens_the_outbox(
    telemetry: Telemetry, tmp_path: Path
) -> None:
    outbox = tmp_path / "outbox.sqlite"
    async with Revenue(
        TOKEN, transport=refusing(), retry=QUICK, outbox=outbox, hooks=[telemetry.hooks]
    ) as revenue:
        assert (await revenue.track(EVENT)).queued
    (track,) = telemetry.spans("pulsora.track")
    shown = track.attributes or {}
    assert (shown["pulsora.delivery.outcome"], shown["pulsora.delivery.queued"]) == (
        "queued",
        True,
    )
    assert "pulsora.delivery.status_code" not in shown
    assert track.status.status_code is StatusCode.UNSET, "kept: not lost"
    requests = telemetry.children(track)
    assert [(s.attributes or {})["error.type"] for s in requests] == ["ConnectError"] * 2
    assert values(telemetry.metric("pulsora.outbox.changes"), "pulsora.outbox.change") == {
        ("queued",): 1
    }
    assert [value for _, value in telemetry.metric("pulsora.outbox.depth")] == [1]
    assert telemetry.units()["pulsora.outbox.depth"] == "{event}"


async def test_a_dead_letter_is_an_error_span_of_the_outbox(
    telemetry: Telemetry, tmp_path: Path
) -> None:
    outbox = tmp_path / "outbox.sqlite"
    async with Revenue(TOKEN, transport=refusing(), retry=QUICK, outbox=outbox) as down:
        for n in range(2):
            await down.track({**EVENT, "transaction_id": f"ob_{n}"})
    fake = FakePulsora()
    fake.fail_next(400)
    revenue = Revenue(TOKEN, transport=fake.transport, outbox=outbox, hooks=[telemetry.hooks])
    assert await revenue.flush(timeout=30) == 0
    await revenue.aclose()
    dead, delivered = telemetry.spans("pulsora.outbox.deliver")
    assert dict(dead.attributes or {}) == {
        "pulsora.event.type": "purchase",
        "pulsora.event.currency": "USD",
        "pulsora.outbox.change": "dead_lettered",
        "pulsora.delivery.attempts": 1,
        "pulsora.outbox.depth": 1,
        "error.type": "BadRequestError",
    }
    assert dead.status.status_code is StatusCode.ERROR
    assert [dict(s.attributes or {}) for s in telemetry.children(dead)] == [http(400)]
    assert (delivered.attributes or {})["pulsora.outbox.change"] == "delivered"
    assert delivered.status.status_code is StatusCode.UNSET
    assert [dict(s.attributes or {}) for s in telemetry.children(delivered)] == [http(202)]
    assert values(telemetry.metric("pulsora.outbox.changes"), "pulsora.outbox.change") == {
        ("dead_lettered",): 1,
        ("delivered",): 1,
    }
    assert [value for _, value in telemetry.metric("pulsora.outbox.depth")] == [0]
    assert telemetry.spans("pulsora.track") == [], "no track call was made"


async def test_no_span_or_metric_holds_the_token_or_a_visitors_ids(
    telemetry: Telemetry, tmp_path: Path
) -> None:
    def echo(request: httpx.Request) -> httpx.Response:
        token = request.headers["X-API-Token"]
        return httpx.Response(400, json={"error": f"bad event from {token}"})

    fake = FakePulsora()
    fake.fail_next(503)
    fake.drop_next()
    async with Revenue(TOKEN, transport=fake.transport, hooks=[telemetry.hooks]) as revenue:
        await revenue.track(EVENT)
    async with Revenue(TOKEN, transport=httpx.MockTransport(echo), hooks=[telemetry.hooks]) as r:
        with pytest.raises(BadRequestError):
            await r.track(EVENT)
        await r.track_many([{**EVENT, "transaction_id": "bulk"}])
    outbox = tmp_path / "outbox.sqlite"
    async with Revenue(
        TOKEN, transport=refusing(), retry=QUICK, outbox=outbox, hooks=[telemetry.hooks]
    ) as revenue:
        await revenue.track(EVENT)
    shown = telemetry.everything()
    assert len(telemetry.spans("pulsora.track")) == 4
    assert "bad event from sec_" in shown, "the refusal is shown, its token redacted"
    for secret in SECRETS:
        assert secret not in shown


@pytest.mark.parametrize("backend", ["httpx", "aiohttp"])
async def test_the_same_spans_on_either_http_backend(
    backend: Backend, anyio_backend_name: str, server: DevServer, telemetry: Telemetry
) -> None:
    if backend == "aiohttp" and anyio_backend_name != "asyncio":
        pytest.skip("aiohttp runs on asyncio only")
    server.script({"status": 503})
    hooks = [telemetry.hooks]
    async with Revenue(TOKEN, endpoint=server.endpoint, backend=backend, hooks=hooks) as revenue:
        await revenue.track(EVENT)
    (track,) = telemetry.spans("pulsora.track")
    requests = sorted(telemetry.children(track), key=resends)
    port = httpx.URL(server.endpoint).port
    expected = {
        "http.request.method": "POST",
        "server.address": "127.0.0.1",
        "server.port": port,
        "url.full": server.endpoint,
    }
    assert [dict(s.attributes or {}) for s in requests] == [
        expected
        | {
            "http.response.status_code": 503,
            "error.type": "503",
            "pulsora.retry.wait": testing.recorded_sleeps()[0],
        },
        expected | {"http.response.status_code": 202, "http.request.resend_count": 1},
    ]


def test_sync_revenue_spans_are_children_of_the_calling_threads_span(
    telemetry: Telemetry,
) -> None:
    fake = FakePulsora()
    revenue = SyncRevenue(TOKEN, transport=fake.transport, hooks=[telemetry.hooks])
    with revenue, telemetry.tracer.start_as_current_span("view") as view:
        revenue.track(EVENT)
    (track,) = telemetry.spans("pulsora.track")
    assert track.parent is not None
    assert track.parent.span_id == view.get_span_context().span_id


class Blocking(OpenTelemetryHooks):
    """Holds the client's loop in the first delivery's hook until ``release`` is set."""

    def __init__(self, telemetry: Telemetry) -> None:
        super().__init__(
            tracer_provider=telemetry.tracer_provider, meter_provider=telemetry.meter_provider
        )
        self.holding, self.release = threading.Event(), threading.Event()

    def on_delivery(self, delivery: Delivery) -> None:
        if delivery.event.transaction_id == "hold":
            self.holding.set()
            self.release.wait(10)
        super().on_delivery(delivery)


def test_calls_of_sync_revenue_handed_over_together_keep_their_callers_spans(
    telemetry: Telemetry,
) -> None:
    """Calls from two threads that arrive while the loop is busy start in one wake-up."""
    fake = FakePulsora()
    hooks = Blocking(telemetry)
    revenue = SyncRevenue(TOKEN, transport=fake.transport, hooks=[hooks])
    spans: dict[str, int] = {}

    def call(name: str) -> None:
        with telemetry.tracer.start_as_current_span(name) as span:
            spans[name] = span.get_span_context().span_id
            revenue.track({**EVENT, "transaction_id": name})

    with revenue:
        holder = threading.Thread(target=call, args=("hold",))
        holder.start()
        assert hooks.holding.wait(10)
        callers = [threading.Thread(target=call, args=(name,)) for name in ("a", "b")]
        running = revenue._running
        assert running is not None
        for count, caller in enumerate(callers, 1):
            caller.start()
            while len(running._arrived) < count:  # handed over, not started: the loop waits
                time.sleep(0.001)
        hooks.release.set()
        for thread in (holder, *callers):
            thread.join(10)
    parents = {t.parent.span_id for t in telemetry.spans("pulsora.track") if t.parent}
    assert parents == set(spans.values()), "each call under its own caller's span"


async def test_without_an_sdk_the_hooks_record_nothing_and_break_nothing() -> None:
    fake = FakePulsora()
    fake.fail_next(503)
    async with Revenue(TOKEN, transport=fake.transport, hooks=[OpenTelemetryHooks()]) as revenue:
        result = await revenue.track(EVENT)
    assert result.attempts == 2


@pytest.mark.parametrize(
    ("status", "error", "expected"),
    [
        (None, "ReadTimeout: no answer within 10 s", "ReadTimeout"),
        (None, "the connection broke", "_OTHER"),
        (None, None, "_OTHER"),
        (200, "not Pulsora's acceptance: <html>", "UnexpectedResponseError"),
        (202, None, None),
        (429, None, "429"),
    ],
)
def test_the_error_type_of_an_attempt(
    status: int | None, error: str | None, expected: str | None
) -> None:
    attempt = Attempt(RevenueEvent(**EVENT), URL, 1, status, error, 0.1, 0.1, None)
    assert _names.attempt_error(attempt) == expected


@pytest.mark.parametrize(
    ("url", "address", "port"),
    [
        ("https://pulsora.co/api/ingest", "pulsora.co", 443),
        ("http://127.0.0.1:8787/api/ingest", "127.0.0.1", 8787),
        ("http://[::1]/api/ingest", "::1", 80),
    ],
)
def test_the_server_of_an_endpoint(url: str, address: str, port: int) -> None:
    assert dict(_names.endpoint(url)) == {
        "server.address": address,
        "server.port": port,
        "url.full": url,
    }


def test_the_otel_module_says_what_to_install_without_opentelemetry() -> None:
    script = (
        "import sys\n"
        "sys.modules['opentelemetry'] = None\n"  # as if it were not installed
        "try:\n"
        "    import pulsora_revenue.otel\n"
        "except ImportError as exc:\n"
        "    print(exc)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    ).stdout
    assert "pip install 'pulsora-revenue[otel]'" in out
