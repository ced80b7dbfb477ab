"""Pydantic schemas for /v1/chat/completions requests and responses (OpenAI's shapes).

Requests accept unknown fields (OpenAI clients send `user`, `store`, `metadata`, ...); fields
we cannot honour are refused explicitly in `sampling.py` / `structured.py` rather than ignored.
Responses are built from these models so every object on the wire has one definition.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from proxy.core import events as core_events
from proxy.core.coalesce import SANE_INTERVAL_MS


class _Lenient(BaseModel):
    model_config = ConfigDict(extra="allow")


# ---------------------------------------------------------------- request: messages


class ContentPart(_Lenient):
    """One part of a list-valued `content`; only `text` parts are accepted (see conversation)."""

    type: str
    text: str | None = None


Content = str | list[ContentPart]


class FunctionCall(_Lenient):
    name: str
    arguments: str = ""


class ToolCall(_Lenient):
    id: str
    type: Literal["function"] = "function"
    function: FunctionCall


class SystemMessage(_Lenient):
    role: Literal["system"]
    content: Content
    name: str | None = None


class DeveloperMessage(_Lenient):
    role: Literal["developer"]
    content: Content
    name: str | None = None


class UserMessage(_Lenient):
    role: Literal["user"]
    content: Content
    name: str | None = None


class AssistantMessage(_Lenient):
    role: Literal["assistant"]
    content: Content | None = None
    # Prior chain of thought: `reasoning` (vLLM >= 0.16, OpenRouter) or `reasoning_content`
    # (SGLang, llama.cpp, LiteLLM); both are accepted.
    reasoning: str | None = None
    reasoning_content: str | None = None
    tool_calls: list[ToolCall] | None = None
    refusal: str | None = None
    name: str | None = None


class ToolMessage(_Lenient):
    role: Literal["tool"]
    content: Content
    tool_call_id: str
    # Not sent by OpenAI clients; used only when `tool_call_id` matches no earlier call.
    name: str | None = None


ChatMessage = Annotated[
    SystemMessage | DeveloperMessage | UserMessage | AssistantMessage | ToolMessage,
    Field(discriminator="role"),
]


# ---------------------------------------------------------------- request: tools and formats


class FunctionDefinition(_Lenient):
    # Length, uniqueness and the schema are checked in `proxy/core/tools.py` (clearer messages).
    name: str
    description: str | None = None
    parameters: Any = None
    strict: bool | None = None


class Tool(_Lenient):
    type: str
    function: FunctionDefinition | None = None


class NamedFunction(_Lenient):
    name: str


class NamedToolChoice(_Lenient):
    type: str = "function"
    function: NamedFunction | None = None


ToolChoice = Literal["none", "auto", "required"] | NamedToolChoice


class JsonSchemaSpec(_Lenient):
    name: str = "response"
    description: str | None = None
    # `schema` shadows a BaseModel attribute, hence the alias.
    json_schema: dict[str, Any] | None = Field(default=None, alias="schema")
    strict: bool | None = None


class ResponseFormat(_Lenient):
    type: str
    json_schema: JsonSchemaSpec | None = None


# `stream_options.stream_interval_ms` (chat and Responses): write the stream at most every so
# many milliseconds (proxy/core/coalesce.py). A number (not a string or boolean), 0 to a minute;
# the server clamps it to its own maximum.
StreamIntervalMs = Annotated[
    float | None, Field(default=None, ge=0, le=SANE_INTERVAL_MS, strict=True, allow_inf_nan=False)
]


class StreamOptions(_Lenient):
    include_usage: bool = False
    stream_interval_ms: StreamIntervalMs = None


class ChatCompletionRequest(_Lenient):
    model: str
    messages: list[ChatMessage] = Field(min_length=1)
    stream: bool = False
    stream_options: StreamOptions | None = None
    n: int = Field(default=1, ge=1, le=16)
    max_completion_tokens: int | None = Field(default=None, ge=1)
    max_tokens: int | None = Field(default=None, ge=1)
    temperature: float | None = Field(default=None, ge=0.0, le=2.0)
    top_p: float | None = Field(default=None, gt=0.0, le=1.0)
    # int64, as OpenAI's; larger seeds overflow the engine's generator.
    seed: int | None = Field(default=None, ge=-(2**63), le=2**63 - 1)
    presence_penalty: float | None = Field(default=None, ge=-2.0, le=2.0)
    frequency_penalty: float | None = Field(default=None, ge=-2.0, le=2.0)
    stop: str | list[str] | None = None
    tools: list[Tool] | None = None
    tool_choice: ToolChoice | None = None
    parallel_tool_calls: bool | None = None
    response_format: ResponseFormat | None = None
    reasoning_effort: str | None = None
    # vLLM extension: false hides reasoning from the response (it is still generated).
    include_reasoning: bool = True
    ignore_eos: bool | None = None
    logprobs: bool | None = None
    top_logprobs: int | None = Field(default=None, ge=0, le=20)
    # Sampling extensions sent by clients migrating from `vllm serve` (honoured, not ignored).
    top_k: int | None = Field(default=None, ge=-1)
    min_p: float | None = Field(default=None, ge=0.0, le=1.0)
    repetition_penalty: float | None = Field(default=None, gt=0.0, le=2.0)
    # vLLM's chat-template arguments; only `reasoning_effort` means something for Harmony.
    chat_template_kwargs: dict[str, Any] | None = None


# ---------------------------------------------------------------- responses


class FunctionCallOut(BaseModel):
    name: str
    arguments: str


class ToolCallOut(BaseModel):
    id: str
    type: Literal["function"] = "function"
    function: FunctionCallOut


class FunctionCallDelta(BaseModel):
    name: str | None = None
    arguments: str | None = None


class ToolCallDelta(BaseModel):
    index: int
    id: str | None = None
    type: Literal["function"] | None = None
    function: FunctionCallDelta


class Delta(BaseModel):
    """One streamed change to a choice; unset fields are left out of the JSON."""

    role: Literal["assistant"] | None = None
    content: str | None = None
    reasoning: str | None = None
    reasoning_content: str | None = None
    tool_calls: list[ToolCallDelta] | None = None


class CompletionTokensDetails(BaseModel):
    reasoning_tokens: int = 0


class PromptTokensDetails(BaseModel):
    cached_tokens: int = 0


class Usage(BaseModel):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int
    completion_tokens_details: CompletionTokensDetails
    prompt_tokens_details: PromptTokensDetails | None = None


def usage_out(usage: core_events.Usage) -> Usage:
    """The run's token counts as chat completions names them."""
    return Usage(
        prompt_tokens=usage.prompt_tokens,
        completion_tokens=usage.completion_tokens,
        total_tokens=usage.total_tokens,
        completion_tokens_details=CompletionTokensDetails(reasoning_tokens=usage.reasoning_tokens),
        prompt_tokens_details=(
            PromptTokensDetails(cached_tokens=usage.cached_tokens)
            if usage.cached_tokens is not None
            else None
        ),
    )


