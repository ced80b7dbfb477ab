"""Port of the reference's own suite (openai/harmony tests/test_harmony.py, spec §12).

Every test runs twice: against `harmony` and against the reference `openai_harmony` itself. The
golden files under data/reference/ were reconstructed from the spec (§3.4, §5.3, §7 give several
byte-exact) and the reference; the reference passing the same test is the proof they are right.
Render golden files hold text: "tokens" tests encode it with allowed_special="all" and compare
token lists, "text" tests compare decoded text. Parse golden files hold token ids.
"""

from __future__ import annotations

from pathlib import Path
from types import ModuleType

import openai_harmony
import pytest
from pydantic import ValidationError

import harmony
from tests.harmony.differential import encoding

DATA = Path(__file__).resolve().parent / "data" / "reference"
IDENTITY = "You are ChatGPT, a large language model trained by OpenAI."


@pytest.fixture(params=[harmony, openai_harmony], ids=["harmony", "reference"])
def lib(request: pytest.FixtureRequest) -> ModuleType:
    return request.param


@pytest.fixture
def enc(lib: ModuleType):
    """load_harmony_encoding(HarmonyEncodingName.HARMONY_GPT_OSS), once per library."""
    return encoding(lib)


def golden_text(name: str) -> str:
    return (DATA / name).read_text(encoding="utf-8").rstrip()


def golden_tokens(name: str) -> list[int]:
    return [int(x) for x in (DATA / name).read_text(encoding="utf-8").split()]


def completion(lib: ModuleType, enc, messages: list, config=None) -> list[int]:
    conversation = lib.Conversation.from_messages(messages)
    return enc.render_conversation_for_completion(conversation, lib.Role.ASSISTANT, config)


def msg(lib: ModuleType, role: str, content):
    return lib.Message.from_role_and_content(lib.Role(role), content)


# -- rendering against golden files -------------------------------------------------------------


def test_simple_convo(lib, enc):
    system = lib.SystemContent.new().with_model_identity(IDENTITY)
    tokens = completion(lib, enc, [msg(lib, "system", system), msg(lib, "user", "What is 2 + 2?")])
    assert tokens == enc.encode(golden_text("test_simple_convo.txt"), allowed_special="all")


@pytest.mark.parametrize("effort", ["LOW", "MEDIUM", "HIGH"])
@pytest.mark.parametrize("with_instruction", [True, False])
def test_simple_convo_with_effort(lib, enc, effort: str, with_instruction: bool):
    system = (
        lib.SystemContent.new()
        .with_model_identity(IDENTITY)
        .with_reasoning_effort(lib.ReasoningEffort[effort])
    )
    messages = [msg(lib, "system", system)]
    if with_instruction:
        dev = lib.DeveloperContent.new().with_instructions(
            "Answer the user's questions like a robot."
        )
        messages.append(msg(lib, "developer", dev))
    messages.append(msg(lib, "user", "What is the capital of the largest country in the world?"))
    suffix = "" if with_instruction else "_no_instruction"
    expected = golden_text(f"test_simple_convo_{effort.lower()}_effort{suffix}.txt")
    assert completion(lib, enc, messages) == enc.encode(expected, allowed_special="all")


@pytest.mark.parametrize(
    ("golden", "effort", "user", "dates"),
    [
        ("test_reasoning_system_message.txt", "MEDIUM", "What is 2 + 2?", False),
        (
            "test_reasoning_system_message_no_instruction.txt",
            "HIGH",
            "What is the best place to eat candy in the world?",
            False,
        ),
        ("test_reasoning_system_message_with_dates.txt", "MEDIUM", "What is 42 * pi?", True),
    ],
)
def test_reasoning_system_message(lib, enc, golden: str, effort: str, user: str, dates: bool):
    system = (
        lib.SystemContent.new()
        .with_model_identity(IDENTITY)
        .with_reasoning_effort(lib.ReasoningEffort[effort])
    )
    if dates:
        system = system.with_conversation_start_date("2021-01-01").with_knowledge_cutoff("2021-01")
    system = system.with_required_channels(["analysis", "final"])
    tokens = completion(lib, enc, [msg(lib, "system", system), msg(lib, "user", user)])
    assert tokens == enc.encode(golden_text(golden), allowed_special="all")


