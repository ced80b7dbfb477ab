"""Request -> Harmony conversation -> prompt tokens, the way vLLM 0.33 renders chat (§1.2).

* One system message: identity, knowledge cutoff, the pinned date, `Reasoning: <effort>`.
* The first system/developer chat message becomes the developer `# Instructions`; later ones
  become extra developer messages where they stand (nothing is dropped).
* Function tools go into the developer message's `# Tools`, under model-side identifiers
  (`tool_names.ToolNames`).
* Assistant history: reasoning (`reasoning` or `reasoning_content`) -> analysis, content ->
  final; with tool calls: analysis, then the content as a commentary preamble, then one
  commentary `to=functions.x <|constrain|>json` message per call. (vLLM puts the preamble before
  the analysis; we keep the order the model itself generates.)
* Tool results are authored by `functions.<name>`, the name found through `tool_call_id`.
* Earlier reasoning is dropped before the last final answer and kept inside an unfinished tool
  loop; the library's own auto-drop is turned off because it only handles a trailing final.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass

import harmony
from harmony import (
    Author,
    Conversation,
    DeveloperContent,
    HarmonyEncodingName,
    Message,
    ReasoningEffort,
    RenderConversationConfig,
    Role,
    SystemContent,
    ToolDescription,
    ToolNamespaceConfig,
)
from proxy.core.errors import InvalidRequest
from proxy.core.request import (
    AssistantTurn,
    DeveloperText,
    GenerationRequest,
    Instructions,
    Part,
    ToolResult,
    UserText,
)
from proxy.core.tool_names import ToolNames
from proxy.core.tools import FunctionTool


@dataclass(frozen=True)
class SystemDefaults:
    """What the system message says when the request does not decide (server settings)."""

    model_identity: str = "You are ChatGPT, a large language model trained by OpenAI."
    knowledge_cutoff: str = "2024-06"
    # Pinned once (at startup by default) so prompts are byte-stable for the prefix cache.
    conversation_date: str = "2025-01-01"
    reasoning_effort: str = "medium"


_EFFORT_ALIASES = {
    # Clients send OpenAI's newer levels to every model; Harmony has three, so they are mapped.
    "none": "low",
    "low": "low",
    "minimal": "low",
    "medium": "medium",
    "high": "high",
    "xhigh": "high",
    "max": "high",
}
_EFFORTS = {
    "low": ReasoningEffort.LOW,
    "medium": ReasoningEffort.MEDIUM,
    "high": ReasoningEffort.HIGH,
}


@functools.cache
def load_encoding() -> harmony.HarmonyEncoding:
    """The gpt-oss encoding, loaded once per process (vocabulary parsing takes a while)."""
    return harmony.load_harmony_encoding(HarmonyEncodingName.HARMONY_GPT_OSS)


def reasoning_effort(
    value: str | None, default: str, param: str = "reasoning_effort"
) -> ReasoningEffort:
    """Map OpenAI's effort names onto gpt-oss's three (it always reasons: `none` means low)."""
    effort = _EFFORT_ALIASES.get((value if value is not None else default).lower())
    if effort is None:
        raise InvalidRequest(
            f"Unsupported reasoning_effort {value!r}: gpt-oss accepts low, medium or high "
            "(none and minimal map to low; xhigh and max map to high).",
            param=param,
        )
    return _EFFORTS[effort]


def tool_names_for(request: GenerationRequest) -> ToolNames:
    """The declared tools' names, then those of other functions the history called."""
    tools = request.tools
    names = ToolNames(tool.key for tool in tools if tool.namespace is None and not tool.builtin)
    for tool in tools:
        if tool.builtin:
            names.declare_address(tool.key, tool.key)
        elif tool.namespace is not None:
            names.declare_namespaced(tool.key, tool.namespace, tool.name)
        if tool.freeform:
            names.freeform.add(tool.key)
    for part in request.parts:
        if type(part) is AssistantTurn:
            for call in part.calls:
                names.address(call.key)
    return names


def build_conversation(
    request: GenerationRequest, defaults: SystemDefaults, names: ToolNames
) -> Conversation:
    """The whole Harmony conversation for `request`, ending before the assistant's turn."""
    parts = request.parts
    instructions = None
    if parts and type(parts[0]) is Instructions:
        instructions = parts[0].text
        parts = parts[1:]
    effort = reasoning_effort(
        request.reasoning_effort, defaults.reasoning_effort, request.names.reasoning_effort
    )
    builtins = frozenset(tool.builtin for tool in request.tools if tool.builtin)
    out = [_system_message(defaults, effort, builtins)]
    tools = tuple(tool for tool in request.tools if not tool.builtin)
    developer = _developer_content(tools, instructions, names)
    if developer is not None:
        out.append(Message.from_role_and_content(Role.DEVELOPER, developer))

    history = _HistoryBuilder(names, request.names.tool_call_id)
    for part in parts:
        out.extend(history.convert(part))
    return Conversation.from_messages(drop_earlier_reasoning(out))


