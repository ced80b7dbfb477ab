"""The conversation store's reads and writes, once for both databases.

Each function runs on an open connection (sqlite3 or psycopg), inside the transaction the
backend began (proxy/api/conversations/store.py); the SQL differs only as `Dialect` says. Every
function that touches items resolves the conversation by id *and* owner first, so another
owner's conversation is exactly an absent one (`NoSuchConversation`).
"""

from __future__ import annotations

import json
from typing import Any

from proxy.api.conversations.records import (
    CALL_TYPES,
    CONVERSATIONS,
    ITEMS,
    OUTPUT_TYPES,
    CallHasOutput,
    Conversation,
    ConversationFull,
    Dialect,
    DuplicateItem,
    ItemPage,
    NoSuchConversation,
    NoSuchItem,
)
from proxy.api.responses.store_records import dumps_json

Item = dict[str, Any]


def _json(dialect: Dialect, value: Any) -> Any:
    return value if dialect.decodes_json else json.loads(value)


def insert_conversation(conn: Any, d: Dialect, conversation: Conversation) -> None:
    conn.execute(
        f"INSERT INTO {CONVERSATIONS} (id, owner, created_at, metadata)"
        f" VALUES ({d.mark}, {d.mark}, {d.mark}, {d.mark}{d.json_cast})",
        (
            conversation.id,
            conversation.owner,
            conversation.created_at,
            dumps_json(conversation.metadata),
        ),
    )


def count_owned(conn: Any, d: Dialect, owner: str) -> int:
    """How many conversations `owner` keeps (one range of the owner index)."""
    row = conn.execute(
        f"SELECT COUNT(*) FROM {CONVERSATIONS} WHERE owner = {d.mark}", (owner,)
    ).fetchone()
    return int(row[0])


def find(
    conn: Any, d: Dialect, conversation_id: str, owner: str, *, lock: bool = False
) -> Conversation:
    """The conversation, locked for a change to it or its items when `lock`."""
    row = conn.execute(
        f"SELECT created_at, metadata, size_bytes FROM {CONVERSATIONS}"
        f" WHERE id = {d.mark} AND owner = {d.mark}{d.lock if lock else ''}",
        (conversation_id, owner),
    ).fetchone()
    if row is None:
        raise NoSuchConversation(conversation_id)
    created_at, metadata, size = row
    return Conversation(conversation_id, owner, float(created_at), _json(d, metadata), int(size))


def set_metadata(
    conn: Any, d: Dialect, conversation_id: str, owner: str, metadata: dict[str, Any]
) -> Conversation:
    conversation = find(conn, d, conversation_id, owner, lock=True)
    conn.execute(
        f"UPDATE {CONVERSATIONS} SET metadata = {d.mark}{d.json_cast} WHERE id = {d.mark}",
        (dumps_json(metadata), conversation_id),
    )
    conversation.metadata = metadata
    return conversation


def delete_conversation(conn: Any, d: Dialect, conversation_id: str, owner: str) -> None:
    """The conversation and its items (a client deleting a conversation wants its content
    gone; OpenAI keeps orphaned items, which nobody could reach here anyway)."""
    find(conn, d, conversation_id, owner, lock=True)
    conn.execute(f"DELETE FROM {ITEMS} WHERE conversation_id = {d.mark}", (conversation_id,))
    conn.execute(f"DELETE FROM {CONVERSATIONS} WHERE id = {d.mark}", (conversation_id,))


def append(
    conn: Any,
    d: Dialect,
    conversation_id: str,
    owner: str,
    items: list[Item],
    max_bytes: int | None,
) -> Conversation:
    """Add `items` after the conversation's last, all or none: `DuplicateItem` when an id is
    taken, `ConversationFull` past `max_bytes` (both before anything is written)."""
    conversation = find(conn, d, conversation_id, owner, lock=True)
    if not items:
        return conversation
    texts = [dumps_json(item) for item in items]
    sizes = [len(text.encode("utf-8", "surrogatepass")) for text in texts]
    ids = [item["id"] for item in items]
    seen: dict[str, int] = {}
    for i, item_id in enumerate(ids):
        if item_id in seen:
            raise DuplicateItem(i, item_id)
        seen[item_id] = i
    taken = conn.execute(
        f"SELECT id FROM {ITEMS} WHERE conversation_id = {d.mark} AND id IN ({d.marks(len(ids))})",
        (conversation_id, *ids),
    ).fetchall()
    if taken:
        first = min(seen[row[0]] for row in taken)
        raise DuplicateItem(first, ids[first])
    adding = sum(sizes)
    if max_bytes is not None and conversation.size_bytes + adding > max_bytes:
        raise ConversationFull(conversation.size_bytes, adding, max_bytes)
    row = conn.execute(
        f"UPDATE {CONVERSATIONS} SET next_position = next_position + {d.mark},"
        f" size_bytes = size_bytes + {d.mark} WHERE id = {d.mark} RETURNING next_position",
        (len(items), adding, conversation_id),
    ).fetchone()
    first_position = int(row[0]) - len(items)
    conn.cursor().executemany(
        f"INSERT INTO {ITEMS} (conversation_id, position, id, type, call_id, size_bytes, item)"
        f" VALUES ({d.marks(6)}, {d.mark}{d.json_cast})",
        [
            (
                conversation_id,
                first_position + i,
                item["id"],
                item["type"],
                item.get("call_id"),
                sizes[i],
                texts[i],
            )
            for i, item in enumerate(items)
        ],
    )
    conversation.size_bytes += adding
    return conversation


