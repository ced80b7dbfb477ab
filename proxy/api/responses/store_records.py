"""A stored response and its table row: what both store backends read and write.

The row is the same in SQLite and PostgreSQL (proxy/api/responses/store_sqlite.py and
store_postgres.py): the id, its owner, the creation time (retention decides by it), the previous
response's id, the ids it copies content from (`lineage`), its size, and three JSON columns
written as compact text by `dumps_json`. So is the SQL that reads, writes, deletes and prunes
it, up to each driver's placeholders and locking clauses (`Statements`).

Databases written before rows had owners still open: a store adds the columns in `ADDED`,
and a row written before then belongs to `anonymous` (the owner of every request on a server
without API keys). Once keys are configured, no key is `anonymous`, so those rows are visible
to nobody until retention removes them: fail closed, since nobody knows whose they were.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any

DEFAULT_MAX_RESPONSES = 10_000
DEFAULT_MAX_AGE_SECONDS = 30 * 86_400.0  # OpenAI keeps stored responses for 30 days
# A row (the response, its input items and the history it continues) above this is not kept:
# a 128k-token context is ~0.5 MB of text, so only a pathological conversation reaches it.
DEFAULT_MAX_ROW_BYTES = 4 * 1024 * 1024
# All rows together: the oldest are dropped beyond this (10,000 rows of ~100 KB).
DEFAULT_MAX_TOTAL_BYTES = 1024 * 1024 * 1024
ANONYMOUS_OWNER = "anonymous"

# Prefixed, because a PostgreSQL database may well be shared with other applications.
TABLE = "harmony_proxy_responses"
COLUMNS = (
    "id, owner, created_at, previous_response_id, lineage, size_bytes,"
    " response, input_items, conversation"
)
# Columns added after the first release, with their SQL definitions (the same in both
# dialects, and in the CREATE TABLE of a new database): an older table gets them, in this
# order, when a store opens it. The defaults also serve a replica of the older version still
# writing during a rolling upgrade (its rows are `anonymous`'s).
ADDED = {
    "owner": f"TEXT NOT NULL DEFAULT '{ANONYMOUS_OWNER}'",
    "lineage": "TEXT NOT NULL DEFAULT ''",
    "size_bytes": "BIGINT NOT NULL DEFAULT 0",
}


# The indexes, the same in both dialects: rows by age (retention; it carries their sizes, so the
# byte budget is summed from the index alone: 1 ms for 10,000 rows instead of a 50 ms scan of
# the table), and rows by the response they continue (the cascade of a DELETE).
INDEXES = (
    f"DROP INDEX IF EXISTS {TABLE}_created",  # (the first release's; by_age supersedes it)
    f"CREATE INDEX IF NOT EXISTS {TABLE}_by_age ON {TABLE} (created_at, id, size_bytes)",
    f"CREATE INDEX IF NOT EXISTS {TABLE}_previous ON {TABLE} (previous_response_id)",
)
# Over the byte budget, the oldest rows are dropped down to this share of it, so that the
# ranking of every row (~25 ms for 10,000) is paid once per tenth of the budget, not per put.
BUDGET_LOW_WATER = 0.9


class RowTooLarge(ValueError):
    """The record is over the store's row cap: it is not kept (the client's answer stands)."""


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
    owner: str = ANONYMOUS_OWNER
    """Who stored it (`Caller.owner`): only the same owner reads, deletes or continues it."""
    lineage: list[str] = field(default_factory=list)
    """Every stored response whose items `conversation` copies (the previous one and its own
    lineage): deleting any of them deletes this row too."""


@dataclass(frozen=True)
class Statements:
    """The SQL both stores run, in one driver's style. The dialects differ in the placeholder
    (`?` for sqlite3, `%s` for psycopg), PostgreSQL's casts of the JSON parameters, how an
    OFFSET is written without a LIMIT (SQLite needs `LIMIT -1`), the substring search, the byte
    length of a text, and PostgreSQL's row locks (SQLite serialises writers instead)."""

    mark: str
    json_cast: str = ""
    offset_all: str = "OFFSET"
    find: str = "instr"
    byte_length: str = "length(CAST({} AS BLOB))"
    text_cast: str = ""
    lock_shared: str = ""
    lock_update: str = ""

    @property
    def insert(self) -> str:
        """Insert a row, or replace the one with its id, unless the response it continues has
        been deleted meanwhile (parameters: `row_params`, then the previous id twice). The
        shared lock on that response makes a concurrent DELETE of it wait for this insert (or
        this insert for it), so the delete's cascade always sees the new row or none is made."""
        m, j, t = self.mark, self.json_cast, self.text_cast
        values = f"{m}{t}, {m}{t}, {m}, {m}{t}, {m}{t}, {m}, {m}{j}, {m}{j}, {m}{j}"
        parent = f"SELECT 1 FROM {TABLE} WHERE id = {m}{t}{self.lock_shared}"
        return (
            f"INSERT INTO {TABLE} ({COLUMNS}) SELECT {values}"
            f" WHERE {m}{t} IS NULL OR EXISTS ({parent})"
            " ON CONFLICT (id) DO UPDATE SET owner = excluded.owner,"
            " created_at = excluded.created_at,"
            " previous_response_id = excluded.previous_response_id,"
            " lineage = excluded.lineage, size_bytes = excluded.size_bytes,"
            " response = excluded.response, input_items = excluded.input_items,"
            " conversation = excluded.conversation"
        )

    @property
    def select_live(self) -> str:
        """One row of one owner, unless expired (parameters: id, owner, `oldest_kept`)."""
        m = self.mark
        return f"SELECT {COLUMNS} FROM {TABLE} WHERE id = {m} AND owner = {m} AND created_at >= {m}"

    @property
    def select_owned(self) -> str:
        """Whether a row of this owner exists, locked for the delete (parameters: id, owner)."""
        m = self.mark
        return f"SELECT 1 FROM {TABLE} WHERE id = {m} AND owner = {m}{self.lock_update}"

    @property
    def delete_with_copies(self) -> str:
        """Delete a row and every row holding a copy of its items: those whose lineage names
        it, and (for rows written before lineage was recorded) those continuing from a deleted
        row (parameters: id, ` id `). The lineage search reads every row (~60 ms for 10,000
        rows of SQLite): a DELETE is rare, and an index over a list of ids is not portable."""
        m = self.mark
        return (
            "WITH RECURSIVE doomed(id) AS ("
            f" SELECT id FROM {TABLE} WHERE id = {m} OR {self.find}(lineage, {m}) > 0"
            f" UNION SELECT {TABLE}.id FROM {TABLE}"
            f" JOIN doomed ON {TABLE}.previous_response_id = doomed.id)"
            f" DELETE FROM {TABLE} WHERE id IN (SELECT id FROM doomed)"
        )

    @property
    def measure_old_rows(self) -> str:
        """Fill in `size_bytes` for rows written before it existed."""
        size = " + ".join(
            self.byte_length.format(column)
            for column in ("response", "input_items", "conversation")
        )
        return f"UPDATE {TABLE} SET size_bytes = {size} WHERE size_bytes = 0"

    def prune(
        self, max_age_seconds: float | None, max_responses: int | None
    ) -> list[tuple[str, tuple[Any, ...]]]:
        """The deletes that apply the retention limits: rows past the age limit, then all but
        the newest `max_responses` (the byte budget is `apply_retention`'s)."""
        out: list[tuple[str, tuple[Any, ...]]] = []
        if max_age_seconds is not None:
            cutoff = time.time() - max_age_seconds
            out.append((f"DELETE FROM {TABLE} WHERE created_at < {self.mark}", (cutoff,)))
        if max_responses is not None:
            out.append(
                (
                    f"DELETE FROM {TABLE} WHERE id IN (SELECT id FROM {TABLE}"
                    f" {_NEWEST_FIRST} {self.offset_all} {self.mark})",
                    (max_responses,),
                )
            )
        return out

    @property
    def drop_beyond_bytes(self) -> str:
        """Delete the oldest rows beyond a number of bytes in all (parameter: the bytes)."""
        running = f"SUM(size_bytes) OVER ({_NEWEST_FIRST} ROWS UNBOUNDED PRECEDING)"
        return (
            f"DELETE FROM {TABLE} WHERE id IN (SELECT id FROM"
            f" (SELECT id, {running} AS kept FROM {TABLE}) AS ranked"
            f" WHERE kept > {self.mark})"
        )


