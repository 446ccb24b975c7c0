"""The request body encoder: orjson when installed, the exact encoder otherwise."""

from __future__ import annotations

import decimal
import json
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pulsora_revenue import _json

values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**29), max_value=10**29)
    | st.decimals(min_value=-(10**29), max_value=10**29, places=8)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=10),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=5), children, max_size=4)
    ),
    max_leaves=20,
)


@given(value=values)
def test_body_encoder_means_the_same_as_the_exact_one(value: object) -> None:
    fast, exact = _json.dumps_body(value), _json.dumps(value)
    assert _json.loads(fast) == _json.loads(exact)


def test_decimals_keep_their_digits() -> None:
    body = _json.dumps_body({"amount": Decimal(10**20) + Decimal("0.01"), "small": Decimal("0.1")})
    assert body == b'{"amount":100000000000000000000.01,"small":0.1}'


def test_ints_beyond_64_bits_fall_back_to_the_exact_encoder() -> None:
    assert json.loads(_json.dumps_body({"n": 10**25})) == {"n": 10**25}


@pytest.mark.skipif(not _json.HAVE_ORJSON, reason="the speed extra is not installed")
def test_orjson_is_used_when_installed() -> None:
    assert _json.dumps_body({"text": "é"}) == '{"text":"é"}'.encode()


@pytest.mark.parametrize("number", [Decimal("NaN"), Decimal("-Infinity"), Decimal("sNaN")])
def test_decimals_that_are_no_number_are_refused(number: Decimal) -> None:
    with pytest.raises(ValueError, match="cannot encode"):
        _json.dumps_body({"amount": number})


class Money(Decimal):
    pass


@pytest.mark.skipif(not _json.HAVE_ORJSON, reason="the speed extra is not installed")
@pytest.mark.parametrize(
    ("number", "text"),
    [
        (Decimal("12.50"), b"12.50"),
        (Decimal("1E+2"), b"100"),
        (Decimal("1E-7"), b"0.0000001"),
        (Decimal("-0E-3"), b"-0.000"),
        (Money("-0.001"), b"-0.001"),
    ],
)
def test_orjson_writes_decimals_digit_for_digit(number: Decimal, text: bytes) -> None:
    # Called directly: through dumps_body, a failing callback would go unseen, as
    # the exact encoder takes over whatever orjson cannot write.
    import orjson

    assert orjson.dumps([number], default=_json._fragment) == b"[" + text + b"]"
    assert _json.dumps_body([number]) == b"[" + text + b"]"


@pytest.mark.parametrize("capitals", [0, 1])
def test_decimals_never_go_out_with_an_exponent(capitals: int) -> None:
    with decimal.localcontext() as context:
        context.capitals = capitals  # str(Decimal("1E+2")) is "1e+2" with 0
        assert _json.dumps_body([Decimal("1E+2"), Decimal("1E-7")]) == b"[100,0.0000001]"
        assert _json.dumps([Decimal("1E+2"), Decimal("1E-7")]) == b"[100,0.0000001]"


@pytest.mark.skipif(not _json.HAVE_ORJSON, reason="the speed extra is not installed")
@pytest.mark.parametrize("number", [Decimal("NaN"), Money("Infinity")])
def test_orjson_callback_refuses_decimals_that_are_no_number(number: Decimal) -> None:
    with pytest.raises(ValueError, match="cannot encode"):
        _json._fragment(number)
