"""Differences from the reference found by the differential tests, pinned as explicit cases.

Each test compares with the oracle on the inputs that once diverged, so the fix stays in place
even on a hypothesis run that does not happen to rediscover them.
"""

from __future__ import annotations

import warnings

import pytest

from tests.harmony.differential import both, encoding


@pytest.mark.parametrize(
    "description", ["\r", "a\r", "a\r\nb\r", "a\r\r\nb", "x\n\r", "\r\n", "a\n\nb\n\n", "\r\r"]
)
def test_tool_description_keeps_a_carriage_return_not_followed_by_newline(
    description: str,
) -> None:
    """Rust's str::lines drops a \\r only in front of \\n; a lone trailing \\r stays."""

    def render(lib):
        dev = lib.DeveloperContent.new().with_function_tools(
            [lib.ToolDescription.new("f", description)]
        )
        ns = lib.ToolNamespaceConfig(name="ns", description=description, tools=[])
        system = lib.SystemContent.new().with_tools(ns)
        return encoding(lib).render_conversation(
            lib.Conversation.from_messages(
                [
                    lib.Message.from_role_and_content(lib.Role.SYSTEM, system),
                    lib.Message.from_role_and_content(lib.Role.DEVELOPER, dev),
                ]
            )
        )

    ours, reference = both(render)
    assert ours == reference


@pytest.mark.parametrize(
    "word",
    [
        "e\u0301",  # combining acute after a letter: Grapheme_Extend, escaped anywhere
        "\u0301x",
        "\u09be",  # Mc but Other_Grapheme_Extend
        "\uff9e",  # Lm but Other_Grapheme_Extend
        "\u20dd",  # Me
        "\u200c",  # ZWNJ
        "a\u00a0b",  # Zs
        "\u200b",  # Cf
        "\x1b",  # Cc
        "\U000e0100",  # variation selector supplement
        "\u088f",  # assigned in Unicode 17, unassigned in Rust's Unicode 16
        "\U0003d000",  # assigned in Unicode 18 (regex >= 2026.9.29), unassigned in Rust's 16
        "\u0558",
        "\U0001fae9",  # assigned in Unicode 16: printable in Rust, Cn for Python 3.11
        "\U0001f6d8",
        "\ue000",  # private use
        "\U000e01f0",  # unassigned
        '"q"\\',
    ],
)
def test_header_error_quotes_leftover_words_like_rust_debug(word: str) -> None:
    """`unexpected tokens remaining in message header: Some("…")` uses Rust's escape_debug."""

    def parse(lib):
        enc = encoding(lib)
        tokens = (
            enc.encode("<|channel|>final Q", allowed_special="all")
            + enc.encode(word + "Q y z", disallowed_special=())
            + enc.encode("<|message|>hi", allowed_special="all")
        )
        return enc.parse_messages_from_completion_tokens(tokens, lib.Role.ASSISTANT)

    ours, reference = both(parse)
    assert reference.error is not None
    assert ours == reference


NUMBERS = [
    1.1579208923731604e77,  # serde_json's fast float parse is not correctly rounded
    2.5e-308,
    0.30000000000000004,
    2**70,  # beyond u64: serde_json keeps ~19 digits and the magnitude
    -(2**63) - 1,
    float("nan"),  # `NaN` literal: "expected value at line 1 column N"
    float("inf"),
    float("-inf"),  # "-Infinity": "invalid number at line 1 column N"
    10**400,  # "number out of range at line 1 column N"
]


@pytest.mark.parametrize("value", NUMBERS, ids=repr)
@pytest.mark.parametrize("entry_point", ["render", "conversation", "completion", "training"])
def test_parameter_numbers_are_read_like_serde_json(value: object, entry_point: str) -> None:
    """Defaults show serde_json's parsed value; refused numbers raise its positioned ValueError,
    ahead of any rendering error elsewhere in the conversation."""

    def render(lib):
        params = {
            "type": "object",
            "properties": {"a": {"type": "number", "default": value}, "b": {"enum": [value]}},
        }
        dev = lib.DeveloperContent.new().with_function_tools(
            [lib.ToolDescription.new("f", "d", parameters=params)]
        )
        message = lib.Message.from_role_and_content(lib.Role.DEVELOPER, dev)
        misplaced = lib.Message.from_role_and_content(lib.Role.USER, lib.SystemContent.new())
        enc = encoding(lib)
        if entry_point == "render":
            return enc.render(message)
        conversation = lib.Conversation.from_messages([misplaced, message])
        if entry_point == "conversation":
            return enc.render_conversation(conversation)
        if entry_point == "training":
            return enc.render_conversation_for_training(conversation)
        return enc.render_conversation_for_completion(conversation, lib.Role.ASSISTANT)

    ours, reference = both(render)
    assert ours == reference


