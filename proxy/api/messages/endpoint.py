"""POST /v1/messages and /v1/messages/count_tokens: the Anthropic Messages API over the core.

A thin surface like chat's: request.py reads the wire request into the neutral one, the shared
service does the rest (gate, admission, plan, engine, outcome), output.py renders the steps as
content blocks and Anthropic's events. `?beta=true` (the SDK's `beta.messages`, which Claude
Code uses) and the `anthropic-version` / `anthropic-beta` headers are accepted and change
nothing: every beta this server knows is always on.
"""

from __future__ import annotations

import dataclasses
import secrets
from collections.abc import AsyncGenerator

from fastapi import Request
from fastapi.responses import JSONResponse, Response

from proxy.api.messages.options import thinking_shown
from proxy.api.messages.output import PING, MessageBuilder
from proxy.api.messages.request import generation_request
from proxy.api.messages.schema import CountTokensRequest, MessagesRequest
from proxy.core import gate
from proxy.core.caller import caller_of
from proxy.core.conversation import (
    SystemDefaults,
    build_conversation,
    render_prompt,
    tool_names_for,
)
from proxy.core.errors import EngineLoading, ModelNotFound, ProxyError
from proxy.core.gate import check_unicode
from proxy.core.request import GenerationRequest
from proxy.core.run import CompletionRun, StreamError
from proxy.core.sealing import ReasoningSealer
from proxy.core.service import ClientGone, GenerationService
from proxy.core.tools import validate_schemas
from proxy.server.request_log import RequestRecord
from proxy.server.settings import ProxyConfig
from proxy.server.sse import LastWrite, SseResponse, SseStream, wait_for_disconnect

# Thinking signatures are sealed apart from the Responses API's encrypted reasoning.
SIGNATURE_PURPOSE = "anthropic thinking"


class MessagesEndpoint:
    """The two routes, over the shared generation service and the server's reasoning key."""

    def __init__(
        self, service: GenerationService, config: ProxyConfig, sealer: ReasoningSealer
    ) -> None:
        self.service = service
        self.config = config
        self.sealer = sealer.for_purpose(SIGNATURE_PURPOSE)

    async def create(self, body: MessagesRequest, request: Request) -> Response:
        request_id = getattr(request.state, "request_id", None) or secrets.token_hex(12)
        record = RequestRecord(
            id=request_id,
            api="messages",
            model=body.model,
            stream=body.stream,
            caller=caller_of(request),
        )
        try:
            async with self.service.generate(
                record, lambda: wait_for_disconnect(request)
            ) as generation:
                check_unicode(await request.body(), lambda: body.model_dump(exclude_none=True))
                message_id = f"msg_{secrets.token_hex(12)}"
                caller = caller_of(request)
                sealer = self.sealer.bound(caller.owner, body.model)
                run = await generation.open(generation_request(body, message_id, sealer))
                builder = MessageBuilder(
                    message_id,
                    body.model,
                    seal=sealer.seal,
                    show_thinking=thinking_shown(body),
                    stream=body.stream,
                )
                turn = _Turn(run, builder)
                if body.stream:
                    return SseResponse(
                        SseStream(turn.events(), close=generation.streamed()),
                        ping=self.config.sse_ping_seconds or 0,
                        send_timeout=self.config.send_timeout_seconds,
                        ping_event=PING,
                    )
                await generation.watch(turn.drain())
                if turn.error is not None:
                    raise turn.error
                return JSONResponse(builder.message)
        except ClientGone:
            return Response(status_code=499)  # (nobody reads it: counted and logged as such)

    async def count_tokens(self, body: CountTokensRequest, request: Request) -> JSONResponse:
        """The prompt's tokens as this server renders it (system, tools, Harmony framing)."""
        service = self.service
        check_unicode(await request.body(), lambda: body.model_dump(exclude_none=True))
        sealer = self.sealer.bound(caller_of(request).owner, body.model)
        wanted = generation_request(body, "msg_count", sealer)
        gate.check_request(wanted, service.settings.limits)
        if body.model not in service.model_names():
            raise ModelNotFound(body.model)
        if not service.encoding_loaded:
            raise EngineLoading(service.unavailable_reason())
        system = service.settings.system
        count = await service.executor.submit(lambda: _prompt_tokens(wanted, system))
        return JSONResponse({"input_tokens": count})


def _prompt_tokens(request: GenerationRequest, system: SystemDefaults) -> int:
    request = dataclasses.replace(request, tools=validate_schemas(request.tools))
    names = tool_names_for(request)
    return len(render_prompt(build_conversation(request, system, names)))


class _Turn:
    """One admitted request: drives its run through the builder."""

    def __init__(self, run: CompletionRun, builder: MessageBuilder) -> None:
        self.run = run
        self.builder = builder
        self.error: ProxyError | None = None

    async def events(self) -> AsyncGenerator[bytes, None]:
        """The message's SSE events, those of steps the run yields at once (`Step.more`) in
        one write: the opening events with the first step's, the last text with the end."""
        run = self.run
        out = self.builder.begin(len(run.plan.prompt_token_ids))
        finish = None
        async for step in run.steps():
            if isinstance(step, StreamError):
                self.error = step.error
                continue
            if step.choice == 0:
                if step.finish is not None:
                    finish = step.finish
                out.extend(self.builder.step(step))
            if out and not step.more:
                yield b"".join(out)
                out = []
        out.extend(self.builder.finish(finish, run.stop_string(0), run.usage, self.error))
        yield LastWrite(b"".join(out))

    async def drain(self) -> None:
        """The non-streamed answer: every event built, none sent."""
        async for _ in self.events():
            pass
