"""The process's life: serving, draining for a deploy, and exiting with a code a supervisor reads.

Why it exists: uvicorn's own SIGTERM handling closes the listening socket and cuts every open
SSE stream without an error event or `[DONE]`, which the OpenAI SDK reads as a normal end (a
silently truncated answer on every rolling deploy). Instead, the first SIGTERM/SIGINT starts a
drain while the server keeps listening:

1. `/ready` turns 503 at once (the load balancer stops routing here) and new requests get 503
   with `Retry-After` (clients retry on another replica); requests queued for admission too.
2. Requests in flight get `grace_seconds` to finish normally.
3. Streams still open then end with an error event, a finish chunk and `[DONE]`; non-streamed
   requests still waiting get a 503.
4. The server stops, the lifespan shuts the engine down, and the process exits 0.

An engine that dies (or fails to start) makes the process exit 1, as `vllm serve` does, so a
supervisor (Kubernetes, systemd, compose) restarts it. A second signal forces an immediate exit.

SIGHUP reloads what can change without a restart (the API key file): `Lifecycle.reload()` runs
the reloaders the app registered, on the loop, between requests.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import signal
import socket
import threading
from collections.abc import Callable
from types import FrameType

import uvicorn

from proxy.core.errors import ProxyError, ServerDraining

logger = logging.getLogger("proxy")


EXIT_OK = 0
EXIT_ENGINE_DEAD = 1


class Lifecycle:
    """Draining state, open-request count and the exit code, shared by the app and the CLI."""

    def __init__(
        self,
        *,
        grace_seconds: float = 30.0,
        farewell_seconds: float = 5.0,
        retry_after_seconds: int = 1,
    ) -> None:
        self.grace_seconds = grace_seconds
        # After the grace period: time for the cut-short requests to send their last events.
        self.farewell_seconds = farewell_seconds
        self.retry_after_seconds = retry_after_seconds
        self.draining = False
        self.exit_code: int | None = None
        self.open_requests = 0
        self._expired: asyncio.Event | None = None
        self._idle: asyncio.Event | None = None
        self._drain_task: asyncio.Task[None] | None = None
        # Set by whoever runs the server (the CLI): stop serving now.
        self.request_exit: Callable[[], None] | None = None
        # Set by the app: fail the requests queued for admission (they get the 503 at once).
        self.on_drain: Callable[[], None] | None = None
        # Added to by the app: what SIGHUP re-reads (the API key file).
        self.reloaders: list[Callable[[], object]] = []

    def reload(self) -> None:
        """SIGHUP: run every reloader; one that fails is logged and the others still run."""
        for reloader in self.reloaders:
            try:
                reloader()
            except Exception:  # noqa: BLE001 - a failed reload must not stop the server
                logger.exception("reload failed")

    # -- request accounting --------------------------------------------------------------
    @property
    def expired(self) -> asyncio.Event:
        """Set when the grace period is over: open generations must end now."""
        if self._expired is None:
            self._expired = asyncio.Event()
        return self._expired

    def _idle_event(self) -> asyncio.Event:
        if self._idle is None:
            self._idle = asyncio.Event()
            if self.open_requests == 0:
                self._idle.set()
        return self._idle

    def refuse_if_draining(self) -> None:
        if self.draining:
            raise ServerDraining(self.retry_after_seconds)

    def opened(self) -> None:
        self.open_requests += 1
        self._idle_event().clear()

    def closed(self) -> None:
        self.open_requests = max(0, self.open_requests - 1)
        if self.open_requests == 0:
            self._idle_event().set()

    def interrupt_error(self) -> ProxyError:
        if self.exit_code == EXIT_ENGINE_DEAD:
            from proxy.core.errors import EngineFailure

            return EngineFailure("the engine died; the server is restarting")
        return ServerDraining(self.retry_after_seconds)

    # -- drain ---------------------------------------------------------------------------
    def begin_drain(self, exit_code: int = EXIT_OK, grace_seconds: float | None = None) -> None:
        """Start draining on the running loop (idempotent; a later engine death keeps code 1)."""
        if exit_code != EXIT_OK:
            self.exit_code = exit_code
        elif self.exit_code is None:
            self.exit_code = EXIT_OK
        if self._drain_task is not None:
            return
        self.draining = True
        if self.on_drain is not None:
            self.on_drain()
        grace = self.grace_seconds if grace_seconds is None else grace_seconds
        self._drain_task = asyncio.get_running_loop().create_task(self._drain(grace))

    async def _drain(self, grace: float) -> None:
        idle = self._idle_event()
        logger.warning(
            "draining: %d request(s) open, %.0f s grace before they are cut short",
            self.open_requests,
            grace,
        )
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(idle.wait(), grace)
        if not idle.is_set():
            logger.warning("grace period over: ending %d open request(s)", self.open_requests)
            self.expired.set()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(idle.wait(), self.farewell_seconds)
        logger.warning("drained; stopping (exit code %s)", self.exit_code)
        if self.request_exit is not None:
            self.request_exit()

    async def wait_drained(self) -> None:
        """Tests: wait until the drain has run to the end."""
        if self._drain_task is not None:
            await asyncio.shield(self._drain_task)


# Net container allocations between the youngest generation's collections (Python: 700).
YOUNG_GC_THRESHOLD = 20_000


def freeze_startup_heap() -> None:
    """Hide everything allocated at startup from the garbage collector, as `vllm serve` does.

    Called by the CLI once the engine is ready. Modules, torch, the engine client and the token
    tables are hundreds of thousands of objects that live as long as the process; frozen, the
    oldest-generation collections that serving triggers (a pause for every stream at once) scan
    only what requests allocate. Not in `create_app`: tests start many apps in one process.

    Then the youngest generation is collected every `YOUNG_GC_THRESHOLD` net allocations
    rather than Python's 700: streaming allocates a few short-lived containers per token, most
    freed by their reference counts at once, and each young collection scans the requests' live
    objects again and again (about every 150 tokens at 700), promoting them into the middle
    generation, whose collections cost more. Timed with gc.callbacks at 32 streaming clients
    on the demo engine, 3,517 tokens: 24 young and 2 middle collections, 21.5 ms of CPU (about
    3% of the serving CPU), against one young collection of 5.1 ms at 20,000. Cyclic garbage
    waits longer for its collection: at most that many objects' worth, a few MB.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(YOUNG_GC_THRESHOLD, *gc.get_threshold()[1:])


