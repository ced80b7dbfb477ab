"""A completion run as Server-Sent Events: `data: <chunk json>` ... `data: [DONE]`.

After the first byte the HTTP status is fixed at 200, so an engine failure becomes a
`data: {"error": {...}}` event, followed by the finish chunks and `[DONE]`, keeping the stream
well-formed for every client. A client that goes away cancels the event generator; the run is
closed (shielded from that cancellation) so the engine aborts the request. `cleanup()` runs as
the response's background task too, for a client that left before the first event was sent
(the generator then never starts, and its `finally` would never run).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable

import anyio

from proxy.completion import CompletionRun, StreamError
from proxy.metrics import ProxyMetrics

DONE = "[DONE]"


class SseStream:
    """The events of one streamed completion, and its once-only cleanup."""

    def __init__(
        self,
        run: CompletionRun,
        *,
        include_usage: bool,
        metrics: ProxyMetrics,
        on_done: Callable[[bool], None],
    ) -> None:
        self._run = run
        self._include_usage = include_usage
        self._metrics = metrics
        self._on_done = on_done
        self._completed = False
        self._cleaned = False

    async def events(self) -> AsyncIterator[dict[str, str]]:
        """SSE events for sse-starlette."""
        try:
            async for item in self._run.chunks():
                if isinstance(item, StreamError):
                    yield {"data": json.dumps(item.error.body(), ensure_ascii=False)}
                elif item.choices:
                    yield {"data": item.to_json(with_usage_field=self._include_usage)}
                elif self._include_usage:
                    yield {"data": item.to_json(with_usage_field=True)}
            yield {"data": DONE}
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
