"""Run one call against our `harmony` and the reference `openai_harmony`, and compare the outcomes.

The reference (openai-harmony 0.0.8) is the oracle: whatever it returns or raises is the
specification. An outcome is either a value or the pair (exception class name, message), so two
implementations agree only if they raise the *same class* with the *same message* (HarmonyError vs
RuntimeError vs ValueError matters, spec §10). Builders turn neutral, hypothesis-generated specs
(plain dicts/tuples, see `strategies.py`) into each library's own objects through its public
builder API, so the builders themselves are part of what is compared.
"""

from __future__ import annotations

import copy
import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import openai_harmony

import harmony

OURS: ModuleType = harmony
REFERENCE: ModuleType = openai_harmony


@functools.cache
def encoding(lib: ModuleType) -> Any:
    """The HarmonyGptOss encoding of `lib`, loaded once per test session."""
    return lib.load_harmony_encoding(lib.HarmonyEncodingName.HARMONY_GPT_OSS)


@dataclass(frozen=True)
class Outcome:
    """What a call did: returned `value`, or raised `error` = (class name, message)."""

    value: Any = None
    error: tuple[str, str] | None = None


def outcome(call: Callable[[], Any]) -> Outcome:
    """Run `call`, capturing its return value or its exception as comparable data."""
    try:
        return Outcome(value=call())
    except Exception as exc:  # noqa: BLE001 - the exception *is* the observed behaviour
        return Outcome(error=(type(exc).__name__, str(exc)))


def both(call: Callable[[ModuleType], Any]) -> tuple[Outcome, Outcome]:
    """(ours, reference) outcomes of `call(lib)`."""
    return outcome(lambda: call(OURS)), outcome(lambda: call(REFERENCE))


# -- builders: neutral spec -> library objects ---------------------------------------------------


def build_tool(lib: ModuleType, spec: dict[str, Any]) -> Any:
    """ToolDescription via `ToolDescription.new` (parameters deep-copied: libraries must not share)."""
    return lib.ToolDescription.new(
        spec["name"], spec["description"], parameters=copy.deepcopy(spec["parameters"])
    )


def build_namespace(lib: ModuleType, spec: dict[str, Any]) -> Any:
    """ToolNamespaceConfig: the built-in browser/python configs or a custom namespace."""
    if spec["kind"] == "browser":
        return lib.ToolNamespaceConfig.browser()
    if spec["kind"] == "python":
        return lib.ToolNamespaceConfig.python()
    return lib.ToolNamespaceConfig(
        name=spec["name"],
        description=spec["description"],
        tools=[build_tool(lib, t) for t in spec["tools"]],
    )


def _system_argument(lib: ModuleType, method: str, arg: Any) -> Any:
    if method == "with_reasoning_effort":
        return lib.ReasoningEffort[arg]
    if method == "with_channel_config":
        channels, required = arg
        return lib.ChannelConfig(valid_channels=list(channels), channel_required=required)
    if method == "with_tools":
        return build_namespace(lib, arg)
    if method == "with_function_tools":
        return [build_tool(lib, t) for t in arg]
    if isinstance(arg, list):
        return list(arg)
    return arg


def build_system(lib: ModuleType, spec: dict[str, Any]) -> Any:
    """SystemContent from `new()` (or all-None fields), then the spec's builder calls in order."""
    if spec["base"] == "new":
        content = lib.SystemContent.new()
    else:
        content = lib.SystemContent(
            model_identity=None,
            reasoning_effort=None,
            conversation_start_date=None,
            knowledge_cutoff=None,
            channel_config=None,
            tools=None,
        )
    return _apply_calls(lib, content, spec["calls"])


def build_developer(lib: ModuleType, spec: dict[str, Any]) -> Any:
    """DeveloperContent from `new()`, then the spec's builder calls in order."""
    return _apply_calls(lib, lib.DeveloperContent.new(), spec["calls"])


def _apply_calls(lib: ModuleType, content: Any, calls: Sequence[tuple[Any, ...]]) -> Any:
    for method, *args in calls:
        returned = getattr(content, method)(*[_system_argument(lib, method, a) for a in args])
        assert returned is content, f"{method} must return self"
    return content


