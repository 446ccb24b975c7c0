"""How the emulator's page writes amounts and moments: exactly, and compactly.

Amounts stay ``Decimal`` (never a float): they are written with thousands
separators and padded with zeros to their currency's decimals, never rounded.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from .._iso4217 import MINOR_UNITS


def amount(value: object, currency: str) -> str:
    """Write *value* as ``1,226,784.30``: every digit kept, at least *currency*'s decimals.

    A value that is no ``Decimal`` or int (absent) is written as "".
    """
    if isinstance(value, bool) or not isinstance(value, Decimal | int):
        return "" if value is None else str(value)
    number = Decimal(value)
    sign, digits, exponent = number.as_tuple()
    places = MINOR_UNITS.get(currency, 0)
    if isinstance(exponent, int) and exponent > -places:  # pad: built from digits, no context
        number = Decimal((sign, (*digits, *(0,) * (exponent + places)), -places))
    return f"{number:,f}"


def money(value: Decimal, currency: str) -> str:
    """Write *value* with its currency: ``1,226,784.30 EUR``."""
    return f"{amount(value, currency)} {currency}"


def moment(timestamp: object) -> str:
    """Write a Unix *timestamp* as ``2026-12-08 14:03:07`` (UTC); "" if it is none."""
    if isinstance(timestamp, bool) or not isinstance(timestamp, int | float):
        return ""
    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%d %H:%M:%S")
