"""A Messages request -> the core's `GenerationRequest`, every refusal named Anthropic's way.

* `system` (a string or text blocks) is the developer `# Instructions`; a `role: "system"`
  message inside `messages` is a developer message where it stands.
* User content: text blocks are the user's text, `tool_result` blocks tool outputs (string or
  text blocks, `is_error`), matched to an earlier `tool_use` by `tool_use_id`. Images and
  documents are 400s: gpt-oss reads text only.
* Assistant content: `thinking` blocks are the analysis, restored from their `signature` (the
  analysis sealed by this server: proxy/core/sealing.py, purpose `anthropic thinking`), so the
  model keeps its chain of thought across a client's tool loop even when the client shows no
  thinking text (`display: "omitted"`); `text` blocks are the answer, or the preamble of the
  `tool_use` blocks that follow them.
* `tools` (tools.py): custom tools (`input_schema`); server tools (`web_search_*`, `bash_*`, ...) are left
  out, as for the Responses API; `defer_loading` tools only once a `tool_reference` loaded them.
* The reasoning level: `output_config.effort`, else `thinking` (`enabled` by `budget_tokens`,
  `disabled` low, since gpt-oss always reasons). `context_management`'s `clear_thinking` edit
  drops the analysis of all but the last turns it keeps.
"""

from __future__ import annotations

import json
from typing import Any

from proxy.api.messages.options import (
    clear_thinking,
    final_schema,
    reasoning_effort,
)
from proxy.api.messages.schema import CountTokensRequest, MessagesRequest
from proxy.api.messages.tools import loaded_tools, read_tools, tool_choice
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
from proxy.core.sealing import BoundSealer, SealError

NAMES = ParamNames(
    messages="messages",
    max_tokens="max_tokens",
    reasoning_effort="output_config.effort",
    tool_choice="tool_choice",
    output_format="output_config.format",
    stop="stop_sequences",
    tool_call_id="tool_use_id",
)
# Claude Code puts a billing line in its first system block (`x-anthropic-billing-header:
# cc_version=...`): a header for Anthropic's servers, not an instruction, and it changes with
# every release.
_BILLING_PREFIX = "x-anthropic-billing-header:"
_UNREADABLE = {"image", "document", "container_upload"}


def generation_request(
    body: MessagesRequest | CountTokensRequest,
    message_id: str,
    sealer: BoundSealer | None,
) -> GenerationRequest:
    """The neutral request for `body` (the service salts it for its caller); 400
    (naming the field) for what cannot be honoured."""
    tools = read_tools(body.tools, loaded_tools(body))
    choice, named, parallel = tool_choice(body.tool_choice)
    parts = clear_thinking(read_messages(body, sealer), body.context_management)
    if isinstance(body, MessagesRequest):
        if body.max_tokens is None:
            raise InvalidRequest("max_tokens: Field required", param="max_tokens")
        if body.max_tokens < 1:
            raise InvalidRequest("max_tokens: must be at least 1", param="max_tokens")
        sampling = Sampling(
            max_tokens=body.max_tokens,
            temperature=body.temperature,
            top_p=body.top_p,
            top_k=body.top_k,
        )
        stop = tuple(body.stop_sequences or ())
        stream = body.stream
        user_id = (body.metadata or {}).get("user_id")
        user = user_id if isinstance(user_id, str) else None
    else:
        sampling, stop, stream, user = Sampling(), (), False, None
    return GenerationRequest(
        model=body.model,
        parts=tuple(parts),
        tools=tuple(tools),
        tool_choice=choice,
        named_tool=named,
        parallel_tool_calls=parallel,
        final_schema=final_schema(body),
        reasoning_effort=reasoning_effort(body),
        sampling=sampling,
        stop=stop,
        stream=stream,
        user=user,  # (`metadata.user_id`: bounded by the gate as `user` is)
        names=NAMES,
        completion_id=message_id,
    )


# ---------------------------------------------------------------------------- messages


