"""Validation rules of ``RevenueEvent``, the converter, and the exact-decimal JSON."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from types import MappingProxyType
from typing import Any

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pulsora_revenue import (
    EventType,
    FieldError,
    PulsoraError,
    RevenueEvent,
    ValidationError,
    _json,
)
from pulsora_revenue._convert import encode, make_converter
from pulsora_revenue._iso4217 import MINOR_UNITS

from .conftest import examples

VALID: dict[str, Any] = {
    "visitor_fingerprint": "fp_abc",
    "session_id": "sess_123",
    "customer_id": "cus_123",
    "amount": Decimal("49.99"),
    "transaction_id": "pi_123",
}

REQUIRED_STRINGS = ("visitor_fingerprint", "session_id", "customer_id", "transaction_id")

EVENT_TYPE_MESSAGE = (
    "event_type must be one of: purchase, subscription, renewal, upgrade, downgrade, churn, refund."
)

converter = make_converter()


def make(**overrides: Any) -> RevenueEvent:
    return RevenueEvent(**{**VALID, **overrides})


def invalid(**overrides: Any) -> ValidationError:
    with pytest.raises(ValidationError) as info:
        make(**overrides)
    return info.value


def only_error(**overrides: Any) -> FieldError:
    exc = invalid(**overrides)
    assert len(exc.errors) == 1, exc.errors
    return exc.errors[0]


def nested_lists(levels: int) -> object:
    value: object = "leaf"
    for _ in range(levels):
        value = [value]
    return value


# --- required and optional strings ------------------------------------------------


@pytest.mark.parametrize("field", REQUIRED_STRINGS)
@pytest.mark.parametrize("value", [None, "", "   ", "\t\n"])
def test_required_string_missing_or_blank(field: str, value: object) -> None:
    error = only_error(**{field: value})
    assert error.path == field
    assert error.message == f"{field} is required. Received: {value!r}."


@pytest.mark.parametrize("field", REQUIRED_STRINGS)
@pytest.mark.parametrize("value", [123, b"fp", ["fp"]])
def test_required_string_of_wrong_type(field: str, value: object) -> None:
    error = only_error(**{field: value})
    assert error.path == field
    assert error.message == f"{field} must be a string. Received: {value!r}."


@pytest.mark.parametrize(
    "field", [*REQUIRED_STRINGS, "payment_processor", "customer_subscription_id"]
)
def test_strings_are_stripped(field: str) -> None:
    event = make(**{field: "  value_1 \n"})
    assert getattr(event, field) == "value_1"


@pytest.mark.parametrize("field", ["payment_processor", "customer_subscription_id"])
def test_optional_strings(field: str) -> None:
    assert getattr(make(), field) is None
    assert getattr(make(**{field: None}), field) is None
    error = only_error(**{field: "  "})
    assert error.path == field
    assert error.message == f"{field} must be a non-blank string. Received: '  '."
    assert only_error(**{field: 7}).message == f"{field} must be a non-blank string. Received: 7."


LONE_SURROGATE = "tx_\ud800"  # what json.loads makes of the escape "tx_\\ud800"


@pytest.mark.parametrize(
    ("overrides", "path"),
    [
        *(({field: LONE_SURROGATE}, field) for field in REQUIRED_STRINGS),
        ({"payment_processor": LONE_SURROGATE}, "payment_processor"),
        ({"customer_subscription_id": LONE_SURROGATE}, "customer_subscription_id"),
        ({"metadata": {"plan": LONE_SURROGATE}}, "metadata.plan"),
        ({"metadata": {"tags": ["ok", LONE_SURROGATE]}}, "metadata.tags[1]"),
        ({"metadata": {LONE_SURROGATE: "x"}}, "metadata"),
    ],
)
def test_text_that_utf_8_cannot_carry_is_refused(overrides: dict[str, Any], path: str) -> None:
    error = only_error(**overrides)
    assert error.path == path
    assert "lone surrogate" in error.message
    assert "'tx_\\ud800'" in error.message  # the received value, escaped


def test_the_received_value_is_shortened_when_long() -> None:
    error = only_error(customer_id=["x" * 200])
    assert error.message.startswith("customer_id must be a string. Received: ['xxx")
    assert error.message.endswith("....")
    assert len(error.message) < 150


# --- amount -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (49, "49"),
        (Decimal("49.99"), "49.99"),
        ("49.99", "49.99"),
        (" 49.99 ", "49.99"),
        ("100.00", "100.00"),
        (0.1, "0.1"),
        (49.99, "49.99"),
        (1e16, "1E+16"),
        (
            Decimal("123456789012345678901234567890.123456789"),
            "123456789012345678901234567890.123456789",
        ),
    ],
)
def test_amount_accepted_forms(value: object, expected: str) -> None:
    amount = make(amount=value).amount
    assert type(amount) is Decimal
    assert amount == Decimal(expected)
    assert str(amount) == expected


@pytest.mark.parametrize(
    "value",
    [
        True,
        False,
        float("nan"),
        float("inf"),
        float("-inf"),
        Decimal("NaN"),
        Decimal("sNaN"),
        Decimal("Infinity"),
        Decimal("-Infinity"),
        "NaN",
        "inf",
        "-Infinity",
        "abc",
        "",
        None,
        [1],
        {"amount": 1},
        b"1",
        "1_000",
        "١٢.٥",
        "1e99999999999999999999",
    ],
)
def test_amount_rejected_values(value: object) -> None:
    error = only_error(amount=value)
    assert error.path == "amount"
    assert error.message.startswith("amount must be a positive number: ")  # then why not
    assert error.message.endswith(f". Received: {value!r}.")


@pytest.mark.parametrize(
    ("value", "why"),
    [
        ("abc", "it is not a number"),
        ("$10", "write it without its currency, which goes in the currency field"),
        ("10 EUR", "write it without its currency, which goes in the currency field"),
        ("1,000.00", "write it without thousands separators, as in 1000.00"),
        ("1 000", "write it without thousands separators, as in 1000.00"),
        (True, "true and false are not numbers"),
        ("", "it is empty"),
        ("  ", "it is empty"),
        (None, "it is missing"),
        ("NaN", "it is not a finite number"),
        (float("inf"), "it is not a finite number"),
        ("1e99999999999999999999", "its exponent is beyond any amount"),
        ([1], "a value of type list is not a number"),
    ],
)
def test_an_amount_that_is_no_number_says_why(value: object, why: str) -> None:
    """Not "must be a positive number" alone: the problem is that it is no number at all."""
    error = only_error(amount=value)
    assert error.message == f"amount must be a positive number: {why}. Received: {value!r}."


@pytest.mark.parametrize(
    "value",
    ["1e999999999", "-1e30", Decimal("1e30"), 10**30, 10**5000, Decimal("1e-31"), "0.1e-30"],
    ids=["1e999999999", "-1e30", "Decimal-1e30", "10**30", "10**5000", "1e-31", "0.1e-30"],
)
def test_amount_out_of_range(value: object) -> None:
    error = only_error(amount=value, event_type="refund")
    assert error.message.startswith("amount is out of range: at most 30 digits")
    assert "Received: " in error.message


@pytest.mark.parametrize(
    "event_type",
    [None, "purchase", "subscription", "renewal", "upgrade", "downgrade"],
)
@pytest.mark.parametrize("value", [0, Decimal("0.00"), -1, Decimal("-49.99"), "-0.01"])
def test_amount_must_be_positive(event_type: str | None, value: object) -> None:
    error = only_error(event_type=event_type, amount=value)
    assert error.path == "amount"
    assert error.message == f"amount must be a positive number. Received: {value!r}."


def test_refund_is_negative() -> None:
    event = make(event_type="refund", amount="-49.99")
    assert event.event_type is EventType.REFUND
    assert event.amount == Decimal("-49.99")


@pytest.mark.parametrize("value", [Decimal("49.99"), 1, "0.01"])
def test_positive_refund_rejected(value: object) -> None:
    error = only_error(event_type="refund", amount=value)
    assert error.path == "amount"
    assert "refunds are sent as negative amounts" in error.message
    assert f"Received: {value!r}." in error.message


@pytest.mark.parametrize("value", [0, Decimal("0.00"), Decimal("-0"), "-0.00"])
def test_zero_refund_rejected(value: object) -> None:
    error = only_error(event_type="refund", amount=value)
    assert error.path == "amount"
    assert "refunds are sent as negative amounts" in error.message


def test_non_numeric_refund_amount() -> None:
    error = only_error(event_type="refund", amount="lots")
    assert error.message == "amount must be a number. Received: 'lots'."


@pytest.mark.parametrize("value", [0, Decimal("0.00"), "0", 10])
def test_churn_amount_zero_or_positive_accepted(value: object) -> None:
    assert make(event_type="churn", amount=value).amount == Decimal(str(value))


def test_churn_negative_amount_rejected() -> None:
    error = only_error(event_type="churn", amount=Decimal("-1"))
    assert error.path == "amount"
    assert error.message == (
        "amount must be zero or positive for churn (normally 0). Received: Decimal('-1')."
    )


# --- currency ---------------------------------------------------------------------


def test_currency_defaults_to_usd() -> None:
    assert make().currency == "USD"


@pytest.mark.parametrize(
    ("value", "expected"),
    [("usd", "USD"), ("Eur", "EUR"), ("JPY", "JPY"), ("kwd", "KWD"), ("clf", "CLF")],
)
def test_currency_upper_cased(value: str, expected: str) -> None:
    assert make(currency=value).currency == expected


@pytest.mark.parametrize(
    "value",
    ["XYZ", "US", "USDX", "", "U$D", "US1", "ÜSD", "HRK", "XAU", "XXX", 123, None, b"USD"],
)
def test_currency_rejected(value: object) -> None:
    error = only_error(currency=value)
    assert error.path == "currency"
    assert error.message.startswith("currency must be ")
    assert f"Received: {value!r}." in error.message


@pytest.mark.parametrize("value", ["u\u017fd", "\u0131nr"])
def test_currency_rejects_non_ascii_letters_that_upper_case_to_ascii(value: str) -> None:
    # "ſ".upper() == "S" and "ı".upper() == "I": the ASCII check must look at the
    # value received, not at its upper-cased form ("uſd" is not "usd").
    error = only_error(currency=value)
    assert error.path == "currency"


# --- event_type -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("Purchase", EventType.PURCHASE),
        ("RENEWAL", EventType.RENEWAL),
        (" subscription ", EventType.SUBSCRIPTION),
        (EventType.UPGRADE, EventType.UPGRADE),
        ("upgrade", EventType.UPGRADE),
    ],
)
def test_event_type_case_insensitive(value: object, expected: EventType) -> None:
    assert make(event_type=value).event_type is expected


def test_event_type_enum_refund() -> None:
    assert make(event_type=EventType.REFUND, amount=-5).event_type is EventType.REFUND


def test_event_type_defaults_to_none() -> None:
    assert make().event_type is None


@pytest.mark.parametrize("value", ["sale", "", "purchases", 1, ["purchase"]])
def test_event_type_unknown(value: object) -> None:
    error = only_error(event_type=value)
    assert error.path == "event_type"
    assert error.message == f"{EVENT_TYPE_MESSAGE} Received: {value!r}."


def test_invalid_event_type_still_reports_non_numeric_amount() -> None:
    exc = invalid(event_type="sale", amount="lots")
    assert exc.paths == ["event_type", "amount"]
    assert exc.errors[1].message == "amount must be a number. Received: 'lots'."


def test_invalid_event_type_does_not_judge_the_amount_sign() -> None:
    # Which sign is right depends on the type, which is unknown.
    exc = invalid(event_type="sale", amount=-5, mrr_impact=-5)
    assert exc.paths == ["event_type"]


# --- mrr_impact -------------------------------------------------------------------


def amount_for(event_type: str | None) -> Decimal:
    return {"refund": Decimal("-10"), "churn": Decimal("0")}.get(event_type or "", Decimal("10"))


@pytest.mark.parametrize(
    ("event_type", "value"),
    [
        ("subscription", 0),
        ("subscription", Decimal("29.00")),
        ("upgrade", "10"),
        ("downgrade", 0),
        ("downgrade", Decimal("-10")),
        ("churn", Decimal("-29.00")),
        ("churn", 0),
        (None, -5),
        (None, 5),
        ("purchase", -5),
        ("renewal", 5),
        ("renewal", -5),
        ("refund", -29),
        ("refund", 29),
    ],
)
def test_mrr_impact_sign_accepted(event_type: str | None, value: object) -> None:
    event = make(event_type=event_type, amount=amount_for(event_type), mrr_impact=value)
    assert event.mrr_impact == Decimal(str(value))
    assert type(event.mrr_impact) is Decimal


@pytest.mark.parametrize(
    ("event_type", "value", "wording"),
    [
        ("subscription", Decimal("-0.01"), "zero or positive for a subscription"),
        ("upgrade", -10, "zero or positive for an upgrade"),
        ("downgrade", Decimal("0.01"), "zero or negative for a downgrade"),
        ("churn", 29, "zero or negative for churn"),
    ],
)
def test_mrr_impact_sign_rejected(event_type: str, value: object, wording: str) -> None:
    error = only_error(event_type=event_type, amount=amount_for(event_type), mrr_impact=value)
    assert error.path == "mrr_impact"
    assert error.message == f"mrr_impact must be {wording}. Received: {value!r}."


@pytest.mark.parametrize(
    "value", ["abc", True, float("nan"), Decimal("Infinity"), "NaN", [1], {"a": 1}]
)
def test_mrr_impact_must_be_a_number(value: object) -> None:
    error = only_error(mrr_impact=value)
    assert error.path == "mrr_impact"
    assert error.message.startswith("mrr_impact must be a number")
    assert error.message.endswith(f". Received: {value!r}.")
    if value == "abc":  # no reason more specific: not "must be a number: it is not a number"
        assert error.message == "mrr_impact must be a number. Received: 'abc'."


def test_mrr_impact_forms() -> None:
    assert make().mrr_impact is None
    assert make(mrr_impact=0.1).mrr_impact == Decimal("0.1")
    assert make(mrr_impact=" -12.50 ").mrr_impact == Decimal("-12.50")


# --- is_recurring -----------------------------------------------------------------


@pytest.mark.parametrize("value", [True, False, None])
def test_is_recurring_accepts_bool(value: bool | None) -> None:
    assert make(is_recurring=value).is_recurring is value


@pytest.mark.parametrize("value", ["yes", "true", 1, 0, "1"])
def test_is_recurring_bool_only(value: object) -> None:
    error = only_error(is_recurring=value)
    assert error.path == "is_recurring"
    assert error.message == f"is_recurring must be a boolean. Received: {value!r}."


# --- metadata ---------------------------------------------------------------------


def test_metadata_json_values_accepted() -> None:
    metadata = {
        "plan": "pro",
        "seats": 5,
        "ratio": 0.5,
        "price": Decimal("29.99"),
        "trial": False,
        "coupon": None,
        "addons": ["sso", {"name": "audit", "price": Decimal("5.00")}],
        "nested": {"a": {"b": [1, [2, [3]]]}},
    }
    event = make(metadata=metadata)
    assert event.metadata == metadata | {
        "addons": ("sso", {"name": "audit", "price": Decimal("5.00")}),
        "nested": {"a": {"b": (1, (2, (3,)))}},
    }
    assert event.metadata is not None
    assert type(event.metadata["price"]) is Decimal


def test_metadata_set_value_rejected_with_path() -> None:
    error = only_error(metadata={"plan": "pro", "tags": {"a"}})
    assert error.path == "metadata.tags"
    assert "Received: {'a'}." in error.message


@pytest.mark.parametrize(
    ("metadata", "path"),
    [
        ({"addons": ["seat", 2, {1, 2}]}, "metadata.addons[2]"),
        ({"plan": {"price": b"x"}}, "metadata.plan.price"),
        ({"plan-name": object()}, "metadata['plan-name']"),
        ({"a": [{"b": [0, complex(1, 2)]}]}, "metadata.a[0].b[1]"),
        ({"when": datetime(2024, 1, 1, tzinfo=UTC)}, "metadata.when"),
    ],
)
def test_metadata_nested_bad_value_path(metadata: dict[str, Any], path: str) -> None:
    assert only_error(metadata=metadata).path == path


def test_metadata_all_bad_values_reported() -> None:
    exc = invalid(metadata={"a": {1}, "b": [float("nan")], "c": "ok", "d": {"e": b""}})
    assert exc.paths == ["metadata.a", "metadata.b[0]", "metadata.d.e"]


@pytest.mark.parametrize(
    ("metadata", "path"),
    [({1: "x"}, "metadata"), ({"a": {("t",): 1}}, "metadata.a"), ({None: 1}, "metadata")],
)
def test_metadata_non_str_keys_rejected(metadata: dict[Any, Any], path: str) -> None:
    error = only_error(metadata=metadata)
    assert error.path == path
    assert "keys must be strings" in error.message


@pytest.mark.parametrize(
    "value", [float("nan"), float("inf"), float("-inf"), Decimal("NaN"), Decimal("-Infinity")]
)
def test_metadata_non_finite_numbers_rejected(value: object) -> None:
    error = only_error(metadata={"x": value})
    assert error.path == "metadata.x"
    assert error.message.startswith("metadata.x must be a finite number")
    assert error.message.endswith(f"Received: {value!r}.")


@pytest.mark.parametrize("value", [["plan"], "plan=pro", 5])
def test_metadata_must_be_a_mapping(value: object) -> None:
    error = only_error(metadata=value)
    assert error.path == "metadata"
    assert error.message.startswith("metadata must be a mapping of JSON values.")


def test_metadata_nesting_limit() -> None:
    # The metadata mapping itself and 15 lists below it: 16 levels.
    assert make(metadata={"a": nested_lists(15)}).metadata is not None
    error = only_error(metadata={"a": nested_lists(16)})
    assert error.path == "metadata.a" + "[0]" * 16
    assert "nests deeper than" in error.message


def test_metadata_self_reference_rejected() -> None:
    loop: list[object] = []
    loop.append(loop)
    error = only_error(metadata={"loop": loop})
    assert "nests deeper than" in error.message


def test_metadata_is_frozen_and_copied() -> None:
    addons: list[Any] = ["sso"]
    nested: dict[str, Any] = {"x": 1}
    metadata: dict[str, Any] = {"plan": "pro", "addons": addons, "nested": nested}
    event = make(metadata=metadata)
    frozen = event.metadata
    assert isinstance(frozen, MappingProxyType)
    assert isinstance(frozen["addons"], tuple)
    assert isinstance(frozen["nested"], MappingProxyType)
    with pytest.raises(TypeError):
        frozen["plan"] = "free"  # type: ignore[index]

    metadata["plan"] = "free"
    metadata["new"] = 1
    addons.append("audit")
    nested["x"] = 2
    assert event.metadata == {"plan": "pro", "addons": ("sso",), "nested": {"x": 1}}


def test_empty_metadata_is_none() -> None:
    assert make(metadata={}).metadata is None
    assert make(metadata=None).metadata is None


def test_event_is_frozen_slotted_and_hashable() -> None:
    event = make(metadata={"plan": "pro"})
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        event.amount = Decimal(1)  # type: ignore[misc]
    assert not hasattr(event, "__dict__")
    assert hash(event) == hash(make(metadata={"plan": "pro"}))
    assert event == make(metadata={"plan": "pro"})
    assert event != make(metadata={"plan": "free"})


def test_event_is_keyword_only() -> None:
    with pytest.raises(TypeError):
        RevenueEvent("fp", "s", "c", 1, "t")  # type: ignore[call-arg]


def test_dedup_key() -> None:
    assert make().dedup_key == ("pi_123", "")
    assert make(event_type="Renewal").dedup_key == ("pi_123", "renewal")


# --- occurred_at ------------------------------------------------------------------


def test_occurred_at_defaults_to_none() -> None:
    assert make().occurred_at is None


def test_naive_occurred_at_rejected() -> None:
    naive = datetime(2024, 5, 1, 12, 0)
    error = only_error(occurred_at=naive)
    assert error.path == "occurred_at"
    assert "timezone-aware" in error.message
    assert repr(naive) in error.message


def test_naive_iso_string_rejected() -> None:
    error = only_error(occurred_at="2024-05-01T12:00:00")
    assert error.path == "occurred_at"
    assert "timezone-aware" in error.message


def test_aware_occurred_at_converted_to_utc() -> None:
    moment = datetime(2024, 5, 1, 12, 0, tzinfo=timezone(timedelta(hours=2)))
    occurred_at = make(occurred_at=moment).occurred_at
    assert occurred_at == moment
    assert occurred_at is not None
    assert occurred_at.tzinfo is UTC
    assert (occurred_at.hour, occurred_at.minute) == (10, 0)


@pytest.mark.parametrize(
    "value",
    ["2024-05-01T10:00:00Z", "2024-05-01T12:00:00+02:00", " 2024-05-01T10:00:00.000+00:00 "],
)
def test_iso_string_occurred_at_accepted(value: str) -> None:
    occurred_at = make(occurred_at=value).occurred_at
    assert occurred_at == datetime(2024, 5, 1, 10, 0, tzinfo=UTC)
    assert occurred_at is not None
    assert occurred_at.tzinfo is UTC


@pytest.mark.parametrize("value", ["yesterday", "", 1714557600, datetime(2024, 5, 1).date()])
def test_occurred_at_junk_rejected(value: object) -> None:
    error = only_error(occurred_at=value)
    assert error.path == "occurred_at"
    assert error.message == (
        f"occurred_at must be a timezone-aware datetime or ISO 8601 string. Received: {value!r}."
    )


@pytest.mark.parametrize(
    "value",
    [
        "9999-12-31T23:59:59-01:00",
        "0001-01-01T00:00:00+01:00",
        datetime.max.replace(tzinfo=timezone(timedelta(hours=-1))),
    ],
)
def test_occurred_at_out_of_range_in_utc_is_a_validation_error(value: object) -> None:
    # In UTC these moments fall outside datetime's range; that is an invalid
    # value, not an OverflowError escaping the validation.
    error = only_error(occurred_at=value)
    assert error.path == "occurred_at"


def test_metadata_occurred_at_is_lifted() -> None:
    event = make(metadata={"occurred_at": "2024-05-01T10:00:00Z", "plan": "pro"})
    assert event.occurred_at == datetime(2024, 5, 1, 10, 0, tzinfo=UTC)
    assert event.metadata == {"plan": "pro"}


def test_metadata_occurred_at_only_leaves_no_metadata() -> None:
    moment = datetime(2024, 5, 1, 10, 0, tzinfo=UTC)
    event = make(metadata={"occurred_at": moment})
    assert event.occurred_at == moment
    assert event.metadata is None


def test_metadata_occurred_at_invalid() -> None:
    error = only_error(metadata={"occurred_at": "2024-05-01T10:00:00"})
    assert error.path == "metadata.occurred_at"
    assert "timezone-aware" in error.message


def test_occurred_at_in_both_places_rejected() -> None:
    moment = datetime(2024, 5, 1, 10, 0, tzinfo=UTC)
    error = only_error(occurred_at=moment, metadata={"occurred_at": moment.isoformat()})
    assert error.path == "metadata.occurred_at"
    assert "not both" in error.message


# --- several problems at once -----------------------------------------------------


def test_all_problems_reported_together() -> None:
    with pytest.raises(ValidationError) as info:
        RevenueEvent(
            visitor_fingerprint=None,  # type: ignore[arg-type]
            session_id="   ",
            customer_id=123,  # type: ignore[arg-type]
            amount=True,
            transaction_id="",
            currency="XYZ",
            event_type="sale",
            is_recurring="yes",  # type: ignore[arg-type]
            metadata={"tags": {"a"}},
            occurred_at=datetime(2024, 5, 1),
        )
    exc = info.value
    assert isinstance(exc, PulsoraError)
    assert isinstance(exc, ValueError)
    assert sorted(exc.paths) == sorted(
        [
            "visitor_fingerprint",
            "session_id",
            "customer_id",
            "amount",
            "transaction_id",
            "currency",
            "event_type",
            "is_recurring",
            "metadata.tags",
            "occurred_at",
        ]
    )
    assert [e.path for e in exc.errors] == list(exc.paths)
    text = str(exc)
    assert text.startswith("Invalid event (10 problems):")
    assert "visitor_fingerprint is required. Received: None." in text
    assert f"{EVENT_TYPE_MESSAGE} Received: 'sale'." in text
    assert "amount must be a number: true and false are not numbers. Received: True." in text


def test_validation_error_is_catchable_as_value_error() -> None:
    with pytest.raises(ValueError, match="amount must be a positive number"):
        make(amount=-1)


# --- converter --------------------------------------------------------------------


def test_structure_from_mapping() -> None:
    data = {
        **VALID,
        "amount": "49.99",
        "currency": "eur",
        "event_type": "Subscription",
        "mrr_impact": "49.99",
        "is_recurring": True,
        "metadata": {"plan": "pro", "occurred_at": "2024-05-01T10:00:00Z"},
    }
    event = converter.structure(data, RevenueEvent)
    assert event == make(
        currency="EUR",
        event_type=EventType.SUBSCRIPTION,
        mrr_impact=Decimal("49.99"),
        is_recurring=True,
        metadata={"plan": "pro"},
        occurred_at=datetime(2024, 5, 1, 10, 0, tzinfo=UTC),
    )


def test_structure_passes_an_event_through() -> None:
    event = make()
    assert converter.structure(event, RevenueEvent) is event


def test_structure_unknown_keys_named() -> None:
    with pytest.raises(ValidationError) as info:
        converter.structure({**VALID, "amont": 5, "curency": "usd"}, RevenueEvent)
    (error,) = info.value.errors
    assert error.path == "<event>"
    assert "'amont'" in error.message
    assert "'curency'" in error.message


def test_structure_unknown_keys_reported_with_other_problems() -> None:
    data = {**VALID, "amount": "-1", "extra": 1, "currency": "XYZ"}
    with pytest.raises(ValidationError) as info:
        converter.structure(data, RevenueEvent)
    assert sorted(info.value.paths) == ["<event>", "amount", "currency"]
    assert "extra" in info.value.errors[0].message


def test_structure_missing_required_keys() -> None:
    with pytest.raises(ValidationError) as info:
        converter.structure({"currency": "usd"}, RevenueEvent)
    assert sorted(info.value.paths) == sorted(
        ["visitor_fingerprint", "session_id", "customer_id", "amount", "transaction_id"]
    )
    assert "visitor_fingerprint is required. Received: None." in str(info.value)


@pytest.mark.parametrize("value", [None, "event", 42, [VALID], [("amount", 1)]])
def test_structure_non_mapping_rejected(value: object) -> None:
    with pytest.raises(ValidationError) as info:
        converter.structure(value, RevenueEvent)
    (error,) = info.value.errors
    assert error.path == "<event>"
    assert "must be a mapping" in error.message


def test_unstructure_minimal_event() -> None:
    wire = converter.unstructure(make(amount="49.99"))
    assert wire == {
        "visitor_fingerprint": "fp_abc",
        "session_id": "sess_123",
        "customer_id": "cus_123",
        "amount": Decimal("49.99"),
        "transaction_id": "pi_123",
        "currency": "USD",
    }
    assert type(wire["amount"]) is Decimal


def test_unstructure_full_event() -> None:
    event = make(
        amount="-49.99",
        currency="eur",
        payment_processor="stripe",
        event_type="REFUND",
        customer_subscription_id="sub_1",
        mrr_impact=Decimal("-49.99"),
        is_recurring=False,
        metadata={"plan": "pro", "addons": ["sso", {"seats": 3}]},
        occurred_at=datetime(2024, 5, 1, 12, 0, 0, 123456, tzinfo=timezone(timedelta(hours=2))),
    )
    wire = converter.unstructure(event)
    assert wire == {
        "visitor_fingerprint": "fp_abc",
        "session_id": "sess_123",
        "customer_id": "cus_123",
        "amount": Decimal("-49.99"),
        "transaction_id": "pi_123",
        "currency": "EUR",
        "payment_processor": "stripe",
        "event_type": "refund",
        "customer_subscription_id": "sub_1",
        "mrr_impact": Decimal("-49.99"),
        "is_recurring": False,
        "metadata": {
            "plan": "pro",
            "addons": ["sso", {"seats": 3}],
            "occurred_at": "2024-05-01T10:00:00.123456Z",
        },
    }
    assert type(wire["event_type"]) is str
    assert type(wire["amount"]) is Decimal
    assert type(wire["metadata"]) is dict
    assert type(wire["metadata"]["addons"]) is list
    assert type(wire["metadata"]["addons"][1]) is dict
    # The event's own metadata is not touched by adding occurred_at to the wire.
    assert event.metadata == {"plan": "pro", "addons": ("sso", {"seats": 3})}


def test_unstructure_occurred_at_without_metadata() -> None:
    wire = converter.unstructure(make(occurred_at="2024-05-01T10:00:00+00:00"))
    assert wire["metadata"] == {"occurred_at": "2024-05-01T10:00:00Z"}


def test_unstructure_keeps_falsy_values_that_are_not_none() -> None:
    wire = converter.unstructure(
        make(event_type="churn", amount=0, mrr_impact=0, is_recurring=False)
    )
    assert wire["amount"] == 0
    assert wire["mrr_impact"] == 0
    assert wire["is_recurring"] is False
    assert wire["event_type"] == "churn"
    assert None not in wire.values()


def test_unstructure_then_structure() -> None:
    event = make(
        event_type="upgrade",
        mrr_impact="10",
        metadata={"plan": "pro"},
        occurred_at="2024-05-01T10:00:00Z",
    )
    assert converter.structure(converter.unstructure(event), RevenueEvent) == event


def test_make_converter_returns_independent_converters() -> None:
    assert make_converter() is not make_converter()


# --- JSON -------------------------------------------------------------------------


def test_json_decimal_sum_is_exact() -> None:
    assert _json.dumps(Decimal("0.1") + Decimal("0.2")) == b"0.3"


def test_json_large_decimal_keeps_every_digit() -> None:
    assert _json.dumps(Decimal(10**20) + Decimal("0.01")) == b"100000000000000000000.01"


def test_json_wire_body() -> None:
    wire = converter.unstructure(make(amount="49.90", metadata={"seats": 3}))
    assert _json.dumps(wire) == (
        b'{"visitor_fingerprint":"fp_abc","session_id":"sess_123","customer_id":"cus_123",'
        b'"amount":49.90,"transaction_id":"pi_123","currency":"USD","metadata":{"seats":3}}'
    )


def test_json_positive_exponent_goes_out_as_plain_digits() -> None:
    assert _json.dumps(Decimal("1E+3")) == b"1000"
    assert _json.loads(b"1000") == Decimal("1E+3")


def test_json_non_ascii_escaped_and_round_trips() -> None:
    value = {"city": "Zürich", "note": "café ☕ 😀", "键": "值"}
    data = _json.dumps(value)
    assert data.isascii()
    assert b'"Z\\u00fcrich"' in data
    assert b"\\ud83d\\ude00" in data
    assert _json.loads(data) == value


def test_json_loads_reads_fractions_as_decimal() -> None:
    value = _json.loads(b'{"a": 0.3, "b": 3, "c": 1e2, "d": [49.90]}')
    assert value == {"a": Decimal("0.3"), "b": 3, "c": Decimal("1E+2"), "d": [Decimal("49.90")]}
    assert type(value["a"]) is Decimal
    assert type(value["b"]) is int
    assert str(value["d"][0]) == "49.90"


@pytest.mark.parametrize("value", [float("nan"), float("inf"), Decimal("NaN"), Decimal("-Inf")])
def test_json_dumps_refuses_non_finite(value: object) -> None:
    with pytest.raises(ValueError, match="cannot encode"):
        _json.dumps(value)


@pytest.mark.parametrize("data", [b"NaN", b"[Infinity]", b"-Infinity"])
def test_json_loads_refuses_non_finite(data: bytes) -> None:
    with pytest.raises(ValueError, match="not valid JSON"):
        _json.loads(data)


def test_json_dumps_refuses_other_types() -> None:
    with pytest.raises(TypeError, match="cannot encode set"):
        _json.dumps({"a": {1}})
    with pytest.raises(TypeError, match="keys must be str"):
        _json.dumps({1: "a"})


def test_float_metadata_comes_back_as_decimal() -> None:
    # Floats in metadata are written in their shortest repr and read back as the
    # Decimal of that repr: 0.1 comes back as Decimal("0.1"), which is not equal to
    # the float 0.1. That is why the round-trip property below uses Decimals.
    event = make(metadata={"ratio": 0.1, "half": 0.5})
    back = converter.structure(_json.loads(_json.dumps(converter.unstructure(event))), RevenueEvent)
    assert back.metadata is not None
    assert type(back.metadata["ratio"]) is Decimal
    assert back.metadata["ratio"] == Decimal("0.1")
    assert back.metadata["half"] == 0.5


# --- round-trip property ----------------------------------------------------------


def text_field() -> st.SearchStrategy[str]:
    return st.text(min_size=1, max_size=20).filter(lambda s: s.strip() != "")


@st.composite
def magnitudes(draw: st.DrawFn, *, allow_zero: bool) -> Decimal:
    """A non-negative Decimal with 0 to 6 places, up to 29 digits (no rounding)."""
    places = draw(st.integers(min_value=0, max_value=6))
    units = draw(st.integers(min_value=0 if allow_zero else 1, max_value=10**29 - 1))
    return Decimal(f"{units}E-{places}")


def signed(draw: st.DrawFn, magnitude: Decimal, sign: int) -> Decimal:
    if sign == 0:
        sign = draw(st.sampled_from([1, -1]))
    # copy_negate is exact (unary minus rounds to the context's 28 digits), and
    # zero stays unsigned: Decimal("-0") goes out as -0 and JSON reads back the int 0.
    return magnitude.copy_negate() if sign < 0 and magnitude else magnitude


AMOUNT_SIGN: dict[EventType | None, int] = {EventType.REFUND: -1}
MRR_SIGN: dict[EventType | None, int] = {
    EventType.SUBSCRIPTION: 1,
    EventType.UPGRADE: 1,
    EventType.DOWNGRADE: -1,
    EventType.CHURN: -1,
}

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**29), max_value=10**29)
    | st.decimals(min_value=-(10**29), max_value=10**29, places=6)
    | st.text(max_size=10)
)
json_values = st.recursive(
    json_scalars,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=20,
)


@st.composite
def valid_events(draw: st.DrawFn) -> RevenueEvent:
    kind: EventType | None = draw(st.none() | st.sampled_from(EventType))
    raw_kind: EventType | str | None = kind
    if kind is not None:
        raw_kind = draw(st.sampled_from([kind, kind.value, kind.value.upper()]))
    if kind is EventType.CHURN:
        amount = draw(magnitudes(allow_zero=True))
    else:
        amount = signed(draw, draw(magnitudes(allow_zero=False)), AMOUNT_SIGN.get(kind, 1))
    mrr_impact: Decimal | None = None
    if draw(st.booleans()):
        mrr_impact = signed(draw, draw(magnitudes(allow_zero=True)), MRR_SIGN.get(kind, 0))
    amount_forms: list[Decimal | str] = [amount, str(amount)]
    currency = draw(st.sampled_from(sorted(MINOR_UNITS)))
    metadata = draw(
        st.none()
        | st.dictionaries(
            st.text(max_size=10).filter(lambda k: k != "occurred_at"), json_values, max_size=5
        )
    )
    return RevenueEvent(
        visitor_fingerprint=draw(text_field()),
        session_id=draw(text_field()),
        customer_id=draw(text_field()),
        amount=draw(st.sampled_from(amount_forms)),
        transaction_id=draw(text_field()),
        currency=draw(st.sampled_from([currency, currency.lower()])),
        payment_processor=draw(st.none() | text_field()),
        event_type=raw_kind,
        customer_subscription_id=draw(st.none() | text_field()),
        mrr_impact=mrr_impact,
        is_recurring=draw(st.none() | st.booleans()),
        metadata=metadata,
        occurred_at=draw(st.none() | st.datetimes(timezones=st.just(UTC))),
    )


@settings(max_examples=examples(200), deadline=None)
@given(valid_events())
def test_wire_json_round_trip(event: RevenueEvent) -> None:
    data = _json.dumps(converter.unstructure(event))
    back = converter.structure(_json.loads(data), RevenueEvent)
    assert back == event
    assert str(back.amount) == str(event.amount)
    assert str(back.mrr_impact) == str(event.mrr_impact)
    assert back.occurred_at == event.occurred_at


@settings(max_examples=examples(200), deadline=None)
@given(valid_events())
def test_a_request_body_holds_what_the_exact_encoder_writes(event: RevenueEvent) -> None:
    # With orjson, the amounts are fragments made ahead, and metadata's big ints fall
    # back to the exact encoder: the digits must be the same either way (repr shows them).
    exact = {"type": "revenue", "data": converter.unstructure(event)}
    assert repr(_json.loads(encode(event))) == repr(_json.loads(_json.dumps(exact)))


def assert_plain(value: object) -> None:
    assert not isinstance(value, MappingProxyType | tuple)
    if isinstance(value, Mapping):
        for item in value.values():
            assert_plain(item)
    elif isinstance(value, list):
        for item in value:
            assert_plain(item)


@settings(max_examples=examples(200), deadline=None)
@given(valid_events())
def test_unstructure_gives_plain_wire_data(event: RevenueEvent) -> None:
    wire = converter.unstructure(event)
    assert None not in wire.values()
    assert wire["currency"] == event.currency
    assert type(wire["amount"]) is Decimal
    assert_plain(wire)
    if event.event_type is not None:
        assert type(wire["event_type"]) is str
    if event.occurred_at is not None:
        assert wire["metadata"]["occurred_at"].endswith("Z")