BAD_TOKEN_ARGUMENTS = [-1, 2**32, 2**64, -(2**70), 1.5, "a", None, True]


@pytest.mark.parametrize("token", BAD_TOKEN_ARGUMENTS, ids=repr)
@pytest.mark.parametrize(
    "call",
    ["process", "process_in_content", "decode", "decode_utf8", "is_special_token", "parse"],
)
def test_token_arguments_are_checked_like_the_pyo3_boundary(token: object, call: str) -> None:
    """Non-integers: TypeError naming the argument; beyond C long / u32: OverflowError; before
    any parsing (a later bad id in a list fails the call even if an earlier token would)."""

    def run(lib):
        enc = encoding(lib)
        if call == "process":
            return lib.StreamableParser(enc, None).process(token).tokens
        if call == "process_in_content":
            parser = lib.StreamableParser(enc, lib.Role.ASSISTANT).process(200008)
            return parser.process(token).state_data
        if call == "decode":
            return enc.decode([24912, token])
        if call == "decode_utf8":
            return enc.decode_utf8([24912, token])
        if call == "is_special_token":
            return enc.is_special_token(token)
        return enc.parse_messages_from_completion_tokens([200007, token], None)

    ours, reference = both(run)
    assert ours == reference


@pytest.mark.parametrize("kind", ["system", "developer"])
def test_non_finite_default_is_not_served_from_the_none_default_render_cache(kind: str) -> None:
    """model_dump_json writes NaN/Infinity as null: a cache keyed on it served None's text."""

    def run(lib, default: object):
        params = {"type": "object", "properties": {"a": {"type": "number", "default": default}}}
        tools = [lib.ToolDescription.new("f", "d", parameters=params)]
        if kind == "system":
            ns = lib.ToolNamespaceConfig(name="ns", description=None, tools=tools)
            message = lib.Message.from_role_and_content(
                lib.Role.SYSTEM, lib.SystemContent.new().with_tools(ns)
            )
        else:
            message = lib.Message.from_role_and_content(
                lib.Role.DEVELOPER, lib.DeveloperContent.new().with_function_tools(tools)
            )
        return encoding(lib).render(message)

    for default in (None, float("nan"), None, float("inf"), float("-inf")):
        ours, reference = both(lambda lib, default=default: run(lib, default))
        assert ours == reference


@pytest.mark.parametrize(
    "header",
    ["<|channel|>", "<|channel|>final a b c d", "x", "\x80"],
    ids=["empty_channel", "leftover_words", "unknown_role", "undecodable"],
)
def test_header_error_leaves_the_parser_expecting_start(header: str) -> None:
    """After a header error at <|message|> the reference is in ExpectStart, role kept."""

    def run(lib):
        enc = encoding(lib)
        head = [200006, *enc.encode(header, allowed_special="all", disallowed_special=())]
        if header == "\x80":
            head = [200006, 9552]  # a broken UTF-8 prefix: "could not decode header"
        parser = lib.StreamableParser(enc, None)
        trace = []
        for token in [*head, 200008, 3686, 200006, 173781, 200008, 3686, 200007]:
            try:
                parser.process(token)
                trace.append(None)
            except Exception as exc:  # noqa: BLE001 - compared with the reference
                trace.append((type(exc).__name__, str(exc)))
            trace.append((parser.state_data, parser.current_role, len(parser.messages)))
        return trace

    ours, reference = both(run)
    assert ours == reference


def test_replacement_char_is_its_own_piece_of_content_tokens() -> None:
    """Valid text and U+FFFD decoded from one token are encoded separately in content_tokens."""

    def run(lib):
        enc = encoding(lib)
        parser = lib.StreamableParser(enc, lib.Role.ASSISTANT).process(200008)
        # 9552 = bytes 20 F0 9F (a space, a truncated emoji); 108 continues with non-UTF-8 tail
        for token in (9552, 174, 116, 117, 220, 108):
            parser.process(token)
        return parser.state_data, parser.last_content_delta, parser.current_content

    ours, reference = both(run)
    assert ours == reference


