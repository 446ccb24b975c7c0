"""Exceptions of the webhook adapters, all under ``PulsoraError``.

::

    PulsoraError
    ├── WebhookVerificationError      the request cannot be trusted
    │   ├── MissingSignatureError         no signature header
    │   ├── MalformedSignatureError       a header we cannot read
    │   ├── StaleTimestampError           signed too long ago (or in the future)
    │   └── SignatureMismatchError        no signature matches the secret
    ├── WebhookPayloadError           a verified payload of an unexpected shape
    └── MissingAttributionError       no visitor fingerprint and session id found
"""

from __future__ import annotations

from collections.abc import Sequence

from .._errors import PulsoraError


class WebhookVerificationError(PulsoraError):
    """The webhook request could not be verified; answer it with 400 and drop it."""


class MissingSignatureError(WebhookVerificationError):
    """The signature header is missing or empty."""


class MalformedSignatureError(WebhookVerificationError):
    """The signature header is not in the processor's format."""


class StaleTimestampError(WebhookVerificationError):
    """The signature's timestamp is outside the tolerance (a replay, or a wrong clock)."""


class SignatureMismatchError(WebhookVerificationError):
    """No signature in the header matches the payload and the endpoint secret."""


class WebhookPayloadError(PulsoraError):
    """The payload lacks a field we need, or holds a value of the wrong type.

    ``field`` is the path of the offending value, such as ``data.object.amount_total``.
    """

    field: str

    def __init__(self, description: str, *, field: str) -> None:
        super().__init__(description)
        self.field = field


class MissingAttributionError(PulsoraError):
    """The visitor fingerprint and session id are nowhere to be found.

    ``looked_in`` lists the places searched, ``keys`` the metadata keys
    wanted, and ``customer_id`` the customer a resolver was (or could be)
    asked about.
    """

    looked_in: tuple[str, ...]
    keys: tuple[str, str]
    customer_id: str | None

    def __init__(
        self,
        *,
        looked_in: Sequence[str],
        keys: tuple[str, str],
        customer_id: str | None,
        resolver_asked: bool,
    ) -> None:
        self.looked_in, self.keys, self.customer_id = tuple(looked_in), keys, customer_id
        places = ", ".join(self.looked_in) or "nowhere"
        if resolver_asked:
            then = f"and the resolver had nothing for customer {customer_id!r}"
        elif customer_id is None:
            then = "and there is no customer id to ask a resolver about"
        else:
            then = f"and no resolver was given to ask about customer {customer_id!r}"
        super().__init__(
            f"No {keys[0]!r} and {keys[1]!r} in {places}, {then}. Pass them through the "
            "payment's metadata from the browser, or give to_revenue_events a resolver."
        )
