"""The response store (issue 10, part 3), the same suite against SQLite and a real PostgreSQL.

The PostgreSQL server is the session's throwaway cluster (tests/responses/conftest.py); each
test gets a fresh database, so the two backends are held to exactly the same behaviour.
"""

from __future__ import annotations

import asyncio
import json
import math
import sqlite3
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from proxy.api.responses.store import (
    TABLE,
    PostgresResponseStore,
    ResponseStore,
    SQLiteResponseStore,
    open_store,
)
from tests.responses.stored import OWNER, record

DAY = 86_400.0


def test_open_store_picks_the_backend(location: str) -> None:
    store = open_store(location)
    try:
        assert isinstance(store, ResponseStore)
        expected = PostgresResponseStore if location.startswith("postgres") else SQLiteResponseStore
        assert isinstance(store, expected)
    finally:
        store.close()


def test_round_trip(store: ResponseStore) -> None:
    first = record("resp_first")
    second = record("resp_second", previous="resp_first")
    store.put(first)
    store.put(second)
    assert store.get("resp_first", OWNER) == first
    got = store.get("resp_second", OWNER)
    assert got == second
    assert got is not None and got.previous_response_id == "resp_first"
    assert isinstance(got.created_at, float) and got.created_at == second.created_at


def test_response_json_comes_back_exactly(store: ResponseStore) -> None:
    """Key order, non-ASCII, NUL and lone surrogates (a client can send `"\\ud800"`) survive:
    GET /v1/responses/{id} serialises to the same text the client first received."""
    rec = record("resp_exact", text="é 中文 😀 \x00 nul \ud800 lone")
    rec.response = {"zeta": 1, "id": "resp_exact", "alpha": [3, 2, 1], "nested": {"b": 1, "a": 2}}
    rec.response["big"] = 2**60
    rec.response["float"] = 0.1
    rec.response["null"] = None
    store.put(rec)
    got = store.get("resp_exact", OWNER)
    assert got is not None
    assert json.dumps(got.response) == json.dumps(rec.response)
    assert got.conversation == rec.conversation
    assert got.conversation[1]["content"][0]["text"] == "é 中文 😀 \x00 nul \ud800 lone"


def test_not_json_is_refused(store: ResponseStore) -> None:
    rec = record("resp_nan")
    rec.response["temperature"] = math.nan
    with pytest.raises(ValueError):
        store.put(rec)
    assert store.get("resp_nan", OWNER) is None


def test_get_absent(store: ResponseStore) -> None:
    assert store.get("resp_nope", OWNER) is None


def test_put_same_id_replaces(store: ResponseStore) -> None:
    store.put(record("resp_a", text="first"))
    store.put(record("resp_a", text="second"))
    got = store.get("resp_a", OWNER)
    assert got is not None and got.response["output_text"] == "second"


def test_delete(store: ResponseStore) -> None:
    store.put(record("resp_kept"))
    store.put(record("resp_gone"))
    assert store.delete("resp_gone", OWNER) is True
    assert store.get("resp_gone", OWNER) is None
    assert store.delete("resp_gone", OWNER) is False
    assert store.delete("resp_never", OWNER) is False
    assert store.get("resp_kept", OWNER) is not None


def test_retention_by_count_evicts_the_oldest(make_store: Callable[..., ResponseStore]) -> None:
    store = make_store(max_responses=3)
    now = time.time()
    # Inserted out of order: "oldest" is by created_at, not by insertion.
    for i in (2, 0, 4, 1, 3):
        store.put(record(f"resp_{i}", created_at=now - 100 + i))
    assert [store.get(f"resp_{i}", OWNER) is not None for i in range(5)] == [
        False,
        False,
        True,
        True,
        True,
    ]


def test_retention_by_age(make_store: Callable[..., ResponseStore]) -> None:
    store = make_store(max_age_seconds=3600)
    now = time.time()
    store.put(record("resp_fresh", created_at=now - 60))
    store.put(record("resp_stale", created_at=now - 7200))
    assert store.get("resp_fresh", OWNER) is not None
    assert store.get("resp_stale", OWNER) is None


