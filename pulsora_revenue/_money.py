"""Exact money: decimals from any accepted input, and ISO 4217 minor units.

Processors send integer minor units (cents, yen, fils); the number of decimals
depends on the currency. Dividing by 100 everywhere is the bug this module exists
to prevent.
"""

from __future__ import annotations

import math
import re
from decimal import Decimal, InvalidOperation

from ._errors import FieldError, ValidationError, received
from ._iso4217 import MINOR_UNITS

_INTEGER = re.compile(r"[+-]?[0-9]+")
_DECIMAL = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")

#: An event's amounts may have at most this many digits before, and after, the point.
MAX_DIGITS = 30

#: The money helpers take bigger numbers, but not unbounded ones: converting a
#: number with millions of digits would take minutes.
MAX_HELPER_DIGITS = 1000

#: An int of more bits than this has more digits than any limit here allows
#: (2**3400 > 10**1000). It is not converted: that takes time quadratic in its length.
_MAX_INT_BITS = 3400


def parse_decimal(value: object) -> Decimal | None:
    """Return *value* as a finite ``Decimal``, or None if it is no number.

    An int too long for any limit comes back as a power of ten of its sign and
    about its size, beyond every limit, instead of being converted digit for digit.
    """
    number: Decimal | None = None
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        number = Decimal(value) if int.bit_length(value) <= _MAX_INT_BITS else _beyond(value)
    elif isinstance(value, float):  # float's own repr: a subclass's may say anything
        number = Decimal(float.__repr__(value)) if math.isfinite(value) else None
    elif isinstance(value, Decimal):
        number = value
    elif isinstance(value, str):
        # Decimal's own syntax, less what it takes beyond plain ASCII decimals: digits
        # of other scripts, underscores (1_000), and infinities and NaNs (not finite).
        text = value.strip()
        if not text.isascii() or "_" in text:
            return None
        try:
            number = Decimal(text)
        except InvalidOperation:  # an exponent beyond what Decimal can hold
            return None
    return number if number is not None and number.is_finite() else None


#: Signs a user may write into an amount: the currency belongs in ``currency``.
_CURRENCY_SIGNS = frozenset("$€£¥₹₩₽₺₫₪¢")


#: What ``why_not_a_number`` says when it knows nothing more specific.
NOT_A_NUMBER = "it is not a number"


def why_not_a_number(value: object) -> str:
    """Why ``parse_decimal`` refused *value*, in a user's terms (for a message)."""
    if value is None:
        return "it is missing"
    if isinstance(value, bool):
        return "true and false are not numbers"
    if isinstance(value, float | Decimal):
        return "it is not a finite number"
    if not isinstance(value, str):
        return f"a value of type {type(value).__name__} is not a number"
    text = value.strip()
    if not text:
        return "it is empty"
    if text.lower().lstrip("+-") in {"nan", "snan", "inf", "infinity"}:
        return "it is not a finite number"
    bare = text.strip("".join(_CURRENCY_SIGNS)).strip()
    if bare[:3].isalpha():
        bare = bare[3:].strip()
    elif bare[-3:].isalpha():
        bare = bare[:-3].strip()
    unseparated = bare.replace(",", "").replace("_", "").replace(" ", "")
    if parse_decimal(unseparated) is not None:
        if bare != text:
            return "write it without its currency, which goes in the currency field"
        return "write it without thousands separators, as in 1000.00"
    if "e" in text.lower() and text.isascii() and parse_decimal(text.lower().split("e")[0]):
        return "its exponent is beyond any amount"
    return NOT_A_NUMBER


def _because(why: str) -> str:
    """*why* as the end of "... must be a number", unless it only says it again."""
    return "" if why == NOT_A_NUMBER else f": {why}"


