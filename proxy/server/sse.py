"""A completion run streamed as Server-Sent Events, for either API, with a once-only cleanup.

The events themselves are rendered by the API (proxy/api/chat_stream.py: `data: <chunk>` ...
`data: [DONE]`; proxy/api/responses/output.py: named `response.*` events) as ready SSE bytes.
After the first byte the HTTP status is fixed at 200, so an engine failure becomes an error
event in the stream, which each API ends in its own well-formed way. A client that goes away
cancels the stream wherever it waits; the response then closes the run (shielded from that
cancellation) so the engine aborts the request, however the stream ended, including a client
that left before the first event.

Why not sse-starlette's EventSourceResponse (which this replaced): per response it opens an
anyio task group with four tasks (stream, ping, shutdown listener, disconnect listener), an
anyio lock and event, and times every write with its own cancel scope. On the instant-backend
ceiling with 30-token answers its frames and anyio's were about a tenth of the server's
samples (py-spy and cProfile).
Here a response is the streaming task itself plus one task waiting for the client's
disconnect, and one timer that sends keep-alive pings and drops a client whose writes stalled
for `send_timeout`. The server's shutdown does not need a listener: the drain
(proxy/server/lifecycle.py) ends every stream with an error event first.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncGenerator, Awaitable, Callable
from datetime import UTC, datetime

import anyio
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

logger = logging.getLogger("proxy")


class LastWrite(bytes):
    """A stream's last bytes (chat's `[DONE]`, Responses' terminal event, Messages'
    `message_stop`): written with the end of the body, one socket write instead of two. It must
    be the source's last item."""


class SseStream:
    """The events of one streamed answer, and its once-only close.

    `close(completed)` is the generation's (proxy/core/service.py): it closes the run
    (aborting the engine request if unfinished), frees the slot and records the outcome.
    """

    def __init__(
        self, source: AsyncGenerator[bytes, None], *, close: Callable[[bool], Awaitable[None]]
    ) -> None:
        self.source = source  # the SSE bytes to write, in order
        self.completed = False  # set once `source` is exhausted (every event written)
        self._close = close
        self._cleaned = False

    async def cleanup(self) -> None:
        """Close the generation, once."""
        if self._cleaned:
            return
        self._cleaned = True
        await self._close(self.completed)


class SseResponse(Response):
    """`text/event-stream` of `stream`'s events, ending early when the client goes away.

    * Keep-alive: a `: ping - <time>` comment (or the API's own `ping_event`) after `ping`
      seconds without a write (0: never), so proxies in between do not time out a stream
      waiting for a slow first token.
    * Slow reader: a write that waits longer than `send_timeout` (the client's socket buffers
      are full) drops the client with one warning line; the generation is aborted.
    * Disconnect: `http.disconnect` cancels the stream wherever it waits (engine or socket).
    """

    media_type = "text/event-stream"

    def __init__(
        self,
        stream: SseStream,
        *,
        ping: float | None,
        send_timeout: float | None,
        ping_event: bytes | None = None,
    ) -> None:
        self.stream = stream
        self.ping = ping or 0.0
        # The keep-alive as the API writes it (Anthropic's `event: ping`); else a comment.
        self.ping_event = ping_event
        self.send_timeout = send_timeout
        self.status_code = 200
        self.background = None
        self.init_headers(
            {"Cache-Control": "no-cache", "X-Accel-Buffering": "no", "Connection": "keep-alive"}
        )
        self._writing_since: float | None = None  # loop time the write in progress began
        self._last_write = 0.0
        self._finished = False
        self._gone: str | None = None  # why the stream was cut: "disconnect" or "timeout"
        self._timer: asyncio.TimerHandle | None = None
        self._pinging: asyncio.Task[None] | None = None  # (held: the loop keeps tasks weakly)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        loop = asyncio.get_running_loop()
        task = asyncio.current_task()
        assert task is not None
        events = self.stream.source
        listener = loop.create_task(self._listen(receive, task))
        self._arm(loop, task, send)
        try:
            await send({"type": "http.response.start", "status": 200, "headers": self.raw_headers})
            ended = False
            async for chunk in events:
                self._writing_since = loop.time()
                if type(chunk) is LastWrite:
                    # The end of the body: no ping after it, and the disconnect the listener
                    # then sees is the response's own end (the write is still timed).
                    self._finished = ended = True
                    await send({"type": "http.response.body", "body": chunk, "more_body": False})
                    break
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
                self._writing_since = None
                self._last_write = loop.time()
            self.stream.completed = True
            if not ended:
                self._finished = True  # (no ping after the end; the last write is still timed)
                self._writing_since = loop.time()
                await send({"type": "http.response.body", "body": b"", "more_body": False})
        except asyncio.CancelledError:
            if self._gone is None or task.uncancel() > 0:
                raise  # not ours: the server is cancelling this request
            if self._gone == "timeout":
                logger.warning(
                    "dropped a client that stopped reading for %s s (generation aborted)",
                    self.send_timeout,
                )
        finally:
            self._finished = True
            listener.cancel()
            if self._timer is not None:
                self._timer.cancel()
            await events.aclose()
            with anyio.CancelScope(shield=True):
                await self.stream.cleanup()

    async def _listen(self, receive: Receive, task: asyncio.Task[None]) -> None:
        """Wait for the client to go away; then cut the stream."""
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                if not self._finished:
                    self._gone = "disconnect"
                    task.cancel()
                return

    def _arm(self, loop: asyncio.AbstractEventLoop, task: asyncio.Task[None], send: Send) -> None:
        """One timer per stream for both pings and the send timeout (none when both are off)."""
        periods = [p for p in (self.ping, (self.send_timeout or 0) / 4) if p > 0]
        if not periods:
            return
        period = min(periods)

        def tick() -> None:
            now = loop.time()
            since = self._writing_since
            if self.send_timeout and since is not None and now - since > self.send_timeout:
                self._gone = "timeout"
                task.cancel()
                return
            idle = since is None and now - self._last_write >= self.ping
            if self.ping and idle and not self._finished:
                self._last_write = now
                self._pinging = loop.create_task(self._send_ping(send))
            self._timer = loop.call_later(period, tick)

        self._last_write = loop.time()
        self._timer = loop.call_later(period, tick)

    async def _send_ping(self, send: Send) -> None:
        if self._finished or self._writing_since is not None:
            return
        comment = self.ping_event or f": ping - {datetime.now(UTC)}\n\n".encode()
        try:
            await send({"type": "http.response.body", "body": comment, "more_body": True})
        except Exception:  # noqa: BLE001 - the stream ended meanwhile; nothing to keep alive
            return


async def wait_for_disconnect(request: Request) -> None:
    """Return when the client has gone away (uvicorn tells only through `receive`)."""
    while (await request.receive())["type"] != "http.disconnect":
        pass
