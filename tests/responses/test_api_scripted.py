"""/v1/responses through the real server and the official openai SDK, on scripted model output.

The scripted backend replays chosen Harmony completions, so every item shape, event order,
state transition and hostile input can be pinned down exactly; tests/clients/ runs the same
API on the real engine.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from pydantic import BaseModel

from proxy.backends.scripted import Script
from proxy.core.conversation import load_encoding
from tests.proxy.helpers import toks

THINK = "<|channel|>analysis<|message|>Let me see.<|end|><|start|>assistant"
ANSWER = THINK + "<|channel|>final<|message|>Hello there!<|return|>"
WEATHER = {
    "type": "function",
    "name": "get_weather",
    "description": "Current weather for a city",
    "parameters": {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
        "additionalProperties": False,
    },
}


def call(recipient: str, arguments: str) -> str:
    return f" to={recipient}<|channel|>commentary <|constrain|>json<|message|>{arguments}<|call|>"


@pytest.fixture
def client(scripted_server) -> openai.OpenAI:
    return openai.OpenAI(base_url=scripted_server.base_url, api_key="unused", max_retries=0)


def script(server, text: str, **options: Any) -> None:
    server.backend.script = Script([toks(text)], **options)


def prompt_text(server) -> str:
    return load_encoding().decode(server.backend.requests[-1].prompt_token_ids)


def test_create_returns_reasoning_and_message_items_with_usage(scripted_server, client):
    script(scripted_server, ANSWER)
    response = client.responses.create(model=scripted_server.model, input="Hi")
    assert response.status == "completed"
    assert [item.type for item in response.output] == ["reasoning", "message"]
    assert response.output[0].content[0].text == "Let me see."
    assert response.output_text == "Hello there!"
    assert response.id.startswith("resp_")
    usage = response.usage
    assert usage.output_tokens == len(toks(ANSWER))
    assert usage.output_tokens_details.reasoning_tokens > 0
    assert usage.input_tokens == len(scripted_server.backend.requests[-1].prompt_token_ids)
    assert usage.input_tokens_details.cached_tokens == 0


def test_stream_emits_the_named_events_in_order(scripted_server, client):
    script(scripted_server, ANSWER)
    with client.responses.stream(model=scripted_server.model, input="Hi") as stream:
        events = list(stream)
        final = stream.get_final_response()
    kinds = [e.type for e in events]
    assert [e.sequence_number for e in events] == list(range(len(events)))
    assert kinds[:2] == ["response.created", "response.in_progress"]
    assert kinds[-1] == "response.completed"
    collapsed = [k for i, k in enumerate(kinds) if i == 0 or kinds[i - 1] != k]
    assert collapsed == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
        "response.reasoning_text.delta",
        "response.reasoning_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.output_item.added",
        "response.content_part.added",
        "response.output_text.delta",
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
    ]
    text = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    assert text == final.output_text == "Hello there!"
    assert final.status == "completed"


def test_a_function_call_is_an_item_with_call_id_streamed_with_argument_events(
    scripted_server, client
):
    script(scripted_server, THINK + call("functions.get_weather", '{"city":"Paris"}'))
    with client.responses.stream(
        model=scripted_server.model, input="Weather in Paris?", tools=[WEATHER]
    ) as stream:
        events = list(stream)
        final = stream.get_final_response()
    calls = [item for item in final.output if item.type == "function_call"]
    assert len(calls) == 1
    assert calls[0].name == "get_weather" and calls[0].call_id.startswith("call_")
    assert json.loads(calls[0].arguments) == {"city": "Paris"}
    added = [e for e in events if e.type == "response.output_item.added"]
    assert added[-1].item.type == "function_call" and added[-1].item.name == "get_weather"
    deltas = [e.delta for e in events if e.type == "response.function_call_arguments.delta"]
    assert "".join(deltas) == '{"city":"Paris"}'
    done = [e for e in events if e.type == "response.function_call_arguments.done"]
    assert done[0].arguments == '{"city":"Paris"}'
    # The grammar enforced the declared function under "auto", as in chat completions.
    assert "structural_tag" in scripted_server.backend.requests[-1].sampling.structured_outputs


def test_namespace_tools_render_as_their_own_namespace_and_calls_come_back_namespaced(
    scripted_server, client
):
    namespace = {
        "type": "namespace",
        "name": "multi_agent_v1",
        "description": "Tools for spawning and managing sub-agents.",
        "tools": [
            {
                "type": "function",
                "name": "spawn_agent",
                "description": "Start a sub-agent",
                "strict": False,
                "parameters": {
                    "type": "object",
                    "properties": {"task": {"type": "string"}},
                    "required": ["task"],
                },
            }
        ],
    }
    script(scripted_server, THINK + call("multi_agent_v1.spawn_agent", '{"task":"x"}'))
    response = client.responses.create(
        model=scripted_server.model,
        input="Spawn one",
        tools=[WEATHER, namespace, {"type": "web_search", "external_web_access": False}],
    )
    prompt = prompt_text(scripted_server)
    assert (
        "## multi_agent_v1\n\n// Tools for spawning and managing sub-agents.\nnamespace multi_agent_v1 {"
        in prompt
    )
    assert "namespace functions {" in prompt
    assert "web_search" not in prompt  # a built-in the server does not run is left out
    item = response.output[-1]
    assert item.type == "function_call"
    assert (item.namespace, item.name) == ("multi_agent_v1", "spawn_agent")


def test_max_output_tokens_ends_incomplete(scripted_server, client):
    script(scripted_server, ANSWER)
    response = client.responses.create(model=scripted_server.model, input="Hi", max_output_tokens=4)
    assert response.status == "incomplete"
    assert response.incomplete_details.reason == "max_output_tokens"
    with client.responses.stream(
        model=scripted_server.model, input="Hi", max_output_tokens=4
    ) as stream:
        kinds = [e.type for e in stream]
    assert kinds[-1] == "response.incomplete"
    assert "response.completed" not in kinds


def test_an_engine_failure_mid_stream_ends_with_response_failed(scripted_server):
    script(scripted_server, ANSWER, fail_after=3)
    with httpx.Client(base_url=scripted_server.url) as http:
        reply = http.post(
            "/v1/responses", json={"model": scripted_server.model, "input": "Hi", "stream": True}
        )
    events = [json.loads(line[6:]) for line in reply.text.splitlines() if line.startswith("data: ")]
    assert events[-1]["type"] == "response.failed"
    assert events[-1]["response"]["error"]["code"] == "engine_error"
    # Every item that was opened was closed before the terminal event.
    added = {e["item"]["id"] for e in events if e["type"] == "response.output_item.added"}
    done = {e["item"]["id"] for e in events if e["type"] == "response.output_item.done"}
    assert added == done


def test_previous_response_id_continues_with_calls_and_outputs(scripted_server, client):
    script(scripted_server, THINK + call("functions.get_weather", '{"city":"Oslo"}'))
    first = client.responses.create(
        model=scripted_server.model, input="Weather in Oslo?", tools=[WEATHER]
    )
    call_item = first.output[-1]
    script(scripted_server, THINK + "<|channel|>final<|message|>It is sunny.<|return|>")
    second = client.responses.create(
        model=scripted_server.model,
        previous_response_id=first.id,
        input=[{"type": "function_call_output", "call_id": call_item.call_id, "output": "sunny"}],
        tools=[WEATHER],
    )
    assert second.output_text == "It is sunny."
    assert second.previous_response_id == first.id
    prompt = prompt_text(scripted_server)
    assert "<|start|>user<|message|>Weather in Oslo?<|end|>" in prompt
    assert (
        'to=functions.get_weather<|channel|>commentary <|constrain|>json<|message|>{"city":"Oslo"}<|call|>'
        in prompt
    )
    assert (
        "<|start|>functions.get_weather to=assistant<|channel|>commentary<|message|>sunny<|end|>"
        in prompt
    )
    # Inside an unfinished tool loop Harmony keeps the reasoning that led to the call.
    assert "<|channel|>analysis<|message|>Let me see.<|end|>" in prompt

    fetched = client.responses.retrieve(second.id)
    assert fetched.output_text == "It is sunny." and fetched.id == second.id
    items = client.responses.input_items.list(second.id)
    assert [i.type for i in items.data] == ["function_call_output"]


def test_hostile_items_get_openai_shaped_400s_and_404s(scripted_server, client):
    script(scripted_server, ANSWER)
    cases = [
        ([{"type": "no_such_item"}], "input[0].type"),
        (
            [{"type": "function_call_output", "call_id": "call_x", "output": "1"}],
            "input[0].call_id",
        ),
        (
            [{"role": "user", "content": [{"type": "input_image", "image_url": "x"}]}],
            "input[0].content[0].type",
        ),
        ([{"type": "reasoning", "encrypted_content": "hp1.garbage"}], "input[0].encrypted_content"),
    ]
    for given, param in cases:
        with pytest.raises(openai.BadRequestError) as info:
            client.responses.create(model=scripted_server.model, input=given)
        assert info.value.body["param"] == param, info.value.body
    with pytest.raises(openai.NotFoundError) as missing:
        client.responses.create(
            model=scripted_server.model, input="Hi", previous_response_id="resp_nope"
        )
    assert missing.value.body["code"] == "response_not_found"
    kept = client.responses.create(model=scripted_server.model, input="Hi")
    deleted = client.responses.delete(kept.id)
    assert deleted is None or getattr(deleted, "deleted", True)
    for action in (
        lambda: client.responses.retrieve(kept.id),
        lambda: client.responses.create(
            model=scripted_server.model, input="Hi", previous_response_id=kept.id
        ),
        lambda: client.responses.delete(kept.id),
    ):
        with pytest.raises(openai.NotFoundError):
            action()


def test_store_false_keeps_nothing(scripted_server, client):
    script(scripted_server, ANSWER)
    response = client.responses.create(model=scripted_server.model, input="Hi", store=False)
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(response.id)


def test_encrypted_reasoning_is_replayed_statelessly_and_tampering_is_a_400(
    scripted_server, client
):
    script(
        scripted_server,
        "<|channel|>analysis<|message|>Secret plan: call the tool.<|end|><|start|>assistant"
        + call("functions.get_weather", '{"city":"Rome"}'),
    )
    first = client.responses.create(
        model=scripted_server.model,
        input="Weather in Rome?",
        tools=[WEATHER],
        store=False,
        include=["reasoning.encrypted_content"],
    )
    reasoning, fc = first.output[0], first.output[-1]
    assert reasoning.type == "reasoning" and reasoning.encrypted_content
    assert "Secret plan" not in reasoning.encrypted_content
    replay = [
        {"role": "user", "content": "Weather in Rome?"},
        # What Codex sends back: the sealed text, no clear content.
        {
            "type": "reasoning",
            "id": reasoning.id,
            "summary": [],
            "content": None,
            "encrypted_content": reasoning.encrypted_content,
        },
        {
            "type": "function_call",
            "call_id": fc.call_id,
            "name": fc.name,
            "arguments": fc.arguments,
        },
        {"type": "function_call_output", "call_id": fc.call_id, "output": "warm"},
    ]
    script(scripted_server, THINK + "<|channel|>final<|message|>Warm.<|return|>")
    second = client.responses.create(
        model=scripted_server.model, input=replay, tools=[WEATHER], store=False
    )
    assert second.output_text == "Warm."
    assert "<|channel|>analysis<|message|>Secret plan: call the tool.<|end|>" in prompt_text(
        scripted_server
    )

    token = reasoning.encrypted_content
    tampered = token[:-3] + ("A" if token[-3] != "A" else "B") + token[-2:]
    replay[1]["encrypted_content"] = tampered
    with pytest.raises(openai.BadRequestError) as info:
        client.responses.create(
            model=scripted_server.model, input=replay, tools=[WEATHER], store=False
        )
    assert info.value.body["param"] == "input[1].encrypted_content"
    assert info.value.body["code"] == "invalid_encrypted_content"


def test_parse_enforces_the_json_schema_on_the_final_channel(scripted_server, client):
    class Answer(BaseModel):
        city: str
        degrees: int

    script(
        scripted_server, THINK + '<|channel|>final<|message|>{"city":"Oslo","degrees":3}<|return|>'
    )
    parsed = client.responses.parse(model=scripted_server.model, input="Oslo?", text_format=Answer)
    assert parsed.output_parsed == Answer(city="Oslo", degrees=3)
    structured = scripted_server.backend.requests[-1].sampling.structured_outputs
    # (the schema's own rules are in the tag: its property names as EBNF literals)
    assert "structural_tag" in structured and "degrees" in structured["structural_tag"]


def test_effort_none_maps_to_low_and_the_cache_key_routes(scripted_server, client):
    script(scripted_server, ANSWER)
    client.responses.create(
        model=scripted_server.model,
        input="Hi",
        reasoning={"effort": "none"},
        prompt_cache_key="session-1",
    )
    assert "Reasoning: low" in prompt_text(scripted_server)
    assert scripted_server.backend.requests[-1].sampling.affinity_key == "session-1"


CODEX = Path(__file__).parents[1] / "clients" / "codex"


def codex_request(name: str, model: str) -> dict[str, Any]:
    request = json.loads((CODEX / name).read_text())
    request["model"] = model
    return request


def sse_data(text: str) -> list[dict[str, Any]]:
    return [json.loads(line[6:]) for line in text.splitlines() if line.startswith("data: ")]


@pytest.mark.parametrize("name", ["captured_request.json", "captured_request_catalog_model.json"])
def test_what_codex_cli_sends_is_served(scripted_server, name):
    """Codex 0.169's captured requests: function, namespace, custom, web_search, tool_search."""
    script(scripted_server, ANSWER)
    with httpx.Client(base_url=scripted_server.url, timeout=60) as http:
        reply = http.post("/v1/responses", json=codex_request(name, scripted_server.model))
    assert reply.status_code == 200, reply.text
    events = sse_data(reply.text)
    assert events[-1]["type"] == "response.completed"
    assert events[-1]["response"]["output_text"] == "Hello there!"
    prompt = prompt_text(scripted_server)
    assert "namespace functions {" in prompt and "type exec_command = " in prompt
    if name == "captured_request.json":
        assert "namespace multi_agent_v1 {" in prompt and "type spawn_agent = " in prompt
    else:
        assert "type apply_patch = " in prompt and "plain text (not JSON)" in prompt
    assert "tool_search" not in prompt and "web_search" not in prompt
    assert (
        scripted_server.backend.requests[-1].sampling.affinity_key
        == codex_request(name, "x")["prompt_cache_key"]
    )


