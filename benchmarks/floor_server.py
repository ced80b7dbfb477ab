"""The floor under the proxy's ceiling: uvicorn streaming the proxy's own SSE bytes, no proxy.

`python benchmarks/floor_server.py --port N --events FILE` serves `POST /v1/chat/completions`
from a bare ASGI function (no FastAPI, no Starlette) under the same uvicorn stack the proxy runs
on (uvloop, httptools). FILE holds the events a proxy sent for the benchmark's two requests
(`bench_ceiling.py` captures them from the scripted server in the same run); each is written
with its own `send`, with a turn of the event loop between two events, as the proxy does.
What this server spends per token is the cost of the HTTP stack, the event loop and the socket
writes alone: the part of the proxy's CPU per token that no change to the proxy can remove.
"""

from __future__ import annotations

import argparse
import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any

import uvicorn

Scope = dict[str, Any]
Message = dict[str, Any]

HEADERS = [
    (b"content-type", b"text/event-stream; charset=utf-8"),
    (b"cache-control", b"no-cache"),
    (b"x-accel-buffering", b"no"),
]


async def answer_ready(send: Callable[[Message], Awaitable[None]]) -> None:
    """`GET /ready`: 200, for the benchmark's start-up wait."""
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"ok"})


async def read_body(receive: Callable[[], Awaitable[Message]]) -> bytes:
    """The whole request body, however many messages it came in."""
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            return body


def make_app(
    events: dict[str, list[bytes]],
) -> Callable[[Scope, Callable[[], Awaitable[Message]], Callable[[Message], Awaitable[None]]], Any]:
    async def app(
        scope: Scope,
        receive: Callable[[], Awaitable[Message]],
        send: Callable[[Message], Awaitable[None]],
    ) -> None:
        if scope["type"] != "http":
            return
        if scope["path"] == "/ready":
            await answer_ready(send)
            return
        body = await read_body(receive)
        stream = events["tools" if b'"tools"' in body else "answer"]
        await send({"type": "http.response.start", "status": 200, "headers": HEADERS})
        for event in stream:
            await send({"type": "http.response.body", "body": event, "more_body": True})
            await asyncio.sleep(0)
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--events", required=True, help="JSON: {answer: [event...], tools: [...]}")
    args = parser.parse_args()
    with open(args.events) as file:
        raw = json.load(file)
    events = {kind: [e.encode() for e in raw[kind]] for kind in ("answer", "tools")}
    uvicorn.run(
        make_app(events), host="127.0.0.1", port=args.port, log_level="warning", lifespan="off"
    )


if __name__ == "__main__":
    main()
