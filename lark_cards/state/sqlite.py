"""A :class:`~lark_cards.state.base.StateStore` in one SQLite file (the default, in Errbot's
``BOT_DATA_DIR``): it survives restarts and can be shared by processes on one host.

* Blocking I/O never runs on an event loop: one worker thread owns the one connection and runs
  every statement, in call order.
* WAL mode lets readers and the writer overlap; ``busy_timeout`` makes a second process wait
  for the write lock instead of failing. Every write is a ``BEGIN IMMEDIATE`` transaction, so a
  claim's "none of these is live" check and its inserts are one atomic step across processes.
* Times are wall-clock seconds (``time.time``): they must mean the same in another process and
  after a restart, which ``time.monotonic`` does not.
* Bounded: expired rows are pruned at open and every :data:`PRUNE_EVERY` writes, and each
  table then keeps at most ``max_entries`` rows (those expiring soonest, or the oldest inbox
  entries, go first).
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from os import PathLike
from pathlib import Path
from typing import Any, TypeVar

from lark_cards.state.base import unique

__all__ = ["PRUNE_EVERY", "STATE_FILE", "SQLiteStore"]

log = logging.getLogger(__name__)

STATE_FILE = "lark-cards-state.sqlite3"
PRUNE_EVERY = 256

_T = TypeVar("_T")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS claims (key TEXT PRIMARY KEY, expires REAL NOT NULL) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS claims_by_expiry ON claims (expires);
CREATE TABLE IF NOT EXISTS kv (
    key TEXT PRIMARY KEY, value TEXT NOT NULL, expires REAL NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS kv_by_expiry ON kv (expires);
CREATE TABLE IF NOT EXISTS leases (
    name TEXT PRIMARY KEY, owner TEXT NOT NULL, expires REAL NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS inbox (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id TEXT NOT NULL UNIQUE,
    payload TEXT NOT NULL,
    owner TEXT,
    lease_until REAL NOT NULL DEFAULT 0
);
"""
# An expired row is replaced; a live one makes the upsert change nothing (rowcount 0).
_CLAIM = """
INSERT INTO claims (key, expires) VALUES (?1, ?2)
ON CONFLICT (key) DO UPDATE SET expires = excluded.expires WHERE claims.expires <= ?3
"""
_LEASE = """
INSERT INTO leases (name, owner, expires) VALUES (?1, ?2, ?3)
ON CONFLICT (name) DO UPDATE SET owner = excluded.owner, expires = excluded.expires
WHERE leases.owner = excluded.owner OR leases.expires <= ?4
"""
_INBOX_CLAIM = """
UPDATE inbox SET owner = ?1, lease_until = ?2
WHERE seq IN (
    SELECT seq FROM inbox WHERE owner IS NULL OR owner = ?1 OR lease_until <= ?3
    ORDER BY seq LIMIT ?4
)
RETURNING seq, event_id, payload
"""
# Keep the max_entries rows that matter most; drop the rest.
_TRIM = {
    "claims": "DELETE FROM claims WHERE key IN "
    "(SELECT key FROM claims ORDER BY expires DESC LIMIT -1 OFFSET ?)",
    "kv": "DELETE FROM kv WHERE key IN "
    "(SELECT key FROM kv ORDER BY expires DESC LIMIT -1 OFFSET ?)",
    "inbox": "DELETE FROM inbox WHERE seq IN "
    "(SELECT seq FROM inbox ORDER BY seq DESC LIMIT -1 OFFSET ?)",
}


class _Taken(Exception):
    """A claimed key is live: roll the claim back."""