def all_items(
    conn: Any, d: Dialect, conversation_id: str, owner: str
) -> tuple[Conversation, list[Item]]:
    """Every item in order: the history a response continues (bounded by the byte budget)."""
    conversation = find(conn, d, conversation_id, owner)
    rows = conn.execute(
        f"SELECT item FROM {ITEMS} WHERE conversation_id = {d.mark} ORDER BY position",
        (conversation_id,),
    ).fetchall()
    return conversation, [_json(d, row[0]) for row in rows]


def page(
    conn: Any,
    d: Dialect,
    conversation_id: str,
    owner: str,
    *,
    after: str | None,
    limit: int,
    ascending: bool,
) -> ItemPage:
    """Up to `limit` items after the item `after` (`NoSuchItem` when there is none), in the
    order asked: one range scan of the primary key."""
    find(conn, d, conversation_id, owner)
    where, params = "", [conversation_id]
    if after is not None:
        position = _position(conn, d, conversation_id, after)
        where = f" AND position {'>' if ascending else '<'} {d.mark}"
        params.append(position)
    rows = conn.execute(
        f"SELECT item FROM {ITEMS} WHERE conversation_id = {d.mark}{where}"
        f" ORDER BY position {'ASC' if ascending else 'DESC'} LIMIT {d.mark}",
        (*params, limit + 1),
    ).fetchall()
    items = [_json(d, row[0]) for row in rows[:limit]]
    return ItemPage(items, has_more=len(rows) > limit)


def one_item(conn: Any, d: Dialect, conversation_id: str, owner: str, item_id: str) -> Item:
    find(conn, d, conversation_id, owner)
    row = conn.execute(
        f"SELECT item FROM {ITEMS} WHERE conversation_id = {d.mark} AND id = {d.mark}",
        (conversation_id, item_id),
    ).fetchone()
    if row is None:
        raise NoSuchItem(item_id)
    return _json(d, row[0])


def delete_item(
    conn: Any, d: Dialect, conversation_id: str, owner: str, item_id: str
) -> Conversation:
    """Delete one item; a tool call whose output is still there is refused (`CallHasOutput`),
    so the conversation always renders."""
    conversation = find(conn, d, conversation_id, owner, lock=True)
    row = conn.execute(
        f"SELECT type, call_id, size_bytes FROM {ITEMS}"
        f" WHERE conversation_id = {d.mark} AND id = {d.mark}",
        (conversation_id, item_id),
    ).fetchone()
    if row is None:
        raise NoSuchItem(item_id)
    kind, call_id, size = row
    if kind in CALL_TYPES and call_id in known_calls(
        conn, d, conversation_id, [call_id], OUTPUT_TYPES
    ):
        raise CallHasOutput(item_id)
    conn.execute(
        f"DELETE FROM {ITEMS} WHERE conversation_id = {d.mark} AND id = {d.mark}",
        (conversation_id, item_id),
    )
    conn.execute(
        f"UPDATE {CONVERSATIONS} SET size_bytes = size_bytes - {d.mark} WHERE id = {d.mark}",
        (int(size), conversation_id),
    )
    conversation.size_bytes -= int(size)
    return conversation


def known_calls(
    conn: Any,
    d: Dialect,
    conversation_id: str,
    call_ids: list[str],
    types: frozenset[str] = CALL_TYPES,
) -> set[str]:
    """Which of `call_ids` the conversation holds an item of `types` for (by the call index)."""
    if not call_ids:
        return set()
    rows = conn.execute(
        f"SELECT call_id, type FROM {ITEMS} WHERE conversation_id = {d.mark}"
        f" AND call_id IN ({d.marks(len(call_ids))})",
        (conversation_id, *call_ids),
    ).fetchall()
    return {row[0] for row in rows if row[1] in types}


def _position(conn: Any, d: Dialect, conversation_id: str, item_id: str) -> int:
    row = conn.execute(
        f"SELECT position FROM {ITEMS} WHERE conversation_id = {d.mark} AND id = {d.mark}",
        (conversation_id, item_id),
    ).fetchone()
    if row is None:
        raise NoSuchItem(item_id)
    return int(row[0])
