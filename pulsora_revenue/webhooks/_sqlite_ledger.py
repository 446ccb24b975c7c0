"""``SQLiteLedger``: the subscription ledger in a file, shared by processes and restarts.

The outbox's conventions: WAL mode, every statement in a worker thread so the
event loop never waits on the disk, and each observation one ``BEGIN
IMMEDIATE`` transaction, so that when two deliveries for one subscription race
(two workers, two processes), one of them reports the change and the other
sees it reported.
"""

from __future__ import annotations

import sqlite3
import threading
from datetime import datetime
from decimal import Decimal
from os import PathLike
from pathlib import Path

import anyio.to_thread

from ._ledger import Movement, Observation, Payment, State, advance

_SCHEMA = """
CREATE TABLE IF NOT EXISTS subscriptions (
    subscription TEXT PRIMARY KEY,
    mrr TEXT NOT NULL,
    mrr_as_of TEXT,
    billing INTEGER NOT NULL,
    billing_as_of TEXT,
    ended INTEGER NOT NULL,
    reported TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS answers (
    subscription TEXT NOT NULL,
    event_id TEXT NOT NULL,
    before TEXT NOT NULL,
    after TEXT NOT NULL,
    PRIMARY KEY (subscription, event_id)
);
CREATE TABLE IF NOT EXISTS payments (
    payment_id TEXT PRIMARY KEY,
    gross INTEGER NOT NULL,
    net INTEGER NOT NULL
);
"""

#: Seconds one observation waits for another process's write lock before it fails.
BUSY_TIMEOUT = 10.0


class SQLiteLedger:
    """A ledger in an SQLite file: for webhook routes, across workers and restarts.

    Use one file per Pulsora project (not the outbox's file, though nothing
    breaks if it is). The file is opened (and created) on first use, in WAL mode;
    every call runs in a worker thread, so that the event loop never waits on the
    disk, and each observation is one transaction, so that when two deliveries for
    one subscription race (two workers, two processes), one of them reports the
    change. ``await ledger.aclose()`` closes it; so does ``async with``.

    Args:
        path: the SQLite file.
    """

    def __init__(self, path: str | PathLike[str]) -> None:
        self.path = Path(path)
        # One statement at a time, from any event loop: a lock of the threads, not
        # of a loop (an anyio limiter belongs to the loop that first used it).
        self._lock = threading.Lock()
        self._db: sqlite3.Connection | None = None

    def __repr__(self) -> str:
        return f"<SQLiteLedger {str(self.path)!r}>"

    async def __aenter__(self) -> SQLiteLedger:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    def _connect(self) -> sqlite3.Connection:
        if self._db is None:
            db = sqlite3.connect(
                self.path, isolation_level=None, check_same_thread=False, timeout=BUSY_TIMEOUT
            )
            try:
                db.execute("PRAGMA journal_mode=WAL")
                db.executescript(_SCHEMA)
            except BaseException:
                db.close()
                raise
            self._db = db
        return self._db

    async def observe(self, seen: Observation) -> Movement:
        """Apply what one webhook event says about a subscription, once.

        Args:
            seen: what the event says about the subscription.

        Returns:
            The MRR reported before and after the event: the first answer again, for an
            event seen before.
        """

        def work() -> Movement:
            with self._lock:
                return _observe(self._connect(), seen)

        return await anyio.to_thread.run_sync(work)

    async def payment(self, payment_id: str, first: Payment | None) -> Payment | None:
        """Look up a payment as first reported, keeping *first* if there is none yet.

        Args:
            payment_id: the payment's id.
            first: the payment as this event describes it; None only to look it up.

        Returns:
            The payment as first reported; None when none was, and *first* is None.
        """

        def work() -> Payment | None:
            with self._lock:
                db = self._connect()
                if first is not None:
                    db.execute(
                        "INSERT OR IGNORE INTO payments VALUES (?, ?, ?)",
                        (payment_id, first.gross, first.net),
                    )
                row = db.execute(
                    "SELECT gross, net FROM payments WHERE payment_id = ?", (payment_id,)
                ).fetchone()
                return None if row is None else Payment(*row)

        return await anyio.to_thread.run_sync(work)

    async def reported(self, subscription: str) -> Decimal:
        """Return the MRR reported so far for a subscription.

        Args:
            subscription: the subscription, prefixed by its processor:
                ``"stripe:sub_..."``, ``"paddle:sub_..."``.

        Returns:
            The MRR reported; 0 for a subscription the ledger does not know.
        """

        def work() -> Decimal:
            with self._lock:
                return _load(self._connect(), subscription).reported

        return await anyio.to_thread.run_sync(work)

    async def aclose(self) -> None:
        """Close the file; a later call opens it again."""

        def work() -> None:
            with self._lock:
                if self._db is not None:
                    self._db.close()
                    self._db = None

        await anyio.to_thread.run_sync(work)


def _observe(db: sqlite3.Connection, seen: Observation) -> Movement:
    db.execute("BEGIN IMMEDIATE")
    try:
        answer = db.execute(
            "SELECT before, after FROM answers WHERE subscription = ? AND event_id = ?",
            (seen.subscription, seen.event_id),
        ).fetchone()
        if answer is not None:
            db.execute("COMMIT")
            return Movement(Decimal(answer[0]), Decimal(answer[1]))
        state, movement = advance(_load(db, seen.subscription), seen)
        db.execute(
            "INSERT OR REPLACE INTO subscriptions VALUES (?, ?, ?, ?, ?, ?, ?)",
            (
                seen.subscription,
                str(state.mrr),
                _stamp(state.mrr_as_of),
                int(state.billing),
                _stamp(state.billing_as_of),
                int(state.ended),
                str(state.reported),
            ),
        )
        db.execute(
            "INSERT INTO answers VALUES (?, ?, ?, ?)",
            (seen.subscription, seen.event_id, str(movement.before), str(movement.after)),
        )
        db.execute("COMMIT")
    except BaseException:
        db.execute("ROLLBACK")
        raise
    return movement


def _load(db: sqlite3.Connection, subscription: str) -> State:
    row = db.execute(
        "SELECT mrr, mrr_as_of, billing, billing_as_of, ended, reported FROM subscriptions"
        " WHERE subscription = ?",
        (subscription,),
    ).fetchone()
    if row is None:
        return State()
    mrr, mrr_as_of, billing, billing_as_of, ended, reported = row
    return State(
        Decimal(mrr),
        _moment(mrr_as_of),
        bool(billing),
        _moment(billing_as_of),
        bool(ended),
        Decimal(reported),
    )


def _stamp(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat()


def _moment(stamp: str | None) -> datetime | None:
    return None if stamp is None else datetime.fromisoformat(stamp)
