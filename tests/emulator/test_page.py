"""The emulator's page in HTML, without a browser: its numbers, charts, refusals and refresh.

How it looks in a browser is in test_page_browser.py.
"""

from __future__ import annotations

import html
import json
import sqlite3
from collections.abc import Iterator
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from pulsora_revenue import RevenueEvent
from pulsora_revenue._emulator import _charts
from pulsora_revenue._emulator._app import create_app
from pulsora_revenue._emulator._contract import Ingest
from pulsora_revenue._emulator._database import SQLiteStore
from pulsora_revenue._emulator._format import amount, moment
from pulsora_revenue._emulator._page import MAX_REFRESH, MAX_SHOWN_ID, refresh_seconds, render

from ..data import EVENT, TOKEN

# --- amounts and moments -------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "currency", "shown"),
    [
        (Decimal("1226784.30"), "EUR", "1,226,784.30"),
        (Decimal("30"), "USD", "30.00"),  # padded to the currency's decimals
        (5000, "JPY", "5,000"),
        (Decimal("-20.05"), "EUR", "-20.05"),
        (Decimal("-1234.5"), "BHD", "-1,234.500"),
        (Decimal("1E+3"), "USD", "1,000.00"),
        (Decimal("0.001"), "USD", "0.001"),  # more decimals than the currency's: kept
        (Decimal("1.5"), "JPY", "1.5"),
        (
            Decimal("123456789012345678901234567890.123456789012345678901234567890"),
            "USD",
            "123,456,789,012,345,678,901,234,567,890.123456789012345678901234567890",
        ),
        (None, "USD", ""),
    ],
)
def test_amounts_are_exact_with_thousands_separators(
    value: Decimal | int | None, currency: str, shown: str
) -> None:
    assert amount(value, currency) == shown


def test_a_moment_is_compact_and_in_utc() -> None:
    stamp = datetime(2026, 12, 8, 14, 3, 7, 900000, tzinfo=UTC).timestamp()
    assert moment(stamp) == "2026-12-08 14:03:07"
    assert moment(None) == ""


# --- what the database sums up ---------------------------------------------------------


@pytest.fixture
def store() -> Iterator[SQLiteStore]:
    database = SQLiteStore(":memory:")
    yield database
    database.close()


def _event(transaction_id: str, **fields: Any) -> RevenueEvent:
    return RevenueEvent(**{**EVENT, "transaction_id": transaction_id, **fields})


def _on(day: int) -> datetime:
    return datetime(2026, 11, day, 23, 59, tzinfo=UTC)


def test_revenue_per_day_is_every_amount_of_the_day_refunds_negative(store: SQLiteStore) -> None:
    store.record(_event("a", amount="100.10", occurred_at=_on(1)))
    store.record(_event("b", amount="30", event_type="subscription", occurred_at=_on(1)))
    store.record(_event("c", amount="-120.10", event_type="refund", occurred_at=_on(3)))
    store.record(_event("d", amount="0", event_type="churn", occurred_at=_on(3)))
    totals = store.summary().totals["USD"]
    assert totals.revenue_per_day() == [
        (date(2026, 11, 1), Decimal("130.10")),
        (date(2026, 11, 3), Decimal("-120.10")),
    ]


def test_an_event_without_occurred_at_counts_on_the_day_it_was_received(
    store: SQLiteStore,
) -> None:
    store.record(_event("a", amount="5"))
    (received,) = [e["received_at"] for e in store.events()]
    day = datetime.fromtimestamp(received, UTC).date()
    assert store.summary().totals["USD"].revenue_per_day() == [(day, Decimal(5))]


def test_occurred_at_counts_by_its_day_in_utc(store: SQLiteStore) -> None:
    store.record(_event("a", amount="5", occurred_at="2026-11-01T23:30:00-02:00"))
    assert store.summary().totals["USD"].revenue_per_day() == [(date(2026, 11, 2), Decimal(5))]


def test_mrr_over_time_is_the_running_sum_of_its_movements(store: SQLiteStore) -> None:
    store.record(_event("s", amount="30", event_type="subscription", mrr_impact="30", **_at(1)))
    store.record(_event("u", amount="60", event_type="upgrade", mrr_impact="60", **_at(4)))
    store.record(_event("t", amount="10", event_type="subscription", mrr_impact="10", **_at(4)))
    store.record(_event("d", amount="5", event_type="downgrade", mrr_impact="-20.5", **_at(6)))
    store.record(_event("c", amount="0", event_type="churn", mrr_impact="-30", **_at(9)))
    store.record(_event("r", amount="99", event_type="renewal", **_at(10)))
    totals = store.summary().totals["USD"]
    assert totals.mrr_over_time() == [
        (date(2026, 11, 1), Decimal("30")),
        (date(2026, 11, 4), Decimal("100")),
        (date(2026, 11, 6), Decimal("79.5")),
        (date(2026, 11, 9), Decimal("49.5")),
    ]
    assert totals.mrr_net == Decimal("49.5")


