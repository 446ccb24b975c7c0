"""Hostile input: deep, huge or unprintable values are a ValidationError, never a crash.

Each finding of issue 17 (item 4) has a regression test here; the property tests
at the end feed arbitrary JSON-like values, deep structures and values whose
``repr`` fails to every entry point that validates.
"""

from __future__ import annotations

import contextlib
import io
import json
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta, tzinfo
from decimal import Decimal
from typing import Any

import attrs
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pulsora_revenue import (
    DuplicateTransactionError,
    Outcome,
    OutcomeStatus,
    Revenue,
    RevenueEvent,
    ValidationError,
    _json,
)
from pulsora_revenue._cli._backfill import write_failure
from pulsora_revenue._cli._commands import _problems
from pulsora_revenue._cli._rows import read
from pulsora_revenue._convert import CONVERTER, to_event
from pulsora_revenue._emulator._contract import Ingest
from pulsora_revenue._emulator._fake import MemoryStore
from pulsora_revenue._emulator._faults import Fault
from pulsora_revenue._errors import SHOWN, received
from pulsora_revenue._fields import MAX_EVENT_TEXT, MAX_METADATA_VALUES
from pulsora_revenue.testing import FakePulsora

from .conftest import DevServer, examples
from .data import EVENT, TOKEN

SECRET = {"x-api-token": TOKEN}

REQUIRED = ("visitor_fingerprint", "session_id", "customer_id", "amount", "transaction_id")
FIELDS = tuple(field.name for field in attrs.fields(RevenueEvent))


def nested(levels: int, leaf: object = 1) -> object:
    value = leaf
    for _ in range(levels):
        value = [value]
    return value


def nested_dicts(levels: int) -> object:
    value: object = 1
    for _ in range(levels):
        value = {"a": value}
    return value


class ReprRaises(int):
    def __repr__(self) -> str:
        raise TypeError("no repr for you")


class ReprRaisesStr(str):
    def __repr__(self) -> str:
        raise RuntimeError("no repr for you")


class ReprRaisesFloat(float):
    def __repr__(self) -> str:
        raise ValueError("no repr for you")


class ReprNotText:
    def __repr__(self) -> Any:
        return 42


class ReprRecurses:
    def __repr__(self) -> str:
        return repr(self)


class OffsetOverADay(tzinfo):
    def utcoffset(self, dt: datetime | None) -> timedelta:
        return timedelta(hours=25)

    def dst(self, dt: datetime | None) -> None:
        return None

    def tzname(self, dt: datetime | None) -> str:
        return "+25"


class OffsetNoTimedelta(OffsetOverADay):
    def utcoffset(self, dt: datetime | None) -> Any:
        return 5


def invalid(**overrides: object) -> ValidationError:
    with pytest.raises(ValidationError) as info:
        RevenueEvent(**{**EVENT, **overrides})
    return info.value


def refusal(build: Callable[[], object]) -> ValidationError | None:
    """The ValidationError *build* raises, or None; anything else fails the test."""
    try:
        build()
    except ValidationError as exc:
        return exc
    return None


# --- received: bounded and safe -----------------------------------------------------


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        (ReprRaises(5), "<unrepresentable int subclass>"),
        (ReprRaisesStr("x"), "<unrepresentable str subclass>"),
        (ReprRaisesFloat(1.5), "<unrepresentable float subclass>"),
        (ReprNotText(), "<unrepresentable ReprNotText>"),
        (ReprRecurses(), "<unrepresentable ReprRecurses>"),
        (10**5000, "<an int of 16610 bits>"),
        (
            {ReprRaises(1): [ReprRaisesStr("y")]},
            "{<unrepresentable int subclass>: [<unrepresentable str subclass>]}",
        ),
        (["a", 1, (2,), {"b": None}], "['a', 1, (2,), {'b': None}]"),
    ],
    ids=["int", "str", "float", "not-text", "recursing", "huge-int", "inside", "plain"],
)
def test_received_names_what_it_cannot_show(value: object, shown: str) -> None:
    assert received(value) == shown


