"""Responses input items -> normalised items -> the core's conversation parts.

Input is a string (one user message) or a list of items: `message` (roles user, system,
developer, assistant; `input_text` / `output_text` / `refusal` parts or a string; a bare
`{"role", "content"}` is a message too), `reasoning` (its `reasoning_text` content, or sealed
`encrypted_content` this server issued, opened here), `function_call`, `function_call_output`,
`custom_tool_call`, `custom_tool_call_output`, hosted MCP tools' items (hosted_items.py), and
the built-ins' `code_interpreter_call` (replayed as the python call and its logs) and
`web_search_call` (kept, not replayed). Anything else is a 400 naming the item; a tool output
whose `call_id` matches no earlier call is a 400, as OpenAI's.

Items are normalised first (ids given, parts as lists, reasoning in clear), because that is
what the store keeps for `previous_response_id` and `input_items`. The conversion to parts
then groups each assistant turn (reasoning, preamble, calls) into one `AssistantTurn`, which
proxy/core/conversation.py renders as Harmony does: analysis, commentary preamble, one
commentary call per function; earlier analysis is dropped before the last final answer.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from proxy.api.responses.hosted_items import (
    DECLINED,
    MCP_ITEM_TYPES,
    mcp_key,
    normalise_mcp_item,
)
from proxy.api.responses.input_items import (
    BROWSER_FUNCTIONS,
    Item,
    logs_text,
    message_item,
    new_id,
    optional_string,
    output_text,
    parts_text,
    read_builtin_call,
    read_message,
    read_reasoning,
    string_field,
)
from proxy.core.errors import InvalidRequest
from proxy.core.request import (
    AssistantTurn,
    DeveloperText,
    Instructions,
    Part,
    PastCall,
    ToolResult,
    UserText,
)
from proxy.core.sealing import BoundSealer
from proxy.hosted.mcp_items import read_back
from proxy.hosted.python_tool import NO_OUTPUT


def normalise_input(
    raw: str | list[Any], sealer: BoundSealer | None, name: str = "input"
) -> list[Item]:
    """The request's `input` (or a conversation's `items`: `name`) as normalised items; 400
    for anything malformed."""
    if isinstance(raw, str):
        return [message_item("user", [{"type": "input_text", "text": raw}], None)]
    items = []
    for i, item in enumerate(raw):
        param = f"{name}[{i}]"
        if not isinstance(item, dict):
            raise InvalidRequest("Each input item must be an object.", param=param)
        kind = item.get("type", "message" if "role" in item else None)
        if kind == "message":
            items.append(read_message(item, param))
        elif kind == "reasoning":
            items.append(read_reasoning(item, param, sealer))
        elif kind in ("function_call", "custom_tool_call"):
            field = "arguments" if kind == "function_call" else "input"
            call: Item = {
                "type": kind,
                "id": optional_string(item, "id", param)
                or new_id("fc" if field == "arguments" else "ctc"),
                "call_id": string_field(item, "call_id", param),
                "name": string_field(item, "name", param),
                field: string_field(item, field, param),
                "status": "completed",
            }
            namespace = optional_string(item, "namespace", param)
            if namespace:
                call["namespace"] = namespace
            items.append(call)
        elif kind in ("function_call_output", "custom_tool_call_output"):
            items.append(
                {
                    "type": kind,
                    "id": optional_string(item, "id", param) or new_id("fco"),
                    "call_id": string_field(item, "call_id", param),
                    "output": output_text(item.get("output"), f"{param}.output"),
                }
            )
        elif kind in MCP_ITEM_TYPES:
            items.append(normalise_mcp_item(kind, item, param))
        elif kind in ("code_interpreter_call", "web_search_call"):
            items.append(read_builtin_call(item, param))
        elif kind == "item_reference":
            raise InvalidRequest(
                "item_reference items are not supported: send the item itself, or continue "
                "with previous_response_id.",
                param=f"{param}.type",
            )
        else:
            raise InvalidRequest(f"Unsupported input item type {kind!r}.", param=f"{param}.type")
    return items


def to_parts(
    items: list[Item],
    instructions: str | None,
    first_input: int,
    *,
    name: str = "input",
    history: str = "previous_response_id",
    known_calls: frozenset[str] = frozenset(),
) -> list[Part]:
    """The conversation's parts, each with where it came from (`instructions`, `input[i]`,
    `previous_response_id` or `conversation`: `history`), so errors found later name the right
    parameter. `items[first_input:]` are this request's input (`name`); earlier ones are the
    stored history. Each assistant turn (reasoning, preamble or answer, calls) becomes one
    `AssistantTurn`. `known_calls`: call ids made before `items` (a conversation's items are
    checked a batch at a time)."""
    parts: list[Part] = []
    if instructions:
        parts.append(Instructions(instructions, "instructions"))
    turn: _Turn | None = None
    calls: set[str] = set(known_calls)

    def where(i: int) -> str:
        return f"{name}[{i - first_input}]" if i >= first_input else history

    def flush() -> None:
        nonlocal turn
        if turn is not None:
            parts.append(turn.part())
            turn = None

    def assistant(i: int, *, new_turn: bool = False) -> _Turn:
        nonlocal turn
        if turn is not None and new_turn and (turn.text or turn.calls):
            flush()  # a new assistant turn
        if turn is None:
            turn = _Turn(where(i))
        return turn

    for i, item in enumerate(items):
        kind = item["type"]
        if kind == "message" and item["role"] != "assistant":
            flush()
            text = parts_text(item)
            if item["role"] in ("system", "developer"):
                # The first message of all, with no `instructions`, is the instructions.
                first = not parts
                parts.append(
                    Instructions(text, where(i)) if first else DeveloperText(text, where(i))
                )
            else:
                parts.append(UserText(text, where(i)))
        elif kind == "message":
            current = assistant(i, new_turn=True)
            current.text = parts_text(item)
            if item.get("phase") == "commentary":
                # A preamble: rendered on the commentary channel, never as a final answer
                # (which would also drop the reasoning before it).
                current.phase = "commentary"
        elif kind == "reasoning":
            current = assistant(i, new_turn=True)
            text = "".join(part.get("text", "") for part in item.get("content") or [])
            if text:
                earlier = current.reasoning
                current.reasoning = f"{earlier}\n{text}" if earlier else text
        elif kind in ("function_call", "custom_tool_call"):
            key = item["name"]  # (not `name`: that is the parameter `where` names parts by)
            if item.get("namespace"):
                key = f"{item['namespace']}.{key}"
            arguments = item["arguments"] if kind == "function_call" else item["input"]
            calls.add(item["call_id"])
            assistant(i).calls.append(PastCall(item["call_id"], key, arguments))
        elif kind in ("mcp_call", "mcp_approval_request"):
            approved = item.get("approval_request_id")
            if kind == "mcp_call" and approved in calls:
                # The call is its approval request's; this is the answer.
                flush()
                parts.append(ToolResult(approved, read_back(item), where(i)))
                continue
            calls.add(item["id"])
            assistant(i).calls.append(PastCall(item["id"], mcp_key(item), item["arguments"]))
            if kind == "mcp_call":
                flush()
                parts.append(ToolResult(item["id"], read_back(item), where(i)))
        elif kind == "mcp_approval_response":
            if not item["approve"] and item["approval_request_id"] in calls:
                flush()
                parts.append(ToolResult(item["approval_request_id"], DECLINED, where(i)))
        elif kind == "mcp_list_tools":
            continue  # (the tools are declared from the request's `tools`)
        elif kind == "code_interpreter_call":
            # gpt-oss's python tool: its call and what it printed, as the model saw them.
            calls.add(item["id"])
            assistant(i).calls.append(PastCall(item["id"], "python", item.get("code") or ""))
            flush()
            parts.append(ToolResult(item["id"], logs_text(item) or NO_OUTPUT, where(i)))
        elif kind == "web_search_call":
            # The browser call and the page the model read, when the item carries them (ours
            # do: `arguments`, `output`); OpenAI's own items do not, and are left out.
            if item.get("arguments") is None or item.get("output") is None:
                continue
            action = (item.get("action") or {}).get("type")
            key = f"browser.{BROWSER_FUNCTIONS.get(action, 'search')}"
            calls.add(item["id"])
            assistant(i).calls.append(PastCall(item["id"], key, item["arguments"]))
            flush()
            parts.append(ToolResult(item["id"], item["output"], where(i)))
        else:  # a tool's output
            flush()
            if item["call_id"] not in calls:
                raise InvalidRequest(
                    f"No tool call found for {kind} with call_id {item['call_id']!r}.",
                    param=f"{where(i)}.call_id",
                )
            parts.append(ToolResult(item["call_id"], item["output"], where(i)))
    flush()
    return parts


@dataclass
class _Turn:
    """An assistant turn being gathered from its items."""

    source: str
    reasoning: str | None = None
    text: str | None = None
    phase: Literal["final", "commentary"] = "final"
    calls: list[PastCall] = field(default_factory=list)

    def part(self) -> AssistantTurn:
        return AssistantTurn(
            self.source,
            reasoning=self.reasoning,
            text=self.text or "",
            phase=self.phase,
            calls=tuple(self.calls),
        )
