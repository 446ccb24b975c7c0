"""The emulator's page: totals, MRR movement, latest events and refused requests.

Plain HTML, no JavaScript; every value is escaped.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from html import escape
from typing import Any

from ._database import Summary

_STYLE = """
body { font: 14px/1.4 system-ui, sans-serif; margin: 2rem; color: #222; }
h1 { font-size: 1.4rem; } h2 { font-size: 1.1rem; margin-top: 2rem; }
table { border-collapse: collapse; margin: .5rem 0; }
th, td { border-bottom: 1px solid #ddd; padding: .25rem .75rem; text-align: left; }
td.n { text-align: right; font-variant-numeric: tabular-nums; }
.muted { color: #777; } code { font-size: 12px; word-break: break-all; }
"""


def render(summary: Summary, *, endpoint: str) -> str:
    """Return the whole page for *summary*."""
    sections = [
        f"<h1>Pulsora ingest emulator</h1><p class=muted>POST events to "
        f"<code>{escape(endpoint)}</code>. This page does not refresh by itself.</p>",
        "<h2>Totals per currency</h2>" + _totals(summary),
        "<h2>MRR movement</h2>" + _mrr(summary),
        "<h2>Events per type</h2>"
        + _table(["event type", "count"], [[k, v] for k, v in summary.counts.items()], "-n"),
        "<h2>Latest events</h2>" + _events(summary.events),
        "<h2>Latest rejected requests</h2>" + _rejected(summary.rejected),
    ]
    body = "\n".join(sections)
    return (
        "<!doctype html><html lang=en><head><meta charset=utf-8>"
        "<title>Pulsora ingest emulator</title>"
        f"<style>{_STYLE}</style></head><body>{body}</body></html>"
    )


def _totals(summary: Summary) -> str:
    rows = [[c, t.gross, t.refunds, t.net] for c, t in summary.totals.items()]
    return _table(["currency", "gross", "refunds", "net"], rows, "-nnn")


def _mrr(summary: Summary) -> str:
    names = ["new", "expansion", "contraction", "churn"]
    rows = [[c, *(t.mrr[n] for n in names), sum(t.mrr.values())] for c, t in summary.totals.items()]
    return _table(["currency", *names, "net"], rows, "-nnnnn")


def _events(events: Sequence[dict[str, Any]]) -> str:
    columns = ["received (UTC)", "transaction", "type", "amount", "currency", "customer", "mrr"]
    rows = [
        [
            _when(e.get("received_at")),
            e.get("transaction_id"),
            e.get("event_type", ""),
            e.get("amount"),
            e.get("currency"),
            e.get("customer_id"),
            e.get("mrr_impact", ""),
        ]
        for e in events
    ]
    return _table(columns, rows, "---n--n")


def _rejected(rejected: Sequence[dict[str, Any]]) -> str:
    rows = [
        [_when(r["received_at"]), r["status"], r["message"], _Code(r["body"])] for r in rejected
    ]
    return _table(["received (UTC)", "status", "error", "body"], rows, "-n--")


class _Code(str):
    """A cell shown as code."""

    __slots__ = ()


def _when(timestamp: object) -> str:
    if not isinstance(timestamp, int | float):
        return ""
    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%d %H:%M:%S")


def _table(headers: Sequence[str], rows: Iterable[Sequence[object]], align: str) -> str:
    rows = list(rows)
    if not rows:
        return "<p class=muted>Nothing yet.</p>"
    head = "".join(f"<th>{escape(h)}</th>" for h in headers)
    body = "".join(
        "<tr>" + "".join(_cell(v, a) for v, a in zip(r, align, strict=True)) + "</tr>" for r in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _cell(value: object, align: str) -> str:
    text = escape("" if value is None else str(value))
    if isinstance(value, _Code):
        text = f"<code>{text}</code>"
    return f"<td class=n>{text}</td>" if align == "n" else f"<td>{text}</td>"