def test_codex_replaying_reasoning_sealed_by_another_server_gets_a_400(scripted_server):
    """The captured follow-up carries the capture server's fake encrypted_content."""
    script(scripted_server, ANSWER)
    with httpx.Client(base_url=scripted_server.url, timeout=60) as http:
        reply = http.post(
            "/v1/responses", json=codex_request("captured_followup.json", scripted_server.model)
        )
    assert reply.status_code == 400
    assert reply.json()["error"]["param"] == "input[4].encrypted_content"


def test_a_custom_tool_call_is_a_custom_tool_call_item_with_plain_text_input(
    scripted_server, client
):
    patch = "*** Begin Patch\n*** Add File: a.txt\n+hi\n*** End Patch"
    apply_patch = {
        "type": "custom",
        "name": "apply_patch",
        "description": "Apply a patch.",
        "format": {"type": "grammar", "syntax": "lark", "definition": "start: /.+/s"},
    }
    script(
        scripted_server,
        THINK + f" to=functions.apply_patch<|channel|>commentary<|message|>{patch}<|call|>",
    )
    with client.responses.stream(
        model=scripted_server.model, input="Add a file", tools=[apply_patch]
    ) as stream:
        kinds = [e.type for e in stream]
        final = stream.get_final_response()
    item = final.output[-1]
    assert item.type == "custom_tool_call" and item.name == "apply_patch"
    assert item.input == patch
    assert "response.custom_tool_call_input.delta" in kinds
    # The call's body is free text under the grammar; the recipient is still enforced.
    tag = json.loads(
        scripted_server.backend.requests[-1].sampling.structured_outputs["structural_tag"]
    )
    text = json.dumps(tag)
    assert "functions.apply_patch" in text
    assert '"type": "grammar"' in text  # its Lark grammar, as xgrammar EBNF, shapes the input


