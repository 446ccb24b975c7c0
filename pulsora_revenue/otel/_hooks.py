"""``OpenTelemetryHooks``: spans and metrics of what the client does.

Spans are built once an event's outcome is known, with the times the
records give: the attempts of a delivery are kept (in a context variable of
the task that sends, which is also the task that reports the outcome) until
then. The ``pulsora.track`` span is a child of the span current in that task:
the caller's, for ``track``; for ``track_many``, the one current when it was
called (its workers run in copies of the caller's context).
"""

from __future__ import annotations

import time
from contextvars import ContextVar

from opentelemetry import metrics, trace
from opentelemetry.context import Context
from opentelemetry.trace import SpanKind, Status, StatusCode

from .._hooks import Attempt, Delivery, Hooks, OutboxChange, OutboxChangeKind
from . import _names
from ._metrics import Instruments

#: An attempt, and when it was reported (``time.time_ns()``): about when it ended.
Tried = tuple[Attempt, int]

NS = 1_000_000_000


class OpenTelemetryHooks(Hooks):
    """Report deliveries as OpenTelemetry spans, and what the client does as metrics.

    Each event given to ``track`` or ``track_many`` becomes a ``pulsora.track`` span
    (a child of the caller's current span), each delivery from the outbox a
    ``pulsora.outbox.deliver`` span, and each HTTP request a ``POST`` client span
    under it, with the attributes of OpenTelemetry's HTTP semantic conventions. The
    metrics are ``pulsora.events`` (by outcome), ``pulsora.attempts``,
    ``pulsora.retries``, ``http.client.request.duration``,
    ``pulsora.delivery.duration``, ``pulsora.outbox.changes`` and
    ``pulsora.outbox.depth``. No attribute holds a visitor fingerprint, session or
    customer id, nor the token. Needs only ``opentelemetry-api`` (the ``otel`` extra);
    without an SDK configured, it records nothing, at little cost.

    Args:
        tracer_provider: the ``TracerProvider`` to make spans with; None (the default)
            for the global one.
        meter_provider: the ``MeterProvider`` to record metrics with; None (the default)
            for the global one.
    """

    def __init__(
        self,
        *,
        tracer_provider: trace.TracerProvider | None = None,
        meter_provider: metrics.MeterProvider | None = None,
    ) -> None:
        version = _version()
        self._tracer = trace.get_tracer(
            _names.SCOPE, version, tracer_provider, schema_url=_names.SCHEMA_URL
        )
        meter = metrics.get_meter(
            _names.SCOPE, version, meter_provider, schema_url=_names.SCHEMA_URL
        )
        self._metrics = Instruments(meter)
        # The attempts of the delivery in progress in this task, until its outcome.
        self._tried: ContextVar[list[Tried] | None] = ContextVar(
            "pulsora_revenue.otel.tried", default=None
        )

    def __repr__(self) -> str:
        return "<OpenTelemetryHooks>"

    def on_attempt(self, attempt: Attempt) -> None:
        """Record the request's metrics, and keep it for its delivery's span.

        Args:
            attempt: the request.
        """
        self._metrics.attempt(attempt)
        tried = self._tried.get()
        now = time.time_ns()
        if attempt.number == 1 or not tried or tried[-1][0].event is not attempt.event:
            self._tried.set([(attempt, now)])  # a new delivery (or one whose start was lost)
        else:
            tried.append((attempt, now))

    def on_delivery(self, delivery: Delivery) -> None:
        """Make the event's ``pulsora.track`` span, its requests' spans, and its metrics.

        Args:
            delivery: the event's outcome.
        """
        self._metrics.delivery(delivery)
        error = delivery.error if _names.is_error(delivery.outcome) else None
        attributes = _names.delivery_span_attributes(delivery)
        end = time.time_ns()
        tried = self._take(delivery.event)
        self._span(
            _names.TRACK_SPAN, end - int(delivery.elapsed * NS), end, attributes, tried, error
        )

    def on_outbox(self, change: OutboxChange) -> None:
        """Count the change; make a ``pulsora.outbox.deliver`` span for a delivery from it.

        Args:
            change: the change of the outbox.
        """
        self._metrics.outbox(change)
        if change.change is OutboxChangeKind.QUEUED:
            return  # the pulsora.track span that follows says it
        tried = self._take(change.event) if change.event is not None else []
        attributes = _names.outbox_span_attributes(change, len(tried))
        end = time.time_ns()
        self._span(_names.OUTBOX_SPAN, end, end, attributes, tried, change.error)

    def _take(self, event: object) -> list[Tried]:
        """The attempts kept for *event*'s delivery in this task; forget them."""
        tried = self._tried.get()
        if not tried or tried[-1][0].event is not event:
            return []
        self._tried.set(None)
        return tried

    def _span(
        self,
        name: str,
        start: int,
        end: int,
        attributes: _names.Attributes,
        tried: list[Tried],
        error: Exception | None,
    ) -> None:
        """One finished span, from *start* to *end* (ns), with a child span per attempt."""
        begun, ended = [], None
        for attempt, at in tried:  # in order, never overlapping: each began after the last
            since = at - int(attempt.duration * NS)
            begun.append(since if ended is None else max(since, ended))
            ended = at
        start = min([start, *begun])
        span = self._tracer.start_span(name, attributes=attributes, start_time=start)
        parent = trace.set_span_in_context(span)
        for (attempt, at), since in zip(tried, begun, strict=True):
            self._attempt_span(attempt, since, at, parent)
        if error is not None:
            span.set_status(Status(StatusCode.ERROR))
            span.record_exception(error, timestamp=end)
        span.end(end_time=end)

    def _attempt_span(self, attempt: Attempt, start: int, end: int, parent: Context) -> None:
        attributes = _names.attempt_span_attributes(attempt)
        span = self._tracer.start_span(
            _names.ATTEMPT_SPAN,
            context=parent,
            kind=SpanKind.CLIENT,
            attributes=attributes,
            start_time=start,
        )
        if _names.ERROR_TYPE in attributes:
            span.set_status(Status(StatusCode.ERROR, attempt.error))
        span.end(end_time=end)


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("pulsora-revenue")
    except PackageNotFoundError:  # a source tree that is not installed
        return "0+unknown"
