"""The API-neutral request: what every surface (chat, Responses, ...) builds from its wire schema.

A `GenerationRequest` holds the conversation as Harmony parts (instructions, user and developer
text, assistant turns with their reasoning, preambles and past calls, tool results), the
declared tools, the output rules asked for (tool_choice, a JSON schema for the final answer),
the sampling parameters and the limits-relevant extras (`metadata`, `user`). The core (gate,
conversation builder, output rules, sampling, service) reads only this, never a chat or
Responses model.

Every part and field carries the name the client used for it (`ParamNames`, `Part.source`), so
a refusal found anywhere in the core names the client's own parameter (`messages[2].content`,
`input[3].arguments`, `text.format.schema`) without rewriting error strings afterwards.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from proxy.core.tools import FunctionTool


@dataclass(frozen=True, slots=True)
class PastCall:
    """A tool call the assistant made earlier: its id, the tool's client key, its arguments."""

    call_id: str
    key: str
    arguments: str


@dataclass(frozen=True, slots=True)
class Instructions:
    """The developer `# Instructions` (the first system/developer message, or `instructions`)."""

    text: str
    source: str


@dataclass(frozen=True, slots=True)
class DeveloperText:
    """A later system or developer message, kept where it stands as a developer message."""

    text: str
    source: str


@dataclass(frozen=True, slots=True)
class UserText:
    text: str
    source: str


@dataclass(frozen=True, slots=True)
class AssistantTurn:
    """One assistant turn: reasoning (analysis), then text, then calls.

    `text` is the final answer, or a commentary preamble when the turn has calls or
    `phase` says so (a Responses preamble replayed without its call)."""

    source: str
    reasoning: str | None = None
    text: str = ""
    phase: Literal["final", "commentary"] = "final"
    calls: tuple[PastCall, ...] = ()


@dataclass(frozen=True, slots=True)
class ToolResult:
    """A tool's output, matched to its call by `call_id` (else by `name`, else the last call)."""

    call_id: str
    output: str
    source: str
    name: str | None = None


Part = Instructions | DeveloperText | UserText | AssistantTurn | ToolResult


@dataclass(frozen=True, slots=True)
class ParamNames:
    """The client's names for the fields the core may refuse (chat's names by default)."""

    messages: str = "messages"
    max_tokens: str = "max_completion_tokens"
    reasoning_effort: str = "reasoning_effort"
    tool_choice: str = "tool_choice"
    output_format: str = "response_format"
    stop: str = "stop"
    tool_call_id: str = "tool_call_id"


@dataclass(frozen=True, slots=True)
class Sampling:
    """The client's sampling choices; None means the default (decided in core/sampling.py)."""

    max_tokens: int | None = None
    n: int = 1
    temperature: float | None = None
    top_p: float | None = None
    seed: int | None = None
    presence_penalty: float | None = None
    frequency_penalty: float | None = None
    # Top log-probabilities per answer token (0: the sampled token's own); None: none.
    logprobs: int | None = None
    top_k: int | None = None
    min_p: float | None = None
    repetition_penalty: float | None = None


ToolChoice = Literal["auto", "none", "required"]


@dataclass(frozen=True)
class GenerationRequest:
    """One generation, as every API asks for it."""

    model: str
    parts: tuple[Part, ...]
    tools: tuple[FunctionTool, ...] = ()
    # None: "auto" with tools, "none" without. A named choice is `named_tool` (a tool key).
    tool_choice: ToolChoice | None = None
    named_tool: str | None = None
    parallel_tool_calls: bool | None = None
    # The final answer's JSON schema (json_object: {"type": "object"}); None: free text.
    final_schema: dict[str, Any] | None = None
    reasoning_effort: str | None = None
    sampling: Sampling = field(default_factory=Sampling)
    stop: tuple[str, ...] = ()
    include_reasoning: bool = True
    stream: bool = False
    # Drop the oldest turns when the conversation does not fit the context (Responses
    # `truncation: "auto"`, proxy/core/truncation.py); else such a request is a 400.
    truncate: bool = False
    # Routing key over replicas (Responses `prompt_cache_key`).
    affinity_key: str | None = None
    # The engine's prefix-cache salt, derived from the caller's owner (proxy/core/cache_salt.py)
    # so one API key's cache hits never reveal another's prompts. None: a shared cache.
    cache_salt: str | None = None
    # Limits-relevant extras the APIs echo or store.
    metadata: dict[str, Any] | None = None
    user: str | None = None
    names: ParamNames = field(default_factory=ParamNames)
    # The id the answer carries (`chatcmpl-…`, `resp_…`); the engine's id derives from it.
    completion_id: str = ""

    def texts(self) -> list[str]:
        """The conversation's texts and call arguments: what dominates a prompt's size."""
        return [text for part in self.parts for text in part_texts(part)]

    def past_calls(self) -> int:
        return sum(len(p.calls) for p in self.parts if type(p) is AssistantTurn)


def part_texts(part: Part) -> list[str]:
    """A part's texts and call arguments (`GenerationRequest.texts`, one part)."""
    if type(part) is AssistantTurn:
        out = [part.reasoning] if part.reasoning else []
        out.append(part.text)
        out.extend(call.arguments for call in part.calls)
        return out
    if type(part) is ToolResult:
        return [part.output]
    return [part.text]  # type: ignore[union-attr]