def _weather_schema(plural: bool) -> dict:
    key = "locations" if plural else "location"
    location = (
        {
            "type": "array",
            "items": {"type": "string"},
            "description": 'List of city and state, e.g. ["San Francisco, CA", "New York, NY"]',
        }
        if plural
        else {"type": "string", "description": "The city and state, e.g. San Francisco, CA"}
    )
    return {
        "type": "object",
        "properties": {
            key: location,
            "format": {"type": "string", "enum": ["celsius", "fahrenheit"], "default": "celsius"},
        },
        "required": [key],
    }


KITCHENSINK = {
    "description": "params object",
    "type": "object",
    "properties": {
        "string": {
            "type": "string",
            "title": "STRING",
            "description": "A string",
            "examples": ["hello", "world"],
        },
        "string_nullable": {
            "type": "string",
            "nullable": True,
            "description": "A nullable string",
            "default": "the default",
        },
        "string_enum": {"type": "string", "enum": ["a", "b", "c"]},
        "oneof_string_or_number": {
            "oneOf": [
                {"type": "string", "default": "default_string_in_oneof"},
                {"type": "number", "description": "numbers can happen too"},
            ],
            "description": "a oneof",
            "default": 20,
        },
    },
}


def test_render_functions_with_parameters(lib, enc):
    system = (
        lib.SystemContent.new()
        .with_reasoning_effort(lib.ReasoningEffort.HIGH)
        .with_conversation_start_date("2025-06-28")
    )
    tool = lib.ToolDescription.new
    dev = (
        lib.DeveloperContent.new()
        .with_instructions("Always respond in riddles")
        .with_function_tools(
            [
                tool("get_location", "Gets the location of the user."),
                tool(
                    "get_current_weather",
                    "Gets the current weather in the provided location.",
                    parameters=_weather_schema(plural=False),
                ),
                tool(
                    "get_multiple_weathers",
                    "Gets the current weather in the provided list of locations.",
                    parameters=_weather_schema(plural=True),
                ),
                tool(
                    "kitchensink",
                    "A function with various complex schemas.",
                    parameters=KITCHENSINK,
                ),
            ]
        )
    )
    messages = [
        msg(lib, "system", system),
        msg(lib, "developer", dev),
        msg(lib, "user", "What is the weather like in SF?"),
    ]
    tokens = completion(lib, enc, messages)
    assert enc.decode_utf8(tokens) == golden_text("test_render_functions_with_parameters.txt")


def _dated_system(lib):
    return lib.SystemContent.new().with_conversation_start_date("2025-06-28")


def test_no_tools(lib, enc):
    tokens = completion(lib, enc, [msg(lib, "system", _dated_system(lib))])
    assert enc.decode_utf8(tokens) == golden_text("test_no_tools.txt")


def test_browser_tool_only(lib, enc):
    system = _dated_system(lib).with_browser_tool()
    tokens = completion(lib, enc, [msg(lib, "system", system)])
    assert enc.decode_utf8(tokens) == golden_text("test_browser_tool_only.txt")


def test_browser_and_function_tool(lib, enc):
    lookup = lib.ToolDescription.new(
        "lookup_weather",
        "Use this tool to lookup the weather in a given location. Call it with the parameter "
        "'location', can be any textual description of a location.",
        parameters={
            "type": "object",
            "properties": {"location": {"type": "string"}},
            "required": ["location"],
        },
    )
    messages = [
        msg(lib, "system", _dated_system(lib).with_browser_tool()),
        msg(lib, "developer", lib.DeveloperContent.new().with_function_tools([lookup])),
    ]
    tokens = completion(lib, enc, messages)
    assert enc.decode_utf8(tokens) == golden_text("test_browser_and_function_tool.txt")


def test_browser_and_python_tool(lib, enc):
    system = _dated_system(lib).with_browser_tool().with_python_tool()
    tokens = completion(lib, enc, [msg(lib, "system", system)])
    assert enc.decode_utf8(tokens) == golden_text("test_browser_and_python_tool.txt")


def _two_plus_two(lib, analysis: str) -> list:
    return [
        msg(lib, "user", "What is 2 + 2?"),
        msg(lib, "assistant", analysis).with_channel("analysis"),
        msg(lib, "assistant", "2 + 2 equals 4.").with_channel("final"),
        msg(lib, "user", "What about 9 / 2?"),
    ]


def test_dropping_cot_by_default(lib, enc):
    messages = _two_plus_two(
        lib, "User asks: \u201cWhat is 2 + 2?\u201d Simple arithmetic. Provide answer."
    )
    config = lib.RenderConversationConfig(auto_drop_analysis=True)
    tokens = completion(lib, enc, messages, config)
    assert enc.decode_utf8(tokens) == golden_text("test_dropping_cot_by_default.txt")


