"""Where conversations live: the response store's database, in two tables of their own.

A conversation is state of the same kind as a stored response, so it lives where the operator
put those (`--response-store`): beside them in the SQLite file (the default; the file and its
directory are already private, 0600/0700) or in the PostgreSQL database several replicas share.
The store borrows the response store's connections (its SQLite pool or psycopg pool) rather than
opening a second set: one set of connection settings, one file, one pool size to tune. With
`--response-store off` there is no conversation store either.

Like the response store the interface is synchronous and thread-safe (the endpoints call it
through `asyncio.to_thread`); the SQL is in proxy/api/conversations/tables.py. Conversations
are kept until deleted (OpenAI's are not subject to the 30-day expiry of responses), each
bounded by the byte budget `max_bytes`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Any, TypeVar

from proxy.api.conversations import tables
from proxy.api.conversations.records import (
    CONVERSATIONS,
    DEFAULT_MAX_CONVERSATION_BYTES,
    DEFAULT_MAX_CONVERSATIONS_PER_OWNER,
    POSTGRES,
    SQLITE,
    Conversation,
    Dialect,
    ItemPage,
    TooManyConversations,
    schema,
)
from proxy.api.responses.store import (
    PostgresResponseStore,
    ResponseStore,
    SQLiteResponseStore,
)

T = TypeVar("T")
Item = dict[str, Any]

# The advisory lock serialising schema creation between replicas starting together (a fixed
# 63-bit constant beside the response store's own two).
_PG_SCHEMA_LOCK = 0x6861726D6F6E7903


class ConversationStore:
    """Conversations and their items, on one database connection source.

    `transaction()` opens a connection inside one transaction (a write one when `write`);
    every method is one such transaction, so an append is all or nothing and the lock on the
    conversation row it takes orders concurrent appends.
    """

    def __init__(
        self,
        transaction: Callable[[bool], AbstractContextManager[Any]],
        dialect: Dialect,
        *,
        max_bytes: int | None = DEFAULT_MAX_CONVERSATION_BYTES,
        max_per_owner: int | None = DEFAULT_MAX_CONVERSATIONS_PER_OWNER,
    ) -> None:
        self._transaction = transaction
        self._dialect = dialect
        self.max_bytes = max_bytes
        self.max_per_owner = max_per_owner
        with self._transaction(True) as conn:
            if dialect is POSTGRES:
                # As the response store: nothing to do (and no CREATE privilege needed) once
                # the last index exists; else one replica at a time creates what is missing.
                done = conn.execute(
                    "SELECT to_regclass(%s) IS NOT NULL", (f"{CONVERSATIONS}_by_owner",)
                ).fetchone()
                if done and done[0]:
                    return
                conn.execute("SELECT pg_advisory_xact_lock(%s)", (_PG_SCHEMA_LOCK,))
            for statement in schema(dialect):
                conn.execute(statement)

    def _run(self, write: bool, operation: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        with self._transaction(write) as conn:
            return operation(conn, self._dialect, *args, **kwargs)

    def create(self, conversation: Conversation, items: list[Item]) -> Conversation:
        """Store a new conversation with its first items (all or nothing); past the owner's
        `max_per_owner` conversations, TooManyConversations. (Counted in the write transaction:
        SQLite's are serial; on PostgreSQL concurrent creates of one key can pass it by their
        number.)"""

        def create(conn: Any, d: Dialect) -> Conversation:
            limit = self.max_per_owner
            if limit is not None and tables.count_owned(conn, d, conversation.owner) >= limit:
                raise TooManyConversations(limit)
            tables.insert_conversation(conn, d, conversation)
            return tables.append(
                conn, d, conversation.id, conversation.owner, items, self.max_bytes
            )

        return self._run(True, create)

    def get(self, conversation_id: str, owner: str) -> Conversation:
        return self._run(False, tables.find, conversation_id, owner)

    def set_metadata(
        self, conversation_id: str, owner: str, metadata: dict[str, Any]
    ) -> Conversation:
        return self._run(True, tables.set_metadata, conversation_id, owner, metadata)

    def delete(self, conversation_id: str, owner: str) -> None:
        self._run(True, tables.delete_conversation, conversation_id, owner)

    def append(
        self, conversation_id: str, owner: str, items: list[Item], *, budget: bool = True
    ) -> Conversation:
        """Add `items` after the last; `budget=False` lets a response's finished turn past
        the byte budget (it was checked, with the turn's input, before generating)."""
        limit = self.max_bytes if budget else None
        return self._run(True, tables.append, conversation_id, owner, items, limit)

    def items(self, conversation_id: str, owner: str) -> tuple[Conversation, list[Item]]:
        return self._run(False, tables.all_items, conversation_id, owner)

    def page(
        self, conversation_id: str, owner: str, *, after: str | None, limit: int, ascending: bool
    ) -> ItemPage:
        return self._run(
            False,
            tables.page,
            conversation_id,
            owner,
            after=after,
            limit=limit,
            ascending=ascending,
        )

    def item(self, conversation_id: str, owner: str, item_id: str) -> Item:
        return self._run(False, tables.one_item, conversation_id, owner, item_id)

    def delete_item(self, conversation_id: str, owner: str, item_id: str) -> Conversation:
        return self._run(True, tables.delete_item, conversation_id, owner, item_id)

    def known_calls(self, conversation_id: str, owner: str, call_ids: list[str]) -> set[str]:
        """Which of `call_ids` are calls in `owner`'s conversation (for outputs added later)."""

        def known(conn: Any, d: Dialect) -> set[str]:
            tables.find(conn, d, conversation_id, owner)
            return tables.known_calls(conn, d, conversation_id, call_ids)

        return self._run(False, known)


def open_conversation_store(
    responses: ResponseStore,
    *,
    max_bytes: int | None = DEFAULT_MAX_CONVERSATION_BYTES,
    max_per_owner: int | None = DEFAULT_MAX_CONVERSATIONS_PER_OWNER,
) -> ConversationStore:
    """The conversation store in `responses`' database, on its connections."""
    if isinstance(responses, SQLiteResponseStore):

        @contextmanager
        def sqlite_transaction(write: bool) -> Iterator[Any]:
            with responses._connection() as conn:
                if not write:
                    yield conn  # (autocommit: one consistent read per statement is enough)
                    return
                with responses._write(conn):
                    yield conn

        return ConversationStore(
            sqlite_transaction, SQLITE, max_bytes=max_bytes, max_per_owner=max_per_owner
        )
    if isinstance(responses, PostgresResponseStore):

        @contextmanager
        def postgres_transaction(write: bool) -> Iterator[Any]:
            with responses._pool.connection() as conn, conn.transaction():
                yield conn

        return ConversationStore(
            postgres_transaction, POSTGRES, max_bytes=max_bytes, max_per_owner=max_per_owner
        )
    raise TypeError(f"no conversation store for a {type(responses).__name__}")
