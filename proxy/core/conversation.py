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
from proxy.api.chat_schema import (
    AssistantMessage,
    ChatCompletionRequest,
    ChatMessage,
    Content,
    DeveloperMessage,
    SystemMessage,
    ToolMessage,
    UserMessage,
)
from proxy.core.errors import InvalidRequest
from proxy.core.tool_names import ToolNames
from proxy.core.tools import FunctionTool
from proxy.server.settings import ProxyConfig

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


def reasoning_effort(value: str | None, default: str) -> ReasoningEffort:
    """Map OpenAI's effort names onto gpt-oss's three (it always reasons: `none` means low)."""
    effort = _EFFORT_ALIASES.get((value if value is not None else default).lower())
    if effort is None:
        raise InvalidRequest(
            f"Unsupported reasoning_effort {value!r}: gpt-oss accepts low, medium or high "
            "(none and minimal map to low; xhigh and max map to high).",
            param="reasoning_effort",
        )
    return _EFFORTS[effort]


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


def tool_names_for(request: ChatCompletionRequest, tools: Sequence[FunctionTool]) -> ToolNames:
    """The declared tools' names, then those of other functions the history called."""
    names = ToolNames(tool.key for tool in tools if tool.namespace is None)
    for tool in tools:
        if tool.namespace is not None:
            names.declare_namespaced(tool.key, tool.namespace, tool.name)
        if tool.freeform:
            names.freeform.add(tool.key)
    for message in request.messages:
        if isinstance(message, AssistantMessage):
            for call in message.tool_calls or []:
                names.address(call.function.name)
    return names


def build_conversation(
    request: ChatCompletionRequest,
    config: ProxyConfig,
    tools: Sequence[FunctionTool],
    names: ToolNames,
) -> Conversation:
    """The whole Harmony conversation for `request`, ending before the assistant's turn."""
    messages: list[ChatMessage] = list(request.messages)
    instructions = None
    if isinstance(messages[0], SystemMessage | DeveloperMessage):
        instructions = content_text(messages[0].content, "messages[0].content")
        first_index = 1
    else:
        first_index = 0

    system = (
        SystemContent.new()
        .with_model_identity(config.model_identity)
        .with_knowledge_cutoff(config.knowledge_cutoff)
        .with_conversation_start_date(config.conversation_date)
        .with_reasoning_effort(
            reasoning_effort(_requested_effort(request), config.default_reasoning_effort)
        )
    )
    out = [Message.from_role_and_content(Role.SYSTEM, system)]
    developer = _developer_content(tools, instructions, names)
    if developer is not None:
        out.append(Message.from_role_and_content(Role.DEVELOPER, developer))

    history = _HistoryBuilder(names)
    for i in range(first_index, len(messages)):
        out.extend(history.convert(messages[i], i))
    return Conversation.from_messages(drop_earlier_reasoning(out))


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
    """Converts chat messages one by one, remembering tool call ids for later tool results."""

    def __init__(self, names: ToolNames) -> None:
        self._names = names
        self._call_names: dict[str, str] = {}
        self._last_call_name: str | None = None

    def convert(self, message: ChatMessage, i: int) -> list[Message]:
        param = f"messages[{i}].content"
        if isinstance(message, SystemMessage | DeveloperMessage):
            text = content_text(message.content, param)
            return [
                Message.from_role_and_content(
                    Role.DEVELOPER, DeveloperContent.new().with_instructions(text)
                )
            ]
        if isinstance(message, UserMessage):
            return [Message.from_role_and_content(Role.USER, content_text(message.content, param))]
        if isinstance(message, AssistantMessage):
            return self._assistant(message, param)
        return [self._tool_result(message, i)]

    def _assistant(self, message: AssistantMessage, param: str) -> list[Message]:
        out = []
        reasoning = (
            message.reasoning if message.reasoning is not None else message.reasoning_content
        )
        if reasoning:
            out.append(
                Message.from_role_and_content(Role.ASSISTANT, reasoning).with_channel("analysis")
            )
        text = content_text(message.content, param, allow_refusal=True)
        if not message.tool_calls:
            # A Responses preamble (`phase: "commentary"`) stays commentary, not an answer.
            commentary = (message.model_extra or {}).get("phase") == "commentary"
            if text:
                out.append(
                    Message.from_role_and_content(Role.ASSISTANT, text).with_channel(
                        "commentary" if commentary else "final"
                    )
                )
            return out
        if text:
            out.append(
                Message.from_role_and_content(Role.ASSISTANT, text).with_channel("commentary")
            )
        for call in message.tool_calls:
            address = self._names.address(call.function.name)
            self._call_names[call.id] = address
            self._last_call_name = address
            message = (
                Message.from_role_and_content(Role.ASSISTANT, call.function.arguments)
                .with_channel("commentary")
                .with_recipient(address)
            )
            if call.function.name not in self._names.freeform:
                message = message.with_content_type("<|constrain|>json")
            out.append(message)
        return out

    def _tool_result(self, message: ToolMessage, i: int) -> Message:
        address = self._call_names.get(message.tool_call_id)
        if address is None and message.name:
            address = self._names.address(message.name)
        if address is None:
            address = self._last_call_name
        if address is None:
            raise InvalidRequest(
                f"messages[{i}] is a tool result for tool_call_id {message.tool_call_id!r}, "
                "but no earlier assistant message made a tool call.",
                param=f"messages[{i}].tool_call_id",
            )
        text = content_text(message.content, f"messages[{i}].content")
        return (
            Message.from_author_and_content(Author.new(Role.TOOL, address), text)
            .with_channel("commentary")
            .with_recipient("assistant")
        )
