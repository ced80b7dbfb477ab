"""An `mcp` tool entry as a hosted toolset: its server's tools declared, listed and called.

Opening (`open_mcp`) reads the entry (proxy/hosted/mcp_entry.py: allowlist, headers, filters),
then finds the server's tools: from an `mcp_list_tools` item the conversation already holds
for the label (as OpenAI does: a conversation lists a server once), else from this process's
listing cache (`LIST_TTL_SECONDS`, keyed by URL and headers: another key's headers may see other
tools), else by listing the server, which adds an `mcp_list_tools` output item. A listing that
fails is that item with its `error`, and the response goes on without the server's tools.

The tools are declared to the model as a Harmony namespace named for `server_label`
(`namespace my_server { type add = ... }`), so the model calls `my_server.add`; at most
`MAX_LISTED_TOOLS`, those `allowed_tools` lets through, each with a valid name and schema (a
tool the server describes badly is left out rather than failing the request). A result longer
than `MAX_RESULT_CHARS` is cut, and says so, before the model reads it.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import secrets
import time
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

from proxy.core.errors import InvalidRequest
from proxy.core.tools import FunctionTool, function_tool, validate_schemas
from proxy.hosted.base import HostedCall, HostedContext, HostedResult, Item, ItemEvents
from proxy.hosted.mcp_client import (
    CallOutcome,
    ListedTool,
    McpFailure,
    call_tool,
    list_tools,
)
from proxy.hosted.mcp_entry import McpEntry, McpServerAddress, read_entry
from proxy.hosted.mcp_items import read_back

logger = logging.getLogger("proxy")

LIST_TTL_SECONDS = 300.0
MAX_LISTED_TOOLS = 64
MAX_RESULT_CHARS = 16_000
_CACHE_ENTRIES = 256


class _Listings:
    """Servers' tool listings, kept `LIST_TTL_SECONDS` (at most `_CACHE_ENTRIES`, oldest out)."""

    def __init__(self) -> None:
        self._entries: OrderedDict[str, tuple[float, list[ListedTool]]] = OrderedDict()

    @staticmethod
    def key(address: McpServerAddress) -> str:
        return hashlib.sha256(repr((address.url, address.headers)).encode()).hexdigest()

    def get(self, key: str) -> list[ListedTool] | None:
        found = self._entries.get(key)
        if found is None or found[0] < time.monotonic():
            self._entries.pop(key, None)
            return None
        return found[1]

    def put(self, key: str, tools: list[ListedTool]) -> None:
        self._entries[key] = (time.monotonic() + LIST_TTL_SECONDS, tools)
        self._entries.move_to_end(key)
        while len(self._entries) > _CACHE_ENTRIES:
            self._entries.popitem(last=False)


LISTINGS = _Listings()


class McpToolset:
    """One MCP server's tools in one response (a `HostedToolset`)."""

    item_type = "mcp_call"
    id_prefix = "mcp"
    events = ItemEvents("response.mcp_call", "response.mcp_call_arguments")

    def __init__(
        self, entry: McpEntry, tools: Sequence[FunctionTool], leading: list[Item], timeout: float
    ) -> None:
        self.entry = entry
        self._tools = tuple(tools)
        self._names = {tool.key: tool.name for tool in self._tools}
        self._leading = leading
        self._timeout = timeout

    @property
    def label(self) -> str:
        return self.entry.label

    def tools(self) -> tuple[FunctionTool, ...]:
        return self._tools

    def owns(self, key: str) -> bool:
        return key in self._names

    def leading_items(self) -> list[Item]:
        return self._leading

    def start_item(self, call: HostedCall) -> Item:
        return {
            "server_label": self.label,
            "name": self._names[call.key],
            "approval_request_id": None,
            "error": None,
            "output": None,
        }

    def needs_approval(self, key: str) -> bool:
        return self.entry.needs_approval(self._names[key])

    async def run(self, call: HostedCall) -> HostedResult:
        try:
            arguments = json.loads(call.arguments or "{}")
        except ValueError:
            arguments = None
        if not isinstance(arguments, dict):
            message = "the arguments are not a JSON object"
            fields = {"error": {"type": "mcp_protocol_error", "code": -32602, "message": message}}
            return HostedResult(read_back(fields), fields, message)
        outcome = await call_tool(
            self.entry.address, self._names[call.key], arguments, self._timeout
        )
        if isinstance(outcome, McpFailure):
            fields = {"error": outcome.error}
            return HostedResult(read_back(fields), fields, outcome.message)
        text = _result_text(outcome)
        if outcome.is_error:
            content = [{"type": "text", "text": text}]
            fields = {"error": {"type": "mcp_tool_execution_error", "content": content}}
            return HostedResult(read_back(fields), fields, text or "tool error")
        fields = {"output": text}
        return HostedResult(read_back(fields), fields)

    async def aclose(self) -> None:
        """Nothing held: each call had its own session (proxy/hosted/mcp_client.py)."""


