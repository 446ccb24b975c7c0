"""Typed reads from a decoded webhook payload, naming the field on every failure.

Processors send nulls, strings where numbers are expected, and shapes that
change between API versions; a malformed payload must raise a
``WebhookPayloadError`` that names the field, never a ``KeyError`` or
``TypeError``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from .._errors import received
from ._errors import WebhookPayloadError

_MINOR_UNITS = re.compile(r"-?[0-9]{1,30}")


class Node:
    """A JSON object at a known path: ``Node(event).child("data").child("object")``."""

    __slots__ = ("path", "value")

    def __init__(self, value: object, path: str = "") -> None:
        if not isinstance(value, Mapping):
            where = path or "the payload"
            raise WebhookPayloadError(
                f"{where} must be a JSON object. Received: {received(value)}.", field=path
            )
        self.value: Mapping[str, Any] = value
        self.path = path

    def _at(self, key: str) -> str:
        return f"{self.path}.{key}" if self.path else key

    def get(self, key: str) -> object:
        """The raw value at *key*, or None when absent."""
        return self.value.get(key)

    def child(self, key: str) -> Node:
        """The object at *key*; it must be there."""
        return Node(self.value.get(key), self._at(key))

    def maybe_child(self, key: str) -> Node | None:
        """The object at *key*, or None when absent or null."""
        value = self.value.get(key)
        return None if value is None else Node(value, self._at(key))

    def items(self, key: str) -> list[Node]:
        """The objects of the list at *key* (absent or null: no items)."""
        value = self.value.get(key)
        if value is None:
            return []
        if not isinstance(value, list):
            raise self.wrong(key, "a list", value)
        return [Node(item, f"{self._at(key)}[{i}]") for i, item in enumerate(value)]

    def text(self, key: str) -> str:
        """The non-empty string at *key*."""
        value = self.value.get(key)
        if not isinstance(value, str) or not value:
            raise self.wrong(key, "a non-empty string", value)
        return value

    def maybe_text(self, key: str) -> str | None:
        """The string at *key*, or None when absent, null or empty."""
        value = self.value.get(key)
        if value is None or value == "":
            return None
        if not isinstance(value, str):
            raise self.wrong(key, "a string", value)
        return value

    def id(self, key: str) -> str | None:
        """An id at *key*: a string, or an expanded object's ``id``; None when absent."""
        value = self.value.get(key)
        if isinstance(value, Mapping):
            return Node(value, self._at(key)).text("id")
        return self.maybe_text(key)

    def integer(self, key: str) -> int:
        """The integer at *key* (not a bool)."""
        value = self.value.get(key)
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.wrong(key, "an integer", value)
        return value

    def maybe_integer(self, key: str) -> int | None:
        """The integer at *key*, or None when absent or null."""
        return None if self.value.get(key) is None else self.integer(key)

    def minor_units(self, key: str) -> int:
        """An amount in minor units: an integer, or a string of digits (as Paddle sends)."""
        value = self.value.get(key)
        if isinstance(value, str) and _MINOR_UNITS.fullmatch(value):
            return int(value)
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise self.wrong(key, "an amount in minor units", value)

    def decimal(self, key: str) -> Decimal:
        """A decimal number: an integer, or a decimal string (Stripe's ``*_decimal``)."""
        value = self.value.get(key)
        if isinstance(value, int) and not isinstance(value, bool):
            return Decimal(value)
        if isinstance(value, str) and re.fullmatch(r"-?[0-9]{1,30}(\.[0-9]{1,30})?", value):
            return Decimal(value)
        raise self.wrong(key, "a decimal number", value)

    def metadata(self, key: str) -> Mapping[str, Any]:
        """The metadata object at *key* (absent or null: empty)."""
        value = self.value.get(key)
        if value is None:
            return {}
        if not isinstance(value, Mapping):
            raise self.wrong(key, "an object", value)
        return value

    def wrong(self, key: str, wanted: str, value: object) -> WebhookPayloadError:
        """The error for a value at *key* that is not *wanted*."""
        path = self._at(key)
        return WebhookPayloadError(
            f"{path} must be {wanted}. Received: {received(value)}.", field=path
        )