def _beyond(value: int) -> Decimal:
    """A number of *value*'s sign with more digits than any limit allows."""
    return Decimal((int(value < 0), (1,), _MAX_INT_BITS * 3 // 10))


def within(number: Decimal, digits: int) -> bool:
    """Whether *number* is below ``10**digits`` and has at most *digits* decimals."""
    exponent = number.as_tuple().exponent
    assert isinstance(exponent, int)  # finite
    return exponent >= -digits and (not number or number.adjusted() < digits)


def normalise_currency(value: object) -> str:
    """Return *value* as an upper-case active ISO 4217 code, or raise ValueError."""
    code = value.strip() if isinstance(value, str) else None
    if code is None or len(code) != 3 or not code.isascii() or not code.isalpha():
        raise ValueError(
            f"currency must be a three-letter ISO 4217 code. Received: {received(value)}."
        )
    if code.upper() not in MINOR_UNITS:
        raise ValueError(f"currency must be an active ISO 4217 code. Received: {received(value)}.")
    return code.upper()


def currency_exponent(currency: str) -> int:
    """Return how many decimals the minor unit of a currency has.

    ``currency_exponent("USD") == 2``, ``currency_exponent("jpy") == 0``,
    ``currency_exponent("KWD") == 3``: by ISO 4217, never assumed to be 2.

    Args:
        currency: an active ISO 4217 code, in any case.

    Returns:
        The number of decimals.

    Raises:
        ValidationError: when *currency* is not an active ISO 4217 code.
    """
    try:
        return MINOR_UNITS[normalise_currency(currency)]
    except ValueError as exc:
        raise ValidationError([FieldError("currency", str(exc))], subject="currency") from None


def from_minor_units(amount: int | str, currency: str) -> Decimal:
    """Convert integer minor units to a major-unit ``Decimal``, exactly.

    ``from_minor_units(9999, "usd") == Decimal("99.99")``, while
    ``from_minor_units(9999, "JPY") == Decimal("9999")``.

    Args:
        amount: the minor units (cents, yen, fils): an int, or a string of digits with
            an optional sign (as Paddle sends them); at most 1000 digits.
        currency: an active ISO 4217 code, in any case.

    Returns:
        The amount in major units, with as many decimals as the currency has.

    Raises:
        ValidationError: when *currency* is not an active ISO 4217 code, or *amount* is
            not such an integer.
    """
    exponent = currency_exponent(currency)
    minor = _as_integer(amount)
    sign, digits, _ = Decimal(minor).as_tuple()
    return Decimal((sign, digits, -exponent))


def to_minor_units(amount: Decimal | int | str | float, currency: str) -> int:
    """Convert a major-unit amount to integer minor units, refusing to round.

    ``to_minor_units(Decimal("99.99"), "USD") == 9999``, while
    ``to_minor_units("0.001", "USD")`` raises.

    Args:
        amount: the amount in major units: a ``Decimal``, an int, a decimal string, or a
            float (taken by its shortest repr); at most 1000 digits before and after
            the point.
        currency: an active ISO 4217 code, in any case.

    Returns:
        The amount in minor units.

    Raises:
        ValidationError: when *currency* is not an active ISO 4217 code, *amount* is not
            a finite number of at most 1000 digits, or it has more decimals than the
            currency (it would have to be rounded).
    """
    exponent = currency_exponent(currency)
    number = parse_decimal(amount)
    if number is None:
        raise ValidationError(
            [
                FieldError(
                    "amount",
                    f"amount must be a number{_because(why_not_a_number(amount))}. "
                    f"Received: {received(amount)}.",
                )
            ],
            subject="amount",
        )
    if not within(number, MAX_HELPER_DIGITS):
        raise ValidationError(
            [
                FieldError(
                    "amount",
                    f"amount must be a number of at most {MAX_HELPER_DIGITS} digits. "
                    f"Received: {received(amount)}.",
                )
            ],
            subject="amount",
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
                    f"({exponent}). Received: {received(amount)}.",
                )
            ],
            subject="amount",
        )
    return minor


def _as_integer(amount: object) -> int:
    if isinstance(amount, str) and _INTEGER.fullmatch(amount.strip()):
        if len(amount.strip().lstrip("+-")) <= MAX_HELPER_DIGITS:
            return int(amount)
    elif isinstance(amount, int) and not isinstance(amount, bool):
        number = parse_decimal(amount)  # not Decimal(amount): that is quadratic in its length
        if number is not None and within(number, MAX_HELPER_DIGITS):
            return amount
    raise ValidationError(
        [
            FieldError(
                "amount",
                f"amount in minor units must be an integer of at most {MAX_HELPER_DIGITS} "
                f"digits. Received: {received(amount)}.",
            )
        ],
        subject="amount",
    )
