"""Containers for the `python` tool: one stateful sandboxed REPL per container, owned by a caller.

gpt-oss's python tool is a stateful notebook: variables defined in one call are there in the
next. A container is that state: an id (`cntr_…`, as OpenAI's), its owner, and a sandboxed REPL
process (proxy/hosted/sandbox_process.py) started on its first cell and restarted, empty, after
a cell killed it. Containers belong to the owner that made them; another owner's id is answered
exactly as an unknown one. They expire after `idle_seconds` without a cell, and their number is
capped per owner and in all: making one past a cap retires the least recently used idle
container (the owner's own first), and when every container is busy the call says the
interpreter is at capacity.

What the model reads back is the cell's merged stdout and stderr (the last expression's value
shown as a notebook shows it), cut at `max_output_bytes` with a note saying so, followed by a
note when a limit stopped the cell: the wall-clock timeout (the sandbox is killed and its state
lost), a process killed by its CPU or memory limit, or code that exited the interpreter.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
import weakref
from dataclasses import dataclass, field

from proxy.hosted.sandbox_process import (
    CellOutput,
    IsolationUnavailable,
    ProcessLimits,
    ReplProcess,
    SandboxStartFailed,
)

logger = logging.getLogger("proxy")

__all__ = [
    "Execution",
    "IsolationUnavailable",
    "Sandbox",
    "SandboxFull",
    "SandboxSettings",
    "check_isolation",
    "shared_sandbox",
]


@dataclass(frozen=True)
class SandboxSettings:
    """The operator's limits for the code interpreter (`--code-interpreter-*`)."""

    process: ProcessLimits = field(default_factory=ProcessLimits)
    timeout_seconds: float = 30.0
    max_code_bytes: int = 64 * 1024
    max_output_bytes: int = 16 * 1024
    idle_seconds: float = 20 * 60.0
    max_per_owner: int = 4
    max_total: int = 32


@dataclass(frozen=True)
class Execution:
    """One cell's outcome: what the model reads, and whether a limit stopped it."""

    container_id: str
    output: str
    # Why the cell did not finish normally (None: it ran to its end, errors included).
    error: str | None = None


@dataclass(eq=False)
class _Container:
    id: str
    owner: str
    last_used: float
    process: ReplProcess | None = None
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    @property
    def busy(self) -> bool:
        return self.lock.locked()


class SandboxFull(Exception):
    """Every container is running a cell: none can be retired for a new one."""


class Sandbox:
    """The process's code-interpreter containers."""

    def __init__(self, settings: SandboxSettings) -> None:
        self.settings = settings
        self._containers: dict[str, _Container] = {}

    def owns(self, owner: str, container_id: str) -> bool:
        """Whether `container_id` is a live container of `owner` (another owner's: False)."""
        self._expire()
        found = self._containers.get(container_id)
        return found is not None and found.owner == owner

    def new_container(self, owner: str) -> str:
        """A fresh container's id (its process starts with its first cell); SandboxFull when
        a cap is reached and every container is busy."""
        self._make_room(owner)
        container = _Container("cntr_" + secrets.token_hex(24), owner, time.monotonic())
        self._containers[container.id] = container
        return container.id

    async def execute(self, owner: str, container_id: str, code: str) -> Execution:
        """Run one cell in the owner's container; a limit's stop is in the text, never raised."""
        self._expire()
        container = self._containers.get(container_id)
        if container is None or container.owner != owner:
            return Execution(
                container_id,
                f"[container {container_id} does not exist (it may have expired)]",
                error="container_not_found",
            )
        size = len(code.encode("utf-8", "replace"))
        if size > self.settings.max_code_bytes:
            return Execution(
                container_id,
                f"[not run: the code is {size} bytes; the limit is {self.settings.max_code_bytes}]",
                error="code_too_large",
            )
        async with container.lock:
            container.last_used = time.monotonic()
            if container.process is None or not container.process.alive:
                try:
                    container.process = await ReplProcess.start(self.settings.process)
                except (OSError, SandboxStartFailed):
                    # The host's trouble, not the code's: logged, and the model told so.
                    logger.exception("a python sandbox did not start")
                    return Execution(
                        container_id,
                        "[the python session could not be started; nothing was run]",
                        error="sandbox_failed",
                    )
            try:
                result = await container.process.run(
                    code,
                    timeout=self.settings.timeout_seconds,
                    max_output=self.settings.max_output_bytes,
                )
            except asyncio.CancelledError:
                # The response went away mid-cell: the cell must not run on unwatched (its
                # output would reach the next cell), so the sandbox goes with it.
                container.process.terminate()
                container.process = None
                raise
            container.last_used = time.monotonic()
            if not container.process.alive:
                container.process = None
        return _execution(container_id, result, self.settings.timeout_seconds)

    async def expire_forever(self) -> None:
        """Expire idle containers even when nobody uses the interpreter (a task per pool)."""
        while True:
            await asyncio.sleep(max(self.settings.idle_seconds / 4, 1.0))
            self._expire()

    async def aclose(self) -> None:
        """Kill every container's process (shutdown)."""
        containers, self._containers = list(self._containers.values()), {}
        await asyncio.gather(*(_stop(c) for c in containers))

    def _make_room(self, owner: str) -> None:
        self._expire()
        mine = [c for c in self._containers.values() if c.owner == owner]
        if len(mine) >= self.settings.max_per_owner:
            self._retire(mine)
        if len(self._containers) >= self.settings.max_total:
            # Only the owner's own idle containers give way: another key's state is not
            # this key's to destroy (full: the call fails and says so).
            self._retire([c for c in self._containers.values() if c.owner == owner])

    def _retire(self, candidates: list[_Container]) -> None:
        idle = [c for c in candidates if not c.busy]
        if not idle:
            raise SandboxFull
        self._drop(min(idle, key=lambda c: c.last_used))

    def _drop(self, container: _Container) -> None:
        """Forget a container; its process is killed in the background (nothing waits)."""
        del self._containers[container.id]
        if container.process is not None:
            task = asyncio.get_running_loop().create_task(_stop(container))
            _BACKGROUND.add(task)
            task.add_done_callback(_BACKGROUND.discard)

    def _expire(self) -> None:
        """Drop containers idle for longer than `idle_seconds` (checked on every use)."""
        cutoff = time.monotonic() - self.settings.idle_seconds
        for container in list(self._containers.values()):
            if not container.busy and container.last_used < cutoff:
                self._drop(container)


