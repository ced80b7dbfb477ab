"""Background responses in the response store: one status row per response, and its event log.

A background response (`background: true`) runs detached from the request that started it, and
any replica sharing the store must answer for it: poll its status, resume its event stream from
a sequence number, cancel it. So both live in the store's database (the same SQLite file or
PostgreSQL database as the stored responses, in two tables of their own):

- `harmony_proxy_background`: id, owner, status (queued → in_progress → completed, incomplete,
  failed or cancelled), the Response object as a poll returns it, the runner's lease, and the
  log's length and size;
- `harmony_proxy_background_events`: (response id, sequence number, the event's SSE bytes).

One rule keeps the two consistent without a coordinator: a response's log only grows while its
row is active, and every move to a terminal status appends the closing event in the same
transaction. The runner's appends are refused once another replica cancelled the response, a
reader found its lease expired, or it was deleted, and that refusal is how the runner learns to
stop. The status is the cancel flag.

The lease: the runner renews `lease_until` while it lives; a row still active past its lease
belongs to a proxy that died, and whoever reads it first (a poll, a resume, a cancel, a
replica's start-up sweep) marks it failed.

Bounds: a log holds at most `max_log_bytes` (the row byte cap; the closing event may pass it),
rows expire with the stored responses' age limit, and finished rows beyond the count and byte
budgets are dropped oldest first. Like the response store, this is synchronous and thread-safe,
called through `asyncio.to_thread`.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

import orjson

from proxy.api.responses.background_tables import (
    ACTIVE,
    ACTIVE_SQL,
    EVENTS,
    ROWS,
    Database,
    prune,
)
from proxy.api.responses.store import ResponseStore
from proxy.api.responses.store_records import dumps_json

_COLUMNS = "id, owner, status, response, lease_until, events"
# Serialises the cap check and insert of background creates across replicas (PostgreSQL).
_PG_CREATE_LOCK = 0x6861726D6F6E7903


class BackgroundLimit(Exception):
    """Too many background responses running: `scope` is "owner" or "server"."""

    def __init__(self, scope: str, limit: int) -> None:
        super().__init__(scope, limit)
        self.scope = scope
        self.limit = limit


class EventLogFull(Exception):
    """The response's event log would pass `max_log_bytes`."""


@dataclass(frozen=True)
class BackgroundRow:
    id: str
    owner: str
    status: str
    response: dict[str, Any]
    """The Response object as `GET /v1/responses/{id}` returns it now."""
    lease_until: float
    events: int
    """How many events the log holds: the next sequence number."""

    @property
    def active(self) -> bool:
        return self.status in ACTIVE

    def lease_expired(self, now: float) -> bool:
        return self.active and self.lease_until < now


def sse_event(kind: str, sequence: int, **fields: Any) -> bytes:
    """One event as the Responses stream writes it (proxy/api/responses/output.py)."""
    payload = orjson.dumps({"type": kind, "sequence_number": sequence, **fields})
    return b"event: " + kind.encode() + b"\ndata: " + payload + b"\n\n"


