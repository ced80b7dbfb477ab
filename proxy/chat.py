"""POST /v1/chat/completions: request -> plan -> engine run -> SSE stream or folded response.

The handler reads top to bottom like the request's path: validate what we refuse, build the
Harmony conversation and render it (in a worker thread: long prompts take a while to encode),
derive the grammar for tool_choice/response_format, size the sampling budget, start the engine,
then stream or fold.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Awaitable
from typing import TypeVar

from fastapi import Request
from fastapi.responses import JSONResponse, Response
from sse_starlette import EventSourceResponse
from starlette.background import BackgroundTask

from proxy.api_models import ChatCompletionRequest
from proxy.backends.base import EngineBackend
from proxy.completion import CompletionPlan, CompletionRun, fold
from proxy.config import ProxyConfig
from proxy.conversation import build_conversation, load_encoding, render_prompt, tool_names_for
from proxy.errors import EngineLoading, ModelNotFound, ProxyError
from proxy.metrics import ProxyMetrics
from proxy.sampling import refuse_unsupported, sampling_config, stop_strings
from proxy.sse import SseStream
from proxy.structured import output_rules
from proxy.tools import declared_tools

T = TypeVar("T")


class ChatCompletions:
    """The endpoint's state: configuration, engine, metrics."""

    def __init__(self, config: ProxyConfig, backend: EngineBackend, metrics: ProxyMetrics) -> None:
        self.config = config
        self.backend = backend
        self.metrics = metrics
        self.encoding_loaded = False
        self.startup_done = False
        self.startup_error: str | None = None

    def unavailable_reason(self) -> str:
        """Why requests are refused with 503: still loading, failed to load, or gone."""
        if self.startup_error:
            return f"The engine failed to start: {self.startup_error}"
        if self.startup_done:
            return "The engine is not available (it stopped or died); retry later."
        return "The engine is still loading; retry shortly."

    def model_names(self) -> list[str]:
        return list(self.config.served_model_names) or [self.backend.model_name]

    async def __call__(self, body: ChatCompletionRequest, request: Request) -> Response:
        try:
            return await self._handle(body, request)
        except ProxyError as exc:
            self.metrics.requests.labels(str(exc.status_code), "").inc()
            raise

    async def _handle(self, body: ChatCompletionRequest, request: Request) -> Response:
        if body.model not in self.model_names():
            raise ModelNotFound(body.model)
        refuse_unsupported(body)
        if not (self.encoding_loaded and self.backend.ready):
            raise EngineLoading(self.unavailable_reason())
        request_id = getattr(request.state, "request_id", None) or secrets.token_hex(12)
        plan = await asyncio.to_thread(self._plan, body, request_id)
        run = CompletionRun(plan, self.backend, load_encoding(), self.metrics)
        self.metrics.in_flight.inc()
        try:
            await run.start()
        except BaseException:
            await run.close()
            self.metrics.in_flight.dec()
            raise
        if body.stream:
            return self._stream(run, body)
        return await self._respond(run, request)

    def _plan(self, body: ChatCompletionRequest, request_id: str) -> CompletionPlan:
        tools = declared_tools(body)
        names = tool_names_for(body, tools)
        conversation = build_conversation(body, self.config, tools, names)
        prompt = render_prompt(conversation)
        rules = output_rules(body, tools, names, enforce_auto=self.config.enforce_auto_tool_calls)
        sampling = sampling_config(
            body,
            prompt_tokens=len(prompt),
            max_model_len=self.backend.max_model_len,
            rules=rules,
            default_max_tokens=self.config.default_max_tokens,
        )
        return CompletionPlan(
            completion_id=f"chatcmpl-{request_id}",
            # Unique in the engine even if a client reuses its X-Request-Id concurrently.
            engine_request_id=f"chatcmpl-{request_id}-{secrets.token_hex(4)}",
            model=body.model,
            prompt_token_ids=prompt,
            sampling=sampling,
            rules=rules,
            names=names,
            stop_strings=stop_strings(body),
            include_reasoning=body.include_reasoning,
            mirror_reasoning_content=self.config.mirror_reasoning_content,
        )

    def _stream(self, run: CompletionRun, body: ChatCompletionRequest) -> Response:
        include_usage = bool(body.stream_options and body.stream_options.include_usage)

        def on_done(completed: bool) -> None:
            self.metrics.in_flight.dec()
            reason = run.finish_reasons[0] if completed else "client_disconnect"
            self.metrics.requests.labels("200" if completed else "499", reason or "").inc()

        stream = SseStream(run, include_usage=include_usage, metrics=self.metrics, on_done=on_done)
        return EventSourceResponse(
            stream.events(),
            ping=self.config.sse_ping_seconds or 0,
            sep="\n",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
            background=BackgroundTask(stream.cleanup),
        )

    async def _respond(self, run: CompletionRun, request: Request) -> Response:
        try:
            result = await _unless_disconnected(fold(run), request)
        except ClientGone:
            self.metrics.client_disconnects.inc()
            self.metrics.requests.labels("499", "client_disconnect").inc()
            return Response(status_code=499)
        finally:
            await run.close()
            self.metrics.in_flight.dec()
        self.metrics.requests.labels("200", result.choices[0].finish_reason or "").inc()
        return JSONResponse(result.model_dump())


class ClientGone(Exception):
    """The client disconnected before its non-streaming response was ready."""


async def _unless_disconnected(work: Awaitable[T], request: Request) -> T:
    """Await `work`, cancelling it if the client disconnects first (uvicorn won't tell us)."""
    task = asyncio.ensure_future(work)
    watcher = asyncio.ensure_future(_disconnected(request))
    try:
        await asyncio.wait({task, watcher}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        watcher.cancel()
    if task.done():
        return task.result()
    task.cancel()
    try:
        await task
    except asyncio.CancelledError:
        pass
    raise ClientGone()


async def _disconnected(request: Request) -> None:
    while (await request.receive())["type"] != "http.disconnect":
        pass
