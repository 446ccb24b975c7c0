"""Signature verification for Stripe and Paddle webhooks."""

from __future__ import annotations

import functools
import hashlib
import hmac
import json
import math
import time
from collections.abc import Callable
from datetime import timedelta
from fractions import Fraction
from types import ModuleType, SimpleNamespace
from typing import Any

import pytest
import stripe as stripe_sdk
from hypothesis import given
from hypothesis import strategies as st
from paddle_billing.Notifications import (  # type: ignore[import-untyped]
    PaddleSignature,
    Secret,
    Verifier,
)

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

#: Each processor's default window, in seconds: Stripe's 300, Paddle's 5 (as their SDKs).
WINDOW: dict[ModuleType, int] = {stripe: 300, paddle: 5}


@processors
def test_a_valid_signature_returns_the_decoded_event(processor: ModuleType) -> None:
    header = processor.sign(BODY, SECRET, timestamp=NOW)
    assert processor.verify(BODY, header, SECRET, now=NOW) == json.loads(BODY)
    late = NOW + WINDOW[processor] - 1
    assert processor.verify(BODY.decode(), header, SECRET, now=late) == json.loads(BODY)
    for body in (bytearray(BODY), memoryview(BODY)):
        assert processor.verify(body, header, SECRET, now=NOW) == json.loads(BODY)


def test_the_header_formats() -> None:
    assert stripe.sign(BODY, SECRET, timestamp=NOW).startswith(f"t={NOW},v1=")
    assert paddle.sign(BODY, SECRET, timestamp=NOW).startswith(f"ts={NOW};h1=")


def test_stripe_signs_timestamp_dot_body() -> None:
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
@pytest.mark.parametrize("beyond", [1, -1, 10_000, -10_000])
def test_stale_or_future_timestamps(processor: ModuleType, beyond: int) -> None:
    skew = math.copysign(WINDOW[processor] + abs(beyond), beyond)
    header = processor.sign(BODY, SECRET, timestamp=NOW)
    with pytest.raises(StaleTimestampError, match="tolerance"):
        processor.verify(BODY, header, SECRET, now=NOW + skew)
    assert processor.verify(BODY, header, SECRET, now=NOW + skew, tolerance=abs(skew))


@pytest.mark.parametrize("skew", [6, -6, 4, -4, 5, -5])
def test_paddle_s_default_window_is_five_seconds(skew: int) -> None:
    """As Paddle's SDK (``Verifier(maximum_variance=5)``) and its documentation."""
    header = paddle.sign(BODY, SECRET, timestamp=NOW)
    if abs(skew) > 5:
        with pytest.raises(StaleTimestampError, match="beyond the tolerance of 5 s"):
            paddle.verify(BODY, header, SECRET, now=NOW + skew)
    else:
        assert paddle.verify(BODY, header, SECRET, now=NOW + skew) == json.loads(BODY)


@pytest.mark.parametrize("skew", [301, -301, 299, -299])
def test_stripe_s_default_window_is_300_seconds(skew: int) -> None:
    header = stripe.sign(BODY, SECRET, timestamp=NOW)
    if abs(skew) > 300:
        with pytest.raises(StaleTimestampError, match="beyond the tolerance of 300 s"):
            stripe.verify(BODY, header, SECRET, now=NOW + skew)
    else:
        assert stripe.verify(BODY, header, SECRET, now=NOW + skew) == json.loads(BODY)


@processors
@pytest.mark.parametrize("now", [NOW + 10**9, 0, None])
def test_no_tolerance_switches_the_time_check_off(processor: ModuleType, now: int | None) -> None:
    """``tolerance=None``, as in stripe-python: any age, but still the right signature."""
    header = processor.sign(BODY, SECRET, timestamp=1)
    assert processor.verify(BODY, header, SECRET, tolerance=None, now=now) == json.loads(BODY)
    with pytest.raises(SignatureMismatchError):
        processor.verify(BODY, header, "whsec_other", tolerance=None, now=now)
    with pytest.raises(MalformedSignatureError):
        processor.verify(BODY, "garbage", SECRET, tolerance=None, now=now)


@processors
def test_a_zero_tolerance_allows_the_same_second_only(processor: ModuleType) -> None:
    header = processor.sign(BODY, SECRET, timestamp=NOW)
    assert processor.verify(BODY, header, SECRET, tolerance=0, now=NOW)
    with pytest.raises(StaleTimestampError):
        processor.verify(BODY, header, SECRET, tolerance=0, now=NOW + 1)


