"""A backend that replays chosen token sequences, for fault injection and malformed output.

The real engine on the demo model cannot be made to emit a doubled `<|start|>` or an engine
failure on demand; this backend can. It honours the parts of the engine contract the HTTP layer
relies on (stop token ids, `max_tokens` -> finish_reason "length", n choices interleaved,
chunks of several tokens, abort on close) and records every request and abort so tests can check
what the server asked for.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass, field

from prometheus_client.metrics_core import Metric

from proxy.backends.base import (
    EngineError,
    EngineNotReady,
    FinishReason,
    GenerationChunk,
    SamplingConfig,
)


@dataclass
class Script:
    """What the next requests generate: one token sequence per choice (reused cyclically)."""

    choices: list[list[int]] = field(default_factory=list)
    # Chunk sizes, cycled: (1,) is token by token, (1, 8, 3) mixes sizes.
    chunk_sizes: Sequence[int] = (1,)
    # Seconds to wait before each chunk (a slow engine).
    delay: float = 0.0
    # Raise EngineError after this many chunks (0: before the first one).
    fail_after: int | None = None
    # Keep generating past stop tokens (what `ignore_eos` would do to an engine).
    ignore_stop_tokens: bool = False
    # End every choice with this finish_reason instead ("error": the engine failed it).
    finish_reason: FinishReason | None = None
    # Chunks handed over together (a loaded engine's backlog): each group's chunks but the last
    # are marked `more_ready` and follow without a wait or `delay` (1: one chunk at a time).
    ready_together: int = 1
    # Seconds to wait before chunk k (counted from 0 over all choices): an engine that stalls.
    pauses: Mapping[int, float] = field(default_factory=dict)
    # An engine stepping at a fixed pace: chunk k of each choice is due `k * pace` seconds
    # after the request started, whether or not the reader kept up. A reader that falls behind
    # finds every chunk due by then handed over together (`more_ready`), as a loaded engine's
    # output queue holds them; one that keeps up waits for each (0: no pace).
    pace: float = 0.0
    # With `pace` (one choice): the tokens due are handed over as one chunk, as vLLM's
    # in-process output collector merges a lagging request's deltas, instead of as a group of
    # chunks (`more_ready`), as a replica's events arrive in one socket read.
    pace_merged: bool = False

    @property
    def instant(self) -> bool:
        """No delay, pauses, pace, groups of ready chunks or `fail_after`: every chunk is
        handed over as soon as it is asked for (a `finish_reason` or `kill()` still apply)."""
        return (
            self.delay == 0
            and self.fail_after is None
            and self.ready_together == 1
            and not self.pauses
            and self.pace == 0
        )


@dataclass
class RecordedRequest:
    prompt_token_ids: list[int]
    sampling: SamplingConfig
    request_id: str


class ScriptedBackend:
    """An `EngineBackend` that replays `self.script`."""

    def __init__(
        self,
        script: Script | None = None,
        *,
        model_name: str = "scripted-gpt-oss",
        max_model_len: int = 8192,
        ready: bool = True,
        script_for: Callable[[list[int]], Script] | None = None,
        record: bool = True,
    ) -> None:
        self.script = script or Script()
        # Pick the script per request from its prompt (benchmarks: a tool call when the prompt
        # declares functions; `script`'s pace is then theirs too: `merges_while_unread`);
        # `record=False` keeps no per-request records (long load runs).
        self.script_for = script_for
        self.record = record
        self._model_name = model_name
        self._max_model_len = max_model_len
        self._ready = ready
        # Set to let a backend created with ready=False finish "loading".
        self.release = asyncio.Event()
        self.requests: list[RecordedRequest] = []
        self.aborted: list[str] = []
        self.finished: list[str] = []
        self.shutdown_called = False
        self.dead = False

    def kill(self) -> None:
        """Simulate the engine process dying: `ready` turns false, generations fail."""
        self.dead = True
        self._ready = False

    @property
    def model_name(self) -> str:
        return self._model_name

    @property
    def max_model_len(self) -> int:
        return self._max_model_len

    @property
    def merges_while_unread(self) -> bool:
        """A paced script's tokens fall due whether or not they are read, and `pace_merged`
        hands them over as one output, as vLLM's collector does; an unpaced one makes each
        output when asked (the instant backend)."""
        return self.script.pace > 0 and self.script.pace_merged

    @property
    def supports_grammar(self) -> bool:
        return True

    def collect(self) -> list[Metric]:
        return []

    @property
    def ready(self) -> bool:
        return self._ready

    async def start(self) -> None:
        if not self._ready:
            await self.release.wait()
            self._ready = True

    def generate(
        self, prompt_token_ids: list[int], sampling: SamplingConfig, request_id: str
    ) -> AsyncIterator[GenerationChunk]:
        """The script's chunks. A plain function (not loaded: EngineNotReady from the call)
        returning the generator that hands them over, so that the run reads that generator
        itself, not one around it: a script with no timing or faults has its own."""
        if not self._ready:
            raise EngineNotReady("scripted backend not started")
        if self.record:
            self.requests.append(RecordedRequest(list(prompt_token_ids), sampling, request_id))
        script = self.script if self.script_for is None else self.script_for(prompt_token_ids)
        plans = [self._plan(script, i, sampling) for i in range(sampling.n)]
        if len(plans) == 1 and script.instant:
            return self._instant(plans[0], sampling.logprobs, request_id)
        return self._timed(script, plans, sampling.logprobs, request_id)

    def _ended(self, request_id: str, complete: bool) -> None:
        """Record how a request's stream ended: complete, or closed early (an abort)."""
        if not self.record:
            return
        if complete:
            self.finished.append(request_id)
        elif request_id not in self.aborted:
            self.aborted.append(request_id)

    async def _timed(
        self, script: Script, plans: list[_Chunks], top_n: int | None, request_id: str
    ) -> AsyncIterator[GenerationChunk]:
        """Any script: delays, pauses, a pace, groups of ready chunks, failures, n choices."""
        emitted = 0
        together = max(1, script.ready_together)
        done = False
        paced = _Pace(script.pace, len(plans)) if script.pace > 0 else None
        try:
            while any(plans):
                for index, plan in enumerate(plans):
                    if not plan:
                        continue
                    if script.fail_after is not None and emitted >= script.fail_after:
                        raise EngineError("scripted engine failure")
                    if paced is not None:
                        await paced.wait(emitted)
                    in_group = emitted % together != 0  # the previous chunk said more_ready
                    if script.delay and not in_group:
                        await asyncio.sleep(script.delay)
                    if emitted in script.pauses and not in_group:
                        await asyncio.sleep(script.pauses[emitted])
                    if self.dead:
                        raise EngineError("the engine died while generating")
                    first = emitted == 0
                    tokens, finish = plan.popleft()
                    emitted += 1
                    if paced is not None and script.pace_merged and len(plans) == 1:
                        # vLLM's per-request output collector: what fell due meanwhile
                        # comes as one delta.
                        tokens = list(tokens)
                        while plan and paced.due(emitted) and emitted not in script.pauses:
                            later, finish = plan.popleft()
                            tokens += later
                            emitted += 1
                    if not any(plans):  # the last chunk: the request is complete once it is out
                        done = True
                        self._ended(request_id, complete=True)
                    more = not done and emitted % together != 0
                    if paced is not None:  # (a chunk the engine stalls before is not ready)
                        more = not done and paced.due(emitted) and emitted not in script.pauses
                    yield GenerationChunk(
                        index=index,
                        token_ids=tokens,
                        finish_reason=finish,
                        cached_prompt_tokens=0 if first else None,
                        logprobs=_fake_logprobs(tokens, top_n),
                        more_ready=more,
                    )
                    if not more:
                        await asyncio.sleep(0)
        finally:
            if not done:
                self._ended(request_id, complete=False)

    async def _instant(
        self, plan: _Chunks, top_n: int | None, request_id: str
    ) -> AsyncIterator[GenerationChunk]:
        """One choice of a script with no timing or faults (`Script.instant`): the chunks
        `_timed` would give, one turn of the loop after each, without its bookkeeping per
        chunk. The ceiling benchmark's engine: what it costs per token is counted as the
        server's, so it should be the least an engine's hand-over can cost."""
        first, done = True, False
        try:
            while plan:
                if self.dead:
                    raise EngineError("the engine died while generating")
                tokens, finish = plan.popleft()
                if not plan:
                    done = True
                    self._ended(request_id, complete=True)
                yield GenerationChunk(
                    index=0,
                    token_ids=tokens,
                    finish_reason=finish,
                    cached_prompt_tokens=0 if first else None,
                    logprobs=None if top_n is None else _fake_logprobs(tokens, top_n),
                )
                first = False
                await asyncio.sleep(0)
        finally:
            if not done:
                self._ended(request_id, complete=False)

    def _plan(self, script: Script, index: int, sampling: SamplingConfig) -> _Chunks:
        tokens = script.choices[index % len(script.choices)] if script.choices else []
        finish: FinishReason = "stop"
        stops = frozenset(sampling.stop_token_ids)
        if not script.ignore_stop_tokens and not stops.isdisjoint(tokens):
            for i, token in enumerate(tokens):
                if token in stops:
                    tokens = tokens[: i + 1]
                    break
        if len(tokens) > sampling.max_tokens:
            tokens, finish = tokens[: sampling.max_tokens], "length"
        if script.finish_reason is not None:
            finish = script.finish_reason
        return _Chunks(tokens, script.chunk_sizes or (1,), finish)

    async def abort(self, request_id: str) -> None:
        if request_id not in self.aborted and request_id not in self.finished:
            self.aborted.append(request_id)

    async def shutdown(self) -> None:
        self.shutdown_called = True


