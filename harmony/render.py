"""Rendering messages and conversations into Harmony prompt tokens (spec §2-§6).

Each header field and each content item is BPE-encoded as its own piece, exactly like the
reference: encoding the whole prompt at once would merge tokens across piece boundaries and give
different ids. Rendering is on the hot path of every request, so what repeats across requests
(system/developer texts with their tool namespaces, header pieces) is cached by value.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Sequence

import pydantic_core

from . import _tokens as tk
from ._serde import InvalidJSON, load_parameters, payload_error
from .models import (
    Content,
    Conversation,
    DeveloperContent,
    Message,
    ReasoningEffort,
    RenderConversationConfig,
    Role,
    SystemContent,
    TextContent,
    ToolNamespaceConfig,
)
from .schema_ts import to_typescript

_CONSTRAIN_TEXT = "<|constrain|>"
_CALLS_LINE = "Calls to these tools must go to the commentary channel: 'functions'."


class RenderError(Exception):
    """A conversation the reference refuses to render; the caller picks the exception type."""


def _rust_lines(text: str) -> list[str]:
    """Rust's `str::lines`: split on \\n, drop one \\r before each \\n, no final empty line.

    A \\r not followed by \\n (e.g. at the very end) is kept, as in Rust.
    """
    if not text:
        return []
    lines = text.split("\n")
    last = lines.pop()
    lines = [line[:-1] if line.endswith("\r") else line for line in lines]
    if last:
        lines.append(last)
    return lines


def _normalise(value: object) -> object:
    """What the reference's Rust core sees: parameters after json.dumps and serde_json's parse.

    Raises `_serde.InvalidJSON`; the encoding turns it into the reference's positioned error.
    """
    return load_parameters(value)


def _namespace_block(ns: ToolNamespaceConfig) -> str:
    lines = [f"## {ns.name}\n"]
    if ns.description is not None:
        prefix = "// " if ns.tools else ""
        lines.extend(prefix + line for line in _rust_lines(ns.description))
    if ns.tools:
        lines.append(f"namespace {ns.name} {{\n")
        for tool in ns.tools:
            lines.extend("// " + line for line in _rust_lines(tool.description))
            if tool.parameters is None:
                lines.append(f"type {tool.name} = () => any;\n")
            else:
                schema = to_typescript(_normalise(tool.parameters))
                lines.append(f"type {tool.name} = (_: {schema}) => any;\n")
        lines.append(f"}} // namespace {ns.name}")
    return "\n".join(lines)


def _tools_section(tools: dict[str, ToolNamespaceConfig]) -> str:
    # Namespaces in key order (the reference keeps them in a BTreeMap), not insertion order.
    return "\n\n".join(["# Tools", *(_namespace_block(tools[key]) for key in sorted(tools))])


def system_text(content: SystemContent, has_function_tools: bool) -> str:
    sections = []
    top = []
    if content.model_identity is not None:
        top.append(content.model_identity)
    if content.knowledge_cutoff is not None:
        top.append(f"Knowledge cutoff: {content.knowledge_cutoff}")
    if content.conversation_start_date is not None:
        top.append(f"Current date: {content.conversation_start_date}")
    if top:
        sections.append("\n".join(top))
    effort = content.reasoning_effort
    if effort is not None:
        # Builders assign without validation: a plain "High" works upstream (it is the JSON
        # form), anything else fails in its serde_json parse (the encoding reports where).
        if not isinstance(effort, ReasoningEffort):
            if effort not in ("Low", "Medium", "High"):
                raise InvalidJSON(f"invalid reasoning effort {effort!r}")
            effort = ReasoningEffort(effort)
        sections.append(f"Reasoning: {effort.value.lower()}")
    if content.tools:
        sections.append(_tools_section(content.tools))
    channels = content.channel_config
    if channels is not None and channels.valid_channels:
        line = f"# Valid channels: {', '.join(channels.valid_channels)}."
        if channels.channel_required:
            line += " Channel must be included for every message."
        if has_function_tools:
            line += "\n" + _CALLS_LINE
        sections.append(line)
    return "\n\n".join(sections)


def developer_text(content: DeveloperContent) -> str:
    sections = []
    if content.instructions is not None:
        sections += ["# Instructions", content.instructions]
    if content.tools:
        sections.append(_tools_section(content.tools))
    return "\n\n".join(sections)


def has_function_tools(messages: Sequence[Message]) -> bool:
    """True iff a developer content declares a non-empty `functions` namespace (spec §3.2)."""
    for message in messages:
        for content in message.content:
            if isinstance(content, DeveloperContent) and content.tools:
                functions = content.tools.get("functions")
                if functions is not None and functions.tools:
                    return True
    return False


def _cache_key(content: SystemContent | DeveloperContent) -> bytes:
    """The content by value; NaN/Infinity stay distinct from None (model_dump_json makes all null)."""
    data = content.model_dump()
    try:
        return pydantic_core.to_json(data, inf_nan_mode="constants")
    except pydantic_core.PydanticSerializationError:  # lone surrogates: the render refuses them
        return json.dumps(data).encode()


def _refuse_unparseable(message: Message) -> None:
    """A dropped message is still in the reference's JSON payload, which serde_json must accept
    (no lone surrogates, no NaN); checked cheaply for the usual all-ASCII analysis message."""
    header = (message.author.name, message.recipient, message.channel, message.content_type)
    if all(isinstance(c, TextContent) and c.text.isascii() for c in message.content) and all(
        s is None or s.isascii() for s in header
    ):
        return
    if payload_error(message.to_json()) is not None:
        raise InvalidJSON("the message is not valid JSON for the reference")


class Renderer:
    """Turns messages into token ids with one tiktoken encoding, caching repeated pieces."""

    def __init__(self, encode_ordinary: Callable[[str], list[int]]) -> None:
        self._encode = encode_ordinary
        self.piece = functools.lru_cache(maxsize=4096)(encode_ordinary)
        self._text_cache: dict[str, list[int]] = {}

    def _cached_text(self, key: str, build: Callable[[], str]) -> list[int]:
        tokens = self._text_cache.get(key)
        if tokens is None:
            tokens = self._encode(build())
            if len(self._text_cache) > 256:
                self._text_cache.clear()
            self._text_cache[key] = tokens
        return tokens

    def _content(self, content: Content, role: Role, function_tools: bool) -> list[int]:
        if isinstance(content, TextContent):
            return self._encode(content.text)
        if isinstance(content, SystemContent):
            if role is not Role.SYSTEM:
                raise RenderError(
                    f"SystemContent may only appear in system messages, found in {_debug(role)}"
                )
            key = f"s{int(function_tools)}{_cache_key(content)}"
            return self._cached_text(key, lambda: system_text(content, function_tools))
        if isinstance(content, DeveloperContent):
            if role is not Role.DEVELOPER:
                raise RenderError(
                    "DeveloperContent may only appear in developer messages, "
                    f"found in {_debug(role)}"
                )
            key = f"d{_cache_key(content)}"
            return self._cached_text(key, lambda: developer_text(content))
        content.to_dict()  # the base class cannot be serialised: NotImplementedError, as upstream
        raise RenderError(f"unknown content type {type(content).__name__}")

    def message(self, message: Message, function_tools: bool) -> list[int]:
        """One message: header pieces, `<|message|>`, contents, `<|end|>` or `<|call|>`."""
        piece = self.piece
        author = message.author
        out = [tk.START]
        if author.role is Role.TOOL:
            if author.name is None:
                raise RenderError("Tools should have a name!")
            out += piece(author.name)
        else:
            out += piece(author.role.value)
            if author.name is not None:
                out += piece(":" + author.name)
        if message.recipient is not None and message.recipient != "all":
            out += piece(" to=" + message.recipient)
        if message.channel is not None:
            out.append(tk.CHANNEL)
            out += piece(message.channel)
        content_type = message.content_type
        if content_type is not None:
            if content_type.startswith(_CONSTRAIN_TEXT):
                out += (220, tk.CONSTRAIN)
                rest = content_type[len(_CONSTRAIN_TEXT) :]
                if rest:
                    out += piece(rest)
            else:
                out += piece(" " + content_type)
        out.append(tk.MESSAGE)
        for content in message.content:
            out += self._content(content, author.role, function_tools)
        is_call = author.role is Role.ASSISTANT and message.recipient is not None
        out.append(tk.CALL if is_call else tk.END)
        return out

    def conversation(
        self, conversation: Conversation, config: RenderConversationConfig | None
    ) -> list[int]:
        """The shared core of the three conversation renderers, with the reference's drop rule."""
        messages = conversation.messages
        function_tools = has_function_tools(messages)
        drop_before = -1
        if config is not None and config.auto_drop_analysis:
            last_assistant = next(
                (m for m in reversed(messages) if m.author.role is Role.ASSISTANT), None
            )
            if last_assistant is not None and last_assistant.channel == "final":
                drop_before = next((i for i, m in enumerate(messages) if m.channel == "final"), -1)
        out: list[int] = []
        for i, message in enumerate(messages):
            if i < drop_before and message.channel == "analysis":
                _refuse_unparseable(message)
                continue
            out += self.message(message, function_tools)
        return out


def _debug(role: Role) -> str:
    """Rust's Debug name of a role, as it appears in the reference's messages ("User")."""
    return role.name.capitalize()
