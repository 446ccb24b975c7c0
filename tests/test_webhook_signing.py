"""Signature verification for Stripe and Paddle webhooks."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable
from types import ModuleType

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pulsora_revenue import PulsoraError
from pulsora_revenue.webhooks import (
    MalformedSignatureError,
    MissingSignatureError,
    SignatureMismatchError,
    StaleTimestampError,
    WebhookPayloadError,
    WebhookVerificationError,
    paddle,
    stripe,
)

NOW = 1_700_000_000
BODY = json.dumps({"id": "evt_1", "type": "invoice.paid", "data": {"object": {}}}).encode()
SECRET = "whsec_test_secret_0123456789"

processors = pytest.mark.parametrize("processor", [stripe, paddle], ids=["stripe", "paddle"])


@processors
def test_a_valid_signature_returns_the_decoded_event(processor: ModuleType) -> None:
    header = processor.sign(BODY, SECRET, timestamp=NOW)
    assert processor.verify(BODY, header, SECRET, now=NOW) == json.loads(BODY)
    assert processor.verify(BODY.decode(), header, SECRET, now=NOW + 299) == json.loads(BODY)


def test_the_header_formats() -> None:
    assert stripe.sign(BODY, SECRET, timestamp=NOW).startswith(f"t={NOW},v1=")
    assert paddle.sign(BODY, SECRET, timestamp=NOW).startswith(f"ts={NOW};h1=")


def test_stripe_signs_timestamp_dot_body() -> None:
    import hashlib
    import hmac

    digest = hmac.new(SECRET.encode(), f"{NOW}.".encode() + BODY, hashlib.sha256).hexdigest()
    assert stripe.verify(BODY, f"t={NOW},v1={digest}", SECRET, now=NOW)
    paddle_digest = hmac.new(SECRET.encode(), f"{NOW}:".encode() + BODY, hashlib.sha256)
    assert paddle.verify(BODY, f"ts={NOW};h1={paddle_digest.hexdigest()}", SECRET, now=NOW)


@processors
@pytest.mark.parametrize("header", [None, "", "   "])
def test_missing_header(processor: ModuleType, header: str | None) -> None:
    with pytest.raises(MissingSignatureError, match="missing"):
        processor.verify(BODY, header, SECRET, now=NOW)


@pytest.mark.parametrize(
    "header",
    [
        "garbage",
        "v1=abc",  # no timestamp
        f"t={NOW}",  # no signature
        f"t={NOW},v0=abc",  # only the scheme Stripe says to ignore
        "t=yesterday,v1=abc",
        f"t=-{NOW},v1=abc",
        f"t={NOW}1234567890,v1=abc",
    ],
)
def test_malformed_stripe_headers(header: str) -> None:
    with pytest.raises(MalformedSignatureError, match="Stripe-Signature"):
        stripe.verify(BODY, header, SECRET, now=NOW)


@pytest.mark.parametrize("header", ["garbage", f"ts={NOW}", "h1=abc", f"ts={NOW},h1=abc"])
def test_malformed_paddle_headers(header: str) -> None:
    with pytest.raises(MalformedSignatureError, match="Paddle-Signature"):
        paddle.verify(BODY, header, SECRET, now=NOW)


@processors
@pytest.mark.parametrize("skew", [301, -301, 10_000])
def test_stale_or_future_timestamps(processor: ModuleType, skew: int) -> None:
    header = processor.sign(BODY, SECRET, timestamp=NOW)
    with pytest.raises(StaleTimestampError, match="tolerance"):
        processor.verify(BODY, header, SECRET, now=NOW + skew)
    assert processor.verify(BODY, header, SECRET, now=NOW + skew, tolerance=abs(skew))


@processors
def test_wrong_secret_or_tampered_body(processor: ModuleType) -> None:
    header = processor.sign(BODY, SECRET, timestamp=NOW)
    with pytest.raises(SignatureMismatchError, match="raw request body"):
        processor.verify(BODY, header, "whsec_other", now=NOW)
    with pytest.raises(SignatureMismatchError):
        processor.verify(BODY.replace(b"evt_1", b"evt_2"), header, SECRET, now=NOW)


def test_a_wrong_signature_is_reported_before_a_stale_time() -> None:
    header = stripe.sign(BODY, "whsec_other", timestamp=NOW - 10_000)
    with pytest.raises(SignatureMismatchError):
        stripe.verify(BODY, header, SECRET, now=NOW)


def test_any_of_several_signatures_may_match() -> None:
    """While a secret is rolled, Stripe signs with each; unknown schemes are ignored."""
    good = stripe.sign(BODY, SECRET, timestamp=NOW).split(",")[1]
    header = f"t={NOW},v1={'0' * 64},{good},v0={'1' * 64},x=whatever"
    assert stripe.verify(BODY, header, SECRET, now=NOW)
    paddle_good = paddle.sign(BODY, SECRET, timestamp=NOW).split(";")[1]
    assert paddle.verify(BODY, f"ts={NOW};h1={'0' * 64};{paddle_good}", SECRET, now=NOW)


@processors
def test_any_of_several_secrets_may_match(processor: ModuleType) -> None:
    header = processor.sign(BODY, SECRET, timestamp=NOW)
    assert processor.verify(BODY, header, ["whsec_new", SECRET], now=NOW)


@processors
def test_a_verified_body_that_is_not_json(processor: ModuleType) -> None:
    header = processor.sign(b"not json", SECRET, timestamp=NOW)
    with pytest.raises(WebhookPayloadError, match="not valid JSON"):
        processor.verify(b"not json", header, SECRET, now=NOW)


def test_errors_share_the_roots() -> None:
    for error in (MissingSignatureError, MalformedSignatureError, StaleTimestampError):
        assert issubclass(error, WebhookVerificationError)
    assert issubclass(SignatureMismatchError, WebhookVerificationError)
    assert issubclass(WebhookVerificationError, PulsoraError)
    assert issubclass(WebhookPayloadError, PulsoraError)


@processors
def test_an_empty_secret_is_a_programming_error(processor: ModuleType) -> None:
    header = processor.sign(BODY, SECRET, timestamp=NOW)
    with pytest.raises(ValueError, match="secret"):
        processor.verify(BODY, header, "", now=NOW)


@given(
    body=st.binary(max_size=200),
    secret=st.text(min_size=1, max_size=40),
    skew=st.integers(-300, 300),
)
def test_sign_and_verify_agree(body: bytes, secret: str, skew: int) -> None:
    for processor in (stripe, paddle):
        header = processor.sign(body, secret, timestamp=NOW)
        verify: Callable[..., object] = processor.verify
        with contextlib.suppress(WebhookPayloadError):  # verified; random bytes are not JSON
            verify(body, header, secret, now=NOW + skew)


@processors
def test_signatures_that_are_not_hex_are_ignored(processor: ModuleType) -> None:
    key = "v1" if processor is stripe else "h1"
    sep = "," if processor is stripe else ";"
    stamp = "t" if processor is stripe else "ts"
    with pytest.raises(MalformedSignatureError):
        processor.verify(BODY, f"{stamp}={NOW}{sep}{key}=\xe9\xe9", SECRET, now=NOW)
