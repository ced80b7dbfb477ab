"""The generation driver: one parser-driven core for both APIs, streamed or not.

`CompletionRun` owns one request's generation: it opens the engine stream, pushes each choice's
tokens through its own `DeltaAssembler`, and yields API-neutral `Step`s (proxy/core/events.py): the
events one engine output added to a choice, and the choice's finish_reason when it ends; `usage`
is set once the steps are exhausted. Chat completions (proxy/api/chat_stream.py) and the Responses
API (proxy/api/responses/) render the same steps as their own SSE events, and fold them into their
non-streamed answers, so streamed and non-streamed answers agree by construction.

`start()` waits for the engine's first output before anything is sent, so failures before the
first token (engine loading, engine refusing the request) still get a real HTTP status. Later
failures (engine, drain) become a `StreamError` item followed by finish steps. Their
finish_reason is "stop": OpenAI's enum has no "error", strictly typed clients reject values
outside it, and the error event before it already tells every SDK that the answer is cut short.
Closing the run before the engine finished (client gone, all choices stopped by stop strings)
aborts the request in the engine.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from harmony import HarmonyEncoding
from proxy.backends.base import (
    EngineBackend,
    EngineError,
    EngineNotReady,
    EngineRefused,
    GenerationChunk,
    SamplingConfig,
)
from proxy.core.assembler import DeltaAssembler
from proxy.core.errors import EngineFailure, EngineLoading, InvalidRequest, ProxyError
from proxy.core.events import Step, Usage
from proxy.core.interrupt import Interrupted, until_interrupted
from proxy.core.logprobs import TokenLogprob, token_logprob
from proxy.core.output_rules import OutputRules
from proxy.core.tool_names import ToolNames

if TYPE_CHECKING:
    from proxy.server.metrics import ProxyMetrics

logger = logging.getLogger("proxy")


@dataclass
class CompletionPlan:
    """Everything decided about a request before generation starts."""

    completion_id: str
    engine_request_id: str
    model: str
    prompt_token_ids: list[int]
    sampling: SamplingConfig
    rules: OutputRules
    names: ToolNames
    stop_strings: tuple[str, ...] = ()
    include_reasoning: bool = True
    created: int = field(default_factory=lambda: int(time.time()))


@dataclass
class StreamError:
    """An error after the stream started: sent as `data: {"error": ...}`."""

    error: ProxyError


class CompletionRun:
    """One request's generation, consumed once through `steps()`; always `close()` it."""

    def __init__(
        self,
        plan: CompletionPlan,
        backend: EngineBackend,
        encoding: HarmonyEncoding,
        metrics: ProxyMetrics,
        *,
        stop: asyncio.Event | None = None,
        stop_error: Callable[[], ProxyError] | None = None,
    ) -> None:
        self.plan = plan
        # Set (server draining, engine dead) to end the generation early with an error event.
        self._stop = stop
        self._stop_error = stop_error or (lambda: ProxyError("The request was interrupted."))
        # What went wrong after the first byte (None: nothing); the finish chunk says "stop".
        self.error: ProxyError | None = None
        self.ttft: float | None = None
        self.usage: Usage | None = None
        self._backend = backend
        self._metrics = metrics
        self._assemblers = [
            DeltaAssembler(
                encoding,
                plan.names,
                stop_token_ids=plan.sampling.stop_token_ids,
                stop_strings=plan.stop_strings,
                tools_callable=plan.rules.tool_choice != "none",
                calls_enforced=plan.rules.calls_enforced,
                max_tool_calls=plan.rules.max_tool_calls,
            )
            for _ in range(plan.sampling.n)
        ]
        self._finish: list[str | None] = [None] * plan.sampling.n
        self._engine: AsyncIterator[GenerationChunk] | None = None
        self._first: GenerationChunk | None = None
        self._started_at = time.monotonic()
        self._last_token_at: float | None = None
        self._cached_tokens: int | None = None
        self._engine_done = [False] * plan.sampling.n
        self._encoding = encoding
        self._logprobs: list[list[TokenLogprob]] = [[] for _ in range(plan.sampling.n)]
        self._closed = False
        self.engine_finished = False

    @property
    def finish_reasons(self) -> list[str | None]:
        return list(self._finish)

    def stop_string(self, choice: int = 0) -> str | None:
        """The stop string that ended choice `choice` (None: it ended otherwise)."""
        return self._assemblers[choice].stop_string

    async def start(self) -> None:
        """Submit to the engine and wait for its first output (errors here are HTTP errors)."""
        self._engine = aiter(
            self._backend.generate(
                self.plan.prompt_token_ids, self.plan.sampling, self.plan.engine_request_id
            )
        )
        try:
            self._first = await anext(self._engine)
            self._raise_if_failed(self._first)
        except StopAsyncIteration:
            self._first = None
            self.engine_finished = True
        except EngineNotReady as exc:
            raise EngineLoading(f"The engine is not ready: {exc}") from exc
        except EngineError as exc:
            self._metrics.engine_errors.inc()
            raise EngineFailure(str(exc)) from exc
        except EngineRefused as exc:  # the engine's own validation (vLLM: VLLMValidationError)
            raise InvalidRequest(f"The engine refused the request: {exc}") from exc

    async def close(self) -> None:
        """Release the engine stream; abort the request if it was still generating. Idempotent.

        The one abort path (backends/base.py): backends only close their own streams."""
        if self._closed:
            return
        self._closed = True
        if self._engine is not None:
            aclose = getattr(self._engine, "aclose", None)
            if aclose is not None:
                await aclose()
            if not self.engine_finished:
                await self._backend.abort(self.plan.engine_request_id)
        for assembler in self._assemblers:
            self._metrics.parse_recoveries.inc(len(assembler.recoveries))
            for recovery in assembler.tool_call_recoveries:
                self._metrics.tool_call_recoveries.labels(recovery.partition(":")[0]).inc()

    async def steps(self) -> AsyncIterator[Step | StreamError]:
        """Each engine output as one `Step` per choice it touched; `usage` is set at the end."""
        try:
            async for gen in self._engine_chunks():
                for step in self._consume(gen):
                    yield step
                # Every choice finished; if one ended early (stop string, tokens past a stop
                # token), stop reading so that close() aborts what the engine still generates.
                if all(r is not None for r in self._finish) and not all(self._engine_done):
                    break
        except Exception as exc:  # noqa: BLE001 - after the first byte, errors are events
            if isinstance(exc, Interrupted):
                error = exc.error
            elif isinstance(exc, EngineError):
                self._metrics.engine_errors.inc()
                error = EngineFailure(str(exc))
            else:
                logger.exception("internal error while generating %s", self.plan.completion_id)
                self._metrics.internal_errors.inc()
                error = ProxyError(f"Internal error while generating: {type(exc).__name__}")
            self.error = error
            yield StreamError(error)
            for index, reason in enumerate(self._finish):
                if reason is None:
                    self._finish[index] = "stop"
                    yield Step(index, [], "stop", self._take_logprobs(index))
        for index, reason in enumerate(self._finish):
            if reason is None:  # the engine stream ended without finishing this choice
                yield self._finish_choice(index, "stop")
        self.usage = self._usage()

    async def _engine_chunks(self) -> AsyncIterator[GenerationChunk]:
        if self._first is not None:
            yield self._first
        assert self._engine is not None
        async for gen in until_interrupted(self._engine, self._stop, self._stop_error):
            self._raise_if_failed(gen)
            yield gen
        self.engine_finished = True

    def _raise_if_failed(self, gen: GenerationChunk) -> None:
        """An engine that ends a choice with "error" or an unrequested "abort" has failed it."""
        if gen.finish_reason not in ("error", "abort"):
            return
        self.engine_finished = True
        message = f"the engine ended the request with finish_reason {gen.finish_reason!r}"
        if self.plan.sampling.structured_outputs:
            message += (
                " (with tool_choice/response_format this usually means the grammar engine could "
                "not compile the schema)"
            )
        raise EngineError(message)

    def _consume(self, gen: GenerationChunk) -> list[Step]:
        if self._cached_tokens is None and gen.cached_prompt_tokens is not None:
            self._cached_tokens = gen.cached_prompt_tokens
        if gen.finish_reason is not None:
            self._engine_done[gen.index] = True
        if self._finish[gen.index] is not None:
            return []  # stopped by a stop string; the engine may still be producing it
        self._observe_timing(len(gen.token_ids))
        assembler = self._assemblers[gen.index]
        out = []
        events = assembler.feed(gen.token_ids)
        self._collect_logprobs(gen, assembler.content_positions)
        if events:
            out.append(Step(gen.index, events, None, self._take_logprobs(gen.index)))
        if gen.finish_reason is not None or assembler.done:
            out.append(self._finish_choice(gen.index, gen.finish_reason))
        return out

    def _finish_choice(self, index: int, engine_reason: str | None) -> Step:
        assembler = self._assemblers[index]
        events = assembler.finish()
        if assembler.stopped_by_string:
            reason = "stop"
        elif engine_reason == "length":
            reason = "length"
        elif assembler.tool_calls and self.plan.rules.tool_choice != "named":
            reason = "tool_calls"
        else:
            reason = "stop"
        self._finish[index] = reason
        return Step(index, events, reason, self._take_logprobs(index))

    def _take_logprobs(self, index: int) -> list[TokenLogprob] | None:
        taken = self._logprobs[index]
        if not taken:
            return None
        self._logprobs[index] = []
        return taken

    def _collect_logprobs(self, gen: GenerationChunk, positions: list[int]) -> None:
        top_n = self.plan.sampling.logprobs
        if top_n is None or not gen.logprobs:
            return
        self._logprobs[gen.index].extend(
            token_logprob(self._encoding, gen.token_ids[k], gen.logprobs[k], top_n)
            for k in positions
            if k < len(gen.logprobs)
        )

    def _observe_timing(self, tokens: int) -> None:
        now = time.monotonic()
        if self._last_token_at is None:
            self.ttft = now - self._started_at
            self._metrics.ttft.observe(self.ttft)
        elif tokens:
            gap = (now - self._last_token_at) / tokens
            for _ in range(tokens):
                self._metrics.inter_token.observe(gap)
        self._last_token_at = now

    @property
    def tokens_so_far(self) -> int:
        """Prompt plus the completion tokens read so far: what a run cut short has cost."""
        return len(self.plan.prompt_token_ids) + sum(a.completion_tokens for a in self._assemblers)

    def _usage(self) -> Usage:
        prompt = len(self.plan.prompt_token_ids)
        completion = sum(a.completion_tokens for a in self._assemblers)
        reasoning = sum(a.reasoning_tokens for a in self._assemblers)
        self._metrics.prompt_tokens.inc(prompt)
        self._metrics.completion_tokens.inc(completion)
        self._metrics.reasoning_tokens.inc(reasoning)
        return Usage(
            prompt_tokens=prompt,
            completion_tokens=completion,
            reasoning_tokens=reasoning,
            cached_tokens=self._cached_tokens,
        )
