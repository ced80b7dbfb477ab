"""What the model reads for an `mcp_call` item (no `mcp` client needed to render history)."""

from __future__ import annotations

from typing import Any


def read_back(item: dict[str, Any]) -> str:
    """What the model reads for an `mcp_call` item's `output` or `error`: the same text live
    and when the conversation is rendered again from the stored item."""
    error = item.get("error")
    if not error:
        return str(item.get("output") or "")
    if not isinstance(error, dict):
        return f"Error: {error}"
    if error.get("type") == "mcp_tool_execution_error":
        content = error.get("content")
        blocks = content if isinstance(content, list) else []
        texts = [str(b.get("text", "")) for b in blocks if isinstance(b, dict)]
        return "Error: " + "\n".join(texts)
    if error.get("type") == "mcp_protocol_error":
        return f"Error: MCP protocol error {error.get('code')}: {error.get('message')}"
    return f"Error: {error.get('message')}"
