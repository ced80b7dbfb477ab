"""A stored conversation, its items' rows, and what the conversation store refuses.

Two tables beside the responses' (proxy/api/responses/store_records.py), in the same database:
a conversation row (its owner, creation time, metadata, the bytes its items take and the
position the next item gets) and one row per item (its conversation, position, id, type, the
call id of a tool call or output, its size and the item as JSON). Positions only grow, so an
item keeps its place when earlier ones are deleted, and a page of items is one range scan of
the primary key `(conversation_id, position)`, never a walk from the start.

The conversation row doubles as the lock of its items: every change to them updates it first
(PostgreSQL takes its row lock; SQLite's `BEGIN IMMEDIATE` serialises writers anyway), so two
responses finishing on one conversation at once append one after the other and neither loses
the other's items, and the byte budget is checked against what is really there.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

CONVERSATIONS = "harmony_proxy_conversations"
ITEMS = "harmony_proxy_conversation_items"

# A conversation's items in all, as stored JSON: 4 MiB, the response store's row cap, since a
# response continuing the conversation is stored with a copy of it.
DEFAULT_MAX_CONVERSATION_BYTES = 4 * 1024 * 1024
# Conversations one API key keeps at most (with the byte budget, what one key can make the
# store hold: 1,000 x 4 MiB); deleting some makes room.
DEFAULT_MAX_CONVERSATIONS_PER_OWNER = 1000
# One item: a tool output or a pasted document, well below the conversation's budget.
DEFAULT_MAX_ITEM_BYTES = 1024 * 1024
# OpenAI's limit on the items of one create request.
MAX_ITEMS_PER_REQUEST = 20

CALL_TYPES = frozenset({"function_call", "custom_tool_call"})
OUTPUT_TYPES = frozenset({"function_call_output", "custom_tool_call_output"})


@dataclass
class Conversation:
    """One conversation's own fields (its items are rows of their own)."""

    id: str
    owner: str
    created_at: float
    metadata: dict[str, Any] = field(default_factory=dict)
    size_bytes: int = 0

    def public(self) -> dict[str, Any]:
        """The Conversation object of OpenAI's API."""
        return {
            "id": self.id,
            "object": "conversation",
            "created_at": int(self.created_at),
            "metadata": self.metadata,
        }


@dataclass(frozen=True)
class ItemPage:
    """One page of a conversation's items and whether more follow it."""

    items: list[dict[str, Any]]
    has_more: bool


class NoSuchConversation(LookupError):
    """The conversation is absent, another owner's, or deleted."""


class NoSuchItem(LookupError):
    """The conversation has no item with that id."""


class DuplicateItem(ValueError):
    """An item's id is already in the conversation (or twice in what is added)."""

    def __init__(self, index: int, item_id: str) -> None:
        super().__init__(f"Duplicate item found with id {item_id!r}.")
        self.index = index
        self.item_id = item_id


class ConversationFull(ValueError):
    """Adding the items would take the conversation past its byte budget."""

    def __init__(self, size: int, adding: int, limit: int) -> None:
        super().__init__(
            f"The conversation holds {size} bytes of items and these add {adding}; this "
            f"server keeps at most {limit} bytes per conversation. Start a new conversation "
            "(or delete items from this one)."
        )


class TooManyConversations(ValueError):
    """The owner already keeps as many conversations as the server allows one key."""

    def __init__(self, limit: int) -> None:
        super().__init__(
            f"This API key already has {limit} conversations, the most this server keeps per "
            "key. Delete conversations it no longer needs, then create this one."
        )


class CallHasOutput(ValueError):
    """A tool call whose output is still in the conversation cannot be deleted alone."""

    def __init__(self, item_id: str) -> None:
        super().__init__(
            f"Item {item_id!r} is a tool call whose output is still in the conversation: "
            "delete the output first (a conversation never holds an output without its call)."
        )


@dataclass(frozen=True)
class Dialect:
    """What differs between the drivers: the placeholder, PostgreSQL's JSON cast and row lock,
    and whether JSON columns come back as text (SQLite) or decoded (psycopg)."""

    mark: str
    json_cast: str = ""
    lock: str = ""
    decodes_json: bool = False

    def marks(self, count: int) -> str:
        return ", ".join([self.mark] * count)


SQLITE = Dialect("?")
POSTGRES = Dialect("%s", json_cast="::json", lock=" FOR UPDATE", decodes_json=True)


def schema(dialect: Dialect) -> tuple[str, ...]:
    """The statements creating both tables and their index (idempotent)."""
    real, big, js = (
        ("double precision", "bigint", "json")
        if dialect is POSTGRES
        else ("REAL", "INTEGER", "TEXT")
    )
    return (
        f"CREATE TABLE IF NOT EXISTS {CONVERSATIONS} ("
        " id TEXT PRIMARY KEY,"
        " owner TEXT NOT NULL,"
        f" created_at {real} NOT NULL,"
        f" metadata {js} NOT NULL,"
        f" size_bytes {big} NOT NULL DEFAULT 0,"
        f" next_position {big} NOT NULL DEFAULT 0)",
        f"CREATE TABLE IF NOT EXISTS {ITEMS} ("
        " conversation_id TEXT NOT NULL,"
        f" position {big} NOT NULL,"
        " id TEXT NOT NULL,"
        " type TEXT NOT NULL,"
        " call_id TEXT,"
        f" size_bytes {big} NOT NULL,"
        f" item {js} NOT NULL,"
        " PRIMARY KEY (conversation_id, position))",
        f"CREATE UNIQUE INDEX IF NOT EXISTS {ITEMS}_by_id ON {ITEMS} (conversation_id, id)",
        f"CREATE INDEX IF NOT EXISTS {ITEMS}_by_call ON {ITEMS} (conversation_id, call_id)",
        # (Last: the one a PostgreSQL replica checks to know the schema is complete.)
        f"CREATE INDEX IF NOT EXISTS {CONVERSATIONS}_by_owner ON {CONVERSATIONS} (owner)",
    )