@processors
def test_tolerances_of_other_number_types(processor: ModuleType) -> None:
    header = processor.sign(BODY, SECRET, timestamp=NOW)
    for tolerance in (Fraction(7, 2), 10**400, math.inf):
        assert processor.verify(BODY, header, SECRET, tolerance=tolerance, now=NOW + 3)
    with pytest.raises(StaleTimestampError, match=r"tolerance of 2\.5 s"):
        processor.verify(BODY, header, SECRET, tolerance=Fraction(5, 2), now=NOW + 3)


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


#: Bodies to sign: any bytes (seldom JSON), and JSON objects as a processor sends them.
SIGNED_BODIES = st.binary(max_size=200) | st.dictionaries(
    st.text(max_size=10), st.none() | st.integers() | st.text(max_size=20), max_size=5
).map(lambda event: json.dumps(event).encode())


@given(
    body=SIGNED_BODIES,
    secret=st.text(min_size=1, max_size=40),
    within=st.floats(-1, 1),
)
def test_sign_and_verify_agree(body: bytes, secret: str, within: float) -> None:
    """What one signs, the other verifies within the window: it returns the body decoded.

    A body that is not JSON passes the signature check, then is a payload error.
    """
    try:
        decoded, is_json = json.loads(body), True
    except ValueError:
        decoded, is_json = None, False
    for processor in (stripe, paddle):
        header = processor.sign(body, secret, timestamp=NOW)
        verify: Callable[[], object] = functools.partial(
            processor.verify, body, header, secret, now=NOW + within * WINDOW[processor]
        )
        if is_json:
            assert repr(verify()) == repr(decoded)  # repr: a NaN is not equal to itself
        else:
            with pytest.raises(WebhookPayloadError, match="not valid JSON"):
                verify()


@processors
def test_signatures_that_are_not_hex_are_ignored(processor: ModuleType) -> None:
    key = "v1" if processor is stripe else "h1"
    sep = "," if processor is stripe else ";"
    stamp = "t" if processor is stripe else "ts"
    with pytest.raises(MalformedSignatureError):
        processor.verify(BODY, f"{stamp}={NOW}{sep}{key}=\xe9\xe9", SECRET, now=NOW)


@processors
def test_a_header_given_as_bytes(processor: ModuleType) -> None:
    header = processor.sign(BODY, SECRET, timestamp=NOW)
    assert processor.verify(BODY, header.encode(), SECRET, now=NOW) == json.loads(BODY)
    with pytest.raises(MalformedSignatureError):
        processor.verify(BODY, "\xe9t\xe9".encode(), SECRET, now=NOW)
    with pytest.raises(MissingSignatureError):
        processor.verify(BODY, b"", SECRET, now=NOW)


# --- Arguments of the wrong type or value: a deliberate error naming the argument ---

VALID: dict[str, Any] = {"payload": BODY, "secret": SECRET, "tolerance": 300, "now": NOW}


