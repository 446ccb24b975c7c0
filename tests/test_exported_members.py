"""The public surface: ``__all__`` is sorted, complete, and importable."""

from __future__ import annotations

import importlib
import types
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


#: The modules whose names users import.
PUBLIC_MODULES = [
    "pulsora_revenue",
    "pulsora_revenue.otel",
    "pulsora_revenue.starlette",
    "pulsora_revenue.testing",
    "pulsora_revenue.webhooks",
    "pulsora_revenue.webhooks.chargebee",
    "pulsora_revenue.webhooks.lemonsqueezy",
    "pulsora_revenue.webhooks.paddle",
    "pulsora_revenue.webhooks.polar",
    "pulsora_revenue.webhooks.stripe",
]


def test_no_public_name_or_signature_holds_a_private_type() -> None:
    """What users can reach is a type they can name: none of a private module only."""
    modules = [importlib.import_module(name) for name in PUBLIC_MODULES]
    exported = {
        value
        for module in modules
        for value in map(vars(module).get, getattr(module, "__all__", ()))
        if isinstance(value, type)
    }
    leaks = []
    for module in modules:
        for name in getattr(module, "__all__", ()):
            value = getattr(module, name)
            where = f"{module.__name__}.{name}"
            if not isinstance(value, type | types.FunctionType | types.ModuleType):
                leaks += [f"{where} is a {kind}" for kind in private([type(value)], exported)]
            for member, hints in signatures(where, value):
                leaks += [f"{member} names {kind}" for kind in private(hints, exported)]
    assert leaks == []


def private(kinds: list[object], exported: set[type]) -> list[str]:
    """The types of *kinds* (and their arguments) that are ours and not exported."""
    found = []
    for kind in kinds:
        if isinstance(kind, type) and kind.__module__.startswith("pulsora_revenue"):
            found += [] if kind in exported else [f"{kind.__module__}.{kind.__qualname__}"]
        found += private(list(typing.get_args(kind)), exported)
    return found


def signatures(where: str, value: object) -> list[tuple[str, list[object]]]:
    """The annotated types of a public function, or of a public class's public methods."""
    if isinstance(value, types.FunctionType):
        return [(where, list(typing.get_type_hints(value).values()))]
    if not isinstance(value, type) or issubclass(value, BaseException):
        return []
    found = []
    for attribute, member in vars(value).items():
        function = member.fget if isinstance(member, property) else member
        public = attribute == "__init__" or not attribute.startswith("_")
        if public and isinstance(function, types.FunctionType):
            hints = typing.get_type_hints(function)
            found.append((f"{where}.{attribute}", list(hints.values())))
    return found
