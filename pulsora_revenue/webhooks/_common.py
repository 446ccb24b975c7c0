"""What both adapters share: money in minor units, monthly MRR, and attribution."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from fractions import Fraction
from typing import Any

from .._errors import ValidationError, received
from .._event import RevenueEvent
from .._fields import EventType
from .._money import currency_exponent
from ._errors import MissingAttributionError, WebhookPayloadError
from ._ledger import Movement
from ._payload import Node

#: ``async (customer_id) -> (visitor_fingerprint, session_id) | None``: where to
#: look up attribution when the payload has none (renewals, dashboard events).
Resolver = Callable[[str], Awaitable[tuple[str, str] | None]]
"""Where to look up attribution when a payload has none: ``async (customer_id) -> pair``.

It returns ``(visitor_fingerprint, session_id)`` from your own records (renewals and
dashboard events carry no checkout metadata), or None when it knows none.
"""

#: The metadata keys the browser's fingerprint and session id travel under.
DEFAULT_KEYS = ("visitor_fingerprint", "session_id")
"""The metadata keys the browser's visitor fingerprint and session id travel under."""

#: Months in one billing interval, exactly: MRR is a ``Fraction`` until it is
#: rounded, once (a Decimal 12/365 would turn an exact half into 0.4999...).
MONTHS_PER_INTERVAL: Mapping[str, Fraction] = {
    "day": Fraction(12, 365),
    "week": Fraction(12, 52),
    "month": Fraction(1),
    "year": Fraction(12),
}


def currency(node: Node, key: str) -> str:
    """The ISO 4217 code at *key*, upper-cased; unknown codes are a payload error."""
    code = node.text(key).upper()
    try:
        currency_exponent(code)
    except ValidationError:
        raise node.wrong(key, "an active ISO 4217 currency code", code) from None
    return code


def major(minor: Fraction | Decimal | int, exponent: int) -> Decimal:
    """Minor units to major units, rounded (half to even) to the currency's decimals."""
    sign, digits, _ = Decimal(round(Fraction(minor))).as_tuple()  # round(): half to even
    return Decimal((sign, digits, -exponent))


def monthly(
    minor_per_interval: Fraction | Decimal | int, interval: str, count: int, path: str
) -> Fraction:
    """The monthly equivalent, in minor units, of an amount billed every *count* *interval*s."""
    months = MONTHS_PER_INTERVAL.get(interval)
    if months is None or count < 1:
        raise WebhookPayloadError(
            f"{path} must be a billing interval of day, week, month or year with a positive "
            f"count. Received: {interval!r} x {count!r}.",
            field=path,
        )
    return Fraction(minor_per_interval) / (months * count)


def moment(value: object, path: str) -> datetime | None:
    """A Unix timestamp (Stripe) or an RFC 3339 string (Paddle) as an aware datetime."""
    if value is None:
        return None
    try:
        if isinstance(value, int) and not isinstance(value, bool):
            return datetime.fromtimestamp(value, UTC)
        if isinstance(value, str):
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
            return parsed if parsed.tzinfo else None
    except (ValueError, OverflowError, OSError):
        pass
    raise WebhookPayloadError(f"{path} must be a timestamp. Received: {value!r}.", field=path)


async def attribute(
    sources: Sequence[tuple[str, Mapping[str, Any]]],
    *,
    customer_id: str | None,
    resolver: Resolver | None,
    keys: tuple[str, str],
) -> tuple[str, str]:
    """Find (visitor_fingerprint, session_id): in *sources* in order, then the resolver."""
    for _, metadata in sources:
        fingerprint, session = metadata.get(keys[0]), metadata.get(keys[1])
        if isinstance(fingerprint, str) and fingerprint and isinstance(session, str) and session:
            return fingerprint, session
    found = None
    if resolver is not None and customer_id is not None:
        found = _checked(await resolver(customer_id), resolver, customer_id)
    if found is None:
        raise MissingAttributionError(
            looked_in=[name for name, _ in sources],
            keys=keys,
            customer_id=customer_id,
            resolver_asked=resolver is not None and customer_id is not None,
        )
    return found


def _checked(found: object, resolver: Resolver, customer_id: str) -> tuple[str, str] | None:
    """The resolver's answer, if it is None or two non-blank strings; else an error about it."""
    if found is None:
        return None
    asked = f"The resolver {_name(resolver)}, asked about customer {customer_id!r}, returned"
    if not isinstance(found, tuple | list) or len(found) != 2:
        raise TypeError(
            f"{asked} {received(found)}; it must return (visitor_fingerprint, session_id), "
            "a pair of strings, or None."
        )
    fingerprint, session = found
    if not isinstance(fingerprint, str) or not isinstance(session, str):
        raise TypeError(f"{asked} {received(found)}; both ids must be strings.")
    if not fingerprint.strip() or not session.strip():
        raise ValueError(f"{asked} blank ids {received(found)}; return None when it knows nothing.")
    return fingerprint, session


def _name(resolver: Resolver) -> str:
    return str(getattr(resolver, "__qualname__", None) or repr(resolver))


def build(path: str, **fields: Any) -> RevenueEvent:
    """A ``RevenueEvent``; what the payload held but the model refuses is a payload error."""
    try:
        return RevenueEvent(**fields)
    except ValidationError as exc:
        raise WebhookPayloadError(
            f"{path} does not make a valid revenue event: {exc}", field=path
        ) from None


def moved_kind(movement: Movement, otherwise: EventType) -> EventType:
    """The type of a payment that moved the MRR reported: new, up, down, or *otherwise*."""
    if movement.after > movement.before:
        return EventType.SUBSCRIPTION if not movement.before else EventType.UPGRADE
    if movement.after < movement.before:
        return EventType.DOWNGRADE
    return otherwise


def payment_kind(
    otherwise: EventType, mrr: Decimal | None, movement: Movement | None
) -> tuple[EventType, Decimal | None]:
    """A payment's event type and ``mrr_impact``: the ledger's *movement*, if it has one.

    Without a ledger (*movement* None) a new subscription's payment states its own
    *mrr*; every other payment moves none.
    """
    if movement is not None:
        return moved_kind(movement, otherwise), impact(movement)
    return otherwise, (mrr or None) if otherwise is EventType.SUBSCRIPTION else None


def impact(movement: Movement | None) -> Decimal | None:
    """The ``mrr_impact`` of an event: the change, or nothing when there is none."""
    return movement.change if movement is not None and movement.change else None


def net_of_tax(total: int, tax: int, *, include_tax: bool) -> int:
    """Revenue in minor units: *total* less the *tax* in it, unless *include_tax*."""
    return total if include_tax else total - tax
