"""The Messages API request as pydantic reads it: the top-level fields, typed; blocks as dicts.

Lenient to unknown fields (Anthropic adds fields with every beta; Claude Code sends
`context_management`, `output_config`, `cache_control` on blocks and tools, `defer_loading`...).
Content blocks and tools stay plain dicts here and are read by request.py, which names a bad one
by its path (`messages.3.content.0.tool_use_id`), as Anthropic's own errors do.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class _Lenient(BaseModel):
    model_config = ConfigDict(extra="allow")


class InputMessage(_Lenient):
    # `system` inside `messages`: Claude Code's mid-conversation system messages (beta
    # mid-conversation-tool-changes), kept as developer messages where they stand.
    role: Literal["user", "assistant", "system"]
    content: str | list[dict[str, Any]]


class CountTokensRequest(_Lenient):
    """`POST /v1/messages/count_tokens`: the request without its generation settings."""

    model: str
    messages: list[InputMessage]
    system: str | list[dict[str, Any]] | None = None
    tools: list[dict[str, Any]] | None = None
    tool_choice: dict[str, Any] | None = None
    thinking: dict[str, Any] | None = None
    output_config: dict[str, Any] | None = None
    output_format: dict[str, Any] | None = None
    context_management: dict[str, Any] | None = None


class MessagesRequest(CountTokensRequest):
    """`POST /v1/messages`. `max_tokens` is required, as Anthropic's; request.py says so in
    Anthropic's words rather than pydantic's."""

    max_tokens: int | None = Field(default=None)
    stream: bool = False
    stop_sequences: list[str] | None = None
    temperature: float | None = Field(default=None, ge=0.0, le=2.0)
    top_p: float | None = Field(default=None, ge=0.0, le=1.0)
    top_k: int | None = Field(default=None, ge=0)
    metadata: dict[str, Any] | None = None
    service_tier: str | None = None
