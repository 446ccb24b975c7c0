"""The emulator's page: charts, totals, MRR movement, latest events and refused requests.

Plain HTML with inline SVG, no JavaScript; every value is escaped.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from html import escape
from typing import Any

from . import _charts
from ._database import CurrencyTotals, Summary
from ._format import amount, moment

#: The most seconds ``?refresh=`` may ask for between reloads.
MAX_REFRESH = 3600

#: The longest id shown; longer ones are cut, with an ellipsis.
MAX_SHOWN_ID = 100

#: A refused body longer than this, or of several lines, is folded under a preview this long.
PREVIEW = 80

_STYLE = """
body { font: 14px/1.4 system-ui, sans-serif; margin: 2rem; color: #222; }
h1 { font-size: 1.4rem; } h2 { font-size: 1.1rem; margin-top: 2rem; }
h3 { font-size: .95rem; margin: .5rem 0 .25rem; }
table { border-collapse: collapse; margin: .5rem 0; }
th, td { border-bottom: 1px solid #ddd; padding: .25rem .75rem; text-align: left;
  vertical-align: top; }
td.n { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
.t { white-space: nowrap; font-variant-numeric: tabular-nums; }
td.id { max-width: 14rem; overflow-wrap: anywhere; }
.muted { color: #777; } code { font-size: 12px; overflow-wrap: anywhere; }
ul { margin: 0; padding-left: 1.1rem; }
summary { cursor: pointer; white-space: nowrap; overflow: hidden; text-overflow: ellipsis;
  max-width: 36rem; }
pre { font-size: 12px; white-space: pre-wrap; overflow-wrap: anywhere; max-width: 48rem;
  max-height: 20rem; overflow: auto; margin: .25rem 0; }
.charts { display: flex; flex-wrap: wrap; gap: 1rem 2rem; } figure { margin: 0 0 1rem; }
"""


def refresh_seconds(text: str) -> int:
    """Read ``?refresh=``: whole seconds from 1 to ``MAX_REFRESH``, or ValueError saying so."""
    digits = text.isascii() and text.isdigit() and len(text) <= 9  # int() of more is dear
    if digits and 1 <= int(text) <= MAX_REFRESH:
        return int(text)
    raise ValueError(f"refresh must be whole seconds from 1 to {MAX_REFRESH}, not {text[:20]!r}")


def render(summary: Summary, *, endpoint: str, refresh: int | None = None) -> str:
    """Return the whole page for *summary*; with *refresh*, it reloads every that many seconds."""
    sections = [
        f"<h1>Pulsora ingest emulator</h1><p class=muted>POST events to "
        f"<code>{escape(endpoint)}</code>. {_refresh_note(refresh)}</p>",
        "<h2>Revenue per day and MRR over time</h2>" + _charts_per_currency(summary),
        "<h2>Totals per currency</h2>" + _totals(summary),
        "<h2>MRR movement</h2>" + _mrr(summary),
        "<h2>Events per type</h2>"
        + _table(["event type", "count"], [[k, v] for k, v in summary.counts.items()], "-n"),
        "<h2>Latest events</h2>" + _events(summary.events),
        "<h2>Latest rejected requests</h2>" + _rejected(summary.rejected),
    ]
    body = "\n".join(sections)
    reload = f'<meta http-equiv="refresh" content="{refresh}">' if refresh else ""
    return (
        f"<!doctype html><html lang=en><head><meta charset=utf-8>{reload}"
        "<title>Pulsora ingest emulator</title>"
        f"<style>{_STYLE}</style></head><body>{body}</body></html>"
    )


def _refresh_note(refresh: int | None) -> str:
    if refresh:
        return f'It reloads every {refresh} s (<a href="./">stop</a>).'
    return 'It does not reload by itself (<a href="?refresh=5">reload every 5 s</a>).'


def _charts_per_currency(summary: Summary) -> str:
    if not summary.totals:
        return "<p class=muted>Nothing yet.</p>"
    note = (
        "<p class=muted>Days are UTC: an event's <code>occurred_at</code> where it has one,"
        " else the day it was received (Pulsora itself records revenue when received)."
        " Revenue is every amount, refunds negative; MRR is the sum of the MRR moved so far.</p>"
    )
    return note + "".join(_currency_charts(c, t) for c, t in summary.totals.items())


def _currency_charts(currency: str, totals: CurrencyTotals) -> str:
    revenue = totals.revenue_per_day()
    first, last = revenue[0][0], revenue[-1][0]
    figures = [("Revenue per day", _charts.revenue_bars(revenue, currency, first, last))]
    if totals.has_mrr:
        figures.append(("MRR", _charts.mrr_steps(totals.mrr_over_time(), currency, first, last)))
    cells = "".join(
        f"<figure><h3>{escape(f'{name}, {currency}')}</h3>{svg}</figure>" for name, svg in figures
    )
    return f"<div class=charts>{cells}</div>"


def _totals(summary: Summary) -> str:
    rows = [
        [c, amount(t.gross, c), amount(t.refunds, c), amount(t.net, c)]
        for c, t in summary.totals.items()
    ]
    return _table(["currency", "gross", "refunds", "net"], rows, "-nnn")


def _mrr(summary: Summary) -> str:
    names = ["new", "expansion", "contraction", "churn"]
    rows = [
        [c, *(amount(t.mrr[n], c) for n in names), amount(t.mrr_net, c)]
        for c, t in summary.totals.items()
        if t.has_mrr
    ]
    return _table(["currency", *names, "net"], rows, "-nnnnn")


_EVENT_COLUMNS = ["received (UTC)", "type", "amount", "currency", "mrr"]
_IDS = {
    "customer_id": "customer",
    "visitor_fingerprint": "visitor fingerprint",
    "session_id": "session",
    "transaction_id": "transaction",
}


def _events(events: Sequence[dict[str, Any]]) -> str:
    rows = []
    for e in events:
        currency = str(e.get("currency", ""))
        rows.append(
            [
                moment(e.get("received_at")),
                e.get("event_type", ""),
                amount(e.get("amount"), currency),
                currency,
                amount(e.get("mrr_impact"), currency),
                *(_clip(e.get(key)) for key in _IDS),
            ]
        )
    return _table([*_EVENT_COLUMNS, *_IDS.values()], rows, "t-n-nIIII")


def _clip(value: object) -> str:
    """An id as shown: cut to ``MAX_SHOWN_ID`` characters."""
    text = "" if value is None else str(value)
    return text if len(text) <= MAX_SHOWN_ID else f"{text[:MAX_SHOWN_ID]}…"


def _rejected(rejected: Sequence[dict[str, Any]]) -> str:
    rows = [
        [moment(r["received_at"]), r["status"], _problems(r), _body(r["body"])] for r in rejected
    ]
    return _table(["received (UTC)", "status", "problems", "body"], rows, "tn--")


class _Markup(str):
    """A cell's HTML, made here with every value in it escaped."""

    __slots__ = ()


def _problems(rejection: dict[str, Any]) -> _Markup:
    """Every problem of a refusal: its validation errors, else its message."""
    problems = [_problem(p) for p in rejection["problems"]] or [str(rejection["message"])]
    if len(problems) == 1:
        return _Markup(escape(problems[0]))
    return _Markup("<ul>" + "".join(f"<li>{escape(p)}</li>" for p in problems) + "</ul>")


def _problem(problem: dict[str, str]) -> str:
    """A problem as "field: message", unless the message starts with its field already."""
    field, message = problem.get("field", ""), problem.get("message", "")
    return message if not field or message.startswith(field) else f"{field}: {message}"


def _body(body: str) -> _Markup:
    """A refused body: a short one whole, a long one folded under a preview."""
    if len(body) <= PREVIEW and "\n" not in body:
        return _Markup(f"<code>{escape(body)}</code>")
    preview = escape(body[:PREVIEW].split("\n", 1)[0])
    return _Markup(
        f"<details><summary><code>{preview}…</code></summary><pre>{escape(body)}</pre></details>"
    )


def _table(headers: Sequence[str], rows: Iterable[Sequence[object]], align: str) -> str:
    """A table; *align* has a letter per column: n a number, t a moment, I an id, - text."""
    rows = list(rows)
    if not rows:
        return "<p class=muted>Nothing yet.</p>"
    head = "".join(f"<th>{escape(h)}</th>" for h in headers)
    body = "".join(
        "<tr>" + "".join(_cell(v, a) for v, a in zip(r, align, strict=True)) + "</tr>" for r in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


_CLASSES = {"n": " class=n", "t": " class=t", "I": " class=id", "-": ""}


def _cell(value: object, align: str) -> str:
    text = value if isinstance(value, _Markup) else escape("" if value is None else str(value))
    return f"<td{_CLASSES[align]}>{text}</td>"
