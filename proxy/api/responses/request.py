"""A Responses request -> the core's `GenerationRequest`, named in Responses terms.

Input items become conversation parts (proxy/api/responses/inputs.py), tools the core's tools
(proxy/api/responses/tools.py); this module reads the rest: `tool_choice` in its Responses
shapes (`{"type": "function", "name", "namespace"}`), `text.format`, `reasoning.effort`,
`max_output_tokens`, and gives the core the Responses names of what it may refuse
(`input`, `max_output_tokens`, `text.format`, `reasoning.effort`, `call_id`).
"""

from __future__ import annotations

from typing import Any

from proxy.api.responses.inputs import Item, to_parts
from proxy.api.responses.schema import ResponsesRequest
from proxy.core.errors import InvalidRequest
from proxy.core.gate import Limits, count_limit
from proxy.core.request import GenerationRequest, ParamNames, Sampling
from proxy.core.tools import FunctionTool

# Lengths of the identifiers a client attaches (the gate bounds `user` and `metadata`, echoed
# and stored with the response): OpenAI's limit on `safety_identifier` (accepted, not echoed);
# `prompt_cache_key` (echoed and stored) has no published one, so the gate's bound on `user`,
# which it replaces, holds.
MAX_SAFETY_IDENTIFIER_LENGTH = 64
MAX_PROMPT_CACHE_KEY_LENGTH = 256

NAMES = ParamNames(
    messages="input",
    max_tokens="max_output_tokens",
    reasoning_effort="reasoning.effort",
    output_format="text.format",
    tool_call_id="call_id",
)


def generation_request(
    body: ResponsesRequest,
    items: list[Item],
    history: list[Item],
    tools: list[FunctionTool],
    response_id: str,
) -> GenerationRequest:
    """The neutral request for `body` continuing `history` with `items` (the service salts it
    for its caller)."""
    for param, value, limit in (
        ("prompt_cache_key", body.prompt_cache_key, MAX_PROMPT_CACHE_KEY_LENGTH),
        ("safety_identifier", body.safety_identifier, MAX_SAFETY_IDENTIFIER_LENGTH),
    ):
        if value is not None and len(value) > limit:
            raise InvalidRequest(
                f"`{param}` is {len(value)} characters long; the limit is {limit}.",
                param=param,
                code="limit_exceeded",
            )
    history_param = "previous_response_id" if body.conversation is None else "conversation"
    parts = to_parts(history + items, body.instructions, len(history), history=history_param)
    if all(part.source == "instructions" for part in parts):
        raise InvalidRequest("`input` must hold at least one item.", param="input")
    choice, named = _tool_choice(body.tool_choice)
    effort = body.reasoning.effort if body.reasoning is not None else None
    return GenerationRequest(
        model=body.model,
        parts=tuple(parts),
        tools=tuple(tools),
        tool_choice=choice,
        named_tool=named,
        parallel_tool_calls=body.parallel_tool_calls,
        final_schema=_final_schema(body),
        reasoning_effort=effort,
        sampling=Sampling(
            max_tokens=body.max_output_tokens,
            temperature=body.temperature,
            top_p=body.top_p,
            seed=body.seed,
        ),
        stream=body.stream,
        truncate=body.truncation == "auto",
        affinity_key=body.prompt_cache_key,
        metadata=body.metadata,
        user=body.user,
        names=NAMES,
        completion_id=response_id,
    )


def _tool_choice(choice: str | dict[str, Any] | None) -> tuple[Any, str | None]:
    if choice is None or isinstance(choice, str):
        if choice not in (None, "auto", "none", "required"):
            raise InvalidRequest(
                f"Unsupported tool_choice {choice!r}: use auto, none, required or a named tool.",
                param="tool_choice",
            )
        return choice, None
    kind = choice.get("type")
    if kind in ("function", "custom") and isinstance(choice.get("name"), str):
        name = choice["name"]
        namespace = choice.get("namespace")
        key = f"{namespace}.{name}" if isinstance(namespace, str) and namespace else name
        return None, key
    if kind == "mcp" and isinstance(choice.get("server_label"), str):
        # One tool of an MCP server (its namespace); without `name`, any tool must be called.
        name = choice.get("name")
        if isinstance(name, str) and name:
            return None, f"{choice['server_label']}.{name}"
        return "required", None
    # gpt-oss's built-in tools (proxy/hosted/): a forced web search starts with a search.
    if kind == "code_interpreter":
        return None, "python"
    if kind in ("web_search", "web_search_preview", "web_search_preview_2025_03_11"):
        return None, "browser.search"
    raise InvalidRequest(
        f"Unsupported tool_choice type {kind!r}: this server runs function, custom, mcp, "
        "code_interpreter and web_search tools (use auto, none, required, or "
        '{"type": "function", "name": ...}).',
        param="tool_choice",
    )


def _final_schema(body: ResponsesRequest) -> dict[str, Any] | None:
    fmt = body.text.format if body.text is not None else None
    if fmt is None:
        return None
    kind = fmt.get("type")
    if kind == "text":
        return None
    if kind == "json_object":
        return {"type": "object"}
    if kind == "json_schema":
        if not isinstance(fmt.get("schema"), dict):
            raise InvalidRequest(
                "text.format json_schema needs a `schema` object.", param="text.format.schema"
            )
        for field, kind, label in (
            ("name", str, "string"),
            ("description", str, "string"),
            ("strict", bool, "boolean"),
        ):
            if fmt.get(field) is not None and not isinstance(fmt[field], kind):
                raise InvalidRequest(
                    f"Invalid request: Input should be a valid {label}.",
                    param=f"text.format.{field}",
                )
        return fmt["schema"]
    raise InvalidRequest(
        f"Unsupported text.format type {kind!r}: use text, json_object or json_schema.",
        param="text.format.type",
    )


def precheck_body(data: Any, limits: Limits) -> None:
    """The counts of the raw body, before the request model is built: input items (each a
    message, a call or a call's output) and tools (a namespace's members included)."""
    if not isinstance(data, dict):
        return
    items = data.get("input")
    if isinstance(items, list):
        most = None
        if limits.max_messages is not None and limits.max_past_tool_calls is not None:
            most = limits.max_messages + 2 * limits.max_past_tool_calls
        count_limit(len(items), most, "items", "input")
    tools = data.get("tools")
    if isinstance(tools, list):
        members = sum(
            len(tool["tools"])
            if isinstance(tool, dict) and isinstance(tool.get("tools"), list)
            else 1
            for tool in tools
        )
        count_limit(members, limits.max_tools, "tools", "tools")
