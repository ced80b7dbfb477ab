"""The `conversation` parameter of /v1/responses: a response that continues a conversation.

The conversation's items are the history the response continues, rendered exactly as a
`previous_response_id` chain is (proxy/api/responses/request.py); once the response has
finished (completed or incomplete; a failed one adds nothing) its input items and output items
are appended to the conversation, before the terminal event, so a client that reads the items
after `response.completed` finds them. The append takes the conversation's row lock
(proxy/api/conversations/records.py): two responses finishing on one conversation at once both
land, one turn after the other.

Checked before any work: `conversation` with `previous_response_id` (OpenAI's 400), an unknown
or another owner's conversation (404 naming `conversation`), input items over the item size or
taking the conversation past its byte budget (400), ids the conversation already holds (400).
The output is appended even past the budget (it is bounded by the context); the next request
on a full conversation is refused.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from typing import Any

from proxy.api.conversations.errors import ConversationNotFound
from proxy.api.conversations.items import check_sizes, check_unique
from proxy.api.conversations.records import (
    Conversation,
    ConversationFull,
    DuplicateItem,
    NoSuchConversation,
)
from proxy.api.conversations.store import ConversationStore
from proxy.api.responses.inputs import Item, new_id
from proxy.core.errors import InvalidRequest

logger = logging.getLogger("proxy")

MUTUALLY_EXCLUSIVE = (
    "Mutually exclusive parameters. Ensure you are only providing one of: "
    "'previous_response_id' or 'conversation'."
)


@dataclass
class ConversationLink:
    """One response's conversation: the history it continues and where its turn goes."""

    store: ConversationStore
    conversation: Conversation
    history: list[Item]
    max_item_bytes: int | None
    items: list[Item] = field(default_factory=list)
    """This request's normalised input items (`admit`)."""

    @property
    def id(self) -> str:
        return self.conversation.id

    @classmethod
    async def open(
        cls,
        store: ConversationStore | None,
        reference: str | dict[str, Any] | None,
        previous_response_id: str | None,
        owner: str,
        max_item_bytes: int | None,
    ) -> ConversationLink | None:
        """The conversation `reference` names (`"conv_..."` or `{"id": "conv_..."}`), with its
        items; None without one."""
        if reference is None:
            return None
        if previous_response_id is not None:
            raise InvalidRequest(MUTUALLY_EXCLUSIVE, code="mutually_exclusive_parameters")
        conversation_id = reference.get("id") if isinstance(reference, dict) else reference
        if not isinstance(conversation_id, str) or not conversation_id:
            raise InvalidRequest(
                '`conversation` must be a conversation id or {"id": "conv_..."}.',
                param="conversation",
            )
        if store is None:
            raise InvalidRequest(
                "This server stores no conversations (it runs with --response-store off): send "
                "the whole conversation as `input`.",
                param="conversation",
            )
        try:
            conversation, history = await asyncio.to_thread(store.items, conversation_id, owner)
        except NoSuchConversation:
            raise ConversationNotFound(conversation_id, "conversation") from None
        return cls(store, conversation, history, max_item_bytes)

    def admit(self, items: list[Item]) -> None:
        """Check the request's input items against the conversation before generating."""
        adding = check_sizes(items, self.max_item_bytes, "input")
        limit = self.store.max_bytes
        if limit is not None and self.conversation.size_bytes + adding > limit:
            raise InvalidRequest(
                str(ConversationFull(self.conversation.size_bytes, adding, limit)),
                param="conversation",
                code="limit_exceeded",
            )
        check_unique(items, {item["id"] for item in self.history}, "input")
        self.items = items

    async def append(self, response: dict[str, Any]) -> None:
        """Append the turn (input, then output) to the conversation. Never raises: the client
        has its answer; a turn that cannot be kept is logged."""
        output = [
            {k: v for k, v in item.items() if k != "encrypted_content"}
            for item in response["output"]
        ]
        turn = [*self.items, *output]
        for _ in range(len(turn) + 1):
            try:
                await asyncio.to_thread(
                    self.store.append, self.id, self.conversation.owner, turn, budget=False
                )
                return
            except DuplicateItem as exc:
                # Another response on this conversation added an item of this id meanwhile
                # (the ids were unique when this one started): this copy gets its own id.
                prefix = str(turn[exc.index]["id"]).split("_", 1)[0] or "item"
                turn[exc.index] = {**turn[exc.index], "id": new_id(prefix)}
            except NoSuchConversation:
                logger.info(
                    "conversation %s was deleted during response %s", self.id, response["id"]
                )
                return
            except Exception:  # noqa: BLE001 - the answer stands; only the conversation misses it
                logger.exception(
                    "could not add response %s to conversation %s", response["id"], self.id
                )
                return
