"""Where stored responses live: `store: true` and `previous_response_id` (issue 10, part 3).

A stored response must outlive the process (`previous_response_id` survives a restart) and, with
several proxy replicas behind one load balancer, be visible to all of them. So there are two
backends behind one small synchronous interface:

- an embedded SQLite file (the default, a path): nothing to run, enough for one proxy
  (store_sqlite.py);
- PostgreSQL (a `postgresql://` URL): one database shared by every replica (store_postgres.py).

Both write the same row (store_records.py). This module is the interface and `open_store`.

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

import re
from pathlib import Path
from typing import Protocol, runtime_checkable

from proxy.api.responses.store_postgres import PostgresResponseStore
from proxy.api.responses.store_records import (
    DEFAULT_MAX_AGE_SECONDS,
    DEFAULT_MAX_RESPONSES,
    TABLE,
    StoredResponse,
)
from proxy.api.responses.store_sqlite import SQLiteResponseStore

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

_URL_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")


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
