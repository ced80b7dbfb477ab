"""A chat completions request -> the core's `GenerationRequest`, checked where chat names things.

Everything chat-specific is decided here, once: the fields this server refuses, content parts
(text only), the reasoning effort wherever a client puts it, tools and their `function` nesting,
`tool_choice` and `response_format` in chat's shapes, `stop` as a string or a list, and the
budget's name (`max_completion_tokens` wins over the deprecated `max_tokens`). What is left to
check (limits, the schemas, the context) is API-neutral and done by the core, which names the
parameters it refuses through `ParamNames` and each part's `source` (`messages[2]`).
"""

from __future__ import annotations

import dataclasses
from typing import Any

from proxy.api.chat_schema import (
    AssistantMessage,
    ChatCompletionRequest,
    Content,
    DeveloperMessage,
    NamedToolChoice,
    SystemMessage,
    UserMessage,
)
from proxy.core.conversation import (
    SystemDefaults,
    build_conversation,
    render_prompt,
    tool_names_for,
)
from proxy.core.errors import InvalidRequest
from proxy.core.gate import Limits, check_stop_count, count_limit
from proxy.core.request import (
    AssistantTurn,
    DeveloperText,
    GenerationRequest,
    Instructions,
    ParamNames,
    Part,
    PastCall,
    Sampling,
    ToolResult,
    UserText,
)
from proxy.core.tool_names import ToolNames
from proxy.core.tools import FunctionTool, check_name, function_tool, validate_schemas

# Fields that would change the answer if honoured; refusing beats silently ignoring them.
_REFUSED = {
    "functions": "The deprecated `functions` parameter is not supported; use `tools`.",
    "function_call": "The deprecated `function_call` parameter is not supported; use `tool_choice`.",
    "audio": "Audio output is not supported by this model.",
    "prediction": "Predicted outputs are not supported.",
    "web_search_options": "Web search is not supported on chat completions.",
}


def generation_request(
    body: ChatCompletionRequest,
    completion_id: str,
    *,
    refuse_reasoning: bool = False,
) -> GenerationRequest:
    """The neutral request for `body` (the service salts it for its caller); 400 for
    what chat completions cannot honour. `refuse_reasoning` (`--require-sealed-reasoning`):
    chat has no sealed form of reasoning, so an assistant message's reasoning is refused."""
    refuse_unsupported(body)
    tool_choice, named = _tool_choice(body)
    sampling = Sampling(
        max_tokens=body.max_completion_tokens or body.max_tokens,
        n=body.n,
        temperature=body.temperature,
        top_p=body.top_p,
        seed=body.seed,
        presence_penalty=body.presence_penalty,
        frequency_penalty=body.frequency_penalty,
        # 0 still returns the sampled token's own log-probability.
        logprobs=(body.top_logprobs or 0) if body.logprobs else None,
        top_k=body.top_k,
        min_p=body.min_p,
        repetition_penalty=body.repetition_penalty,
    )
    budget = "max_completion_tokens" if body.max_completion_tokens is not None else "max_tokens"
    extra = body.model_extra or {}
    metadata = extra.get("metadata")
    user = extra.get("user")
    return GenerationRequest(
        model=body.model,
        parts=tuple(_parts(body, refuse_reasoning)),
        tools=tuple(declared_tools(body)),
        tool_choice=tool_choice,
        named_tool=named,
        parallel_tool_calls=body.parallel_tool_calls,
        final_schema=_final_schema(body),
        reasoning_effort=_requested_effort(body),
        sampling=sampling,
        stop=_stop(body),
        include_reasoning=body.include_reasoning,
        stream=body.stream,
        metadata=metadata if isinstance(metadata, dict) else None,
        user=user if isinstance(user, str) else None,
        names=ParamNames(max_tokens=budget),
        completion_id=completion_id,
    )


