"""A completion run streamed as Server-Sent Events, for either API, with a once-only cleanup.

The events themselves are rendered by the API (proxy/chat_render.py: `data: <chunk>` ...
`data: [DONE]`; proxy/responses/output.py: named `response.*` events) as ready SSE bytes.
After the first byte the HTTP status is fixed at 200, so an engine failure becomes an error
event in the stream, which each API ends in its own well-formed way. A client that goes away cancels the event generator; the run is
closed (shielded from that cancellation) so the engine aborts the request. `cleanup()` runs as
the response's background task too, for a client that left before the first event was sent
(the generator then never starts, and its `finally` would never run).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import anyio
from sse_starlette import EventSourceResponse
from sse_starlette.sse import SendTimeoutError
from starlette.types import Message, Receive, Scope, Send

from proxy.completion import CompletionRun
from proxy.metrics import ProxyMetrics

logger = logging.getLogger("proxy")


class SseStream:
    """The events of one streamed completion, and its once-only cleanup."""

    def __init__(
        self,
        run: CompletionRun,
        source: AsyncIterator[bytes],
        *,
        metrics: ProxyMetrics,
        on_done: Callable[[bool], None],
    ) -> None:
        self._run = run
        self._source = source
        self._metrics = metrics
        self._on_done = on_done
        self._completed = False
        self._cleaned = False

    async def events(self) -> AsyncIterator[bytes]:
        """SSE bytes for sse-starlette (which passes bytes through as they are)."""
        try:
            async for event in self._source:
                yield event
            self._completed = True
        finally:
            with anyio.CancelScope(shield=True):
                await self.cleanup()

    async def cleanup(self) -> None:
        """Close the run (aborting the engine request if unfinished) and report, once."""
        if self._cleaned:
            return
        self._cleaned = True
        await self._run.close()
        if not self._completed:
            self._metrics.client_disconnects.inc()
        self._on_done(self._completed)


class SseResponse(EventSourceResponse):
    """An SSE response that drops a client which stopped reading, with one warning line.

    A write that waits longer than `send_timeout` (the client's socket buffers are full) raises
    SendTimeoutError; the event generator is then closed, which aborts the generation. Letting
    the error escape would log it as an application crash.

    sse-starlette times each write with its own anyio cancel scope, which costs more than the
    rest of a token's trip (measured 8-17 us per event). Here one watchdog task per stream
    looks at the write in progress a few times per timeout instead: a write costs two
    attribute stores, and a stalled one is still cancelled within 1.25 timeouts.
    """

    _sending: tuple[asyncio.Task[Any], float] | None = None
    _timed_out = False
    _watchdog: asyncio.Task[None] | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        except SendTimeoutError:
            logger.warning(
                "dropped a client that stopped reading for %s s (generation aborted)",
                self.send_timeout,
            )
        finally:
            if self._watchdog is not None:
                self._watchdog.cancel()

    async def _send_with_timeout(self, send: Send, message: Message) -> None:
        if self.send_timeout is None:
            await send(message)
            return
        task = asyncio.current_task()
        assert task is not None
        if self._watchdog is None:
            self._watchdog = asyncio.create_task(self._watch(self.send_timeout))
        self._sending = (task, time.monotonic())
        try:
            await send(message)
        except asyncio.CancelledError:
            if not self._timed_out:
                raise
            task.uncancel()
            raise SendTimeoutError() from None
        finally:
            self._sending = None

    async def _watch(self, timeout: float) -> None:
        while True:
            await asyncio.sleep(timeout / 4)
            sending = self._sending
            if sending is not None and time.monotonic() - sending[1] > timeout:
                self._timed_out = True
                sending[0].cancel()
                return