@processors
@pytest.mark.parametrize(
    ("argument", "value", "error", "match"),
    [
        ("payload", None, TypeError, "payload .*NoneType"),
        ("payload", 42, TypeError, "payload .*int"),
        ("payload", {"id": "evt_1"}, TypeError, "payload .*raw request body.*dict"),
        ("payload", "\ud800", ValueError, "payload .*UTF-8"),
        ("header", 42, TypeError, "header .*int"),
        ("header", ["t=1,v1=ab"], TypeError, "header .*list"),
        ("header", {"Stripe-Signature": "t=1"}, TypeError, "header .*dict"),
        ("secret", None, TypeError, "secret .*NoneType"),
        ("secret", SECRET.encode(), TypeError, "secret .*bytes"),
        ("secret", {SECRET}, TypeError, "secret .*set"),
        ("secret", [SECRET, 42], TypeError, "secret .*item 1 is int"),
        ("secret", [SECRET, b"whsec"], TypeError, "secret .*item 1 is bytes"),
        ("secret", "", ValueError, "secret must be a non-empty string"),
        ("secret", [], ValueError, "secret must be a non-empty string"),
        ("secret", [SECRET, ""], ValueError, "secret must be a non-empty string"),
        ("secret", "whsec_\udc80", ValueError, "secret .*UTF-8"),
        ("tolerance", "300", TypeError, "tolerance .*str"),
        ("tolerance", True, TypeError, "tolerance .*bool"),
        ("tolerance", timedelta(seconds=5), TypeError, "tolerance .*timedelta"),
        ("tolerance", [300], TypeError, "tolerance .*list"),
        ("tolerance", -1, ValueError, "tolerance must be at least 0 .*-1"),
        ("tolerance", -(10**400), ValueError, "tolerance must be at least 0 .*-inf"),
        ("tolerance", math.nan, ValueError, "tolerance .*NaN"),
        ("now", "now", TypeError, "now .*str"),
        ("now", False, TypeError, "now .*bool"),
        ("now", math.nan, ValueError, "now .*NaN"),
        ("now", math.inf, ValueError, "now must be a finite number"),
        ("now", -math.inf, ValueError, "now must be a finite number"),
    ],
)
def test_a_bad_argument_is_named(
    processor: ModuleType, argument: str, value: object, error: type[Exception], match: str
) -> None:
    """Checked before the request is: a misconfiguration fails whatever the request holds."""
    arguments = {**VALID, "header": processor.sign(BODY, SECRET, timestamp=NOW), argument: value}
    for header in (arguments["header"], None, "garbage"):
        if argument != "header":
            arguments["header"] = header
        with pytest.raises(error, match=match) as caught:
            processor.verify(**arguments)
        assert SECRET not in str(caught.value)  # a message never shows a secret


def _anything() -> st.SearchStrategy[Any]:
    scalars = st.one_of(
        st.none(),
        st.booleans(),
        st.integers(),
        st.floats(),
        st.fractions(),
        st.decimals(),
        st.complex_numbers(),
        st.text(),
        st.binary(),
        st.timedeltas(),
        st.builds(object),
        st.just(BODY),
        st.just(SECRET),
    )
    return st.recursive(
        scalars,
        lambda children: st.one_of(
            st.lists(children, max_size=3),
            st.tuples(children, children),
            st.dictionaries(st.text(max_size=5), children, max_size=3),
            st.frozensets(st.integers() | st.text(), max_size=3),
            st.binary().map(bytearray),
            st.binary().map(lambda raw: memoryview(raw)),
        ),
        max_leaves=6,
    )


ARGUMENTS = ("payload", "header", "secret", "tolerance", "now")


@given(
    processor=st.sampled_from([stripe, paddle]),
    data=st.data(),
    wrong=st.sets(st.sampled_from(ARGUMENTS), min_size=1),
)
def test_wrong_arguments_never_fail_obscurely(
    processor: ModuleType, data: st.DataObject, wrong: set[str]
) -> None:
    """Whatever the arguments, a ``PulsoraError``, or a named ``TypeError``/``ValueError``."""
    arguments = {**VALID, "header": processor.sign(BODY, SECRET, timestamp=NOW)}
    for name in wrong:
        arguments[name] = data.draw(_anything(), label=name)
    error: Exception | None = None
    try:
        processor.verify(**arguments)
    except (PulsoraError, TypeError, ValueError) as exc:  # anything else fails the test
        error = exc
    if isinstance(error, PulsoraError):
        assert str(error)
    elif error is not None:
        assert any(name in str(error) for name in ARGUMENTS), repr(error)


# --- The processors' own SDKs as independent verifiers, in both directions ---
# Each SDK reads the system clock itself, so these sign at the present time (valid)
# or an hour ago (stale for both), never near a window's edge.

OTHER = "whsec_some_other_secret"


