"""The emulator's database: accepted events and refused requests, in SQLite.

It serves the emulator's app (``pulsora-revenue dev``, ``serve_emulator``) and
its page; it is not the outbox. The app is a single process on loopback, so the
database is used from the server's event-loop thread only; each statement is a
short local write. Totals are summed in Python with ``Decimal`` (SQLite would
sum as floats).
"""

from __future__ import annotations

import sqlite3
import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from contextlib import closing
from decimal import Decimal
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
    body TEXT NOT NULL
);
"""

_MRR_MOVEMENT = {
    EventType.SUBSCRIPTION: "new",
    EventType.UPGRADE: "expansion",
    EventType.DOWNGRADE: "contraction",
    EventType.CHURN: "churn",
}


@attrs.define
class CurrencyTotals:
    """Money per currency: gross takings, refunds, net, and MRR movement."""

    gross: Decimal = Decimal(0)
    refunds: Decimal = Decimal(0)
    mrr: dict[str, Decimal] = attrs.Factory(
        lambda: dict.fromkeys(_MRR_MOVEMENT.values(), Decimal(0))
    )

    @property
    def net(self) -> Decimal:
        """Gross takings plus the (negative) refunds."""
        return self.gross + self.refunds


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
        """Keep a refused request with the answer it got; *body* is as it may be shown."""
        self._db.execute(
            "INSERT INTO rejected (received_at, status, message, body) VALUES (?, ?, ?, ?)",
            (time.time(), answer.status, answer.message, body),
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
        """Return the latest rejected requests, newest first."""
        rows = self._db.execute(
            "SELECT received_at, status, message, body FROM rejected ORDER BY id DESC LIMIT ?",
            (limit,),
        )
        return [dict(row) for row in rows]

    def count(self) -> int:
        """Return how many events are stored."""
        (count,) = self._db.execute("SELECT COUNT(*) FROM events").fetchone()
        return int(count)

    def summary(self, latest: int = 50) -> Summary:
        """Totals per currency, counts per event type, and the latest rows."""
        totals: defaultdict[str, CurrencyTotals] = defaultdict(CurrencyTotals)
        counts: Counter[str] = Counter()
        for currency, kind, amount, mrr in self._rows():
            counts[kind or "(none)"] += 1
            bucket = totals[currency]
            if kind == EventType.REFUND:
                bucket.refunds += Decimal(amount)
            else:
                bucket.gross += Decimal(amount)
            movement = _MRR_MOVEMENT.get(EventType(kind)) if kind else None
            if movement is not None and mrr is not None:
                bucket.mrr[movement] += Decimal(mrr)
        return Summary(
            totals=dict(sorted(totals.items())),
            counts=dict(counts.most_common()),
            events=self.events(limit=latest),
            rejected=self.rejections(latest),
        )

    def _rows(self) -> Iterator[tuple[str, str, str, str | None]]:
        with closing(self._db.cursor()) as cursor:
            cursor.execute("SELECT currency, event_type, amount, mrr_impact FROM events")
            yield from cursor