def read_messages(body: CountTokensRequest, sealer: BoundSealer | None) -> list[Part]:
    """`system` and `messages` as conversation parts, in order."""
    parts: list[Part] = []
    instructions = _system_text(body.system)
    if instructions:
        parts.append(Instructions(instructions, "system"))
    if not body.messages:
        raise InvalidRequest("messages: at least one message is required", param="messages")
    calls: set[str] = set()
    for i, message in enumerate(body.messages):
        where = f"messages.{i}"
        content = message.content
        if message.role == "system":
            text = _text_of(content, f"{where}.content")
            parts.append(Instructions(text, where) if not parts else DeveloperText(text, where))
        elif message.role == "assistant":
            turn = _assistant(content, where, sealer)
            calls.update(call.call_id for call in turn.calls)
            parts.append(turn)
        else:
            parts.extend(_user(content, where, calls))
    return parts


def _system_text(system: str | list[dict[str, Any]] | None) -> str:
    if system is None:
        return ""
    if isinstance(system, str):
        return system
    texts = []
    for j, block in enumerate(system):
        text = _text_block(block, f"system.{j}")
        if not text.startswith(_BILLING_PREFIX):
            texts.append(text)
    return "\n\n".join(texts)


def _user(content: str | list[dict[str, Any]], where: str, calls: set[str]) -> list[Part]:
    """A user message: its text, and its tool results where they stand."""
    if isinstance(content, str):
        return [UserText(content, where)]
    parts: list[Part] = []
    texts: list[str] = []
    for j, block in enumerate(content):
        param = f"{where}.content.{j}"
        kind = _block_type(block, param)
        if kind == "tool_result":
            if texts:
                parts.append(UserText("\n".join(texts), where))
                texts = []
            call_id = block.get("tool_use_id")
            if not isinstance(call_id, str) or call_id not in calls:
                raise InvalidRequest(
                    f"{param}.tool_use_id: unexpected `tool_use_id` {call_id!r}: each "
                    "`tool_result` block must answer a `tool_use` block of an earlier "
                    "assistant message",
                    param=f"{param}.tool_use_id",
                )
            output = _tool_output(block.get("content"), f"{param}.content")
            if block.get("is_error") is True:
                output = f"Error: {output}"
            parts.append(ToolResult(call_id, output, param))
        elif kind == "text":
            texts.append(_text_block(block, param))
        else:
            _refuse_block(kind, param, "user")
    if texts or not parts:
        parts.append(UserText("\n".join(texts), where))
    return parts


def _assistant(
    content: str | list[dict[str, Any]], where: str, sealer: BoundSealer | None
) -> AssistantTurn:
    """An assistant message: its thinking (restored), text, and calls, as one Harmony turn."""
    if isinstance(content, str):
        return AssistantTurn(where, text=content)
    reasoning: list[str] = []
    texts: list[str] = []
    calls: list[PastCall] = []
    for j, block in enumerate(content):
        param = f"{where}.content.{j}"
        kind = _block_type(block, param)
        if kind == "text":
            texts.append(_text_block(block, param))
        elif kind == "thinking":
            reasoning.append(_thinking(block, param, sealer))
        elif kind == "redacted_thinking":
            reasoning.append(_opened(block.get("data"), f"{param}.data", sealer))
        elif kind == "tool_use":
            call_id, name, arguments = block.get("id"), block.get("name"), block.get("input")
            if not isinstance(call_id, str) or not call_id:
                raise InvalidRequest(f"{param}.id: Field required", param=f"{param}.id")
            if not isinstance(name, str) or not name:
                raise InvalidRequest(f"{param}.name: Field required", param=f"{param}.name")
            if not isinstance(arguments, dict):
                raise InvalidRequest(
                    f"{param}.input: Input should be an object", param=f"{param}.input"
                )
            calls.append(PastCall(call_id, name, json.dumps(arguments, ensure_ascii=False)))
        else:
            _refuse_block(kind, param, "assistant")
    return AssistantTurn(
        where,
        reasoning="\n".join(r for r in reasoning if r) or None,
        text="\n".join(texts),
        calls=tuple(calls),
    )