class TopLogprob(BaseModel):
    token: str
    logprob: float
    bytes: list[int] | None


class TokenLogprob(BaseModel):
    token: str
    logprob: float
    bytes: list[int] | None
    top_logprobs: list[TopLogprob]


class ChoiceLogprobs(BaseModel):
    """Log-probabilities of the answer's tokens (reasoning and tool-call tokens are not shown)."""

    content: list[TokenLogprob] | None
    refusal: None = None


class ChunkChoice(BaseModel):
    index: int
    delta: Delta
    logprobs: ChoiceLogprobs | None = None
    finish_reason: str | None = None


class ChatCompletionChunk(BaseModel):
    """A streamed chunk's schema. proxy/api/chat_stream.py writes these bytes directly (the per-token
    path); tests compare its output with this model's."""

    id: str
    object: Literal["chat.completion.chunk"] = "chat.completion.chunk"
    created: int
    model: str
    choices: list[ChunkChoice]
    usage: Usage | None = None


class AssistantMessageOut(BaseModel):
    role: Literal["assistant"] = "assistant"
    content: str | None = None
    reasoning: str | None = None
    reasoning_content: str | None = None
    tool_calls: list[ToolCallOut] | None = None
    refusal: None = None


class Choice(BaseModel):
    index: int
    message: AssistantMessageOut
    logprobs: ChoiceLogprobs | None = None
    finish_reason: str | None


class ChatCompletion(BaseModel):
    id: str
    object: Literal["chat.completion"] = "chat.completion"
    created: int
    model: str
    choices: list[Choice]
    usage: Usage


class ModelCard(BaseModel):
    id: str
    object: Literal["model"] = "model"
    created: int
    owned_by: str = "harmony-proxy"
    max_model_len: int | None = None


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelCard]
