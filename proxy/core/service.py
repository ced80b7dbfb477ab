"""The generation service: one request's whole life behind `async with service.generate(...)`.

Every surface (chat, Responses) builds a `GenerationRequest` and writes:

    async with service.generate(record, disconnected) as generation:
        request = ...                        # the wire request read into the neutral one
        run = await generation.open(request) # gate, admission, plan, first token
        ...                                  # stream (generation.streamed()) or fold

and the `async with` owns everything that used to be done by hand in each surface: the cost
gate (proxy/core/gate.py) before any work; refusing while draining or loading; the admission
slot (and the drain's in-flight count) and its release; planning (schema validation, the
Harmony render, the grammar) in a bounded executor of its own; starting the engine; closing the
run (which aborts an unfinished engine request); and recording the outcome once, in metrics and
the request log (proxy/core/outcome.py), whether the request was refused, cut by a disconnect,
crashed or completed.

Planning (proxy/core/planning.py) runs on the loop for small requests, else in the plan
executor's threads. A request whose client disconnects during planning keeps its admission slot
until its thread has finished (so the concurrency limit bounds the work actually running), and
the thread gives up at its next step.

A response whose hosted tools (proxy/hosted/) ran takes several runs: `continue_with(request)`
closes the current run and starts the next in the same generation, on the same slot, and
everything recorded (usage, the usage hook, the request log) is the runs' sum.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, TypeVar

from proxy.backends.base import EngineBackend
from proxy.core import gate
from proxy.core.admission import Admission
from proxy.core.cache_salt import cache_salt
from proxy.core.caller import Caller
from proxy.core.coalesce import StreamInterval
from proxy.core.conversation import (
    SystemDefaults,
    load_encoding,
)
from proxy.core.errors import (
    EngineLoading,
    ModelNotFound,
)
from proxy.core.events import Usage
from proxy.core.loop_pressure import LoopPressure
from proxy.core.outcome import record_outcome, summed_usage
from proxy.core.planning import PlanExecutor, plan_on_loop, plan_request, plans_quickly
from proxy.core.request import GenerationRequest
from proxy.core.run import CompletionPlan, CompletionRun

if TYPE_CHECKING:
    from proxy.server.lifecycle import Lifecycle
    from proxy.server.metrics import ProxyMetrics
    from proxy.server.request_log import RequestRecord

T = TypeVar("T")

logger = logging.getLogger("proxy")


@dataclass(frozen=True)
class ServiceSettings:
    """What the service decides by (built from the server's settings)."""

    # Model ids accepted; empty: whatever the backend serves.
    served_model_names: tuple[str, ...] = ()
    system: SystemDefaults = field(default_factory=SystemDefaults)
    limits: gate.Limits = field(default_factory=gate.Limits)
    enforce_auto_tool_calls: bool = True
    default_max_tokens: int | None = None
    max_concurrent_requests: int | None = None
    max_queued_requests: int = 0
    queue_timeout_seconds: float = 30.0
    # Threads planning requests at once (render, schema checks, grammar compiles).
    plan_workers: int = 2
    request_log: bool = True
    # Floors of every stream's writes (proxy/core/coalesce.py); none by default.
    stream_interval: StreamInterval = field(default_factory=StreamInterval)
    # One prefix cache for every caller (`--shared-prefix-cache`); else each owner's own salt.
    shared_prefix_cache: bool = False


class ClientGone(Exception):
    """The client disconnected before its response was ready."""


class GenerationService:
    """Admission, planning, the engine run and outcome records, shared by every surface."""

    def __init__(
        self,
        settings: ServiceSettings,
        backend: EngineBackend,
        metrics: ProxyMetrics,
        lifecycle: Lifecycle,
        on_usage: Callable[[Caller, int], None] | None = None,
    ) -> None:
        """`on_usage(caller, tokens)` is told each settled generation's prompt plus completion
        tokens (the server's per-key token budget; the core knows nothing of it)."""
        self.settings = settings
        self.on_usage = on_usage
        self.backend = backend
        self.metrics = metrics
        self.lifecycle = lifecycle
        self.admission = Admission(
            settings.max_concurrent_requests,
            settings.max_queued_requests,
            settings.queue_timeout_seconds,
        )
        self.executor = PlanExecutor(settings.plan_workers)
        # The loop's backlog as a write floor; the server's lag monitor feeds it.
        self.pressure = LoopPressure()
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
        return list(self.settings.served_model_names) or [self.backend.model_name]

    def generate(
        self, record: RequestRecord, disconnected: Callable[[], Awaitable[object]]
    ) -> Generation:
        """One request's generation; use it as `async with`, reading the wire request into a
        `GenerationRequest` inside it (so its refusals are recorded too), then `open()` it.
        `disconnected()` returns when the client has gone away."""
        return Generation(self, record, disconnected)

    def plan(self, request: GenerationRequest, abandoned: threading.Event) -> CompletionPlan:
        """Everything decided before generation (proxy/core/planning.py)."""
        settings = self.settings
        return plan_request(
            request,
            self.backend,
            settings.system,
            enforce_auto_tool_calls=settings.enforce_auto_tool_calls,
            default_max_tokens=settings.default_max_tokens,
            abandoned=abandoned,
        )


class Generation:
    """One request: `open()` it inside `async with`; the exit closes and records it once.

    A streamed response takes the generation over with `streamed()`: the `async with` then
    leaves it open, and the response awaits the returned `close(completed)` when its stream
    ends, however it ends (including a client gone before the first event).
    """

    def __init__(
        self,
        service: GenerationService,
        record: RequestRecord,
        disconnected: Callable[[], Awaitable[object]],
    ) -> None:
        self.service = service
        self.request: GenerationRequest | None = None
        self.record = record
        self.run: CompletionRun | None = None
        # Every run of the response (more than one when hosted tools fed results back).
        self._runs: list[CompletionRun] = []
        self._disconnected = disconnected
        self._holds_slot = False
        self._slot_deferred = False  # an abandoned plan thread gives the slot back
        self._closed = False
        self._streamed = False
        # An outcome the surface decided itself (a refusal it answered as a 200 stream).
        self.settled: tuple[int, str | None, str | None] | None = None
        self._cleanups: list[Callable[[], Awaitable[None]]] = []

    async def __aenter__(self) -> Generation:
        return self

    async def __aexit__(self, exc_type: object, exc: BaseException | None, tb: object) -> None:
        if exc is None and self._streamed:
            return  # the streamed response closes it
        await asyncio.shield(self._close(completed=exc is None, error=exc))

    # -- opening ----------------------------------------------------------------------------
    async def open(self, request: GenerationRequest) -> CompletionRun:
        """Gate, admission, plan and the engine's first output; raises the refusal if any."""
        service = self.service
        self.request = request
        measured = gate.check_request(request, service.settings.limits)
        if request.model not in service.model_names():
            raise ModelNotFound(request.model)
        service.lifecycle.refuse_if_draining()
        if not (service.encoding_loaded and service.backend.ready):
            raise EngineLoading(service.unavailable_reason())
        self.run = await self.watch(self._admit_and_start(request, measured), service.lifecycle)
        return self.run

    async def still_wanted(self) -> bool:
        """Whether the finished result is still to be kept (stored, added to a conversation):
        always for a client's request; a background one asks its store whether it was
        cancelled or deleted meanwhile (proxy/api/responses/background_run.py)."""
        return True

    async def continue_with(self, request: GenerationRequest) -> CompletionRun:
        """The next run of the same response (a hosted tool's results fed back): the current
        run is closed, the admission slot kept, `request` gated and planned afresh, and the
        next run started. Usage is summed over the runs (`usage`, the usage hook, the request
        log). A drain's end still cuts it (the surface's own disconnect handling covers the
        client leaving: this is awaited inside the stream or the watched non-streamed turn)."""
        service = self.service
        if self.run is not None:
            await self.run.close()
        self.request = request
        measured = gate.check_request(request, service.settings.limits)
        # (A drain lets in-flight responses finish, their later rounds too, until it expires.)
        if not service.backend.ready:
            raise EngineLoading(service.unavailable_reason())
        return await self.until_drained(self._plan_and_start(request, measured))

    @property
    def runs(self) -> tuple[CompletionRun, ...]:
        """The response's runs so far, the current one last."""
        return tuple(self._runs)

    @property
    def usage(self) -> Usage | None:
        """The runs' usage summed; None until the last run's steps are exhausted."""
        return summed_usage(self._runs)

    async def until_drained(self, work: Awaitable[T]) -> T:
        """Await `work` (a hosted tool's run, the next round's planning), cancelling it when
        the drain's grace period ends (then the request gets the drain's error)."""
        lifecycle = self.service.lifecycle
        task = asyncio.ensure_future(work)
        expired = asyncio.ensure_future(lifecycle.expired.wait())
        try:
            await asyncio.wait({task, expired}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            expired.cancel()
            if not task.done():
                task.cancel()
                try:
                    await task
                except (asyncio.CancelledError, Exception):
                    pass
        if task.cancelled() or not task.done():
            raise lifecycle.interrupt_error()
        return task.result()

    async def _admit_and_start(
        self, request: GenerationRequest, measured: gate.Measured
    ) -> CompletionRun:
        service = self.service
        metrics = service.metrics
        metrics.queued.inc()
        try:
            await service.admission.acquire()
        finally:
            metrics.queued.dec()
        self._holds_slot = True
        service.lifecycle.opened()
        metrics.in_flight.inc()
        return await self._plan_and_start(request, measured)

    async def _plan_and_start(
        self, request: GenerationRequest, measured: gate.Measured
    ) -> CompletionRun:
        """Plan `request` (`measured` by the gate) and start its run (the slot is held). Every run is salted for the
        generation's caller here, whatever surface built it (proxy/core/cache_salt.py)."""
        service = self.service
        metrics = service.metrics
        salt = cache_salt(self.record.caller, shared=service.settings.shared_prefix_cache)
        request = dataclasses.replace(request, cache_salt=salt)
        abandoned = threading.Event()
        plan = None
        if plans_quickly(request, measured):
            plan = plan_on_loop(lambda: service.plan(request, abandoned))
        if plan is None:
            work = service.executor.submit(lambda: service.plan(request, abandoned))
            try:
                plan = await asyncio.shield(work)
            except asyncio.CancelledError:
                # The client left (or the drain expired) while the thread plans: it stops at
                # its next step, and the slot stays taken until it has.
                abandoned.set()
                self._slot_deferred = True
                work.add_done_callback(self._give_back_slot)
                raise
        lifecycle = service.lifecycle
        run = CompletionRun(
            plan,
            service.backend,
            load_encoding(),
            metrics,
            stop=lifecycle.expired,
            stop_error=lifecycle.interrupt_error,
            interval=service.settings.stream_interval,
            pressure=service.pressure,
        )
        self.run = run
        self._runs.append(run)
        await run.start()
        return run

    async def watch(self, work: Awaitable[T], lifecycle: Lifecycle | None = None) -> T:
        """Await `work`, cancelling it if the client disconnects first (uvicorn won't tell us),
        or when the drain's grace period ends (then the request gets a 503)."""
        task = asyncio.ensure_future(work)
        watchers = {asyncio.ensure_future(self._disconnected())}
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

    # -- handing over and closing -------------------------------------------------------------
    def streamed(self) -> Callable[[bool], Awaitable[None]]:
        """Hand the open generation to a streamed response; it awaits the returned
        `close(completed)` once, when the stream has ended."""
        self._streamed = True
        return self._close_stream

    def settle(self, status: int, *, finish: str | None = None, error: str | None = None) -> None:
        """Record this outcome instead of the one the exit would infer (a refusal the surface
        answered itself, e.g. as a failed stream)."""
        self.settled = (status, finish, error)

    def add_cleanup(self, cleanup: Callable[[], Awaitable[None]]) -> None:
        """Await `cleanup` when the generation closes, however it ends (refused, cut, streamed
        or not): a response's hosted tools release what they hold there."""
        self._cleanups.append(cleanup)

    async def _close_stream(self, completed: bool) -> None:
        if not completed:
            self.service.metrics.client_disconnects.inc()
        await self._close(completed=completed, error=None)

    async def _close(self, *, completed: bool, error: BaseException | None) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            if self.run is not None:
                await self.run.close()
        finally:
            if not self._slot_deferred:
                self._release()
            self._record(completed, error)
            for cleanup in self._cleanups:
                try:
                    await cleanup()
                except Exception:  # noqa: BLE001 - the response is settled; log and go on
                    logger.exception("a generation's cleanup failed")

    def _give_back_slot(self, work: asyncio.Future[object]) -> None:
        """The abandoned plan's thread has finished: its slot is free now."""
        if not work.cancelled():
            work.exception()  # (nobody reads its outcome; read it so asyncio does not log it)
        self._release()

    def _release(self) -> None:
        """Give back the admission slot and the in-flight count, once."""
        if not self._holds_slot:
            return
        self._holds_slot = False
        service = self.service
        service.admission.release()
        service.metrics.in_flight.dec()
        service.lifecycle.closed()

    def _record(self, completed: bool, error: BaseException | None) -> None:
        record_outcome(self, completed, error)
