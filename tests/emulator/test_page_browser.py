"""The emulator's page as a user sees it: rendered by a headless Chromium at 1280x900.

One emulator and one browser for the module: real events sent through the
client (and refused requests posted raw), then the page loaded and looked at.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime

import httpx
import pytest
from selenium.webdriver.chrome.webdriver import WebDriver
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webelement import WebElement

from pulsora_revenue import SyncRevenue, testing

from ..data import EVENT, TOKEN
from . import browser as browser_module
from .browser import WIDTH


def _on(day: int) -> datetime:
    return datetime(2026, 11, day, 12, 30, tzinfo=UTC)


#: What the page is shown: three days of euros with MRR, and dollars without.
EVENTS = [
    {
        **EVENT,
        "visitor_fingerprint": "fp_page_big",
        "session_id": "sess_page_big",
        "transaction_id": "tx_big",
        "amount": "1226784.30",
        "currency": "EUR",
        "occurred_at": _on(2),
    },
    {**EVENT, "transaction_id": "tx_2", "amount": "250", "currency": "EUR", "occurred_at": _on(3)},
    {
        **EVENT,
        "transaction_id": "sub_1",
        "event_type": "subscription",
        "amount": "30",
        "mrr_impact": "30",
        "currency": "EUR",
        "occurred_at": _on(3),
    },
    {
        **EVENT,
        "transaction_id": "up_1",
        "event_type": "upgrade",
        "amount": "60",
        "mrr_impact": "60",
        "currency": "EUR",
        "occurred_at": _on(5),
    },
    {**EVENT, "transaction_id": "us_1", "amount": "1000.5", "currency": "USD"},
]

#: A refused event with exactly three problems.
THREE_PROBLEMS = {
    **{k: v for k, v in EVENT.items() if k != "event_type"},
    "event_type": "gift",
    "currency": "XYZ",
    "is_recurring": "yes",
}

#: A refused body far longer than a table cell.
LONG_NOTE = "lorem ipsum " * 500


@pytest.fixture(scope="module")
def site() -> Iterator[str]:
    """The page's URL, on an emulator that has received ``EVENTS`` and two refusals."""
    with testing.serve_emulator() as emulator:
        with SyncRevenue(TOKEN, endpoint=emulator.endpoint) as revenue:
            for event in EVENTS:
                revenue.track(event)
        with httpx.Client(headers={"X-API-Token": TOKEN}) as client:
            for data in (THREE_PROBLEMS, {"note": LONG_NOTE}):
                content = json.dumps({"type": "revenue", "data": data})
                assert client.post(emulator.endpoint, content=content).status_code == 400
        yield emulator.url


@pytest.fixture
def page(site: str, browser: WebDriver) -> WebDriver:
    browser.get(site)
    return browser


def _table(page: WebDriver, heading: str) -> WebElement:
    return page.find_element(By.XPATH, f"//h2[.='{heading}']/following-sibling::table[1]")


def _row(table: WebElement, text: str) -> list[WebElement]:
    """The cells of the first row of *table* that shows *text*."""
    for row in table.find_elements(By.CSS_SELECTOR, "tbody tr"):
        if text in row.text:
            return row.find_elements(By.TAG_NAME, "td")
    raise AssertionError(f"no row shows {text!r}")


def _on_screen(page: WebDriver, element: WebElement) -> bool:
    """Whether *element* is displayed, and within the window's width."""
    right = element.rect["x"] + element.rect["width"]
    return element.is_displayed() and right <= page.execute_script("return innerWidth")


def test_each_event_shows_its_visitor_fingerprint_and_session(page: WebDriver) -> None:
    cells = _row(_table(page, "Latest events"), "tx_big")
    shown = {cell.text: cell for cell in cells}
    assert "fp_page_big" in shown
    assert "sess_page_big" in shown
    assert _on_screen(page, shown["fp_page_big"])
    assert _on_screen(page, shown["sess_page_big"])


def test_amounts_have_thousands_separators(page: WebDriver) -> None:
    event = [cell.text for cell in _row(_table(page, "Latest events"), "tx_big")]
    totals = [cell.text for cell in _row(_table(page, "Totals per currency"), "EUR")]
    assert "1,226,784.30" in event
    assert totals[1:] == ["1,227,124.30", "0.00", "1,227,124.30"]
    assert "1,000.50" in _row(_table(page, "Totals per currency"), "USD")[1].text