def _at(day: int) -> dict[str, datetime]:
    return {"occurred_at": _on(day)}


def test_sums_keep_every_digit(store: SQLiteStore) -> None:
    big = "999999999999999999999999999999.999999999999999999999999999999"
    store.record(_event("a", amount=big, event_type="subscription", mrr_impact=big, **_at(1)))
    store.record(_event("b", amount=big, event_type="upgrade", mrr_impact=big, **_at(1)))
    totals = store.summary().totals["USD"]
    twice = Decimal("1999999999999999999999999999999.999999999999999999999999999998")
    assert totals.gross == totals.net == totals.mrr_net == twice
    assert totals.revenue_per_day() == totals.mrr_over_time() == [(date(2026, 11, 1), twice)]


def test_only_currencies_whose_mrr_moved_have_mrr(store: SQLiteStore) -> None:
    store.record(_event("a", amount="5", currency="USD"))
    store.record(_event("b", amount="5", currency="GBP", event_type="subscription", mrr_impact=0))
    store.record(_event("c", amount="5", currency="EUR", event_type="subscription", mrr_impact=9))
    store.record(_event("d", amount="0", currency="EUR", event_type="churn", mrr_impact=-9))
    totals = store.summary().totals
    assert {c: t.has_mrr for c, t in totals.items()} == {"EUR": True, "GBP": False, "USD": False}
    page = render(store.summary(), endpoint="http://x/api/ingest")
    mrr = page[page.index("<h2>MRR movement</h2>") : page.index("<h2>Events per type</h2>")]
    assert "<td>EUR</td>" in mrr
    assert "<td>GBP</td>" not in mrr
    assert "<td>USD</td>" not in mrr
    assert page.count('aria-label="MRR in') == 1


# --- refusals ----------------------------------------------------------------------


def _refuse(store: SQLiteStore, data: dict[str, Any]) -> None:
    body = json.dumps({"type": "revenue", "data": data}).encode()
    assert Ingest(store).handle({"x-api-token": TOKEN}, body, now=0).status == 400


def test_a_refusal_keeps_every_problem(store: SQLiteStore) -> None:
    _refuse(store, {**EVENT, "event_type": "gift", "currency": "XYZ", "is_recurring": "yes"})
    (refused,) = store.rejections()
    assert [p["field"] for p in refused["problems"]] == ["event_type", "currency", "is_recurring"]
    page = render(store.summary(), endpoint="http://x/api/ingest")
    assert page.count("<li>") == 3
    for problem in refused["problems"]:
        assert f"<li>{html.escape(problem['message'])}</li>" in page


