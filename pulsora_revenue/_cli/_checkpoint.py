"""The backfill checkpoint: every (transaction_id, event_type) Pulsora has accepted.

A re-run of an interrupted backfill (Ctrl-C, ``kill -9``, a crash) skips what
the checkpoint holds, so it resumes without sending anything twice that was
known to be done. Each key is committed as soon as its answer arrives (SQLite in
WAL mode), so at most the events in flight at the crash are sent again, and
Pulsora's de-duplication catches those.
"""

from __future__ import annotations

import hashlib
import sqlite3
from pathlib import Path

from .._config import Token
from .._errors import ConfigurationError
from .._fields import lone_surrogate


def normalise_key(transaction_id: object, event_type: object) -> tuple[str, str] | None:
    """The key of a raw row as ``RevenueEvent.dedup_key`` would have it; None if unusable."""
    if not isinstance(transaction_id, str) or not transaction_id.strip():
        return None
    kind = event_type.strip().lower() if isinstance(event_type, str) else ""
    if lone_surrogate(transaction_id) or lone_surrogate(kind):
        return None  # SQLite cannot store it; validation will say why the row is invalid
    return transaction_id.strip(), kind


class Checkpoint:
    """An SQLite file of accepted keys, for one endpoint.

    The keys say what one endpoint accepted: a checkpoint made against the
    emulator must not make a real run skip everything, so a checkpoint made
    for another endpoint is refused.
    """

    def __init__(self, path: str | Path, *, endpoint: str, token: Token | str) -> None:
        self.path = Path(path)
        self._db = sqlite3.connect(self.path, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS done (transaction_id TEXT NOT NULL, "
            "event_type TEXT NOT NULL, PRIMARY KEY (transaction_id, event_type)) WITHOUT ROWID"
        )
        # The keys this run added: a repeat of one, later in the same input, is
        # not "done by an earlier run". A temporary table: on disk, not in memory.
        self._db.execute(
            "CREATE TEMP TABLE added (transaction_id TEXT NOT NULL, event_type TEXT NOT NULL, "
            "PRIMARY KEY (transaction_id, event_type)) WITHOUT ROWID"
        )
        self._db.execute("CREATE TABLE IF NOT EXISTS about (key TEXT PRIMARY KEY, value TEXT)")
        # A checkpoint says what one project accepted: one endpoint, and one token
        # (kept as a digest: the file must not hold a secret).
        # One that holds nothing yet (its first run was stopped by a wrong token, say)
        # belongs to no project: it takes this run's.
        account = _account(token)
        keep = "IGNORE" if len(self) else "REPLACE"
        for key, value, what in (
            ("endpoint", endpoint, f"for {endpoint}"),
            ("token", account, "with this token (another Pulsora project?)"),
        ):
            self._db.execute(f"INSERT OR {keep} INTO about VALUES (?, ?)", (key, value))
            (made,) = self._db.execute("SELECT value FROM about WHERE key = ?", (key,)).fetchone()
            if made != value:
                self._db.close()
                raise ConfigurationError(
                    f"the checkpoint {self.path} was not made {what}; "
                    "use another --checkpoint file for this run"
                )

    def done_earlier(self, key: tuple[str, str]) -> bool:
        """Whether *key* was accepted by an earlier run, not by this one."""
        found = self._db.execute(
            "SELECT 1 FROM done WHERE transaction_id = ?1 AND event_type = ?2 AND NOT EXISTS "
            "(SELECT 1 FROM added WHERE transaction_id = ?1 AND event_type = ?2)",
            key,
        ).fetchone()
        return found is not None

    def add(self, key: tuple[str, str]) -> None:
        """Remember *key* as accepted, durably."""
        self._db.execute("INSERT OR IGNORE INTO done VALUES (?, ?)", key)
        self._db.execute("INSERT OR IGNORE INTO added VALUES (?, ?)", key)

    def __len__(self) -> int:
        (count,) = self._db.execute("SELECT COUNT(*) FROM done").fetchone()
        return int(count)

    def close(self) -> None:
        self._db.close()


def _account(token: Token | str) -> str:
    """The digest a checkpoint keeps of the token, revealed here only (not in a caller's locals)."""
    plain = token.reveal() if isinstance(token, Token) else token
    return hashlib.sha256(f"pulsora-revenue/checkpoint\x1f{plain}".encode()).hexdigest()
