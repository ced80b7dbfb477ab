"""The /v1/responses request body, as clients send it (the openai SDK, Agents SDK, Codex CLI).

Lenient like the chat request: unknown fields are accepted (clients send `client_metadata`,
`prompt_cache_key`, `service_tier`...), known ones are checked. Input items and tools stay plain
dicts here and are read one by one in proxy/api/responses/inputs.py and tools, so that every error
can name the exact item (`input[3].call_id`).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from proxy.api.chat_schema import StreamIntervalMs


class _Lenient(BaseModel):
    model_config = ConfigDict(extra="allow")


class ReasoningOptions(_Lenient):
    effort: str | None = None
    # "auto" | "concise" | "detailed": gpt-oss has no summariser; the reasoning text is given.
    summary: str | None = None


class StreamOptions(_Lenient):
    stream_interval_ms: StreamIntervalMs = None


class TextOptions(_Lenient):
    # {"type": "text"} | {"type": "json_object"} | {"type": "json_schema", "name", "schema", ...}
    format: dict[str, Any] | None = None


class ResponsesRequest(_Lenient):
    model: str
    input: str | list[dict[str, Any]] = Field(default_factory=list)
    instructions: str | None = None
    tools: list[dict[str, Any]] | None = None
    tool_choice: str | dict[str, Any] | None = None
    parallel_tool_calls: bool | None = None
    reasoning: ReasoningOptions | None = None
    text: TextOptions | None = None
    max_output_tokens: int | None = Field(default=None, ge=1)
    temperature: float | None = Field(default=None, ge=0.0, le=2.0)
    top_p: float | None = Field(default=None, gt=0.0, le=1.0)
    store: bool = True
    stream: bool = False
    background: bool | None = None
    stream_options: StreamOptions | None = None
    previous_response_id: str | None = None
    # A conversation id, or {"id": ...} (proxy/api/conversations/link.py).
    conversation: str | dict[str, Any] | None = None
    include: list[str] | None = None
    metadata: dict[str, str] | None = None
    user: str | None = None
    prompt_cache_key: str | None = None
    safety_identifier: str | None = None
    seed: int | None = Field(default=None, ge=-(2**63), le=2**63 - 1)
    # "auto": the oldest turns are dropped when the conversation outgrows the context
    # (proxy/core/truncation.py); "disabled" (the default): such a request is a 400.
    truncation: Literal["auto", "disabled"] | None = None
    # Hosted tool calls one response may run (proxy/api/responses/turn.py).
    max_tool_calls: int | None = Field(default=None, ge=1)
