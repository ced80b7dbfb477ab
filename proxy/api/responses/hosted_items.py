"""Hosted tools' items in a conversation: read from input, turned into Harmony, approvals run.

A conversation (a stored history, or input a stateless client replays, as the Agents SDK does)
holds `mcp_list_tools`, `mcp_call`, `mcp_approval_request` and `mcp_approval_response` items.
In the prompt (inputs.py `to_parts`): an `mcp_call` is the model's call to `label.name` and
the tool's answer (its output, or its error as the model read it: `read_back`); an approval
request is the call, whose answer is the `mcp_call` that ran it once approved (carrying its
`approval_request_id`) or, when refused, a tool message saying so; a listing is not in the
prompt (the tools are declared from the request's `tools`).

`run_approved` runs, before generation, the calls this request approves
(`{"type": "mcp_approval_response", "approval_request_id", "approve": true}`), whose
`mcp_call` items open the response's output, so the model continues from their results.
"""

from __future__ import annotations

import asyncio
import secrets
from typing import Any

from proxy.core.errors import InvalidRequest
from proxy.hosted.base import HostedCall, HostedTools

Item = dict[str, Any]

MCP_ITEM_TYPES = frozenset(
    {"mcp_list_tools", "mcp_call", "mcp_approval_request", "mcp_approval_response"}
)
# What the model reads for a call the client refused to approve.
DECLINED = "The user declined to run this tool call."


def normalise_mcp_item(kind: str, item: Item, param: str) -> Item:
    """An MCP item of the input, its fields checked (400 naming the field)."""

    def text(field: str, *, optional: bool = False) -> str | None:
        value = item.get(field)
        if value is None and optional:
            return None
        if not isinstance(value, str):
            raise InvalidRequest(f"`{field}` must be a string.", param=f"{param}.{field}")
        return value

    if kind == "mcp_approval_response":
        if not isinstance(item.get("approve"), bool):
            raise InvalidRequest("`approve` must be a boolean.", param=f"{param}.approve")
        return {
            "type": kind,
            "id": text("id", optional=True) or f"mcpa_{secrets.token_hex(16)}",
            "approval_request_id": text("approval_request_id"),
            "approve": item["approve"],
            "reason": text("reason", optional=True),
        }
    out: Item = {"type": kind, "id": text("id", optional=True) or f"mcp_{secrets.token_hex(16)}"}
    out["server_label"] = text("server_label")
    if kind == "mcp_list_tools":
        tools = item.get("tools")
        if not isinstance(tools, list) or not all(isinstance(t, dict) for t in tools):
            raise InvalidRequest("`tools` must be a list of objects.", param=f"{param}.tools")
        out["tools"] = tools
        out["error"] = text("error", optional=True)
        return out
    out["name"] = text("name")
    out["arguments"] = text("arguments")
    if kind == "mcp_call":
        out["approval_request_id"] = text("approval_request_id", optional=True)
        out["output"] = text("output", optional=True)
        error = item.get("error")
        if error is not None and not isinstance(error, dict | str):
            raise InvalidRequest("`error` must be an object.", param=f"{param}.error")
        out["error"] = error
        out["status"] = item.get("status") if isinstance(item.get("status"), str) else "completed"
    return out


# Approved calls one request may run (they run before the response's first round, at once).
MAX_APPROVED_CALLS = 16


async def run_approved(hosted: HostedTools, history: list[Item], items: list[Item]) -> list[Item]:
    """The `mcp_call` items of the calls this request's input approves, run (concurrently);
    400 for an approval of an unknown request or of a server not among the request's tools."""
    requests = {
        item["id"]: item for item in history + items if item["type"] == "mcp_approval_request"
    }
    answered = {
        item.get("approval_request_id")
        for item in history + items
        if item["type"] == "mcp_call" and item.get("approval_request_id")
    }
    wanted = []
    seen: set[str] = set()
    for i, item in enumerate(items):
        if item["type"] != "mcp_approval_response":
            continue
        request_id = item["approval_request_id"]
        if request_id in seen:
            continue  # (one approval runs its call once)
        seen.add(request_id)
        request = requests.get(request_id)
        if request is None:
            raise InvalidRequest(
                f"No mcp_approval_request with id {request_id!r} in this conversation.",
                param=f"input[{i}].approval_request_id",
            )
        if not item["approve"] or request_id in answered:
            continue
        key = f"{request['server_label']}.{request['name']}"
        toolset = hosted.owner_of(key)
        if toolset is None:
            raise InvalidRequest(
                f"The approved call is to {key!r}, but `tools` has no mcp tool with "
                f"server_label {request['server_label']!r} offering it.",
                param=f"input[{i}]",
            )
        wanted.append((request, HostedCall(request_id, key, request["arguments"]), toolset))
    if not wanted:
        return []
    if len(wanted) > MAX_APPROVED_CALLS:
        raise InvalidRequest(
            f"The input approves {len(wanted)} calls; at most {MAX_APPROVED_CALLS} approved "
            "calls run per request.",
            param="input",
        )
    results = await asyncio.gather(*(toolset.run(call) for _, call, toolset in wanted))
    out = []
    for (request, call, toolset), result in zip(wanted, results, strict=True):
        fields = toolset.start_item(call)
        out.append(
            {
                "id": f"{toolset.id_prefix}_{secrets.token_hex(16)}",
                "type": toolset.item_type,
                **fields,
                "arguments": call.arguments,
                "approval_request_id": request["id"],
                **result.item_fields,
                "status": "failed" if result.error else "completed",
            }
        )
    return out


def mcp_key(item: Item) -> str:
    """The tool key an MCP call or approval request is to: `label.name`."""
    return f"{item['server_label']}.{item['name']}"