@pytest.fixture(autouse=True)
def _no_paddle_test_mode(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TEST_MODE", raising=False)  # would switch Paddle's SDK time check off


def _ours_accept(processor: ModuleType, body: bytes, header: str, **options: Any) -> bool:
    try:
        processor.verify(body, header, options.pop("secret", SECRET), **options)
    except WebhookVerificationError:
        return False
    return True


def _stripe_sdk_signs(body: bytes, secret: str, timestamp: int) -> str:
    return str(
        stripe_sdk.WebhookSignature.generate_signature_header(body.decode(), secret, timestamp)
    )


def _stripe_sdk_accepts(
    body: bytes, header: str, secret: str = SECRET, tolerance: int | None = 300
) -> bool:
    try:
        stripe_sdk.WebhookSignature.verify_header(body, header, secret, tolerance)
    except stripe_sdk.SignatureVerificationError:
        return False
    return True


def _paddle_sdk_signs(body: bytes, secret: str, timestamp: int) -> str:
    digest = PaddleSignature.calculate_hmac(secret, f"{timestamp}:".encode() + body).hexdigest()
    return f"ts={timestamp};h1={digest}"


def _paddle_sdk_accepts(
    body: bytes, header: str, secret: str | list[str] = SECRET, tolerance: int | None = 5
) -> bool:
    request = SimpleNamespace(body=body, headers={"Paddle-Signature": header})
    secrets = [Secret(s) for s in secret] if isinstance(secret, list) else Secret(secret)
    verifier = Verifier() if tolerance == 5 else Verifier(maximum_variance=tolerance)
    try:
        return bool(verifier.verify(request, secrets, verify_time_drift=tolerance is not None))
    except ConnectionRefusedError:  # how it says that none of several secrets matched
        return False


SDKS: dict[ModuleType, tuple[Callable[..., str], Callable[..., bool]]] = {
    stripe: (_stripe_sdk_signs, _stripe_sdk_accepts),
    paddle: (_paddle_sdk_signs, _paddle_sdk_accepts),
}


def test_the_sdk_defaults_are_the_windows_we_use() -> None:
    assert WINDOW[stripe] == stripe_sdk.Webhook.DEFAULT_TOLERANCE
    assert WINDOW[paddle] == Verifier().maximum_variance


@processors
@pytest.mark.parametrize("signer", ["ours", "sdk"])
@pytest.mark.parametrize(
    ("case", "accepted"),
    [("valid", True), ("tampered", False), ("wrong secret", False), ("stale", False)],
)
def test_we_and_the_sdk_agree(
    processor: ModuleType, signer: str, case: str, accepted: bool
) -> None:
    sdk_signs, sdk_accepts = SDKS[processor]
    sign = processor.sign if signer == "ours" else sdk_signs
    now = int(time.time())
    header = sign(BODY, OTHER if case == "wrong secret" else SECRET, timestamp=now)
    if case == "stale":
        header = sign(BODY, SECRET, timestamp=now - 3600)
    body = BODY.replace(b"evt_1", b"evt_2") if case == "tampered" else BODY
    assert sdk_accepts(body, header) is accepted
    assert _ours_accept(processor, body, header) is accepted


@processors
@pytest.mark.parametrize("signer", ["ours", "sdk"])
def test_we_and_the_sdk_agree_without_a_time_check(processor: ModuleType, signer: str) -> None:
    sdk_signs, sdk_accepts = SDKS[processor]
    sign = processor.sign if signer == "ours" else sdk_signs
    header = sign(BODY, SECRET, timestamp=int(time.time()) - 10**6)
    assert sdk_accepts(BODY, header, tolerance=None)
    assert _ours_accept(processor, BODY, header, tolerance=None)
    assert not sdk_accepts(BODY, header, secret=OTHER, tolerance=None)
    assert not _ours_accept(processor, BODY, header, secret=OTHER, tolerance=None)


def test_stripe_s_sdk_builds_the_event_we_verified() -> None:
    body = json.dumps({"id": "evt_1", "object": "event", "type": "invoice.paid"}).encode()
    header = stripe.sign(body, SECRET, timestamp=int(time.time()))
    event = stripe_sdk.Webhook.construct_event(body, header, SECRET)
    assert (event.id, event.type) == ("evt_1", "invoice.paid")
    assert stripe.verify(body, header, SECRET) == json.loads(body)


@pytest.mark.parametrize("signer", ["ours", "sdk"])
def test_we_and_paddle_s_sdk_agree_on_rotated_secrets(signer: str) -> None:
    sign = paddle.sign if signer == "ours" else _paddle_sdk_signs
    header = sign(BODY, SECRET, timestamp=int(time.time()))
    assert _paddle_sdk_accepts(BODY, header, secret=[OTHER, SECRET])
    assert _ours_accept(paddle, BODY, header, secret=[OTHER, SECRET])
    assert not _paddle_sdk_accepts(BODY, header, secret=[OTHER, "pdl_ntfset_third"])
    assert not _ours_accept(paddle, BODY, header, secret=[OTHER, "pdl_ntfset_third"])
