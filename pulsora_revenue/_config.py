"""Client configuration: the token, the endpoint, and how the token may be shown."""

from __future__ import annotations

import ipaddress
import os

import httpx

from ._errors import ConfigurationError

DEFAULT_ENDPOINT = "https://pulsora.co/api/ingest"
TOKEN_ENV = "PULSORA_SECRET_TOKEN"
ENDPOINT_ENV = "PULSORA_ENDPOINT"
SECRET_PREFIX = "sec_"


def redact(token: str) -> str:
    """Show a token as its kind and last four characters: ``sec_…a1b2``."""
    prefix = token[:4] if token[:4] in (SECRET_PREFIX, "pub_") else ""
    tail = token[-4:] if len(token) >= len(prefix) + 12 else ""
    return f"{prefix}…{tail}"


def resolve_token(api_token: str | None, *, passed_as: str = "api_token=") -> str:
    """Return the secret token from the argument or the environment, or refuse.

    *passed_as* names the argument in a missing token's message (the command
    line passes ``--token-file PATH``).
    """
    token = api_token if api_token is not None else os.environ.get(TOKEN_ENV)
    if token is None or not token.strip():
        raise ConfigurationError(
            f"Revenue tracking needs a secret API token (sec_...): pass {passed_as} "
            f"or set the {TOKEN_ENV} environment variable."
        )
    token = token.strip()
    if not token.startswith(SECRET_PREFIX) or token == SECRET_PREFIX:
        kind = "a public pub_ token" if token.startswith("pub_") else "a token without sec_"
        raise ConfigurationError(
            f"Revenue tracking needs a secret sec_ token, but got {kind} ({redact(token)}). "
            "Public tokens may only send pageviews and events; use the secret token "
            "from your Pulsora project settings, on the server only."
        )
    if not token.isascii() or not token.isprintable() or any(c.isspace() for c in token):
        raise ConfigurationError(
            f"The API token ({redact(token)}) contains spaces or control characters; "
            "copy it again from your Pulsora project settings."
        )
    return token


def resolve_endpoint(endpoint: str | None) -> httpx.URL:
    """Return the ingest URL; plain http is allowed only for loopback hosts."""
    text = endpoint if endpoint is not None else os.environ.get(ENDPOINT_ENV, DEFAULT_ENDPOINT)
    try:
        url = httpx.URL(text.strip())
    except (httpx.InvalidURL, TypeError, AttributeError):
        url = None
    if url is None or url.scheme not in ("http", "https") or not url.host:
        raise ConfigurationError(
            f"endpoint must be an http(s) URL such as {DEFAULT_ENDPOINT}, not {text!r}"
        )
    if url.userinfo:
        raise ConfigurationError(
            "endpoint must not contain a user name or password; the API token is the "
            "only credential Pulsora needs."
        )
    if url.scheme == "http" and not is_loopback(url.host):
        raise ConfigurationError(
            f"endpoint {text!r} uses plain http, which would send the secret token "
            "unencrypted; use https (plain http is allowed only for loopback hosts)."
        )
    return url


def is_loopback(host: str) -> bool:
    """Whether *host* names this machine: localhost, 127.0.0.0/8 or ::1."""
    if host.lower() in ("localhost", "localhost."):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False
