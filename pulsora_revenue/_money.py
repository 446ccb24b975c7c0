"""Exact money: decimals from any accepted input, and ISO 4217 minor units.

Processors send integer minor units (cents, yen, fils); the number of decimals
depends on the currency. Dividing by 100 everywhere is the bug this module exists
to prevent.
"""

from __future__ import annotations

import math
import re
from decimal import Decimal, InvalidOperation

from ._errors import FieldError, ValidationError
from ._iso4217 import MINOR_UNITS

_INTEGER = re.compile(r"[+-]?[0-9]+")


def to_decimal(value: object) -> Decimal | None:
    """Return *value* as a finite ``Decimal``, or None if it is not a number we take.

    Accepted: int (not bool), Decimal, a decimal string ("49.99"), and float,
    which goes through its shortest repr so that 0.1 becomes Decimal("0.1").
    """
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return Decimal(value)
    if isinstance(value, float):
        return Decimal(repr(value)) if math.isfinite(value) else None
    if isinstance(value, Decimal):
        return value if value.is_finite() else None
    if isinstance(value, str):
        try:
            number = Decimal(value.strip())
        except InvalidOperation:
            return None
        return number if number.is_finite() else None
    return None


def normalise_currency(value: object) -> str:
    """Return *value* as an upper-case active ISO 4217 code, or raise ValueError."""
    code = value.strip().upper() if isinstance(value, str) else None
    if code is None or len(code) != 3 or not code.isascii() or not code.isalpha():
        raise ValueError(f"currency must be a three-letter ISO 4217 code. Received: {value!r}.")
    if code not in MINOR_UNITS:
        raise ValueError(f"currency must be an active ISO 4217 code. Received: {value!r}.")
    return code


def currency_exponent(currency: str) -> int:
    """Return the number of minor-unit decimals of *currency* ("JPY" -> 0)."""
    try:
        return MINOR_UNITS[normalise_currency(currency)]
    except ValueError as exc:
        raise ValidationError([FieldError("currency", str(exc))]) from None


def from_minor_units(amount: int | str, currency: str) -> Decimal:
    """Convert integer minor units to a major-unit ``Decimal``, exactly.

    ``from_minor_units(9999, "usd") == Decimal("99.99")``, while
    ``from_minor_units(9999, "JPY") == Decimal("9999")``. Strings of digits (as
    Paddle sends them) are accepted too.
    """
    exponent = currency_exponent(currency)
    minor = _as_integer(amount)
    sign, digits, _ = Decimal(minor).as_tuple()
    return Decimal((sign, digits, -exponent))


def to_minor_units(amount: Decimal | int | str | float, currency: str) -> int:
    """Convert a major-unit amount to integer minor units, refusing to round.

    ``to_minor_units(Decimal("99.99"), "USD") == 9999``; an amount with more
    decimals than the currency has (``"0.001"`` USD) raises ``ValidationError``.
    """
    exponent = currency_exponent(currency)
    number = to_decimal(amount)
    if number is None:
        raise ValidationError(
            [FieldError("amount", f"amount must be a number. Received: {amount!r}.")]
        )
    sign, digits, number_exponent = number.as_tuple()
    assert isinstance(number_exponent, int)  # finite, so never 'n', 'N' or 'F'
    scaled = Decimal((sign, digits, number_exponent + exponent))
    minor = int(scaled)
    if scaled != minor:
        raise ValidationError(
            [
                FieldError(
                    "amount",
                    f"amount has more decimals than {currency.upper()} allows "
                    f"({exponent}). Received: {amount!r}.",
                )
            ]
        )
    return minor


def _as_integer(amount: object) -> int:
    if isinstance(amount, int) and not isinstance(amount, bool):
        return amount
    if isinstance(amount, str) and _INTEGER.fullmatch(amount.strip()):
        return int(amount)
    raise ValidationError(
        [
            FieldError(
                "amount",
                f"amount in minor units must be an integer. Received: {amount!r}.",
            )
        ]
    )