async def open_mcp(tool: dict[str, Any], param: str, context: HostedContext) -> McpToolset:
    config = context.config
    entry = read_entry(tool, param, config.mcp_allow)
    timeout = config.mcp_timeout_seconds
    leading: list[Item] = []
    listed = listed_earlier(context.history, entry.label)
    if listed is None:
        key = LISTINGS.key(entry.address)
        listed = LISTINGS.get(key)
        error = None
        if listed is None:
            found = await list_tools(entry.address, timeout)
            if isinstance(found, McpFailure):
                listed, error = [], found.message
            else:
                listed = found
                LISTINGS.put(key, found)
        listed = _filtered(entry, listed)
        leading.append(_list_item(entry.label, listed, error))
    declared = await asyncio.to_thread(_declared, entry, _filtered(entry, listed))
    return McpToolset(entry, declared, leading, timeout)


def listed_earlier(history: Sequence[Item], label: str) -> list[ListedTool] | None:
    """The tools of the conversation's last successful `mcp_list_tools` for `label`."""
    for item in reversed(history):
        if item.get("type") != "mcp_list_tools" or item.get("server_label") != label:
            continue
        if item.get("error"):
            return None
        return [
            ListedTool(
                str(tool.get("name", "")),
                str(tool.get("description") or ""),
                tool.get("input_schema") if isinstance(tool.get("input_schema"), dict) else {},
                tool.get("annotations") if isinstance(tool.get("annotations"), dict) else None,
            )
            for tool in item.get("tools") or []
            if isinstance(tool, dict)
        ]
    return None


def _filtered(entry: McpEntry, tools: list[ListedTool]) -> list[ListedTool]:
    kept = [
        tool
        for tool in tools
        if (entry.allowed is None or tool.name in entry.allowed)
        and (not entry.read_only_only or (tool.annotations or {}).get("readOnlyHint") is True)
    ]
    return kept[:MAX_LISTED_TOOLS]


def _declared(entry: McpEntry, tools: list[ListedTool]) -> list[FunctionTool]:
    """The tools as the model sees them; one the server describes badly is left out."""
    declared = []
    for tool in tools:
        try:
            made = function_tool(
                tool.name,
                tool.description,
                tool.input_schema,
                strict=False,
                param=entry.param,
                name_param=f"{entry.param}.server_url",
                parameters_param=f"{entry.param}.server_url",
                namespace=entry.label,
                namespace_description=f"Tools of the MCP server {entry.label!r}.",
            )
            declared.extend(validate_schemas((made,)))
        except InvalidRequest as exc:
            logger.warning("MCP server %r: tool left out: %s", entry.label, exc.message)
    return declared


def _list_item(label: str, tools: list[ListedTool], error: str | None) -> Item:
    item: Item = {
        "id": f"mcpl_{secrets.token_hex(16)}",
        "type": "mcp_list_tools",
        "server_label": label,
        "tools": [
            {
                "name": tool.name,
                "description": tool.description,
                "input_schema": tool.input_schema,
                "annotations": tool.annotations,
            }
            for tool in tools
        ],
        "error": error,
    }
    return item


def _result_text(outcome: CallOutcome) -> str:
    """What the model reads: the text blocks, other blocks as JSON; cut at the cap."""
    pieces = [
        block["text"] if block.get("type") == "text" else json.dumps(block)
        for block in outcome.content
    ]
    text = "\n".join(pieces)
    if not pieces and outcome.structured is not None:
        text = json.dumps(outcome.structured)
    if len(text) > MAX_RESULT_CHARS:
        text = (
            text[:MAX_RESULT_CHARS]
            + f"\n[cut: the result was {len(text)} characters; the first {MAX_RESULT_CHARS} shown]"
        )
    return text