@pytest.mark.parametrize(
    "value",
    [
        nested(100_000),
        nested_dicts(100_000),
        tuple(nested(100_000)),  # type: ignore[arg-type]
        "x" * 10_000_000,
        list(range(1_000_000)),
        {str(n): n for n in range(100_000)},
        nested(100_000, ReprRaises(1)),
    ],
    ids=["deep-list", "deep-dict", "deep-tuple", "long-text", "long-list", "big-dict", "hostile"],
)
def test_received_is_bounded(value: object) -> None:
    started = time.perf_counter()
    text = received(value)
    assert len(text) <= SHOWN
    assert time.perf_counter() - started < 0.5  # a cut, not a walk of the whole value


def test_received_of_a_list_that_holds_itself() -> None:
    loop: list[object] = []
    loop.append(loop)
    assert received(loop).startswith("[[[[")


# --- every field: deep, hostile, huge ------------------------------------------------


@pytest.mark.parametrize("field", FIELDS)
@pytest.mark.parametrize("build", [nested, nested_dicts], ids=["lists", "dicts"])
def test_input_nested_100_000_deep_is_a_validation_error(field: str, build: Any) -> None:
    error = invalid(**{field: build(100_000)})
    assert error.paths[0].startswith(field)
    assert len(str(error)) < 2000


@pytest.mark.parametrize("field", FIELDS)
@pytest.mark.parametrize(
    "value",
    [ReprRaises(5), ReprRaisesStr(""), ReprRaisesFloat("nan"), ReprNotText(), ReprRecurses()],
    ids=["int", "str", "float", "not-text", "recursing"],
)
def test_a_value_whose_repr_fails_is_a_validation_error(field: str, value: object) -> None:
    error = refusal(lambda: RevenueEvent(**{**EVENT, field: value}))
    assert error is None or "<unrepresentable" in str(error) or "Received" not in str(error)


def test_a_hostile_int_subclass_is_named_by_its_base() -> None:
    error = invalid(customer_id=ReprRaises(5))
    assert error.errors[0].message == (
        "customer_id must be a string. Received: <unrepresentable int subclass>."
    )


def test_a_float_subclass_amount_is_read_by_its_value_not_its_repr() -> None:
    assert RevenueEvent(**{**EVENT, "amount": ReprRaisesFloat(1.5)}).amount == Decimal("1.5")


def test_a_huge_int_key_of_an_event_is_a_validation_error() -> None:
    with pytest.raises(ValidationError) as info:
        CONVERTER.structure({**EVENT, 10**5000: 1}, RevenueEvent)
    assert info.value.paths == ["<event>"]
    assert "unknown field(s): <an int of 16610 bits>." in str(info.value)


def test_a_huge_int_key_in_metadata_is_a_validation_error_with_its_path() -> None:
    error = invalid(metadata={"plan": {10**5000: 1}})
    assert error.paths == ["metadata.plan"]
    assert "keys must be strings. Received: <an int of 16610 bits>." in str(error)


def test_many_unknown_keys_are_named_in_part() -> None:
    with pytest.raises(ValidationError) as info:
        CONVERTER.structure({**EVENT, **{f"k{n}": n for n in range(100_000)}}, RevenueEvent)
    assert str(info.value).endswith("and 99980 more.")


@pytest.mark.parametrize("field", ["amount", "mrr_impact", "metadata"])
def test_a_huge_int_is_refused_without_converting_it(field: str) -> None:
    huge = 1 << (1 << 22)  # 1.26 million digits: minutes to convert to a Decimal
    started = time.perf_counter()
    error = invalid(**{field: {"n": huge} if field == "metadata" else huge})
    assert time.perf_counter() - started < 1
    assert "<an int of 4194305 bits>" in str(error)


def test_metadata_keys_that_are_no_identifiers_have_a_bounded_path() -> None:
    key = "plan name " * 1000
    error = invalid(metadata={key: {1}})
    assert len(error.paths[0]) < 100
    assert error.paths[0].startswith("metadata['plan name plan name")


@pytest.mark.parametrize("zone", [OffsetOverADay(), OffsetNoTimedelta()], ids=["25h", "int"])
def test_a_time_zone_without_a_valid_offset_is_a_validation_error(zone: tzinfo) -> None:
    error = invalid(occurred_at=datetime(2024, 1, 1, tzinfo=zone))
    assert error.paths == ["occurred_at"]
    assert "without a valid UTC offset" in str(error)


# --- sizes ---------------------------------------------------------------------------