def test_custom_tool_grammars_are_enforced_where_xgrammar_reads_them():
    from proxy.core.grammar import CallSpec, FinalSpec, structural_tag
    from proxy.core.tools import ANY_OBJECT

    lark = json.loads((CODEX / "captured_request_catalog_model.json").read_text())
    definition = next(t for t in lark["tools"] if t["type"] == "custom")["format"]["definition"]
    for grammar, kind in [
        (("lark", definition), '"type": "grammar"'),
        (("regex", "[a-z]+( [a-z]+)*"), '"type": "regex"'),
        (("regex", "(unclosed"), '"type": "any_text"'),
        (("lark", "this is not lark ::="), '"type": "any_text"'),
    ]:
        spec = CallSpec("functions.t", ANY_OBJECT, freeform=True, grammar=grammar)
        tag = json.dumps(json.loads(structural_tag((spec,), FinalSpec(), preamble=True)))
        body = tag[tag.index("to=functions.t") :]
        assert kind in body[:600], (grammar, body[:600])


def test_a_prompt_over_the_context_fails_in_the_stream_when_streaming(scripted_server, client):
    script(scripted_server, ANSWER)
    huge = "word " * 9000
    with client.responses.stream(model=scripted_server.model, input=huge) as stream:
        events = list(stream)
    assert [e.type for e in events] == [
        "response.created",
        "response.in_progress",
        "response.failed",
    ]
    assert events[-1].response.error.code == "context_length_exceeded"
    with pytest.raises(openai.BadRequestError) as info:
        client.responses.create(model=scripted_server.model, input=huge)
    assert info.value.body["code"] == "context_length_exceeded"


