"""A minimal keep-alive HTTP/1.1 client for streamed chat completions, to generate load cheaply.

Why it exists: on a small host the benchmark's clients compete with the server for the same
cores. httpx, a real client, spends about as much CPU per streamed token as the proxy does (it
parses every chunk and line), so with two cores there is no core left to show how the proxy
scales from one process to two. This client is an asyncio `Protocol`: each block the socket
delivers is counted and scanned in C (`bytes.count`, `in`), never parsed. It checks the status
and that the stream ended properly (the last chunk of the chunked encoding after
`data: [DONE]`), and reads the token count from the usage event, nothing else: the tests check
the content with the real clients (openai SDK, raw HTTP, agent frameworks).
"""

from __future__ import annotations

import asyncio
import re
import time
from dataclasses import dataclass, field

_USAGE = re.compile(rb'"completion_tokens":(\d+)')
_END = b"\r\n0\r\n\r\n"  # the last chunk of a chunked body, after the previous chunk's CRLF
_DONE = b"data: [DONE]\n\n\r\n0\r\n\r\n"


@dataclass
class RawResult:
    tokens: int  # from the usage event (the request must ask for it)
    ttfb: float  # request sent -> first byte of the body
    seconds: float
    events: int  # `data: ` lines seen (approximate: a line split across two reads is missed)
    done: bool  # the stream ended with `data: [DONE]`
    # Seconds between consecutive socket reads that carried events: the inter-token latency a
    # reader sees (one read per server write, unless the reader falls behind).
    gaps: list[float] = field(default_factory=list)


class StreamFailed(Exception):
    """Not a 200 chunked response, or the connection closed mid-stream."""


class _Exchange(asyncio.Protocol):
    """The connection's protocol; `begin()` arms it for the next response."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.finished: asyncio.Future[RawResult] | None = None
        self.lost = False
        # The response being read (reset by `begin`).
        self.started = 0.0
        self.head = b""  # the status line and headers, until their blank line
        self.in_body = False
        self.ttfb = 0.0
        self.events = 0
        self.tokens = 0
        self.last = b""  # the previous block, for an end marker split across two
        self.read_at = 0.0  # when the previous block with events came
        self.gaps: list[float] = []

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def begin(self, started: float) -> asyncio.Future[RawResult]:
        self.started, self.head, self.ttfb = started, b"", 0.0
        self.in_body, self.events, self.tokens, self.last = False, 0, 0, b""
        self.read_at, self.gaps = 0.0, []
        self.finished = asyncio.get_running_loop().create_future()
        return self.finished

    def data_received(self, data: bytes) -> None:
        if not self.in_body:
            self.head += data
            end = self.head.find(b"\r\n\r\n")
            if end < 0:
                return
            head, data = self.head[:end], self.head[end + 4 :]
            if not head.startswith(b"HTTP/1.1 200") or b"chunked" not in head.lower():
                self._fail(StreamFailed(head.decode(errors="replace").splitlines()[0]))
                return
            self.in_body = True
            if not data:
                return
        now = time.perf_counter()
        if not self.ttfb:
            self.ttfb = now - self.started
        events = data.count(b"data: ")
        if events:
            if self.read_at:
                self.gaps.append(now - self.read_at)
            self.read_at = now
        self.events += events
        if b'"completion_tokens"' in data:
            self.tokens = int(_USAGE.findall(data)[-1])
        tail = data if len(data) >= len(_DONE) else self.last[-len(_DONE) :] + data
        self.last = data
        if tail.endswith(_END) and self.finished is not None and not self.finished.done():
            self.finished.set_result(
                RawResult(
                    tokens=self.tokens,
                    ttfb=self.ttfb,
                    seconds=time.perf_counter() - self.started,
                    events=self.events,
                    done=tail.endswith(_DONE),
                    gaps=self.gaps,
                )
            )

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        self._fail(ConnectionError(f"closed mid-stream ({exc!r})"))

    def _fail(self, exc: Exception) -> None:
        if self.finished is not None and not self.finished.done():
            self.finished.set_exception(exc)


class RawConnection:
    """One keep-alive connection; `stream()` sends one request and reads its whole SSE body."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self._protocol: _Exchange | None = None

    async def stream(self, path: str, body: bytes) -> RawResult:
        """POST `body` (JSON) to `path`; reconnects once if the idle connection was closed."""
        request = (
            f"POST {path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
        ).encode() + body
        for attempt in range(2):
            if self._protocol is None or self._protocol.lost:
                loop = asyncio.get_running_loop()
                _, self._protocol = await loop.create_connection(_Exchange, self.host, self.port)
            protocol = self._protocol
            assert protocol.transport is not None
            finished = protocol.begin(time.perf_counter())
            protocol.transport.write(request)
            try:
                return await finished
            except ConnectionError as exc:
                fresh = not protocol.in_body  # an idle connection the server had closed
                await self.close()
                if attempt == 1 or not fresh:
                    raise StreamFailed(str(exc)) from exc
        raise AssertionError("unreachable")

    async def close(self) -> None:
        protocol, self._protocol = self._protocol, None
        if protocol is not None and protocol.transport is not None:
            protocol.transport.close()