def test_metadata_holds_at_most_max_values() -> None:
    assert RevenueEvent(**EVENT, metadata={"a": [0] * (MAX_METADATA_VALUES - 1)}).metadata
    error = invalid(metadata={"a": [0] * MAX_METADATA_VALUES})
    assert error.paths == ["metadata"]
    assert f"at most {MAX_METADATA_VALUES} values" in str(error)


def test_a_huge_metadata_is_not_walked_to_its_end() -> None:
    bad = [{1}] * 10_000_000  # every one of them would be an error of its own
    started = time.perf_counter()
    error = invalid(metadata={"a": bad})
    assert time.perf_counter() - started < 1
    assert len(error.errors) <= MAX_METADATA_VALUES + 1


def test_an_event_holds_at_most_max_text() -> None:
    used = sum(len(EVENT[field]) for field in REQUIRED if field != "amount")
    fits = {"k": "x" * (MAX_EVENT_TEXT - used - 1)}  # its key counts too
    assert RevenueEvent(**EVENT, metadata=fits).metadata == fits
    error = invalid(metadata={"k": "x" * (MAX_EVENT_TEXT - used)})
    assert error.paths == ["metadata"]
    assert f"at most {MAX_EVENT_TEXT} characters" in str(error)


def test_strings_over_the_text_limit_are_refused_once() -> None:
    error = invalid(customer_id="c" * MAX_EVENT_TEXT, metadata={"k": "v"})
    assert error.paths == ["<event>"]


# --- entry points: converter, track, track_many, validate -------------------------


def test_to_event_of_a_deep_value_is_a_validation_error() -> None:
    with pytest.raises(ValidationError) as info:
        to_event(nested(100_000), {})
    assert info.value.paths == ["<event>"]


@pytest.mark.anyio
async def test_track_of_a_deep_value_is_a_validation_error() -> None:
    fake = FakePulsora()
    async with Revenue(TOKEN, transport=fake.transport) as revenue:
        with pytest.raises(ValidationError):
            await revenue.track({**EVENT, "amount": nested(100_000)})
    assert fake.requests == 0


@pytest.mark.anyio
async def test_one_deep_item_is_one_invalid_outcome_of_track_many() -> None:
    fake = FakePulsora()
    items: list[object] = [{**EVENT, "transaction_id": f"tx_{n}"} for n in range(5)]
    items.insert(2, {**EVENT, "transaction_id": nested(100_000)})
    items.insert(4, nested_dicts(100_000))
    outcomes: list[Outcome] = []
    async with Revenue(TOKEN, transport=fake.transport) as revenue:
        report = await revenue.track_many(items, on_result=outcomes.append)  # type: ignore[arg-type]
    assert (report.total, report.sent, report.invalid) == (7, 5, 2)
    assert sorted(o.index for o in outcomes if o.status is OutcomeStatus.INVALID) == [2, 4]


def test_validate_reports_a_deep_row() -> None:
    (problem,) = _problems({**EVENT, "amount": nested(100_000)})
    assert problem.startswith("amount: amount must be a positive number: a value of type list")
    assert ". Received: [[[[" in problem


# --- the emulator --------------------------------------------------------------------


def deep_body(levels: int, field: str = "amount") -> bytes:
    opened, closed = "[" * levels, "]" * levels
    data = json.dumps({**EVENT, field: "__deep__"})
    data = data.replace('"__deep__"', f"{opened}1{closed}")
    return ('{"type": "revenue", "data": ' + data + "}").encode()


@pytest.mark.parametrize("field", ["amount", "transaction_id", "currency", "metadata"])
@pytest.mark.parametrize("levels", [900, 990, 5000, 100_000])
def test_the_emulator_answers_400_to_a_deep_body(field: str, levels: int) -> None:
    store = MemoryStore()
    answer = Ingest(store).handle(SECRET, deep_body(levels, field), now=0)
    assert answer.status == 400
    assert store.events == []
    json.loads(answer.encode())  # the answer itself is writable


@pytest.mark.parametrize("field", ["amount", "transaction_id", "currency", "metadata"])
def test_the_emulator_answers_400_to_a_body_as_deep_as_json_reads(field: str) -> None:
    # Deep enough that json.loads (almost) fails: describing the value went deeper, and
    # failed where reading it had not. Where that is depends on the stack: try them all.
    store = MemoryStore()
    answers = [Ingest(store).handle(SECRET, deep_body(n, field), now=0) for n in range(700, 1000)]
    assert {a.status for a in answers} == {400}
    assert store.events == []


