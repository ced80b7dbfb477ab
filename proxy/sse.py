"""A completion run streamed as Server-Sent Events, for either API, with a once-only cleanup.

The events themselves are rendered by the API (proxy/chat_render.py: `data: <chunk>` ...
`data: [DONE]`; proxy/responses/stream.py: named `response.*` events) as ready SSE bytes.
After the first byte the HTTP status is fixed at 200, so an engine failure becomes an error
event in the stream, which each API ends in its own well-formed way. A client that goes away cancels the event generator; the run is
closed (shielded from that cancellation) so the engine aborts the request. `cleanup()` runs as
the response's background task too, for a client that left before the first event was sent
(the generator then never starts, and its `finally` would never run).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable

import anyio
from sse_starlette import EventSourceResponse
from sse_starlette.sse import SendTimeoutError
from starlette.types import Receive, Scope, Send

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

    sse-starlette raises SendTimeoutError when a write waits longer than `send_timeout` (the
    client's socket buffers are full); the event generator has then been closed, which aborted
    the generation. Letting the error escape would log it as an application crash.
    """

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        except SendTimeoutError:
            logger.warning(
                "dropped a client that stopped reading for %s s (generation aborted)",
                self.send_timeout,
            )
