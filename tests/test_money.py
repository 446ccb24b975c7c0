"""ISO 4217 minor units: currency_exponent, from_minor_units, to_minor_units."""

from __future__ import annotations

from decimal import Decimal
from fractions import Fraction
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pulsora_revenue import (
    ValidationError,
    currency_exponent,
    from_minor_units,
    to_minor_units,
)
from pulsora_revenue._iso4217 import MINOR_UNITS

from .conftest import examples

EXPONENTS = [
    ("JPY", 0),
    ("KRW", 0),
    ("USD", 2),
    ("EUR", 2),
    ("KWD", 3),
    ("BHD", 3),
    ("JOD", 3),
    ("OMR", 3),
    ("TND", 3),
    ("CLF", 4),
]


def raises_currency_error(exc: ValidationError) -> None:
    (error,) = exc.errors
    assert error.path == "currency"
    assert error.message.startswith("currency must be ")


# --- currency_exponent ------------------------------------------------------------


@pytest.mark.parametrize(("code", "exponent"), EXPONENTS)
def test_currency_exponent(code: str, exponent: int) -> None:
    assert currency_exponent(code) == exponent


@pytest.mark.parametrize(("code", "exponent"), EXPONENTS)
def test_currency_exponent_lower_case(code: str, exponent: int) -> None:
    assert currency_exponent(code.lower()) == exponent
    assert currency_exponent(code.capitalize()) == exponent


@pytest.mark.parametrize(
    "code", ["XYZ", "US", "USDX", "", "ÜSD", "U$D", "HRK", "XAU", "XXX", 123, None]
)
def test_currency_exponent_unknown_code(code: Any) -> None:
    with pytest.raises(ValidationError) as info:
        currency_exponent(code)
    raises_currency_error(info.value)
    assert f"Received: {code!r}." in str(info.value)


@pytest.mark.parametrize("code", ["u\u017fd", "\u0131nr"])
def test_currency_exponent_non_ascii_that_upper_cases_to_ascii(code: str) -> None:
    # "ſ".upper() == "S" and "ı".upper() == "I": "uſd" is not a currency code.
    with pytest.raises(ValidationError):
        currency_exponent(code)


def test_minor_units_table_values() -> None:
    assert set(MINOR_UNITS.values()) <= {0, 2, 3, 4}
    assert all(len(code) == 3 and code.isascii() and code.isupper() for code in MINOR_UNITS)


# --- from_minor_units -------------------------------------------------------------


def test_from_minor_units_usd() -> None:
    amount = from_minor_units(9999, "usd")
    assert amount == Decimal("99.99")
    assert str(amount) == "99.99"
    assert type(amount) is Decimal


def test_from_minor_units_jpy() -> None:
    amount = from_minor_units(9999, "JPY")
    assert amount == Decimal("9999")
    assert str(amount) == "9999"


@pytest.mark.parametrize(
    ("minor", "currency", "expected"),
    [
        (9999, "KWD", "9.999"),
        (9999, "BHD", "9.999"),
        (9999, "CLF", "0.9999"),
        (5, "USD", "0.05"),
        (0, "USD", "0.00"),
        (0, "JPY", "0"),
        (-9999, "USD", "-99.99"),
        (-1, "KWD", "-0.001"),
        (10**30 + 1, "EUR", "10000000000000000000000000000.01"),
    ],
)
def test_from_minor_units_keeps_the_currency_decimals(
    minor: int, currency: str, expected: str
) -> None:
    assert str(from_minor_units(minor, currency)) == expected


@pytest.mark.parametrize(
    ("minor", "currency", "expected"),
    [
        ("1000", "EUR", "10.00"),
        (" 1000 ", "EUR", "10.00"),
        ("-250", "usd", "-2.50"),
        ("+250", "USD", "2.50"),
        ("1000", "JPY", "1000"),
    ],
)
def test_from_minor_units_digit_strings(minor: str, currency: str, expected: str) -> None:
    # Paddle sends amounts in minor units as strings.
    amount = from_minor_units(minor, currency)
    assert amount == Decimal(expected)
    assert str(amount) == expected


@pytest.mark.parametrize(
    "minor",
    [99.99, 100.0, True, False, "10.00", "1e3", "", "abc", "1 000", "١٢٣", None, Decimal("100")],
)
def test_from_minor_units_rejects_non_integers(minor: Any) -> None:
    with pytest.raises(ValidationError) as info:
        from_minor_units(minor, "USD")
    (error,) = info.value.errors
    assert error.path == "amount"
    assert error.message.startswith("amount in minor units must be an integer")
    assert error.message.endswith(f"Received: {minor!r}.")


def test_from_minor_units_unknown_currency() -> None:
    with pytest.raises(ValidationError) as info:
        from_minor_units(100, "XYZ")
    raises_currency_error(info.value)


