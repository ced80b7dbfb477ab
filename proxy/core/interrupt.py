"""Ending a generation early from outside: the drain's end, or the engine's death.

`until_interrupted` wraps the engine's stream so that setting an event (the server's drain
grace period is over) cancels the wait on the engine and raises `Interrupted` carrying the
error the client is told; the run turns it into an error event and finish chunks
(proxy/core/run.py). The lifecycle that sets the event lives with the server
(proxy/server/lifecycle.py).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import TypeVar

from proxy.core.errors import ProxyError

T = TypeVar("T")


class Interrupted(Exception):
    """Raised into a generation that the drain (or engine death) had to cut short."""

    def __init__(self, error: ProxyError) -> None:
        super().__init__(error.message)
        self.error = error


async def until_interrupted(
    source: AsyncIterator[T],
    stop: asyncio.Event | None,
    error: Callable[[], ProxyError],
    *,
    first: T | None = None,
    check: Callable[[T], None] | None = None,
) -> AsyncIterator[T]:
    """Items of `source` until `stop` is set; then `source` is cancelled and Interrupted raised.

    `first`: an item already taken from `source` (the run waits for the engine's first output
    before it answers), yielded before the rest, even when `stop` is already set (as any item
    already read); `check` sees every later item (not `first`) before it is yielded, and may
    raise. Both save the caller a generator of its own around this one: every engine output
    passes through here.

    A wait on `source` is cancelled mid-wait when `stop` is set (which closes the engine stream
    and aborts the request), e.g. a slow reasoning step when the grace period ends. The source
    is awaited directly in the consuming task (no task and `asyncio.wait` per item: this runs
    once per engine step of every stream); one watcher per request cancels that task, only
    while it waits on the source, and the cancellation is turned into Interrupted.
    """
    if first is not None:
        yield first
    if stop is None:
        async for item in source:
            if check is not None:
                check(item)
            yield item
        return
    if stop.is_set():
        raise Interrupted(error())
    waiting: asyncio.Task[object] | None = None  # the task awaiting `source`, while it does
    interrupted = False

    def on_stop(_: object) -> None:
        nonlocal interrupted
        interrupted = True
        if waiting is not None:
            waiting.cancel()

    watcher = asyncio.ensure_future(stop.wait())
    watcher.add_done_callback(on_stop)
    # The task driving this generator (the response's, one per request), looked up once rather
    # than per item: on Python 3.11 every lookup of the running loop is a getpid() syscall.
    consumer = asyncio.current_task()
    try:
        while True:
            if interrupted:
                raise Interrupted(error())
            waiting = consumer
            try:
                item = await anext(source)
            except StopAsyncIteration:
                return
            except asyncio.CancelledError:
                # Ours (stop was set while waiting), unless someone else cancelled too.
                if interrupted and waiting is not None and waiting.uncancel() == 0:
                    raise Interrupted(error()) from None
                raise
            finally:
                waiting = None
            if check is not None:
                check(item)
            yield item
    finally:
        watcher.remove_done_callback(on_stop)
        watcher.cancel()
