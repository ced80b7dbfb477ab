"""A completion run as Server-Sent Events: `data: <chunk json>` ... `data: [DONE]`.

After the first byte the HTTP status is fixed at 200, so an engine failure becomes a
`data: {"error": {...}}` event, followed by the finish chunks and `[DONE]`, keeping the stream
well-formed for every client. A client that goes away cancels this generator; the run is closed
(shielded from that cancellation) so the engine aborts the request.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable

import anyio

from proxy.completion import CompletionRun, StreamError
from proxy.metrics import ProxyMetrics

DONE = "[DONE]"


async def sse_events(
    run: CompletionRun,
    *,
    include_usage: bool,
    metrics: ProxyMetrics,
    on_done: Callable[[bool], None],
) -> AsyncIterator[dict[str, str]]:
    """SSE events for sse-starlette; `on_done(completed)` runs once, however the stream ends."""
    completed = False
    try:
        async for item in run.chunks():
            if isinstance(item, StreamError):
                yield {"data": json.dumps(item.error.body(), ensure_ascii=False)}
            elif item.choices:
                yield {"data": item.to_json(with_usage_field=include_usage)}
            elif include_usage:
                yield {"data": item.to_json(with_usage_field=True)}
        yield {"data": DONE}
        completed = True
    except (asyncio.CancelledError, GeneratorExit):
        metrics.client_disconnects.inc()
        raise
    finally:
        with anyio.CancelScope(shield=True):
            await run.close()
        on_done(completed)
