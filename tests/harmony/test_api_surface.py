"""`harmony` offers the public API of openai_harmony 0.0.8, so `import harmony as openai_harmony` works.

Checked by introspecting the reference: every public name, class member, signature (parameter
names, kinds and defaults), enum member, pydantic model schema and JSON shape; then real programs
written against openai_harmony run unchanged on both libraries with identical output.
"""

from __future__ import annotations

import enum
import inspect
import io
import textwrap
from contextlib import redirect_stdout
from types import ModuleType
from typing import Any

import openai_harmony
import pytest
from pydantic import BaseModel

import harmony

EXTRA_NAMES = [
    "ReasoningEffort",
    "ChannelConfig",
    "ToolNamespaceConfig",
    "RenderConversationConfig",
    "RenderOptions",
    "raise_disallowed_special_token",
]
PUBLIC_NAMES = [*openai_harmony.__all__, *EXTRA_NAMES]
CLASSES = [n for n in PUBLIC_NAMES if inspect.isclass(getattr(openai_harmony, n))]
MODELS = [n for n in CLASSES if issubclass(getattr(openai_harmony, n), BaseModel)]
ENUMS = [n for n in CLASSES if issubclass(getattr(openai_harmony, n), enum.Enum)]
# Documented extensions: keyword-only, defaulted, after every reference parameter.
EXTENSIONS = {("StreamableParser", "__init__"): {"recover"}}
# Built by load_harmony_encoding only; the reference's constructor takes its Rust object.
PRIVATE_CONSTRUCTORS = {("HarmonyEncoding", "__init__")}


def test_all_lists_the_same_names() -> None:
    assert sorted(harmony.__all__) == sorted(openai_harmony.__all__)


@pytest.mark.parametrize("name", PUBLIC_NAMES)
def test_public_name_exists(name: str) -> None:
    reference = getattr(openai_harmony, name)
    ours = getattr(harmony, name)
    assert inspect.isclass(ours) == inspect.isclass(reference)
    assert callable(ours) == callable(reference)


def _members(cls: type) -> list[str]:
    return [a for a in vars(cls) if not a.startswith("_") or a == "__init__"]


def _parameters(func: Any) -> list[tuple[str, Any, Any]]:
    return [(p.name, p.kind, p.default) for p in inspect.signature(func).parameters.values()]


def _assert_same_signature(ours: Any, reference: Any, where: tuple[str, str]) -> None:
    theirs = _parameters(reference)
    mine = _parameters(ours)
    extra = EXTENSIONS.get(where, set())
    head, tail = mine[: len(theirs)], mine[len(theirs) :]
    assert head == theirs, f"{where}: {inspect.signature(ours)} vs {inspect.signature(reference)}"
    for name, kind, default in tail:
        assert name in extra and kind is inspect.Parameter.KEYWORD_ONLY
        assert default is not inspect.Parameter.empty


@pytest.mark.parametrize("name", CLASSES)
def test_class_members_match(name: str) -> None:
    """Same kind of member (property, classmethod, staticmethod, method) and same signature."""
    reference, ours = getattr(openai_harmony, name), getattr(harmony, name)
    for member in _members(reference):
        theirs = inspect.getattr_static(reference, member)
        mine = inspect.getattr_static(ours, member, None)
        assert mine is not None, f"{name}.{member} is missing"
        if isinstance(theirs, enum.Enum):
            continue
        kind = type(theirs).__name__
        if isinstance(theirs, property | classmethod | staticmethod):
            assert type(mine) is type(theirs), f"{name}.{member}: {type(mine)} is not a {kind}"
        if (name, member) in PRIVATE_CONSTRUCTORS:
            continue
        if callable(getattr(reference, member)) and not isinstance(theirs, property):
            _assert_same_signature(
                getattr(ours, member), getattr(reference, member), (name, member)
            )


@pytest.mark.parametrize("name", [n for n in PUBLIC_NAMES if n not in CLASSES])
def test_function_signatures_match(name: str) -> None:
    _assert_same_signature(getattr(harmony, name), getattr(openai_harmony, name), ("", name))


@pytest.mark.parametrize("name", CLASSES)
def test_class_hierarchy_matches(name: str) -> None:
    """Same base-class names (str+Enum roles, BaseModel contents, HarmonyError(RuntimeError))."""

    def bases(cls: type) -> list[str]:
        return [b.__name__ for b in cls.__mro__]

    assert bases(getattr(harmony, name)) == bases(getattr(openai_harmony, name))


@pytest.mark.parametrize("name", ENUMS)
def test_enum_members_and_values_match(name: str) -> None:
    def members(cls: type[enum.Enum]) -> list[tuple[str, Any]]:
        return [(m.name, m.value) for m in cls]

    assert members(getattr(harmony, name)) == members(getattr(openai_harmony, name))


