"""Lemon Squeezy's signature: HMAC-SHA256 hex of the raw body under the signing secret.

Lemon Squeezy signs no timestamp and sends one signature, in ``X-Signature``.
Arguments are checked first, as ``_signing.verify`` checks them: a wrong type is
a ``TypeError`` and an empty secret a ``ValueError``, naming the argument, never
its content.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Sequence
from typing import Any

from . import _signing
from ._errors import MalformedSignatureError, MissingSignatureError, SignatureMismatchError

_HEADER = "X-Signature"
_HEX_SHA256 = re.compile(r"[0-9a-fA-F]{64}")


def verify(payload: object, signature: object, secret: object) -> Any:
    """Check *signature* against *payload* under any of the secrets; return the decoded JSON."""
    body = _body(payload)
    secrets = _secrets(secret)
    if not isinstance(signature, str | None):
        raise TypeError(f"signature must be a str or None, not {type(signature).__name__}")
    if signature is None or not signature.strip():
        raise MissingSignatureError(f"The {_HEADER} header is missing or empty.")
    given = signature.strip()
    if not _HEX_SHA256.fullmatch(given):
        shown = repr(given if len(given) <= 60 else f"{given[:57]}...")
        raise MalformedSignatureError(
            f"The {_HEADER} header must be 64 hex digits (HMAC-SHA256); got {shown}."
        )
    expected = [hmac.new(key, body, hashlib.sha256).hexdigest() for key in secrets]
    if not any(hmac.compare_digest(digest, given.lower()) for digest in expected):
        raise SignatureMismatchError(
            f"The {_HEADER} header does not match the payload: check the signing secret, "
            "and verify the raw request body, not re-encoded JSON."
        )
    return _signing.decode(body)


def sign(payload: bytes | str, secret: str) -> str:
    """The ``X-Signature`` value of *payload* under *secret*."""
    body = payload.encode() if isinstance(payload, str) else bytes(payload)
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def _body(payload: object) -> bytes:
    if isinstance(payload, str):
        return payload.encode("utf-8", "surrogatepass")
    if isinstance(payload, bytes | bytearray | memoryview):
        return bytes(payload)
    raise TypeError(f"payload must be the raw request body as bytes or str, not {_kind(payload)}")


def _secrets(secret: object) -> list[bytes]:
    listed = [secret] if isinstance(secret, str) else secret
    if not isinstance(listed, Sequence) or isinstance(listed, bytes | bytearray):
        raise TypeError(f"secret must be a str or a sequence of str, not {_kind(secret)}")
    if not listed:
        raise ValueError("the Lemon Squeezy signing secret must be a non-empty string")
    for item in listed:
        if not isinstance(item, str):
            raise TypeError(f"secret must be a str or a sequence of str; got {_kind(item)}")
        if not item:
            raise ValueError("the Lemon Squeezy signing secret must be a non-empty string")
    return [item.encode("utf-8", "surrogatepass") for item in listed]


def _kind(value: object) -> str:
    """What a wrong argument is, for messages: its type, never its content (it may be a secret)."""
    return type(value).__name__
