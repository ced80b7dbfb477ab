"""Admission control: at most N requests generating, a bounded FIFO queue, 429 beyond it.

Why: without a limit every request is rendered and sent to the engine at once; the engine then
queues them internally where the client cannot see it and where a burst grows memory and
latency for everyone. Here, past `max_concurrent` the request waits in a queue of at most
`max_queued` for up to `queue_timeout` seconds; past that it is refused at once with 429 and
`Retry-After`, which the OpenAI SDK retries with backoff. A request that leaves the queue (client
gone, server draining) gives its place up.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib

from proxy.core.errors import ProxyError, TooManyRequests


class Admission:
    """Slots for concurrent requests; `acquire()` waits in FIFO order, `release()` frees one."""

    def __init__(
        self,
        max_concurrent: int | None,
        max_queued: int = 0,
        queue_timeout: float = 30.0,
        retry_after_seconds: int = 1,
    ) -> None:
        self.max_concurrent = max_concurrent
        self.max_queued = max_queued
        self.queue_timeout = queue_timeout
        self.retry_after_seconds = retry_after_seconds
        self.active = 0
        self._waiters: collections.deque[asyncio.Future[None]] = collections.deque()

    @property
    def queued(self) -> int:
        return len(self._waiters)

    async def acquire(self) -> None:
        """Take a slot, waiting in the queue if allowed; raise TooManyRequests otherwise."""
        if self.max_concurrent is None or (self.active < self.max_concurrent and not self._waiters):
            self.active += 1
            return
        if len(self._waiters) >= self.max_queued:
            raise TooManyRequests(
                f"The server is at its limit of {self.max_concurrent} concurrent requests "
                f"and {self.max_queued} queued; retry after {self.retry_after_seconds} s.",
                self.retry_after_seconds,
            )
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            await asyncio.wait_for(asyncio.shield(waiter), self.queue_timeout)
        except BaseException as exc:
            if waiter.done() and not waiter.cancelled() and waiter.exception() is None:
                self.release()  # the slot was handed over just as we gave up: pass it on
            else:
                waiter.cancel()
                with contextlib.suppress(ValueError):
                    self._waiters.remove(waiter)
            if isinstance(exc, TimeoutError):
                raise TooManyRequests(
                    f"The request waited {self.queue_timeout:.0f} s for one of the server's "
                    f"{self.max_concurrent} slots; retry after {self.retry_after_seconds} s.",
                    self.retry_after_seconds,
                ) from None
            raise

    def release(self) -> None:
        """Free a slot: hand it straight to the oldest waiter, if any."""
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)  # the slot moves over; `active` is unchanged
                return
        self.active = max(0, self.active - 1)

    def reject_waiting(self, error: ProxyError) -> None:
        """Fail every queued request with `error` (the server is draining)."""
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_exception(error)
