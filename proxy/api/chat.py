"""POST /v1/chat/completions: request -> plan -> engine run -> SSE stream or folded response.

The handler reads top to bottom like the request's path: validate what we refuse (cheap limits
first), take an admission slot, build the Harmony conversation and render it (in a worker
thread: long prompts take a while to encode), derive the grammar for tool_choice/
response_format, size the sampling budget, start the engine, then stream or fold. Everything
before the response starts is raced against the client's disconnect (and the end of a drain),
so a client that gives up while queued or waiting for its first token is never prefilled.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import secrets
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import TypeVar

from fastapi import Request
from fastapi.responses import JSONResponse, Response

from proxy.api.chat_schema import ChatCompletionRequest
from proxy.api.chat_stream import ChatChunks, fold
from proxy.backends.base import EngineBackend
from proxy.core.admission import Admission
from proxy.core.conversation import build_conversation, load_encoding, render_prompt, tool_names_for
from proxy.core.errors import (
    EngineLoading,
    ModelNotFound,
    ProxyError,
    ServerDraining,
    TooManyRequests,
)
from proxy.core.gate import check_message_count, check_text, precheck_context, request_texts
from proxy.core.output_rules import output_rules
from proxy.core.run import CompletionPlan, CompletionRun
from proxy.core.sampling import refuse_unsupported, sampling_config, stop_strings
from proxy.core.tools import FunctionTool, declared_tools
from proxy.server.lifecycle import Lifecycle
from proxy.server.metrics import ProxyMetrics
from proxy.server.request_log import RequestRecord
from proxy.server.settings import ProxyConfig
from proxy.server.sse import SseResponse, SseStream

T = TypeVar("T")

logger = logging.getLogger("proxy")


@dataclass(frozen=True)
class PlanOptions:
    """What another API decides for its own requests: ids, tools read from its own format
    (namespaces, custom tools), and a routing key."""

    completion_id: str | None = None
    tools: list[FunctionTool] | None = None
    affinity_key: str | None = None


class ChatCompletions:
    """The endpoint's state: configuration, engine, metrics, admission and lifecycle."""

    def __init__(
        self,
        config: ProxyConfig,
        backend: EngineBackend,
        metrics: ProxyMetrics,
        lifecycle: Lifecycle | None = None,
    ) -> None:
        self.config = config
        self.backend = backend
        self.metrics = metrics
        self.lifecycle = lifecycle or Lifecycle()
        self.admission = Admission(
            config.max_concurrent_requests,
            config.max_queued_requests,
            config.queue_timeout_seconds,
        )
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
        request_id = getattr(request.state, "request_id", None) or secrets.token_hex(12)
        record = RequestRecord(id=request_id, model=body.model, stream=body.stream)
        return await self.accounted(record, self._handle(body, request, request_id, record))

    async def accounted(self, record: RequestRecord, work: Awaitable[Response]) -> Response:
        """Run an endpoint's `work`, counting and logging how it ended when it did not answer:
        refusals (with 429/draining as rejections), a client gone (499), a crash (500). Both
        APIs come through here."""
        try:
            return await work
        except ProxyError as exc:
            self.metrics.requests.labels(str(exc.status_code), "").inc()
            if isinstance(exc, TooManyRequests | ServerDraining):
                self.metrics.rejected.labels(
                    "rate_limit" if isinstance(exc, TooManyRequests) else "draining"
                ).inc()
            self.log(record, exc.status_code, error=exc.code or exc.error_type)
            raise
        except ClientGone:
            self.metrics.client_disconnects.inc()
            self.metrics.requests.labels("499", "client_disconnect").inc()
            self.log(record, 499, finish="client_disconnect")
            return Response(status_code=499)
        except Exception:
            self.log(record, 500, error="internal_error")
            raise

    async def _handle(
        self, body: ChatCompletionRequest, request: Request, request_id: str, record: RequestRecord
    ) -> Response:
        run = await self.open_run(body, request, request_id)
        if body.stream:
            return self._stream(run, body, record)
        return await self._respond(run, request, record)

    async def open_run(
        self,
        body: ChatCompletionRequest,
        request: Request,
        request_id: str,
        *,
        plan: PlanOptions | None = None,
    ) -> CompletionRun:
        """Refuse what we must, queue for a slot, render, and wait for the first token.

        The Responses API reads its request into a `ChatCompletionRequest` and comes through
        here too, with its own tools and ids in `plan`. The caller must `release()` the slot
        once the returned run is closed.
        """
        check_message_count(body, self.config.max_messages)
        check_text(body)
        if body.model not in self.model_names():
            raise ModelNotFound(body.model)
        refuse_unsupported(body)
        self.lifecycle.refuse_if_draining()
        if not (self.encoding_loaded and self.backend.ready):
            raise EngineLoading(self.unavailable_reason())
        return await unless_disconnected(
            self._admit_and_start(body, request_id, plan or PlanOptions()),
            request,
            self.lifecycle,
        )

    async def _admit_and_start(
        self, body: ChatCompletionRequest, request_id: str, options: PlanOptions
    ) -> CompletionRun:
        """Queue for a slot, render, and wait for the first token; undone if cancelled."""
        self.metrics.queued.inc()
        try:
            await self.admission.acquire()
        finally:
            self.metrics.queued.dec()
        self.lifecycle.opened()
        self.metrics.in_flight.inc()
        run: CompletionRun | None = None
        try:
            if renders_quickly(body, options):
                plan = self._plan(body, request_id, options)
            else:
                plan = await asyncio.to_thread(self._plan, body, request_id, options)
            lifecycle = self.lifecycle
            run = CompletionRun(
                plan,
                self.backend,
                load_encoding(),
                self.metrics,
                stop=lifecycle.expired,
                stop_error=lifecycle.interrupt_error,
            )
            await run.start()
            return run
        except BaseException:
            if run is not None:
                await asyncio.shield(run.close())
            self.release()
            raise

    def release(self) -> None:
        """Give back what `_admit_and_start` took (once per admitted request)."""
        self.admission.release()
        self.metrics.in_flight.dec()
        self.lifecycle.closed()

    def log(
        self,
        record: RequestRecord,
        status: int,
        *,
        run: CompletionRun | None = None,
        finish: str | None = None,
        error: str | None = None,
    ) -> None:
        if not self.config.request_log:
            return
        record.status = status
        record.error = error
        record.finish_reason = finish
        if run is not None:
            usage = run.usage
            if usage is not None:
                record.prompt_tokens = usage.prompt_tokens
                record.completion_tokens = usage.completion_tokens
                record.reasoning_tokens = usage.completion_tokens_details.reasoning_tokens
            else:
                record.prompt_tokens = len(run.plan.prompt_token_ids)
            if run.ttft is not None:
                record.ttft_ms = round(run.ttft * 1000, 1)
            if run.error is not None and error is None:
                record.error = run.error.code or run.error.error_type
        record.emit()

    def _plan(
        self, body: ChatCompletionRequest, request_id: str, options: PlanOptions
    ) -> CompletionPlan:
        precheck_context(body, load_encoding(), self.backend.max_model_len)
        tools = declared_tools(body) if options.tools is None else options.tools
        names = tool_names_for(body, tools)
        conversation = build_conversation(body, self.config, tools, names)
        prompt = render_prompt(conversation)
        # A backend that cannot compile grammars (remote replicas without a tokenizer) still
        # serves "auto": calls are then checked after generation instead.
        enforce = self.config.enforce_auto_tool_calls and getattr(
            self.backend, "supports_grammar", True
        )
        rules = output_rules(body, tools, names, enforce_auto=enforce)
        sampling = sampling_config(
            body,
            prompt_tokens=len(prompt),
            max_model_len=self.backend.max_model_len,
            rules=rules,
            default_max_tokens=self.config.default_max_tokens,
        )
        if options.affinity_key is not None:
            sampling = dataclasses.replace(sampling, affinity_key=options.affinity_key)
        completion_id = options.completion_id or f"chatcmpl-{request_id}"
        return CompletionPlan(
            completion_id=completion_id,
            # Unique in the engine even if a client reuses its X-Request-Id concurrently.
            engine_request_id=f"{completion_id}-{secrets.token_hex(4)}",
            model=body.model,
            prompt_token_ids=prompt,
            sampling=sampling,
            rules=rules,
            names=names,
            stop_strings=stop_strings(body),
            include_reasoning=body.include_reasoning,
            mirror_reasoning_content=self.config.mirror_reasoning_content,
        )

    def _stream(
        self, run: CompletionRun, body: ChatCompletionRequest, record: RequestRecord
    ) -> Response:
        include_usage = bool(body.stream_options and body.stream_options.include_usage)

        def on_done(completed: bool) -> None:
            self.release()
            if completed:
                reason = "error" if run.error is not None else (run.finish_reasons[0] or "")
                self.metrics.requests.labels("200", reason).inc()
                self.log(record, 200, run=run, finish=run.finish_reasons[0])
            else:
                self.metrics.requests.labels("499", "client_disconnect").inc()
                self.log(record, 499, run=run, finish="client_disconnect")

        chunks = ChatChunks(run, include_usage=include_usage)
        stream = SseStream(run, chunks.events(), metrics=self.metrics, on_done=on_done)
        return SseResponse(
            stream,
            ping=self.config.sse_ping_seconds or 0,
            send_timeout=self.config.send_timeout_seconds,
        )

    async def _respond(
        self, run: CompletionRun, request: Request, record: RequestRecord
    ) -> Response:
        try:
            result = await unless_disconnected(fold(run), request)
        except ClientGone:
            self.metrics.client_disconnects.inc()
            self.metrics.requests.labels("499", "client_disconnect").inc()
            self.log(record, 499, run=run, finish="client_disconnect")
            return Response(status_code=499)
        except ProxyError as exc:
            self.log(record, exc.status_code, run=run, error=exc.code or exc.error_type)
            raise
        finally:
            await asyncio.shield(run.close())
            self.release()
        finish = result.choices[0].finish_reason
        self.metrics.requests.labels("200", finish or "").inc()
        self.log(record, 200, run=run, finish=finish)
        return JSONResponse(result.model_dump())


