"""Pulsora's ingest contract, without I/O: given headers and a body, the answer.

Both front ends of the emulator, the in-process ``FakePulsora`` and the
``pulsora-revenue dev`` server, call ``Ingest.handle`` and only carry out what
it returns. Validation reuses the event model, so the emulator and the client
can never disagree about what a valid event is.
"""

from __future__ import annotations

import math
import re
from collections.abc import Collection, Mapping
from typing import Any, Protocol

import attrs

from .. import _json
from .._config import redact
from .._convert import CONVERTER
from .._errors import ValidationError, received
from .._event import OCCURRED_AT_KEY, RevenueEvent

#: Bodies larger than this are refused before they are parsed.
MAX_BODY_BYTES = 1024 * 1024

#: The event types of Pulsora's ingest API; this emulator records only revenue.
INGEST_TYPES = ("pageview", "event", "identify", "revenue")


@attrs.frozen
class Answer:
    """The HTTP answer to one ingest request."""

    status: int
    body: Mapping[str, Any]
    headers: Mapping[str, str] = attrs.Factory(dict)

    @property
    def message(self) -> str:
        """The error text of the answer, or "" for a success."""
        return str(self.body.get("error") or self.body.get("message") or "")

    def encode(self) -> bytes:
        """Return the JSON body of the answer."""
        return _json.dumps(self.body)


def _accepted() -> Answer:
    return Answer(202, {"success": True})


def _error(status: int, text: str, **headers: str) -> Answer:
    return Answer(status, {"error": text}, headers)


def _invalid(text: str, errors: list[dict[str, str]] | None = None) -> Answer:
    body: dict[str, Any] = {"message": text}
    if errors:
        body["errors"] = errors
    return Answer(400, body)


class Store(Protocol):
    """Where accepted events and refused requests are kept: in memory or in the database."""

    def record(self, event: RevenueEvent) -> bool:
        """Keep *event*; return False (keeping nothing) if its key was seen before."""

    def reject(self, answer: Answer, body: str) -> None:
        """Keep a refused request with the answer it got; *body* is as it may be shown."""


@attrs.define
class RateLimit:
    """At most *requests* per *window* seconds, in fixed windows."""

    requests: int
    window: float
    _window_start: float = -math.inf
    _count: int = 0

    def admit(self, now: float) -> float | None:
        """Count a request; return None if admitted, else the seconds to wait."""
        if now - self._window_start >= self.window:
            self._window_start, self._count = now, 0
        if self._count < self.requests:
            self._count += 1
            return None
        return self._window_start + self.window - now

    def reset(self) -> None:
        """Start afresh: the next request opens a new window."""
        self._window_start, self._count = -math.inf, 0


