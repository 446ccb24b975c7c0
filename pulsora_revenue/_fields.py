"""Field rules of a revenue event: each checker normalises one value or says why not.

The messages keep the wording of Pulsora's documented errors and add the value
that was received. ``RevenueEvent`` runs every checker and reports all problems
together.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from datetime import UTC, datetime
from decimal import Decimal
from types import MappingProxyType
from typing import TypeAlias

from ._errors import FieldError, received
from ._money import (
    MAX_DIGITS,
    NOT_A_NUMBER,
    normalise_currency,
    parse_decimal,
    why_not_a_number,
    within,
)

JSONValue: TypeAlias = (
    "str | int | float | bool | Decimal | Mapping[str, JSONValue]"
    " | tuple[JSONValue, ...] | list[JSONValue] | None"
)

#: How deep metadata may nest; deeper structures are almost certainly a mistake.
MAX_METADATA_DEPTH = 16

#: A metadata number may have this many digits before and after the point: any
#: float fits (1e-40 comes back from JSON as a Decimal, and must pass again),
#: and none is written out with more than a few hundred digits.
MAX_METADATA_DIGITS = 400

#: How many values metadata may hold in all: list items and mapping values, at
#: every level. Counted as it is copied: a huge one is not walked to its end.
MAX_METADATA_VALUES = 10_000

#: How much text an event may hold, in characters: its strings, metadata keys and
#: values included. An event with more cannot fit in a request of 1 MiB (the most
#: the emulator takes, and about what Pulsora answers 413 to).
MAX_EVENT_TEXT = 1024 * 1024


class EventType(enum.StrEnum):
    """The kinds of revenue event Pulsora knows."""

    PURCHASE = "purchase"
    SUBSCRIPTION = "subscription"
    RENEWAL = "renewal"
    UPGRADE = "upgrade"
    DOWNGRADE = "downgrade"
    CHURN = "churn"
    REFUND = "refund"


class Invalid(Exception):
    """Internal: one or more field problems found by a checker."""

    def __init__(self, *errors: FieldError) -> None:
        super().__init__(*errors)
        self.errors = errors


def lone_surrogate(value: str) -> bool:
    """Whether *value* holds a lone surrogate, which UTF-8 cannot carry.

    ``json.loads`` makes one of an escape such as ``"\\ud800"``; unchecked, it
    would fail only when the event is keyed or encoded, far from its input.
    """
    if value.isascii():  # the common case, and a flag Python keeps: no scan
        return False
    try:
        value.encode()
    except UnicodeEncodeError:
        return True
    return False


def surrogate_error(path: str, name: str, value: str) -> FieldError:
    return FieldError(
        path, f"{name} must be text without a lone surrogate. Received: {received(value)}."
    )


def sendable(name: str, value: str) -> str:
    """Return *value*, or raise ``Invalid`` if it holds a lone surrogate."""
    if lone_surrogate(value):
        raise Invalid(surrogate_error(name, name, value))
    return value


def required_str(name: str, value: object) -> str:
    """Return *value* stripped; it must be a non-blank string."""
    if isinstance(value, str) and value.strip():
        return sendable(name, value.strip())
    if value is None or isinstance(value, str):
        raise Invalid(FieldError(name, f"{name} is required. Received: {received(value)}."))
    raise Invalid(FieldError(name, f"{name} must be a string. Received: {received(value)}."))


def optional_str(name: str, value: object) -> str | None:
    """Return *value* stripped, or None when absent; blank strings are refused."""
    if value is None:
        return None
    if isinstance(value, str) and value.strip():
        return sendable(name, value.strip())
    raise Invalid(
        FieldError(name, f"{name} must be a non-blank string. Received: {received(value)}.")
    )


_EVENT_TYPES: Mapping[str, EventType] = {kind.value: kind for kind in EventType}


def event_type(value: object) -> EventType | None:
    """Return the ``EventType`` for *value*, case-insensitively, or None when absent."""
    if value is None or isinstance(value, EventType):
        return value
    if isinstance(value, str):
        kind = _EVENT_TYPES.get(value.strip().lower())  # cheaper than EventType(...)
        if kind is not None:
            return kind
    choices = ", ".join(EventType)
    raise Invalid(
        FieldError(
            "event_type",
            f"event_type must be one of: {choices}. Received: {received(value)}.",
        )
    )


def currency(value: object) -> str:
    """Return *value* as an upper-case active ISO 4217 code."""
    try:
        return normalise_currency(value)
    except ValueError as exc:
        raise Invalid(FieldError("currency", str(exc))) from None


def _short(value: object) -> bool:
    """Whether *value* is text of at most ``MAX_DIGITS`` characters, without an exponent.

    Such a number has at most that many digits in all: it is below ``10**MAX_DIGITS``
    and has at most ``MAX_DIGITS`` decimals, which ``within`` would check.
    """
    return type(value) is str and len(value) <= MAX_DIGITS and "e" not in value.lower()


def number(field: str, value: object, wanted: str) -> Decimal:
    """Return *value* as a Decimal within ``MAX_DIGITS``, or say what was wanted."""
    parsed = parse_decimal(value)
    if parsed is None:
        why = why_not_a_number(value)
        if wanted != "a number" or why != NOT_A_NUMBER:  # else it would say it twice
            wanted = f"{wanted}: {why}"
        raise Invalid(FieldError(field, f"{field} must be {wanted}. Received: {received(value)}."))
    if _short(value):  # as most are: its digits are within the limit (as_tuple is dear)
        return parsed
    if not within(parsed, MAX_DIGITS):
        raise Invalid(
            FieldError(
                field,
                f"{field} is out of range: at most {MAX_DIGITS} digits before and after the "
                f"decimal point. Received: {received(value)}.",
            )
        )
    return parsed


#: Looked up once: an enum member read from its class costs a descriptor call.
_REFUND, _CHURN = EventType.REFUND, EventType.CHURN


def amount(value: object, kind: EventType | None, signed: bool = True) -> Decimal:
    """Return the amount as a Decimal whose sign agrees with the event type.

    When *signed* is false (the event type itself is invalid) only the number
    is checked.
    """
    signless = kind is _REFUND or kind is _CHURN or not signed
    result = number("amount", value, "a number" if signless else "a positive number")
    if not signed:
        return result
    if kind is _REFUND and not result < 0:
        problem = "amount must be negative for a refund: refunds are sent as negative amounts."
    elif kind is _CHURN and result < 0:
        problem = "amount must be zero or positive for churn (normally 0)."
    elif not signless and not result > 0:
        problem = "amount must be a positive number."
    else:
        return result
    raise Invalid(FieldError("amount", f"{problem} Received: {received(value)}."))


_MRR_SIGN: Mapping[EventType, tuple[int, str]] = {
    EventType.SUBSCRIPTION: (1, "zero or positive for a subscription"),
    EventType.UPGRADE: (1, "zero or positive for an upgrade"),
    EventType.DOWNGRADE: (-1, "zero or negative for a downgrade"),
    EventType.CHURN: (-1, "zero or negative for churn"),
}


def mrr_impact(value: object, kind: EventType | None, signed: bool = True) -> Decimal | None:
    """Return the MRR change as a Decimal whose sign agrees with the event type."""
    if value is None:
        return None
    result = number("mrr_impact", value, "a number")
    sign, wording = _MRR_SIGN.get(kind, (0, "")) if signed and kind else (0, "")
    if result * sign < 0:
        raise Invalid(
            FieldError(
                "mrr_impact",
                f"mrr_impact must be {wording}. Received: {received(value)}.",
            )
        )
    return result


def is_recurring(value: object) -> bool | None:
    """Return *value* if it is a bool or None."""
    if value is None or isinstance(value, bool):
        return value
    raise Invalid(
        FieldError(
            "is_recurring",
            f"is_recurring must be a boolean. Received: {received(value)}.",
        )
    )


def occurred_at(value: object, path: str = "occurred_at") -> datetime | None:
    """Return a timezone-aware datetime in UTC; ISO 8601 strings are parsed."""
    if value is None:
        return None
    moment = value
    if isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value.strip())
        except ValueError:
            moment = None
    if not isinstance(moment, datetime):
        raise Invalid(
            FieldError(
                path,
                f"{path} must be a timezone-aware datetime or ISO 8601 string. "
                f"Received: {received(value)}.",
            )
        )
    try:
        offset = moment.utcoffset()
    except (ValueError, TypeError):  # a tzinfo whose offset is no timedelta, or over a day
        raise Invalid(
            FieldError(
                path,
                f"{path} has a time zone without a valid UTC offset. Received: {received(value)}.",
            )
        ) from None
    if offset is None:
        raise Invalid(
            FieldError(
                path,
                f"{path} must be timezone-aware; a naive datetime is ambiguous. "
                f"Received: {received(value)}.",
            )
        )
    try:
        return moment.astimezone(UTC)
    except (OverflowError, ValueError, TypeError):
        raise Invalid(
            FieldError(path, f"{path} is out of range in UTC. Received: {received(value)}.")
        ) from None


def text_room(fields: Mapping[str, str | None]) -> int:
    """How much text metadata may hold besides the strings of *fields*.

    Raises ``Invalid`` if the strings alone hold more than ``MAX_EVENT_TEXT``.
    """
    used = (
        len(fields["visitor_fingerprint"] or "")
        + len(fields["session_id"] or "")
        + len(fields["customer_id"] or "")
        + len(fields["transaction_id"] or "")
        + len(fields["payment_processor"] or "")
        + len(fields["customer_subscription_id"] or "")
    )
    if used > MAX_EVENT_TEXT:
        raise Invalid(FieldError("<event>", _TOO_MUCH_TEXT))
    return MAX_EVENT_TEXT - used


_TOO_MUCH_TEXT = (
    f"an event may hold at most {MAX_EVENT_TEXT} characters of text in all, "
    "metadata keys and values included."
)
_TOO_MANY_VALUES = (
    f"metadata may hold at most {MAX_METADATA_VALUES} values in all "
    "(list items and mapping values, at every level)."
)


def metadata(value: object, room: int | None = MAX_EVENT_TEXT) -> Mapping[str, JSONValue] | None:
    """Return a frozen copy of *value* if it is a mapping of JSON values.

    Its keys and values may hold *room* characters of text (None: any; the
    event is refused for its size already).
    """
    if value is None:
        return None
    if type(value) is not dict and not isinstance(value, Mapping):  # dict: no ABC check
        raise Invalid(
            FieldError(
                "metadata",
                f"metadata must be a mapping of JSON values. Received: {received(value)}.",
            )
        )
    walk = _Walk(room)
    frozen = _freeze(value, "metadata", 0, walk)
    if walk.errors:
        raise Invalid(*walk.errors)
    assert isinstance(frozen, Mapping)
    return frozen or None


class _Walk:
    """Copying metadata: the problems found, and what room is left."""

    __slots__ = ("errors", "over", "room", "values")

    def __init__(self, room: int | None) -> None:
        self.errors: list[FieldError] = []
        self.values = MAX_METADATA_VALUES  # counting down, as room does
        self.room = room
        self.over = False

    def take(self, text: int, values: int = 0) -> bool:
        """Take room for *values* more values and *text* characters; False if there is none."""
        self.values -= values
        if self.room is not None:
            self.room -= text
        if self.values >= 0 and (self.room is None or self.room >= 0):
            return True
        if not self.over:  # said once, at the top: the walk stops here
            self.over = True
            problem = _TOO_MANY_VALUES if self.values < 0 else _TOO_MUCH_TEXT
            self.errors.append(FieldError("metadata", problem))
        return False


def _freeze(value: object, where: Where, depth: int, walk: _Walk) -> JSONValue:
    """Copy a JSON value into immutable containers, noting every bad part."""
    if depth > MAX_METADATA_DEPTH:
        path = _path(where)
        walk.errors.append(
            FieldError(path, f"{path} nests deeper than {MAX_METADATA_DEPTH} levels.")
        )
        return None
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, str):
        if not walk.take(len(value)):
            return None
        if lone_surrogate(value):
            path = _path(where)
            walk.errors.append(surrogate_error(path, path, value))
            return None
        return value
    if isinstance(value, int | float | Decimal):
        number = parse_decimal(value)
        if number is not None and within(number, MAX_METADATA_DIGITS):
            return value
        path = _path(where)
        walk.errors.append(
            FieldError(
                path,
                f"{path} must be a finite number, with at most {MAX_METADATA_DIGITS} digits "
                f"before and after the decimal point. Received: {received(value)}.",
            )
        )
        return None
    if type(value) is dict or isinstance(value, Mapping):  # dict: no ABC check
        return _freeze_mapping(value, where, depth, walk)
    if isinstance(value, list | tuple):
        items: list[JSONValue] = []
        for i, item in enumerate(value):
            if not walk.take(0, 1):
                break
            items.append(_freeze(item, (where, i), depth + 1, walk))
        return tuple(items)
    path = _path(where)
    walk.errors.append(
        FieldError(
            path,
            f"{path} must be a JSON value (str, number, bool, None, list or mapping). "
            f"Received: {received(value)}.",
        )
    )
    return None


def _freeze_mapping(
    value: Mapping[object, object], where: Where, depth: int, walk: _Walk
) -> Mapping[str, JSONValue]:
    items: dict[str, JSONValue] = {}
    for key, item in value.items():
        if not isinstance(key, str):
            if not walk.take(0, 1):
                break
            path = _path(where)
            walk.errors.append(
                FieldError(path, f"{path} keys must be strings. Received: {received(key)}.")
            )
            continue
        if not walk.take(len(key), 1):
            break
        if lone_surrogate(key):
            path = _path(where)
            walk.errors.append(surrogate_error(path, f"{path} keys", key))
            continue
        items[key] = _freeze(item, (where, key), depth + 1, walk)
    return MappingProxyType(items)


#: Where a value is in the metadata: ``"metadata"``, or where its container is
#: and its key or index there; written out (``_path``) only for a message.
Where = str | tuple["Where", str | int]


def _path(where: Where) -> str:
    """The path of *where*: ``metadata.plan``, ``metadata['plan-name']``, ``metadata.a[0]``."""
    if isinstance(where, str):
        return where
    parent, key = where
    path = _path(parent)
    if isinstance(key, int):
        return f"{path}[{key}]"
    # str's own methods: a subclass's may do anything (received() would call its __repr__)
    return f"{path}.{key}" if str.isidentifier(key) else f"{path}[{received(str.__str__(key))}]"