def test_preserve_cot(lib, enc):
    messages = _two_plus_two(lib, 'User asks a simple question: "What is 2 + 2?" The answer: 4.')
    config = lib.RenderConversationConfig(auto_drop_analysis=False)
    tokens = completion(lib, enc, messages, config)
    assert enc.decode_utf8(tokens) == golden_text("test_preserve_cot.txt")


def test_does_not_drop_if_ongoing_analysis(lib, enc):
    messages = [
        msg(lib, "user", "What is the weather in SF?"),
        msg(
            lib,
            "assistant",
            "User asks: \u201cWhat is the weather in SF?\u201d We need to use lookup_weather tool.",
        ).with_channel("analysis"),
        msg(lib, "assistant", '{"location": "San Francisco"}')
        .with_channel("commentary")
        .with_recipient("functions.lookup_weather")
        .with_content_type("<|constrain|>json"),
        lib.Message.from_author_and_content(
            lib.Author.new(lib.Role.TOOL, "functions.lookup_weather"),
            '{"temperature": 20, "description": "sunny"}',
        ),
    ]
    config = lib.RenderConversationConfig(auto_drop_analysis=True)
    tokens = completion(lib, enc, messages, config)
    expected = golden_text("test_does_not_drop_if_ongoing_analysis.txt")
    assert enc.decode_utf8(tokens) == expected
    assert enc.encode(expected, allowed_special="all") == tokens  # <|constrain|> is special


def test_keep_analysis_between_final_messages(lib, enc):
    messages = [
        msg(lib, "user", "What is 2 + 2?"),
        msg(lib, "assistant", "thinking 2+2").with_channel("analysis"),
        msg(lib, "assistant", "4").with_channel("final"),
        msg(lib, "user", "What is 3 + 5?"),
        msg(lib, "assistant", "thinking 3+5").with_channel("analysis"),
        msg(lib, "assistant", "8").with_channel("final"),
    ]
    tokens = enc.render_conversation(lib.Conversation.from_messages(messages))
    assert enc.decode_utf8(tokens) == golden_text("test_keep_analysis_between_finals.txt")


# -- rendering without golden files -------------------------------------------------------------


def test_render_and_render_conversation_roundtrip(lib, enc):
    message = msg(lib, "user", "Hello")
    conversation = lib.Conversation.from_messages([message])
    assert enc.render(message) == enc.render_conversation(conversation)
    prefix = enc.render_conversation(conversation)
    assert (
        enc.render_conversation_for_completion(conversation, lib.Role.ASSISTANT)[: len(prefix)]
        == prefix
    )


def test_render_conversation_for_training_final_channel(lib, enc):
    conversation = lib.Conversation.from_messages(
        [msg(lib, "user", "hi"), msg(lib, "assistant", "hello").with_channel("final")]
    )
    training = enc.render_conversation_for_training(conversation)
    regular = enc.render_conversation(conversation)
    assert regular[:-1] == training[:-1]
    assert regular[-1] == enc.encode("<|end|>", allowed_special={"<|end|>"})[0]
    assert training[-1] == enc.encode("<|return|>", allowed_special={"<|return|>"})[0]


def test_render_conversation_for_training_non_final(lib, enc):
    conversation = lib.Conversation.from_messages([msg(lib, "user", "hi")])
    assert enc.render_conversation_for_training(conversation) == enc.render_conversation(
        conversation
    )


def test_tool_call_with_constrain_tokenized_correctly(lib, enc):
    text = (
        "<|start|>assistant to=functions.get_weather<|channel|>commentary"
        ' <|constrain|>json<|message|>{"location": "Tokyo"}<|call|>'
    )
    tokens = enc.encode(text, allowed_special="all")
    expected = [
        msg(lib, "assistant", '{"location": "Tokyo"}')
        .with_channel("commentary")
        .with_recipient("functions.get_weather")
        .with_content_type("<|constrain|>json")
    ]
    assert enc.parse_messages_from_completion_tokens(tokens, role=None) == expected
    assert enc.decode_utf8(tokens) == text
    assert enc.render_conversation(lib.Conversation.from_messages(expected)) == tokens


# -- parsing ------------------------------------------------------------------------------------


