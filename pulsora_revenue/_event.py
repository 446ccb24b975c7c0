"""The revenue event: one immutable, validated value per payment."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from datetime import datetime
from decimal import Decimal
from typing import Any, TypeVar

import attrs

from . import _fields
from ._errors import FieldError, ValidationError
from ._fields import EventType, Invalid, JSONValue

_T = TypeVar("_T")

#: The metadata key that carries ``occurred_at`` on the wire.
OCCURRED_AT_KEY = "occurred_at"


@attrs.frozen(kw_only=True, init=False, repr=False)
class RevenueEvent:
    """A revenue event, validated and normalised on construction.

    Every rule is checked at once: an invalid event raises one
    ``ValidationError`` that lists each bad field. Strings are stripped,
    ``currency`` is upper-cased, ``amount`` and ``mrr_impact`` become ``Decimal``,
    ``event_type`` becomes an ``EventType``, ``occurred_at`` is converted to UTC,
    and ``metadata`` is copied into immutable containers. Every string must be text
    that UTF-8 can carry (no lone surrogate), and an event holds at most 1,048,576
    characters of text, metadata keys and values included.

    Args:
        visitor_fingerprint: the browser's visitor fingerprint; a non-blank string.
        session_id: the browser's session id; a non-blank string.
        customer_id: your id for the customer; a non-blank string.
        amount: an int, ``Decimal``, decimal string or float (by its shortest repr), of
            at most 30 digits before and after the point. Positive, except for a
            ``refund`` (negative) and a ``churn`` (zero or positive).
        transaction_id: the payment's id; with *event_type*, the de-duplication key.
        currency: an active ISO 4217 code, in any case; ``"USD"`` by default.
        payment_processor: who took the payment (``"stripe"``); a non-blank string.
        event_type: an ``EventType`` or its value, in any case.
        customer_subscription_id: the subscription's id; a non-blank string.
        mrr_impact: the change in monthly recurring revenue; a number, zero or positive
            for a ``subscription`` or ``upgrade``, zero or negative for a ``downgrade``
            or ``churn``.
        is_recurring: whether the payment recurs; a bool.
        metadata: a mapping of str keys to JSON values (str, int, finite float, bool,
            None, ``Decimal``, lists, mappings); at most 16 levels deep and 10,000 values,
            numbers of at most 400 digits before and after the point.
        occurred_at: when the payment happened: a timezone-aware ``datetime`` or an ISO
            8601 string. It travels as ``metadata["occurred_at"]`` (ISO 8601, UTC),
            because Pulsora records revenue when it is received.

    Raises:
        ValidationError: when any field breaks its rule; it lists every problem, each
            with its path (``metadata.addons[2]``).
    """

    visitor_fingerprint: str
    session_id: str
    customer_id: str
    amount: Decimal
    transaction_id: str
    currency: str = "USD"
    payment_processor: str | None = None
    event_type: EventType | None = None
    customer_subscription_id: str | None = None
    mrr_impact: Decimal | None = None
    is_recurring: bool | None = None
    metadata: Mapping[str, JSONValue] | None = attrs.field(default=None, hash=False)
    occurred_at: datetime | None = None

    def __init__(
        self,
        *,
        visitor_fingerprint: str,
        session_id: str,
        customer_id: str,
        amount: Decimal | int | float | str,
        transaction_id: str,
        currency: str = "USD",
        payment_processor: str | None = None,
        event_type: EventType | str | None = None,
        customer_subscription_id: str | None = None,
        mrr_impact: Decimal | int | float | str | None = None,
        is_recurring: bool | None = None,
        metadata: Mapping[str, Any] | None = None,
        occurred_at: datetime | str | None = None,
    ) -> None:
        errors: list[FieldError] = []

        def check(rule: Callable[..., _T], *args: object) -> _T | None:
            try:
                return rule(*args)
            except Invalid as exc:
                errors.extend(exc.errors)
                return None

        raw_metadata, raw_occurred_at = _lift_occurred_at(metadata, occurred_at, errors)
        kind = check(_fields.event_type, event_type)
        kind_known = kind is not None or event_type is None
        normalised: dict[str, Any] = {
            "visitor_fingerprint": check(
                _fields.required_str, "visitor_fingerprint", visitor_fingerprint
            ),
            "session_id": check(_fields.required_str, "session_id", session_id),
            "customer_id": check(_fields.required_str, "customer_id", customer_id),
            "amount": check(_fields.amount, amount, kind, kind_known),
            "transaction_id": check(_fields.required_str, "transaction_id", transaction_id),
            "currency": check(_fields.currency, currency),
            "payment_processor": check(
                _fields.optional_str, "payment_processor", payment_processor
            ),
            "event_type": kind,
            "customer_subscription_id": check(
                _fields.optional_str,
                "customer_subscription_id",
                customer_subscription_id,
            ),
            "mrr_impact": check(_fields.mrr_impact, mrr_impact, kind, kind_known),
            "is_recurring": check(_fields.is_recurring, is_recurring),
        }
        room = check(_fields.text_room, normalised)  # what the strings leave for metadata
        normalised["metadata"] = check(_fields.metadata, raw_metadata, room)
        normalised["occurred_at"] = check(_fields.occurred_at, raw_occurred_at)
        if errors:
            raise ValidationError(errors)
        self.__attrs_init__(**normalised)

    def __repr__(self) -> str:
        # A traceback rendered with its locals (Sentry, rich, capture_locals) shows
        # the `self` of a failed __init__, which has no fields: say so, not raise.
        if not hasattr(self, "occurred_at"):  # the last field set
            return f"<{type(self).__name__}, invalid: not built>"
        shown = ", ".join(f"{a.name}={getattr(self, a.name)!r}" for a in attrs.fields(type(self)))
        return f"{type(self).__name__}({shown})"

    @property
    def dedup_key(self) -> tuple[str, str]:
        """The de-duplication key: ``(transaction_id, event_type)``."""
        return (self.transaction_id, str(self.event_type) if self.event_type else "")


def idempotency_key(event: RevenueEvent) -> str:
    """The same ``Idempotency-Key`` for every attempt of one (transaction_id, event_type)."""
    return key_digest(event).hex()


def key_digest(event: RevenueEvent) -> bytes:
    """The SHA-256 digest that ``idempotency_key`` writes in hexadecimal."""
    transaction_id, event_type = event.dedup_key
    return hashlib.sha256(
        f"pulsora-revenue/1\x1f{transaction_id}\x1f{event_type}".encode()
    ).digest()


def _lift_occurred_at(
    metadata: object, occurred_at: object, errors: list[FieldError]
) -> tuple[object, object]:
    """Move ``metadata["occurred_at"]`` (the wire form) to ``occurred_at``."""
    # None and a dict first: no ABC check, in the common cases.
    if metadata is None or (type(metadata) is not dict and not isinstance(metadata, Mapping)):
        return metadata, occurred_at
    if OCCURRED_AT_KEY not in metadata:
        return metadata, occurred_at
    if occurred_at is not None:
        errors.append(
            FieldError(
                f"metadata.{OCCURRED_AT_KEY}",
                "metadata.occurred_at is where occurred_at travels; "
                "set one of occurred_at and metadata['occurred_at'], not both.",
            )
        )
        return metadata, occurred_at
    rest = {k: v for k, v in metadata.items() if k != OCCURRED_AT_KEY}
    try:
        lifted = _fields.occurred_at(metadata[OCCURRED_AT_KEY], f"metadata.{OCCURRED_AT_KEY}")
    except Invalid as exc:
        errors.extend(exc.errors)
        lifted = None
    return rest, lifted
