"""POST/GET/DELETE /v1/responses: the Responses API, a surface over the generation core.

A request is read into the core's `GenerationRequest` (its input items as conversation parts,
its tools as the core's tools, namespaces and custom tools included: request.py), goes through
the shared service (`GenerationService.generate`: gate, admission, plan, engine, outcome), and
its steps are rendered as output items and named events (proxy/api/responses/output.py).

State: with `store` (the default, as OpenAI's) the finished response, its input items and the
whole item history are kept in the response store (proxy/api/responses/store.py: SQLite by default,
PostgreSQL for several proxies), so `previous_response_id` continues a conversation with its
calls, outputs and the reasoning Harmony keeps, across restarts. Without state, a client may
ask for `reasoning.encrypted_content` and replay the sealed reasoning itself.

Stored state belongs to the caller's owner (`caller_of(request).owner`, the API key's
identity): another owner's response is answered exactly as an unknown id (the same 404, for
GET, DELETE, `input_items` and `previous_response_id`). The Response object's `store` field
says whether the response was kept: false when the server stores nothing (`--response-store
off`, where `store: true` is accepted and ignored, as a client that defaults to it expects),
when the response is over the row cap, or when storing failed; the answer itself stands.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from typing import Any

from fastapi import Request
from fastapi.responses import JSONResponse, Response

from proxy.api.conversations.link import ConversationLink
from proxy.api.conversations.store import ConversationStore
from proxy.api.paging import check_page, list_page
from proxy.api.responses.hosted_items import run_approved
from proxy.api.responses.inputs import Item, normalise_input
from proxy.api.responses.output import ResponseBuilder
from proxy.api.responses.request import generation_request
from proxy.api.responses.schema import ResponsesRequest
from proxy.api.responses.store import ResponseStore, StoredResponse
from proxy.api.responses.tools import read_tools
from proxy.api.responses.turn import Stored, ToolRounds, Turn
from proxy.core.caller import caller_of
from proxy.core.errors import InvalidRequest, ResponseNotFound
from proxy.core.gate import check_unicode
from proxy.core.sealing import ReasoningSealer
from proxy.core.service import ClientGone, Generation, GenerationService
from proxy.hosted.base import HostedContext
from proxy.hosted.mcp_entry import redacted_tools
from proxy.hosted.openers import check_collisions, open_hosted
from proxy.server.request_log import RequestRecord
from proxy.server.settings import ProxyConfig
from proxy.server.sse import SseResponse, SseStream, wait_for_disconnect

ENCRYPTED_REASONING = "reasoning.encrypted_content"
# What `include` may ask for: sealed reasoning, and what every response carries anyway or the
# server has none of (clients such as the Agents SDK send these as a matter of course).
KNOWN_INCLUDES = frozenset(
    {
        ENCRYPTED_REASONING,
        "message.output_text.logprobs",
        "file_search_call.results",
        "web_search_call.results",
        "web_search_call.action.sources",
        "code_interpreter_call.outputs",
        "computer_call_output.output.image_url",
        "message.input_image.image_url",
    }
)


class ResponsesEndpoint:
    """The four routes; `store` is None when the server stores nothing (`--response-store
    off`): `store: true` is then accepted and ignored, `previous_response_id` is a 400."""

    def __init__(
        self,
        service: GenerationService,
        config: ProxyConfig,
        store: ResponseStore | None,
        sealer: ReasoningSealer | None,
        conversations: ConversationStore | None = None,
    ) -> None:
        self.service = service
        self.config = config
        self.store = store
        self.sealer = sealer
        self.conversations = conversations

    # ------------------------------------------------------------------ POST

    async def create(self, body: ResponsesRequest, request: Request) -> Response:
        request_id = getattr(request.state, "request_id", None) or secrets.token_hex(12)
        record = RequestRecord(
            id=request_id,
            api="responses",
            model=body.model,
            stream=body.stream,
            caller=caller_of(request),
        )
        try:
            async with self.service.generate(
                record, lambda: wait_for_disconnect(request)
            ) as generation:
                return await self._generate(body, request, generation)
        except ClientGone:
            return Response(status_code=499)  # (nobody reads it: counted and logged as such)

    async def _generate(
        self, body: ResponsesRequest, request: Request, generation: Generation
    ) -> Response:
        # Before anything is echoed back or stored.
        check_unicode(await request.body(), lambda: body.model_dump(exclude_none=True))
        include = set(body.include or [])
        unknown = include - KNOWN_INCLUDES
        if unknown:
            raise InvalidRequest(
                f"Unsupported include value {sorted(unknown)[0]!r}: this server supports "
                f"{', '.join(sorted(KNOWN_INCLUDES))}.",
                param="include",
            )
        caller = caller_of(request)
        owner = caller.owner
        history: list[Item] = []
        lineage: list[str] = []
        conversation = await ConversationLink.open(
            self.conversations,
            body.conversation,
            body.previous_response_id,
            owner,
            self.config.conversation_max_item_bytes,
        )
        if conversation is not None:
            history = conversation.history
        elif body.previous_response_id is not None:
            if self.store is None:
                raise InvalidRequest(
                    "This server stores no responses (it runs with --response-store off), so "
                    "there is nothing to continue: send the whole conversation as `input` "
                    '(with `include: ["reasoning.encrypted_content"]` to replay reasoning).',
                    param="previous_response_id",
                )
            previous = await self._get(body.previous_response_id, owner, "previous_response_id")
            history = previous.conversation
            lineage = [*previous.lineage, previous.id]
        sealer = self.sealer.bound(owner, body.model) if self.sealer else None
        items = normalise_input(body.input, sealer)
        if conversation is not None:
            conversation.admit(items)
        response_id = f"resp_{secrets.token_hex(24)}"
        tools = read_tools(body.tools)
        # Hosted tools (proxy/hosted/): their servers listed, this request's approvals run;
        # released when the generation closes, however it ends.
        context = HostedContext(self.config, owner, history + items)
        hosted = await generation.watch(open_hosted(body.tools, context))
        generation.add_cleanup(hosted.aclose)
        check_collisions(tools, hosted)
        approved = await generation.watch(run_approved(hosted, history, items))
        offered = [*tools, *hosted.tools()]
        wanted = generation_request(body, items + approved, history, offered, response_id)
        seal = None
        if ENCRYPTED_REASONING in include and sealer is not None:
            seal = sealer.seal
        builder = ResponseBuilder(
            _initial_response(body, response_id, stored=body.store and self.store is not None),
            {tool.key: tool for tool in tools},
            seal=seal,
            stream=body.stream,
            hosted=hosted,
        )
        if conversation is not None:
            builder.response["conversation"] = {"id": conversation.id}
        leading = [*hosted.leading_items(), *approved]
        try:
            run = await generation.open(wanted)
        except InvalidRequest as exc:
            if not (body.stream and exc.code == "context_length_exceeded"):
                raise
            # Streaming clients learn this from the stream (Codex compacts its history
            # on it).
            generation.settle(200, finish="error", error=exc.code)
            return Response(
                b"".join([*builder.begin(leading), *builder.finish(None, None, exc)]),
                media_type="text/event-stream",
                headers={"Cache-Control": "no-cache"},
            )
        stored = Stored(
            self.store, owner, body.previous_response_id, history, items, lineage, conversation
        )
        rounds = ToolRounds(
            wanted,
            history + items,
            body.instructions,
            len(history),
            self.config.max_tool_rounds,
            body.max_tool_calls,
        )
        turn = Turn(generation, builder, stored, self.service.metrics, rounds, leading)
        if body.stream:
            if body.stream_options is not None:
                run.interval = run.interval.asked(body.stream_options.stream_interval_ms)
            config = self.config
            return SseResponse(
                SseStream(turn.events(), close=generation.streamed()),
                ping=config.sse_ping_seconds or 0,
                send_timeout=config.send_timeout_seconds,
            )
        await generation.watch(turn.drain())
        if turn.error is not None:
            raise turn.error
        return JSONResponse(builder.response)

    # ------------------------------------------------------------------ GET / DELETE

    async def retrieve(self, response_id: str, request: Request) -> JSONResponse:
        return JSONResponse((await self._get(response_id, caller_of(request).owner)).response)

    async def input_items(
        self,
        response_id: str,
        request: Request,
        limit: int = 20,
        order: str = "desc",
        after: str | None = None,
    ) -> JSONResponse:
        # Found first: another owner's id is a 404 whatever the other parameters say.
        items = list((await self._get(response_id, caller_of(request).owner)).input_items)
        check_page(limit, order)
        if order == "desc":
            items.reverse()
        if after is not None:
            ids = [item.get("id") for item in items]
            if after not in ids:
                raise InvalidRequest(f"No input item with id {after!r}.", param="after")
            items = items[ids.index(after) + 1 :]
        return JSONResponse(list_page(items[:limit], has_more=len(items) > limit))

    async def delete(self, response_id: str, request: Request) -> JSONResponse:
        """Delete the response and every later response that copied it (store.py)."""
        deleted = False
        if self.store is not None:
            owner = caller_of(request).owner
            deleted = await asyncio.to_thread(self.store.delete, response_id, owner)
        if not deleted:
            raise ResponseNotFound(response_id)
        return JSONResponse({"id": response_id, "object": "response", "deleted": True})

    async def _get(self, response_id: str, owner: str, param: str | None = None) -> StoredResponse:
        found = None
        if self.store is not None:
            found = await asyncio.to_thread(self.store.get, response_id, owner)
        if found is None:
            raise ResponseNotFound(response_id, param)
        return found


def _initial_response(body: ResponsesRequest, response_id: str, *, stored: bool) -> dict[str, Any]:
    """The Response object as `response.created` shows it; the builder fills in the rest.
    `stored`: whether it is to be kept (`store` asked for, and a store to keep it in)."""
    fmt = (body.text.format if body.text is not None else None) or {"type": "text"}
    reasoning = body.reasoning
    return {
        "id": response_id,
        "object": "response",
        "created_at": int(time.time()),
        "status": "in_progress",
        "background": bool(body.background),
        "error": None,
        "incomplete_details": None,
        "instructions": body.instructions,
        "max_output_tokens": body.max_output_tokens,
        "max_tool_calls": body.max_tool_calls,
        "model": body.model,
        "output": [],
        "parallel_tool_calls": body.parallel_tool_calls is not False,
        "previous_response_id": body.previous_response_id,
        "prompt_cache_key": body.prompt_cache_key,
        "reasoning": {
            "effort": reasoning.effort if reasoning else None,
            "summary": reasoning.summary if reasoning else None,
        },
        "service_tier": "default",
        "store": stored,
        "temperature": 1.0 if body.temperature is None else body.temperature,
        "text": {"format": fmt},
        "tool_choice": body.tool_choice if body.tool_choice is not None else "auto",
        "tools": redacted_tools(body.tools),  # (an mcp tool's headers are never echoed)
        "top_logprobs": 0,
        "top_p": 1.0 if body.top_p is None else body.top_p,
        "truncation": body.truncation or "disabled",
        "usage": None,
        "user": body.user,
        "metadata": body.metadata or {},
    }
