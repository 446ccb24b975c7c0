"""The signing core shared by the Stripe and Paddle adapters.

Both processors sign ``f"{timestamp}{separator}{raw body}"`` with HMAC-SHA256
under the endpoint secret and send the hex digest in a header, possibly more
than one (during a secret rotation). Verification happens on the raw bytes of
the request body, before any JSON decoding.
"""

from __future__ import annotations

import hashlib
import hmac
import json
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
    payload: bytes | str,
    header: str | None,
    secret: str | Sequence[str],
    *,
    tolerance: float,
    now: float | None,
) -> Any:
    """Check *header* against *payload* and *secret*; return the decoded JSON.

    *secret* may be several secrets (during a rotation): any one may match.
    The timestamp must lie within *tolerance* seconds of *now* (default: the
    system clock), in the past or the future.
    """
    body = payload.encode() if isinstance(payload, str) else bytes(payload)
    signed = parse_header(scheme, header)
    secrets = [secret] if isinstance(secret, str) else list(secret)
    if not secrets or not all(isinstance(s, str) and s for s in secrets):
        raise ValueError(f"the {scheme.processor} webhook secret must be a non-empty string")
    message = str(signed.timestamp).encode() + scheme.payload_separator + body
    expected = [hmac.new(s.encode(), message, hashlib.sha256).hexdigest() for s in secrets]
    if not any(hmac.compare_digest(e, given) for e in expected for given in signed.signatures):
        raise SignatureMismatchError(
            f"No signature in the {scheme.header} header matches the payload: check the "
            "endpoint secret, and verify the raw request body, not re-encoded JSON."
        )
    skew = (time.time() if now is None else now) - signed.timestamp
    if abs(skew) > tolerance:
        direction = "ago" if skew > 0 else "in the future"
        raise StaleTimestampError(
            f"The {scheme.processor} signature was made {abs(skew):.0f} s {direction}, "
            f"beyond the tolerance of {tolerance:g} s: a replay, or a wrong clock."
        )
    return decode(body)


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
