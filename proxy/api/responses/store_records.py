"""A stored response and its table row: what both store backends read and write.

The row is the same in SQLite and PostgreSQL (proxy/api/responses/store_sqlite.py and
store_postgres.py): the id, the creation time (retention decides by it), the previous
response's id, and three JSON columns written as compact text by `dumps_json`. So is the SQL
that reads, writes and prunes it, up to each driver's placeholders (`Statements`).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any

DEFAULT_MAX_RESPONSES = 10_000
DEFAULT_MAX_AGE_SECONDS = 30 * 86_400.0  # OpenAI keeps stored responses for 30 days

# Prefixed, because a PostgreSQL database may well be shared with other applications.
TABLE = "harmony_proxy_responses"
COLUMNS = "id, created_at, previous_response_id, response, input_items, conversation"


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


@dataclass(frozen=True)
class Statements:
    """The SQL both stores run, in one driver's style. The dialects differ only in the
    placeholder (`?` for sqlite3, `%s` for psycopg), PostgreSQL's casts of the JSON parameters,
    and how an OFFSET is written without a LIMIT (SQLite needs `LIMIT -1`)."""

    mark: str
    json_cast: str = ""
    offset_all: str = "OFFSET"

    @property
    def upsert(self) -> str:
        """Insert a row, or replace the one with its id (parameters: `row_params`)."""
        m, j = self.mark, self.json_cast
        return (
            f"INSERT INTO {TABLE} ({COLUMNS}) VALUES ({m}, {m}, {m}, {m}{j}, {m}{j}, {m}{j})"
            " ON CONFLICT (id) DO UPDATE SET created_at = excluded.created_at,"
            " previous_response_id = excluded.previous_response_id,"
            " response = excluded.response, input_items = excluded.input_items,"
            " conversation = excluded.conversation"
        )

    @property
    def select_live(self) -> str:
        """One row by id, unless expired (parameters: id, `oldest_kept`)."""
        return f"SELECT {COLUMNS} FROM {TABLE} WHERE id = {self.mark} AND created_at >= {self.mark}"

    @property
    def delete_one(self) -> str:
        return f"DELETE FROM {TABLE} WHERE id = {self.mark}"

    def prune(
        self, max_age_seconds: float | None, max_responses: int | None
    ) -> list[tuple[str, tuple[Any, ...]]]:
        """The deletes that apply the retention limits: rows past the age limit, then all but
        the newest `max_responses`."""
        out: list[tuple[str, tuple[Any, ...]]] = []
        if max_age_seconds is not None:
            cutoff = time.time() - max_age_seconds
            out.append((f"DELETE FROM {TABLE} WHERE created_at < {self.mark}", (cutoff,)))
        if max_responses is not None:
            newest_first = f"ORDER BY created_at DESC, id DESC {self.offset_all} {self.mark}"
            out.append(
                (
                    f"DELETE FROM {TABLE} WHERE id IN (SELECT id FROM {TABLE} {newest_first})",
                    (max_responses,),
                )
            )
        return out


SQLITE = Statements("?", offset_all="LIMIT -1 OFFSET")
POSTGRES = Statements("%s", json_cast="::json")


def dumps_json(value: Any) -> str:
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


def record_from_row(row: tuple[Any, ...], *, decode: bool) -> StoredResponse:
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


def row_params(record: StoredResponse) -> tuple[Any, ...]:
    return (
        record.id,
        float(record.created_at),
        record.previous_response_id,
        dumps_json(record.response),
        dumps_json(record.input_items),
        dumps_json(record.conversation),
    )


def oldest_kept(max_age_seconds: float | None) -> float:
    """The creation time before which a row has expired (-inf when nothing expires): `get`
    filters by it, so expiry is exact even before a `put` has pruned the row."""
    return -float("inf") if max_age_seconds is None else time.time() - max_age_seconds
