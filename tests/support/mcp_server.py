"""`python -m tests.support.mcp_server --port N --sse-port M`: a real MCP server for the tests.

The `mcp` package's own server (`MCPServer`, FastMCP's successor) over streamable HTTP at
`http://127.0.0.1:N/mcp` and over SSE at `http://127.0.0.1:M/sse`, run in its own process so
the proxy reaches it over real sockets as it would a remote server. Its tools:

* `add(a, b)`: the sum; `lookup(city)`: a fixed fact about a known city, a tool error
  (`is_error`) for any other: the two the hosted-tool tests call;
* `wait(seconds)`: answers after a delay (timeouts); `repeat(text, times)`: a large result
  (the result cap).

Besides MCP: `POST/GET /garbage` answers 200 with a body that is not JSON (a malformed server),
and `GET /seen` returns the `Authorization` and `X-Test` headers of the last MCP request
(what the proxy sent; the response never echoes them).
"""

from __future__ import annotations

import argparse
import asyncio
import json

import uvicorn
from mcp.server.mcpserver import MCPServer
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

CITIES = {"paris": "Paris is the capital of France.", "lima": "Lima is the capital of Peru."}

server = MCPServer("test-tools")
_seen: dict[str, str | None] = {"authorization": None, "x-test": None}


@server.tool()
def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


@server.tool()
def lookup(city: str) -> str:
    """A fact about a city."""
    fact = CITIES.get(city.strip().lower())
    if fact is None:
        raise ValueError(f"unknown city: {city}")
    return fact


@server.tool()
async def wait(seconds: float) -> str:
    """Answer after `seconds`."""
    await asyncio.sleep(seconds)
    return "done"


@server.tool()
def repeat(text: str, times: int) -> str:
    """`text` repeated `times` times."""
    return text * times


@server.custom_route("/garbage", methods=["GET", "POST"])
async def garbage(request: Request) -> Response:
    return Response(b'{"jsonrpc": "2.0", "res', media_type="application/json")


@server.custom_route("/hop/mcp", methods=["GET", "POST", "DELETE"])
async def hop(request: Request) -> Response:
    """A same-origin redirect to the real endpoint, out of the `/hop` prefix."""
    return RedirectResponse("/mcp", status_code=307)


@server.custom_route("/seen", methods=["GET"])
async def seen(request: Request) -> Response:
    return JSONResponse(_seen)


class _RecordHeaders:
    """Keep the headers of the last MCP request, for `GET /seen`."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"].startswith(("/mcp", "/sse", "/messages")):
            headers = {k.decode().lower(): v.decode() for k, v in scope["headers"]}
            for name in _seen:
                _seen[name] = headers.get(name)
        await self.app(scope, receive, send)


async def _serve(port: int, sse_port: int) -> None:
    streamable = uvicorn.Server(
        uvicorn.Config(
            _RecordHeaders(server.streamable_http_app()),
            host="127.0.0.1",
            port=port,
            log_level="warning",
        )
    )
    sse = uvicorn.Server(
        uvicorn.Config(
            _RecordHeaders(server.sse_app()), host="127.0.0.1", port=sse_port, log_level="warning"
        )
    )
    await asyncio.gather(streamable.serve(), sse.serve())


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--sse-port", type=int, required=True)
    args = parser.parse_args()
    print(json.dumps({"port": args.port, "sse_port": args.sse_port}), flush=True)
    asyncio.run(_serve(args.port, args.sse_port))


if __name__ == "__main__":
    main()