class _Chunks:
    """One choice's chunks, cut from its tokens as they are handed over (a benchmark's
    instant engine streams hundreds of thousands of tokens: no object per token up front)."""

    def __init__(self, tokens: Sequence[int], sizes: Sequence[int], finish: FinishReason) -> None:
        self._tokens = tokens
        self._sizes = itertools.cycle([max(1, size) for size in sizes])
        self._finish = finish
        self._pos = 0
        self._left = True  # a choice without tokens still hands over one (empty) chunk

    def __bool__(self) -> bool:
        return self._left

    def popleft(self) -> tuple[list[int], FinishReason | None]:
        if not self._left:
            raise IndexError("no chunks left")
        start = self._pos
        self._pos = min(len(self._tokens), start + next(self._sizes))
        self._left = self._pos < len(self._tokens)
        return list(self._tokens[start : self._pos]), None if self._left else self._finish


class _Pace:
    """When each chunk of a paced script is due: chunk k of every choice at `k * step`."""

    def __init__(self, step: float, choices: int) -> None:
        self.step = step
        self.choices = choices
        self.started = time.monotonic()

    def _at(self, emitted: int) -> float:
        return self.started + (emitted // self.choices) * self.step

    def due(self, emitted: int) -> bool:
        return time.monotonic() >= self._at(emitted)

    async def wait(self, emitted: int) -> None:
        delay = self._at(emitted) - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)


def _fake_logprobs(tokens: list[int], top_n: int | None) -> list[dict[int, float]] | None:
    """Deterministic stand-ins shaped like an engine's: the sampled token plus `top_n` others."""
    if top_n is None:
        return None
    return [
        {token: -0.25, **{token + k: -1.0 - k for k in range(1, top_n + 1)}} for token in tokens
    ]