def test_two_proxies_share_one_postgres_store(make_server, postgres_url, tmp_path):
    """Several proxy replicas behind one load balancer: a conversation continues on any."""
    from proxy.backends.scripted import ScriptedBackend
    from proxy.server.settings import ProxyConfig
    from tests.support.server_fixtures import TEST_DATE

    backend = ScriptedBackend()
    config = ProxyConfig(
        served_model_names=(backend.model_name,),
        conversation_date=TEST_DATE,
        response_store=postgres_url,
        reasoning_key_file=str(tmp_path / "shared.key"),
    )
    one, two = make_server(config, backend), make_server(config, backend)
    backend.script = Script([toks(THINK + call("functions.get_weather", '{"city":"Kyiv"}'))])
    first = openai.OpenAI(base_url=one.base_url, api_key="x").responses.create(
        model=one.model, input="Weather in Kyiv?", tools=[WEATHER]
    )
    backend.script = Script([toks(ANSWER)])
    second = openai.OpenAI(base_url=two.base_url, api_key="x").responses.create(
        model=two.model,
        previous_response_id=first.id,
        input=[
            {"type": "function_call_output", "call_id": first.output[-1].call_id, "output": "5 C"}
        ],
        tools=[WEATHER],
    )
    assert second.status == "completed"
    prompt = load_encoding().decode(backend.requests[-1].prompt_token_ids)
    assert "Weather in Kyiv?" in prompt and "commentary<|message|>5 C<|end|>" in prompt
    assert openai.OpenAI(base_url=one.base_url, api_key="x").responses.retrieve(second.id)


