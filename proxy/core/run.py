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

A step is yielded as soon as nothing more is ready; outputs that are already at hand together
are merged into one step per choice, and operators' floors or the loop's backlog can hold steps
longer: `WritePacing` (proxy/core/pacing.py) decides when, and how the engine is read meanwhile.
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
from proxy.core.coalesce import PendingSteps, StreamInterval
from proxy.core.errors import EngineFailure, EngineLoading, InvalidRequest, ProxyError
from proxy.core.events import Step, Usage
from proxy.core.interrupt import Interrupted, until_interrupted
from proxy.core.logprobs import TokenLogprob, token_logprob
from proxy.core.loop_pressure import LoopPressure
from proxy.core.output_rules import OutputRules
from proxy.core.pacing import WritePacing
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
        interval: StreamInterval | None = None,
        pressure: LoopPressure | None = None,
    ) -> None:
        """`pressure`: the serving loop's backlog, a further time floor while it lags (None or
        `interval.merge` off: never)."""
        self.plan = plan
        # The floors of the stream's writes (None or 1 token, 0 ms: merge only what is ready);
        # an API may replace it with a request's own before reading `steps()`.
        self.interval = interval or StreamInterval()
        self._pressure = pressure
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
        self._gaps = metrics.inter_token.tally()  # flushed at close() and about every second
        self._cached_tokens: int | None = None
        self._engine_done = [False] * plan.sampling.n
        self._encoding = encoding
        self._logprobs: list[list[TokenLogprob]] = [[] for _ in range(plan.sampling.n)]
        self._closed = False
        self._pacing: WritePacing | None = None  # set by steps()
        self.engine_finished = False

    @property
    def finish_reasons(self) -> list[str | None]:
        return list(self._finish)

    def stop_string(self, choice: int = 0) -> str | None:
        """The stop string that ended choice `choice` (None: it ended otherwise)."""
        return self._assemblers[choice].stop_string

    async def start(self) -> None:
        """Submit to the engine and wait for its first output (errors here are HTTP errors,
        whether the backend raises them on the call or on the first read)."""
        try:
            self._engine = aiter(
                self._backend.generate(
                    self.plan.prompt_token_ids, self.plan.sampling, self.plan.engine_request_id
                )
            )
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
        self._gaps.flush()  # first: the awaits below can be cancelled
        if self._pacing is not None:
            await self._pacing.close()
        if self._engine is not None:
            aclose = getattr(self._engine, "aclose", None)
            if aclose is not None:
                await aclose()
            reader = self._pacing.reader if self._pacing is not None else None
            if not (self.engine_finished or (reader is not None and reader.exhausted)):
                await self._backend.abort(self.plan.engine_request_id)
        for assembler in self._assemblers:
            self._metrics.parse_recoveries.inc(len(assembler.recoveries))
            for recovery in assembler.tool_call_recoveries:
                self._metrics.tool_call_recoveries.labels(recovery.partition(":")[0]).inc()

    async def steps(self) -> AsyncIterator[Step | StreamError]:
        """What the engine produced, one `Step` per choice it touched per write (outputs ready
        together merged); `usage` is set at the end. A step marked `more` is followed at once,
        with no wait on the engine, by the next step or the end (a `StreamError` always is)."""
        pending = PendingSteps(self.plan.sampling.n)
        pacing = self._pacing = WritePacing(
            self.interval, self._pressure, merges_while_unread=self._backend.merges_while_unread
        )
        # Steps yielded at once may share a write (`Step.more`; not with merging turned off).
        joins = self.interval.merge
        opened = False
        try:
            floored = self.interval.floored
            async for gen in pacing.chunks(self._engine_chunks, pending, self._all_finished):
                if gen is None:  # the time floor's deadline passed with nothing new
                    steps = pending.release()
                else:
                    steps = self._consume(gen)
                    if not opened:
                        opened = True
                        self._first = None  # taken: a source opened from now on starts after it
                        if not steps:
                            # The first output is often a header token alone (`<|channel|>`):
                            # an empty step still lets the writers send their opening events
                            # now, not with the first text a few engine steps later.
                            steps = [Step(gen.index)]
                    # (The common case, nothing held, nothing more ready and the loop keeping
                    # up, skips all this.)
                    if floored or gen.more_ready or pending or pacing.reader is not None:
                        if pacing.hold(gen, steps, pending):
                            pending.hold(steps, len(gen.token_ids), gen.index)
                            continue
                        steps = pending.release(steps)
                # Once every choice has finished, only the engine's end is left to read (at
                # once in process; a replica's end follows its last event).
                finished = self._all_finished()
                last = len(steps) if finished else len(steps) - 1
                for k, step in enumerate(steps):
                    step.more = joins and k < last
                    yield step
                if steps:
                    pacing.wrote()
                # Every choice finished; if one ended early (stop string, tokens past a stop
                # token), stop reading so that close() aborts what the engine still generates.
                if finished and not all(self._engine_done):
                    break
            else:
                self.engine_finished = True  # its stream is exhausted: nothing to abort
        except Exception as exc:  # noqa: BLE001 - after the first byte, errors are events
            # (From here on nothing waits for the engine: every step is `more` until the end.)
            for step in pending.release():  # what was parsed before the failure goes first
                step.more = joins
                yield step
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
                    yield Step(index, [], "stop", self._take_logprobs(index), more=joins)
        for step in pending.release():
            step.more = joins
            yield step
        for index, reason in enumerate(self._finish):
            if reason is None:  # the engine stream ended without finishing this choice
                step = self._finish_choice(index, "stop")
                step.more = joins
                yield step
        self.usage = self._usage()

    def _all_finished(self) -> bool:
        return None not in self._finish

    def _engine_chunks(self) -> AsyncIterator[GenerationChunk]:
        """The engine's chunks from where the run is: the first, read by `start()`, until
        `steps()` has taken it (a source opened before is closed unread when the loop's backlog
        starts a reader). `steps()` marks the engine finished when they are exhausted."""
        assert self._engine is not None
        return until_interrupted(
            self._engine,
            self._stop,
            self._stop_error,
            first=self._first,
            check=self._raise_if_failed,
        )

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
            # The engine's reason is this choice's only if it ran to the chunk's last token.
            ended_early = assembler.consumed < len(gen.token_ids)
            out.append(self._finish_choice(gen.index, None if ended_early else gen.finish_reason))
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
            gaps = self._gaps
            gaps.add((now - self._last_token_at) / tokens, tokens)
            if now - gaps.flushed_at > gaps.FLUSH_SECONDS:
                gaps.flush(now)
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
