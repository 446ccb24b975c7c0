"""Chargebee's webhook credentials: HTTP basic auth, and an allow-list of source addresses.

Chargebee signs nothing. What it offers is the username and password set on
the webhook, sent as ``Authorization: Basic ...`` on every call, and the
published list of addresses its calls come from. Both are checked here; the
error classes subclass the signature errors of the other adapters, so that an
``except MissingSignatureError`` written for them also catches these.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import ipaddress
from collections.abc import Iterable

from ._errors import (
    MalformedSignatureError,
    MissingSignatureError,
    SignatureMismatchError,
    WebhookVerificationError,
)

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address


class MissingCredentialsError(MissingSignatureError):
    """The ``Authorization`` header is missing or empty."""


class MalformedCredentialsError(MalformedSignatureError):
    """The ``Authorization`` header is not ``Basic <base64 of username:password>``."""


class CredentialsMismatchError(SignatureMismatchError):
    """The username or the password is not the one set on the webhook."""


class SourceAddressError(WebhookVerificationError):
    """The request came from an address outside the allowed networks."""


def basic_auth(username: str, password: str) -> str:
    """Build the ``Authorization`` header Chargebee sends, for tests.

    Args:
        username: the username set on the webhook.
        password: the password set on the webhook.

    Returns:
        ``"Basic "`` and the base64 of ``username:password``.
    """
    token = base64.b64encode(f"{username}:{password}".encode()).decode("ascii")
    return f"Basic {token}"


def credentials(value: object) -> list[tuple[bytes, bytes]]:
    """The expected (username, password), encoded; a clear error for anything else.

    Encoded as UTF-8 (RFC 7617) and, when that differs, as Latin-1 too (what
    Chargebee's own SDKs send for their keys): non-ASCII credentials match either.
    """
    if not isinstance(value, tuple | list) or len(value) != 2:
        raise TypeError(
            f"credentials must be a (username, password) pair, not {type(value).__name__}"
        )
    username, password = value
    if not isinstance(username, str) or not isinstance(password, str):
        raise TypeError("credentials must be a pair of str (username, password)")
    if not username or not password:
        raise ValueError("the Chargebee webhook username and password must be non-empty")
    if ":" in username:
        raise ValueError("a basic auth username cannot contain ':' (RFC 7617)")
    encoded = [(username.encode(), password.encode())]
    try:
        latin = (username.encode("latin-1"), password.encode("latin-1"))
    except UnicodeEncodeError:
        return encoded
    return encoded if latin == encoded[0] else [*encoded, latin]


def check_authorization(header: str | bytes | None, expected: list[tuple[bytes, bytes]]) -> None:
    """Check ``Authorization: Basic ...`` against *expected*, in constant time."""
    if isinstance(header, bytes | bytearray):
        header = bytes(header).decode("latin-1")
    if header is not None and not isinstance(header, str):
        raise TypeError(
            f"authorization must be the header's value as str or None, not {type(header).__name__}"
        )
    if header is None or not header.strip():
        raise MissingCredentialsError(
            "The Authorization header is missing or empty: set basic auth on the webhook "
            "in Chargebee (Settings > Configure Chargebee > Webhooks)."
        )
    username, password = _decoded(header.strip())
    # Every half of every encoding is compared (no short circuit), as digests of equal
    # length, so the time taken says nothing about where or whether they differ.
    matched = False
    for user, secret in expected:
        same_user = hmac.compare_digest(_digest(username), _digest(user))
        same_password = hmac.compare_digest(_digest(password), _digest(secret))
        matched |= same_user & same_password
    if not matched:
        raise CredentialsMismatchError(
            "The basic auth credentials do not match the webhook's username and password."
        )


def _decoded(header: str) -> tuple[bytes, bytes]:
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "basic" or not token.strip():
        raise MalformedCredentialsError(
            "The Authorization header must be 'Basic <base64 of username:password>'; "
            f"got a {scheme[:20]!r} header."
        )
    try:
        decoded = base64.b64decode(token.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise MalformedCredentialsError(
            "The Authorization header's credentials are not valid base64."
        ) from None
    username, colon, password = decoded.partition(b":")
    if not colon:
        raise MalformedCredentialsError(
            "The Authorization header's credentials must be 'username:password'."
        )
    return username, password


def _digest(value: bytes) -> bytes:
    return hashlib.sha256(value).digest()


def networks(allowed: Iterable[str | Network | Address]) -> list[Network]:
    """The allowed networks, from addresses, networks, or their text (``"192.0.2.25"``)."""
    if isinstance(allowed, str | bytes):
        raise TypeError("allowed_ips must be an iterable of addresses or networks, not a str")
    found: list[Network] = []
    for entry in allowed:
        if isinstance(entry, Network):
            found.append(entry)
        elif isinstance(entry, Address):
            found.append(ipaddress.ip_network(entry))
        elif isinstance(entry, str):
            found.append(ipaddress.ip_network(entry.strip(), strict=True))
        else:
            raise TypeError(
                "allowed_ips must hold addresses or networks (str or ipaddress objects), "
                f"not {type(entry).__name__}"
            )
    if not found:
        raise ValueError("allowed_ips is empty: pass None to check no source address")
    return found


def check_source(source_ip: object, allowed: list[Network]) -> None:
    """Check that *source_ip* lies in one of the *allowed* networks."""
    if source_ip is None:
        raise ValueError(
            "allowed_ips is set but source_ip is None: pass the request's client address"
        )
    if not isinstance(source_ip, str | Address):
        raise TypeError(f"source_ip must be a str or an ipaddress address, not {type(source_ip)}")
    try:
        address = ipaddress.ip_address(
            source_ip.strip() if isinstance(source_ip, str) else source_ip
        )
    except ValueError:
        raise SourceAddressError(
            f"The source address {source_ip!r} is not an IP address."
        ) from None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped  # ::ffff:192.0.2.25 from a dual-stack socket
    if not any(address in network for network in allowed):
        raise SourceAddressError(
            f"The request came from {address}, which is not in the allowed Chargebee addresses."
        )
