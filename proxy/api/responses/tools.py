"""Responses tools -> the core's `FunctionTool`s: flat functions, namespaces, custom tools.

* `function` (flat: `name`, `description`, `parameters`, `strict`) is a function tool, validated
  exactly as chat's (proxy/core/tools.py: same 400s, naming `tools[i].parameters`).
* `namespace` (Codex CLI's `multi_agent_v1` with five functions) keeps its name: Harmony has
  namespaces natively, so it is rendered as its own `namespace name { ... }` block and the
  model calls `name.fn`, which comes back as a `function_call` with `namespace`.
* `custom` tools take plain text (Codex's `apply_patch`). Harmony has no freeform tools, so one
  is declared as a function whose description says its input is plain text, and its call's body
  follows the tool's `grammar` under the engine's grammar: a regex as is, a Lark grammar (Codex's
  `apply_patch`) converted to xgrammar's EBNF; one xgrammar cannot read (or a proxy without
  xgrammar) leaves the input free text (README, "Responses API").
* `mcp` tools are hosted: the proxy lists and calls their servers itself (proxy/hosted/:
  `open_hosted` makes them toolsets, declared as one namespace per `server_label`), so they
  are not read here.
* Built-in tool types this server does not run (`web_search`, `file_search`, `code_interpreter`,
  `computer_use_preview`, `image_generation`, `local_shell`...) are left out of the prompt:
  clients such as Codex send them with every request, and refusing would break them.
"""

from __future__ import annotations

from typing import Any

from proxy.core.errors import InvalidRequest
from proxy.core.tools import FunctionTool, function_tool

FREEFORM_NOTE = "Input: plain text (not JSON)."


def read_tools(raw: list[dict[str, Any]] | None) -> list[FunctionTool]:
    """The request's callable tools, in order; 400 for malformed function/namespace/custom."""
    tools: list[FunctionTool] = []
    seen: dict[str, str] = {}

    def add(tool: FunctionTool) -> None:
        if tool.key in seen:
            raise InvalidRequest(
                f"Duplicate tool name {tool.key!r}: it is also {seen[tool.key]}; each tool must "
                "have a unique name.",
                param=f"{tool.param}.name",
            )
        seen[tool.key] = tool.param
        tools.append(tool)

    for i, tool in enumerate(raw or []):
        param = f"tools[{i}]"
        if not isinstance(tool, dict) or not isinstance(tool.get("type"), str):
            raise InvalidRequest("Each tool must be an object with a `type`.", param=param)
        kind = tool["type"]
        if kind == "namespace":
            name = _string(tool, "name", param)
            if not name.strip():
                raise InvalidRequest("A namespace name must not be empty.", param=f"{param}.name")
            members = tool.get("tools")
            if not isinstance(members, list) or not members:
                raise InvalidRequest(
                    f"Namespace {name!r} needs a non-empty `tools` list.", param=f"{param}.tools"
                )
            for j, member in enumerate(members):
                where = f"{param}.tools[{j}]"
                if not isinstance(member, dict) or member.get("type") not in ("function", "custom"):
                    raise InvalidRequest(
                        "A namespace holds function and custom tools only.", param=f"{where}.type"
                    )
                add(_member(member, where, name, str(tool.get("description") or "")))
        elif kind in ("function", "custom"):
            add(_member(tool, param, None, ""))
        # Any other type is hosted (proxy/hosted/openers.py) or a built-in tool this server
        # does not run (not offered to the model).
    return tools


def _member(tool: dict[str, Any], param: str, namespace: str | None, ns_doc: str) -> FunctionTool:
    name = _string(tool, "name", param)
    description = str(tool.get("description") or "")
    if tool["type"] == "custom":
        fmt = tool.get("format")
        if fmt is not None and not isinstance(fmt, dict):
            raise InvalidRequest("`format` must be an object.", param=f"{param}.format")
        note = FREEFORM_NOTE
        grammar = None
        if isinstance(fmt, dict) and fmt.get("type") == "grammar":
            syntax, definition = fmt.get("syntax", "lark"), fmt.get("definition")
            if syntax not in ("lark", "regex") or not isinstance(definition, str):
                raise InvalidRequest(
                    "A custom tool's grammar needs `syntax` lark or regex and a string "
                    "`definition`.",
                    param=f"{param}.format",
                )
            grammar = (syntax, definition)
            note += f" It follows this {syntax} grammar:\n{definition}"
        return function_tool(
            name,
            f"{description}\n{note}".strip(),
            None,
            strict=False,
            param=param,
            name_param=f"{param}.name",
            parameters_param=f"{param}.format",
            namespace=namespace,
            namespace_description=ns_doc,
            freeform=True,
            grammar=grammar,
        )
    return function_tool(
        name,
        description,
        tool.get("parameters"),
        strict=bool(tool.get("strict")),
        param=param,
        name_param=f"{param}.name",
        parameters_param=f"{param}.parameters",
        namespace=namespace,
        namespace_description=ns_doc,
    )


def _string(tool: dict[str, Any], field: str, param: str) -> str:
    value = tool.get(field)
    if not isinstance(value, str):
        raise InvalidRequest(f"`{field}` must be a string.", param=f"{param}.{field}")
    return value
