"""Reading an engine stream ahead, so a consumer can wait for its next chunk with a deadline.

A time floor on a stream's writes (proxy/core/coalesce.py) holds text back, and must write it
when the engine pauses (a slow step, a long tool-call header) rather than when the next chunk
happens to come. Cancelling the wait on an engine stream would close the stream (the
cancellation is thrown into the backend's generator), so the stream is read in one task per
run instead: chunks go into a queue, and the consumer waits on a future with one timer, never a
task or `wait_for` per chunk. The queue also tells what is ready without waiting, which the run
merges like chunks a backend marks `more_ready`; the chunks of one choice queued together are
handed over as one (one parse, one step for what would have been written together anyway).
Only runs with a time floor pay for this (an operator's, a request's, or the loop's own
backlog: proxy/core/loop_pressure.py); under the backlog's, not runs on an engine that hands
over what it made while unread as one output (`EngineBackend.merges_while_unread`: vLLM's
collector), which is simply read once per hold (proxy/core/pacing.py).

A *patient* wait (the loop's backlog) sleeps until its deadline while chunks pile up, rather
than waking the run for each: under that pressure a wake-up per token is the cost being cut. A
choice's first chunk, a chunk that finishes a choice, the end and an error still wake it at
once; a tool call's header is only known once parsed, so it waits for the deadline at most.

At most `MAX_QUEUED` chunks are read ahead: past that the reader waits for the run to take
them, so a client that stops reading still holds the engine stream back (the backpressure
the run's own reads gave) rather than having the whole completion buffered for it.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import AsyncIterator
from typing import Final

from proxy.backends.base import GenerationChunk

# Chunks read ahead at most (a real engine hands over one per step: seconds of output).
MAX_QUEUED = 256


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
        # The source ran to its end (not an error or a cancel): the engine has nothing left
        # to abort, even if the run stops before taking the END.
        self.exhausted = False
        self._waiter: asyncio.Future[None] | None = None
        self._patient = False  # the waiter wakes at its deadline or the end, not per chunk
        self._handed: set[int] = set()  # choices with a chunk handed over already
        self._room = asyncio.Event()  # set when the queue has room again
        self._task = self._loop.create_task(self._read(source))

    def ready(self) -> bool:
        """A chunk is queued: `next()` returns it without waiting."""
        return bool(self._queue)

    async def next(
        self, deadline: float | None, *, patient: bool = False
    ) -> GenerationChunk | _End | None:
        """The next chunk (a choice's queued chunks as one); END when the stream is exhausted;
        None when `deadline` (monotonic seconds) passed first. `patient`: with a deadline, wait
        for it even when chunks arrive meanwhile. The source's error is raised here."""
        while not self._queue:
            if self._error is not None:
                raise self._error
            if self._done:
                return self.END
            waiter = self._waiter = self._loop.create_future()
            self._patient = patient and deadline is not None
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
        return self._take()

    def _take(self) -> GenerationChunk:
        """The first queued chunk joined with the ones of its choice right after it."""
        queue = self._queue
        first = queue.popleft()
        self._handed.add(first.index)
        self._room.set()
        if not _joins(first, queue):
            return first
        tokens = list(first.token_ids)
        logprobs = list(first.logprobs) if first.logprobs is not None else None
        last = first
        while _joins(last, queue):
            last = queue.popleft()
            tokens += last.token_ids
            if last.logprobs is not None:
                if logprobs is None:
                    logprobs = []
                logprobs.extend(last.logprobs)
        return GenerationChunk(
            index=first.index,
            token_ids=tokens,
            finish_reason=last.finish_reason,
            stop_token_id=last.stop_token_id,
            cached_prompt_tokens=first.cached_prompt_tokens,
            logprobs=logprobs,
            more_ready=last.more_ready,
        )

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
                if self._waiter is not None and (
                    not self._patient
                    or chunk.finish_reason is not None
                    or chunk.index not in self._handed
                ):
                    _wake(self._waiter)
                while len(self._queue) >= MAX_QUEUED:
                    self._room.clear()
                    await self._room.wait()
            self.exhausted = True
        except asyncio.CancelledError:
            self._error = asyncio.CancelledError()
            raise
        except Exception as exc:  # noqa: BLE001 - handed to the consumer, raised in next()
            self._error = exc
        finally:
            self._done = True
            if self._waiter is not None:
                _wake(self._waiter)


def _joins(last: GenerationChunk, queue: deque[GenerationChunk]) -> bool:
    """Whether the next queued chunk continues `last` as one chunk: the same choice, `last`
    not finishing it, and logprobs that stay aligned with their tokens (both without, or both
    one per token)."""
    if not queue or last.finish_reason is not None:
        return False
    following = queue[0]
    if following.index != last.index:
        return False
    if last.logprobs is None and following.logprobs is None:
        return True
    return (
        last.logprobs is not None
        and following.logprobs is not None
        and len(last.logprobs) == len(last.token_ids)
        and len(following.logprobs) == len(following.token_ids)
    )


def _wake(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)
