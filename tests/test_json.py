"""The request body encoder: orjson when installed, the exact encoder otherwise."""

from __future__ import annotations

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


def test_decimal_subclasses_keep_their_digits() -> None:
    class Money(Decimal):
        pass

    assert _json.dumps_body([Money("12.50"), Money("1E+2")]) == b"[12.50,100]"
