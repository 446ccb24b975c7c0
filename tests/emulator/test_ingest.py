"""The ingest contract, without I/O: every answer of SPEC section 1."""

from __future__ import annotations

import json
from typing import Any

import pytest

from pulsora_revenue._emulator._contract import MAX_BODY_BYTES, Ingest, RateLimit
from pulsora_revenue._emulator._fake import MemoryStore

SECRET = {"x-api-token": "sec_live_0123456789abcdef"}
DATA: dict[str, Any] = {
    "visitor_fingerprint": "fp_1",
    "session_id": "sess_1",
    "customer_id": "cus_1",
    "amount": 49.99,
    "transaction_id": "tx_1",
    "event_type": "purchase",
}


def nested(levels: int) -> object:
    value: object = 1
    for _ in range(levels):
        value = [value]
    return value


def body(data: object = DATA, kind: object = "revenue", **extra: object) -> bytes:
    return json.dumps({"type": kind, "data": data, **extra}).encode()


@pytest.fixture
def store() -> MemoryStore:
    return MemoryStore()


@pytest.fixture
def ingest(store: MemoryStore) -> Ingest:
    return Ingest(store)


def test_accepts_and_records(ingest: Ingest, store: MemoryStore) -> None:
    answer = ingest.handle(SECRET, body(), now=0)
    assert (answer.status, dict(answer.body)) == (202, {"success": True})
    (event,) = store.events
    assert str(event.amount) == "49.99"
    assert store.rejected == []


def test_repeat_of_transaction_and_type_is_409(ingest: Ingest, store: MemoryStore) -> None:
    ingest.handle(SECRET, body(), now=0)
    again = ingest.handle(SECRET, body({**DATA, "amount": 1}), now=0)
    other_type = ingest.handle(SECRET, body({**DATA, "event_type": "renewal"}), now=0)
    assert (again.status, again.message) == (409, "Duplicate transaction")
    assert other_type.status == 202
    assert len(store.events) == 2
    assert [r.status for r in store.rejected] == [409]


@pytest.mark.parametrize(
    ("headers", "payload", "status", "message"),
    [
        ({}, body(), 401, "Missing API token"),
        ({"x-api-token": ""}, body(), 401, "Missing API token"),
        ({"x-api-token": "nonsense"}, body(), 401, "Invalid API token"),
        ({"x-api-token": "pub_0123456789"}, body(), 403, "Revenue events require secret token"),
        ({}, body(token="sec_in_the_body_0123"), 202, ""),
        ({}, body(token="pub_in_the_body_0123"), 403, "Revenue events require secret token"),
    ],
)
def test_token_rules(
    ingest: Ingest, headers: dict[str, str], payload: bytes, status: int, message: str
) -> None:
    answer = ingest.handle(headers, payload, now=0)
    assert (answer.status, answer.message) == (status, message)


def test_configured_token_list(store: MemoryStore) -> None:
    ingest = Ingest(store, tokens={"sec_good_0123456789"})
    good = ingest.handle({"x-api-token": "sec_good_0123456789"}, body(), now=0)
    bad = ingest.handle({"x-api-token": "sec_bad_0123456789"}, body(), now=0)
    assert good.status == 202
    assert (bad.status, bad.message) == (401, "Invalid API token")


def test_public_token_may_send_pageviews(ingest: Ingest, store: MemoryStore) -> None:
    answer = ingest.handle({"x-api-token": "pub_0123456789"}, body({}, kind="pageview"), now=0)
    assert answer.status == 202
    assert store.events == []


def test_validation_message_uses_the_api_wording(ingest: Ingest, store: MemoryStore) -> None:
    answer = ingest.handle(SECRET, body({**DATA, "amount": -5, "session_id": ""}), now=0)
    assert answer.status == 400
    assert answer.body["message"].startswith("session_id is required.")
    fields = [e["field"] for e in answer.body["errors"]]
    assert fields == ["session_id", "amount"]
    assert store.events == []


MALFORMED: list[tuple[str, bytes, str]] = [
    ("empty", b"", "not valid JSON"),
    ("truncated", body()[:-5], "not valid JSON"),
    ("not UTF-8", b'{"type": "revenue", "data": {"customer_id": "\xff\xfe"}}', "UTF-8"),
    ("array", b"[1, 2, 3]", "JSON object"),
    ("string", b'"revenue"', "JSON object"),
    ("NaN literal", b'{"type": "revenue", "data": {"amount": NaN}}', "not valid JSON"),
    ("no type", json.dumps({"data": DATA}).encode(), "type must be one of"),
    ("wrong type", body(kind="purchase"), "type must be one of"),
    ("type not a string", body(kind=["revenue"]), "type must be one of"),
    ("data missing", json.dumps({"type": "revenue"}).encode(), "data must be a JSON object"),
    ("data an array", body([DATA]), "data must be a JSON object"),
    ("unknown field", body({**DATA, "amuont": 5}), "unknown field"),
    ("too large", body({**DATA, "metadata": {"x": "y" * MAX_BODY_BYTES}}), "larger than"),
    ("deep JSON", b"[" * 100_000, "nests too deeply"),
    ("deep metadata", body({**DATA, "metadata": {"a": nested(20)}}), "deeper"),
]
for _field in DATA:
    _bad: object
    for _bad in (None, [], {}, True):
        if _field == "event_type" and _bad is None:
            continue  # optional
        MALFORMED.append((f"{_field}={_bad!r}", body({**DATA, _field: _bad}), _field))