def test_simple_reasoning_response(lib, enc):
    tokens = golden_tokens("test_simple_reasoning_response.txt")
    parsed = enc.parse_messages_from_completion_tokens(tokens, role=lib.Role.ASSISTANT)
    assert parsed == [
        msg(
            lib, "assistant", 'User asks: "What is 2 + 2?" Simple arithmetic. Provide answer.'
        ).with_channel("analysis"),
        msg(lib, "assistant", "2 + 2 = 4.").with_channel("final"),
    ]


def test_simple_tool_call(lib, enc):
    tokens = golden_tokens("test_simple_tool_call.txt")
    parsed = enc.parse_messages_from_completion_tokens(tokens, role=lib.Role.ASSISTANT)
    assert parsed == [
        msg(
            lib,
            "assistant",
            'User asks: "What is the weather in Tokyo?" We need to use lookup_weather tool.',
        ).with_channel("analysis"),
        msg(lib, "assistant", '{"location": "Tokyo"}')
        .with_channel("analysis")
        .with_recipient("lookup_weather")
        .with_content_type("code"),
    ]


GET_WEATHER_CALL = '{"latitude":48.8566,"longitude":2.3522}'


@pytest.mark.parametrize(
    "header",
    [
        "assistant to=functions.get_weather<|channel|>commentary<|constrain|>json",
        "assistant<|channel|>commentary to=functions.get_weather<|constrain|>json",
    ],
    ids=["constrain_marker_adjacent", "channel_before_recipient_and_constrain_adjacent"],
)
def test_tool_call_with_adjacent_constrain_marker(lib, enc, header: str):
    text = f"<|start|>{header}<|message|>{GET_WEATHER_CALL}<|call|>"
    tokens = enc.encode(text, allowed_special="all")
    assert enc.parse_messages_from_completion_tokens(tokens, role=None) == [
        msg(lib, "assistant", GET_WEATHER_CALL)
        .with_channel("commentary")
        .with_recipient("functions.get_weather")
        .with_content_type("<|constrain|>json")
    ]


def test_tool_response_parsing(lib, enc):
    expected = (
        lib.Message.from_author_and_content(
            lib.Author.new(lib.Role.TOOL, "browser.search"), '{"result": "https://openai.com/"}'
        )
        .with_channel("commentary")
        .with_recipient("assistant")
    )
    tokens = enc.render(expected)[:-1]  # without <|end|>
    assert enc.parse_messages_from_completion_tokens(tokens, None) == [expected]
    assert enc.decode_utf8(tokens) == golden_text("test_tool_response_parsing.txt")


# -- tokeniser ----------------------------------------------------------------------------------


def test_reserved_token_decoding(enc):
    assert enc.decode_utf8([200014]) == "<|reserved_200014|>"
    assert enc.decode_utf8([201088]) == "<|reserved_201088|>"


def test_decode_utf8_invalid_token(lib, enc):
    with pytest.raises(lib.HarmonyError, match="Invalid token for decoding: 99999999"):
        enc.decode_utf8([99999999])
    with pytest.raises(
        ValidationError, match="Input should be a valid dictionary or instance of Message"
    ):
        enc.render_conversation_for_completion(
            lib.Conversation.from_messages([lib.SystemContent.new()]), lib.Role.ASSISTANT
        )


def test_encode_decode_roundtrip(enc):
    assert enc.decode_utf8(enc.encode("hello world")) == "hello world"
    assert enc.decode(enc.encode("hello world")) == "hello world"


def test_encode_allowed_special(lib, enc):
    assert enc.encode("hello world") == [24912, 2375]
    assert enc.encode("<|start|>", allowed_special={"<|start|>"}) == [200006]
    assert enc.encode("<|start|>", allowed_special="all") == [200006]
    with pytest.raises(
        lib.HarmonyError, match="Encountered text corresponding to disallowed special token"
    ):
        enc.encode("<|start|>")
    assert enc.encode("<|start|>", disallowed_special=()) == [27, 91, 5236, 91, 29]


def test_is_special_token(enc):
    assert enc.is_special_token(200006)
    assert not enc.is_special_token(24912)


def test_invalid_utf8_decoding(lib, enc):
    tokens = [132990, 9552]
    with pytest.raises(lib.HarmonyError, match="Invalid utf-8"):
        enc.decode_utf8(tokens)
    assert "Chicken" in enc.decode(tokens)


# -- streaming parser ---------------------------------------------------------------------------