class BackgroundStore:
    """The two tables, on the connections of an open response store."""

    def __init__(
        self,
        store: ResponseStore,
        *,
        max_log_bytes: int | None,
        max_age_seconds: float | None,
        max_rows: int | None,
        max_total_bytes: int | None,
    ) -> None:
        self._db = Database(store)
        self._lock = self._db.lock
        self.max_log_bytes = max_log_bytes
        self.max_age_seconds = max_age_seconds
        self.max_rows = max_rows
        self.max_total_bytes = max_total_bytes

    # -- the runner's side ---------------------------------------------------------------
    def create(
        self,
        response: dict[str, Any],
        owner: str,
        lease_until: float,
        *,
        max_per_owner: int | None,
        max_total: int | None,
    ) -> None:
        """Insert a queued response; `BackgroundLimit` when the owner or the server already
        runs as many as allowed (rows whose lease expired do not count: their proxy died)."""
        now = time.time()
        with self._db.transaction() as conn:
            if not self._db.sqlite:
                conn.execute("SELECT pg_advisory_xact_lock(?)", (_PG_CREATE_LOCK,))
            total, mine = conn.execute(
                "SELECT COUNT(*), COALESCE(SUM(CASE WHEN owner = ? THEN 1 ELSE 0 END), 0)"
                f" FROM {ROWS} WHERE {ACTIVE_SQL} AND lease_until >= ?",
                (owner, now),
            ).fetchone()
            if max_total is not None and total >= max_total:
                raise BackgroundLimit("server", max_total)
            if max_per_owner is not None and mine >= max_per_owner:
                raise BackgroundLimit("owner", max_per_owner)
            conn.execute(
                f"INSERT INTO {ROWS} (id, owner, created_at, status, response, lease_until)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (response["id"], owner, now, response["status"], dumps_json(response), lease_until),
            )
            prune(conn, now, self.max_age_seconds, self.max_rows, self.max_total_bytes)

    def append(
        self,
        response_id: str,
        first: int,
        events: list[bytes],
        response: dict[str, Any] | None,
        lease_until: float,
    ) -> bool:
        """Append events numbered from `first`, and (if given) the response's new state (its
        status with it). False, and nothing written, when the row is no longer active: the
        runner must stop. `EventLogFull` past the log's byte cap."""
        size = sum(len(event) for event in events)
        with self._db.transaction() as conn:
            row = conn.execute(
                f"SELECT status, events, event_bytes FROM {ROWS} WHERE id = ?{self._lock}",
                (response_id,),
            ).fetchone()
            if row is None or row[0] not in ACTIVE or row[1] != first:
                return False
            if self.max_log_bytes is not None and row[2] + size > self.max_log_bytes:
                raise EventLogFull(
                    f"The response's event log passed this server's limit of "
                    f"{self.max_log_bytes} bytes (--response-max-row-bytes)."
                )
            conn.executemany(
                f"INSERT INTO {EVENTS} (response_id, sequence, data) VALUES (?, ?, ?)",
                [(response_id, first + i, event) for i, event in enumerate(events)],
            )
            status = response["status"] if response is not None else "in_progress"
            conn.execute(
                f"UPDATE {ROWS} SET events = ?, event_bytes = ?, status = ?, lease_until = ?,"
                " response = COALESCE(?, response) WHERE id = ?",
                (
                    first + len(events),
                    row[2] + size,
                    status,
                    lease_until,
                    None if response is None else dumps_json(response),
                    response_id,
                ),
            )
        return True

    def renew(self, response_id: str, lease_until: float) -> bool:
        """Extend the runner's lease; False when the row is no longer active (stop)."""
        with self._db.transaction() as conn:
            cursor = conn.execute(
                f"UPDATE {ROWS} SET lease_until = ? WHERE id = ? AND {ACTIVE_SQL}",
                (lease_until, response_id),
            )
            return cursor.rowcount > 0

    def close(
        self,
        response_id: str,
        status: str,
        kind: str,
        error: dict[str, str] | None = None,
        *,
        owner: str | None = None,
        expired_before: float | None = None,
    ) -> BackgroundRow | None:
        """Move an active row to terminal `status`, appending its closing event `kind` (the
        Response object). Only `owner`'s row, when given; only when its lease ended before
        `expired_before`, when given. Returns the row as it is afterwards (unchanged when it
        was not active), None when there is none."""
        with self._db.transaction() as conn:
            found = conn.execute(
                f"SELECT {_COLUMNS}, owner FROM {ROWS} WHERE id = ?{self._lock}", (response_id,)
            ).fetchone()
            if found is None or (owner is not None and found[-1] != owner):
                return None
            row = _row(found[:-1])
            if not row.active or (expired_before is not None and row.lease_until >= expired_before):
                return row
            response = dict(row.response, status=status)
            if error is not None:
                response["error"] = error
            event = sse_event(kind, row.events, response=response)
            conn.execute(
                f"INSERT INTO {EVENTS} (response_id, sequence, data) VALUES (?, ?, ?)",
                (response_id, row.events, event),
            )
            conn.execute(
                f"UPDATE {ROWS} SET status = ?, response = ?, events = events + 1,"
                " event_bytes = event_bytes + ? WHERE id = ?",
                (status, dumps_json(response), len(event), response_id),
            )
        return BackgroundRow(row.id, row.owner, status, response, row.lease_until, row.events + 1)

    def expired(self, now: float) -> list[str]:
        """Ids of active rows whose lease ended (their proxy is gone)."""
        with self._db.reading() as conn:
            rows = conn.execute(
                f"SELECT id FROM {ROWS} WHERE {ACTIVE_SQL} AND lease_until < ?", (now,)
            ).fetchall()
        return [row[0] for row in rows]

    # -- the readers' side ---------------------------------------------------------------
    def get(self, response_id: str, owner: str) -> BackgroundRow | None:
        """`owner`'s row (None when absent, another owner's or expired)."""
        cutoff = (
            -float("inf") if self.max_age_seconds is None else time.time() - self.max_age_seconds
        )
        with self._db.reading() as conn:
            found = conn.execute(
                f"SELECT {_COLUMNS} FROM {ROWS} WHERE id = ? AND owner = ? AND created_at >= ?",
                (response_id, owner, cutoff),
            ).fetchone()
        return None if found is None else _row(found)

    def events_after(self, response_id: str, after: int, limit: int) -> list[tuple[int, bytes]]:
        with self._db.reading() as conn:
            rows = conn.execute(
                f"SELECT sequence, data FROM {EVENTS} WHERE response_id = ? AND sequence > ?"
                " ORDER BY sequence LIMIT ?",
                (response_id, after, limit),
            ).fetchall()
        return [(int(sequence), bytes(data)) for sequence, data in rows]

    def delete(self, response_id: str, owner: str) -> bool:
        with self._db.transaction() as conn:
            deleted = conn.execute(
                f"DELETE FROM {ROWS} WHERE id = ? AND owner = ?", (response_id, owner)
            ).rowcount
            if deleted:
                conn.execute(f"DELETE FROM {EVENTS} WHERE response_id = ?", (response_id,))
        return deleted > 0


def _row(found: tuple[Any, ...]) -> BackgroundRow:
    rid, owner, status, response, lease_until, events = found
    return BackgroundRow(rid, owner, status, json.loads(response), float(lease_until), int(events))