_NEWEST_FIRST = "ORDER BY created_at DESC, id DESC"
TOTAL_BYTES = f"SELECT COALESCE(SUM(size_bytes), 0) FROM {TABLE}"


def apply_retention(
    conn: Any,
    sql: Statements,
    max_age_seconds: float | None,
    max_responses: int | None,
    max_bytes: int | None,
) -> None:
    """Apply every retention limit on `conn` (a sqlite3 or psycopg connection, inside the
    caller's transaction). The byte budget is checked by one sum over the age index, and only
    when it is exceeded are the oldest rows dropped, down to `BUDGET_LOW_WATER` of it."""
    for statement, values in sql.prune(max_age_seconds, max_responses):
        conn.execute(statement, values)
    if max_bytes is not None:
        total = conn.execute(TOTAL_BYTES).fetchone()
        if total and int(total[0]) > max_bytes:
            conn.execute(sql.drop_beyond_bytes, (int(max_bytes * BUDGET_LOW_WATER),))


SQLITE = Statements("?", offset_all="LIMIT -1 OFFSET")
POSTGRES = Statements(
    "%s",
    json_cast="::json",
    find="strpos",
    byte_length="octet_length({}::text)",
    text_cast="::text",
    lock_shared=" FOR SHARE",
    lock_update=" FOR UPDATE",
)


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


def lineage_text(ids: list[str]) -> str:
    """The lineage column: each id between spaces, so `lineage_marker` finds whole ids only."""
    return "".join(f" {rid} " for rid in ids)


def lineage_marker(response_id: str) -> str:
    return f" {response_id} "


def record_from_row(row: tuple[Any, ...], *, decode: bool) -> StoredResponse:
    rid, owner, created_at, previous, lineage, _, response, input_items, conversation = row
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
        owner=owner,
        lineage=lineage.split(),
    )


def row_params(record: StoredResponse, max_row_bytes: int | None) -> tuple[Any, ...]:
    """The row's values (`COLUMNS` order), then the previous id twice (`Statements.insert`).
    `RowTooLarge` when its JSON is over `max_row_bytes` (UTF-8 bytes of the three columns)."""
    texts = [
        dumps_json(value) for value in (record.response, record.input_items, record.conversation)
    ]
    size = sum(len(text.encode("utf-8", "surrogatepass")) for text in texts)
    if max_row_bytes is not None and size > max_row_bytes:
        raise RowTooLarge(
            f"response {record.id} is {size} bytes stored; this server keeps at most "
            f"{max_row_bytes} per response"
        )
    previous = record.previous_response_id
    return (
        record.id,
        record.owner,
        float(record.created_at),
        previous,
        lineage_text(record.lineage),
        size,
        *texts,
        previous,
        previous,
    )


def oldest_kept(max_age_seconds: float | None) -> float:
    """The creation time before which a row has expired (-inf when nothing expires): `get`
    filters by it, so expiry is exact even before a `put` has pruned the row."""
    return -float("inf") if max_age_seconds is None else time.time() - max_age_seconds
