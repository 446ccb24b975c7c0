"""The emulator's database: accepted events and refused requests, in SQLite.

It serves the emulator's app (``pulsora-revenue dev``, ``serve_emulator``) and
its page; it is not the outbox. The app is a single process on loopback, so the
database is used from the server's event-loop thread only; each statement is a
short local write. Totals are summed in Python with ``Decimal`` (SQLite would
sum as floats), with room for every digit.

An event's day, for the page's charts, is the UTC date of its ``occurred_at``
(which travels in ``metadata``) where it has one, else of when it was received.
"""

from __future__ import annotations

import sqlite3
import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from contextlib import closing
from datetime import date
from decimal import Decimal, localcontext
from pathlib import Path
from typing import Any

import attrs

from .. import _json
from .._convert import CONVERTER
from .._event import RevenueEvent
from .._fields import EventType
from ._contract import Answer

_SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY,
    received_at REAL NOT NULL,
    transaction_id TEXT NOT NULL,
    event_type TEXT NOT NULL,
    currency TEXT NOT NULL,
    amount TEXT NOT NULL,
    mrr_impact TEXT,
    data TEXT NOT NULL,
    UNIQUE (transaction_id, event_type)
);
CREATE TABLE IF NOT EXISTS rejected (
    id INTEGER PRIMARY KEY,
    received_at REAL NOT NULL,
    status INTEGER NOT NULL,
    message TEXT NOT NULL,
    body TEXT NOT NULL,
    problems TEXT
);
"""

#: Each event's currency, type, amounts, and day (see the module's docstring).
_ROWS = """
SELECT currency, event_type, amount, mrr_impact, COALESCE(
    substr(json_extract(data, '$.metadata.occurred_at'), 1, 10),
    date(received_at, 'unixepoch')
) FROM events
"""

#: Enough digits for any sum of amounts (each at most 30 before and after the
#: point): a sum is exact, never rounded to the default context's 28 digits.
_SUM_PRECISION = 100

_MRR_MOVEMENT = {
    EventType.SUBSCRIPTION: "new",
    EventType.UPGRADE: "expansion",
    EventType.DOWNGRADE: "contraction",
    EventType.CHURN: "churn",
}


@attrs.define
class CurrencyTotals:
    """Money per currency: gross takings, refunds, net, MRR movement, and both per day."""

    gross: Decimal = Decimal(0)
    refunds: Decimal = Decimal(0)
    mrr: dict[str, Decimal] = attrs.Factory(
        lambda: dict.fromkeys(_MRR_MOVEMENT.values(), Decimal(0))
    )
    #: Net revenue (every amount, refunds negative) on each day that has events.
    revenue_by_day: dict[date, Decimal] = attrs.Factory(dict)
    #: How much MRR moved on each day on which it moved.
    mrr_by_day: dict[date, Decimal] = attrs.Factory(dict)

    @property
    def net(self) -> Decimal:
        """Gross takings plus the (negative) refunds."""
        with localcontext(prec=_SUM_PRECISION):
            return self.gross + self.refunds

    @property
    def mrr_net(self) -> Decimal:
        """How much MRR moved in all: the MRR now."""
        with localcontext(prec=_SUM_PRECISION):
            return sum(self.mrr.values(), Decimal(0))

    @property
    def has_mrr(self) -> bool:
        """Whether any MRR moved in this currency."""
        return any(self.mrr.values())

    def add(self, kind: str, amount: Decimal, mrr: Decimal | None, day: date) -> None:
        """Count one event of type *kind* (may be "") received, or occurred, on *day*."""
        if kind == EventType.REFUND:
            self.refunds += amount
        else:
            self.gross += amount
        self.revenue_by_day[day] = self.revenue_by_day.get(day, Decimal(0)) + amount
        movement = _MRR_MOVEMENT.get(EventType(kind)) if kind else None
        if movement is not None and mrr is not None:
            self.mrr[movement] += mrr
            self.mrr_by_day[day] = self.mrr_by_day.get(day, Decimal(0)) + mrr

    def revenue_per_day(self) -> list[tuple[date, Decimal]]:
        """Net revenue per day, oldest first, for the days that have events."""
        return sorted(self.revenue_by_day.items())

    def mrr_over_time(self) -> list[tuple[date, Decimal]]:
        """MRR at the end of each day on which it moved: the running sum of its movements."""
        points, total = [], Decimal(0)
        with localcontext(prec=_SUM_PRECISION):
            for day, moved in sorted(self.mrr_by_day.items()):
                total += moved
                points.append((day, total))
        return points


@attrs.frozen
class Summary:
    """What the emulator's page shows: totals, counts, and the latest events and refusals."""

    totals: dict[str, CurrencyTotals]
    counts: dict[str, int]
    events: list[dict[str, Any]]
    rejected: list[dict[str, Any]]