def test_expired_rows_are_invisible_before_any_prune(
    make_store: Callable[..., ResponseStore],
) -> None:
    unlimited = make_store(max_responses=None, max_age_seconds=None)
    unlimited.put(record("resp_old", created_at=time.time() - 40 * DAY))
    assert unlimited.get("resp_old", OWNER) is not None
    # A store with the default 30-day retention hides it at once, without a put pruning it.
    assert make_store().get("resp_old", OWNER) is None


def test_defaults_keep_recent_rows_and_prune_month_old_ones(
    make_store: Callable[..., ResponseStore],
) -> None:
    store = make_store()
    store.put(record("resp_29d", created_at=time.time() - 29 * DAY))
    store.put(record("resp_31d", created_at=time.time() - 31 * DAY))
    assert store.get("resp_29d", OWNER) is not None
    assert store.get("resp_31d", OWNER) is None


def test_no_limits_keep_everything(make_store: Callable[..., ResponseStore]) -> None:
    store = make_store(max_responses=None, max_age_seconds=None)
    for i in range(20):
        store.put(record(f"resp_{i}", created_at=time.time() - 400 * DAY))
    assert all(store.get(f"resp_{i}", OWNER) is not None for i in range(20))


def test_survives_a_restart(location: str) -> None:
    first = open_store(location)
    rec = record("resp_persist")
    first.put(rec)
    first.close()
    first.close()  # idempotent
    second = open_store(location)  # the schema already exists: opening again is a no-op
    try:
        assert second.get("resp_persist", OWNER) == rec
    finally:
        second.close()


def test_concurrent_use_from_threads(make_store: Callable[..., ResponseStore]) -> None:
    store = make_store(max_responses=None)
    workers, each = 6, 15

    def work(worker: int) -> None:
        for i in range(each):
            rid = f"resp_{worker}_{i}"
            store.put(record(rid))
            got = store.get(rid, OWNER)
            assert got is not None and got.id == rid
            if i % 3 == 0:
                assert store.delete(rid, OWNER)

    with ThreadPoolExecutor(workers) as pool:
        list(pool.map(work, range(workers)))
    for worker in range(workers):
        for i in range(each):
            assert (store.get(f"resp_{worker}_{i}", OWNER) is None) == (i % 3 == 0)


def test_two_stores_on_one_location(make_store: Callable[..., ResponseStore]) -> None:
    """Two proxies (replicas, or an old and a new process) sharing one database."""
    a, b = make_store(max_responses=40), make_store(max_responses=40)
    rec = record("resp_shared")
    a.put(rec)
    assert b.get("resp_shared", OWNER) == rec
    assert b.delete("resp_shared", OWNER) and a.get("resp_shared", OWNER) is None

    def work(pair: tuple[ResponseStore, str]) -> None:
        store, name = pair
        for i in range(15):
            store.put(record(f"resp_{name}_{i}", created_at=time.time()))

    with ThreadPoolExecutor(4) as pool:
        list(pool.map(work, [(a, "a1"), (b, "b1"), (a, "a2"), (b, "b2")]))
    # 60 puts, at most 40 kept (PostgreSQL may keep a few more until the next uncontended
    # prune, which this put is): the 39 newest of them and this one.
    b.put(record("resp_last"))
    present = sum(
        a.get(f"resp_{n}_{i}", OWNER) is not None
        for n in ("a1", "a2", "b1", "b2")
        for i in range(15)
    )
    assert present == 39


def test_stores_opened_at_once_on_a_new_location(location: str) -> None:
    """Replicas starting together against an empty database all create the schema cleanly."""
    count = 4
    barrier = threading.Barrier(count)

    def open_one(_: int) -> ResponseStore:
        barrier.wait()
        return open_store(location)

    with ThreadPoolExecutor(count) as pool:
        stores = list(pool.map(open_one, range(count)))
    try:
        for i, store in enumerate(stores):
            store.put(record(f"resp_{i}"))
        assert all(stores[0].get(f"resp_{i}", OWNER) is not None for i in range(count))
    finally:
        for store in stores:
            store.close()


