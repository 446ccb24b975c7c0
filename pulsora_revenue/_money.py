"""Exact money: decimals from any accepted input, and ISO 4217 minor units.

Processors send integer minor units (cents, yen, fils); the number of decimals
depends on the currency. Dividing by 100 everywhere is the bug this module exists
to prevent.
"""

from __future__ import annotations

import math
import re
from decimal import Decimal

from ._errors import FieldError, ValidationError
from ._iso4217 import MINOR_UNITS

_INTEGER = re.compile(r"[+-]?[0-9]+")
_DECIMAL = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")

#: The largest power of ten, and the most decimals, an amount may have.
MAX_DIGITS = 30


def to_decimal(value: object) -> Decimal | None:
    """Return *value* as a finite ``Decimal``, or None if it is not a number we take.

    Accepted: int (not bool), Decimal, a decimal string of ASCII digits
    ("49.99", "-1.5e3"), and float, which goes through its shortest repr so that
    0.1 becomes Decimal("0.1"). Magnitudes from 10**30 and more than 30
    decimals are refused: no real amount needs them, and writing such a number
    out digit for digit could take gigabytes.
    """
    number = parse_decimal(value)
    return number if number is not None and is_sane(number) else None


def parse_decimal(value: object) -> Decimal | None:
    """Return *value* as a finite ``Decimal`` of any size, or None (see ``to_decimal``)."""
    number: Decimal | None = None
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        number = Decimal(value)
    elif isinstance(value, float):
        number = Decimal(repr(value)) if math.isfinite(value) else None
    elif isinstance(value, Decimal):
        number = value
    elif isinstance(value, str) and _DECIMAL.fullmatch(value.strip()):
        number = Decimal(value.strip())
    return number if number is not None and number.is_finite() else None


def is_sane(number: Decimal) -> bool:
    """Whether *number* is finite, below 10**30, and has at most 30 decimals."""
    if not number.is_finite():
        return False
    exponent = number.as_tuple().exponent
    assert isinstance(exponent, int)
    return exponent >= -MAX_DIGITS and (not number or number.adjusted() < MAX_DIGITS)


def normalise_currency(value: object) -> str:
    """Return *value* as an upper-case active ISO 4217 code, or raise ValueError."""
    code = value.strip() if isinstance(value, str) else None
    if code is None or len(code) != 3 or not code.isascii() or not code.isalpha():
        raise ValueError(f"currency must be a three-letter ISO 4217 code. Received: {value!r}.")
    if code.upper() not in MINOR_UNITS:
        raise ValueError(f"currency must be an active ISO 4217 code. Received: {value!r}.")
    return code.upper()


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
    number = parse_decimal(amount)
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
