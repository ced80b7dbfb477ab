"""POST /v1/chat/completions: the wire request -> the core -> chunks or one completion.

A thin surface: `chat_request.generation_request` reads the chat schema into the neutral
request, `GenerationService.generate` does everything else (gate, admission, plan, engine,
outcome), and `chat_stream` renders the neutral steps as `chat.completion.chunk` SSE bytes or
folds them into one `chat.completion`.
"""

from __future__ import annotations

import secrets

from fastapi import Request
from fastapi.responses import JSONResponse, Response

from proxy.api.chat_request import generation_request
from proxy.api.chat_schema import ChatCompletionRequest
from proxy.api.chat_stream import ChatChunks, fold
from proxy.core.caller import caller_of
from proxy.core.gate import check_unicode
from proxy.core.service import ClientGone, GenerationService
from proxy.server.request_log import RequestRecord
from proxy.server.settings import ProxyConfig
from proxy.server.sse import SseResponse, SseStream, wait_for_disconnect


class ChatCompletions:
    """The chat completions route, over the shared generation service."""

    def __init__(self, service: GenerationService, config: ProxyConfig) -> None:
        self.service = service
        self.config = config

    async def __call__(self, body: ChatCompletionRequest, request: Request) -> Response:
        request_id = getattr(request.state, "request_id", None) or secrets.token_hex(12)
        record = RequestRecord(
            id=request_id,
            api="chat.completions",
            model=body.model,
            stream=body.stream,
            caller=caller_of(request),
        )
        mirror = self.config.mirror_reasoning_content
        try:
            async with self.service.generate(
                record, lambda: wait_for_disconnect(request)
            ) as generation:
                raw = await request.body()
                check_unicode(raw, lambda: body.model_dump(by_alias=True, exclude_none=True))
                wanted = generation_request(
                    body,
                    f"chatcmpl-{request_id}",
                    refuse_reasoning=self.config.require_sealed_reasoning,
                )
                run = await generation.open(wanted)
                if body.stream:
                    include_usage = bool(body.stream_options and body.stream_options.include_usage)
                    if body.stream_options is not None:
                        run.interval = run.interval.asked(body.stream_options.stream_interval_ms)
                    chunks = ChatChunks(
                        run, include_usage=include_usage, mirror_reasoning_content=mirror
                    )
                    return SseResponse(
                        SseStream(chunks.events(), close=generation.streamed()),
                        ping=self.config.sse_ping_seconds or 0,
                        send_timeout=self.config.send_timeout_seconds,
                    )
                result = await generation.watch(fold(run, mirror_reasoning_content=mirror))
                return JSONResponse(result.model_dump())
        except ClientGone:
            return Response(status_code=499)  # (nobody reads it: counted and logged as such)