@attrs.define
class Ingest:
    """The contract of ``POST /api/ingest``.

    *tokens*, when given, is the list of valid tokens; otherwise any ``sec_`` or
    ``pub_`` token is valid. *rate_limit* answers 429 with ``Retry-After`` when
    the limit is exceeded.
    """

    store: Store
    tokens: Collection[str] | None = None
    rate_limit: RateLimit | None = None

    def handle(self, headers: Mapping[str, str], body: bytes, *, now: float) -> Answer:
        """Decide the answer to one request, recording the event if accepted.

        *headers* must look keys up case-insensitively (as httpx's and
        Starlette's do) or have lower-case keys.
        """
        answer, event = self._decide(headers, body, now)
        if event is not None and not self.store.record(event):
            answer = _error(409, "Duplicate transaction")
        if answer.status >= 400:
            self.reject(answer, body)
        return answer

    def reject(self, answer: Answer, body: bytes) -> None:
        """Keep a request refused with *answer* (here, or by a scripted fault).

        Only what may be shown is kept: the body without its token, as text,
        shortened.
        """
        self.store.reject(answer, _shown_body(body))

    def _decide(
        self, headers: Mapping[str, str], body: bytes, now: float
    ) -> tuple[Answer, RevenueEvent | None]:
        if self.rate_limit is not None:
            wait = self.rate_limit.admit(now)
            if wait is not None:
                seconds = str(max(1, math.ceil(wait)))
                return _error(429, "Rate limited", **{"Retry-After": seconds}), None
        if len(body) > MAX_BODY_BYTES:
            return _invalid(f"Request body is larger than {MAX_BODY_BYTES} bytes."), None
        try:
            payload = _json.loads(body.decode("utf-8"))
        except UnicodeDecodeError:
            return _invalid("Request body must be UTF-8 encoded JSON."), None
        except ValueError as exc:
            return _invalid(f"Request body is not valid JSON: {exc}."), None
        except RecursionError:
            return _invalid("Request body nests too deeply."), None
        if not isinstance(payload, dict):
            return _invalid("Request body must be a JSON object."), None
        token = headers.get("x-api-token") or payload.get("token")
        refused = self._check_token(token)
        if refused is not None:
            return refused, None
        return self._check_payload(payload, str(token))

    def _check_token(self, token: object) -> Answer | None:
        if not isinstance(token, str) or not token:
            return _error(401, "Missing API token")
        if self.tokens is not None and token not in self.tokens:
            return _error(401, "Invalid API token")
        if not token.startswith(("sec_", "pub_")):
            return _error(401, "Invalid API token")
        return None

    def _check_payload(
        self, payload: dict[str, Any], token: str
    ) -> tuple[Answer, RevenueEvent | None]:
        kind = payload.get("type")
        if kind not in INGEST_TYPES:
            choices = ", ".join(INGEST_TYPES)
            return _invalid(f"type must be one of: {choices}. Received: {received(kind)}."), None
        if kind != "revenue":
            return _accepted(), None  # accepted and, in this emulator, not kept
        if not token.startswith("sec_"):
            return _error(403, "Revenue events require secret token"), None
        data = payload.get("data")
        if not isinstance(data, dict):
            return _invalid("data must be a JSON object."), None
        if OCCURRED_AT_KEY in data:  # not a wire field: it travels in metadata
            message = f"unknown field(s): {OCCURRED_AT_KEY!r}."
            return _invalid(message, [{"field": "<event>", "message": message}]), None
        try:
            event = CONVERTER.structure(data, RevenueEvent)
        except ValidationError as exc:
            errors = [{"field": e.path, "message": e.message} for e in exc.errors]
            return _invalid(exc.errors[0].message, errors), None
        return _accepted(), event


#: What looks like a token in text: its prefix and a character of its own (the
#: redacted form, ``sec_…1234``, does not match).
_TOKEN_LIKE = re.compile(rb"(?:sec|pub)_[0-9A-Za-z]")

#: The most of a refused body that is redacted (and searched for tokens) to be shown.
MAX_REDACTED_BODY = 64 * 1024

#: The most of a redacted body that is shown.
MAX_SHOWN_BODY = 2000


def _shown_body(body: bytes) -> str:
    """Return a refused *body* as it may be shown: redacted, as text, shortened."""
    redacted = _redact_body(body)
    text = redacted[:MAX_SHOWN_BODY].decode("utf-8", errors="replace")
    return text if len(redacted) <= MAX_SHOWN_BODY else f"{text}..."


def _redact_body(body: bytes) -> bytes:
    """Blank a ``token`` out of a JSON body before it is shown.

    The body is parsed, not only searched (a key written ``"\\u0074oken"`` is a
    token too); what cannot be parsed and rewritten safely, and still may hold a
    token, is withheld whole.
    """
    withheld = b"<body withheld: it may hold a token>"
    try:
        payload = _json.loads(body)
    except (ValueError, RecursionError):
        payload = None  # not JSON: kept as it came, unless it may hold a token
    if not (isinstance(payload, dict) and isinstance(payload.get("token"), str)):
        return withheld if _may_hold_a_token(body) else body[:MAX_REDACTED_BODY]
    token: str = payload["token"]
    text = body.decode("utf-8", errors="replace")
    if not token or token not in text:  # written with escapes: not to be rewritten by hand
        return withheld
    kept = text.replace(token, redact(token)).encode()[:MAX_REDACTED_BODY]
    return withheld if _TOKEN_LIKE.search(kept) else kept


def _may_hold_a_token(body: bytes) -> bool:
    """Whether raw *body* may hold a token: it mentions one, escapes text, or is not UTF-8."""
    try:
        body.decode("utf-8")
    except UnicodeDecodeError:
        return True
    return b"token" in body.lower() or b"\\u" in body or _TOKEN_LIKE.search(body) is not None
