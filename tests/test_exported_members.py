"""The public surface: ``__all__`` is sorted, complete, and importable."""

from __future__ import annotations

import typing

import pulsora_revenue

# The names of SPEC section 10: users' code relies on them.
CONTRACT = {
    "APIConnectionError",
    "APIError",
    "APITimeoutError",
    "AuthenticationError",
    "BadRequestError",
    "BatchFailure",
    "BatchReport",
    "ConfigurationError",
    "DuplicateTransactionError",
    "EventType",
    "Outcome",
    "OutcomeStatus",
    "PermissionDeniedError",
    "PulsoraError",
    "RateLimitError",
    "RetryPolicy",
    "Revenue",
    "RevenueEvent",
    "ServerError",
    "TrackResult",
    "ValidationError",
    "currency_exponent",
    "from_minor_units",
    "to_minor_units",
}


def test_all_is_sorted() -> None:
    assert pulsora_revenue.__all__ == sorted(pulsora_revenue.__all__)


def test_all_is_complete() -> None:
    public = {
        name
        for name, value in vars(pulsora_revenue).items()
        if not name.startswith("_")
        and getattr(value, "__module__", "").startswith("pulsora_revenue")
    }
    aliases = {  # type aliases have no module of their own
        name
        for name in pulsora_revenue.__all__
        if typing.get_origin(getattr(pulsora_revenue, name)) is typing.Literal
    }
    assert aliases == {"Backend"}
    assert public | aliases == set(pulsora_revenue.__all__)


def test_contract_names_are_exported() -> None:
    assert set(pulsora_revenue.__all__) >= CONTRACT
    for name in pulsora_revenue.__all__:
        assert getattr(pulsora_revenue, name) is not None


def test_errors_share_one_root() -> None:
    for name in pulsora_revenue.__all__:
        value = getattr(pulsora_revenue, name)
        if isinstance(value, type) and issubclass(value, Exception):
            assert issubclass(value, pulsora_revenue.PulsoraError), name


def test_version_is_read_from_metadata() -> None:
    assert isinstance(pulsora_revenue.__version__, str)


def test_the_webhooks_surface_is_sorted_and_importable() -> None:
    from pulsora_revenue import webhooks
    from pulsora_revenue.webhooks import paddle, stripe

    assert webhooks.__all__ == sorted(webhooks.__all__)
    assert {"Ledger", "MemoryLedger", "SQLiteLedger"} <= set(webhooks.__all__)
    for name in webhooks.__all__:
        assert getattr(webhooks, name) is not None
    for processor in (stripe, paddle):
        assert {"sign", "to_revenue_events", "verify"} <= set(processor.__all__)