class SQLiteStore:
    """Open with ``await SQLiteStore.open(path)``; all methods are coroutines."""

    def __init__(
        self,
        path: str | PathLike[str],
        *,
        max_entries: int = 100_000,
        busy_timeout: float = 10.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if max_entries <= 0 or busy_timeout <= 0:
            raise ValueError("max_entries and busy_timeout must be positive")
        self.path = Path(path)
        self.max_entries = max_entries
        self._busy_timeout = busy_timeout
        self._clock = clock
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="lark-state-sqlite")
        self._db: sqlite3.Connection | None = None
        self._writes = 0

    @classmethod
    async def open(cls, path: str | PathLike[str], **options: Any) -> SQLiteStore:
        """Create (or reuse) the file and its tables and prune expired rows."""
        store = cls(path, **options)
        try:
            await store._run(store._open)
        except BaseException:
            store._executor.shutdown(wait=False)
            raise
        return store

    async def claim(self, keys: Sequence[str], ttl: float) -> bool:
        return await self._run(self._claim, unique(keys), ttl)

    async def put(self, key: str, value: str, ttl: float) -> None:
        await self._run(self._put, key, value, ttl)

    async def get(self, key: str) -> str | None:
        return await self._run(self._get, key)

    async def lease(self, name: str, owner: str, ttl: float) -> bool:
        return await self._run(self._lease, name, owner, ttl)

    async def release(self, name: str, owner: str) -> bool:
        return await self._run(
            self._change, "DELETE FROM leases WHERE name = ? AND owner = ?", (name, owner)
        )

    async def inbox_add(
        self, event_id: str, payload: str, owner: str | None = None, lease: float = 0.0
    ) -> bool:
        return await self._run(self._inbox_add, event_id, payload, owner, lease)

    async def inbox_done(self, event_id: str) -> None:
        await self._run(self._change, "DELETE FROM inbox WHERE event_id = ?", (event_id,))

    async def inbox_claim(self, owner: str, lease: float, limit: int) -> list[tuple[str, str]]:
        if limit <= 0:  # SQLite reads LIMIT -1 as "no limit"
            return []
        return await self._run(self._inbox_claim, owner, lease, limit)

    async def sizes(self) -> dict[str, int]:
        """How many claims, values and inbox rows the file holds (for tests and metrics)."""
        return await self._run(self._sizes)

    async def close(self) -> None:
        if self._db is None:
            return
        try:
            await self._run(self._close)
        finally:
            self._executor.shutdown(wait=False)

    # -- on the worker thread ---------------------------------------------------------------

    async def _run(self, call: Callable[..., _T], *args: Any) -> _T:
        return await asyncio.get_running_loop().run_in_executor(self._executor, call, *args)

    def _open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(
            self.path, timeout=self._busy_timeout, isolation_level=None, check_same_thread=False
        )
        try:
            db.execute(f"PRAGMA busy_timeout = {int(self._busy_timeout * 1000)}")
            self._wal(db)
            db.execute("PRAGMA synchronous = NORMAL")  # WAL: durable across a crash of ours
            db.executescript(_SCHEMA)
            self._db = db
            self._prune()
        except BaseException:
            self._db = None
            db.close()
            raise

    def _wal(self, db: sqlite3.Connection) -> None:
        # Switching a new file to WAL while another process opens it too can fail at once
        # with "database is locked" (SQLite does not wait on its busy handler there): retry.
        deadline = time.monotonic() + self._busy_timeout
        while True:
            try:
                mode = db.execute("PRAGMA journal_mode = WAL").fetchone()[0]
                break
            except sqlite3.OperationalError as error:
                if "locked" not in str(error) or time.monotonic() > deadline:
                    raise
                time.sleep(0.02)
        if str(mode).lower() != "wal":
            log.warning("state store %s: journal mode is %s, not WAL (slower)", self.path, mode)

    def _close(self) -> None:
        db, self._db = self._db, None
        if db is not None:
            db.close()

    def _conn(self) -> sqlite3.Connection:
        if self._db is None:
            raise RuntimeError("the state store is closed")
        return self._db

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        # IMMEDIATE takes the write lock up front (waiting up to busy_timeout for another
        # process), so nothing read inside can change before COMMIT.
        db = self._conn()
        db.execute("BEGIN IMMEDIATE")
        try:
            yield db
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        with self._transaction() as db:
            yield db
        self._writes += 1
        if self._writes % PRUNE_EVERY == 0:
            self._prune()

    def _claim(self, keys: list[str], ttl: float) -> bool:
        now = self._clock()
        try:
            with self._write() as db:
                for key in keys:
                    if db.execute(_CLAIM, (key, now + ttl, now)).rowcount == 0:
                        raise _Taken
        except _Taken:
            return False
        return True

    def _put(self, key: str, value: str, ttl: float) -> None:
        with self._write() as db:
            db.execute(
                "INSERT OR REPLACE INTO kv (key, value, expires) VALUES (?, ?, ?)",
                (key, value, self._clock() + ttl),
            )

    def _get(self, key: str) -> str | None:
        row = (
            self._conn()
            .execute("SELECT value FROM kv WHERE key = ? AND expires > ?", (key, self._clock()))
            .fetchone()
        )
        return None if row is None else str(row[0])

    def _lease(self, name: str, owner: str, ttl: float) -> bool:
        now = self._clock()
        with self._write() as db:
            return db.execute(_LEASE, (name, owner, now + ttl, now)).rowcount == 1

    def _change(self, sql: str, args: tuple[str, ...]) -> bool:
        with self._write() as db:
            return db.execute(sql, args).rowcount > 0

    def _inbox_add(self, event_id: str, payload: str, owner: str | None, lease: float) -> bool:
        until = self._clock() + lease if owner is not None else 0.0
        with self._write() as db:
            added = db.execute(
                "INSERT INTO inbox (event_id, payload, owner, lease_until) VALUES (?, ?, ?, ?)"
                " ON CONFLICT DO NOTHING",
                (event_id, payload, owner, until),
            )
            return added.rowcount > 0

    def _inbox_claim(self, owner: str, lease: float, limit: int) -> list[tuple[str, str]]:
        now = self._clock()
        with self._write() as db:
            rows = db.execute(_INBOX_CLAIM, (owner, now + lease, now, limit)).fetchall()
        return [(event_id, payload) for _, event_id, payload in sorted(rows)]

    def _prune(self) -> None:
        now = self._clock()
        with self._transaction() as db:
            for table in ("claims", "kv", "leases"):
                db.execute(f"DELETE FROM {table} WHERE expires <= ?", (now,))
            dropped = {
                table: db.execute(sql, (self.max_entries,)).rowcount for table, sql in _TRIM.items()
            }
        if dropped["inbox"]:
            log.warning(
                "state store %s: inbox over %d entries; dropped the %d oldest not yet handed over",
                self.path,
                self.max_entries,
                dropped["inbox"],
            )

    def _sizes(self) -> dict[str, int]:
        db = self._conn()
        tables = {"claims": "claims", "values": "kv", "inbox": "inbox"}
        return {
            name: int(db.execute(f"SELECT count(*) FROM {table}").fetchone()[0])
            for name, table in tables.items()
        }