def test_a_call_cut_by_max_output_tokens_is_incomplete_never_completed(scripted_server, client):
    """Agent clients run every completed call: a cut one must say it is not."""
    script(scripted_server, THINK + call("functions.get_weather", '{"city":"Paris"}'))
    cut = (
        len(
            toks(
                THINK
                + " to=functions.get_weather<|channel|>commentary <|constrain|>json<|message|>"
            )
        )
        + 2
    )
    response = client.responses.create(
        model=scripted_server.model, input="Hi", tools=[WEATHER], max_output_tokens=cut
    )
    assert response.status == "incomplete"
    item = response.output[-1]
    assert item.type == "function_call" and item.status == "incomplete"


def test_a_preamble_is_commentary_and_stays_out_of_the_answer(scripted_server, client):
    class Out(BaseModel):
        ok: bool

    preamble = THINK + "<|channel|>commentary<|message|>Let me answer.<|end|><|start|>assistant"
    script(scripted_server, preamble + '<|channel|>final<|message|>{"ok":true}<|return|>')
    parsed = client.responses.parse(
        model=scripted_server.model, input="Go", text_format=Out, tools=[WEATHER]
    )
    messages = [item for item in parsed.output if item.type == "message"]
    assert [m.phase for m in messages] == ["commentary", "final_answer"]
    assert parsed.output_parsed == Out(ok=True)
    with httpx.Client(base_url=scripted_server.url) as http:
        raw = http.post("/v1/responses", json={"model": scripted_server.model, "input": "Go"})
    assert raw.json()["output_text"] == '{"ok":true}'  # the answer alone

    # Replayed, the preamble stays commentary and the reasoning before it is kept.
    history = [item.model_dump(exclude_none=True) for item in parsed.output]
    script(scripted_server, ANSWER)
    client.responses.create(
        model=scripted_server.model,
        input=[
            {"role": "user", "content": "Go"},
            history[0],
            history[1],
            {
                "type": "function_call",
                "call_id": "call_1",
                "name": "get_weather",
                "arguments": "{}",
            },
            {"type": "function_call_output", "call_id": "call_1", "output": "ok"},
        ],
        tools=[WEATHER],
    )
    prompt = prompt_text(scripted_server)
    assert "<|channel|>analysis<|message|>Let me see.<|end|>" in prompt
    assert "<|channel|>commentary<|message|>Let me answer.<|end|>" in prompt
    assert "<|channel|>final<|message|>Let me answer." not in prompt