def _without_descriptions(schema: Any) -> Any:
    """Docstrings leak into JSON schemas as "description"; the shapes are what must agree."""
    if isinstance(schema, dict):
        return {k: _without_descriptions(v) for k, v in schema.items() if k != "description"}
    if isinstance(schema, list):
        return [_without_descriptions(v) for v in schema]
    return schema


@pytest.mark.parametrize("name", MODELS)
def test_pydantic_model_schema_matches(name: str) -> None:
    ours = getattr(harmony, name).model_json_schema()
    reference = getattr(openai_harmony, name).model_json_schema()
    assert _without_descriptions(ours) == _without_descriptions(reference)


def _json_shapes(lib: ModuleType) -> list[Any]:
    params = {"type": "object", "properties": {"x": {"type": "integer", "default": None}}}
    tools = [
        lib.ToolDescription.new("f", "does f", parameters=params),
        lib.ToolDescription.new("g", "does g"),
    ]
    system = lib.SystemContent.new().with_browser_tool().with_conversation_start_date("2025-01-01")
    developer = lib.DeveloperContent.new().with_instructions("hi").with_function_tools(tools)
    call = (
        lib.Message.from_role_and_content(lib.Role.ASSISTANT, '{"x": 1}')
        .with_channel("commentary")
        .with_recipient("functions.f")
        .with_content_type("<|constrain|>json")
    )
    result = lib.Message.from_author_and_content(lib.Author.new(lib.Role.TOOL, "functions.f"), "ok")
    conversation = lib.Conversation.from_messages(
        [
            lib.Message.from_role_and_content(lib.Role.SYSTEM, system),
            lib.Message.from_role_and_content(lib.Role.DEVELOPER, developer),
            lib.Message.from_role_and_contents(
                lib.Role.USER, [lib.TextContent(text="a"), lib.TextContent(text="é")]
            ),
            call,
            result,
        ]
    )
    restored = lib.Conversation.from_json(conversation.to_json())
    return [
        system.to_dict(),
        developer.to_dict(),
        lib.SystemContent.from_dict(system.to_dict()).to_dict(),
        lib.DeveloperContent.from_dict(developer.to_dict()).to_dict(),
        call.to_dict(),
        call.to_json(),
        result.to_dict(),
        lib.Message.from_dict({"role": "user", "content": "plain string"}).to_dict(),
        conversation.to_dict(),
        conversation.to_json(),
        restored.to_json(),
        [m.to_dict() for m in conversation],
        lib.ToolNamespaceConfig.browser().model_dump(),
        lib.ToolNamespaceConfig.python().model_dump(),
        lib.ChannelConfig.require_channels(["analysis"]).model_dump(),
        lib.RenderConversationConfig().model_dump(),
        lib.RenderOptions().model_dump(),
        str(lib.HarmonyEncodingName.HARMONY_GPT_OSS),
        lib.load_harmony_encoding("HarmonyGptOss").name,
    ]


def test_json_shapes_match() -> None:
    assert _json_shapes(harmony) == _json_shapes(openai_harmony)


def test_harmony_error_is_a_runtime_error() -> None:
    assert issubclass(harmony.HarmonyError, RuntimeError)


# -- programs written for openai_harmony -----------------------------------------------------------

