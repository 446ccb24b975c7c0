"""Client configuration: the token, the endpoint, and how the token may be shown."""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Iterator, Mapping
from typing import NoReturn, Self

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


class Token:
    """The secret API token, which shows itself only redacted: ``sec_…a1b2``.

    Its ``repr``, ``str`` and ``format`` are redacted, so that a traceback
    rendered with its locals (``traceback`` with ``capture_locals=True``,
    rich's ``show_locals``, Sentry) or a log line never holds it; pickling it
    is refused. ``reveal`` gives the token itself, for the request header.
    Deliberately not an attrs class: rich would show an attrs instance's fields.
    """

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        """The token itself: only for the request's ``X-API-Token`` header."""
        return self._value

    def scrub(self, text: str) -> str:
        """Replace the token in *text* (what a server echoed back) by its redacted form."""
        return text.replace(self._value, str(self)) if self._value in text else text

    def __str__(self) -> str:
        return redact(self._value)

    def __repr__(self) -> str:
        return f"Token({str(self)!r})"

    def __format__(self, spec: str) -> str:
        return format(str(self), spec)

    def __reduce__(self) -> NoReturn:
        raise TypeError(
            f"the API token ({self}) is not pickled: it would be written in clear; "
            "create the client in the process that uses it"
        )

    def __copy__(self) -> Self:
        return self  # immutable

    def __deepcopy__(self, memo: object) -> Self:
        return self


class SecretHeaders(Mapping[str, str]):
    """Request headers that carry the token: shown with it redacted, never pickled.

    A plain dict of them, as a local of a function that raises, would show the
    token in a traceback rendered with its locals.
    """

    __slots__ = ("_headers", "_token")

    def __init__(self, headers: Mapping[str, str], token: Token) -> None:
        self._headers, self._token = dict(headers), token

    def __getitem__(self, name: str) -> str:
        return self._headers[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._headers)

    def __len__(self) -> int:
        return len(self._headers)

    def __repr__(self) -> str:
        shown = {name: self._token.scrub(value) for name, value in self._headers.items()}
        return f"SecretHeaders({shown!r})"

    def __reduce__(self) -> NoReturn:
        raise TypeError(f"request headers with the API token ({self._token}) are not pickled")


def hide(api_token: str | None) -> Token | None:
    """Wrap a token given as text, before anything can fail and show it in a traceback."""
    return None if api_token is None else Token(api_token)


def resolve_token(api_token: Token | None, *, passed_as: str = "api_token=") -> Token:
    """Return the secret token from the argument or the environment, or refuse.

    *passed_as* names the argument in a missing token's message (the command
    line passes ``--token-file PATH``). No frame of this function holds the
    token as text when it raises: the checks run in ``_checked``, which returns.
    """
    token = api_token if api_token is not None else _env_token()
    checked = _checked(token, passed_as)
    if isinstance(checked, str):
        raise ConfigurationError(checked)
    return checked


def _env_token() -> Token | None:
    return hide(os.environ.get(TOKEN_ENV))


def _checked(token: Token | None, passed_as: str) -> Token | str:
    """The token without surrounding spaces, or what is wrong with it (shown redacted)."""
    text = token.reveal() if token is not None else ""
    if not isinstance(text, str):  # from a caller without a type checker: bytes, say
        return f"The API token must be a str, not {type(text).__name__}."
    text = text.strip()
    if not text:
        return (
            f"Revenue tracking needs a secret API token (sec_...): pass {passed_as} "
            f"or set the {TOKEN_ENV} environment variable."
        )
    return _problem(text) or Token(text)


def _problem(token: str) -> str | None:
    if not token.startswith(SECRET_PREFIX) or token == SECRET_PREFIX:
        kind = "a public pub_ token" if token.startswith("pub_") else "a token without sec_"
        return (
            f"Revenue tracking needs a secret sec_ token, but got {kind} ({redact(token)}). "
            "Public tokens may only send pageviews and events; use the secret token "
            "from your Pulsora project settings, on the server only."
        )
    if not token.isascii() or not token.isprintable() or any(c.isspace() for c in token):
        return (
            f"The API token ({redact(token)}) contains spaces or control characters; "
            "copy it again from your Pulsora project settings."
        )
    return None


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
