"""The conversation store on SQLite and on a real PostgreSQL: owners, order and pages, budgets,
duplicates, tool calls kept with their outputs, and concurrent appends that lose nothing."""

from __future__ import annotations

import os
import stat
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from proxy.api.conversations.records import (
    ITEMS,
    CallHasOutput,
    Conversation,
    ConversationFull,
    DuplicateItem,
    NoSuchConversation,
    NoSuchItem,
)
from proxy.api.conversations.store import ConversationStore, open_conversation_store
from proxy.api.responses.store import open_store

ALICE, MALLORY = "key:alice", "key:mallory"


def message(item_id: str, text: str = "hello") -> dict[str, Any]:
    return {
        "type": "message",
        "id": item_id,
        "role": "user",
        "status": "completed",
        "content": [{"type": "input_text", "text": text}],
    }


def new(store: ConversationStore, cid: str = "conv_a", items: list[Any] | None = None) -> None:
    store.create(Conversation(cid, ALICE, time.time(), {"k": "v"}), items or [])


def ids(store: ConversationStore, cid: str = "conv_a") -> list[str]:
    return [item["id"] for item in store.items(cid, ALICE)[1]]


def test_another_owners_conversation_is_absent(conversations: ConversationStore) -> None:
    new(conversations, items=[message("msg_1")])
    for attempt in (
        lambda: conversations.get("conv_a", MALLORY),
        lambda: conversations.items("conv_a", MALLORY),
        lambda: conversations.item("conv_a", MALLORY, "msg_1"),
        lambda: conversations.page("conv_a", MALLORY, after=None, limit=5, ascending=True),
        lambda: conversations.append("conv_a", MALLORY, [message("msg_2")]),
        lambda: conversations.set_metadata("conv_a", MALLORY, {}),
        lambda: conversations.delete_item("conv_a", MALLORY, "msg_1"),
        lambda: conversations.known_calls("conv_a", MALLORY, ["call_1"]),
        lambda: conversations.delete("conv_a", MALLORY),
    ):
        with pytest.raises(NoSuchConversation):
            attempt()
    got = conversations.get("conv_a", ALICE)
    assert got.metadata == {"k": "v"} and ids(conversations) == ["msg_1"]


def test_pages_follow_the_order_and_the_cursor(conversations: ConversationStore) -> None:
    new(conversations)
    every = [f"msg_{i:03}" for i in range(45)]
    for start in range(0, 45, 15):
        conversations.append("conv_a", ALICE, [message(i) for i in every[start : start + 15]])
    for ascending, expected in ((True, every), (False, every[::-1])):
        seen, after, more = [], None, True
        while more:
            page = conversations.page("conv_a", ALICE, after=after, limit=10, ascending=ascending)
            seen += [item["id"] for item in page.items]
            after, more = seen[-1], page.has_more
        assert seen == expected
    with pytest.raises(NoSuchItem):
        conversations.page("conv_a", ALICE, after="msg_nope", limit=10, ascending=True)


def test_an_item_keeps_its_place_when_earlier_ones_go(conversations: ConversationStore) -> None:
    new(conversations, items=[message(f"msg_{i}") for i in range(4)])
    conversations.delete_item("conv_a", ALICE, "msg_1")
    conversations.append("conv_a", ALICE, [message("msg_9")])
    assert ids(conversations) == ["msg_0", "msg_2", "msg_3", "msg_9"]
    with pytest.raises(NoSuchItem):
        conversations.delete_item("conv_a", ALICE, "msg_1")
    page = conversations.page("conv_a", ALICE, after="msg_2", limit=1, ascending=True)
    assert [item["id"] for item in page.items] == ["msg_3"] and page.has_more


def test_duplicate_ids_are_refused_and_nothing_is_written(
    conversations: ConversationStore,
) -> None:
    new(conversations, items=[message("msg_1")])
    with pytest.raises(DuplicateItem) as again:
        conversations.append("conv_a", ALICE, [message("msg_2"), message("msg_1")])
    assert again.value.index == 1
    with pytest.raises(DuplicateItem):
        conversations.append("conv_a", ALICE, [message("msg_3"), message("msg_3")])
    assert ids(conversations) == ["msg_1"]