def refuse_unsupported(request: ChatCompletionRequest) -> None:
    """400 for fields we cannot honour (unknown harmless fields like `user` are accepted)."""
    extra = request.model_extra or {}
    for name, message in _REFUSED.items():
        if extra.get(name) is not None:
            raise InvalidRequest(message, param=name)
    if extra.get("logit_bias"):
        raise InvalidRequest("logit_bias is not supported.", param="logit_bias")
    modalities = extra.get("modalities")
    if modalities and set(modalities) - {"text"}:
        raise InvalidRequest("Only text output is supported.", param="modalities")
    if request.ignore_eos:
        raise InvalidRequest(
            "ignore_eos is refused: Harmony ends messages with stop tokens, and generating past "
            "<|return|> produces output no client can parse.",
            param="ignore_eos",
        )
    if request.top_logprobs is not None and not request.logprobs:
        raise InvalidRequest("top_logprobs requires `logprobs: true`.", param="top_logprobs")


def _stop(request: ChatCompletionRequest) -> tuple[str, ...]:
    stop = request.stop
    if stop is None:
        return ()
    return (stop,) if isinstance(stop, str) else tuple(stop)


def _parts(request: ChatCompletionRequest, refuse_reasoning: bool = False) -> list[Part]:
    """The messages as conversation parts: the first system/developer message becomes the
    instructions, later ones developer messages in place."""
    parts: list[Part] = []
    for i, message in enumerate(request.messages):
        source = f"messages[{i}]"
        param = f"{source}.content"
        if isinstance(message, SystemMessage | DeveloperMessage):
            text = content_text(message.content, param)
            parts.append(Instructions(text, source) if i == 0 else DeveloperText(text, source))
        elif isinstance(message, UserMessage):
            parts.append(UserText(content_text(message.content, param), source))
        elif isinstance(message, AssistantMessage):
            reasoning = (
                message.reasoning if message.reasoning is not None else message.reasoning_content
            )
            if reasoning and refuse_reasoning:
                field = "reasoning" if message.reasoning is not None else "reasoning_content"
                raise InvalidRequest(
                    "This server accepts only reasoning it sealed, and chat completions has no "
                    f"sealed form of it: leave `{field}` out of assistant messages (or use the "
                    "Responses API's `encrypted_content`).",
                    param=f"{source}.{field}",
                    code="unsealed_reasoning",
                )
            calls = tuple(
                PastCall(call.id, call.function.name, call.function.arguments)
                for call in message.tool_calls or ()
            )
            # A Responses preamble (`phase: "commentary"`) stays commentary, not an answer.
            phase = (
                "commentary"
                if (message.model_extra or {}).get("phase") == "commentary"
                else "final"
            )
            parts.append(
                AssistantTurn(
                    source,
                    reasoning=reasoning,
                    text=content_text(message.content, param, allow_refusal=True),
                    phase=phase,
                    calls=calls,
                )
            )
        else:
            parts.append(
                ToolResult(
                    message.tool_call_id,
                    content_text(message.content, param),
                    source,
                    name=message.name,
                )
            )
    return parts


def _requested_effort(request: ChatCompletionRequest) -> str | None:
    """`reasoning_effort`, or OpenRouter's `reasoning: {"effort": ...}` that some clients send."""
    if request.reasoning_effort is not None:
        return request.reasoning_effort
    nested = (request.model_extra or {}).get("reasoning")
    if isinstance(nested, dict) and isinstance(nested.get("effort"), str):
        return nested["effort"]
    # Clients migrating from `vllm serve` pass it to the chat template.
    kwargs = request.chat_template_kwargs or {}
    if kwargs.get("reasoning_effort") is not None:
        if not isinstance(kwargs["reasoning_effort"], str):
            raise InvalidRequest(
                "chat_template_kwargs.reasoning_effort must be a string.",
                param="chat_template_kwargs.reasoning_effort",
            )
        return kwargs["reasoning_effort"]
    return None


