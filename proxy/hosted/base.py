"""The contract between the Responses loop and the tools the proxy runs itself.

One hosted tool entry of a request (one `mcp` server, `code_interpreter`, `web_search`) becomes
one `HostedToolset`: it declares its functions to the model (`tools()`, plain `FunctionTool`s, a
namespace per toolset as Harmony has them), says which calls are its own (`owns`), builds the
output item a call is shown as, and runs calls. The loop (proxy/api/responses/turn.py) does the
rest for every toolset alike: it opens the item when the model starts the call, streams the
arguments under the item's own event names (`ItemEvents`), runs the finished calls (at once when
the model made several), completes the items, feeds the results back as Harmony tool messages
(`HostedResult.output`) and continues the response with the next run.

Toolsets are opened per request from the request's tool entries (`openers.py`), after the
request has been read and before generation, with a `HostedContext`; `aclose()` ends their
per-response resources (connections) when the generation closes, whatever way the response
ended (the endpoint registers it with `Generation.add_cleanup`).

What a toolset must never do is raise for a tool's own failure (a server down, a timeout, code
that crashed): the failure is the call's result, shown in its item (`HostedResult.error`,
`item_fields`) and told to the model, and the response goes on. Exceptions are for bugs.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from proxy.core.tools import FunctionTool

if TYPE_CHECKING:
    from proxy.server.settings import ProxyConfig

logger = logging.getLogger("proxy")

Item = dict[str, Any]


@dataclass(frozen=True)
class HostedCall:
    """A call the model made to a hosted tool."""

    # The model's call id (output item ids are the Responses layer's business).
    call_id: str
    # The declared tool key: "python", "browser.search", "<server_label>.<tool>".
    key: str
    # What the model wrote: JSON text for functions, code for python ("" while still streaming,
    # when `start_item` is asked).
    arguments: str


@dataclass
class HostedResult:
    """What running a call gave."""

    # What the model reads back (the Harmony tool message's text).
    output: str
    # Fields merged into the completed output item (e.g. mcp_call `output`/`error`,
    # code_interpreter_call `outputs`, web_search_call `action`).
    item_fields: Item = field(default_factory=dict)
    # Set when the call failed: the item ends `failed` (its `.failed` event where OpenAI has
    # one); a short message, for logs and the item.
    error: str | None = None


@dataclass(frozen=True)
class ItemEvents:
    """OpenAI's event names for one hosted item type, e.g. for MCP:
    `response.mcp_call.in_progress`, `response.mcp_call_arguments.delta` / `.done`
    (field `arguments`), `response.mcp_call.completed` / `.failed`."""

    # The item's own events' prefix: "response.mcp_call" -> `.in_progress`, `.completed`.
    item: str
    # The streamed arguments' prefix ("response.mcp_call_arguments",
    # "response.code_interpreter_call_code"); None: arguments are not streamed as events.
    arguments: str | None = None
    # The field holding the arguments, in the item and in the arguments' `.done` event:
    # "arguments" (mcp_call) or "code" (code_interpreter_call).
    arguments_field: str = "arguments"
    # Emitted once the call starts running: "interpreting", "searching"; None: nothing.
    working: str | None = None
    # Whether OpenAI has a `.failed` event for the item (else a failed call ends `.completed`,
    # its item saying what went wrong).
    failed_event: bool = True


@dataclass(frozen=True)
class HostedContext:
    """What opening a request's hosted tools may read."""

    # The server's configuration: each hosted tool reads its own flags from it.
    config: ProxyConfig
    # The caller's owner: state a tool keeps across requests (a python container) belongs to it.
    owner: str
    # The conversation the request continues (earlier responses' items, then this request's
    # input): MCP skips listing a server the conversation already listed.
    history: Sequence[Item] = ()


class HostedToolset(Protocol):
    """One hosted tool entry of a request (one `mcp` tool, `code_interpreter`, `web_search`)."""

    # The output item's type: "mcp_call" | "code_interpreter_call" | "web_search_call".
    item_type: str
    # The item id's prefix ("mcp", "ci", "ws").
    id_prefix: str
    events: ItemEvents

    def tools(self) -> tuple[FunctionTool, ...]:
        """How the toolset's functions are declared to the model."""
        ...

    def owns(self, key: str) -> bool:
        """Whether a call to tool `key` is this toolset's to run."""
        ...

    def leading_items(self) -> list[Item]:
        """Finished output items placed before the response's first run (MCP's
        `mcp_list_tools`; most toolsets: none). Each is shown with its type's
        `in_progress` and `completed` (or `failed`, when it has an `error`) events."""
        ...

    def start_item(self, call: HostedCall) -> Item:
        """The in-progress output item's own fields (not `id`, `type`, `status`, nor the
        arguments field, which the loop fills as they stream), e.g. `name`, `server_label`."""
        ...

    def needs_approval(self, key: str) -> bool:
        """Whether a call to `key` waits for the client's approval (MCP's
        `require_approval`): the response then ends with an approval request instead."""
        ...

    async def run(self, call: HostedCall) -> HostedResult:
        """Run one finished call; never raises for the tool's own failures."""
        ...

    async def aclose(self) -> None:
        """Release per-response resources; idempotent."""
        ...


class HostedTools:
    """The hosted toolsets of one response, found by the keys the model calls."""

    def __init__(self, toolsets: Sequence[HostedToolset] = ()) -> None:
        self.toolsets = tuple(toolsets)

    def __bool__(self) -> bool:
        return bool(self.toolsets)

    def tools(self) -> tuple[FunctionTool, ...]:
        return tuple(tool for toolset in self.toolsets for tool in toolset.tools())

    def owner_of(self, key: str) -> HostedToolset | None:
        """The toolset that runs calls to `key`; None: a client function (returned as today)."""
        for toolset in self.toolsets:
            if toolset.owns(key):
                return toolset
        return None

    def leading_items(self) -> list[Item]:
        return [item for toolset in self.toolsets for item in toolset.leading_items()]

    async def aclose(self) -> None:
        """Close every toolset, even when one fails to (that one is logged)."""
        results = await asyncio.gather(
            *(toolset.aclose() for toolset in self.toolsets), return_exceptions=True
        )
        for toolset, result in zip(self.toolsets, results, strict=True):
            if isinstance(result, Exception):
                logger.error(
                    "closing hosted toolset %s failed",
                    toolset.item_type,
                    exc_info=(type(result), result, result.__traceback__),
                )
            elif isinstance(result, BaseException):
                raise result
