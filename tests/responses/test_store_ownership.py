"""The store's owners, deletes that take the copies with them, size limits and the migration of
databases written before rows had owners: on SQLite and on a real PostgreSQL."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from proxy.api.responses.store import (
    ANONYMOUS_OWNER,
    TABLE,
    ResponseStore,
    RowTooLarge,
    open_store,
)
from proxy.api.responses.store_records import row_params
from tests.responses.stored import OWNER, record

OTHER = "key:mallory"
DAY = 86_400.0


def test_another_owners_row_is_absent(store: ResponseStore) -> None:
    store.put(record("resp_alice"))
    assert store.get("resp_alice", OTHER) is None
    assert store.delete("resp_alice", OTHER) is False
    # ...and still there for its owner.
    got = store.get("resp_alice", OWNER)
    assert got is not None and got.owner == OWNER


def test_delete_takes_every_row_that_copied_it(store: ResponseStore) -> None:
    store.put(record("resp_a"))
    store.put(record("resp_b", previous="resp_a", lineage=["resp_a"]))
    store.put(record("resp_c", previous="resp_b", lineage=["resp_a", "resp_b"]))
    store.put(record("resp_other"))
    assert store.delete("resp_b", OWNER)
    assert store.get("resp_a", OWNER) is not None  # what came before stays
    assert store.get("resp_c", OWNER) is None
    assert store.delete("resp_a", OWNER)
    assert store.get("resp_a", OWNER) is None
    assert store.get("resp_other", OWNER) is not None


def test_delete_finds_copies_past_a_pruned_link(make_store: Callable[..., ResponseStore]) -> None:
    """B expired (retention) between A and C: C still holds A's items, and goes with A."""
    keep_all = make_store(max_responses=None, max_age_seconds=None)
    now = time.time()
    keep_all.put(record("resp_a", created_at=now))
    keep_all.put(record("resp_b", created_at=now - 2 * DAY, previous="resp_a"))
    keep_all.put(record("resp_c", created_at=now, previous="resp_b", lineage=["resp_a", "resp_b"]))
    one_day = make_store(max_age_seconds=DAY)
    one_day.put(record("resp_d"))  # prunes resp_b
    assert keep_all.get("resp_b", OWNER) is None
    assert keep_all.get("resp_c", OWNER) is not None
    assert keep_all.delete("resp_a", OWNER)
    assert keep_all.get("resp_c", OWNER) is None
    assert keep_all.get("resp_d", OWNER) is not None


def test_a_continuation_of_a_deleted_response_is_not_stored(store: ResponseStore) -> None:
    """A response generated while its predecessor was being deleted keeps no copy of it."""
    store.put(record("resp_a"))
    assert store.delete("resp_a", OWNER)
    assert store.put(record("resp_b", previous="resp_a")) is False
    assert store.get("resp_b", OWNER) is None
    assert store.put(record("resp_fresh")) is True


def test_a_row_over_the_cap_is_refused_and_nothing_kept(
    make_store: Callable[..., ResponseStore],
) -> None:
    store = make_store(max_row_bytes=4096)
    store.put(record("resp_small"))
    with pytest.raises(RowTooLarge, match="4096"):
        store.put(record("resp_big", text="é" * 3000))  # 6,000 bytes of UTF-8
    assert store.get("resp_big", OWNER) is None
    assert store.get("resp_small", OWNER) is not None


def test_retention_by_bytes_drops_the_oldest(make_store: Callable[..., ResponseStore]) -> None:
    now = time.time()
    rows = [record(f"resp_{i}", created_at=now - 100 + i, text="x" * 2000) for i in range(6)]
    size = row_params(rows[0], None)[5]  # every row is this size (the ids are as long)
    store = make_store(max_total_bytes=int(2.5 * size), max_responses=None)
    for row in rows:
        store.put(row)
    kept = [i for i in range(6) if store.get(f"resp_{i}", OWNER) is not None]
    assert kept == [4, 5]


_LEGACY_SCHEMA = {
    "sqlite": (
        f"CREATE TABLE {TABLE} (id TEXT PRIMARY KEY, created_at REAL NOT NULL,"
        " previous_response_id TEXT, response TEXT NOT NULL, input_items TEXT NOT NULL,"
        " conversation TEXT NOT NULL)"
    ),
    "postgres": (
        f"CREATE TABLE {TABLE} (id text PRIMARY KEY, created_at double precision NOT NULL,"
        " previous_response_id text, response json NOT NULL, input_items json NOT NULL,"
        " conversation json NOT NULL)"
    ),
}
_LEGACY_INDEX = f"CREATE INDEX {TABLE}_created ON {TABLE} (created_at, id)"
_LEGACY_ROW = (
    f"INSERT INTO {TABLE} VALUES ('resp_legacy', NOW, NULL, '{{\"id\": \"resp_legacy\"}}',"
    " '[]', '[{\"type\": \"message\"}]')"
)


def _legacy_database(location: str) -> Callable[[str], list[tuple[object, ...]]]:
    """Write the table as the first release did, with one row; a query function for it."""
    kind = "postgres" if location.startswith("postgres") else "sqlite"
    insert = _LEGACY_ROW.replace("NOW", str(time.time()))
    if kind == "sqlite":
        Path(location).parent.mkdir(parents=True)
        with sqlite3.connect(location) as conn:
            conn.execute(_LEGACY_SCHEMA[kind])
            conn.execute(_LEGACY_INDEX)
            conn.execute(insert)

        def query(sql: str) -> list[tuple[object, ...]]:
            with sqlite3.connect(location) as conn:
                return conn.execute(sql).fetchall()

        return query
    psycopg = pytest.importorskip("psycopg")
    with psycopg.connect(location, autocommit=True) as conn:
        conn.execute(_LEGACY_SCHEMA[kind])
        conn.execute(_LEGACY_INDEX)
        conn.execute(insert)

    def query_pg(sql: str) -> list[tuple[object, ...]]:
        with psycopg.connect(location) as conn:
            return conn.execute(sql).fetchall()

    return query_pg


def test_a_database_from_before_owners_opens_and_its_rows_are_anonymous(location: str) -> None:
    """Rows written before this change belong to `anonymous`: a server without keys keeps
    them; under keys nobody sees them."""
    _legacy_database(location)
    store = open_store(location)
    try:
        got = store.get("resp_legacy", ANONYMOUS_OWNER)
        assert got is not None and got.response == {"id": "resp_legacy"}
        assert got.owner == ANONYMOUS_OWNER and got.lineage == []
        assert store.get("resp_legacy", OWNER) is None
        store.put(record("resp_new", previous="resp_legacy", owner=ANONYMOUS_OWNER))
        assert store.get("resp_new", ANONYMOUS_OWNER) is not None
    finally:
        store.close()
    again = open_store(location)  # the migrated schema opens as it is
    try:
        assert again.delete("resp_legacy", ANONYMOUS_OWNER)
        assert again.get("resp_new", ANONYMOUS_OWNER) is None
    finally:
        again.close()


def test_legacy_rows_are_measured_for_the_byte_budget(location: str) -> None:
    query = _legacy_database(location)
    open_store(location).close()
    expected = len('{"id": "resp_legacy"}') + len("[]") + len('[{"type": "message"}]')
    assert query(f"SELECT size_bytes FROM {TABLE}") == [(expected,)]
