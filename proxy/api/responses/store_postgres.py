"""The shared response store: a table in PostgreSQL, for several proxy replicas.

psycopg is imported only when such a store is opened (the SQLite default never needs it).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from proxy.api.responses.store_records import (
    ADDED,
    DEFAULT_MAX_AGE_SECONDS,
    DEFAULT_MAX_RESPONSES,
    DEFAULT_MAX_ROW_BYTES,
    DEFAULT_MAX_TOTAL_BYTES,
    INDEXES,
    POSTGRES,
    TABLE,
    StoredResponse,
    apply_retention,
    lineage_marker,
    oldest_kept,
    record_from_row,
    row_params,
)

if TYPE_CHECKING:
    import psycopg

logger = logging.getLogger("proxy")

# Keys of the PostgreSQL advisory locks this module takes (arbitrary, fixed 63-bit constants):
# one serialises schema creation between replicas starting together, the other lets one replica
# at a time prune (the others skip pruning rather than wait or deadlock on the same rows).
_PG_SCHEMA_LOCK = 0x6861726D6F6E7901
_PG_PRUNE_LOCK = 0x6861726D6F6E7902


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

    A DELETE locks the row it deletes (`FOR UPDATE`) and a put continuing from it takes a
    shared lock on it, so a response generated while its predecessor was being deleted is
    either seen and deleted by the cascade or not stored at all (store_records.Statements).
    """

    def __init__(
        self,
        url: str,
        *,
        max_responses: int | None = DEFAULT_MAX_RESPONSES,
        max_age_seconds: float | None = DEFAULT_MAX_AGE_SECONDS,
        max_row_bytes: int | None = DEFAULT_MAX_ROW_BYTES,
        max_total_bytes: int | None = DEFAULT_MAX_TOTAL_BYTES,
        pool_size: int = 4,
        connect_timeout_seconds: float = 10.0,
    ) -> None:
        import psycopg
        from psycopg_pool import ConnectionPool

        self.max_responses = max_responses
        self.max_age_seconds = max_age_seconds
        self.max_row_bytes = max_row_bytes
        self.max_total_bytes = max_total_bytes
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
        """Create the table, or bring one an older version made up to date (`ADDED`)."""
        # The newest indexes exist only once every migration has run.
        exists = conn.execute(
            "SELECT to_regclass(%s) IS NOT NULL AND to_regclass(%s) IS NOT NULL",
            (f"{TABLE}_by_age", f"{TABLE}_previous"),
        ).fetchone()
        if exists and exists[0]:
            return  # nothing to do, and no CREATE privilege needed
        with conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (_PG_SCHEMA_LOCK,))
            conn.execute(
                f"CREATE TABLE IF NOT EXISTS {TABLE} ("
                " id text PRIMARY KEY,"
                f" owner {ADDED['owner']},"
                " created_at double precision NOT NULL,"
                " previous_response_id text,"
                f" lineage {ADDED['lineage']},"
                f" size_bytes {ADDED['size_bytes']},"
                " response json NOT NULL,"
                " input_items json NOT NULL,"
                " conversation json NOT NULL)"
            )
            for column, definition in ADDED.items():
                added = conn.execute(
                    "SELECT NOT EXISTS (SELECT 1 FROM pg_attribute WHERE attrelid = %s::regclass"
                    " AND attname = %s AND NOT attisdropped)",
                    (TABLE, column),
                ).fetchone()
                if added and added[0]:
                    conn.execute(f"ALTER TABLE {TABLE} ADD COLUMN {column} {definition}")
                    if column == "size_bytes":
                        conn.execute(POSTGRES.measure_old_rows)
            for statement in INDEXES:
                conn.execute(statement)

    def put(self, record: StoredResponse) -> bool:
        import psycopg

        params = row_params(record, self.max_row_bytes)
        with self._pool.connection() as conn:
            stored = conn.execute(POSTGRES.insert, params).rowcount > 0
            try:
                self._prune(conn)
            except psycopg.Error:
                # The record is stored; a failed prune only delays retention to the next put.
                logger.warning("pruning the response store failed", exc_info=True)
        return stored

    def _prune(self, conn: psycopg.Connection[Any]) -> None:
        limits = (self.max_age_seconds, self.max_responses, self.max_total_bytes)
        if all(limit is None for limit in limits):
            return
        with conn.transaction():
            locked = conn.execute(
                "SELECT pg_try_advisory_xact_lock(%s)", (_PG_PRUNE_LOCK,)
            ).fetchone()
            if not (locked and locked[0]):
                return  # another replica is pruning right now
            apply_retention(conn, POSTGRES, *limits)

    def get(self, response_id: str, owner: str) -> StoredResponse | None:
        cutoff = oldest_kept(self.max_age_seconds)
        with self._pool.connection() as conn:
            row = conn.execute(POSTGRES.select_live, (response_id, owner, cutoff)).fetchone()
        # psycopg decodes `json` columns itself.
        return None if row is None else record_from_row(row, decode=False)

    def delete(self, response_id: str, owner: str) -> bool:
        with self._pool.connection() as conn, conn.transaction():
            if conn.execute(POSTGRES.select_owned, (response_id, owner)).fetchone() is None:
                return False
            conn.execute(POSTGRES.delete_with_copies, (response_id, lineage_marker(response_id)))
            return True

    def close(self) -> None:
        self._pool.close()

    def __enter__(self) -> PostgresResponseStore:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
