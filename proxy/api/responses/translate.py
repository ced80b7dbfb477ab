"""A Responses request in chat form, and chat-form errors named in Responses terms.

The shared core (admission, conversation builder, grammar rules, sampling) reads a
`ChatCompletionRequest`; this module builds one from a Responses request (`tool_choice`,
`text.format`, `reasoning.effort`, `max_output_tokens`...) and maps the parameter a refusal
names back: `messages[3].content` -> `input[1].content`, `response_format` -> `text.format`.
"""

from __future__ import annotations

from typing import Any

from proxy.api.chat_schema import ChatCompletionRequest
from proxy.api.responses.schema import ResponsesRequest
from proxy.core.errors import InvalidRequest
from proxy.core.tools import FunctionTool


def chat_request(
    body: ResponsesRequest, messages: list[dict[str, Any]], tools: list[FunctionTool]
) -> ChatCompletionRequest:
    """The same request in chat form, for the shared checks, rendering, grammar and sampling."""
    fields: dict[str, Any] = {
        "model": body.model,
        "messages": messages,
        "max_completion_tokens": body.max_output_tokens,
        "temperature": body.temperature,
        "top_p": body.top_p,
        "seed": body.seed,
        "parallel_tool_calls": body.parallel_tool_calls,
        "tool_choice": _tool_choice(body.tool_choice, tools),
        "response_format": _response_format(body),
    }
    if body.reasoning is not None and body.reasoning.effort is not None:
        fields["reasoning_effort"] = body.reasoning.effort
    return ChatCompletionRequest.model_validate(fields)


def _tool_choice(choice: str | dict[str, Any] | None, tools: list[FunctionTool]) -> Any:
    if choice is None or isinstance(choice, str):
        if choice not in (None, "auto", "none", "required"):
            raise InvalidRequest(
                f"Unsupported tool_choice {choice!r}: use auto, none, required or a named tool.",
                param="tool_choice",
            )
        return choice
    kind = choice.get("type")
    if kind in ("function", "custom") and isinstance(choice.get("name"), str):
        name = choice["name"]
        namespace = choice.get("namespace")
        key = f"{namespace}.{name}" if isinstance(namespace, str) and namespace else name
        return {"type": "function", "function": {"name": key}}
    raise InvalidRequest(
        f"Unsupported tool_choice type {kind!r}: this server runs function and custom tools "
        'only (use auto, none, required, or {"type": "function", "name": ...}).',
        param="tool_choice",
    )


def _response_format(body: ResponsesRequest) -> dict[str, Any] | None:
    fmt = body.text.format if body.text is not None else None
    if fmt is None:
        return None
    kind = fmt.get("type")
    if kind in ("text", "json_object"):
        return {"type": kind}
    if kind == "json_schema":
        if not isinstance(fmt.get("schema"), dict):
            raise InvalidRequest(
                "text.format json_schema needs a `schema` object.", param="text.format.schema"
            )
        return {
            "type": "json_schema",
            "json_schema": {
                "name": fmt.get("name") or "response",
                "schema": fmt["schema"],
                "strict": fmt.get("strict"),
            },
        }
    raise InvalidRequest(
        f"Unsupported text.format type {kind!r}: use text, json_object or json_schema.",
        param="text.format.type",
    )


_CHAT_TO_RESPONSES = {
    "max_completion_tokens": "max_output_tokens",
    "reasoning_effort": "reasoning.effort",
    "response_format": "text.format",
    "response_format.json_schema.schema": "text.format.schema",
}


def chat_param_to_responses(param: str | None, sources: list[str]) -> str | None:
    """`messages[3].content` -> `input[1].content` (or `instructions`); chat names -> ours."""
    if param is None:
        return None
    if param.startswith("messages["):
        index, _, rest = param[len("messages[") :].partition("]")
        if index.isdigit() and int(index) < len(sources):
            source = sources[int(index)]
            return source + rest if source.startswith("input[") else source
        return "input"
    if param == "messages":
        return "input"
    if param.startswith("tools["):
        return param.replace(".function.", ".")
    if param in _CHAT_TO_RESPONSES:
        return _CHAT_TO_RESPONSES[param]
    if param.startswith("response_format"):
        return "text.format" + param[len("response_format") :].replace(".json_schema", "")
    return param


def validation_param(loc: tuple[Any, ...], sources: list[str]) -> str:
    """The Responses parameter behind a validation error of the chat form."""
    path = ""
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        elif part in ("json_schema",):
            continue
        else:
            path = f"{path}.{part}" if path else str(part)
    return chat_param_to_responses(path, sources) or "input"