MALFORMED += [  # hostile input (issue 17): a 400 that says why, never a 500
    ("deep type", body(kind=nested(900)), "type must be one of"),
    ("deep amount", body({**DATA, "amount": nested(900)}), "amount must be a positive number"),
    ("metadata of many values", body({**DATA, "metadata": {"a": [0] * 10_001}}), "at most 10000"),
    ("huge number", body({**DATA, "metadata": {"n": 10**4000}}), "at most 400 digits"),
    ("huge exponent", body({**DATA, "amount": "1e999999999"}), "amount is out of range"),
]


@pytest.mark.parametrize(("name", "payload", "wanted"), MALFORMED, ids=[m[0] for m in MALFORMED])
def test_malformed_bodies_get_a_400_that_says_why(
    ingest: Ingest, store: MemoryStore, name: str, payload: bytes, wanted: str
) -> None:
    answer = ingest.handle(SECRET, payload, now=0)
    assert answer.status == 400, name
    assert wanted in json.dumps(dict(answer.body)), answer.body
    assert store.events == []
    assert [r.status for r in store.rejected] == [400]


def test_rate_limit_answers_429_with_retry_after(store: MemoryStore) -> None:
    ingest = Ingest(store, rate_limit=RateLimit(2, 10.0))
    answers = [
        ingest.handle(SECRET, body({**DATA, "transaction_id": f"tx_{t}"}), now=t)
        for t in (0.0, 1.0, 2.5, 9.9, 10.0)
    ]
    assert [a.status for a in answers] == [202, 202, 429, 429, 202]
    assert answers[2].headers == {"Retry-After": "8"}  # 7.5 s left, rounded up
    assert answers[3].headers == {"Retry-After": "1"}  # never less than a second
    assert answers[2].message == "Rate limited"


def test_occurred_at_is_not_a_wire_field_of_data(ingest: Ingest) -> None:
    answer = ingest.handle(SECRET, body({**DATA, "occurred_at": "2024-01-01T00:00:00Z"}), now=0)
    assert answer.status == 400
    assert "occurred_at" in answer.message
    moved = {**DATA, "metadata": {"occurred_at": "2024-01-01T00:00:00Z"}}  # where it travels
    assert ingest.handle(SECRET, body(moved), now=0).status == 202


def test_a_token_key_written_with_an_escape_is_redacted_too(
    ingest: Ingest, store: MemoryStore
) -> None:
    raw = body({**DATA, "amount": -1}, token="sec_in_the_body_SECRET_0123").decode()
    escaped = raw.replace('"token"', '"\\u0074oken"', 1)  # the same JSON
    assert ingest.handle({}, escaped.encode(), now=0).status == 400  # the token was read
    (rejection,) = store.rejected
    assert "SECRET" not in rejection.body


@pytest.mark.parametrize(
    "sent",
    [
        b'{"token": "sec_in_the_body_SECRET_0123", "token": 1, "type": "revenue"}',
        b'{"\\u0074oken": "\\u0073ec_in_the_body_SECRET_0123", "type": ',  # and cut short
        b'[{"token": "sec_in_the_body_SECRET_0123"}]',
        '{"token": "sec_in_the_body_SECRET_0123", '.encode("utf-16"),
    ],
    ids=["a-second-token-key", "escaped-and-not-json", "not-an-object", "utf-16-cut-short"],
)
def test_a_body_that_cannot_be_redacted_is_withheld(
    ingest: Ingest, store: MemoryStore, sent: bytes
) -> None:
    assert ingest.handle({}, sent, now=0).status in (400, 401)
    (rejection,) = store.rejected
    assert "SECRET" not in rejection.body
    assert "SECRET" not in rejection.body.encode().decode("utf-16", errors="ignore")


def test_rejected_bodies_never_keep_the_token(ingest: Ingest, store: MemoryStore) -> None:
    token = "sec_in_the_body_SECRET_0123"
    ingest.handle({}, body({**DATA, "amount": -1}, token=token), now=0)
    (rejection,) = store.rejected
    assert "SECRET" not in rejection.body
    assert json.loads(rejection.body)["token"] == "sec_…0123"
