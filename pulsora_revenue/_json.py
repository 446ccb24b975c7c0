"""JSON with exact decimals: ``Decimal`` goes out as the number's own digits.

The standard library can only write a Decimal by way of float (or as a string),
which is the rounding this library promises never to do. The wire data is a
small, closed set of types, so a tiny encoder suffices; ``loads`` reads numbers
with a fraction back as ``Decimal``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping
from decimal import Decimal
from json.encoder import encode_basestring_ascii
from typing import Any

try:  # the speed extra: about six times faster, with the same digits for Decimals
    import orjson
except ImportError:  # pragma: no cover - tested without the extra in CI's lint job only
    HAVE_ORJSON = False
else:
    HAVE_ORJSON = True


def dumps(value: object) -> bytes:
    """Encode *value* as compact ASCII JSON, writing Decimals digit for digit."""
    parts: list[str] = []
    _encode(value, parts.append)
    return "".join(parts).encode("ascii")


def dumps_body(value: object) -> bytes:
    """Like ``dumps``, but with orjson when it is installed (non-ASCII text as UTF-8)."""
    if HAVE_ORJSON:
        try:
            return orjson.dumps(value, default=_fragment)
        except TypeError:  # an int beyond 64 bits, say: the exact encoder takes those
            pass
    return dumps(value)


def _fragment(value: object) -> orjson.Fragment:
    # Called by orjson for every Decimal of every body: kept to one frame, and
    # str() where it writes what format(value, "f") does (no exponent): a sixth of the cost.
    if type(value) is Decimal and value.is_finite():
        text = str(value)  # "1E+2", or "1e+2" in a context with capitals=0
        if "E" in text or "e" in text:
            text = format(value, "f")
        return orjson.Fragment(text)
    if isinstance(value, Decimal):  # a subclass, or not finite
        return orjson.Fragment(_decimal(value))
    raise TypeError(f"cannot encode {type(value).__name__} as JSON")


def loads(data: bytes | str) -> Any:
    """Decode JSON, reading numbers with a fraction or exponent as ``Decimal``."""
    return json.loads(data, parse_float=Decimal, parse_constant=_refuse_constant)


def _encode(value: object, emit: Callable[[str], object]) -> None:
    if isinstance(value, str):
        emit(encode_basestring_ascii(value))
    elif value is None:
        emit("null")
    elif value is True:
        emit("true")
    elif value is False:
        emit("false")
    elif isinstance(value, int):
        emit(int.__repr__(value))
    elif isinstance(value, Decimal):
        emit(_decimal(value))
    elif isinstance(value, float):
        emit(_float(value))
    elif isinstance(value, Mapping):
        _encode_object(value, emit)
    elif isinstance(value, list | tuple):
        _encode_array(value, emit)
    else:
        raise TypeError(f"cannot encode {type(value).__name__} as JSON")


def _encode_object(value: Mapping[object, object], emit: Callable[[str], object]) -> None:
    emit("{")
    for i, (key, item) in enumerate(value.items()):
        if not isinstance(key, str):
            raise TypeError(f"JSON object keys must be str, not {type(key).__name__}")
        emit("," if i else "")
        emit(encode_basestring_ascii(key))
        emit(":")
        _encode(item, emit)
    emit("}")


def _encode_array(value: list[object] | tuple[object, ...], emit: Callable[[str], object]) -> None:
    emit("[")
    for i, item in enumerate(value):
        emit("," if i else "")
        _encode(item, emit)
    emit("]")


def _decimal(value: Decimal) -> str:
    if not value.is_finite():
        raise ValueError(f"cannot encode {value} as JSON")
    return format(value, "f")


def _float(value: float) -> str:
    if not math.isfinite(value):
        raise ValueError(f"cannot encode {value} as JSON")
    return float.__repr__(value)


def _refuse_constant(name: str) -> None:
    raise ValueError(f"{name} is not valid JSON")