def test_custom_tools_are_declared_as_taking_a_string(scripted_server, client):
    script(scripted_server, ANSWER)
    client.responses.create(
        model=scripted_server.model,
        input="Hi",
        tools=[{"type": "custom", "name": "apply_patch", "description": "Apply a patch."}],
    )
    assert "type apply_patch = (_: string) => any;" in prompt_text(scripted_server)


@pytest.mark.parametrize("stream", [False, True])
def test_bad_values_anywhere_are_400s_naming_the_responses_parameter(scripted_server, stream):
    script(scripted_server, ANSWER)
    model = scripted_server.model
    cases = [
        ({"model": model, "input": "Hi", "metadata": {"k": "\udc00"}}, "metadata.k"),
        ({"model": model, "input": "Hi", "instructions": "\ud800"}, "instructions"),
        (
            {
                "model": model,
                "input": "Hi",
                "text": {
                    "format": {"type": "json_schema", "name": 5, "schema": {"type": "object"}}
                },
            },
            "text.format.name",
        ),
        ({"model": model, "input": "Hi", "include": ["no.such"]}, "include"),
        (
            {
                "model": model,
                "input": "Hi",
                "tools": [{"type": "namespace", "name": " ", "tools": [WEATHER]}],
            },
            "tools[0].name",
        ),
        (
            {"model": model, "input": "Hi", "reasoning": {"effort": "extreme"}},
            "reasoning.effort",
        ),
    ]
    if not stream:  # streamed, a context overflow is a response.failed event (tested above)
        cases.append(
            ({"model": model, "input": "Hi", "max_output_tokens": 10**9}, "max_output_tokens")
        )
    with httpx.Client(base_url=scripted_server.url) as http:
        for payload, param in cases:
            body = json.dumps({**payload, "stream": stream}, ensure_ascii=True)
            reply = http.post(
                "/v1/responses", content=body, headers={"Content-Type": "application/json"}
            )
            assert reply.status_code == 400, (payload, reply.text)
            assert reply.json()["error"]["param"] == param, reply.text
