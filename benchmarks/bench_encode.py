"""Per-event cost of validate + structure + encode, against a plain dict + json.dumps.

Run: ``python benchmarks/bench_encode.py``. Both sides are timed in one run on
the same input; the ratio is what matters, not the absolute figures, because
this machine is shared and noisy.
"""

from __future__ import annotations

import json
import timeit
from collections.abc import Callable
from typing import Any

from pulsora_revenue import RevenueEvent
from pulsora_revenue._convert import encode, to_event

ROW: dict[str, Any] = {
    "visitor_fingerprint": "fp_6f1d2c3b4a5e",
    "session_id": "sess_9a8b7c6d",
    "customer_id": "cus_NffrFeUfNV2Hib",
    "amount": "49.99",
    "currency": "usd",
    "transaction_id": "pi_3MtwBwLkdIwHu7ix28a3tqPa",
    "payment_processor": "stripe",
    "event_type": "purchase",
    "metadata": {"plan": "pro", "seats": 5, "coupon": None},
}


def plain() -> bytes:
    """The baseline: no validation, floats for money."""
    data = {**ROW, "amount": float(ROW["amount"]), "currency": ROW["currency"].upper()}
    return json.dumps({"type": "revenue", "data": data}, separators=(",", ":")).encode()


def ours() -> bytes:
    """What ``track`` does before sending: structure, validate, encode."""
    return encode(to_event(ROW, {}))


def ours_prebuilt(event: RevenueEvent = to_event(ROW, {})) -> bytes:  # noqa: B008
    """Encoding only, for an event that is already a validated RevenueEvent."""
    return encode(event)


def best_per_call(function: Callable[[], bytes], number: int = 20_000) -> float:
    return min(timeit.repeat(function, number=number, repeat=5)) / number


def main() -> None:
    baseline = best_per_call(plain)
    print(f"{'case':<40} {'µs/event':>10} {'ratio':>8}")
    for name, function in [
        ("dict + json.dumps (baseline)", plain),
        ("validate + structure + encode", ours),
        ("encode a prebuilt RevenueEvent", ours_prebuilt),
    ]:
        cost = best_per_call(function)
        print(f"{name:<40} {cost * 1e6:>10.2f} {cost / baseline:>7.1f}x")


if __name__ == "__main__":
    main()
