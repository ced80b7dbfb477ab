"""The background tables' SQL plumbing: their schema, transactions on the response store's own
connections (SQLite or PostgreSQL), and retention. proxy/api/responses/background_store.py
says what is kept and why."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from proxy.api.responses.store import ResponseStore, SQLiteResponseStore

ROWS = "harmony_proxy_background"
EVENTS = "harmony_proxy_background_events"
ACTIVE = ("queued", "in_progress")
ACTIVE_SQL = "status IN ('queued', 'in_progress')"
_PG_SCHEMA_LOCK = 0x6861726D6F6E7901  # (the response store's: schema changes one at a time)


class Database:
    """The response store's database, for statements written once with `?` placeholders.

    The tables live beside the stored responses, reached through the store's pool (SQLite:
    writes begun IMMEDIATE so writers queue instead of failing; PostgreSQL: `lock` appends
    `FOR UPDATE` to a select that a transaction then updates)."""

    def __init__(self, store: ResponseStore) -> None:
        self._store: Any = store
        self.sqlite = isinstance(store, SQLiteResponseStore)
        self.lock = "" if self.sqlite else " FOR UPDATE"
        real, blob = ("REAL", "BLOB") if self.sqlite else ("double precision", "bytea")
        with self.transaction() as conn:
            if not self.sqlite:
                conn.execute("SELECT pg_advisory_xact_lock(?)", (_PG_SCHEMA_LOCK,))
            conn.execute(
                f"CREATE TABLE IF NOT EXISTS {ROWS} (id TEXT PRIMARY KEY, owner TEXT NOT NULL,"
                f" created_at {real} NOT NULL, status TEXT NOT NULL, response TEXT NOT NULL,"
                f" lease_until {real} NOT NULL, events BIGINT NOT NULL DEFAULT 0,"
                " event_bytes BIGINT NOT NULL DEFAULT 0)"
            )
            conn.execute(
                f"CREATE TABLE IF NOT EXISTS {EVENTS} (response_id TEXT NOT NULL,"
                f" sequence BIGINT NOT NULL, data {blob} NOT NULL,"
                " PRIMARY KEY (response_id, sequence))"
            )
            conn.execute(f"CREATE INDEX IF NOT EXISTS {ROWS}_by_status ON {ROWS} (status)")

    @contextmanager
    def transaction(self) -> Iterator[Connection]:
        store = self._store
        if self.sqlite:
            with store._connection() as conn, store._write(conn):
                yield Connection(conn, self.sqlite)
        else:
            with store._pool.connection() as conn, conn.transaction():
                yield Connection(conn, self.sqlite)

    @contextmanager
    def reading(self) -> Iterator[Connection]:
        store = self._store
        with store._connection() if self.sqlite else store._pool.connection() as conn:
            yield Connection(conn, self.sqlite)


class Connection:
    """A sqlite3 or psycopg connection taking `?` placeholders."""

    def __init__(self, conn: Any, sqlite: bool) -> None:
        self._conn = conn
        self._sqlite = sqlite

    def _sql(self, statement: str) -> str:
        return statement if self._sqlite else statement.replace("?", "%s")

    def execute(self, statement: str, params: tuple[Any, ...] = ()) -> Any:
        return self._conn.execute(self._sql(statement), params)

    def executemany(self, statement: str, params: list[tuple[Any, ...]]) -> None:
        if self._sqlite:
            self._conn.executemany(statement, params)
        else:
            with self._conn.cursor() as cursor:
                cursor.executemany(self._sql(statement), params)


def prune(
    conn: Connection,
    now: float,
    max_age_seconds: float | None,
    max_rows: int | None,
    max_total_bytes: int | None,
) -> None:
    """Drop rows past the age limit, then finished rows beyond the count and byte budgets,
    oldest first, with their logs (active rows are never dropped by budget: their runner
    would stop)."""
    doomed: list[str] = []
    if max_age_seconds is not None:
        old = conn.execute(f"SELECT id FROM {ROWS} WHERE created_at < ?", (now - max_age_seconds,))
        doomed += [row[0] for row in old.fetchall()]
    if max_rows is not None or max_total_bytes is not None:
        rows = conn.execute(
            f"SELECT id, event_bytes, status FROM {ROWS} ORDER BY created_at DESC, id DESC"
        ).fetchall()
        kept = total = 0
        for rid, size, status in rows:
            kept, total = kept + 1, total + int(size)
            over_rows = max_rows is not None and kept > max_rows
            over_bytes = max_total_bytes is not None and total > max_total_bytes
            if (over_rows or over_bytes) and status not in ACTIVE:
                doomed.append(rid)
    for rid in dict.fromkeys(doomed):
        conn.execute(f"DELETE FROM {EVENTS} WHERE response_id = ?", (rid,))
        conn.execute(f"DELETE FROM {ROWS} WHERE id = ?", (rid,))
