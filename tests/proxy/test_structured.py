"""tool_choice / response_format -> structural tags that the grammar engine enforces (§1.2)."""

from __future__ import annotations

import re
from typing import Any

import pytest
import xgrammar
from xgrammar.testing import _is_grammar_accept_string

from proxy.api.chat_schema import ChatCompletionRequest
from proxy.core.conversation import tool_names_for
from proxy.core.errors import InvalidRequest
from proxy.core.grammar import _HEADER_RULES, CallSpec, _headers
from proxy.core.json_grammar import SHARED_RULES
from proxy.core.output_rules import OutputRules, output_rules
from tests.proxy.helpers import WEATHER_TOOL, neutral

ANALYSIS = "<|channel|>analysis<|message|>Let me think.<|end|><|start|>assistant"
CALL = ' to=functions.get_weather<|channel|>commentary <|constrain|>json<|message|>{"city":"Paris"}'
BAD_CALL = (
    ' to=functions.get_weather<|channel|>commentary <|constrain|>json<|message|>{"town":"Paris"}'
)
FINAL = "<|channel|>final<|message|>It is sunny."


def rules(**extra: Any) -> OutputRules:
    request = ChatCompletionRequest.model_validate(
        {"model": "m", "messages": [{"role": "user", "content": "Hi"}], **extra}
    )
    wanted = neutral(request, validated=True)
    return output_rules(wanted, tool_names_for(wanted))


def accepts(r: OutputRules, text: str) -> bool:
    assert r.structured_outputs is not None
    grammar = xgrammar.Grammar.from_structural_tag(r.structured_outputs["structural_tag"])
    return _is_grammar_accept_string(grammar, text)


def test_no_tools_and_no_format_needs_no_grammar():
    assert rules().structured_outputs is None
    assert rules().tool_choice == "none"


def test_auto_with_tools_allows_an_answer_or_a_declared_schema_valid_call():
    r = rules(tools=[WEATHER_TOOL])
    assert r.tool_choice == "auto" and r.calls_enforced
    assert accepts(r, ANALYSIS + FINAL)
    assert accepts(r, FINAL)
    assert accepts(r, ANALYSIS + CALL)
    assert accepts(
        r,
        ANALYSIS
        + CALL.replace(
            " to=functions.get_weather<|channel|>commentary",
            "<|channel|>commentary to=functions.get_weather",
        ),
    )
    assert not accepts(r, ANALYSIS + BAD_CALL)


@pytest.mark.parametrize(
    "recipient",
    ["functions.calculator", "python", "browser.search", "functions.get_weather_v2"],
)
def test_auto_with_tools_makes_undeclared_recipients_impossible(recipient):
    r = rules(tools=[WEATHER_TOOL])
    for header in (
        f" to={recipient}<|channel|>commentary",
        f"<|channel|>commentary to={recipient}",
    ):
        assert not accepts(r, ANALYSIS + header + ' <|constrain|>json<|message|>{"city":"Paris"}')


def test_auto_enforcement_can_be_turned_off_but_strict_tools_keep_a_grammar():
    loose = {**WEATHER_TOOL, "function": {**WEATHER_TOOL["function"], "strict": False}}
    strict = {**WEATHER_TOOL, "function": {**WEATHER_TOOL["function"], "strict": True}}
    for tool, grammar in ((loose, False), (strict, True)):
        request = ChatCompletionRequest.model_validate(
            {"model": "m", "messages": [{"role": "user", "content": "Hi"}], "tools": [tool]}
        )
        wanted = neutral(request, validated=True)
        r = output_rules(wanted, tool_names_for(wanted), enforce_auto=False)
        assert (r.structured_outputs is not None) is grammar and r.calls_enforced is grammar
    assert not accepts(r, ANALYSIS + BAD_CALL)
    assert accepts(r, ANALYSIS + CALL)


def test_parallel_tool_calls_false_allows_one_call_per_choice():
    assert rules(tools=[WEATHER_TOOL], parallel_tool_calls=False).max_tool_calls == 1
    assert rules(tools=[WEATHER_TOOL]).max_tool_calls is None


def test_required_forces_a_schema_valid_tool_call_after_free_reasoning():
    r = rules(tools=[WEATHER_TOOL], tool_choice="required")
    assert accepts(r, ANALYSIS + CALL)
    assert accepts(r, CALL)
    assert not accepts(r, ANALYSIS + FINAL)
    assert not accepts(r, ANALYSIS + BAD_CALL)


