"""Standard Webhooks signatures, as Polar makes and checks them.

Polar signs ``f"{webhook-id}.{webhook-timestamp}.{raw body}"`` with HMAC-SHA256
and sends ``v1,<base64 digest>`` in the ``webhook-signature`` header, several
separated by spaces while a secret rotates. The key is the endpoint secret's
UTF-8 bytes: Polar's SDK base64-encodes the secret before giving it to
``standardwebhooks``, which decodes it again. Polar's current SDK also tries
the secret's base64 decoding (after a ``whsec_`` prefix) when it is valid
base64, for secrets written the Standard Webhooks way; so does this module.

Arguments are checked as ``_signing`` checks Stripe's and Paddle's; then the
signature, and only then the time.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import math
import re
import time
from collections.abc import Mapping, Sequence
from typing import Any

from . import _signing
from ._errors import (
    MalformedSignatureError,
    MissingSignatureError,
    SignatureMismatchError,
    StaleTimestampError,
)

HEADERS = ("webhook-id", "webhook-timestamp", "webhook-signature")

_SCHEME = _signing.Scheme("Polar", "webhook-signature", " ", "webhook-timestamp", "v1", b".")
_TIMESTAMP = re.compile(r"[0-9]{1,12}")
_DIGEST_SIZE = hashlib.sha256().digest_size


def verify(
    payload: object,
    headers: object,
    secret: str | Sequence[str],
    *,
    tolerance: float | None,
    now: float | None,
) -> Any:
    """Check the three Standard Webhooks headers against *payload*; return the decoded JSON."""
    body = _signing._body(payload)
    keys = [key for raw in _signing._secrets(_SCHEME, secret) for key in signing_keys(raw)]
    window = _signing._seconds("tolerance", tolerance)
    clock = _signing._seconds("now", now)
    if window is not None and window < 0:
        raise ValueError(f"tolerance must be at least 0 seconds (or None), not {window:g}")
    if clock is not None and not math.isfinite(clock):
        raise ValueError(f"now must be a finite number of Unix seconds (or None), not {clock}")
    msg_id, timestamp, signatures = _parse(_lowered(headers))
    message = f"{msg_id}.{timestamp}.".encode() + body
    expected = [hmac.new(key, message, hashlib.sha256).digest() for key in keys]
    if not any(hmac.compare_digest(e, given) for e in expected for given in signatures):
        raise SignatureMismatchError(
            "No signature in the webhook-signature header matches the payload: check the "
            "endpoint secret, and verify the raw request body, not re-encoded JSON."
        )
    if window is not None:
        _check_time(timestamp, window, time.time() if clock is None else clock)
    return _signing.decode(body)


def sign(payload: bytes | str, secret: str, *, msg_id: str, timestamp: int) -> dict[str, str]:
    """The three headers Polar would send with *payload* (for tests)."""
    body = payload.encode() if isinstance(payload, str) else bytes(payload)
    message = f"{msg_id}.{timestamp}.".encode() + body
    digest = hmac.new(secret.encode(), message, hashlib.sha256).digest()
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": f"v1,{base64.b64encode(digest).decode()}",
    }


def signing_keys(secret: bytes) -> list[bytes]:
    """The HMAC keys a secret stands for: its bytes, and its base64 decoding if it has one."""
    keys = [secret]
    rest = secret.removeprefix(b"whsec_")
    try:
        decoded = base64.b64decode(rest + b"=" * (-len(rest) % 4), validate=True)
    except (binascii.Error, ValueError):
        return keys
    if decoded and decoded != secret:
        keys.append(decoded)
    return keys


def _lowered(headers: object) -> dict[str, str]:
    """The headers by lower-cased name; a mapping of str (Starlette's, a dict) or None."""
    if headers is None:
        return {}
    if not isinstance(headers, Mapping):
        raise TypeError(
            f"headers must be the request's headers as a mapping (or None), not "
            f"{type(headers).__name__}"
        )
    found: dict[str, str] = {}
    for name in HEADERS:
        value = headers.get(name)
        if value is None:
            value = next((v for k, v in headers.items() if str(k).lower() == name), None)
        if isinstance(value, bytes | bytearray):
            value = bytes(value).decode("latin-1")
        if value is not None and not isinstance(value, str):
            raise TypeError(f"the {name} header must be a str, not {type(value).__name__}")
        if value is not None:
            found[name] = value
    return found


def _parse(headers: Mapping[str, str]) -> tuple[str, int, list[bytes]]:
    """The message id, the timestamp and the ``v1`` signatures; errors for what is missing."""
    missing = [name for name in HEADERS if not headers.get(name, "").strip()]
    if missing:
        names = missing[0] if len(missing) == 1 else f"{', '.join(missing[:-1])} and {missing[-1]}"
        plural = "header is" if len(missing) == 1 else "headers are"
        raise MissingSignatureError(f"The {names} {plural} missing or empty.")
    msg_id, stamp = headers["webhook-id"].strip(), headers["webhook-timestamp"].strip()
    if not stamp.isascii() or not _TIMESTAMP.fullmatch(stamp):
        raise MalformedSignatureError(
            f"The webhook-timestamp header must be Unix seconds, not {_signing._shown(stamp)}."
        )
    signatures = [s for s in map(_signature, headers["webhook-signature"].split()) if s]
    if not signatures:
        raise MalformedSignatureError(
            "The webhook-signature header must hold v1,<base64 signature>; got "
            f"{_signing._shown(headers['webhook-signature'])}."
        )
    return msg_id, int(stamp), signatures


def _signature(versioned: str) -> bytes | None:
    """The digest of one ``v1,<base64>``; None for another version or a bad encoding."""
    version, comma, encoded = versioned.partition(",")
    if version != "v1" or not comma:
        return None  # v1a (asymmetric) and future versions: not ours to check
    try:
        digest = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        return None
    return digest if len(digest) == _DIGEST_SIZE else None


def _check_time(timestamp: int, tolerance: float, now: float) -> None:
    skew = now - timestamp
    if abs(skew) > tolerance:
        direction = "ago" if skew > 0 else "in the future"
        raise StaleTimestampError(
            f"The Polar signature was made {abs(skew):.0f} s {direction}, beyond the "
            f"tolerance of {tolerance:g} s: a replay, or a wrong clock."
        )