def test_the_emulator_answers_400_to_a_deep_type() -> None:
    body = ('{"type": ' + "[" * 950 + "]" * 950 + ', "data": {}}').encode()
    answer = Ingest(MemoryStore()).handle(SECRET, body, now=0)
    assert (answer.status, answer.message[:19]) == (400, "type must be one of")


@pytest.mark.parametrize(
    "spec",
    [
        {"status": nested(900)},
        {"drop": nested(900)},
        {"delay": nested(900)},
        {"retry_after": 10**4000},
        {"delay": Decimal("1e400")},
        {"delay": -1},
        {nested_dicts(3) and "surprise": 1},
    ],
    ids=["status", "drop", "delay", "huge-int", "infinite", "negative", "unknown"],
)
def test_a_bad_fault_is_a_value_error(spec: dict[str, object]) -> None:
    with pytest.raises(ValueError, match=r"must be|unknown fault keys") as info:
        Fault.from_json(spec)
    assert len(str(info.value)) < 200


@pytest.mark.parametrize(
    "body",
    [
        b'{"faults": ' + b"[" * 100_000,
        b'{"faults": [' + b"[" * 990 + b"]" * 990 + b"]}",
        b'{"faults": [{"status": ' + b"[" * 990 + b"]" * 990 + b"}]}",
        b'{"faults": [], "outage": {"seconds": 1' + b"0" * 400 + b"}}",
    ],
    ids=["deeper-than-json", "deep-fault", "deep-status", "huge-seconds"],
)
def test_the_dev_server_answers_400_to_a_bad_fault_script(server: DevServer, body: bytes) -> None:
    """The server runs in its own thread: a plain client, and no event loop, test it."""
    response = server.http.post(f"{server.url}/api/faults", content=body)
    probe = server.http.post(f"{server.url}/api/faults", json={"faults": []})
    assert response.status_code == 400, response.text
    assert response.json()["error"].startswith("Bad fault script")
    assert probe.json()["pending"] == 0


def test_the_dev_server_answers_400_to_a_deep_body(server: DevServer) -> None:
    post = server.http.post
    statuses = {
        post(server.endpoint, headers=SECRET, content=deep_body(n)).status_code
        for n in [*range(700, 1000), 100_000]
    }
    assert statuses == {400}
    assert server.events() == []


# --- the failures file ---------------------------------------------------------------

MIXED_KEYS: dict[Any, Any] = {**EVENT, 1: ReprNotText()}


@pytest.mark.parametrize(
    ("row", "check"),
    [
        ({**EVENT, "amount": nested(5000)}, lambda r: r["amount"][0][0]),
        ({**EVENT, "metadata": nested_dicts(5000)}, lambda r: r["metadata"]["a"]),
        ({**EVENT, "amount": Decimal("1e9999")}, lambda r: r["amount"] == Decimal("1e9999")),
        ({**EVENT, "amount": Decimal("NaN")}, lambda r: r["amount"] == "Decimal('NaN')"),
        ({**EVENT, "metadata": {"tags": {"a"}}}, lambda r: r["metadata"]["tags"] == "{'a'}"),
        ({**EVENT, "transaction_id": "tx_\ud800"}, lambda r: r["transaction_id"] == "tx_\ud800"),
        ({**EVENT, "customer_id": "café"}, lambda r: r["customer_id"] == "café"),
        (MIXED_KEYS, lambda r: r["1"] == "<unrepresentable ReprNotText>"),
        ({**EVENT, "amount": 10**5000}, lambda r: r["amount"] == "<an int of 16610 bits>"),
    ],
    ids=["deep", "deep-dicts", "huge-exponent", "nan", "set", "surrogate", "utf-8", "key", "int"],
)
def test_a_failure_is_written_whatever_the_row_holds(row: dict[Any, Any], check: Any) -> None:
    out = io.StringIO()
    write_failure(out, 7, row, "Invalid event (1 problem): ...")
    line = out.getvalue()
    assert line.endswith("\n")
    assert line.count("\n") == 1
    line.encode()  # UTF-8 can carry it
    record = _json.loads(line)
    assert (record["_line"], record["_error"]) == (7, "Invalid event (1 problem): ...")
    assert check(record)
    (again,) = read(io.StringIO(line), "jsonl")  # taken as input again
    assert again.fields is not None