def feed(parser, tokens: list[int]) -> list[str]:
    """Process tokens one by one; the non-None content deltas seen on the way."""
    deltas = []
    for token in tokens:
        parser.process(token)
        if parser.last_content_delta is not None:
            deltas.append(parser.last_content_delta)
    return deltas


def test_streamable_parser(lib, enc):
    tokens = enc.encode(golden_text("test_streamable_parser.txt"), allowed_special="all")
    parser = lib.StreamableParser(enc, lib.Role.ASSISTANT)
    feed(parser, tokens)
    assert len(parser.messages) == 3


def test_streamable_parser_tool_call_with_constrain_adjacent(lib, enc):
    text = (
        "<|start|>assistant<|channel|>commentary to=functions.get_weather"
        f"<|constrain|>json<|message|>{GET_WEATHER_CALL}<|call|>"
    )
    parser = lib.StreamableParser(enc, None)
    feed(parser, enc.encode(text, allowed_special="all"))
    assert parser.messages == [
        msg(lib, "assistant", GET_WEATHER_CALL)
        .with_channel("commentary")
        .with_recipient("functions.get_weather")
        .with_content_type("<|constrain|>json")
    ]


def test_streamable_parser_constrained_output_without_recipient(lib, enc):
    """0.0.8 (unlike later upstream) reads the single leftover header word as the recipient."""
    text = (
        '<|start|>assistant<|channel|>final <|constrain|>json<|message|>{"result":true}<|return|>'
    )
    parser = lib.StreamableParser(enc, None)
    feed(parser, enc.encode(text, allowed_special="all"))
    assert parser.messages == [
        msg(lib, "assistant", '{"result":true}')
        .with_channel("final")
        .with_recipient("<|constrain|>json")
    ]


REFUSAL_TAIL = (
    "<|start|>assistant<|channel|>analysis<|message|>We must refuse<|end|>"
    "<|start|>assistant<|channel|>final<|message|>I'm sorry, but I can't help with that.<|return|>"
)


@pytest.mark.parametrize("strict", [False, True])
@pytest.mark.parametrize(
    ("first", "first_channel"),
    [("I must refuse<|end|>", None), ("<|channel|>analysis I must refuse<|end|>", "analysis")],
    ids=["no_header", "other_initial_headers"],
)
def test_streamable_parser_missing_message_token(
    lib, enc, strict: bool, first: str, first_channel: str | None
):
    tokens = enc.encode(first + REFUSAL_TAIL, allowed_special="all")
    parser = lib.StreamableParser(enc, lib.Role.ASSISTANT, strict=strict)
    if strict:
        with pytest.raises(lib.HarmonyError, match="unexpected tokens remaining in message header"):
            feed(parser, tokens)
        return
    feed(parser, tokens)
    refusal = msg(lib, "assistant", "I must refuse")
    if first_channel is not None:
        refusal = refusal.with_channel(first_channel)
    assert parser.messages == [
        refusal,
        msg(lib, "assistant", "We must refuse").with_channel("analysis"),
        msg(lib, "assistant", "I'm sorry, but I can't help with that.").with_channel("final"),
    ]


@pytest.mark.parametrize("strict", [False, True])
def test_streamable_parser_missing_message_token_tool_call(lib, enc, strict: bool):
    text = (
        "... Let's use the tool.<|end|>"
        "<|start|>assistant to=functions.get_weather<|channel|>commentary json"
        '<|message|>{"location": "Tokyo"}<|call|>'
    )
    tokens = enc.encode(text, allowed_special="all")
    parser = lib.StreamableParser(enc, lib.Role.ASSISTANT, strict=strict)
    if strict:
        with pytest.raises(lib.HarmonyError, match="unexpected tokens remaining in message header"):
            feed(parser, tokens)
        return
    feed(parser, tokens)
    assert parser.messages == [
        msg(lib, "assistant", "... Let's use the tool."),
        msg(lib, "assistant", '{"location": "Tokyo"}')
        .with_channel("commentary")
        .with_recipient("functions.get_weather")
        .with_content_type("json"),
    ]


def _assistant_message_tokens(enc, body: list[int], end: bool = True) -> list[int]:
    prefix = enc.encode("<|start|>assistant<|message|>", allowed_special="all")
    suffix = enc.encode("<|end|>", allowed_special="all") if end else []
    return prefix + body + suffix


