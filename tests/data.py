"""Shared test data: a secret token and a valid purchase event."""

from __future__ import annotations

from typing import Any

TOKEN = "sec_live_0123456789abcdefWXYZ"

EVENT: dict[str, Any] = {
    "visitor_fingerprint": "fp_1",
    "session_id": "sess_1",
    "customer_id": "cus_1",
    "amount": "49.99",
    "transaction_id": "tx_1",
    "event_type": "purchase",
}