def build_content(lib: ModuleType, spec: tuple[str, Any]) -> Any:
    kind, payload = spec
    if kind == "text":
        return lib.TextContent(text=payload)
    if kind == "system":
        return build_system(lib, payload)
    return build_developer(lib, payload)


def build_message(lib: ModuleType, spec: dict[str, Any]) -> Any:
    """Message through the builder API: from_author_and_content + adding_content + with_*()."""
    author = lib.Author(role=lib.Role(spec["role"]), name=spec["name"])
    contents = spec["contents"]
    if not contents:
        message = lib.Message(author=author)
    else:
        first = contents[0]
        message = lib.Message.from_author_and_content(
            author, first[1] if first[0] == "text" else build_content(lib, first)
        )
        for extra in contents[1:]:
            message = message.adding_content(
                extra[1] if extra[0] == "text" else build_content(lib, extra)
            )
    if spec["channel"] is not None:
        message = message.with_channel(spec["channel"])
    if spec["recipient"] is not None:
        message = message.with_recipient(spec["recipient"])
    if spec["content_type"] is not None:
        message = message.with_content_type(spec["content_type"])
    return message


def build_conversation(lib: ModuleType, messages: Sequence[dict[str, Any]]) -> Any:
    return lib.Conversation.from_messages([build_message(lib, m) for m in messages])


def render(lib: ModuleType, request: dict[str, Any]) -> list[int]:
    """Perform the rendering call described by `request` (see `strategies.render_requests`)."""
    enc = encoding(lib)
    conversation = build_conversation(lib, request["messages"])
    drop = request["auto_drop_analysis"]
    config = None if drop is None else lib.RenderConversationConfig(auto_drop_analysis=drop)
    method = request["method"]
    if method == "completion":
        return enc.render_conversation_for_completion(
            conversation, lib.Role(request["next_turn_role"]), config
        )
    if method == "conversation":
        return enc.render_conversation(conversation, config)
    if method == "training":
        return enc.render_conversation_for_training(conversation, config)
    options = request["render_options"]
    render_options = (
        None if options is None else lib.RenderOptions(conversation_has_function_tools=options)
    )
    return enc.render(conversation.messages[0], render_options)


# -- streaming parser snapshots --------------------------------------------------------------------


def parser_snapshot(parser: Any) -> dict[str, Any]:
    """Every observable piece of StreamableParser state, as plain comparable data."""
    role = parser.current_role
    return {
        "state": parser.state.value,
        "state_data": parser.state_data,
        "current_role": None if role is None else role.value,
        "current_channel": parser.current_channel,
        "current_recipient": parser.current_recipient,
        "current_content_type": parser.current_content_type,
        "current_content": parser.current_content,
        "last_content_delta": parser.last_content_delta,
        "messages": [m.to_dict() for m in parser.messages],
        "tokens": list(parser.tokens),
    }


def stream_trace(
    lib: ModuleType, tokens: Sequence[int], role: str | None, strict: bool, eos: bool
) -> list[Any]:
    """Feed `tokens` one at a time; after each, the error it raised (or None) and the snapshot.

    Feeding goes on after an error (servers catch HarmonyError and carry on), so the state an
    error leaves behind is compared too.
    """
    role_value = None if role is None else lib.Role(role)
    created = outcome(lambda: lib.StreamableParser(encoding(lib), role_value, strict=strict))
    if created.error is not None:
        return [("constructor error", created.error)]
    parser = created.value
    trace: list[Any] = [parser_snapshot(parser)]
    steps: list[Callable[[], Any]] = [functools.partial(parser.process, t) for t in tokens]
    if eos:
        steps.append(parser.process_eos)
    for step in steps:
        result = outcome(step)
        if result.error is None:
            assert result.value is parser, "process()/process_eos() must return the parser"
        trace.append((result.error, parser_snapshot(parser)))
    return trace


def parse(
    lib: ModuleType, tokens: Sequence[int], role: str | None, strict: bool
) -> list[dict[str, Any]]:
    """parse_messages_from_completion_tokens, as Message.to_dict() data."""
    role_value = None if role is None else lib.Role(role)
    messages = encoding(lib).parse_messages_from_completion_tokens(
        list(tokens), role_value, strict=strict
    )
    return [m.to_dict() for m in messages]