def _thinking(block: dict[str, Any], param: str, sealer: BoundSealer | None) -> str:
    """The analysis of a replayed thinking block: what its signature seals (the text shown
    may be empty or summarised); a block without a signature is taken as its text, unless the
    server requires sealed reasoning (`--require-sealed-reasoning`)."""
    signature = block.get("signature")
    if signature is None or signature == "":
        text = block.get("thinking", "")
        if not isinstance(text, str):
            raise InvalidRequest(
                f"{param}.thinking: Input should be a valid string", param=f"{param}.thinking"
            )
        if text and sealer is not None and sealer.require_sealed:
            raise InvalidRequest(
                f"{param}: this server accepts only thinking it signed: replay the block with "
                "its `signature`, or leave the thinking out",
                param=param,
            )
        return text
    return _opened(signature, f"{param}.signature", sealer)


def _opened(token: Any, param: str, sealer: BoundSealer | None) -> str:
    if not isinstance(token, str):
        raise InvalidRequest(f"{param}: Input should be a valid string", param=param)
    if sealer is None:
        raise InvalidRequest(f"{param}: this server has no key to open signatures", param=param)
    try:
        return sealer.open(token)
    except SealError as exc:
        raise InvalidRequest(
            f"{param}: invalid signature in thinking block ({exc}); thinking blocks must be "
            "replayed as this server issued them",
            param=param,
        ) from None


def _refuse_block(kind: str, param: str, role: str) -> None:
    if kind in _UNREADABLE:
        raise InvalidRequest(
            f"{param}.type: {kind!r} blocks are not supported: gpt-oss reads text only",
            param=f"{param}.type",
        )
    raise InvalidRequest(
        f"{param}.type: unsupported content block type {kind!r} in a {role} message",
        param=f"{param}.type",
    )


def _tool_output(content: Any, param: str) -> str:
    """A tool result's content: a string, or text blocks (a `tool_reference` names the tool it
    loads); images are not readable."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        raise InvalidRequest(
            f"{param}: Input should be a valid string or list of blocks", param=param
        )
    texts = []
    for k, block in enumerate(content):
        where = f"{param}.{k}"
        kind = _block_type(block, where)
        if kind == "text":
            texts.append(_text_block(block, where))
        elif kind == "tool_reference":
            texts.append(f"Tool {block.get('tool_name')} is now available.")
        else:
            _refuse_block(kind, where, "tool_result")
    return "\n".join(texts)


def _text_of(content: str | list[dict[str, Any]], param: str) -> str:
    if isinstance(content, str):
        return content
    texts = []
    for j, block in enumerate(content):
        kind = _block_type(block, f"{param}.{j}")
        if kind != "text":
            _refuse_block(kind, f"{param}.{j}", "system")
        texts.append(_text_block(block, f"{param}.{j}"))
    return "\n".join(texts)


def _block_type(block: Any, param: str) -> str:
    if not isinstance(block, dict) or not isinstance(block.get("type"), str):
        raise InvalidRequest(f"{param}.type: Field required", param=f"{param}.type")
    return block["type"]


def _text_block(block: Any, param: str) -> str:
    _block_type(block, param)
    text = block.get("text")
    if not isinstance(text, str):
        raise InvalidRequest(f"{param}.text: Field required", param=f"{param}.text")
    return text


def precheck_body(data: Any, limits: Limits) -> None:
    """The counts of the raw body before any model is built: messages (blocks of each, since
    every tool_use and tool_result becomes a part of its own), past calls and tools."""
    if not isinstance(data, dict):
        return
    messages = data.get("messages")
    if isinstance(messages, list):
        count_limit(len(messages), limits.max_messages, "messages", "messages")
        blocks = [
            block
            for message in messages
            if isinstance(message, dict) and isinstance(message.get("content"), list)
            for block in message["content"]
        ]
        calls = sum(1 for b in blocks if isinstance(b, dict) and b.get("type") == "tool_use")
        count_limit(calls, limits.max_past_tool_calls, "past tool calls", "messages")
        if limits.max_messages is not None and limits.max_past_tool_calls is not None:
            most = limits.max_messages + 2 * limits.max_past_tool_calls
            count_limit(len(blocks), most, "content blocks", "messages")
    tools = data.get("tools")
    if isinstance(tools, list):
        count_limit(len(tools), limits.max_tools, "tools", "tools")
    system = data.get("system")
    if isinstance(system, list):
        count_limit(len(system), limits.max_messages, "blocks", "system")
    stop = data.get("stop_sequences")
    if isinstance(stop, list):
        check_stop_count(len(stop), limits, "stop_sequences")
