"""A request's hosted tool entries -> its `HostedTools` (proxy/hosted/base.py).

Each hosted tool type has one opener: `async (tool, param, context) -> HostedToolset | None`,
given the raw entry (`tools[i]`), where it sits (`"tools[i]"`, for 400s naming its fields) and
the `HostedContext`. It raises `InvalidRequest` for an entry the server refuses (an MCP URL
outside the allowlist) and returns None for one left out of the prompt (a tool the operator
did not enable). Entries of other types are not hosted (functions, or tools ignored as before).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from proxy.core.errors import InvalidRequest
from proxy.core.tools import FunctionTool
from proxy.hosted.base import HostedContext, HostedTools, HostedToolset

Opener = Callable[[dict[str, Any], str, HostedContext], Awaitable[HostedToolset | None]]

# The tool types `_openers` opens: a request without any of them never imports their clients.
HOSTED_TYPES = frozenset(
    {
        "mcp",
        "code_interpreter",
        "web_search",
        "web_search_preview",
        "web_search_2025_08_26",
        "web_search_preview_2025_03_11",
    }
)


def _openers() -> dict[str, Opener]:
    """Tool type -> opener; one line per type (imported here: each pulls in its client).

    The first call imports `mcp` and the sandbox's and browser's modules, about half a second:
    the server calls `warm_up_hosted` at startup, in a thread, so that it never happens on the
    event loop (it held the first /v1/responses request's loop for 0.5-0.6 s)."""
    from proxy.hosted.browser import open_web_search
    from proxy.hosted.mcp_tools import open_mcp
    from proxy.hosted.python_tool import open_code_interpreter

    return {
        "mcp": open_mcp,
        "code_interpreter": open_code_interpreter,
        "web_search": open_web_search,
        "web_search_preview": open_web_search,
        "web_search_2025_08_26": open_web_search,
        "web_search_preview_2025_03_11": open_web_search,
    }


def warm_up_hosted() -> None:
    """Import the hosted tools' clients now (a thread at startup), not at a request."""
    _openers()


async def open_hosted(raw: Sequence[Any] | None, context: HostedContext) -> HostedTools:
    """The request's hosted toolsets, opened together (MCP servers are listed at once); if
    one is refused, those already open are closed before the 400."""
    if not any(isinstance(tool, dict) and tool.get("type") in HOSTED_TYPES for tool in raw or []):
        return HostedTools()
    openers = _openers()
    pending: list[Awaitable[HostedToolset | None]] = []
    for i, tool in enumerate(raw or []):
        if isinstance(tool, dict) and tool.get("type") in openers:
            pending.append(openers[tool["type"]](tool, f"tools[{i}]", context))
    if not pending:
        return HostedTools()
    results = await asyncio.gather(*pending, return_exceptions=True)
    opened = [r for r in results if r is not None and not isinstance(r, BaseException)]
    failure = next((r for r in results if isinstance(r, BaseException)), None)
    if failure is not None:
        await HostedTools(opened).aclose()
        raise failure
    return HostedTools(opened)


def check_collisions(functions: Sequence[FunctionTool], hosted: HostedTools) -> None:
    """A hosted tool named as a client function (or another hosted tool) is a 400: the
    model's call could not be told apart."""
    seen = {tool.key: tool.param for tool in functions}
    for tool in hosted.tools():
        if tool.key in seen:
            raise InvalidRequest(
                f"Tool name {tool.key!r} of {tool.param} is also {seen[tool.key]}: each tool "
                "must have a unique name (rename the function or the MCP server_label).",
                param=tool.param,
            )
        seen[tool.key] = tool.param
