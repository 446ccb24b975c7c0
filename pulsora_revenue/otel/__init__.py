"""OpenTelemetry for pulsora_revenue: a span per event and per request, and metrics.

``OpenTelemetryHooks`` is a ``pulsora_revenue.Hooks``: pass it to the client, and
configure the OpenTelemetry SDK (its providers, exporters) as your application
does::

    from pulsora_revenue import Revenue
    from pulsora_revenue.otel import OpenTelemetryHooks

    async with Revenue(hooks=[OpenTelemetryHooks()]) as revenue:
        await revenue.track(...)

It works through ``opentelemetry-api`` alone (``pip install 'pulsora-revenue[otel]'``),
the same on the httpx and the aiohttp backends. ``import pulsora_revenue`` does not
import OpenTelemetry; this module does.
"""

from __future__ import annotations

try:
    from ._hooks import OpenTelemetryHooks
except ImportError as exc:
    if exc.name is None or not exc.name.startswith("opentelemetry"):
        raise
    raise ImportError(
        "pulsora_revenue.otel needs the OpenTelemetry API: pip install 'pulsora-revenue[otel]'",
        name=exc.name,
    ) from exc

__all__ = ["OpenTelemetryHooks"]