def test_named_tool_choice_forces_that_tool():
    other = {"type": "function", "function": {"name": "get_time", "parameters": {"type": "object"}}}
    r = rules(
        tools=[WEATHER_TOOL, other],
        tool_choice={"type": "function", "function": {"name": "get_weather"}},
    )
    assert r.tool_choice == "named" and r.named_tool == "get_weather"
    assert accepts(r, ANALYSIS + CALL)
    assert not accepts(
        r, ANALYSIS + " to=functions.get_time<|channel|>commentary json<|message|>{}"
    )


def test_none_with_tools_makes_tool_calls_impossible():
    r = rules(tools=[WEATHER_TOOL], tool_choice="none")
    assert accepts(r, ANALYSIS + FINAL)
    assert not accepts(r, ANALYSIS + CALL)


def test_json_schema_constrains_the_final_answer_but_not_the_reasoning():
    schema = {"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]}
    r = rules(
        response_format={"type": "json_schema", "json_schema": {"name": "x", "schema": schema}}
    )
    assert accepts(
        r,
        '<|channel|>analysis<|message|>free {not json<|end|><|start|>assistant<|channel|>final<|message|>{"n":3}',
    )
    assert not accepts(r, ANALYSIS + '<|channel|>final<|message|>{"n":"three"}')
    assert not accepts(r, ANALYSIS + FINAL)


def test_json_object_requires_an_object():
    r = rules(response_format={"type": "json_object"})
    assert accepts(r, ANALYSIS + '<|channel|>final<|message|>{"a":[1,2]}')
    assert not accepts(r, ANALYSIS + "<|channel|>final<|message|>[1, 2]")


def test_auto_with_tools_and_a_schema_allows_a_valid_call_or_a_valid_answer():
    r = rules(tools=[WEATHER_TOOL], response_format={"type": "json_object"})
    assert accepts(r, ANALYSIS + CALL)
    assert accepts(r, ANALYSIS + '<|channel|>final<|message|>{"ok":true}')
    assert not accepts(r, ANALYSIS + FINAL)


def test_tool_names_in_the_grammar_are_the_model_side_identifiers():
    tool = {
        "type": "function",
        "function": {"name": "web-search", "parameters": {"type": "object"}},
    }
    r = rules(tools=[tool], tool_choice="required")
    header = "<|channel|>commentary <|constrain|>json<|message|>{}"
    assert accepts(r, " to=functions.web_search" + header)
    assert not accepts(r, " to=functions.web-search" + header)


@pytest.mark.parametrize(
    ("extra", "param"),
    [
        ({"tool_choice": "required"}, "tool_choice"),
        ({"tool_choice": {"type": "function", "function": {"name": "get_weather"}}}, "tool_choice"),
        (
            {
                "tools": [WEATHER_TOOL],
                "tool_choice": {"type": "function", "function": {"name": "nope"}},
            },
            "tool_choice",
        ),
        (
            {
                "tools": [WEATHER_TOOL],
                "tool_choice": {"type": "allowed_tools", "allowed_tools": {}},
            },
            "tool_choice",
        ),
        ({"response_format": {"type": "regex"}}, "response_format.type"),
        (
            {"response_format": {"type": "json_schema", "json_schema": {"name": "x"}}},
            "response_format.json_schema.schema",
        ),
        (
            {
                "response_format": {
                    "type": "json_schema",
                    "json_schema": {"name": "x", "schema": {"type": "banana"}},
                }
            },
            "response_format",
        ),
    ],
)
def test_combinations_that_cannot_be_enforced_are_a_400(extra, param):
    with pytest.raises(InvalidRequest) as info:
        rules(**extra)
    assert info.value.param == param
    assert info.value.status_code == 400


def test_custom_tool_types_are_a_400():
    request = ChatCompletionRequest.model_validate(
        {
            "model": "m",
            "messages": [{"role": "user", "content": "Hi"}],
            "tools": [{"type": "custom", "custom": {"name": "x"}}],
        }
    )
    with pytest.raises(InvalidRequest) as info:
        neutral(request, validated=True)
    assert info.value.param == "tools[0].type"


def test_harmony_markers_cannot_hide_inside_json_strings():
    r = rules(response_format={"type": "json_object"})
    assert accepts(r, ANALYSIS + '<|channel|>final<|message|>{"a":"b < c | d"}')
    assert not accepts(
        r, ANALYSIS + '<|channel|>final<|message|>{"a":"b<|end|><|start|>assistant"}'
    )
    call = rules(tools=[WEATHER_TOOL], tool_choice="required")
    assert not accepts(
        call,
        ANALYSIS
        + ' to=functions.get_weather<|channel|>commentary json<|message|>{"city":"P<|call|>"}',
    )


def test_reasoning_cannot_contain_other_harmony_markers():
    r = rules(tools=[WEATHER_TOOL], tool_choice="required")
    assert not accepts(
        r,
        "<|channel|>analysis<|message|>x<|start|>assistant<|channel|>final<|message|>Hi<|end|><|start|>assistant"
        + CALL,
    )


def test_json_whitespace_runs_are_bounded():
    """Compact JSON, as gpt-oss writes it: no whitespace between tokens (issue 21)."""
    r = rules(response_format={"type": "json_object"})
    final = ANALYSIS + "<|channel|>final<|message|>"
    assert accepts(r, final + '{"a":1,"b":[1,2],"c":{"d":" x "}}')
    assert not accepts(r, final + '{"a": 1, "b": [1, 2]}')
    assert not accepts(r, final + '{\n    "a": 1\n}')
    assert not accepts(r, final + '{"a":  1}')
    assert not accepts(r, final + '{"a":' + " " * 200 + "1}")


def test_compact_tools_take_exactly_the_headers_a_fallback_tool_spells_out():
    """A compact JSON tool's header is built from shared rules (`_HEADER_RULES`); a tool on
    xgrammar's json_schema fallback spells its headers out (`_headers`): the same set."""
    r = rules(tools=[WEATHER_TOOL], tool_choice="required")
    spelled = _headers(CallSpec("functions.get_weather", "{}"))
    assert len(spelled) == 8
    for header in spelled:
        assert accepts(r, ANALYSIS + header + '{"city":"Paris"}')
    for header in (
        " to=functions.get_weather<|channel|>final json<|message|>",
        "<|channel|>commentary to=functions.get_weather<|message|>",
        " to=functions.get_weather <|constrain|>json<|message|>",
    ):
        assert not accepts(r, ANALYSIS + header + '{"city":"Paris"}')


def test_call_arguments_are_compact_in_both_header_forms():
    r = rules(tools=[WEATHER_TOOL], tool_choice="required")
    channel_side = CALL.replace(
        " to=functions.get_weather<|channel|>commentary",
        "<|channel|>commentary to=functions.get_weather",
    )
    for call in (CALL, channel_side):
        assert accepts(r, call)
        assert not accepts(r, call.replace('{"city":"Paris"}', '{"city": "Paris"}'))
        assert not accepts(r, call.replace('{"city":"Paris"}', '{"city":\n\n"Paris"}'))


def test_free_text_and_json_strings_cannot_hold_a_marker_prefix():
    """`<|` starts every Harmony marker; neither free text nor a JSON string may contain it."""
    r = rules(tools=[WEATHER_TOOL])
    assert not accepts(r, "<|channel|>analysis<|message|>a <| b<|end|><|start|>assistant" + CALL)
    assert not accepts(r, "<|channel|>final<|message|>x <|call|> y")
    assert not accepts(r, CALL.replace('"Paris"', '"Paris<|call|>"'))
    assert not accepts(r, CALL.replace('"Paris"', '"<|end|><|start|>assistant"'))
    assert accepts(r, CALL.replace('"Paris"', '"a < b | c <> |"'))


@pytest.mark.parametrize(
    ("value", "ok"),
    [
        (r'"a<b"', True),
        (r'"a<"', True),  # a string may end in `<`
        (r'"<<<"', True),
        (r'"<<b<"', True),
        (r'"<\"|"', True),  # an escape between `<` and `|`
        (r'"<\u007c"', True),
        (r'"a<|b"', False),
        (r'"<<|"', False),  # a run of `<` is still followed by no `|`
        (r'"<<<|x"', False),
        (r'"a\nb"', True),
        (r'"a\qb"', False),  # not a JSON escape
        ('"a\nb"', False),  # a raw control character
    ],
)
def test_the_json_string_guard_at_its_edges(value, ok):
    """The shared string rule keeps `<|` out however the `<` are run together
    (proxy/core/json_grammar.py writes it as a run of `<`, then anything but `|`)."""
    r = rules(tools=[WEATHER_TOOL], tool_choice="required")
    assert accepts(r, CALL.replace('"Paris"', value)) is ok


@pytest.mark.parametrize(
    ("value", "ok"),
    [
        ("12", True),
        ("-0.5", True),
        ("1e99", True),
        ("1.5E-7", True),
        ("1e999", False),  # JavaScript reads it as Infinity
        ("1" * 17, False),
        ("0." + "1" * 17, False),
    ],
)
def test_free_numbers_are_bounded(value, ok):
    r = rules(response_format={"type": "json_object"})
    assert accepts(r, ANALYSIS + '<|channel|>final<|message|>{"n":' + value + "}") is ok


def test_many_tools_share_one_json_core_and_keep_their_own_schemas():
    tools = [
        {
            "type": "function",
            "function": {
                "name": f"f{i}",
                "parameters": {
                    "type": "object",
                    "properties": {f"k{i}": {"type": "integer"}},
                    "required": [f"k{i}"],
                },
            },
        }
        for i in range(3)
    ]
    r = rules(tools=tools, tool_choice="required")
    tag = r.structured_outputs["structural_tag"]
    assert tag.count("basic_string_sub ::=") == 1
    for i in range(3):
        for header in (
            f" to=functions.f{i}<|channel|>commentary <|constrain|>json<|message|>",
            f"<|channel|>commentary to=functions.f{i} json<|message|>",
        ):
            assert accepts(r, header + f'{{"k{i}":{i}}}')
            assert not accepts(r, header + f'{{"k{(i + 1) % 3}":{i}}}')
    assert not accepts(r, ' to=functions.f9<|channel|>commentary json<|message|>{"k9":1}')


def test_a_schema_the_shared_core_cannot_prove_safe_keeps_the_excludes():
    """A `pattern` string is matched by its pattern alone: xgrammar's element is used then."""
    tool = {
        "type": "function",
        "function": {
            "name": "f",
            "parameters": {
                "type": "object",
                "properties": {"s": {"type": "string", "maxLength": 5}, "t": {"type": "string"}},
                "required": ["s", "t"],
            },
        },
    }
    r = rules(tools=[tool], tool_choice="required")
    header = " to=functions.f<|channel|>commentary json<|message|>"
    assert accepts(r, header + '{"s":"ab","t":"x"}')
    assert not accepts(r, header + '{"s":"ab","t":"x<|call|>"}')
    assert not accepts(r, header + '{"s":"<|end|>","t":"x"}')


def mutually_recursive_rules(ebnf: str) -> set[str]:
    """Rules of xgrammar's normalized form of `ebnf` that reach themselves through another rule
    (a rule calling only itself, or rules it does not lead back to, is not counted)."""
    printed = str(xgrammar.Grammar.from_ebnf(ebnf))
    bodies = dict(re.findall(r"^(\w+) ::= (.*)$", printed, re.M))
    # literals and character classes first, so a quote or bracket inside one cannot hide a name
    token = re.compile(r'"(?:[^"\\]|\\.)*"|\[(?:[^\]\\]|\\.)*\]|[A-Za-z_]\w*')
    calls = {
        name: set(token.findall(body)) & bodies.keys() - {name} for name, body in bodies.items()
    }
    looped = set()
    for start in bodies:
        seen, todo = set(), list(calls[start])
        while todo:
            name = todo.pop()
            if name == start:
                looped.add(start)
                break
            if name not in seen:
                seen.add(name)
                todo.extend(calls[name])
    return looped


def test_the_shared_rules_can_be_reused_by_a_running_engine():
    """xgrammar's rule-level cache (on in vLLM's engine) reuses a rule's token masks across
    grammars only for rules it can hash: ones that call themselves or already hashed rules. The
    JSON string and the header pieces are in every tag, so none of them may be mutually
    recursive, or every new tool set recompiles them (~30 ms; bench_grammar.py's tables)."""
    ebnf = "root ::= basic_any call_role call_channel call_json\n" + _HEADER_RULES + "\n"
    looped = mutually_recursive_rules(ebnf + SHARED_RULES)
    # JSON values nest (any -> array -> any): those rules hold only byte-string positions,
    # cheap to recompute; the string automaton and the headers must not be among them.
    assert all(rule.startswith(("basic_any", "basic_array", "basic_object")) for rule in looped)
    assert "basic_string_sub" in str(xgrammar.Grammar.from_ebnf(ebnf + SHARED_RULES))
    # the check sees the shape it guards against: the guard as two states calling each other
    two_states = r"""root ::= basic_string_sub
basic_escape ::= [\"\\/bfnrt]
basic_string_sub ::= "\"" | [^\0-\x1f\"\\<] basic_string_sub | "<" basic_string_lt | "\\" basic_escape basic_string_sub
basic_string_lt ::= "\"" | [^\0-\x1f\"\\<|] basic_string_sub | "<" basic_string_lt | "\\" basic_escape basic_string_sub
"""
    assert mutually_recursive_rules(two_states) == {"basic_string_sub", "basic_string_lt"}
