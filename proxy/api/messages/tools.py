"""Messages tools -> the core's `FunctionTool`s, and `tool_choice` in Anthropic's shapes.

Custom tools (`name`, `description`, `input_schema`, draft 2020-12 keywords included) are
function tools, validated as chat's. Server tools (`web_search_*`, `bash_*`, `text_editor_*`...)
are left out of the prompt, never a 400 (clients send them as a matter of course). A
`defer_loading` tool (Anthropic's tool search) is left out until a `tool_reference` block in a
tool result has loaded it, as Anthropic keeps it out of the context until then.
"""

from __future__ import annotations

from typing import Any

from proxy.api.messages.schema import CountTokensRequest
from proxy.core.errors import InvalidRequest
from proxy.core.tools import FunctionTool, function_tool


def loaded_tools(body: CountTokensRequest) -> set[str]:
    """Deferred tools a `tool_reference` block (Anthropic's tool search) has loaded."""
    loaded: set[str] = set()
    for message in body.messages:
        if isinstance(message.content, str):
            continue
        for block in message.content:
            inner = block.get("content") if isinstance(block, dict) else None
            for item in inner if isinstance(inner, list) else ():
                if isinstance(item, dict) and item.get("type") == "tool_reference":
                    loaded.add(str(item.get("tool_name")))
    return loaded


def read_tools(raw: list[dict[str, Any]] | None, loaded: set[str]) -> list[FunctionTool]:
    """The custom tools in order; server tools and unloaded deferred tools left out."""
    tools: list[FunctionTool] = []
    seen: dict[str, int] = {}
    for i, tool in enumerate(raw or []):
        param = f"tools.{i}"
        if not isinstance(tool, dict):
            raise InvalidRequest(f"{param}: Input should be an object", param=param)
        if tool.get("type") not in (None, "custom"):
            continue  # a server tool (web_search_..., bash_..., text_editor_...): not run here
        name = tool.get("name")
        if not isinstance(name, str):
            raise InvalidRequest(f"{param}.name: Field required", param=f"{param}.name")
        if name in seen:
            raise InvalidRequest(
                f"{param}.name: tool names must be unique ({name!r} is also tools.{seen[name]})",
                param=f"{param}.name",
            )
        seen[name] = i
        if tool.get("defer_loading") is True and name not in loaded:
            continue
        schema = tool.get("input_schema")
        if schema is None:
            raise InvalidRequest(
                f"{param}.input_schema: Field required", param=f"{param}.input_schema"
            )
        tools.append(
            function_tool(
                name,
                str(tool.get("description") or ""),
                schema,
                strict=bool(tool.get("strict")),
                param=param,
                name_param=f"{param}.name",
                parameters_param=f"{param}.input_schema",
            )
        )
    return tools


def tool_choice(choice: dict[str, Any] | None) -> tuple[Any, str | None, bool | None]:
    """(tool_choice, named tool, parallel tool calls)."""
    if choice is None:
        return None, None, None
    kind = choice.get("type")
    parallel = False if choice.get("disable_parallel_tool_use") is True else None
    if kind == "auto":
        return "auto", None, parallel
    if kind == "any":
        return "required", None, parallel
    if kind == "none":
        return "none", None, None
    if kind == "tool":
        name = choice.get("name")
        if not isinstance(name, str):
            raise InvalidRequest("tool_choice.name: Field required", param="tool_choice.name")
        return None, name, parallel
    raise InvalidRequest(
        f"tool_choice.type: Input should be 'auto', 'any', 'tool' or 'none' (got {kind!r})",
        param="tool_choice.type",
    )
