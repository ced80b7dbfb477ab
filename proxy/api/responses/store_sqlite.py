"""The embedded response store: one SQLite file (the default; nothing to run)."""

from __future__ import annotations

import logging
import os
import sqlite3
import stat
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from proxy.api.responses.store_records import (
    ADDED,
    DEFAULT_MAX_AGE_SECONDS,
    DEFAULT_MAX_RESPONSES,
    DEFAULT_MAX_ROW_BYTES,
    DEFAULT_MAX_TOTAL_BYTES,
    INDEXES,
    SQLITE,
    TABLE,
    StoredResponse,
    apply_retention,
    lineage_marker,
    oldest_kept,
    record_from_row,
    row_params,
)

logger = logging.getLogger("proxy")


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

    The file holds every stored prompt, tool output and chain of thought in clear, so it is
    private: created 0600 (and its `-wal` and `-shm` files, which SQLite makes with the
    database's mode) in a directory created 0700. An existing file that is more open is
    tightened to 0600 with a warning; an existing directory that others can enter is only
    warned about (it may be a shared one the operator chose, such as the working directory).
    """

    def __init__(
        self,
        path: Path,
        *,
        max_responses: int | None = DEFAULT_MAX_RESPONSES,
        max_age_seconds: float | None = DEFAULT_MAX_AGE_SECONDS,
        max_row_bytes: int | None = DEFAULT_MAX_ROW_BYTES,
        max_total_bytes: int | None = DEFAULT_MAX_TOTAL_BYTES,
        busy_timeout_seconds: float = 30.0,
    ) -> None:
        self.path = Path(path)
        self.max_responses = max_responses
        self.max_age_seconds = max_age_seconds
        self.max_row_bytes = max_row_bytes
        self.max_total_bytes = max_total_bytes
        self._busy_timeout = busy_timeout_seconds
        self._lock = threading.Lock()
        self._idle: list[sqlite3.Connection] = []
        self._closed = False
        _make_private(self.path)
        with self._connection() as conn:
            # Persistent in the file: set once, a no-op for every later open.
            self._enable_wal(conn)
            with self._write(conn):
                conn.execute(
                    f"CREATE TABLE IF NOT EXISTS {TABLE} ("
                    " id TEXT PRIMARY KEY,"
                    f" owner {ADDED['owner']},"
                    " created_at REAL NOT NULL,"
                    " previous_response_id TEXT,"
                    f" lineage {ADDED['lineage']},"
                    f" size_bytes {ADDED['size_bytes']},"
                    " response TEXT NOT NULL,"
                    " input_items TEXT NOT NULL,"
                    " conversation TEXT NOT NULL)"
                )
                have = {row[1] for row in conn.execute(f"PRAGMA table_info({TABLE})")}
                for column, definition in ADDED.items():
                    if column not in have:
                        conn.execute(f"ALTER TABLE {TABLE} ADD COLUMN {column} {definition}")
                        if column == "size_bytes":
                            conn.execute(SQLITE.measure_old_rows)
                for statement in INDEXES:
                    conn.execute(statement)
        # The -wal and -shm files exist now (WAL mode), made with the database's mode.
        _make_private(self.path, created=False)

    @staticmethod
    @contextmanager
    def _write(conn: sqlite3.Connection) -> Iterator[None]:
        """One write transaction, begun IMMEDIATE (see the class docstring)."""
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield
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

    def put(self, record: StoredResponse) -> bool:
        params = row_params(record, self.max_row_bytes)
        limits = (self.max_age_seconds, self.max_responses, self.max_total_bytes)
        with self._connection() as conn, self._write(conn):
            stored = conn.execute(SQLITE.insert, params).rowcount > 0
            apply_retention(conn, SQLITE, *limits)
        return stored

    def get(self, response_id: str, owner: str) -> StoredResponse | None:
        cutoff = oldest_kept(self.max_age_seconds)
        with self._connection() as conn:
            row = conn.execute(SQLITE.select_live, (response_id, owner, cutoff)).fetchone()
        return None if row is None else record_from_row(row, decode=True)

    def delete(self, response_id: str, owner: str) -> bool:
        with self._connection() as conn, self._write(conn):
            if conn.execute(SQLITE.select_owned, (response_id, owner)).fetchone() is None:
                return False
            conn.execute(SQLITE.delete_with_copies, (response_id, lineage_marker(response_id)))
        return True

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


def _make_private(path: Path, *, created: bool = True) -> None:
    """The database's directory 0700 when this makes it, the database 0600 (created so when
    missing, `created`), and any existing database, -wal or -shm file tightened to 0600."""
    directory = path.parent
    if created and not directory.exists():
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chmod(directory, 0o700)  # (whatever the umask)
    elif created and stat.S_IMODE(directory.stat().st_mode) & 0o077:
        logger.warning(
            "the response store's directory %s is open to other users (mode %o); its files "
            "are kept 0600, but consider chmod 700",
            directory,
            stat.S_IMODE(directory.stat().st_mode),
        )
    if created and not path.exists():
        os.close(os.open(path, os.O_RDWR | os.O_CREAT, 0o600))
    for file in (path, Path(f"{path}-wal"), Path(f"{path}-shm")):
        try:
            mode = stat.S_IMODE(file.stat().st_mode)
        except FileNotFoundError:
            continue
        if mode & 0o077:
            try:
                os.chmod(file, 0o600)
                logger.warning(
                    "tightened %s from mode %o to 600 (it holds stored responses)", file, mode
                )
            except OSError as exc:
                logger.warning(
                    "%s is open to other users (mode %o) and could not be tightened: %s",
                    file,
                    mode,
                    exc,
                )