_BACKGROUND: set[asyncio.Task[None]] = set()
# One pool per event loop and settings: the sandboxes are processes of this server, shared by
# its requests (asyncio's subprocess objects belong to the loop that made them).
_POOLS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[SandboxSettings, Sandbox]] = (
    weakref.WeakKeyDictionary()
)


def shared_sandbox(settings: SandboxSettings) -> Sandbox:
    """This server's pool of containers for `settings` (made, with its expiry task, on first
    use)."""
    loop = asyncio.get_running_loop()
    pools = _POOLS.setdefault(loop, {})
    pool = pools.get(settings)
    if pool is None:
        pool = pools[settings] = Sandbox(settings)
        task = loop.create_task(pool.expire_forever())
        _BACKGROUND.add(task)  # type: ignore[arg-type]
        task.add_done_callback(_BACKGROUND.discard)  # type: ignore[arg-type]
    return pool


async def _stop(container: _Container) -> None:
    if container.process is not None:
        await container.process.kill()
        container.process = None


def _execution(container_id: str, result: CellOutput, timeout: float) -> Execution:
    """The text the model reads: the output, then what cut it short."""
    text = result.text
    notes: list[str] = []
    if result.dropped:
        notes.append(f"[output truncated: {result.dropped} more bytes not shown]")
    error = None
    if result.timed_out:
        error = "timeout"
        notes.append(
            f"[execution timed out after {timeout:g} seconds: the python session was stopped "
            "and its state is lost]"
        )
    elif result.exit_code is not None:
        error = "process_exited"
        notes.append(
            f"[the python process {_ending(result.exit_code)}: the session was restarted and "
            "its state is lost]"
        )
    if notes:
        text = (text + ("\n" if text and not text.endswith("\n") else "")) + "\n".join(notes)
    return Execution(container_id, text, error)


def _ending(code: int) -> str:
    if code == -24 or code == 128 + 24:
        return "was killed: CPU time limit exceeded"
    if code == -9 or code == 128 + 9:
        return "was killed (memory or process limit)"
    if code < 0:
        return f"was killed by signal {-code}"
    return f"exited with code {code}"


async def check_isolation(settings: SandboxSettings) -> None:
    """Start one sandbox and prove its isolation (no network, no host files, its limits);
    IsolationUnavailable naming what failed. Run at startup: the code interpreter fails
    closed."""
    # /etc exists on every host and is not bound into the sandbox: seeing it means the
    # host's tree is visible.
    probe = (
        "import os, socket, resource\n"
        "s = socket.socket()\n"
        "try:\n"
        "    s.connect(('127.0.0.1', 9)); net = 'open'\n"
        "except OSError:\n"
        "    net = 'closed'\n"
        "print(net, os.path.exists('/etc'), os.getcwd(), resource.getrlimit(resource.RLIMIT_AS)[0])\n"
    )
    try:
        process = await ReplProcess.start(settings.process)
    except (OSError, SandboxStartFailed) as exc:
        raise IsolationUnavailable(
            f"the sandbox could not start (it needs user, mount, pid and network namespaces): {exc}"
        ) from exc
    try:
        result = await process.run(probe, timeout=30.0, max_output=4096)
    finally:
        await process.kill()
    expected = f"closed False /mnt/data {settings.process.memory_bytes}"
    got = result.text.strip()
    if got != expected:
        raise IsolationUnavailable(
            "the sandbox did not start isolated (it needs user, mount, pid and network "
            f"namespaces): {got[-500:] or f'exit code {result.exit_code}'}"
        )