# Rendering costs about 75 us plus 30 us per 1,000 characters (measured, tiktoken included),
# while a hop to a worker thread and back costs more than a short render (the GIL handoff and
# the executor's queue: py-spy put concurrent.futures at 19% of the instant-backend server's
# samples with 30-token answers). Up to these sizes the prompt renders on the event loop (at
# most about half a millisecond for the other streams); above them in a worker thread. Tools
# are bounded by count, not by schema size: schemas are rarely long next to the messages.
INLINE_RENDER_CHARS = 16_000
INLINE_RENDER_TOOLS = 16


def renders_quickly(body: ChatCompletionRequest, options: PlanOptions) -> bool:
    """Is this prompt small enough to render on the event loop?"""
    tools = len(body.tools or ()) if options.tools is None else len(options.tools)
    if tools > INLINE_RENDER_TOOLS:
        return False
    size = 0
    for text in request_texts(body):
        size += len(text)
        if size > INLINE_RENDER_CHARS:
            return False
    return True


class ClientGone(Exception):
    """The client disconnected before its response was ready."""


async def unless_disconnected(
    work: Awaitable[T], request: Request, lifecycle: Lifecycle | None = None
) -> T:
    """Await `work`, cancelling it if the client disconnects first (uvicorn won't tell us), or
    when the drain's grace period ends (then the request gets a 503)."""
    task = asyncio.ensure_future(work)
    watchers = {asyncio.ensure_future(_disconnected(request))}
    if lifecycle is not None:
        watchers.add(asyncio.ensure_future(lifecycle.expired.wait()))
    try:
        await asyncio.wait({task, *watchers}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for watcher in watchers:
            watcher.cancel()
    if task.done():
        return task.result()
    task.cancel()
    try:
        await task
    except (asyncio.CancelledError, Exception):
        pass
    if lifecycle is not None and lifecycle.expired.is_set():
        raise lifecycle.interrupt_error()
    raise ClientGone()


async def _disconnected(request: Request) -> None:
    while (await request.receive())["type"] != "http.disconnect":
        pass
