"""The `conversation` parameter's link on a real store (SQLite and PostgreSQL): a turn appended
after a race on its item ids, and a turn whose conversation was deleted meanwhile."""

from __future__ import annotations

import asyncio
from typing import Any

from proxy.api.conversations.link import ConversationLink
from proxy.api.conversations.store import ConversationStore
from tests.conversations.test_store import ALICE, ids, message, new

OUTPUT = {
    "type": "message",
    "id": "msg_out",
    "role": "assistant",
    "status": "completed",
    "content": [{"type": "output_text", "text": "Hi!", "annotations": []}],
}
REASONING = {"type": "reasoning", "id": "rs_out", "summary": [], "encrypted_content": "sealed"}


async def _linked(store: ConversationStore) -> ConversationLink:
    link = await ConversationLink.open(store, {"id": "conv_a"}, None, ALICE, None)
    assert link is not None
    return link


def _response(*output: dict[str, Any]) -> dict[str, Any]:
    return {"id": "resp_1", "output": list(output)}


def test_a_turn_whose_input_id_was_taken_meanwhile_still_lands(
    conversations: ConversationStore,
) -> None:
    async def main() -> None:
        new(conversations, items=[message("msg_0")])
        link = await _linked(conversations)
        assert [item["id"] for item in link.history] == ["msg_0"]
        link.admit([message("msg_in")])
        # Another response on the conversation added an item of that id in the meantime.
        conversations.append("conv_a", ALICE, [message("msg_in", "the other one")])
        await link.append(_response(REASONING, OUTPUT))

    asyncio.run(main())
    order = ids(conversations)
    assert order[:2] == ["msg_0", "msg_in"] and order[3:] == ["rs_out", "msg_out"]
    assert order[2].startswith("msg_") and order[2] != "msg_in"
    stored = conversations.items("conv_a", ALICE)[1]
    assert "encrypted_content" not in stored[3]  # (the sealed copy is the client's only)


def test_a_turn_on_a_deleted_conversation_is_dropped_quietly(
    conversations: ConversationStore,
) -> None:
    async def main() -> None:
        new(conversations)
        link = await _linked(conversations)
        link.admit([message("msg_in")])
        conversations.delete("conv_a", ALICE)
        await link.append(_response(OUTPUT))  # (logged, never raised: the answer stands)

    asyncio.run(main())
    new(conversations)
    assert ids(conversations) == []