async def test_called_through_to_thread(store: ResponseStore) -> None:
    """How the endpoint uses it: concurrent `asyncio.to_thread` calls."""
    await asyncio.gather(
        *(asyncio.to_thread(store.put, record(f"resp_async_{i}")) for i in range(10))
    )
    got = await asyncio.gather(
        *(asyncio.to_thread(store.get, f"resp_async_{i}", OWNER) for i in range(10))
    )
    assert [g.id if g else None for g in got] == [f"resp_async_{i}" for i in range(10)]


_json = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(payload=st.dictionaries(st.text(max_size=8), _json, max_size=5), text=st.text())
def test_any_json_round_trips(store: ResponseStore, payload: dict[str, Any], text: str) -> None:
    rec = record("resp_prop", text=text)
    rec.response = payload
    store.put(rec)
    got = store.get("resp_prop", OWNER)
    assert got is not None
    assert json.dumps(got.response) == json.dumps(payload)
    assert got.conversation == rec.conversation


# Backend-specific details.


def test_sqlite_file_is_wal_and_made_with_parents(tmp_path: Path) -> None:
    path = tmp_path / "a" / "b" / "responses.sqlite3"
    store = open_store(f"sqlite://{path}")
    try:
        store.put(record("resp_x"))
    finally:
        store.close()
    assert path.exists()
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute(f"SELECT count(*) FROM {TABLE}").fetchone()[0] == 1


def test_sqlite_relative_path_and_url(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    for location, expected in (
        ("plain.db", tmp_path / "plain.db"),
        ("sqlite://rel/url.db", tmp_path / "rel" / "url.db"),
        (f"sqlite:///{tmp_path.relative_to('/')}/abs.db", tmp_path / "abs.db"),
    ):
        store = open_store(location)
        assert isinstance(store, SQLiteResponseStore)
        assert store.path.resolve() == expected
        store.close()
        assert expected.exists()


def test_sqlite_closed_store_refuses(tmp_path: Path) -> None:
    store = open_store(str(tmp_path / "r.db"))
    store.close()
    with pytest.raises(RuntimeError, match="closed"):
        store.get("resp_x", OWNER)


@pytest.mark.parametrize(
    ("location", "message"),
    [
        ("mysql://db/x", "unsupported response store URL scheme 'mysql'"),
        (":memory:", "needs a file path"),
        ("sqlite://", "needs a file path"),
        ("", "needs a file path"),
    ],
)
def test_bad_locations(location: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        open_store(location)


@pytest.mark.parametrize(
    "limits", [{"max_responses": 0}, {"max_age_seconds": 0}, {"max_age_seconds": -1.0}]
)
def test_bad_limits(tmp_path: Path, limits: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        open_store(str(tmp_path / "r.db"), **limits)


def test_postgres_unreachable_fails_fast(tmp_path: Path) -> None:
    psycopg = pytest.importorskip("psycopg")
    started = time.monotonic()
    with pytest.raises(psycopg.OperationalError):
        open_store(f"postgresql://postgres@/x?host={tmp_path}&connect_timeout=2")
    assert time.monotonic() - started < 10


def test_postgres_accepts_postgres_scheme_and_uses_json_columns(postgres_url: str) -> None:
    psycopg = pytest.importorskip("psycopg")
    store = open_store(postgres_url.replace("postgresql://", "postgres://", 1))
    try:
        assert isinstance(store, PostgresResponseStore)
        store.put(record("resp_pg"))
    finally:
        store.close()
    with psycopg.connect(postgres_url) as conn:
        types = dict(
            conn.execute(
                "SELECT column_name, data_type FROM information_schema.columns"
                " WHERE table_name = %s",
                (TABLE,),
            ).fetchall()
        )
    assert types["response"] == types["input_items"] == types["conversation"] == "json"
    assert types["created_at"] == "double precision"


def test_postgres_store_outlives_a_database_restart(postgres_server: Any) -> None:
    """The pool checks connections before use: after the database restarts (its connections
    cut), the same store object keeps working without a failed call."""
    store = open_store(postgres_server.create_database())
    try:
        rec = record("resp_before")
        store.put(rec)
        postgres_server.restart()
        assert store.get("resp_before", OWNER) == rec
        store.put(record("resp_after"))
        assert store.get("resp_after", OWNER) is not None
    finally:
        store.close()