def content_text(content: Content | None, param: str, *, allow_refusal: bool = False) -> str:
    """A string, or the concatenated text of a list of parts; any other part type is a 400."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    texts = []
    for j, part in enumerate(content):
        if part.type == "text" or (allow_refusal and part.type == "refusal"):
            texts.append(part.text if part.text is not None else getattr(part, "refusal", ""))
        else:
            raise InvalidRequest(
                f"Unsupported content part type {part.type!r}: this model reads text only.",
                param=f"{param}[{j}].type",
            )
    return "".join(t or "" for t in texts)


def declared_tools(request: ChatCompletionRequest) -> list[FunctionTool]:
    """The request's function tools in order; 400 for any that cannot be honoured."""
    tools: list[FunctionTool] = []
    seen: dict[str, int] = {}
    for i, tool in enumerate(request.tools or []):
        param = f"tools[{i}]"
        if tool.type != "function" or tool.function is None:
            raise InvalidRequest(
                f"Unsupported tool type {tool.type!r}: only function tools are supported.",
                param=f"{param}.type",
            )
        function = tool.function
        if function.name in seen:
            check_name(function.name, f"{param}.function.name")
            raise InvalidRequest(
                f"Duplicate tool name {function.name!r}: it is also tools[{seen[function.name]}]; "
                "each function must have a unique name.",
                param=f"{param}.function.name",
            )
        seen[function.name] = i
        tools.append(
            function_tool(
                function.name,
                function.description or "",
                function.parameters,
                strict=bool(function.strict),
                param=param,
                name_param=f"{param}.function.name",
                parameters_param=f"{param}.function.parameters",
            )
        )
    return tools


def _tool_choice(request: ChatCompletionRequest) -> tuple[str | None, str | None]:
    """(tool_choice, named tool): the core checks them against the tools."""
    choice = request.tool_choice
    if isinstance(choice, NamedToolChoice):
        if choice.type != "function" or choice.function is None:
            raise InvalidRequest(
                f"Unsupported tool_choice type {choice.type!r}: use none, auto, required or "
                '{"type": "function", "function": {"name": ...}}.',
                param="tool_choice",
            )
        return None, choice.function.name
    return choice, None


def _final_schema(request: ChatCompletionRequest) -> dict | None:
    fmt = request.response_format
    if fmt is None or fmt.type == "text":
        return None
    if fmt.type == "json_object":
        return {"type": "object"}
    if fmt.type == "json_schema":
        if fmt.json_schema is None or fmt.json_schema.json_schema is None:
            raise InvalidRequest(
                "response_format json_schema needs `json_schema.schema`.",
                param="response_format.json_schema.schema",
            )
        return fmt.json_schema.json_schema
    raise InvalidRequest(
        f"Unsupported response_format type {fmt.type!r}: use text, json_object or json_schema.",
        param="response_format.type",
    )


def chat_prompt(body: ChatCompletionRequest, system: SystemDefaults) -> tuple[list[int], ToolNames]:
    """The prompt tokens the server renders for `body`, and its tool-name map: what the demo
    model's training data and the tests render, by the server's own path."""
    wanted = generation_request(body, "chatcmpl-prompt")
    wanted = dataclasses.replace(wanted, tools=validate_schemas(wanted.tools))
    names = tool_names_for(wanted)
    return render_prompt(build_conversation(wanted, system, names)), names


def precheck_body(data: Any, limits: Limits) -> None:
    """The counts of the raw body, before a model is built for each message and call."""
    if not isinstance(data, dict):
        return
    messages = data.get("messages")
    if isinstance(messages, list):
        count_limit(len(messages), limits.max_messages, "messages", "messages")
        calls = sum(
            len(message["tool_calls"])
            for message in messages
            if isinstance(message, dict) and isinstance(message.get("tool_calls"), list)
        )
        count_limit(calls, limits.max_past_tool_calls, "past tool calls", "messages")
    tools = data.get("tools")
    if isinstance(tools, list):
        count_limit(len(tools), limits.max_tools, "tools", "tools")
    stop = data.get("stop")
    if isinstance(stop, list):
        check_stop_count(len(stop), limits, "stop")
