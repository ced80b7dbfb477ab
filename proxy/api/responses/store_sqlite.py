"""The embedded response store: one SQLite file (the default; nothing to run)."""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from proxy.api.responses.store_records import (
    DEFAULT_MAX_AGE_SECONDS,
    DEFAULT_MAX_RESPONSES,
    SQLITE,
    TABLE,
    StoredResponse,
    oldest_kept,
    record_from_row,
    row_params,
)


class SQLiteResponseStore:
    """The embedded store: one SQLite file in WAL mode.

    WAL lets readers run while a writer commits, including readers in other processes. Each
    thread borrows a connection from a small pool (one is made per concurrently running
    thread, at most the `to_thread` executor's size), so reads run in parallel; SQLite itself
    serialises writers, and `busy_timeout` makes a writer wait for another instead of failing.
    Writes begin `IMMEDIATE` so that a transaction never has to upgrade a read lock (an upgrade
    that SQLite answers with an immediate "database is locked", whatever the timeout).
    `synchronous=NORMAL`: in WAL mode a power cut can lose the last commits, never corrupt the
    file, a fair trade for a response cache.

    JSON columns are declared TEXT: SQLite has no JSON type, and a column declared `JSON` would
    get NUMERIC affinity.
    """

    def __init__(
        self,
        path: Path,
        *,
        max_responses: int | None = DEFAULT_MAX_RESPONSES,
        max_age_seconds: float | None = DEFAULT_MAX_AGE_SECONDS,
        busy_timeout_seconds: float = 30.0,
    ) -> None:
        self.path = Path(path)
        self.max_responses = max_responses
        self.max_age_seconds = max_age_seconds
        self._busy_timeout = busy_timeout_seconds
        self._lock = threading.Lock()
        self._idle: list[sqlite3.Connection] = []
        self._closed = False
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._connection() as conn:
            # Persistent in the file: set once, a no-op for every later open.
            self._enable_wal(conn)
            conn.execute("BEGIN IMMEDIATE")
            try:
                conn.execute(
                    f"CREATE TABLE IF NOT EXISTS {TABLE} ("
                    " id TEXT PRIMARY KEY,"
                    " created_at REAL NOT NULL,"
                    " previous_response_id TEXT,"
                    " response TEXT NOT NULL,"
                    " input_items TEXT NOT NULL,"
                    " conversation TEXT NOT NULL)"
                )
                conn.execute(
                    f"CREATE INDEX IF NOT EXISTS {TABLE}_created ON {TABLE} (created_at, id)"
                )
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:  # a failed COMMIT may already have rolled back
                    conn.execute("ROLLBACK")
                raise

    def _enable_wal(self, conn: sqlite3.Connection) -> None:
        """Switch a new file to WAL. Replicas opening one new file at once race for it, and
        SQLite answers the losers "database is locked" at once, without its busy handler: so
        retry until `busy_timeout`, as the handler would."""
        deadline = time.monotonic() + self._busy_timeout
        while True:
            try:
                conn.execute("PRAGMA journal_mode=WAL")
                return
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or time.monotonic() > deadline:
                    raise
                time.sleep(0.01)

    def _connect(self) -> sqlite3.Connection:
        # isolation_level=None: transactions are begun explicitly, never implicitly.
        # check_same_thread=False: a pooled connection serves whichever thread borrows it
        # (one at a time), and close() may close it from another thread.
        conn = sqlite3.connect(
            self.path,
            timeout=self._busy_timeout,
            isolation_level=None,
            check_same_thread=False,
        )
        conn.execute(f"PRAGMA busy_timeout={int(self._busy_timeout * 1000)}")
        conn.execute("PRAGMA synchronous=NORMAL")
        return conn

    @contextmanager
    def _connection(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            if self._closed:
                raise RuntimeError("the response store is closed")
            conn = self._idle.pop() if self._idle else None
        if conn is None:
            conn = self._connect()
        try:
            yield conn
        finally:
            with self._lock:
                if self._closed:
                    conn.close()
                else:
                    self._idle.append(conn)

    def put(self, record: StoredResponse) -> None:
        params = row_params(record)
        with self._connection() as conn:
            conn.execute("BEGIN IMMEDIATE")
            try:
                conn.execute(SQLITE.upsert, params)
                for statement, values in SQLITE.prune(self.max_age_seconds, self.max_responses):
                    conn.execute(statement, values)
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:  # a failed COMMIT may already have rolled back
                    conn.execute("ROLLBACK")
                raise

    def get(self, response_id: str) -> StoredResponse | None:
        cutoff = oldest_kept(self.max_age_seconds)
        with self._connection() as conn:
            row = conn.execute(SQLITE.select_live, (response_id, cutoff)).fetchone()
        return None if row is None else record_from_row(row, decode=True)

    def delete(self, response_id: str) -> bool:
        with self._connection() as conn:
            cursor = conn.execute(SQLITE.delete_one, (response_id,))
        return cursor.rowcount > 0

    def close(self) -> None:
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()

    def __enter__(self) -> SQLiteResponseStore:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
