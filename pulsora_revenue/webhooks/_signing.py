"""The signing core shared by the Stripe and Paddle adapters.

Both processors sign ``f"{timestamp}{separator}{raw body}"`` with HMAC-SHA256
under the endpoint secret and send the hex digest in a header, possibly more
than one (during a secret rotation). Verification happens on the raw bytes of
the request body, before any JSON decoding.

``verify`` checks its arguments before anything else: a wrong type is a
``TypeError``, and an impossible value (an empty secret, a negative or NaN
tolerance, a clock that is not finite) a ``ValueError``, each naming the
argument and what it got, so that a misconfigured endpoint fails on the first
request whatever the request holds. Then it checks the signature, and only then the timestamp: a
forged request is reported as forged, not as late. A *tolerance* of ``None``
switches the time check off, as stripe-python does.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import math
import numbers
import re
import time
from collections.abc import Sequence
from typing import Any

import attrs

from ._errors import (
    MalformedSignatureError,
    MissingSignatureError,
    SignatureMismatchError,
    StaleTimestampError,
    WebhookPayloadError,
)

_HEX = re.compile(r"[0-9a-fA-F]{1,256}")


@attrs.frozen
class Scheme:
    """How one processor lays out its signature header."""

    processor: str  # for messages: "Stripe"
    header: str  # for messages: "Stripe-Signature"
    pair_separator: str  # between key=value pairs: "," or ";"
    timestamp_key: str  # "t" or "ts"
    signature_key: str  # "v1" or "h1"
    payload_separator: bytes  # between timestamp and body: b"." or b":"


@attrs.frozen
class Signed:
    """A parsed signature header: its timestamp and every signature it holds."""

    timestamp: int
    signatures: tuple[str, ...]


def parse_header(scheme: Scheme, header: str | None) -> Signed:
    """Read the timestamp and the signatures of *scheme* out of *header*."""
    if header is None or not header.strip():
        raise MissingSignatureError(f"The {scheme.header} header is missing or empty.")
    timestamp: int | None = None
    signatures: list[str] = []
    for pair in header.split(scheme.pair_separator):
        key, equals, value = pair.strip().partition("=")
        if not equals:
            continue  # not a key=value pair: ignore, as the processors' own libraries do
        if key == scheme.timestamp_key:
            timestamp = _timestamp(scheme, value)
        elif key == scheme.signature_key and _HEX.fullmatch(value.strip()):
            signatures.append(value.strip().lower())  # anything else cannot match: ignored
    if timestamp is None or not signatures:
        wanted = f"{scheme.timestamp_key}=... and {scheme.signature_key}=..."
        raise MalformedSignatureError(
            f"The {scheme.header} header must hold {wanted}; got {_shown(header)}."
        )
    return Signed(timestamp, tuple(signatures))


def verify(
    scheme: Scheme,
    payload: bytes | bytearray | memoryview | str,
    header: str | bytes | None,
    secret: str | Sequence[str],
    *,
    tolerance: float | None,
    now: float | None,
) -> Any:
    """Check *header* against *payload* and *secret*; return the decoded JSON.

    *secret* may be several secrets (during a rotation): any one may match.
    The timestamp must lie within *tolerance* seconds of *now* (default: the
    system clock), in the past or the future; ``tolerance=None`` skips that
    check. A *header* given as bytes is read as Latin-1, as HTTP headers are.
    """
    body = _body(payload)
    secrets = _secrets(scheme, secret)
    window = _seconds("tolerance", tolerance)
    clock = _seconds("now", now)
    if window is not None and window < 0:
        raise ValueError(f"tolerance must be at least 0 seconds (or None), not {window:g}")
    if clock is not None and not math.isfinite(clock):
        raise ValueError(f"now must be a finite number of Unix seconds (or None), not {clock}")
    signed = parse_header(scheme, _header(header))
    message = str(signed.timestamp).encode() + scheme.payload_separator + body
    expected = [hmac.new(s, message, hashlib.sha256).hexdigest() for s in secrets]
    if not any(hmac.compare_digest(e, given) for e in expected for given in signed.signatures):
        raise SignatureMismatchError(
            f"No signature in the {scheme.header} header matches the payload: check the "
            "endpoint secret, and verify the raw request body, not re-encoded JSON."
        )
    if window is not None:
        _check_time(scheme, signed.timestamp, window, time.time() if clock is None else clock)
    return decode(body)


def _check_time(scheme: Scheme, timestamp: int, tolerance: float, now: float) -> None:
    skew = now - timestamp
    if abs(skew) > tolerance:
        direction = "ago" if skew > 0 else "in the future"
        raise StaleTimestampError(
            f"The {scheme.processor} signature was made {abs(skew):.0f} s {direction}, "
            f"beyond the tolerance of {tolerance:g} s: a replay, or a wrong clock."
        )


def decode(body: bytes) -> Any:
    """Decode a verified body; an undecodable one is a ``WebhookPayloadError``."""
    try:
        return json.loads(body)
    except (ValueError, RecursionError) as exc:
        raise WebhookPayloadError(f"The payload is not valid JSON: {exc}", field="") from None


def sign(scheme: Scheme, payload: bytes | str, secret: str, *, timestamp: int) -> str:
    """Return a valid header value for *payload* (for tests)."""
    body = payload.encode() if isinstance(payload, str) else bytes(payload)
    message = str(timestamp).encode() + scheme.payload_separator + body
    digest = hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()
    sep = scheme.pair_separator
    return f"{scheme.timestamp_key}={timestamp}{sep}{scheme.signature_key}={digest}"


def _timestamp(scheme: Scheme, value: str) -> int:
    text = value.strip()
    if not text.isascii() or not text.isdigit() or len(text) > 12:
        raise MalformedSignatureError(
            f"The {scheme.header} timestamp must be Unix seconds, not {_shown(text)}."
        )
    return int(text)


def _shown(text: str) -> str:
    return repr(text if len(text) <= 60 else f"{text[:57]}...")


def _body(payload: object) -> bytes:
    if isinstance(payload, str):
        try:
            return payload.encode()
        except UnicodeEncodeError:
            raise ValueError(
                "payload must be the raw request body; this str cannot be encoded as UTF-8 "
                "(it holds a lone surrogate): pass the body's bytes"
            ) from None
    if isinstance(payload, bytes | bytearray | memoryview):
        return bytes(payload)
    raise TypeError(f"payload must be the raw request body as bytes or str, not {_kind(payload)}")


def _header(header: object) -> str | None:
    if header is None or isinstance(header, str):
        return header
    if isinstance(header, bytes | bytearray):
        return bytes(header).decode("latin-1")  # never fails; a non-ASCII header is malformed
    raise TypeError(
        f"header must be the signature header's value as str or None, not {_kind(header)}"
    )


def _secrets(scheme: Scheme, secret: object) -> list[bytes]:
    """The secrets to try, encoded; a clear error for anything but non-empty strings."""
    if isinstance(secret, str):
        secrets: list[object] = [secret]
    elif isinstance(secret, Sequence) and not isinstance(secret, bytes | bytearray | memoryview):
        secrets = list(secret)
    else:
        raise TypeError(f"secret must be a str or a sequence of str, not {_kind(secret)}")
    if not secrets:
        raise ValueError(f"the {scheme.processor} webhook secret must be a non-empty string")
    return [_secret(scheme, s, index) for index, s in enumerate(secrets)]


def _secret(scheme: Scheme, secret: object, index: int) -> bytes:
    if not isinstance(secret, str):
        raise TypeError(
            f"secret must be a str or a sequence of str; item {index} is {_kind(secret)}"
        )
    if not secret:
        raise ValueError(f"the {scheme.processor} webhook secret must be a non-empty string")
    try:
        return secret.encode()
    except UnicodeEncodeError:
        raise ValueError(
            f"the {scheme.processor} webhook secret cannot be encoded as UTF-8 "
            "(it holds a lone surrogate)"
        ) from None


def _seconds(name: str, value: object) -> float | None:
    """*value* as a float of seconds; None stays None."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a number of seconds or None, not {_kind(value)}")
    try:
        seconds = float(value)
    except OverflowError:  # an int or a Fraction beyond a float's range
        seconds = -math.inf if value < 0 else math.inf
    if math.isnan(seconds):
        raise ValueError(f"{name} must be a number of seconds or None, not NaN")
    return seconds


def _kind(value: object) -> str:
    """What a wrong argument is, for messages: its type, never its content (it may be a secret)."""
    return type(value).__name__
