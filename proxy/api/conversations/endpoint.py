"""/v1/conversations: conversations and their items, as OpenAI's Conversations API.

A conversation is an owner's list of items (messages, reasoning, tool calls and outputs) that
`/v1/responses` continues when asked with `conversation` (proxy/api/conversations/link.py).
Clients build one directly too: the Agents SDK's `OpenAIConversationsSession` keeps its memory
here, listing the items before a turn and adding the turn's items after it.

Every id is the caller's owner's (`caller_of(request).owner`): another owner's conversation is
answered exactly as an unknown one (the same 404 bytes), and its items likewise. With
`--response-store off` the server keeps no state: creating a conversation is a 400 saying
so, and every id is unknown (404), as stored responses are then.

Items added are read by the Responses input reader (proxy/api/conversations/items.py), at most
20 a request as OpenAI's, each within `--conversation-max-item-bytes` and the conversation in
all within `--conversation-max-bytes`. Reasoning is kept in clear like a stored response's;
`include: ["reasoning.encrypted_content"]` seals it for the client as `/v1/responses` does,
bound to the server's first model name (the Conversations API names no model).
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Callable
from typing import Any, TypeVar

from fastapi import Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict

from proxy.api.conversations.errors import ConversationNotFound, ItemNotFound
from proxy.api.conversations.items import check_calls, check_sizes, outside_calls, read_items
from proxy.api.conversations.records import (
    CallHasOutput,
    Conversation,
    ConversationFull,
    DuplicateItem,
    NoSuchConversation,
    NoSuchItem,
    TooManyConversations,
)
from proxy.api.conversations.store import ConversationStore
from proxy.api.paging import check_page, list_page
from proxy.api.responses.endpoint import ENCRYPTED_REASONING, KNOWN_INCLUDES
from proxy.api.responses.inputs import Item
from proxy.core.caller import caller_of
from proxy.core.errors import InvalidRequest
from proxy.core.gate import Limits, check_metadata, check_unicode
from proxy.core.sealing import BoundSealer, ReasoningSealer

T = TypeVar("T")

STORE_OFF_MESSAGE = (
    "This server stores no conversations (it runs with --response-store off): send the whole "
    "conversation as `input`."
)


class _Lenient(BaseModel):
    model_config = ConfigDict(extra="allow")


class ConversationCreate(_Lenient):
    items: list[Any] | None = None
    metadata: dict[str, Any] | None = None


class ConversationUpdate(_Lenient):
    metadata: dict[str, Any] | None


class ItemsCreate(_Lenient):
    items: list[Any]


class ConversationsEndpoint:
    """The routes; `store` is None when the server stores nothing (`--response-store off`)."""

    def __init__(
        self,
        store: ConversationStore | None,
        limits: Limits,
        sealer: ReasoningSealer | None,
        model_names: Callable[[], list[str]],
        *,
        max_item_bytes: int | None,
    ) -> None:
        self.store = store
        self.limits = limits
        self.sealer = sealer
        self.model_names = model_names
        self.max_item_bytes = max_item_bytes

    # ------------------------------------------------------------------ conversations

    async def create(
        self, request: Request, body: ConversationCreate | None = None
    ) -> JSONResponse:
        """A new conversation (with no body at all, an empty one: every field is optional)."""
        body = body or ConversationCreate()
        await _check_unicode(request, body)
        if self.store is None:
            raise InvalidRequest(STORE_OFF_MESSAGE)
        check_metadata(body.metadata, self.limits)
        owner = caller_of(request).owner
        items = read_items(body.items or [], self._sealer(owner), self.max_item_bytes)
        self._check_budget(check_sizes(items, None, "items"))
        check_calls(items, set())
        conversation = Conversation(
            id=f"conv_{secrets.token_hex(24)}",
            owner=owner,
            created_at=time.time(),
            metadata=body.metadata or {},
        )
        stored = await self._call(conversation.id, self.store.create, conversation, items)
        return JSONResponse(stored.public())

    async def retrieve(self, conversation_id: str, request: Request) -> JSONResponse:
        store = self._store(conversation_id)
        found = await self._call(conversation_id, store.get, conversation_id, _owner(request))
        return JSONResponse(found.public())

    async def update(
        self, conversation_id: str, body: ConversationUpdate, request: Request
    ) -> JSONResponse:
        await _check_unicode(request, body)
        check_metadata(body.metadata, self.limits)
        store = self._store(conversation_id)
        owner = _owner(request)
        updated = await self._call(
            conversation_id, store.set_metadata, conversation_id, owner, body.metadata or {}
        )
        return JSONResponse(updated.public())

    async def delete(self, conversation_id: str, request: Request) -> JSONResponse:
        store = self._store(conversation_id)
        await self._call(conversation_id, store.delete, conversation_id, _owner(request))
        return JSONResponse(
            {"id": conversation_id, "object": "conversation.deleted", "deleted": True}
        )

    # ------------------------------------------------------------------ items

    async def list_items(
        self,
        conversation_id: str,
        request: Request,
        limit: int = 20,
        order: str = "desc",
        after: str | None = None,
    ) -> JSONResponse:
        include = _include(request)
        check_page(limit, order)
        store = self._store(conversation_id)
        owner = _owner(request)
        try:
            page = await self._call(
                conversation_id,
                store.page,
                conversation_id,
                owner,
                after=after,
                limit=limit,
                ascending=order == "asc",
            )
        except ItemNotFound:
            raise InvalidRequest(
                f"No item with id {after!r} in this conversation.", param="after"
            ) from None
        return self._list(page.items, owner, include, has_more=page.has_more)

    async def create_items(
        self, conversation_id: str, body: ItemsCreate, request: Request
    ) -> JSONResponse:
        await _check_unicode(request, body)
        include = _include(request)
        store = self._store(conversation_id)
        owner = _owner(request)
        items = read_items(body.items, self._sealer(owner), self.max_item_bytes)
        self._check_budget(check_sizes(items, None, "items"))
        wanted = outside_calls(items)
        known = await self._call(conversation_id, store.known_calls, conversation_id, owner, wanted)
        check_calls(items, known)
        await self._call(conversation_id, store.append, conversation_id, owner, items)
        return self._list(items, owner, include, has_more=False)

    async def retrieve_item(
        self, conversation_id: str, item_id: str, request: Request
    ) -> JSONResponse:
        include = _include(request)
        store = self._store(conversation_id)
        owner = _owner(request)
        item = await self._call(conversation_id, store.item, conversation_id, owner, item_id)
        return JSONResponse(self._shown(item, owner, include))

    async def delete_item(
        self, conversation_id: str, item_id: str, request: Request
    ) -> JSONResponse:
        store = self._store(conversation_id)
        owner = _owner(request)
        left = await self._call(conversation_id, store.delete_item, conversation_id, owner, item_id)
        return JSONResponse(left.public())

    # ------------------------------------------------------------------ helpers

    def _store(self, conversation_id: str) -> ConversationStore:
        """The store; with none, every conversation id is unknown."""
        if self.store is None:
            raise ConversationNotFound(conversation_id)
        return self.store

    def _sealer(self, owner: str) -> BoundSealer | None:
        return self.sealer.bound(owner, self.model_names()[0]) if self.sealer else None

    def _check_budget(self, adding: int) -> None:
        """Items that alone exceed the conversation budget: refused before the store is asked."""
        limit = self.store.max_bytes if self.store is not None else None
        if limit is not None and adding > limit:
            raise InvalidRequest(str(ConversationFull(0, adding, limit)), param="items")

    async def _call(
        self, conversation_id: str, operation: Callable[..., T], *args: Any, **kw: Any
    ) -> T:
        """Run a store operation in a thread; its refusals as the API's errors."""
        try:
            return await asyncio.to_thread(operation, *args, **kw)
        except NoSuchConversation:
            raise ConversationNotFound(conversation_id) from None
        except NoSuchItem as exc:
            raise ItemNotFound(str(exc.args[0])) from None
        except DuplicateItem as exc:
            raise InvalidRequest(
                str(exc), param=f"items[{exc.index}].id", code="duplicate_item"
            ) from None
        except ConversationFull as exc:
            raise InvalidRequest(str(exc), param="items", code="limit_exceeded") from None
        except CallHasOutput as exc:
            raise InvalidRequest(str(exc), param="item_id") from None
        except TooManyConversations as exc:
            raise InvalidRequest(str(exc), code="limit_exceeded") from None

    def _list(
        self, items: list[Item], owner: str, include: set[str], *, has_more: bool
    ) -> JSONResponse:
        data = [self._shown(item, owner, include) for item in items]
        return JSONResponse(list_page(data, has_more=has_more))

    def _shown(self, item: Item, owner: str, include: set[str]) -> Item:
        """The item as the client sees it: reasoning sealed too when it asked for that."""
        sealer = self._sealer(owner)
        if ENCRYPTED_REASONING not in include or sealer is None or item["type"] != "reasoning":
            return item
        text = "".join(part.get("text", "") for part in item.get("content") or [])
        return {**item, "encrypted_content": sealer.seal(text)}


def _owner(request: Request) -> str:
    return caller_of(request).owner


def _include(request: Request) -> set[str]:
    """`include` as the SDKs send it in a query (`include=a&include=b`, or `include[]=`)."""
    params = request.query_params
    include = {*params.getlist("include"), *params.getlist("include[]")}
    unknown = include - KNOWN_INCLUDES
    if unknown:
        raise InvalidRequest(
            f"Unsupported include value {sorted(unknown)[0]!r}: this server supports "
            f"{', '.join(sorted(KNOWN_INCLUDES))}.",
            param="include",
        )
    return include


async def _check_unicode(request: Request, body: BaseModel) -> None:
    """A lone surrogate is refused before anything is stored or echoed (proxy/core/gate.py)."""
    check_unicode(await request.body(), lambda: body.model_dump(exclude_none=True))