def test_a_rejection_shows_every_problem(page: WebDriver) -> None:
    problems = _row(_table(page, "Latest rejected requests"), "XYZ")[2]
    text = problems.text
    assert "event_type must be one of" in text
    assert "currency must be an active ISO 4217 code" in text
    assert "is_recurring must be a boolean" in text
    assert _on_screen(page, problems)


def test_a_long_body_is_folded_under_a_preview(page: WebDriver) -> None:
    body = _row(_table(page, "Latest rejected requests"), "lorem ipsum")[3]
    shown = body.find_element(By.XPATH, "./*")
    assert "lorem ipsum" in shown.text
    assert shown.rect["height"] < 2 * _line_height(page, body), "one line, not the whole body"
    shown.find_element(By.TAG_NAME, "summary").click()
    unfolded = body.find_element(By.TAG_NAME, "pre")
    assert unfolded.is_displayed()
    assert "lorem ipsum lorem ipsum" in unfolded.text
    assert unfolded.rect["height"] <= 0.5 * page.get_window_size()["height"]


def test_no_mrr_row_for_a_currency_without_mrr(page: WebDriver) -> None:
    rows = _table(page, "MRR movement").find_elements(By.CSS_SELECTOR, "tbody tr")
    assert [row.find_element(By.TAG_NAME, "td").text for row in rows] == ["EUR"]
    assert [cell.text for cell in _row(_table(page, "MRR movement"), "EUR")][1:] == [
        "30.00",
        "60.00",
        "0.00",
        "0.00",
        "90.00",
    ]


def test_timestamps_stay_on_one_line(page: WebDriver) -> None:
    received = [
        table.find_element(By.CSS_SELECTOR, "tbody td")
        for table in (_table(page, "Latest events"), _table(page, "Latest rejected requests"))
    ]
    for cell in received:
        assert len(cell.text) == len("2026-12-08 14:03:07")
        height = page.execute_script(
            "const range = document.createRange(); range.selectNodeContents(arguments[0]);"
            " return range.getBoundingClientRect().height",
            cell,
        )
        assert height < 1.5 * _line_height(page, cell), f"{cell.text!r} wraps"


def test_charts_show_revenue_per_day_and_mrr_per_currency(page: WebDriver) -> None:
    charts = page.find_elements(By.CSS_SELECTOR, "svg[role=img]")
    labels = [chart.get_attribute("aria-label") or "" for chart in charts]
    assert [label.split(",")[0] for label in labels] == [
        "Revenue per day in EUR",
        "MRR in EUR",
        "Revenue per day in USD",
    ]
    revenue, mrr, _ = charts
    assert "highest 1,226,784.30 EUR on 2026-11-02" in labels[0]
    assert "90.00 EUR at the end" in labels[1]
    for chart in charts:
        assert _on_screen(page, chart)
        assert chart.find_element(By.TAG_NAME, "title").get_attribute("textContent")
    texts = [text.text for text in revenue.find_elements(By.TAG_NAME, "text")]
    assert texts == ["0.00 EUR", "1,226,784.30 EUR", "2026-11-02", "2026-11-05"]
    assert len(revenue.find_elements(By.TAG_NAME, "rect")) == 3, "a bar for each day with events"
    assert "90.00 EUR" in [text.text for text in mrr.find_elements(By.TAG_NAME, "text")]


def test_the_page_fits_the_window(page: WebDriver) -> None:
    assert page.execute_script("return document.documentElement.scrollWidth") <= WIDTH


def test_refresh_reloads_the_page(site: str, browser: WebDriver) -> None:
    browser.get(f"{site}/?refresh=5")
    meta = browser.find_element(By.CSS_SELECTOR, "meta[http-equiv=refresh]")
    assert meta.get_attribute("content") == "5"
    assert "reloads every 5 s" in browser.find_element(By.TAG_NAME, "body").text


def _line_height(page: WebDriver, element: WebElement) -> float:
    value = page.execute_script("return getComputedStyle(arguments[0]).lineHeight", element)
    return float(str(value).removesuffix("px"))


def test_without_chromedriver_the_browser_tests_are_skipped_saying_why(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(
        browser_module, "find", lambda program: None if program == "chromedriver" else "/x"
    )
    with pytest.raises(pytest.skip.Exception, match="need chromedriver, not found"):
        browser_module.start_chromium()
