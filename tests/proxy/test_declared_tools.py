"""Only declared tools come out as `tool_calls`, with JSON-object arguments, and bad tools are 400s.

The scripted backend replays what a model could generate when no grammar stops it (enforcement
turned off, or a backend that cannot apply one); the real-engine proof is in tests/clients.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from proxy.backends.scripted import Script
from proxy.server.settings import ProxyConfig
from tests.proxy.helpers import WEATHER_TOOL, body, fold_content, stream_chunks, toks
from tests.support.server_fixtures import TEST_DATE

URL = "/v1/chat/completions"
THINK = "<|channel|>analysis<|message|>Let me see.<|end|><|start|>assistant"


def call(name: str, arguments: str, *, channel_side: bool = False) -> str:
    if channel_side:
        return f"<|channel|>commentary to={name} <|constrain|>json<|message|>{arguments}<|call|>"
    return f" to={name}<|channel|>commentary <|constrain|>json<|message|>{arguments}<|call|>"


@pytest.fixture
def loose_server(make_server):
    """A server with grammar enforcement under "auto" turned off."""
    from proxy.backends.scripted import ScriptedBackend

    backend = ScriptedBackend()
    config = ProxyConfig(
        served_model_names=(backend.model_name,),
        conversation_date=TEST_DATE,
        enforce_auto_tool_calls=False,
    )
    return make_server(config, backend)


def both_ways(server, script: str, **extra: Any) -> tuple[dict, dict]:
    """The non-streamed message and the folded stream for the same scripted output."""
    server.backend.script = Script([toks(script)])
    with httpx.Client(base_url=server.url) as client:
        whole = client.post(URL, json=body(server.model, **extra)).json()
        server.backend.script = Script([toks(script)])
        streamed = fold_content(stream_chunks(client, URL, body(server.model, **extra)))
    return whole["choices"][0], streamed


def recoveries(server, reason: str) -> float:
    text = httpx.get(f"{server.url}/metrics").text
    for line in text.splitlines():
        if line.startswith(f'harmony_proxy_tool_call_recoveries_total{{reason="{reason}"}}'):
            return float(line.split()[-1])
    return 0.0


@pytest.mark.parametrize(
    "address", ["functions.calculator", "python", "browser.search", "functions.get_weather2"]
)
def test_an_undeclared_call_becomes_content_and_is_counted(loose_server, address):
    before = recoveries(loose_server, "undeclared")
    choice, streamed = both_ways(
        loose_server, THINK + call(address, '{"x":1}'), tools=[WEATHER_TOOL]
    )
    assert choice["message"]["tool_calls"] is None and not streamed["tool_calls"]
    assert choice["message"]["content"] == streamed["content"] == '{"x":1}'
    assert choice["finish_reason"] == streamed["finish_reason"] == "stop"
    assert recoveries(loose_server, "undeclared") == before + 2


def test_a_name_seen_only_in_the_history_is_not_callable(loose_server):
    history = [
        {"role": "user", "content": "2+2?"},
        {
            "role": "assistant",
            "tool_calls": [
                {
                    "id": "c1",
                    "type": "function",
                    "function": {"name": "calculator", "arguments": '{"e":"2+2"}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "c1", "content": "4"},
    ]
    loose_server.backend.script = Script([toks(THINK + call("functions.calculator", "{}"))])
    data = httpx.post(
        f"{loose_server.url}{URL}",
        json={"model": loose_server.model, "messages": history, "tools": [WEATHER_TOOL]},
    ).json()
    assert data["choices"][0]["message"]["tool_calls"] is None


def test_without_a_grammar_a_declared_call_with_broken_arguments_becomes_content(loose_server):
    before = recoveries(loose_server, "invalid_arguments")
    choice, streamed = both_ways(
        loose_server, THINK + call("functions.get_weather", '{"city": "Par'), tools=[WEATHER_TOOL]
    )
    assert choice["message"]["tool_calls"] is None and not streamed["tool_calls"]
    assert choice["message"]["content"] == streamed["content"] == '{"city": "Par'
    assert recoveries(loose_server, "invalid_arguments") == before + 2


@pytest.mark.parametrize("channel_side", [False, True])
def test_without_a_grammar_a_valid_declared_call_is_sent_whole(loose_server, channel_side):
    script = THINK + call("functions.get_weather", '{"city":"Paris"}', channel_side=channel_side)
    loose_server.backend.script = Script([toks(script)])
    with httpx.Client(base_url=loose_server.url) as client:
        chunks = stream_chunks(client, URL, body(loose_server.model, tools=[WEATHER_TOOL]))
    pieces = [tc for c in chunks for tc in c["choices"][0]["delta"].get("tool_calls") or []]
    assert len(pieces) == 1
    assert pieces[0]["function"] == {"name": "get_weather", "arguments": '{"city":"Paris"}'}
    assert fold_content(chunks)["finish_reason"] == "tool_calls"


def test_under_the_grammar_the_call_id_and_name_come_before_any_argument(scripted_server):
    script = THINK + call("functions.get_weather", '{"city":"Paris"}')
    scripted_server.backend.script = Script([toks(script)])
    with httpx.Client(base_url=scripted_server.url) as client:
        chunks = stream_chunks(client, URL, body(scripted_server.model, tools=[WEATHER_TOOL]))
    pieces = [tc for c in chunks for tc in c["choices"][0]["delta"].get("tool_calls") or []]
    assert pieces[0]["id"].startswith("call_") and pieces[0]["function"] == {
        "name": "get_weather",
        "arguments": "",
    }
    assert "".join(p["function"]["arguments"] for p in pieces) == '{"city":"Paris"}'
    request = scripted_server.backend.requests[-1]
    assert "structural_tag" in request.sampling.structured_outputs


def test_parallel_tool_calls_false_keeps_the_first_call_and_stops(loose_server):
    two = (
        THINK
        + ' to=functions.get_weather<|channel|>commentary <|constrain|>json<|message|>{"city":"A"}'
        + "<|end|><|start|>assistant"
        + call("functions.get_weather", '{"city":"B"}')
    )
    choice, streamed = both_ways(loose_server, two, tools=[WEATHER_TOOL], parallel_tool_calls=False)
    calls = choice["message"]["tool_calls"]
    assert [c["function"]["arguments"] for c in calls] == ['{"city":"A"}']
    assert [c["arguments"] for c in streamed["tool_calls"].values()] == ['{"city":"A"}']
    choice, _ = both_ways(loose_server, two, tools=[WEATHER_TOOL])
    assert len(choice["message"]["tool_calls"]) == 2


def test_tool_choice_none_turns_a_stray_call_into_text(scripted_server):
    choice, streamed = both_ways(
        scripted_server,
        THINK + call("functions.get_weather", '{"city":"Lima"}'),
        tools=[WEATHER_TOOL],
        tool_choice="none",
    )
    assert choice["message"]["tool_calls"] is None
    assert choice["message"]["content"] == streamed["content"] == '{"city":"Lima"}'


def tool(name: str, parameters: Any = None) -> dict[str, Any]:
    function: dict[str, Any] = {"name": name}
    if parameters is not None:
        function["parameters"] = parameters
    return {"type": "function", "function": function}


@pytest.mark.parametrize(
    ("tools", "param", "words"),
    [
        ([tool("a", ["city"])], "tools[0].function.parameters", "JSON Schema object"),
        ([tool("a", "object")], "tools[0].function.parameters", "JSON Schema object"),
        ([tool("a", {"type": "string"})], "tools[0].function.parameters", '"object"'),
        (
            [tool("a", {"type": "object", "properties": {"x": {"type": 5}}})],
            "tools[0].function.parameters",
            "properties/x/type",
        ),
        (
            [tool("a", {"type": "object", "required": "x"})],
            "tools[0].function.parameters",
            "Invalid schema",
        ),
        ([WEATHER_TOOL, WEATHER_TOOL], "tools[1].function.name", "Duplicate"),
        ([tool("")], "tools[0].function.name", "empty"),
        ([tool("   ")], "tools[0].function.name", "empty"),
        ([tool("x" * 65)], "tools[0].function.name", "64"),
    ],
)
def test_tools_that_cannot_be_honoured_are_a_400_naming_the_parameter(
    scripted_server, tools, param, words
):
    response = httpx.post(
        f"{scripted_server.url}{URL}", json=body(scripted_server.model, tools=tools)
    )
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["param"] == param and error["type"] == "invalid_request_error"
    assert words in error["message"]
    assert scripted_server.backend.requests == []


def test_a_64_character_name_is_accepted(scripted_server):
    scripted_server.backend.script = Script([toks("<|channel|>final<|message|>ok<|return|>")])
    response = httpx.post(
        f"{scripted_server.url}{URL}",
        json=body(scripted_server.model, tools=[tool("x" * 64, {"type": "object"})]),
    )
    assert response.status_code == 200, response.text


def test_strict_tool_arguments_are_grammar_constrained_under_every_tool_choice(loose_server):
    from xgrammar import Grammar
    from xgrammar.testing import _is_grammar_accept_string

    strict = {**WEATHER_TOOL, "function": {**WEATHER_TOOL["function"], "strict": True}}
    for choice in ("auto", "required", {"type": "function", "function": {"name": "get_weather"}}):
        loose_server.backend.script = Script([toks(THINK + call("functions.get_weather", "{}"))])
        httpx.post(
            f"{loose_server.url}{URL}",
            json=body(loose_server.model, tools=[strict], tool_choice=choice),
        )
        tag = loose_server.backend.requests[-1].sampling.structured_outputs["structural_tag"]
        grammar = Grammar.from_structural_tag(tag)
        header = " to=functions.get_weather<|channel|>commentary json<|message|>"
        assert _is_grammar_accept_string(grammar, header + '{"city":"Paris"}')
        assert not _is_grammar_accept_string(grammar, header + '{"city":1}')


def test_schemas_without_a_type_still_only_allow_object_arguments():
    from xgrammar import Grammar
    from xgrammar.testing import _is_grammar_accept_string

    from proxy.api.chat_schema import ChatCompletionRequest
    from proxy.core.conversation import tool_names_for
    from proxy.core.output_rules import output_rules
    from tests.proxy.helpers import neutral

    for parameters in ({}, {"properties": {"a": {"type": "integer"}}}):
        request = ChatCompletionRequest.model_validate(
            {
                "model": "m",
                "messages": [{"role": "user", "content": "Hi"}],
                "tools": [tool("f", parameters)],
                "tool_choice": "required",
            }
        )
        wanted = neutral(request, validated=True)
        tag = output_rules(wanted, tool_names_for(wanted)).structured_outputs
        grammar = Grammar.from_structural_tag(tag["structural_tag"])
        header = " to=functions.f<|channel|>commentary <|constrain|>json<|message|>"
        assert _is_grammar_accept_string(grammar, header + '{"a":1}')
        for not_an_object in ("null", "[1]", '"x"'):
            assert not _is_grammar_accept_string(grammar, header + not_an_object)


def test_a_garbled_header_naming_a_tool_keeps_reasoning_out_of_content(loose_server):
    script = "<|channel|>analysis get_weather<|message|>I think about it.<|end|>"
    script += "<|start|>assistant<|channel|>final<|message|>Hi<|return|>"
    choice, streamed = both_ways(loose_server, script, tools=[WEATHER_TOOL])
    assert choice["message"]["tool_calls"] is None
    assert choice["message"]["content"] == streamed["content"] == "Hi"
    assert choice["message"]["reasoning"] == streamed["reasoning"] == "I think about it."


def test_a_final_answer_in_json_is_never_a_call_to_a_tool_named_json(loose_server):
    json_tool = tool("json", {"type": "object"})
    choice, _ = both_ways(
        loose_server, '<|channel|>final json<|message|>{"a": 1}<|return|>', tools=[json_tool]
    )
    assert choice["message"]["tool_calls"] is None
    assert choice["message"]["content"] == '{"a": 1}'