# --- to_minor_units ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("amount", "currency", "expected"),
    [
        (Decimal("99.99"), "USD", 9999),
        (Decimal("99.990"), "USD", 9999),
        (Decimal("99.9"), "usd", 9990),
        ("49.99", "EUR", 4999),
        (5, "USD", 500),
        (0.1, "USD", 10),
        (Decimal("-12.34"), "USD", -1234),
        (Decimal("9999"), "JPY", 9999),
        (Decimal("9999.000"), "JPY", 9999),
        (Decimal("1.234"), "KWD", 1234),
        (Decimal("0.0001"), "CLF", 1),
        (Decimal("1E+2"), "USD", 10000),
        (Decimal("0E-10"), "USD", 0),
        (
            Decimal("123456789012345678901234567890.12"),
            "USD",
            12345678901234567890123456789012,
        ),
    ],
)
def test_to_minor_units(amount: Any, currency: str, expected: int) -> None:
    minor = to_minor_units(amount, currency)
    assert minor == expected
    assert type(minor) is int


@pytest.mark.parametrize(
    ("amount", "currency"),
    [
        (Decimal("0.001"), "USD"),
        ("49.999", "EUR"),
        (Decimal("0.5"), "JPY"),
        (Decimal("1.2345"), "KWD"),
        (Decimal("0.00001"), "CLF"),
        (Decimal("123456789012345678901234567890.121"), "USD"),
    ],
)
def test_to_minor_units_refuses_to_round(amount: Any, currency: str) -> None:
    with pytest.raises(ValidationError) as info:
        to_minor_units(amount, currency)
    (error,) = info.value.errors
    assert error.path == "amount"
    assert f"more decimals than {currency.upper()} allows" in error.message
    assert str(info.value).startswith("Invalid amount (1 problem):")  # no event is involved


@pytest.mark.parametrize(
    "amount", [True, None, "abc", float("nan"), Decimal("Infinity"), [1], Decimal("sNaN")]
)
def test_to_minor_units_rejects_non_numbers(amount: Any) -> None:
    with pytest.raises(ValidationError) as info:
        to_minor_units(amount, "USD")
    (error,) = info.value.errors
    assert error.path == "amount"
    assert error.message.startswith("amount must be a number")
    assert error.message.endswith(f"Received: {amount!r}.")
    assert str(info.value).startswith("Invalid amount (1 problem):")


def test_to_minor_units_unknown_currency() -> None:
    with pytest.raises(ValidationError) as info:
        to_minor_units(Decimal("1.00"), "usdx")
    raises_currency_error(info.value)


# --- properties -------------------------------------------------------------------

currencies = st.sampled_from(sorted(MINOR_UNITS)).flatmap(
    lambda code: st.sampled_from([code, code.lower()])
)
minor_amounts = (
    st.integers()
    | st.integers(min_value=-(10**40), max_value=10**40)
    | st.integers(min_value=10**28, max_value=10**200).flatmap(lambda n: st.sampled_from([n, -n]))
)


@settings(max_examples=examples(200), deadline=None)
@given(minor_amounts, currencies)
def test_minor_units_round_trip(minor: int, currency: str) -> None:
    amount = from_minor_units(minor, currency)
    exponent = currency_exponent(currency)
    assert Fraction(amount) == Fraction(minor, 10**exponent)
    assert amount.as_tuple().exponent == -exponent
    assert to_minor_units(amount, currency) == minor
    assert from_minor_units(str(minor), currency) == amount


@st.composite
def amounts_in_currency(draw: st.DrawFn) -> tuple[Decimal, str]:
    """A currency and an amount with at most as many decimals as it has."""
    currency = draw(currencies)
    places = draw(st.integers(min_value=0, max_value=currency_exponent(currency)))
    units = draw(minor_amounts)
    return Decimal(f"{units}E-{places}"), currency


@settings(max_examples=examples(200), deadline=None)
@given(amounts_in_currency())
def test_major_units_round_trip(case: tuple[Decimal, str]) -> None:
    amount, currency = case
    minor = to_minor_units(amount, currency)
    assert Fraction(minor, 10 ** currency_exponent(currency)) == Fraction(amount)
    assert from_minor_units(minor, currency) == amount


@settings(max_examples=examples(200), deadline=None)
@given(
    currencies,
    st.integers(min_value=1, max_value=4),
    minor_amounts.filter(lambda n: n % 10 != 0),
)
def test_too_many_decimals_always_refused(currency: str, extra: int, units: int) -> None:
    amount = Decimal(f"{units}E-{currency_exponent(currency) + extra}")
    with pytest.raises(ValidationError):
        to_minor_units(amount, currency)


@pytest.mark.parametrize("amount", ["1e7000000", "9" * 1001, 10**1001], ids=["exp", "str", "int"])
def test_helpers_refuse_numbers_too_long_to_convert(amount: object) -> None:
    with pytest.raises(ValidationError, match="at most 1000 digits"):
        to_minor_units(amount, "USD")  # type: ignore[arg-type]
    if not (isinstance(amount, str) and "e" in amount):
        with pytest.raises(ValidationError, match="at most 1000 digits"):
            from_minor_units(amount, "USD")  # type: ignore[arg-type]
