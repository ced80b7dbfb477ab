"""Where stored responses live: `store: true` and `previous_response_id` (issue 10, part 3).

A stored response must outlive the process (`previous_response_id` survives a restart) and, with
several proxy replicas behind one load balancer, be visible to all of them. So there are two
backends behind one small synchronous interface:

- an embedded SQLite file (the default, a path): nothing to run, enough for one proxy;
- PostgreSQL (a `postgresql://` URL): one database shared by every replica.

Each record keeps the whole conversation it continues from (`StoredResponse.conversation`), so
rebuilding a `previous_response_id` chain is one read, and deleting or expiring an earlier
response never breaks the later ones that continued from it.

The interface is synchronous on purpose: both drivers block, and the endpoint calls the store
through `asyncio.to_thread`, so every backend must be safe to use from several threads at once.

Retention is applied on every `put` (rows beyond `max_responses`, oldest first, and rows older
than `max_age_seconds`), and `get` never returns a row older than `max_age_seconds` even if no
`put` has pruned it yet, so expiry is exact from the client's point of view.
"""

from __future__ import annotations

import json
import logging
import re
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:  # psycopg is imported only when a PostgreSQL store is opened
    import psycopg

__all__ = [
    "DEFAULT_MAX_AGE_SECONDS",
    "DEFAULT_MAX_RESPONSES",
    "TABLE",
    "PostgresResponseStore",
    "ResponseStore",
    "SQLiteResponseStore",
    "StoredResponse",
    "open_store",
]

DEFAULT_MAX_RESPONSES = 10_000
DEFAULT_MAX_AGE_SECONDS = 30 * 86_400.0  # OpenAI keeps stored responses for 30 days

# Prefixed, because a PostgreSQL database may well be shared with other applications.
TABLE = "harmony_proxy_responses"

# Keys of the PostgreSQL advisory locks this module takes (arbitrary, fixed 63-bit constants):
# one serialises schema creation between replicas starting together, the other lets one replica
# at a time prune (the others skip pruning rather than wait or deadlock on the same rows).
logger = logging.getLogger("proxy")

_PG_SCHEMA_LOCK = 0x6861726D6F6E7901
_PG_PRUNE_LOCK = 0x6861726D6F6E7902

_URL_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")
_COLUMNS = "id, created_at, previous_response_id, response, input_items, conversation"


@dataclass
class StoredResponse:
    """One stored response, as the endpoint writes it and reads it back."""

    id: str
    """The response id, `resp_...`."""
    created_at: float
    """Unix seconds; retention (by age, and which rows are the oldest) is decided by it."""
    response: dict[str, Any]
    """The Response object JSON exactly as returned to the client (`GET /v1/responses/{id}`)."""
    input_items: list[dict[str, Any]] = field(default_factory=list)
    """This request's input items, normalised, each with an `id` (`GET .../input_items`)."""
    conversation: list[dict[str, Any]] = field(default_factory=list)
    """The whole item history this response continues from, plus its own input and output
    items: what a later `previous_response_id` rebuilds the conversation from."""
    previous_response_id: str | None = None


@runtime_checkable
class ResponseStore(Protocol):
    """Synchronous and thread-safe; the endpoint calls it through `asyncio.to_thread`."""

    def put(self, record: StoredResponse) -> None:
        """Store `record` (replacing one with the same id), then apply retention."""
        ...

    def get(self, response_id: str) -> StoredResponse | None:
        """The stored record, or None when it is absent, deleted or expired."""
        ...

    def delete(self, response_id: str) -> bool:
        """Delete a record; False if there was none."""
        ...

    def close(self) -> None:
        """Release connections; the store cannot be used afterwards. Idempotent."""
        ...


def open_store(
    location: str,
    *,
    max_responses: int | None = DEFAULT_MAX_RESPONSES,
    max_age_seconds: float | None = DEFAULT_MAX_AGE_SECONDS,
) -> ResponseStore:
    """Open (creating its schema if needed) the store at `location`.

    `location` is a filesystem path or `sqlite:///abs/path` (`sqlite://rel/path` is relative)
    for the embedded SQLite store, or a `postgresql://` / `postgres://` URL (any libpq URL; a
    Unix socket directory goes in `?host=/dir`) for PostgreSQL. `max_responses` and
    `max_age_seconds` bound what is kept; None lifts that bound.
    """
    if max_responses is not None and max_responses < 1:
        raise ValueError(f"max_responses must be at least 1 (or None), not {max_responses}")
    if max_age_seconds is not None and not max_age_seconds > 0:
        raise ValueError(f"max_age_seconds must be positive (or None), not {max_age_seconds}")
    match = _URL_SCHEME.match(location)
    scheme = match.group(1).lower() if match else None
    if scheme in ("postgresql", "postgres"):
        return PostgresResponseStore(
            location, max_responses=max_responses, max_age_seconds=max_age_seconds
        )
    if scheme == "sqlite":
        path = location[match.end() :] if match else location
    elif scheme is None:
        path = location
    else:
        raise ValueError(
            f"unsupported response store URL scheme {scheme!r}: use a file path, "
            "sqlite:///path, or postgresql://..."
        )
    if not path or path == ":memory:":
        raise ValueError(
            "the response store needs a file path (stored responses must survive a restart)"
        )
    return SQLiteResponseStore(
        Path(path).expanduser(), max_responses=max_responses, max_age_seconds=max_age_seconds
    )


