"""The metrics of ``OpenTelemetryHooks``, through OpenTelemetry's metrics API."""

from __future__ import annotations

from collections.abc import Iterable

from opentelemetry.metrics import CallbackOptions, Meter, Observation

from .._hooks import Attempt, Delivery, OutboxChange
from . import _names

#: The buckets of the semantic conventions' ``http.client.request.duration``, in seconds.
REQUEST_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10)
#: A delivery may take its whole deadline (30 s by default), waits included.
DELIVERY_BUCKETS = (*REQUEST_BUCKETS, 15, 30, 60)


class Instruments:
    """The instruments of one ``OpenTelemetryHooks``, and what it records with them."""

    def __init__(self, meter: Meter) -> None:
        self.events = meter.create_counter(
            "pulsora.events",
            unit="{event}",
            description="Events given to track or track_many, by outcome.",
        )
        self.attempts = meter.create_counter(
            "pulsora.attempts",
            unit="{attempt}",
            description="HTTP requests made to Pulsora's ingest API.",
        )
        self.retries = meter.create_counter(
            "pulsora.retries",
            unit="{attempt}",
            description="Requests followed by another for the same event, by what they got.",
        )
        self.request_duration = meter.create_histogram(
            "http.client.request.duration",
            unit="s",
            description="Duration of HTTP client requests.",
            explicit_bucket_boundaries_advisory=REQUEST_BUCKETS,
        )
        self.delivery_duration = meter.create_histogram(
            "pulsora.delivery.duration",
            unit="s",
            description="Time to deliver (or queue, or give up on) one event, waits included.",
            explicit_bucket_boundaries_advisory=DELIVERY_BUCKETS,
        )
        self.outbox_changes = meter.create_counter(
            "pulsora.outbox.changes",
            unit="{event}",
            description="Events queued in the outbox, delivered from it, or dead-lettered.",
        )
        self.depth: int | None = None  # as the last outbox change reported it
        meter.create_observable_gauge(
            "pulsora.outbox.depth",
            callbacks=[self._observe_depth],
            unit="{event}",
            description="Events waiting in the outbox, as of its last change.",
        )

    def attempt(self, attempt: Attempt) -> None:
        """Count one HTTP request, and record its duration."""
        shown = _names.attempt_metric_attributes(attempt)
        self.attempts.add(1, shown)
        if attempt.wait is not None:
            self.retries.add(1, shown)
        self.request_duration.record(attempt.duration, shown)

    def delivery(self, delivery: Delivery) -> None:
        """Count one event's outcome, and record how long it took."""
        shown = _names.delivery_metric_attributes(delivery)
        self.events.add(1, shown)
        self.delivery_duration.record(delivery.elapsed, shown)

    def outbox(self, change: OutboxChange) -> None:
        """Count one change of the outbox, and keep its depth for the gauge."""
        self.outbox_changes.add(1, {_names.OUTBOX_CHANGE: change.change.value})
        if change.depth is not None:
            self.depth = change.depth

    def _observe_depth(self, options: CallbackOptions) -> Iterable[Observation]:
        return [] if self.depth is None else [Observation(self.depth)]
