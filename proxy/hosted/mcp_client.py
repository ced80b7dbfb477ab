"""Talking to one MCP server with the official `mcp` client: list its tools, call one.

Every listing and call opens its own session (`mcp.Client` over streamable HTTP, or SSE for a
URL whose path ends in `/sse`, as MCP's SSE servers are mounted) and closes it before
returning. A session held across a response's rounds would have to be entered and left in
one task (anyio's task groups), which the concurrent calls of a round and a response's
cleanup cannot promise; a localhost handshake costs a few milliseconds against a round's
generation.

Failures are values, not exceptions: `McpFailure` carries the `mcp_call.error` object of
OpenAI's shape (`http_error` with a status, `mcp_protocol_error` with a JSON-RPC code,
`mcp_tool_execution_error` with the tool's content), so the loop shows it in the item and tells
the model, and the response goes on. Every request of a session (redirects, which the `mcp`
package keeps on the server's origin, and an SSE server's POST endpoint) must itself fall under
the `--mcp-allow` prefix, not only the URL the request named: a hook on the session's HTTP
client refuses anything else before it is sent (`http_error` 403).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import urlsplit

import httpx2
from mcp import Client
from mcp.client.sse import sse_client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client
from mcp.shared.exceptions import MCPError

from proxy.hosted.mcp_entry import McpServerAddress, url_allowed

logger = logging.getLogger("proxy")
T = TypeVar("T")

# Status codes shown for failures that had none: no connection, and no answer in time.
UNREACHABLE = 502
TIMED_OUT = 504


@dataclass(frozen=True)
class McpFailure:
    """Why a listing or call failed: `error` is the `mcp_call.error` object, `message` its
    one-line text (what the model and the `mcp_list_tools.error` read)."""

    error: dict[str, Any]
    message: str


@dataclass(frozen=True)
class ListedTool:
    name: str
    description: str
    input_schema: dict[str, Any]
    annotations: dict[str, Any] | None


@dataclass(frozen=True)
class CallOutcome:
    """A call the server answered: its content blocks as JSON, and whether it is an error."""

    content: list[dict[str, Any]]
    structured: Any
    is_error: bool


async def list_tools(
    server: McpServerAddress, timeout: float, page_cap: int = 20
) -> list[ListedTool] | McpFailure:
    """The server's tools (every page, up to `page_cap` pages), or why not."""

    async def fetch() -> list[ListedTool]:
        tools: list[ListedTool] = []
        async with _session(server, timeout) as client:
            cursor: str | None = None
            for _ in range(page_cap):
                page = await client.list_tools(cursor=cursor)
                for tool in page.tools:
                    annotations = tool.annotations
                    tools.append(
                        ListedTool(
                            tool.name,
                            tool.description or "",
                            dict(tool.input_schema),
                            annotations.model_dump(by_alias=True, exclude_none=True)
                            if annotations
                            else None,
                        )
                    )
                cursor = page.next_cursor
                if cursor is None:
                    break
        return tools

    return await _guarded(fetch(), timeout, server)


async def call_tool(
    server: McpServerAddress, name: str, arguments: dict[str, Any], timeout: float
) -> CallOutcome | McpFailure:
    """Call `name` with `arguments`: what the server answered, or why there is no answer."""

    async def fetch() -> CallOutcome:
        async with _session(server, timeout) as client:
            result = await client.call_tool(name, arguments)
        return CallOutcome(
            [block.model_dump(mode="json", exclude_none=True) for block in result.content],
            result.structured_content,
            result.is_error,
        )

    return await _guarded(fetch(), timeout, server)


class OutsideAllowlist(Exception):
    """A session's request left the `--mcp-allow` prefixes (a redirect, an SSE endpoint)."""


def _client_factory(allow: tuple[str, ...]) -> Callable[..., httpx2.AsyncClient]:
    """`create_mcp_http_client`, with every request checked against `allow` first."""

    async def within_allowlist(request: httpx2.Request) -> None:
        if allow and not url_allowed(str(request.url), allow):
            raise OutsideAllowlist(_origin(str(request.url)))

    def factory(
        headers: dict[str, str] | None = None,
        timeout: httpx2.Timeout | None = None,
        auth: httpx2.Auth | None = None,
    ) -> httpx2.AsyncClient:
        client = create_mcp_http_client(headers=headers, timeout=timeout, auth=auth)
        client.event_hooks["request"].append(within_allowlist)
        return client

    return factory


@asynccontextmanager
async def _session(server: McpServerAddress, timeout: float) -> AsyncIterator[Client]:
    headers = dict(server.headers)
    factory = _client_factory(server.allow)
    if server.sse:
        transport = sse_client(
            server.url,
            headers=headers,
            timeout=timeout,
            sse_read_timeout=timeout,
            httpx_client_factory=factory,
        )
    else:
        http = factory(headers=headers, timeout=httpx2.Timeout(timeout))
        transport = streamable_http_client(server.url, http_client=http)
    async with Client(transport, read_timeout_seconds=timeout) as client:
        yield client


async def _guarded(work: Awaitable[T], timeout: float, server: McpServerAddress) -> T | McpFailure:
    """`work`'s value, or its failure as an `McpFailure` (within `timeout` seconds in all)."""
    try:
        async with asyncio.timeout(timeout):
            return await work
    except TimeoutError:
        return _http(TIMED_OUT, f"the MCP server did not answer within {timeout:g} seconds")
    except Exception as exc:  # noqa: BLE001 - a remote server's failure is a result
        leaf = _leaf(exc)
        if isinstance(leaf, TimeoutError):
            return _http(TIMED_OUT, f"the MCP server did not answer within {timeout:g} seconds")
        if isinstance(leaf, OutsideAllowlist):
            return _http(403, "the MCP server sent the session outside the allowed URL prefix")
        if isinstance(leaf, MCPError):
            message = leaf.message.splitlines()[0] if leaf.message else "protocol error"
            return McpFailure(
                {"type": "mcp_protocol_error", "code": leaf.code, "message": message},
                f"MCP protocol error {leaf.code}: {message}",
            )
        if isinstance(leaf, httpx2.HTTPStatusError):
            status = leaf.response.status_code
            return _http(status, f"the MCP server answered HTTP {status}")
        if isinstance(leaf, httpx2.TransportError | OSError):
            return _http(UNREACHABLE, f"could not reach the MCP server ({type(leaf).__name__})")
        logger.warning(
            "MCP server %s failed: %s: %s", _origin(server.url), type(leaf).__name__, leaf
        )
        return McpFailure(
            {"type": "mcp_protocol_error", "code": -32603, "message": type(leaf).__name__},
            f"the MCP server's answer could not be read ({type(leaf).__name__})",
        )


def _http(code: int, message: str) -> McpFailure:
    return McpFailure({"type": "http_error", "code": code, "message": message}, message)


def _leaf(exc: BaseException) -> BaseException:
    """The first real error inside anyio's nested exception groups."""
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    return exc


def _origin(url: str) -> str:
    """The URL without path or credentials, for logs."""
    parts = urlsplit(url)
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{parts.hostname}{port}"