def test_a_database_from_before_problems_were_kept_still_opens(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite"
    with sqlite3.connect(path) as old:
        old.execute(
            "CREATE TABLE rejected (id INTEGER PRIMARY KEY, received_at REAL NOT NULL,"
            " status INTEGER NOT NULL, message TEXT NOT NULL, body TEXT NOT NULL)"
        )
        old.execute("INSERT INTO rejected VALUES (1, 0, 401, 'Missing API token', '{}')")
    old.close()
    store = SQLiteStore(path)
    try:
        _refuse(store, {"amount": "x"})
        newer, older = store.rejections()
    finally:
        store.close()
    assert older["problems"] == []
    assert len(newer["problems"]) > 1
    assert "Missing API token" in render(store_summary(path), endpoint="http://x/")


def store_summary(path: Path) -> Any:
    store = SQLiteStore(path)
    try:
        return store.summary()
    finally:
        store.close()


def test_a_long_body_is_folded_and_a_short_one_is_not(store: SQLiteStore) -> None:
    _refuse(store, {"note": "<b>" + "x" * 500})
    _refuse(store, {})
    page = render(store.summary(), endpoint="http://x/api/ingest")
    assert page.count("<details>") == 1
    assert "<summary><code>{&quot;type&quot;: &quot;revenue&quot;" in page
    assert "<b>" not in page
    assert "<code>{&quot;type&quot;: &quot;revenue&quot;, &quot;data&quot;: {}}</code>" in page


def test_hostile_values_are_escaped_everywhere(store: SQLiteStore) -> None:
    hostile = "<script>alert(1)</script>"
    store.record(
        _event(
            hostile,
            visitor_fingerprint=hostile,
            session_id=f'"><img src=x onerror=alert(1)>{hostile}',
            customer_id=hostile,
            metadata={"plan": hostile},
        )
    )
    _refuse(store, {**EVENT, "amount": hostile, "currency": hostile, "event_type": hostile})
    page = render(store.summary(), endpoint=f"http://x/{hostile}", refresh=5)
    assert "<script>" not in page
    assert "<img" not in page
    assert html.escape(hostile) in page


def test_a_long_id_is_cut(store: SQLiteStore) -> None:
    store.record(_event("t", visitor_fingerprint="f" * 10_000))
    page = render(store.summary(), endpoint="http://x/")
    assert "f" * MAX_SHOWN_ID + "…" in page
    assert "f" * (MAX_SHOWN_ID + 1) not in page


# --- charts --------------------------------------------------------------------------


def test_bars_are_drawn_to_scale_with_their_amounts() -> None:
    first, last = date(2026, 11, 1), date(2026, 11, 4)
    svg = _charts.revenue_bars(
        [(first, Decimal("1226784.30")), (date(2026, 11, 2), Decimal("613392.15"))],
        "EUR",
        first,
        last,
    )
    # four days of 418 / 4 = 104.5 px; bars 40 px wide (the most), centred in their day;
    # 162.25 is written 162.2 (half to even)
    assert '<rect x="162.2" y="12.0" width="40.0" height="160.0"' in svg
    assert '<rect x="266.8" y="92.0" width="40.0" height="80.0"' in svg
    assert "<title>2026-11-02: 613,392.15 EUR</title>" in svg
    assert ">1,226,784.30 EUR</text>" in svg
    assert ">0.00 EUR</text>" in svg
    assert ">2026-11-01</text>" in svg
    assert ">2026-11-04</text>" in svg
    label = (
        "Revenue per day in EUR, 2026-11-01 to 2026-11-04: highest 1,226,784.30 EUR on 2026-11-01"
    )
    assert f'aria-label="{label}"' in svg
    assert f"<title>{label}</title>" in svg


def test_a_day_of_refunds_goes_below_zero() -> None:
    day = date(2026, 11, 1)
    svg = _charts.revenue_bars(
        [(day, Decimal(100)), (date(2026, 11, 2), Decimal(-60))], "USD", day, date(2026, 11, 2)
    )
    # 100 up and 60 down share 160 px: zero at 12 + 100 px
    assert 'y="112.0" width="40.0" height="60.0" fill="#c0504d"' in svg
    assert 'y="12.0" width="40.0" height="100.0" fill="#4a7bd0"' in svg
    assert ">-60.00 USD</text>" in svg


def test_mrr_steps_from_zero_through_each_day() -> None:
    first, last = date(2026, 11, 1), date(2026, 11, 4)
    points = [(date(2026, 11, 2), Decimal(30)), (date(2026, 11, 3), Decimal(90))]
    svg = _charts.mrr_steps(points, "EUR", first, last)
    assert 'd="M130.0 172.0 H234.5 V118.7 H339.0 V12.0 H548"' in svg
    assert ">90.00 EUR</text>" in svg
    assert 'aria-label="MRR in EUR, 2026-11-01 to 2026-11-04: 90.00 EUR at the end"' in svg


def test_a_chart_of_nothing_but_zero_draws() -> None:
    day = date(2026, 11, 1)
    svg = _charts.revenue_bars([(day, Decimal(0))], "JPY", day, day)
    assert ">0 JPY</text>" in svg
    assert ">2026-11-01</text>" in svg


def test_charts_are_drawn_on_the_page_per_currency(store: SQLiteStore) -> None:
    store.record(_event("a", amount="5", currency="USD"))
    store.record(_event("b", amount="5", currency="EUR", event_type="subscription", mrr_impact=5))
    page = render(store.summary(), endpoint="http://x/")
    assert page.count("<svg ") == 3
    assert page.index('aria-label="Revenue per day in EUR') < page.index('aria-label="MRR in EUR')
    assert page.index('aria-label="MRR in EUR') < page.index('aria-label="Revenue per day in USD')


# --- refresh -------------------------------------------------------------------------


@pytest.mark.parametrize("text", ["1", "5", "0005", str(MAX_REFRESH)])
def test_refresh_takes_whole_seconds(text: str) -> None:
    assert refresh_seconds(text) == int(text)


@pytest.mark.parametrize(
    "text", ["", "0", "-5", "1.5", " 5", "abc", "٥", str(MAX_REFRESH + 1), "9" * 5000]
)
def test_refresh_refuses_anything_else(text: str) -> None:
    with pytest.raises(ValueError, match=f"from 1 to {MAX_REFRESH}"):
        refresh_seconds(text)


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    with TestClient(create_app(tmp_path / "events.sqlite")) as test_client:
        yield test_client


def test_the_page_refreshes_when_asked(client: TestClient) -> None:
    plain = client.get("/")
    assert plain.status_code == 200
    assert "http-equiv" not in plain.text
    assert 'href="?refresh=5"' in plain.text
    asked = client.get("/", params={"refresh": "30"})
    assert '<meta http-equiv="refresh" content="30">' in asked.text


@pytest.mark.parametrize("text", ["0", "x", "<script>", "100000"])
def test_a_bad_refresh_is_a_400_saying_why(client: TestClient, text: str) -> None:
    response = client.get("/", params={"refresh": text})
    assert response.status_code == 400
    assert response.headers["content-type"].startswith("text/plain")
    assert f"refresh must be whole seconds from 1 to {MAX_REFRESH}" in response.text
