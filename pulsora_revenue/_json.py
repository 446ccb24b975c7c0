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
from json.encoder import encode_basestring, encode_basestring_ascii
from typing import Any

from ._errors import received

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


#: How deep ``dumps_lenient`` writes structures out: any event fits in far fewer
#: levels, and a message shows fewer of what is deeper (so it reads the same again).
LENIENT_DEPTH = 100

#: Decimals whose plain digits would be longer than this are written with an exponent.
_PLAIN_DIGITS = 1000


def dumps_lenient(value: object, *, max_depth: int = LENIENT_DEPTH) -> str:
    """Encode *value* as JSON text, whatever it holds; for a record of bad input.

    Never raises, and takes time and space in proportion to *value*: what JSON
    cannot hold (a set, a NaN, a key that is no string, a mapping that is no
    dict), what is nested more than *max_depth* levels deep, and an int of more
    than 600 digits, is written as a string that describes it (cut short).
    Decimals keep their digits (with an exponent when the plain form would be
    huge); text that UTF-8 can carry is kept as it is, other text escaped.
    """
    parts: list[str] = []
    _lenient(value, parts.append, max_depth)
    return "".join(parts)


def _lenient(value: object, emit: Callable[[str], object], room: int) -> None:
    if isinstance(value, str):
        emit(_text(value))
    elif value is None or value is True or value is False:
        emit("null" if value is None else "true" if value else "false")
    elif isinstance(value, int) and int.bit_length(value) <= _MAX_INT_BITS:
        emit(int.__repr__(value))
    elif isinstance(value, float) and math.isfinite(value):
        emit(float.__repr__(value))
    elif isinstance(value, Decimal) and value.is_finite():
        emit(_exact(value))
    elif room and isinstance(value, dict | list | tuple):
        _lenient_container(value, emit, room - 1)
    else:
        emit(_text(received(value)))


def _lenient_container(
    value: dict[object, object] | list[object] | tuple[object, ...],
    emit: Callable[[str], object],
    room: int,
) -> None:
    mapping = isinstance(value, dict)
    entries = value.items() if isinstance(value, dict) else ((None, v) for v in value)
    emit("{" if mapping else "[")
    for i, (key, item) in enumerate(entries):
        emit("," if i else "")
        if mapping:
            emit(_text(key if isinstance(key, str) else received(key)))
            emit(":")
        _lenient(item, emit, room)
    emit("}" if mapping else "]")


#: Ints up to this many bits (602 digits) always have a repr: Python's limit on
#: converting ints to text is 4,300 digits by default, and never below 640.
_MAX_INT_BITS = 2000


def _text(value: str) -> str:
    """A JSON string: as it is if UTF-8 can carry it, else with escapes."""
    if value.isascii():
        return encode_basestring_ascii(value)
    try:
        value.encode()
    except UnicodeEncodeError:  # a lone surrogate
        return encode_basestring_ascii(value)
    return encode_basestring(value)


def _exact(value: Decimal) -> str:
    """A finite Decimal's exact digits: plain, unless that would be huge."""
    exponent = value.as_tuple().exponent
    assert isinstance(exponent, int)  # finite
    if abs(exponent) <= _PLAIN_DIGITS and abs(value.adjusted()) <= _PLAIN_DIGITS:
        return format(value, "f")
    return str(value)  # "1E+999999999": valid JSON, and just as exact


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