def test_a_jsonl_line_too_deep_to_read_is_one_unreadable_row() -> None:
    (row,) = read(io.StringIO("[" * 100_000 + "\n"), "jsonl")
    assert (row.fields, row.problem) == (None, "JSON nested too deeply to read")


# --- properties: no input raises anything but the documented errors -----------------

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**600), max_value=10**600)
    | st.floats()
    | st.decimals()
    | st.text(max_size=20)
)
json_like = st.recursive(
    json_scalars,
    lambda children: (
        st.lists(children, max_size=4)
        | st.tuples(children, children)
        | st.dictionaries(st.text(max_size=5), children, max_size=4)
    ),
    max_leaves=20,
)
hostile = st.sampled_from(
    [
        ReprRaises(5),
        ReprRaisesStr("pi_1"),
        ReprRaisesFloat(1.5),
        ReprNotText(),
        ReprRecurses(),
        {1, 2},
        b"bytes",
        complex(1, 2),
        datetime(2024, 1, 1, tzinfo=UTC),
        datetime(2024, 1, 1),
        object(),
        1 << 100_000,
        Decimal("sNaN"),
        Decimal("1e999999999"),
        "\ud800",
        " ",
        {10**5000: 1},
        {ReprRaises(1): 1},
    ]
) | st.builds(
    lambda: datetime(2024, 1, 1, tzinfo=OffsetOverADay())  # built when drawn: it has no hash
)
deep = st.builds(
    lambda levels, dicts, leaf: nested_dicts(levels) if dicts else nested(levels, leaf),
    st.integers(min_value=17, max_value=3000),
    st.booleans(),
    st.one_of(json_scalars, hostile),
)
anything = st.one_of(json_like, hostile, deep, st.lists(st.one_of(hostile, deep), max_size=3))
events = st.fixed_dictionaries(
    {field: st.one_of(st.just(EVENT[field]), anything) for field in REQUIRED},
    optional={field: anything for field in FIELDS if field not in REQUIRED},
)
inputs = st.one_of(events, anything)


@settings(max_examples=examples(300), deadline=None)
@given(event=events)
def test_revenue_event_raises_nothing_but_validation_error(event: dict[str, Any]) -> None:
    error = refusal(lambda: RevenueEvent(**event))
    assert error is None or len(str(error)) < 300 * len(error.errors) + 100


@settings(max_examples=examples(300), deadline=None)
@given(value=inputs)
def test_structure_and_validate_raise_nothing_but_validation_error(value: object) -> None:
    refusal(lambda: to_event(value, {}))
    if isinstance(value, dict):
        _problems(value)
        out = io.StringIO()
        write_failure(out, 1, value, "invalid")
        assert out.getvalue().count("\n") == 1


def body_of(value: object) -> Iterator[bytes]:
    yield _json.dumps_lenient({"type": "revenue", "data": value}).encode()
    yield _json.dumps_lenient(value).encode()


@settings(max_examples=examples(300), deadline=None)
@given(value=inputs, raw=st.binary(max_size=50))
def test_the_emulator_answers_every_body(value: object, raw: bytes) -> None:
    ingest = Ingest(MemoryStore())
    for body in (*body_of(value), raw):
        answer = ingest.handle(SECRET, body, now=0)
        assert answer.status in (202, 400, 409)
        json.loads(answer.encode())


@pytest.mark.anyio
@settings(
    max_examples=examples(40),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(items=st.lists(inputs, max_size=5))
async def test_track_and_track_many_raise_nothing_but_validation_error(
    items: list[object],
) -> None:
    fake = FakePulsora()
    async with Revenue(TOKEN, transport=fake.transport) as revenue:
        report = await revenue.track_many(items, concurrency=2)  # type: ignore[arg-type]
        assert report.total == len(items)
        assert report.failed == 0
        for item in items:  # invalid, or sent by track_many already
            with contextlib.suppress(ValidationError, DuplicateTransactionError):
                await revenue.track(item)  # type: ignore[arg-type]


def test_the_repr_of_an_outcome_or_failure_of_deep_input_is_short() -> None:
    from pulsora_revenue import BatchFailure, Outcome, OutcomeStatus

    deep: list[object] = []
    for _ in range(5_000):
        deep = [deep]
    for value in (
        Outcome(0, None, deep, OutcomeStatus.INVALID),
        BatchFailure(0, deep, Exception()),
    ):
        assert len(repr(value)) < 300