class DrainingServer(uvicorn.Server):
    """uvicorn, with SIGTERM/SIGINT starting the drain instead of an immediate stop, and a main
    loop woken by its exit rather than polling for it.

    uvicorn's own main loop wakes every 100 ms to see whether `should_exit` was set (and
    refreshes the `Date` header every tenth time). On this 2-core VM each timer wake-up of a
    waiting loop costs about 180 µs of CPU (proxy/server/loop_lag.py): nine of them a second
    are an estimated 2% of the serving CPU at 32 streaming clients on the demo engine (about
    400 tokens/s at 0.18 ms of CPU each; estimated, not measured apart from the other changes).
    Here setting `should_exit` wakes the loop at once (from a signal handler or another thread
    too), and the loop otherwise wakes once a second, for the `Date` header."""

    def __init__(self, config: uvicorn.Config, lifecycle: Lifecycle) -> None:
        self._exit_wakeup: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        super().__init__(config)  # (sets `should_exit`: the property below)
        self.lifecycle = lifecycle
        lifecycle.request_exit = self._stop

    @property  # type: ignore[override]
    def should_exit(self) -> bool:
        return self._should_exit

    @should_exit.setter
    def should_exit(self, value: bool) -> None:
        self._should_exit = value
        wakeup, loop = self._exit_wakeup, self._loop
        if value and wakeup is not None and loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(wakeup.set)

    def _stop(self) -> None:
        self.should_exit = True

    async def main_loop(self) -> None:
        """uvicorn's `main_loop`, waiting for `should_exit` with a 1 s timeout instead of
        sleeping 100 ms at a time; `on_tick` with a multiple of 10 refreshes the `Date` header
        (and checks uvicorn's request limit), as uvicorn's tenth tick does."""
        self._exit_wakeup = wakeup = asyncio.Event()
        counter = 0
        while not await self.on_tick(counter):
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(wakeup.wait(), timeout=1.0)
            wakeup.clear()
            counter = (counter + 10) % 864000

    async def serve(self, sockets: list | None = None) -> None:  # type: ignore[type-arg]
        self._loop = loop = asyncio.get_running_loop()
        # SIGHUP reloads (its default action would end the process); only the main thread
        # may handle signals.
        hup = getattr(signal, "SIGHUP", None)
        if hup is not None and threading.current_thread() is threading.main_thread():
            loop.add_signal_handler(hup, self.lifecycle.reload)
        else:
            hup = None
        try:
            await super().serve(sockets)
        finally:
            if hup is not None:
                loop.remove_signal_handler(hup)

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        # Not recorded in `_captured_signals`: uvicorn would re-raise it after serving, and the
        # default SIGTERM action would turn our exit code 0 into 143.
        if self.lifecycle.draining or self._loop is None:
            logger.warning("second signal (%s): exiting at once", signal.Signals(sig).name)
            self.should_exit = True
            self.force_exit = True
            return
        self._loop.call_soon_threadsafe(self.lifecycle.begin_drain)


def run_server(
    app: object,
    lifecycle: Lifecycle,
    sockets: list[socket.socket] | None = None,
    **uvicorn_options: object,
) -> int:
    """Serve `app` until drained or the engine dies; the process's exit code.

    `sockets`: serve on these already-bound sockets (the workers of `serve --workers N`).
    uvicorn picks uvloop and httptools when they are installed (they are dependencies).
    """
    # uvicorn's own graceful timeout is only a backstop: by the time it applies, the drain has
    # already ended every request.
    uvicorn_options.setdefault("timeout_graceful_shutdown", lifecycle.farewell_seconds)
    config = uvicorn.Config(app, **uvicorn_options)  # type: ignore[arg-type]
    server = DrainingServer(config, lifecycle)
    try:
        server.run(sockets=sockets)
    finally:
        # Undo `freeze_startup_heap`: frozen objects are never collected, not even by the
        # interpreter's last collection at exit, so extension objects caught in reference
        # cycles outlive it. nanobind modules (Triton, which vLLM imports) then print a screen
        # of "nanobind: leaked N instances/types/functions!" on every stop.
        gc.unfreeze()
    if lifecycle.exit_code is None:  # uvicorn stopped on its own (e.g. the port was taken)
        return EXIT_ENGINE_DEAD if not server.started else EXIT_OK
    return lifecycle.exit_code
