"""Reading an engine stream ahead, so a consumer can wait for its next chunk with a deadline.

A time floor on a stream's writes (proxy/core/coalesce.py) holds text back, and must write it
when the engine pauses (a slow step, a long tool-call header) rather than when the next chunk
happens to come. Cancelling the wait on an engine stream would close the stream (the
cancellation is thrown into the backend's generator), so the stream is read in one task per
run instead: chunks go into a queue, and the consumer waits on a future with one timer, never a
task or `wait_for` per chunk. The queue also tells what is ready without waiting, which the run
merges like chunks a backend marks `more_ready`. Only runs with a time floor pay for this.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import AsyncIterator
from typing import Final

from proxy.backends.base import GenerationChunk


class _End:
    """The stream is exhausted."""


class ChunkReader:
    """`source` read ahead in its own task; `next(deadline)` the consumer's side."""

    END: Final = _End()

    def __init__(self, source: AsyncIterator[GenerationChunk]) -> None:
        self._loop = asyncio.get_running_loop()
        self._queue: deque[GenerationChunk] = deque()
        self._error: BaseException | None = None
        self._done = False
        self._waiter: asyncio.Future[None] | None = None
        self._task = self._loop.create_task(self._read(source))

    def ready(self) -> bool:
        """A chunk is queued: `next()` returns it without waiting."""
        return bool(self._queue)

    async def next(self, deadline: float | None) -> GenerationChunk | _End | None:
        """The next chunk; END when the stream is exhausted; None when `deadline` (monotonic
        seconds) passed first. The source's error is raised here."""
        while not self._queue:
            if self._error is not None:
                raise self._error
            if self._done:
                return self.END
            waiter = self._waiter = self._loop.create_future()
            timer = None
            if deadline is not None:  # (monotonic: the loop's own clock may be uvloop's)
                timer = self._loop.call_later(deadline - time.monotonic(), _wake, waiter)
            try:
                await waiter
            finally:
                self._waiter = None
                if timer is not None:
                    timer.cancel()
            if not self._queue and not self._done and self._error is None:
                return None  # woken by the timer
        return self._queue.popleft()

    async def close(self) -> None:
        """Stop reading (the run's close; the source is closed by its owner)."""
        if not self._task.done():
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task

    async def _read(self, source: AsyncIterator[GenerationChunk]) -> None:
        try:
            async for chunk in source:
                self._queue.append(chunk)
                if self._waiter is not None:
                    _wake(self._waiter)
        except asyncio.CancelledError:
            self._error = asyncio.CancelledError()
            raise
        except Exception as exc:  # noqa: BLE001 - handed to the consumer, raised in next()
            self._error = exc
        finally:
            self._done = True
            if self._waiter is not None:
                _wake(self._waiter)


def _wake(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)
