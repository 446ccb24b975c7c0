"""The library's own cattrs converter: mappings in, wire data out.

``cattrs.global_converter`` belongs to the user's application; we never touch it.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from types import MappingProxyType
from typing import Any

import attrs
import cattrs
from cattrs.fns import identity
from cattrs.gen import make_dict_unstructure_fn, override

from . import _json
from ._errors import FieldError, ValidationError, received
from ._event import OCCURRED_AT_KEY, RevenueEvent
from ._fields import EventType

_FIELD_NAMES = frozenset(a.name for a in attrs.fields(RevenueEvent))
_REQUIRED = tuple(a.name for a in attrs.fields(RevenueEvent) if a.default is attrs.NOTHING)
_REQUIRED_NAMES = frozenset(_REQUIRED)


def make_converter() -> cattrs.Converter:
    """Return a new converter configured for revenue events."""
    converter = cattrs.Converter()
    configure_converter(converter)
    return converter


def configure_converter(converter: cattrs.Converter) -> None:
    """Register our hooks for ``RevenueEvent`` on *converter*."""
    # Identity hooks are inlined by cattrs' generated code: no call per field.
    for passthrough in (Decimal, Decimal | None, str | None, bool | None):
        converter.register_unstructure_hook(passthrough, identity)
    converter.register_unstructure_hook(EventType, str)
    converter.register_unstructure_hook(Mapping, _plain)
    data = make_dict_unstructure_fn(
        RevenueEvent,
        converter,
        _cattrs_omit_if_default=True,
        currency=override(omit_if_default=False),
        event_type=override(unstruct_hook=str),  # only called when set: not None
        metadata=override(unstruct_hook=_plain),  # likewise
        mrr_impact=override(omit=True),  # added below
        occurred_at=override(omit=True),
    )

    def unstructure(event: RevenueEvent) -> dict[str, Any]:
        wire = data(event)
        # Not cattrs' `!= None`: Decimal answers that with an isinstance check against
        # numbers.Rational, dear for every event (benchmarks/README.md).
        if event.mrr_impact is not None:
            wire["mrr_impact"] = event.mrr_impact
        if event.occurred_at is not None:
            moment = event.occurred_at.isoformat().replace("+00:00", "Z")
            wire["metadata"] = {**wire.get("metadata", {}), OCCURRED_AT_KEY: moment}
        return wire

    converter.register_unstructure_hook(RevenueEvent, unstructure)
    converter.register_structure_hook(RevenueEvent, _structure_event)


def _structure_event(value: object, _: type[RevenueEvent]) -> RevenueEvent:
    """Build an event from a mapping, reporting unknown and missing keys too."""
    if isinstance(value, RevenueEvent):
        return value
    if not isinstance(value, Mapping):
        raise ValidationError(
            [
                FieldError(
                    "<event>",
                    f"an event must be a mapping. Received: {received(value)}.",
                )
            ]
        )
    keys = value.keys()
    if keys >= _REQUIRED_NAMES and keys <= _FIELD_NAMES:  # the common case
        return RevenueEvent(**value)  # (set operations on the keys: no loop in Python)
    fields: dict[str, Any] = dict.fromkeys(_REQUIRED)
    fields.update((k, v) for k, v in value.items() if k in _FIELD_NAMES)
    unknown = [k for k in value if k not in _FIELD_NAMES]
    errors = [FieldError("<event>", _unknown_fields(unknown))] if unknown else []
    try:
        event = RevenueEvent(**fields)
    except ValidationError as exc:
        errors += exc.errors
    if errors:
        raise ValidationError(errors)
    return event


#: The most unknown keys a message names.
_UNKNOWN_NAMED = 20


def _unknown_fields(keys: list[object]) -> str:
    named = ", ".join(sorted(received(k) for k in keys[:_UNKNOWN_NAMED]))
    more = f" and {len(keys) - _UNKNOWN_NAMED} more" if len(keys) > _UNKNOWN_NAMED else ""
    return f"unknown field(s): {named}{more}."


#: Metadata values that are already plain (most of them): no call needed.
_SCALARS = frozenset({str, int, float, bool, type(None), Decimal})


def _plain(value: Mapping[str, Any]) -> dict[str, Any]:
    """Unfreeze metadata into plain dicts and lists for the encoder."""
    # A validated event's mappings are MappingProxyTypes, whose copy() is the dict's
    # own: a third cheaper than a comprehension over flat metadata.
    plain = value.copy() if isinstance(value, MappingProxyType) else dict(value)
    for key, item in plain.items():
        if type(item) not in _SCALARS:
            plain[key] = _plain_value(item)  # replaces a value: the dict keeps its size
    return plain


def _plain_value(value: object) -> object:
    if isinstance(value, Mapping):
        return _plain(value)
    if isinstance(value, tuple):
        return [_plain_value(v) for v in value]
    return value


CONVERTER = make_converter()


def to_event(event: object, fields: Mapping[str, Any]) -> RevenueEvent:
    """Return a validated event from an event, a mapping, or keyword fields."""
    if event is not None and fields:
        raise TypeError("pass either an event (or mapping) or keyword fields, not both")
    if isinstance(event, RevenueEvent):
        return event
    return CONVERTER.structure(fields if event is None else event, RevenueEvent)


#: The hook ``CONVERTER.unstructure`` dispatches to for an event, looked up once.
_unstructure_event = CONVERTER.get_unstructure_hook(RevenueEvent)


def encode(event: RevenueEvent) -> bytes:
    """Return the request body for *event*: ``{"type": "revenue", "data": ...}``."""
    return _json.dumps_body({"type": "revenue", "data": _unstructure_event(event)})
