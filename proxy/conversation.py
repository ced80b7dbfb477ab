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
)
from proxy.api_models import (
    AssistantMessage,
    ChatCompletionRequest,
    ChatMessage,
    Content,
    DeveloperMessage,
    SystemMessage,
    ToolMessage,
    UserMessage,
)
from proxy.config import ProxyConfig
from proxy.errors import InvalidRequest
from proxy.tool_names import ToolNames
from proxy.tools import FunctionTool

_EFFORT_ALIASES = {
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
    """Map OpenAI's effort names onto gpt-oss's three; `none` is refused (gpt-oss always reasons)."""
    effort = _EFFORT_ALIASES.get((value if value is not None else default).lower())
    if effort is None:
        raise InvalidRequest(
            f"Unsupported reasoning_effort {value!r}: gpt-oss accepts low, medium or high "
            "(minimal maps to low; xhigh and max map to high).",
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
    names = ToolNames(tool.name for tool in tools)
    for message in request.messages:
        if isinstance(message, AssistantMessage):
            for call in message.tool_calls or []:
                names.to_model(call.function.name)
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
    if tools:
        developer = developer.with_function_tools(
            [
                ToolDescription.new(
                    names.to_model(tool.name), tool.description, parameters=tool.parameters
                )
                for tool in tools
            ]
        )
    return developer


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
            if text:
                out.append(
                    Message.from_role_and_content(Role.ASSISTANT, text).with_channel("final")
                )
            return out
        if text:
            out.append(
                Message.from_role_and_content(Role.ASSISTANT, text).with_channel("commentary")
            )
        for call in message.tool_calls:
            model_name = self._names.to_model(call.function.name)
            self._call_names[call.id] = model_name
            self._last_call_name = model_name
            out.append(
                Message.from_role_and_content(Role.ASSISTANT, call.function.arguments)
                .with_channel("commentary")
                .with_recipient(f"functions.{model_name}")
                .with_content_type("<|constrain|>json")
            )
        return out

    def _tool_result(self, message: ToolMessage, i: int) -> Message:
        model_name = self._call_names.get(message.tool_call_id)
        if model_name is None and message.name:
            model_name = self._names.to_model(message.name)
        if model_name is None:
            model_name = self._last_call_name
        if model_name is None:
            raise InvalidRequest(
                f"messages[{i}] is a tool result for tool_call_id {message.tool_call_id!r}, "
                "but no earlier assistant message made a tool call.",
                param=f"messages[{i}].tool_call_id",
            )
        text = content_text(message.content, f"messages[{i}].content")
        return (
            Message.from_author_and_content(Author.new(Role.TOOL, f"functions.{model_name}"), text)
            .with_channel("commentary")
            .with_recipient("assistant")
        )