@functools.lru_cache(maxsize=64)
def _system_message(
    defaults: SystemDefaults, effort: ReasoningEffort, builtins: frozenset[str | None]
) -> Message:
    """The system message, built once per server setting, effort and set of built-in tools:
    every request has one, most the same, and five pydantic copies made it 10 us each time.
    Shared between conversations, which are only ever rendered: never change it in place
    (`with_*`/`adding_content` do), or every later prompt changes with it."""
    system = (
        SystemContent.new()
        .with_model_identity(defaults.model_identity)
        .with_knowledge_cutoff(defaults.knowledge_cutoff)
        .with_conversation_start_date(defaults.conversation_date)
        .with_reasoning_effort(effort)
    )
    # The built-in tools' own trained declarations, in the system message (Harmony's order:
    # browser, then python).
    if "browser" in builtins:
        system = system.with_browser_tool()
    if "python" in builtins:
        system = system.with_python_tool()
    return Message.from_role_and_content(Role.SYSTEM, system)


def render_prompt(conversation: Conversation) -> list[int]:
    """Prompt token ids, ending with `<|start|>assistant`."""
    return list(
        load_encoding().render_conversation_for_completion(
            conversation, Role.ASSISTANT, RenderConversationConfig(auto_drop_analysis=False)
        )
    )


def drop_earlier_reasoning(messages: Sequence[Message]) -> list[Message]:
    """Drop analysis messages before the last assistant final answer (vLLM 0.33's rule)."""
    last_final = -1
    for i, message in enumerate(messages):
        if message.author.role == Role.ASSISTANT and message.channel == "final":
            last_final = i
    return [
        m
        for i, m in enumerate(messages)
        if not (i < last_final and m.author.role == Role.ASSISTANT and m.channel == "analysis")
    ]


def _developer_content(
    tools: Sequence[FunctionTool], instructions: str | None, names: ToolNames
) -> DeveloperContent | None:
    if not instructions and not tools:
        return None
    developer = DeveloperContent.new()
    if instructions:
        developer = developer.with_instructions(instructions)
    functions = [t for t in tools if t.namespace is None]
    if functions:
        developer = developer.with_function_tools([_describe(t, names) for t in functions])
    namespaces: dict[str, list[FunctionTool]] = {}
    for tool in tools:
        if tool.namespace is not None:
            namespaces.setdefault(tool.namespace, []).append(tool)
    for members in namespaces.values():
        ident = names.address(members[0].key).split(".", 1)[0]
        developer = developer.with_tools(
            ToolNamespaceConfig(
                name=ident,
                description=members[0].namespace_description or None,
                tools=[_describe(t, names) for t in members],
            )
        )
    return developer


def _describe(tool: FunctionTool, names: ToolNames) -> ToolDescription:
    """A tool as Harmony declares it: its model-side name; a custom tool takes a string."""
    ident = names.address(tool.key).split(".", 1)[1]
    parameters = tool.parameters
    if tool.freeform:
        # Harmony has no freeform tools: declared as taking one string (`(_: string) => any`),
        # called with plain text.
        parameters = {"type": "string"}
    return ToolDescription.new(ident, tool.description, parameters=parameters)


class _HistoryBuilder:
    """Converts parts one by one, remembering tool call ids for later tool results."""

    def __init__(self, names: ToolNames, call_id_field: str) -> None:
        self._names = names
        self._call_id_field = call_id_field
        self._call_names: dict[str, str] = {}
        self._last_call_name: str | None = None

    def convert(self, part: Part) -> list[Message]:
        kind = type(part)
        if kind is Instructions or kind is DeveloperText:
            return [
                Message.from_role_and_content(
                    Role.DEVELOPER, DeveloperContent.new().with_instructions(part.text)
                )
            ]
        if kind is UserText:
            return [Message.from_role_and_content(Role.USER, part.text)]
        if kind is AssistantTurn:
            return self._assistant(part)
        return [self._tool_result(part)]

    def _assistant(self, turn: AssistantTurn) -> list[Message]:
        out = []
        if turn.reasoning:
            out.append(
                Message.from_role_and_content(Role.ASSISTANT, turn.reasoning).with_channel(
                    "analysis"
                )
            )
        text = turn.text
        if not turn.calls:
            # A Responses preamble (`phase: "commentary"`) stays commentary, not an answer.
            if text:
                out.append(
                    Message.from_role_and_content(Role.ASSISTANT, text).with_channel(
                        "commentary" if turn.phase == "commentary" else "final"
                    )
                )
            return out
        if text:
            out.append(
                Message.from_role_and_content(Role.ASSISTANT, text).with_channel("commentary")
            )
        for call in turn.calls:
            address = self._names.address(call.key)
            self._call_names[call.call_id] = address
            self._last_call_name = address
            message = (
                Message.from_role_and_content(Role.ASSISTANT, call.arguments)
                .with_channel("commentary")
                .with_recipient(address)
            )
            if call.key not in self._names.freeform:
                message = message.with_content_type("<|constrain|>json")
            out.append(message)
        return out

    def _tool_result(self, result: ToolResult) -> Message:
        address = self._call_names.get(result.call_id)
        if address is None and result.name:
            address = self._names.address(result.name)
        if address is None:
            address = self._last_call_name
        if address is None:
            raise InvalidRequest(
                f"{result.source} is a tool result for tool_call_id {result.call_id!r}, "
                "but no earlier assistant message made a tool call.",
                param=f"{result.source}.{self._call_id_field}",
            )
        return (
            Message.from_author_and_content(Author.new(Role.TOOL, address), result.output)
            .with_channel("commentary")
            .with_recipient("assistant")
        )
