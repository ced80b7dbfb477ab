"""Planning a request: everything decided before the engine sees it, and where that runs.

`plan_request` turns a `GenerationRequest` into a `CompletionPlan`: the context pre-check, the
tools' schemas validated, the Harmony prompt rendered, the grammar for tool_choice and the
answer's format, the sampling budget. Small requests are planned on the event loop (a thread
hop costs more than their render), as long as the slow parts they need, their schema checks
and grammar, are already cached: an agent resends the same tools every turn, so only a new
tool set's first request pays for the hop (`plan_on_loop`). Anything else is planned in
`PlanExecutor`, a small thread pool of its own: a burst of hostile requests queues there
instead of starving the store and other `to_thread` users, and the event loop never runs it.
Large schema checks and grammar compiles go further, to a worker process
(proxy/core/isolated.py). A plan whose client has gone stops at its next step (`Abandoned`).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import dataclasses
import os
import secrets
import threading
from collections.abc import Callable
from typing import TypeVar

import orjson

from proxy.backends.base import EngineBackend
from proxy.core import gate
from proxy.core.bounded_cache import NotCached, cache_hits_only, hits_only
from proxy.core.conversation import (
    SystemDefaults,
    build_conversation,
    load_encoding,
    render_prompt,
    tool_names_for,
)
from proxy.core.errors import InvalidRequest
from proxy.core.output_rules import output_rules
from proxy.core.request import GenerationRequest
from proxy.core.run import CompletionPlan
from proxy.core.sampling import check_room, sampling_config
from proxy.core.tools import validate_schemas
from proxy.core.truncation import fit_to_context

T = TypeVar("T")

# Rendering costs about 75 us plus 30 us per 1,000 characters of prose (measured, tiktoken
# included), up to three times that for text that is a token every other character ("x x x",
# chosen by a client), while a hop to a worker thread and back costs more than a short render
# (the GIL handoff and the executor's queue: py-spy put concurrent.futures at 19% of the
# instant-backend server's samples with 30-token answers; with one small tool in every
# request, the hop doubled the server's CPU per token at 64-token answers). Up to this size
# (texts, tool declarations and schemas together, weighed as below) a request is planned on
# the event loop, in about a millisecond at most for the other streams (benchmarks/
# bench_plan_on_loop.py: at 16,000 characters the worst cases took 2-3 ms, so the budget is
# half that), unless its schema check or grammar is not cached yet: that can take hundreds of
# milliseconds, whatever the number of tools, and goes to the plan executor.
# A tool declaration's or schema's character costs about 8 of a message's to plan (a schema
# is checked, walked for its canonical form and rendered as TypeScript; with all caches hit,
# 1,400 characters of schemas planned in 0.4 ms, and a new description made it 0.8 ms), and a
# message costs a header of its own: so at most 1,000 characters of tools go on the loop.
# Each past call renders a header and registers a name (64 of them took 1.6 ms).
INLINE_RENDER_CHARS = 8_000
INLINE_SCHEMA_WEIGHT = 8
INLINE_PART_CHARS = 64
INLINE_PAST_CALLS = 32
INLINE_TOOLS = 32


class Abandoned(Exception):
    """Raised inside a plan whose client went away: the thread stops at its next step."""


def plan_request(
    request: GenerationRequest,
    backend: EngineBackend,
    system: SystemDefaults,
    *,
    enforce_auto_tool_calls: bool,
    default_max_tokens: int | None,
    abandoned: threading.Event,
) -> CompletionPlan:
    """Everything decided before generation: validated schemas, the prompt, the grammar, the
    sampling budget (400s naming the client's parameters when something cannot be served)."""
    encoding = load_encoding()
    if not request.truncate:  # (one to truncate is measured part by part: fit_to_context)
        gate.check_context(request, encoding, backend.max_model_len)
    if request.tools:
        request = dataclasses.replace(request, tools=validate_schemas(request.tools))
    names = tool_names_for(request)
    # A backend that cannot compile grammars (remote replicas without a tokenizer) still
    # serves "auto": calls are then checked after generation instead.
    enforce = enforce_auto_tool_calls and backend.supports_grammar
    rules = None
    if hits_only():
        # On the loop (`plan_on_loop`): a grammar not cached yet is found before the render,
        # not after it (the executor then plans from the start). Its own 400, if any, waits
        # for the room check, as off the loop.
        with contextlib.suppress(InvalidRequest):
            rules = output_rules(request, names, enforce_auto=enforce)
    if abandoned.is_set():
        raise Abandoned()
    if request.truncate:  # (the oldest turns dropped if the answer would lack room)
        request, prompt = fit_to_context(
            request,
            lambda shorter: render_prompt(build_conversation(shorter, system, names)),
            backend.max_model_len,
            encoding,
            abandoned.is_set,
        )
    else:
        prompt = render_prompt(build_conversation(request, system, names))
    check_room(request, len(prompt), backend.max_model_len)  # (before any grammar is built)
    if abandoned.is_set():
        raise Abandoned()
    if rules is None:
        rules = output_rules(request, names, enforce_auto=enforce)
    sampling = sampling_config(
        request,
        prompt_tokens=len(prompt),
        max_model_len=backend.max_model_len,
        rules=rules,
        default_max_tokens=default_max_tokens,
    )
    return CompletionPlan(
        completion_id=request.completion_id,
        # Unique in the engine even if a client reuses its X-Request-Id concurrently.
        engine_request_id=f"{request.completion_id}-{secrets.token_hex(4)}",
        model=request.model,
        prompt_token_ids=prompt,
        sampling=sampling,
        rules=rules,
        names=names,
        stop_strings=tuple(s for s in request.stop if s),
        include_reasoning=request.include_reasoning,
    )


def plans_quickly(request: GenerationRequest, measured: gate.Measured) -> bool:
    """Is this request small enough to plan on the event loop (when its schema checks and
    grammar are cached: `plan_on_loop`)? `measured`: the gate's measure of it (its tools'
    sizes are not taken again)."""
    if request.past_calls() > INLINE_PAST_CALLS:
        return False  # each renders a header and registers a name: small texts, long prompt
    if len(request.tools) > INLINE_TOOLS:
        return False
    size = INLINE_PART_CHARS * len(request.parts)
    tool_chars = measured.tool_bytes
    for tool in request.tools:
        tool_chars += len(tool.namespace_description)
        if tool.grammar is not None:
            tool_chars += len(tool.grammar[1])
    size += INLINE_SCHEMA_WEIGHT * tool_chars
    if size > INLINE_RENDER_CHARS:
        return False
    if request.final_schema is not None:  # (in C; the gate walked only its depth)
        try:
            size += INLINE_SCHEMA_WEIGHT * len(orjson.dumps(request.final_schema))
        except (orjson.JSONEncodeError, TypeError):
            return False  # not JSON: let the executor's plan say why
        if size > INLINE_RENDER_CHARS:
            return False
    for text in request.texts():
        size += len(text)
        if size > INLINE_RENDER_CHARS:
            return False
    return True


def plan_on_loop(plan: Callable[[], CompletionPlan]) -> CompletionPlan | None:
    """`plan()` here, on the event loop, if nothing slow it needs is missing from the caches
    (None: something was; plan it in the executor). A request `plans_quickly` plans in under
    a millisecond; a miss is found before the render (schema checks first, then the grammar)
    and costs what was spent until then: tens to hundreds of microseconds."""
    with cache_hits_only():
        try:
            return plan()
        except NotCached:
            return None


class PlanExecutor:
    """A bounded thread pool for planning, apart from asyncio's default executor.

    Its threads run at a lower scheduling priority than the event loop's (Linux nice values
    are per thread): on a busy host the loop, which streams every other request, gets the CPU
    first, and a plan waits a little longer instead."""

    def __init__(self, workers: int) -> None:
        self._pool = concurrent.futures.ThreadPoolExecutor(
            max_workers=max(1, workers), thread_name_prefix="plan", initializer=_lower_priority
        )

    def submit(self, fn: Callable[[], T]) -> asyncio.Future[T]:
        return asyncio.get_running_loop().run_in_executor(self._pool, fn)

    def shutdown(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)


def _lower_priority() -> None:
    """Nice this thread by PLAN_NICENESS (where the platform allows it; a no-op elsewhere)."""
    with contextlib.suppress(AttributeError, OSError):
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), PLAN_NICENESS)


# How much lower than the loop's the plan threads' priority is (the check worker: +10).
PLAN_NICENESS = 5
