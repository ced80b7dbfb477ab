"""tool_choice with and without tools (fixture (l)) and tool-call streaming, over HTTP."""

from __future__ import annotations

import json

import httpx
import xgrammar
from xgrammar.testing import _is_grammar_accept_string

from proxy.backends.scripted import Script
from proxy.core.conversation import load_encoding
from tests.proxy.helpers import WEATHER_TOOL, body, fold_content, stream_chunks, toks

URL = "/v1/chat/completions"
CALL = toks(
    "<|channel|>analysis<|message|>Use the tool.<|end|>"
    '<|start|>assistant to=functions.get_weather<|channel|>commentary <|constrain|>json<|message|>{"city":"Lima"}<|call|>'
)
ANSWER = toks("<|channel|>final<|message|>Sunny.<|return|>")


def post(server, **extra) -> httpx.Response:
    with httpx.Client(base_url=server.url) as client:
        return client.post(URL, json=body(server.model, **extra))


def test_first_tool_call_fragment_carries_id_type_name_and_later_ones_only_arguments(
    scripted_server,
):
    # The engine pauses before the arguments and within them, longer than the longest hold
    # of a loaded loop (proxy/core/loop_pressure.py: 0.1 s), so that they come in writes of
    # their own even when a loaded test host makes the server merge what is ready.
    arguments_at = CALL.index(toks("<|message|>")[0], CALL.index(toks("<|start|>")[0])) + 1
    pauses = {arguments_at: 0.15, arguments_at + 2: 0.15}
    scripted_server.backend.script = Script([CALL], pauses=pauses)
    with httpx.Client(base_url=scripted_server.url) as client:
        chunks = stream_chunks(client, URL, body(scripted_server.model, tools=[WEATHER_TOOL]))
    fragments = [tc for c in chunks for tc in c["choices"][0]["delta"].get("tool_calls") or []]
    first, *rest = fragments
    assert first["id"].startswith("call_") and first["type"] == "function"
    assert first["function"]["name"] == "get_weather" and first["index"] == 0
    assert rest and all(
        set(f) == {"index", "function"} and set(f["function"]) == {"arguments"} for f in rest
    )
    assert json.loads(
        first["function"]["arguments"] + "".join(f["function"]["arguments"] for f in rest)
    ) == {"city": "Lima"}
    assert fold_content(chunks)["finish_reason"] == "tool_calls"


def test_auto_tool_call_finishes_with_tool_calls_and_null_content(scripted_server):
    scripted_server.backend.script = Script([CALL])
    data = post(scripted_server, tools=[WEATHER_TOOL]).json()
    choice = data["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    assert choice["message"]["content"] is None
    (call,) = choice["message"]["tool_calls"]
    assert call["type"] == "function" and call["id"].startswith("call_")
    assert call["function"] == {"name": "get_weather", "arguments": '{"city":"Lima"}'}


def test_l_required_sends_the_grammar_to_the_engine(scripted_server):
    scripted_server.backend.script = Script([CALL])
    data = post(scripted_server, tools=[WEATHER_TOOL], tool_choice="required").json()
    sampling = scripted_server.backend.requests[-1].sampling
    assert "structural_tag" in sampling.structured_outputs
    assert data["choices"][0]["finish_reason"] == "tool_calls"
    assert data["choices"][0]["message"]["content"] == ""


def test_l_named_tool_choice_finishes_with_stop_like_openai(scripted_server):
    scripted_server.backend.script = Script([CALL])
    data = post(
        scripted_server,
        tools=[WEATHER_TOOL],
        tool_choice={"type": "function", "function": {"name": "get_weather"}},
    ).json()
    assert data["choices"][0]["finish_reason"] == "stop"
    assert data["choices"][0]["message"]["tool_calls"][0]["function"]["name"] == "get_weather"


def test_l_none_with_tools_constrains_the_engine_and_turns_stray_calls_into_text(
    scripted_server,
):
    scripted_server.backend.script = Script([CALL])
    data = post(scripted_server, tools=[WEATHER_TOOL], tool_choice="none").json()
    assert scripted_server.backend.requests[-1].sampling.structured_outputs is not None
    assert data["choices"][0]["message"]["tool_calls"] is None
    assert data["choices"][0]["message"]["content"] == '{"city":"Lima"}'
    assert data["choices"][0]["finish_reason"] == "stop"
    assert data["choices"][0]["message"]["reasoning"] == "Use the tool."


def test_l_none_without_tools_needs_no_grammar(scripted_server):
    scripted_server.backend.script = Script([ANSWER])
    data = post(scripted_server, tool_choice="none").json()
    assert scripted_server.backend.requests[-1].sampling.structured_outputs is None
    assert data["choices"][0]["message"]["content"] == "Sunny."


def test_l_required_or_named_without_tools_is_a_400(scripted_server):
    for choice in ("required", {"type": "function", "function": {"name": "get_weather"}}):
        response = post(scripted_server, tool_choice=choice)
        assert response.status_code == 400
        assert response.json()["error"]["param"] == "tool_choice"
        assert "cannot be enforced" in response.json()["error"]["message"]
    assert scripted_server.backend.requests == []


def test_l_named_tool_missing_from_tools_is_a_400(scripted_server):
    response = post(
        scripted_server,
        tools=[WEATHER_TOOL],
        tool_choice={"type": "function", "function": {"name": "get_time"}},
    )
    assert response.status_code == 400
    assert response.json()["error"]["type"] == "invalid_request_error"


def test_response_format_is_sent_as_grammar_not_prompt(scripted_server):
    scripted_server.backend.script = Script([toks('<|channel|>final<|message|>{"a": 1}<|return|>')])
    schema = {"type": "object", "properties": {"a": {"type": "integer"}}}
    data = post(
        scripted_server,
        response_format={"type": "json_schema", "json_schema": {"name": "r", "schema": schema}},
    ).json()
    tag = scripted_server.backend.requests[-1].sampling.structured_outputs["structural_tag"]
    grammar = xgrammar.Grammar.from_structural_tag(tag)
    final = "<|channel|>final<|message|>"
    assert _is_grammar_accept_string(grammar, final + '{"a":1}')
    assert not _is_grammar_accept_string(grammar, final + '{"a":"1"}')
    assert json.loads(data["choices"][0]["message"]["content"]) == {"a": 1}


def test_m_history_with_reasoning_or_reasoning_content_and_tool_messages_without_name(
    scripted_server,
):
    scripted_server.backend.script = Script([ANSWER])
    messages = [
        {"role": "user", "content": "Weather in Lima and Quito?"},
        {
            "role": "assistant",
            "reasoning_content": "First Lima.",
            "tool_calls": [
                {
                    "id": "call_a",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city":"Lima"}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "call_a", "content": "20C"},
        {
            "role": "assistant",
            "reasoning": "Now Quito.",
            "tool_calls": [
                {
                    "id": "call_b",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city":"Quito"}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "call_b", "content": "15C"},
    ]
    with httpx.Client(base_url=scripted_server.url) as client:
        response = client.post(
            URL,
            json={"model": scripted_server.model, "messages": messages, "tools": [WEATHER_TOOL]},
        )
    assert response.status_code == 200
    prompt = load_encoding().decode(scripted_server.backend.requests[-1].prompt_token_ids)
    assert "<|channel|>analysis<|message|>First Lima.<|end|>" in prompt
    assert "<|channel|>analysis<|message|>Now Quito.<|end|>" in prompt
    assert prompt.count("<|start|>functions.get_weather to=assistant<|channel|>commentary") == 2
    assert prompt.endswith("15C<|end|><|start|>assistant")
