"""The outbox: events that could not be delivered yet, kept in SQLite until they are.

Every statement runs in a worker thread (``anyio.to_thread``), so the event
loop never waits on the disk. Several processes may share one file (WAL mode):
a drainer *claims* rows for a lease before sending them, so that two drainers
never send the same row at once, and a crashed drainer's claims expire.

SQLite's errors (a full disk, a damaged file, a lock held too long) leave this
module as ``OutboxError``, with the SQLite error as its cause.
"""

from __future__ import annotations

import contextlib
import logging
import shlex
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from os import PathLike
from pathlib import Path
from typing import TypeVar

import anyio.to_thread
import attrs

from .._errors import ClientClosedError, ConfigurationError, OutboxError

_T = TypeVar("_T")

logger = logging.getLogger("pulsora_revenue")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    idempotency_key TEXT NOT NULL,
    transaction_id TEXT NOT NULL,
    event_type TEXT NOT NULL,
    data TEXT NOT NULL,
    body BLOB NOT NULL,
    enqueued_at REAL NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at REAL NOT NULL DEFAULT 0,
    claimed_until REAL NOT NULL DEFAULT 0,
    claim TEXT,
    last_error TEXT,
    endpoint TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS dead_letters (
    id INTEGER PRIMARY KEY,
    idempotency_key TEXT NOT NULL,
    transaction_id TEXT NOT NULL,
    event_type TEXT NOT NULL,
    data TEXT NOT NULL,
    enqueued_at REAL NOT NULL,
    died_at REAL NOT NULL,
    error TEXT NOT NULL,
    body BLOB NOT NULL,
    endpoint TEXT NOT NULL
);
"""

#: The rows an outbox with an endpoint delivers (the parameter): those queued for it.
_MINE = "endpoint = ?"

#: Seconds a drainer may hold its claim on rows before others may take them. A
#: drainer claims few rows at a time, each sent within a deadline well inside it.
LEASE = 120.0

#: How long one SQLite call waits for another process's write lock, in its worker
#: thread (which nothing can cancel); the call is then tried again from the event
#: loop, where a cancellation (a flush timeout, ``aclose()``) stops the waiting.
BUSY_WAIT = 0.1
#: How long an outbox call waits for the write lock in all before it fails.
BUSY_TIMEOUT = 30.0


@attrs.frozen
class Queued:
    """One queued event, claimed by a drainer."""

    id: int
    idempotency_key: str
    data: str  # the wire ``data`` as JSON
    body: bytes
    attempts: int
    claim: str  # the claim under which this drainer holds the row


@attrs.frozen
class Buried:
    """One dead letter, as the file holds it."""

    id: int
    transaction_id: str
    event_type: str
    data: str  # the wire ``data`` as JSON
    error: str
    enqueued_at: float  # Unix time
    died_at: float


@attrs.frozen
class Stats:
    """What an outbox holds."""

    pending: int
    oldest: float | None  # when the oldest pending row was queued (Unix time)
    dead: int
    elsewhere: dict[str, int]  # rows queued for other endpoints


def is_outbox(path: str | PathLike[str]) -> bool:
    """Whether *path* is an outbox file, looked at read-only (it is not created or changed)."""
    uri = f"{Path(path).resolve().as_uri()}?mode=ro"
    try:
        with contextlib.closing(sqlite3.connect(uri, uri=True)) as db:
            found = db.execute(
                "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'outbox'"
            ).fetchone()
    except sqlite3.Error:  # no file, or not SQLite
        return False
    return found is not None


@contextlib.contextmanager
def _transaction(db: sqlite3.Connection) -> Iterator[None]:
    """Run the block in one write transaction: committed, or rolled back if it fails.

    A failed COMMIT (a full disk) may have rolled back already: the ROLLBACK is
    then skipped, and never replaces the error that caused it.
    """
    db.execute("BEGIN IMMEDIATE")
    try:
        yield
        db.execute("COMMIT")
    except BaseException:
        if db.in_transaction:
            with contextlib.suppress(sqlite3.Error):  # the first error is the one to see
                db.execute("ROLLBACK")
        raise


def _is_busy(error: sqlite3.Error) -> bool:
    """Whether *error* is another process holding the write lock."""
    return getattr(error, "sqlite_errorcode", 0) & 0xFF == sqlite3.SQLITE_BUSY


class Outbox:
    """An SQLite outbox file; all methods are async and run off the event loop.

    Each row records the endpoint it was queued for, and is delivered only by
    a client of that endpoint: an event queued while trying the local emulator
    never reaches production, nor the other way round. An outbox without *endpoint*
    (the command line's view of a file) counts every row, and delivers none.

    ``pending`` is how many rows wait for its endpoint, without a query: as last
    counted (``stats``, ``next_due``), with this object's own changes since;
    None until first counted. Other processes sharing the file change it unseen
    until the next count.
    """

    def __init__(self, path: str | PathLike[str], *, endpoint: str | None = None) -> None:
        self.path = Path(path)
        self.endpoint = endpoint
        self._lock = threading.Lock()
        # One worker thread at a time: while the file is locked, waiting calls hold
        # no thread of the application's pool (anyio's default limiter).
        self._limiter = anyio.CapacityLimiter(1)
        self._db: sqlite3.Connection | None = None
        self._closed = False
        self.pending: int | None = None

    def __repr__(self) -> str:
        return f"<Outbox {str(self.path)!r}>"

    def _connect(self) -> sqlite3.Connection:
        if self._closed:  # a flush still running in another task must not reopen it
            raise ClientClosedError(f"the outbox {str(self.path)!r} is closed")
        if self._db is None:
            db = sqlite3.connect(
                self.path, isolation_level=None, check_same_thread=False, timeout=BUSY_WAIT
            )
            try:
                db.execute("PRAGMA journal_mode=WAL")
                db.execute("PRAGMA synchronous=FULL")  # a queued event survives a power cut
                db.executescript(_SCHEMA)
            except BaseException:
                db.close()
                raise
            self._db = db
        return self._db

    async def _run(self, work: Callable[[sqlite3.Connection], _T]) -> _T:
        def locked() -> _T:
            with self._lock:
                return work(self._connect())

        give_up = anyio.current_time() + BUSY_TIMEOUT
        while True:
            try:
                return await anyio.to_thread.run_sync(locked, limiter=self._limiter)
            except sqlite3.Error as exc:  # the file is busy: wait here, cancellably
                if not _is_busy(exc) or anyio.current_time() > give_up:
                    raise OutboxError(
                        f"The outbox {str(self.path)!r} could not be written or read: {exc}. "
                        "Check the disk (free space) and the file; queued events stay in it.",
                        path=str(self.path),
                    ) from exc
            await anyio.sleep(BUSY_WAIT)

    async def put(
        self,
        key: str,
        transaction_id: str,
        event_type: str,
        data: str,
        body: bytes,
        *,
        failure: Exception | None = None,
    ) -> None:
        """Queue one event; it is on disk when this returns.

        *failure* is why it is queued (its delivery failed): if it cannot be
        queued either, the ``OutboxError`` carries it, and says that the event
        is not kept.
        """

        def insert(db: sqlite3.Connection) -> None:
            db.execute(
                "INSERT INTO outbox (idempotency_key, transaction_id, event_type, data, body,"
                " enqueued_at, endpoint) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (key, transaction_id, event_type, data, body, time.time(), self.endpoint),
            )

        try:
            await self._run(insert)
        except OutboxError as exc:
            undelivered = f" It was not delivered either: {failure}" if failure else ""
            raise OutboxError(
                f"Transaction {transaction_id!r} ({event_type}) is NOT kept: the outbox "
                f"{str(self.path)!r} could not queue it ({exc.__cause__}).{undelivered} "
                "Track it again once the outbox can be written (free disk space); it is "
                "safe: Pulsora de-duplicates by transaction_id and event_type.",
                path=exc.path,
                delivery_error=failure,
            ) from exc.__cause__
        self._count(1)

    async def claim(self, limit: int, *, due_only: bool = True) -> list[Queued]:
        """Take up to *limit* unclaimed rows, oldest first, for a lease.

        With *due_only*, rows waiting out a back-off are left alone.
        """
        token = uuid.uuid4().hex

        def take(db: sqlite3.Connection) -> list[Queued]:
            now = time.time()
            due = now if due_only else float("inf")
            with _transaction(db):
                db.execute(
                    "UPDATE outbox SET claim = ?, claimed_until = ? WHERE id IN (SELECT id FROM"
                    f" outbox WHERE claimed_until <= ? AND next_attempt_at <= ? AND {_MINE}"
                    " ORDER BY id LIMIT ?)",
                    (token, now + LEASE, now, due, self.endpoint, limit),
                )
                rows = db.execute(
                    "SELECT id, idempotency_key, data, body, attempts, claim FROM outbox"
                    " WHERE claim = ? ORDER BY id",
                    (token,),
                ).fetchall()
            return [Queued(*row) for row in rows]

        return await self._run(take)

    async def done(self, row: Queued) -> None:
        """Delete a delivered row."""
        deleted = await self._run(
            lambda db: (
                db.execute(
                    "DELETE FROM outbox WHERE id = ? AND claim = ?", (row.id, row.claim)
                ).rowcount
            )
        )
        self._count(-deleted)

    async def retry_later(self, row: Queued, delay: float, error: str) -> None:
        """Release *row* to be tried again after *delay* seconds."""

        def release(db: sqlite3.Connection) -> None:
            db.execute(
                "UPDATE outbox SET attempts = attempts + 1, next_attempt_at = ?, claim = NULL,"
                " claimed_until = 0, last_error = ? WHERE id = ? AND claim = ?",
                (time.time() + delay, error, row.id, row.claim),
            )

        await self._run(release)

    async def release(self, rows: list[Queued]) -> None:
        """Give claimed *rows* back untried (a drainer is stopping)."""

        def free(db: sqlite3.Connection) -> None:
            db.executemany(
                "UPDATE outbox SET claim = NULL, claimed_until = 0 WHERE id = ? AND claim = ?",
                [(row.id, row.claim) for row in rows],
            )

        await self._run(free)

    async def bury(self, row: Queued, error: str) -> None:
        """Move *row* to the dead letters: the server refused it for good."""

        def move(db: sqlite3.Connection) -> int:
            with _transaction(db):
                db.execute(
                    "INSERT INTO dead_letters (id, idempotency_key, transaction_id, event_type,"
                    " data, enqueued_at, died_at, error, body, endpoint) SELECT id,"
                    " idempotency_key, transaction_id, event_type, data, enqueued_at, ?, ?,"
                    " body, endpoint FROM outbox WHERE id = ? AND claim = ?",
                    (time.time(), error, row.id, row.claim),
                )
                return db.execute(
                    "DELETE FROM outbox WHERE id = ? AND claim = ?", (row.id, row.claim)
                ).rowcount

        self._count(-await self._run(move))

    async def stats(self) -> Stats:
        """How many of this endpoint's rows wait, since when, how many wait for
        other endpoints, and how many are dead letters."""

        def read(db: sqlite3.Connection) -> Stats:
            query = "SELECT COUNT(*), MIN(enqueued_at) FROM outbox"
            if self.endpoint is None:
                pending, oldest = db.execute(query).fetchone()
            else:
                pending, oldest = db.execute(f"{query} WHERE {_MINE}", (self.endpoint,)).fetchone()
            (dead,) = db.execute("SELECT COUNT(*) FROM dead_letters").fetchone()
            elsewhere = db.execute(
                "SELECT endpoint, COUNT(*) FROM outbox WHERE endpoint IS NOT NULL"
                " AND endpoint IS NOT ? GROUP BY endpoint ORDER BY endpoint",
                (self.endpoint,),
            )
            return Stats(int(pending), oldest, int(dead), dict(elsewhere))

        stats = await self._run(read)
        if self.endpoint is not None:
            self.pending = stats.pending
        return stats

    async def next_due(self) -> float | None:
        """When this endpoint's next row may be claimed (Unix time), or None if none waits."""

        def read(db: sqlite3.Connection) -> tuple[float | None, int]:
            due, count = db.execute(
                "SELECT MIN(MAX(next_attempt_at, claimed_until)), COUNT(*) FROM outbox"
                f" WHERE {_MINE}",
                (self.endpoint,),
            ).fetchone()
            return None if due is None else float(due), int(count)

        due, self.pending = await self._run(read)  # counted on the way: no query of its own
        return due

    async def export(self, endpoint: str) -> list[str]:
        """The wire data (JSON text, exact) of the rows a client of *endpoint* would
        deliver, oldest first."""

        def read(db: sqlite3.Connection) -> list[str]:
            query = f"SELECT data FROM outbox WHERE {_MINE} ORDER BY id"
            return [data for (data,) in db.execute(query, (endpoint,))]

        return await self._run(read)

    async def dead_letters(self) -> list[Buried]:
        """The dead letters (of this endpoint's, if it has one), oldest first."""

        def read(db: sqlite3.Connection) -> list[Buried]:
            query = (
                "SELECT id, transaction_id, event_type, data, error, enqueued_at, died_at"
                " FROM dead_letters"
            )
            if self.endpoint is None:
                rows = db.execute(f"{query} ORDER BY id")
            else:
                rows = db.execute(f"{query} WHERE {_MINE} ORDER BY id", (self.endpoint,))
            return [Buried(*row) for row in rows]

        return await self._run(read)

    async def revive(self, ids: Iterable[int] | None = None) -> int:
        """Queue dead letters again (those of *ids*, or all of this endpoint's); return how many.

        They are due at once, with their attempts and errors forgotten.
        """
        wanted = None if ids is None else list(ids)

        def move(db: sqlite3.Connection) -> int:
            where = f"{_MINE}" + ("" if wanted is None else " AND id = ?")
            params: list[tuple[object, ...]] = (
                [(self.endpoint,)] if wanted is None else [(self.endpoint, i) for i in wanted]
            )
            moved = 0
            with _transaction(db):
                for param in params:
                    moved += db.execute(
                        "INSERT INTO outbox (id, idempotency_key, transaction_id, event_type,"
                        " data, body, enqueued_at, endpoint) SELECT id, idempotency_key,"
                        " transaction_id, event_type, data, body, enqueued_at, endpoint"
                        f" FROM dead_letters WHERE {where}",
                        param,
                    ).rowcount
                    db.execute(f"DELETE FROM dead_letters WHERE {where}", param)
            return moved

        revived = await self._run(move)
        self._count(revived)
        return revived

    def _count(self, change: int) -> None:
        """Add *change* to ``pending``, once it has been counted."""
        if self.pending is not None:
            self.pending = max(0, self.pending + change)

    async def close(self) -> None:
        def shut() -> None:
            with self._lock:
                self._closed = True
                if self._db is not None:
                    self._db.close()
                    self._db = None

        await anyio.to_thread.run_sync(shut)

    async def open(self) -> None:
        """Open (and create) the file now, so that a bad path fails here, not later.

        Rows queued for other endpoints, which this outbox leaves alone, are
        logged as a warning: they wait for a client of their own endpoint.
        """
        try:
            elsewhere = (await self.stats()).elsewhere
        except OutboxError as exc:
            cause = exc.__cause__  # the sqlite3 error
            raise ConfigurationError(f"cannot open the outbox {self.path}: {cause}") from None
        for endpoint, count in elsewhere.items():
            logger.warning(
                "the outbox %s holds %d event(s) queued for %s, which this client (for %s) "
                "leaves alone; deliver them with: pulsora-revenue outbox %s --drain --endpoint %s",
                self.path,
                count,
                endpoint,
                self.endpoint,
                shlex.quote(str(self.path.absolute())),  # to be run from anywhere
                shlex.quote(endpoint),
            )