def test_streamable_parser_invalid_utf8_decoding(lib, enc):
    with pytest.raises(lib.HarmonyError):
        enc.decode_utf8([9552, 9552])  # 9552 = bytes 20 F0 9F: a space, then a broken prefix
    tokens = enc.encode("<|start|>assistant<|message|>", allowed_special="all") + [9552, 9552]
    tokens += enc.encode("worked<|end|>", allowed_special="all")
    parser = lib.StreamableParser(enc, None)
    feed(parser, tokens)
    assert parser.messages == [msg(lib, "assistant", " \ufffd \ufffdworked")]


@pytest.mark.parametrize(
    ("text", "expected"), [("XY", " \ufffdXY"), (" interesting", " \ufffd interesting")]
)
def test_streamable_parser_invalid_utf8_split_across_tokens(lib, enc, text: str, expected: str):
    broken = [9552, *enc.encode(text)]
    with pytest.raises(lib.HarmonyError):
        enc.decode_utf8(broken)
    parser = lib.StreamableParser(enc, None)
    feed(parser, _assistant_message_tokens(enc, broken))
    assert parser.messages == [msg(lib, "assistant", expected)]


def test_streamable_parser_invalid_utf8_multi_byte_token_no_eos_marker(lib, enc):
    body = [9552, *enc.encode(" interesting"), *enc.encode(" story")]
    parser = lib.StreamableParser(enc, None)
    deltas = feed(parser, _assistant_message_tokens(enc, body, end=False))
    assert parser.current_content == " \ufffd interesting story"
    assert "".join(deltas) == " \ufffd interesting story"
    parser.process(enc.encode("Y")[0])
    assert parser.last_content_delta == "Y"
    assert parser.current_content == " \ufffd interesting storyY"


TRICKY_UTF8 = (
    "Hello Müller, Γειά σου, Привет, שלום, مرحبا, नमस्ते, こんにちは, 안녕하세요,"
    " 你好. Normalized (naïve) vs. decomposed (nai\u0308ve) characters. "
    "Some emojis: 😊👋🏾👨\u200d👩\u200d👧\u200d👦🇺🇸."
)


def test_streamable_parser_tricky_utf8_decoding(lib, enc):
    parser = lib.StreamableParser(enc, None)
    deltas = feed(parser, _assistant_message_tokens(enc, enc.encode(TRICKY_UTF8)))
    assert parser.messages == [msg(lib, "assistant", TRICKY_UTF8)]
    assert "".join(deltas) == TRICKY_UTF8


# -- the remaining Rust-side parser tests (spec §12: src/tests.rs) ------------------------------


def test_streamable_parser_multi_token_emoji(lib, enc):
    """💖 is two tokens: no delta and no content after the first, the whole emoji on the second."""
    emoji = enc.encode("💖")
    assert len(emoji) == 2
    parser = lib.StreamableParser(enc, None)
    feed(parser, enc.encode("<|start|>assistant<|message|>", allowed_special="all"))
    parser.process(emoji[0])
    assert (parser.last_content_delta, parser.current_content) == (None, "")
    parser.process(emoji[1])
    assert (parser.last_content_delta, parser.current_content) == ("💖", "💖")


def test_streamable_parser_does_not_leak_bytes_between_messages(lib, enc):
    """Buffered bytes of a broken character end with their message."""
    tokens = _assistant_message_tokens(enc, [9552]) + _assistant_message_tokens(
        enc, enc.encode("clean")
    )
    parser = lib.StreamableParser(enc, None)
    feed(parser, tokens)
    assert parser.messages == [
        msg(lib, "assistant", " \ufffd"),
        msg(lib, "assistant", "clean"),
    ]


def test_streamable_parser_flushes_partial_bytes_on_eos(lib, enc):
    parser = lib.StreamableParser(enc, None)
    feed(parser, _assistant_message_tokens(enc, [*enc.encode("ok"), 9552], end=False))
    assert parser.current_content == "ok "
    parser.process_eos()
    assert parser.messages == [msg(lib, "assistant", "ok \ufffd")]


def test_streamable_parser_invalid_token_id_in_content(lib, enc):
    """An id outside the vocabulary (here u32::MAX) swallows the rest of its message as one U+FFFD."""
    body = [*enc.encode("Practice."), 2**32 - 1, *enc.encode("BC")]
    parser = lib.StreamableParser(enc, None)
    feed(parser, _assistant_message_tokens(enc, body))
    assert parser.messages == [msg(lib, "assistant", "Practice.\ufffd")]