PROGRAMS = {
    "readme": """
        from openai_harmony import (
            Author, Conversation, DeveloperContent, HarmonyEncodingName, Message, Role,
            SystemContent, ToolDescription, load_harmony_encoding, ReasoningEffort,
        )
        encoding = load_harmony_encoding(HarmonyEncodingName.HARMONY_GPT_OSS)
        system_message = (
            SystemContent.new()
            .with_reasoning_effort(ReasoningEffort.HIGH)
            .with_conversation_start_date("2025-06-28")
        )
        developer_message = (
            DeveloperContent.new()
            .with_instructions("Always respond in riddles")
            .with_function_tools([
                ToolDescription.new(
                    "get_current_weather",
                    "Gets the current weather in the provided location.",
                    parameters={
                        "type": "object",
                        "properties": {
                            "location": {"type": "string", "description": "The city"},
                            "format": {"type": "string", "enum": ["celsius", "fahrenheit"],
                                       "default": "celsius"},
                        },
                        "required": ["location"],
                    },
                ),
            ])
        )
        convo = Conversation.from_messages([
            Message.from_role_and_content(Role.SYSTEM, system_message),
            Message.from_role_and_content(Role.DEVELOPER, developer_message),
            Message.from_role_and_content(Role.USER, "What is the weather in Tokyo?"),
            Message.from_role_and_content(
                Role.ASSISTANT,
                'User asks: "What is the weather in Tokyo?" We need to use get_weather tool.',
            ).with_channel("analysis"),
            Message.from_role_and_content(Role.ASSISTANT, '{"location": "Tokyo"}')
            .with_channel("commentary")
            .with_recipient("functions.get_current_weather")
            .with_content_type("<|constrain|>json"),
            Message.from_author_and_content(
                Author.new(Role.TOOL, "functions.get_current_weather"),
                '{ "temperature": 20, "sunny": true }',
            ).with_channel("commentary"),
        ])
        tokens = encoding.render_conversation_for_completion(convo, Role.ASSISTANT)
        print(len(tokens), encoding.decode_utf8(tokens)[-300:])
        completion = encoding.encode(
            "<|channel|>final<|message|>It is 20 degrees and sunny in Tokyo.<|return|>",
            allowed_special="all",
        )
        parsed = encoding.parse_messages_from_completion_tokens(completion, role=Role.ASSISTANT)
        print([m.to_dict() for m in parsed])
        try:
            encoding.parse_messages_from_completion_tokens(tokens, role=Role.ASSISTANT)
        except Exception as exc:  # prompt tokens end in <|start|>assistant (issue #33)
            print(type(exc).__name__, exc)
        print(sorted(encoding.stop_tokens_for_assistant_actions()))
    """,
    "gpt_oss_chat_loop": """
        import openai_harmony
        from openai_harmony import StreamState
        enc = openai_harmony.load_harmony_encoding("HarmonyGptOss")
        system = openai_harmony.SystemContent.new().with_reasoning_effort(
            openai_harmony.ReasoningEffort.LOW).with_tools(
            openai_harmony.ToolNamespaceConfig.python())
        messages = [openai_harmony.Message.from_role_and_content(
            openai_harmony.Role.SYSTEM, system)]
        messages.append(openai_harmony.Message.from_role_and_content(
            openai_harmony.Role.USER, "Compute 2**10 with python"))
        prompt = enc.render_conversation_for_completion(
            openai_harmony.Conversation.from_messages(messages), openai_harmony.Role.ASSISTANT)
        sampled = enc.encode(
            "<|channel|>analysis<|message|>Use python.<|end|><|start|>assistant"
            "<|channel|>analysis to=python code<|message|>print(2**10)<|call|>",
            allowed_special="all")
        parser = openai_harmony.StreamableParser(enc, role=openai_harmony.Role.ASSISTANT)
        for token in sampled:
            parser.process(token)
            if parser.state == StreamState.EXPECT_START:
                print("message done", len(parser.messages))
            print(parser.current_channel, parser.current_recipient, repr(parser.last_content_delta))
        messages += parser.messages
        print(len(prompt), enc.render_conversation(
            openai_harmony.Conversation.from_messages(messages))[-12:])
        raw = enc.render(openai_harmony.Message.from_role_and_content(
            openai_harmony.Role.USER, ""))
        print(raw[:-1], raw[-1:], enc.decode(raw))
    """,
    "responses_api": """
        from openai_harmony import Author, Message, Role, TextContent, load_harmony_encoding
        encoding = load_harmony_encoding("HarmonyGptOss")
        output = encoding.encode(
            "<|channel|>commentary to=functions.lookup <|constrain|>json<|message|>{\\"q\\":1}",
            allowed_special="all")
        for entry in encoding.parse_messages_from_completion_tokens(output, Role.ASSISTANT):
            d = entry.to_dict()
            print(d.get("recipient", ""), d["content"][0]["text"], d.get("content_type"))
        tool = Message(author=Author(role=Role.TOOL, name="browser.search"),
                       content=[TextContent(text="result")]).with_recipient("assistant")
        print(encoding.render(tool), tool.to_json())
        try:
            encoding.parse_messages_from_completion_tokens([200006, 173781], None)
        except Exception as exc:
            print(type(exc).__name__, exc)
    """,
}


def _run(source: str, lib: ModuleType) -> str:
    """Run a program written for openai_harmony with `lib` standing in for it."""
    code = textwrap.dedent(source)
    if lib is harmony:
        code = code.replace("import openai_harmony", "import harmony as openai_harmony")
        code = code.replace("from openai_harmony import", "from harmony import")
    output = io.StringIO()
    with redirect_stdout(output):
        exec(compile(code, f"<{lib.__name__} program>", "exec"), {})  # noqa: S102
    return output.getvalue()


@pytest.mark.parametrize("program", list(PROGRAMS))
def test_openai_harmony_program_runs_unchanged(program: str) -> None:
    assert _run(PROGRAMS[program], harmony) == _run(PROGRAMS[program], openai_harmony)
