"""The names and attributes of our spans and metrics: OpenTelemetry's conventions where they apply.

Pure functions of the hook records, without OpenTelemetry itself: the HTTP
attributes of an attempt follow the semantic conventions of HTTP client spans
and metrics (``http.request.method``, ``server.address``, ``server.port``,
``url.full``, ``http.response.status_code``, ``error.type``,
``http.request.resend_count``); the rest is ours, under ``pulsora.``. No
visitor fingerprint, session or customer id, and no API token: the records
hold none.
"""

from __future__ import annotations

import functools
from urllib.parse import urlsplit

from .._event import RevenueEvent
from .._hooks import Attempt, Delivery, DeliveryOutcome, OutboxChange

#: The instrumentation scope (tracer and meter) name.
SCOPE = "pulsora_revenue"
#: The version of the semantic conventions our HTTP attributes follow.
SCHEMA_URL = "https://opentelemetry.io/schemas/1.26.0"

#: Span names: one per ``track`` (and per event of ``track_many``), one per delivery
#: from the outbox, and one per HTTP request, named by its method as HTTP client spans are.
TRACK_SPAN = "pulsora.track"
OUTBOX_SPAN = "pulsora.outbox.deliver"
ATTEMPT_SPAN = "POST"

# Our attributes.
EVENT_TYPE = "pulsora.event.type"
CURRENCY = "pulsora.event.currency"
OUTCOME = "pulsora.delivery.outcome"
ATTEMPTS = "pulsora.delivery.attempts"
STATUS_CODE = "pulsora.delivery.status_code"
DUPLICATE = "pulsora.delivery.duplicate"
QUEUED = "pulsora.delivery.queued"
WAIT = "pulsora.retry.wait"
OUTBOX_CHANGE = "pulsora.outbox.change"
OUTBOX_DEPTH = "pulsora.outbox.depth"

# OpenTelemetry's semantic conventions.
METHOD = "http.request.method"
RESPONSE_STATUS = "http.response.status_code"
RESEND_COUNT = "http.request.resend_count"
ERROR_TYPE = "error.type"
SERVER_ADDRESS = "server.address"
SERVER_PORT = "server.port"
URL_FULL = "url.full"

Attributes = dict[str, str | bool | int | float]

#: ``error.type`` of a 2xx answer that is not Pulsora's acceptance: the error it makes.
FOREIGN_ANSWER = "UnexpectedResponseError"
#: ``error.type`` of a failure without a name (semantic conventions' fallback).
OTHER_ERROR = "_OTHER"


@functools.lru_cache(maxsize=16)
def endpoint(url: str) -> tuple[tuple[str, str | int], ...]:
    """The ``server.address``, ``server.port`` and ``url.full`` of the endpoint *url*."""
    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    return ((SERVER_ADDRESS, parts.hostname or ""), (SERVER_PORT, port), (URL_FULL, url))


def event_attributes(event: RevenueEvent | None) -> Attributes:
    """The event's type and currency: nothing that names a visitor or a customer."""
    if event is None:
        return {}
    shown: Attributes = {CURRENCY: event.currency}
    if event.event_type is not None:
        shown[EVENT_TYPE] = event.event_type.value
    return shown


def attempt_error(attempt: Attempt) -> str | None:
    """The ``error.type`` of an attempt: its status from 400 on, or what failed; else None."""
    status = attempt.status_code
    if status is not None:
        if status >= 400:
            return str(status)
        return FOREIGN_ANSWER if attempt.error is not None else None
    name = (attempt.error or "").partition(":")[0].strip()
    return name if name.isidentifier() else OTHER_ERROR


def attempt_metric_attributes(attempt: Attempt) -> Attributes:
    """The attributes of an attempt's metrics: HTTP's, without the URL."""
    shown: Attributes = {METHOD: "POST"}
    shown.update(pair for pair in endpoint(attempt.endpoint) if pair[0] != URL_FULL)
    if attempt.status_code is not None:
        shown[RESPONSE_STATUS] = attempt.status_code
    error = attempt_error(attempt)
    if error is not None:
        shown[ERROR_TYPE] = error
    return shown


def attempt_span_attributes(attempt: Attempt) -> Attributes:
    """The attributes of an attempt's span: an HTTP client span's, and the wait after it."""
    shown = attempt_metric_attributes(attempt)
    shown[URL_FULL] = attempt.endpoint
    if attempt.number > 1:
        shown[RESEND_COUNT] = attempt.number - 1
    if attempt.wait is not None:
        shown[WAIT] = attempt.wait
    return shown


def is_error(outcome: DeliveryOutcome) -> bool:
    """Whether a delivery with *outcome* is an error: the event was not recorded, nor kept."""
    return outcome in (DeliveryOutcome.REFUSED, DeliveryOutcome.FAILED)


def delivery_span_attributes(delivery: Delivery) -> Attributes:
    """The attributes of the span of one event given to ``track`` or ``track_many``."""
    shown = event_attributes(delivery.event)
    shown[OUTCOME] = delivery.outcome.value
    shown[ATTEMPTS] = delivery.attempts
    shown[DUPLICATE] = delivery.outcome is DeliveryOutcome.DUPLICATE
    shown[QUEUED] = delivery.outcome is DeliveryOutcome.QUEUED
    if delivery.status_code is not None:
        shown[STATUS_CODE] = delivery.status_code
    if delivery.error is not None and is_error(delivery.outcome):
        shown[ERROR_TYPE] = type(delivery.error).__qualname__
    return shown


def delivery_metric_attributes(delivery: Delivery) -> Attributes:
    """The attributes of a delivery's metrics: its outcome and the event's type."""
    shown: Attributes = {OUTCOME: delivery.outcome.value}
    if delivery.event.event_type is not None:
        shown[EVENT_TYPE] = delivery.event.event_type.value
    return shown


def outbox_span_attributes(change: OutboxChange, attempts: int) -> Attributes:
    """The attributes of the span of a delivery from the outbox."""
    shown = event_attributes(change.event)
    shown[OUTBOX_CHANGE] = change.change.value
    shown[ATTEMPTS] = attempts
    if change.depth is not None:
        shown[OUTBOX_DEPTH] = change.depth
    if change.error is not None:
        shown[ERROR_TYPE] = type(change.error).__qualname__
    return shown
