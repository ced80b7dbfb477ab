"""Where stored responses live: `store: true` and `previous_response_id` (issue 10, part 3).

A stored response must outlive the process (`previous_response_id` survives a restart) and, with
several proxy replicas behind one load balancer, be visible to all of them. So there are two
backends behind one small synchronous interface:

- an embedded SQLite file (the default, a path): nothing to run, enough for one proxy
  (store_sqlite.py);
- PostgreSQL (a `postgresql://` URL): one database shared by every replica (store_postgres.py).

Both write the same row (store_records.py). This module is the interface and `open_store`.

Every row has an owner (`Caller.owner`, the API key's identity): `get` and `delete` take the
caller's owner and treat another owner's row exactly as a missing one, so the endpoint answers
both with the same 404 and nobody learns that an id exists under another key.

Each record keeps a copy of the whole conversation it continues from
(`StoredResponse.conversation`), so rebuilding a `previous_response_id` chain is one read and
expiring an earlier response never breaks the later ones that continued from it. The price of
copying is paid at DELETE: a deleted response must not live on in the copies, so `delete`
removes the response and every row that copied it (those whose `lineage` names it: everything
continued from it, directly or not). Rewriting those rows without the deleted items instead
would leave conversations with answers to calls nobody made; deleting the branch is what a
client asking for the content to be gone means. A put whose predecessor was deleted while it
was being generated stores nothing (`put` returns False).

The interface is synchronous on purpose: both drivers block, and the endpoint calls the store
through `asyncio.to_thread`, so every backend must be safe to use from several threads at once.

A row is at most `max_row_bytes` of JSON (`put` raises `RowTooLarge` beyond it). Retention is
applied on every `put` (rows older than `max_age_seconds`, then rows beyond `max_responses` and
beyond `max_total_bytes` in all, oldest first; over the byte budget, down to 90% of it), and
`get` never returns a row older than `max_age_seconds` even if no `put` has pruned it yet, so
expiry is exact from the client's point of view.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Protocol, runtime_checkable

from proxy.api.responses.store_postgres import PostgresResponseStore
from proxy.api.responses.store_records import (
    ANONYMOUS_OWNER,
    DEFAULT_MAX_AGE_SECONDS,
    DEFAULT_MAX_RESPONSES,
    DEFAULT_MAX_ROW_BYTES,
    DEFAULT_MAX_TOTAL_BYTES,
    TABLE,
    RowTooLarge,
    StoredResponse,
)
from proxy.api.responses.store_sqlite import SQLiteResponseStore

__all__ = [
    "ANONYMOUS_OWNER",
    "DEFAULT_MAX_AGE_SECONDS",
    "DEFAULT_MAX_RESPONSES",
    "DEFAULT_MAX_ROW_BYTES",
    "DEFAULT_MAX_TOTAL_BYTES",
    "STORE_OFF",
    "TABLE",
    "PostgresResponseStore",
    "ResponseStore",
    "RowTooLarge",
    "SQLiteResponseStore",
    "StoredResponse",
    "open_store",
]

# `--response-store off`: no store at all (`open_store` is never called with it).
STORE_OFF = "off"

_URL_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")


@runtime_checkable
class ResponseStore(Protocol):
    """Synchronous and thread-safe; the endpoint calls it through `asyncio.to_thread`."""

    def put(self, record: StoredResponse) -> bool:
        """Store `record` (replacing one with the same id), then apply retention. False (and
        nothing stored) when the response it continues no longer exists; `RowTooLarge` when
        it is over the row cap."""
        ...

    def get(self, response_id: str, owner: str) -> StoredResponse | None:
        """The record `owner` stored, or None when it is absent, another owner's, deleted or
        expired."""
        ...

    def delete(self, response_id: str, owner: str) -> bool:
        """Delete `owner`'s record and every record that copied its items; False if `owner`
        has no such record."""
        ...

    def close(self) -> None:
        """Release connections; the store cannot be used afterwards. Idempotent."""
        ...


def open_store(
    location: str,
    *,
    max_responses: int | None = DEFAULT_MAX_RESPONSES,
    max_age_seconds: float | None = DEFAULT_MAX_AGE_SECONDS,
    max_row_bytes: int | None = DEFAULT_MAX_ROW_BYTES,
    max_total_bytes: int | None = DEFAULT_MAX_TOTAL_BYTES,
) -> ResponseStore:
    """Open (creating its schema if needed) the store at `location`.

    `location` is a filesystem path or `sqlite:///abs/path` (`sqlite://rel/path` is relative)
    for the embedded SQLite store, or a `postgresql://` / `postgres://` URL (any libpq URL; a
    Unix socket directory goes in `?host=/dir`) for PostgreSQL. `max_responses`,
    `max_age_seconds`, `max_row_bytes` and `max_total_bytes` bound what is kept; None lifts
    that bound.
    """
    for name, value in (
        ("max_responses", max_responses),
        ("max_age_seconds", max_age_seconds),
        ("max_row_bytes", max_row_bytes),
        ("max_total_bytes", max_total_bytes),
    ):
        if value is not None and not value > 0:
            raise ValueError(f"{name} must be positive (or None), not {value}")
    limits = {
        "max_responses": max_responses,
        "max_age_seconds": max_age_seconds,
        "max_row_bytes": max_row_bytes,
        "max_total_bytes": max_total_bytes,
    }
    if location == STORE_OFF:
        raise ValueError("the response store is off: there is nothing to open")
    match = _URL_SCHEME.match(location)
    scheme = match.group(1).lower() if match else None
    if scheme in ("postgresql", "postgres"):
        return PostgresResponseStore(location, **limits)
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
    return SQLiteResponseStore(Path(path).expanduser(), **limits)