SURROGATE_TEXTS = ["a\ud800b", "\udc00", "x\ud83d", "\ud800\ud800", "\\\ud800", "\ud83d\ude00ok"]


@pytest.mark.parametrize("text", SURROGATE_TEXTS, ids=ascii)
@pytest.mark.parametrize(
    "where",
    [
        "text",
        "author_name",
        "channel",
        "instructions",
        "tool_description",
        "parameter_key",
        "unrendered_parameter",
        "model_identity",
        "dropped_analysis",
    ],
)
@pytest.mark.parametrize("entry_point", ["render", "conversation", "completion"])
def test_lone_surrogates_fail_like_the_reference_json_bridge(
    text: str, where: str, entry_point: str
) -> None:
    """json.dumps escapes a lone surrogate; serde_json refuses it with a positioned ValueError,
    even where the text is never rendered (a dropped analysis message, an unknown schema key).
    A surrogate pair is an ordinary astral character."""

    def run(lib):
        role = lib.Role
        dev = lib.DeveloperContent.new()
        params = {"type": "object", "properties": {"k": {"type": "string"}}}
        message = {
            "text": lambda: lib.Message.from_role_and_content(role.USER, text),
            "author_name": lambda: lib.Message.from_author_and_content(
                lib.Author.new(role.USER, text), "x"
            ),
            "channel": lambda: lib.Message.from_role_and_content(role.USER, "x").with_channel(text),
            "instructions": lambda: lib.Message.from_role_and_content(
                role.DEVELOPER, dev.with_instructions(text)
            ),
            "tool_description": lambda: lib.Message.from_role_and_content(
                role.DEVELOPER, dev.with_function_tools([lib.ToolDescription.new("f", text)])
            ),
            "parameter_key": lambda: lib.Message.from_role_and_content(
                role.DEVELOPER,
                dev.with_function_tools(
                    [
                        lib.ToolDescription.new(
                            "f", "d", {"type": "object", "properties": {text: {"type": "string"}}}
                        )
                    ]
                ),
            ),
            "unrendered_parameter": lambda: lib.Message.from_role_and_content(
                role.DEVELOPER,
                dev.with_function_tools([lib.ToolDescription.new("f", "d", params | {"x": text})]),
            ),
            "model_identity": lambda: lib.Message.from_role_and_content(
                role.SYSTEM, lib.SystemContent.new().with_model_identity(text)
            ),
            "dropped_analysis": lambda: lib.Message.from_role_and_content(
                role.ASSISTANT, text
            ).with_channel("analysis"),
        }[where]()
        final = lib.Message.from_role_and_content(role.ASSISTANT, "y").with_channel("final")
        enc = encoding(lib)
        if entry_point == "render":
            return enc.render(message)
        conversation = lib.Conversation.from_messages([message, final])
        if entry_point == "conversation":
            return enc.render_conversation(conversation)
        return enc.render_conversation_for_completion(conversation, role.ASSISTANT)

    ours, reference = both(run)
    assert ours == reference


@pytest.mark.parametrize("effort", ["High", "Low", "high", "LOW", "x", 3, True], ids=repr)
@pytest.mark.parametrize("following_content", [False, True])
@pytest.mark.parametrize("entry_point", ["render", "conversation", "completion"])
def test_unvalidated_reasoning_effort_behaves_like_the_reference(
    effort: object, following_content: bool, entry_point: str
) -> None:
    """with_reasoning_effort does not validate: "High" renders (it is the JSON form), anything
    else fails serde_json's enum parse, reported past the buffered (tagged) content object."""

    def run(lib):
        system = lib.SystemContent.new().with_reasoning_effort(effort).with_browser_tool()
        contents = [system] + ([lib.TextContent(text="more")] if following_content else [])
        message = lib.Message.from_role_and_contents(lib.Role.SYSTEM, contents)
        enc = encoding(lib)
        if entry_point == "render":
            return enc.render(message)
        conversation = lib.Conversation.from_messages([message])
        if entry_point == "conversation":
            return enc.render_conversation(conversation)
        return enc.render_conversation_for_completion(conversation, lib.Role.ASSISTANT)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pydantic warns when dumping the unvalidated field
        ours, reference = both(run)
    assert ours == reference