def test_the_byte_budget_is_checked_before_writing(conversations: ConversationStore) -> None:
    new(conversations)
    big = [message(f"msg_{i}", "x" * 10_000) for i in range(7)]
    conversations.append("conv_a", ALICE, big[:5])
    used = conversations.get("conv_a", ALICE).size_bytes
    assert 50_000 < used < 52_000
    with pytest.raises(ConversationFull, match="65536"):
        conversations.append("conv_a", ALICE, big[5:])
    assert len(ids(conversations)) == 5
    # A response's finished turn may overshoot (its input was checked before generating).
    conversations.append("conv_a", ALICE, big[5:], budget=False)
    assert len(ids(conversations)) == 7
    conversations.delete_item("conv_a", ALICE, "msg_0")
    assert conversations.get("conv_a", ALICE).size_bytes < 7 * used // 5


def test_a_call_goes_only_after_its_output(conversations: ConversationStore) -> None:
    call = {"type": "function_call", "id": "fc_1", "call_id": "call_1", "name": "f"}
    output = {"type": "function_call_output", "id": "fco_1", "call_id": "call_1", "output": "x"}
    new(conversations, items=[call | {"arguments": "{}", "status": "completed"}, output])
    assert conversations.known_calls("conv_a", ALICE, ["call_1", "call_2"]) == {"call_1"}
    with pytest.raises(CallHasOutput):
        conversations.delete_item("conv_a", ALICE, "fc_1")
    conversations.delete_item("conv_a", ALICE, "fco_1")
    conversations.delete_item("conv_a", ALICE, "fc_1")
    assert ids(conversations) == []


def test_concurrent_appends_lose_nothing(conversations: ConversationStore) -> None:
    """Eight writers append two-item turns at once: every turn lands whole and in one piece."""
    new(conversations)
    errors: list[BaseException] = []

    def writer(w: int) -> None:
        try:
            for t in range(6):
                turn = [message(f"msg_{w}_{t}_in"), message(f"msg_{w}_{t}_out")]
                conversations.append("conv_a", ALICE, turn)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(w,)) for w in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    order = ids(conversations)
    assert len(order) == 8 * 6 * 2 == len(set(order))
    for i in range(0, len(order), 2):  # each turn's two items side by side
        assert order[i].endswith("_in") and order[i + 1] == order[i][:-3] + "_out"


def test_delete_takes_the_items_with_it(conversations: ConversationStore) -> None:
    new(conversations, items=[message("msg_1"), message("msg_2")])
    new(conversations, "conv_b", items=[message("msg_1")])
    conversations.delete("conv_a", ALICE)
    with pytest.raises(NoSuchConversation):
        conversations.items("conv_a", ALICE)
    with conversations._transaction(False) as conn:
        left = conn.execute(f"SELECT conversation_id FROM {ITEMS}").fetchall()
    assert [row[0] for row in left] == ["conv_b"]


def test_conversations_live_in_the_private_sqlite_file(tmp_path: Path) -> None:
    path = tmp_path / "state" / "responses.db"
    responses = open_store(str(path))
    try:
        store = open_conversation_store(responses)
        new(store, items=[message("msg_1", "a secret")])
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
        assert stat.S_IMODE(os.stat(path.parent).st_mode) == 0o700
        # Reopened (a restart): the conversation is there.
        responses.close()
        responses = open_store(str(path))
        assert ids(open_conversation_store(responses)) == ["msg_1"]
    finally:
        responses.close()


def test_a_page_is_a_range_scan_not_a_walk(tmp_path: Path) -> None:
    """SQLite's plan for every statement of a page after a cursor: searches of the items' keys,
    never a scan of the table (so page k costs what page 1 does)."""
    responses = open_store(str(tmp_path / "responses.db"))
    try:
        store = open_conversation_store(responses)
        new(store, items=[message(f"msg_{i}") for i in range(20)])
        statements: list[str] = []
        with store._transaction(False) as conn:
            conn.set_trace_callback(statements.append)
        store.page("conv_a", ALICE, after="msg_10", limit=5, ascending=False)
        with store._transaction(False) as conn:
            conn.set_trace_callback(None)
            plans = [
                " ".join(str(row[-1]) for row in conn.execute(f"EXPLAIN QUERY PLAN {sql}"))
                for sql in statements
                if sql.lstrip().upper().startswith("SELECT")
            ]
        assert len(plans) == 3  # the conversation, the cursor's position, the page
        for plan in plans:
            assert "SEARCH" in plan and "SCAN" not in plan, plan
    finally:
        responses.close()


def test_a_reopened_store_finds_its_conversations(location: str) -> None:
    """A restart, or a second replica on the same database: the tables are found, not remade."""
    first = open_store(location)
    second = None
    try:
        new(open_conversation_store(first), items=[message("msg_1")])
        second = open_store(location)
        assert ids(open_conversation_store(second)) == ["msg_1"]
    finally:
        first.close()
        if second is not None:
            second.close()