class SQLiteStore:
    """The emulator's database: events and refusals in an SQLite file, surviving restarts."""

    def __init__(self, path: str | Path) -> None:
        self.path = str(path)
        self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        self._db.row_factory = sqlite3.Row
        if self.path != ":memory:":
            self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)
        self._add_problems_column()

    def _add_problems_column(self) -> None:
        """Give a database made before refusals kept their problems the column for them."""
        columns = {row["name"] for row in self._db.execute("PRAGMA table_info(rejected)")}
        if "problems" not in columns:
            self._db.execute("ALTER TABLE rejected ADD COLUMN problems TEXT")

    def close(self) -> None:
        """Close the file; the database is unusable afterwards."""
        self._db.close()

    def record(self, event: RevenueEvent) -> bool:
        """Keep *event*; return False (keeping nothing) if its key was seen before."""
        data = CONVERTER.unstructure(event)
        cursor = self._db.execute(
            "INSERT OR IGNORE INTO events (received_at, transaction_id, event_type, currency,"
            " amount, mrr_impact, data) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (
                time.time(),
                *event.dedup_key,
                event.currency,
                str(event.amount),
                None if event.mrr_impact is None else str(event.mrr_impact),
                _json.dumps(data).decode(),
            ),
        )
        return cursor.rowcount == 1

    def reject(self, answer: Answer, body: str) -> None:
        """Keep a refused request with the answer it got; *body* is as it may be shown.

        A validation failure's problems (the answer's ``errors``) are kept, every one.
        """
        errors = answer.body.get("errors")
        problems = _json.dumps(errors).decode() if errors else None
        self._db.execute(
            "INSERT INTO rejected (received_at, status, message, body, problems)"
            " VALUES (?, ?, ?, ?, ?)",
            (time.time(), answer.status, answer.message, body, problems),
        )

    def clear(self) -> None:
        """Forget every event and refusal."""
        self._db.execute("DELETE FROM events")
        self._db.execute("DELETE FROM rejected")

    def events(
        self, transaction_id: str | None = None, limit: int | None = None
    ) -> list[dict[str, Any]]:
        """Return stored events, newest first, as wire data plus ``received_at``."""
        query = "SELECT received_at, data FROM events"
        params: tuple[Any, ...] = ()
        if transaction_id is not None:
            query, params = f"{query} WHERE transaction_id = ?", (transaction_id,)
        query += " ORDER BY id DESC"
        if limit is not None:
            query, params = f"{query} LIMIT ?", (*params, limit)
        return [
            {"received_at": row["received_at"], **_json.loads(row["data"])}
            for row in self._db.execute(query, params)
        ]

    def rejections(self, limit: int = 50) -> list[dict[str, Any]]:
        """Return the latest rejected requests, newest first.

        Each has its ``problems``: a list of ``{"field": ..., "message": ...}``, empty
        when the refusal was no validation failure (its ``message`` says why).
        """
        rows = self._db.execute(
            "SELECT received_at, status, message, body, problems FROM rejected"
            " ORDER BY id DESC LIMIT ?",
            (limit,),
        )
        return [
            {**row, "problems": _json.loads(row["problems"]) if row["problems"] else []}
            for row in map(dict, rows)
        ]

    def count(self) -> int:
        """Return how many events are stored."""
        (count,) = self._db.execute("SELECT COUNT(*) FROM events").fetchone()
        return int(count)

    def summary(self, latest: int = 50) -> Summary:
        """Totals per currency, counts per event type, and the latest rows."""
        totals: defaultdict[str, CurrencyTotals] = defaultdict(CurrencyTotals)
        counts: Counter[str] = Counter()
        with localcontext(prec=_SUM_PRECISION):
            for currency, kind, amount, mrr, day in self._rows():
                counts[kind or "(none)"] += 1
                moved = None if mrr is None else Decimal(mrr)
                totals[currency].add(kind, Decimal(amount), moved, date.fromisoformat(day))
        return Summary(
            totals=dict(sorted(totals.items())),
            counts=dict(counts.most_common()),
            events=self.events(limit=latest),
            rejected=self.rejections(latest),
        )

    def _rows(self) -> Iterator[tuple[str, str, str, str | None, str]]:
        with closing(self._db.cursor()) as cursor:
            cursor.execute(_ROWS)
            yield from cursor