def _dumps(value: Any) -> str:
    """Compact JSON text for a JSON column.

    Non-ASCII stays as UTF-8 (a third of the size of `\\u` escapes for CJK text), except when a
    string holds a lone surrogate (JSON escapes like `"\\ud800"` decode to one, and a client can
    send them): no driver can encode that as UTF-8, so such a value is written fully escaped,
    which both SQLite and PostgreSQL `json` store verbatim. NaN and infinities are refused (they
    are not JSON, and the response could not have been sent to a client either).
    """
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        text = json.dumps(value, separators=(",", ":"), allow_nan=False)
    return text


def _record(row: tuple[Any, ...], *, decode: bool) -> StoredResponse:
    rid, created_at, previous, response, input_items, conversation = row
    if decode:
        response, input_items, conversation = (
            json.loads(response),
            json.loads(input_items),
            json.loads(conversation),
        )
    return StoredResponse(
        id=rid,
        created_at=float(created_at),
        response=response,
        input_items=input_items,
        conversation=conversation,
        previous_response_id=previous,
    )


def _params(record: StoredResponse) -> tuple[Any, ...]:
    return (
        record.id,
        float(record.created_at),
        record.previous_response_id,
        _dumps(record.response),
        _dumps(record.input_items),
        _dumps(record.conversation),
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
        params = _params(record)
        with self._connection() as conn:
            conn.execute("BEGIN IMMEDIATE")
            try:
                conn.execute(
                    f"INSERT INTO {TABLE} ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?) "
                    "ON CONFLICT (id) DO UPDATE SET created_at = excluded.created_at,"
                    " previous_response_id = excluded.previous_response_id,"
                    " response = excluded.response, input_items = excluded.input_items,"
                    " conversation = excluded.conversation",
                    params,
                )
                if self.max_age_seconds is not None:
                    conn.execute(
                        f"DELETE FROM {TABLE} WHERE created_at < ?",
                        (time.time() - self.max_age_seconds,),
                    )
                if self.max_responses is not None:
                    conn.execute(
                        f"DELETE FROM {TABLE} WHERE id IN (SELECT id FROM {TABLE}"
                        " ORDER BY created_at DESC, id DESC LIMIT -1 OFFSET ?)",
                        (self.max_responses,),
                    )
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:  # a failed COMMIT may already have rolled back
                    conn.execute("ROLLBACK")
                raise

    def get(self, response_id: str) -> StoredResponse | None:
        cutoff = (
            -float("inf") if self.max_age_seconds is None else time.time() - self.max_age_seconds
        )
        with self._connection() as conn:
            row = conn.execute(
                f"SELECT {_COLUMNS} FROM {TABLE} WHERE id = ? AND created_at >= ?",
                (response_id, cutoff),
            ).fetchone()
        return None if row is None else _record(row, decode=True)

    def delete(self, response_id: str) -> bool:
        with self._connection() as conn:
            cursor = conn.execute(f"DELETE FROM {TABLE} WHERE id = ?", (response_id,))
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


class PostgresResponseStore:
    """The shared store: a table in a PostgreSQL database, for several proxy replicas.

    Connections come from a `psycopg_pool` pool (checked before each use, so a database restart
    costs no failed request once it is back). The JSON columns are PostgreSQL `json`, not
    `jsonb`, deliberately: `json` keeps the exact text, so a response reads back with its keys in
    the order the client first saw them, and it accepts every string a client can send, while
    `jsonb` rejects `\\u0000` and lone surrogates (one hostile input item would make `put`
    fail). Nothing queries inside these columns; `metadata` filters, if ever needed, can index a
    `jsonb` cast.

    Schema creation takes an advisory lock, so replicas starting together against an empty
    database do not race on `CREATE TABLE IF NOT EXISTS` (which is not safe concurrently in
    PostgreSQL: the loser fails on a catalog unique index). Pruning runs after the insert has
    committed, in its own transaction, under `pg_try_advisory_xact_lock`: one replica prunes at a
    time and the others skip it instead of waiting, so concurrent puts never deadlock on the
    rows being deleted; the row count can overshoot `max_responses` by the puts that skipped,
    until the next put prunes.
    """

    def __init__(
        self,
        url: str,
        *,
        max_responses: int | None = DEFAULT_MAX_RESPONSES,
        max_age_seconds: float | None = DEFAULT_MAX_AGE_SECONDS,
        pool_size: int = 4,
        connect_timeout_seconds: float = 10.0,
    ) -> None:
        import psycopg
        from psycopg_pool import ConnectionPool

        self.max_responses = max_responses
        self.max_age_seconds = max_age_seconds
        # A plain connection first: a wrong URL or a server that is down fails here with
        # libpq's own message, not with a pool timeout.
        with psycopg.connect(
            url, autocommit=True, connect_timeout=max(1, round(connect_timeout_seconds))
        ) as conn:
            self._create_schema(conn)
        self._pool = ConnectionPool(
            url,
            min_size=1,
            max_size=pool_size,
            kwargs={"autocommit": True},
            check=ConnectionPool.check_connection,
            open=False,
            name="harmony-proxy-responses",
        )
        self._pool.open(wait=True, timeout=connect_timeout_seconds)

    @staticmethod
    def _create_schema(conn: psycopg.Connection[Any]) -> None:
        exists = conn.execute(
            "SELECT to_regclass(%s) IS NOT NULL AND to_regclass(%s) IS NOT NULL",
            (TABLE, f"{TABLE}_created"),
        ).fetchone()
        if exists and exists[0]:
            return  # nothing to do, and no CREATE privilege needed
        with conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (_PG_SCHEMA_LOCK,))
            conn.execute(
                f"CREATE TABLE IF NOT EXISTS {TABLE} ("
                " id text PRIMARY KEY,"
                " created_at double precision NOT NULL,"
                " previous_response_id text,"
                " response json NOT NULL,"
                " input_items json NOT NULL,"
                " conversation json NOT NULL)"
            )
            conn.execute(f"CREATE INDEX IF NOT EXISTS {TABLE}_created ON {TABLE} (created_at, id)")

    def put(self, record: StoredResponse) -> None:
        import psycopg

        params = _params(record)
        with self._pool.connection() as conn:
            conn.execute(
                f"INSERT INTO {TABLE} ({_COLUMNS})"
                " VALUES (%s, %s, %s, %s::json, %s::json, %s::json)"
                " ON CONFLICT (id) DO UPDATE SET created_at = excluded.created_at,"
                " previous_response_id = excluded.previous_response_id,"
                " response = excluded.response, input_items = excluded.input_items,"
                " conversation = excluded.conversation",
                params,
            )
            try:
                self._prune(conn)
            except psycopg.Error:
                # The record is stored; a failed prune only delays retention to the next put.
                logger.warning("pruning the response store failed", exc_info=True)

    def _prune(self, conn: psycopg.Connection[Any]) -> None:
        if self.max_responses is None and self.max_age_seconds is None:
            return
        with conn.transaction():
            locked = conn.execute(
                "SELECT pg_try_advisory_xact_lock(%s)", (_PG_PRUNE_LOCK,)
            ).fetchone()
            if not (locked and locked[0]):
                return  # another replica is pruning right now
            if self.max_age_seconds is not None:
                conn.execute(
                    f"DELETE FROM {TABLE} WHERE created_at < %s",
                    (time.time() - self.max_age_seconds,),
                )
            if self.max_responses is not None:
                conn.execute(
                    f"DELETE FROM {TABLE} WHERE id IN (SELECT id FROM {TABLE}"
                    " ORDER BY created_at DESC, id DESC OFFSET %s)",
                    (self.max_responses,),
                )

    def get(self, response_id: str) -> StoredResponse | None:
        cutoff = (
            -float("inf") if self.max_age_seconds is None else time.time() - self.max_age_seconds
        )
        with self._pool.connection() as conn:
            row = conn.execute(
                f"SELECT {_COLUMNS} FROM {TABLE} WHERE id = %s AND created_at >= %s",
                (response_id, cutoff),
            ).fetchone()
        # psycopg decodes `json` columns itself.
        return None if row is None else _record(row, decode=False)

    def delete(self, response_id: str) -> bool:
        with self._pool.connection() as conn:
            cursor = conn.execute(f"DELETE FROM {TABLE} WHERE id = %s", (response_id,))
            return cursor.rowcount > 0

    def close(self) -> None:
        self._pool.close()

    def __enter__(self) -> PostgresResponseStore:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
