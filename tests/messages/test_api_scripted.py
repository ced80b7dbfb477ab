"""/v1/messages through the real server, on scripted model output: exact events and errors.

The scripted backend replays chosen Harmony completions, so the block shapes, Anthropic's SSE
event sequence, the thinking signatures and every refusal are pinned down exactly; the
official `anthropic` SDK reads them as it reads Anthropic's own. tests/clients/ runs the same
API on the real engine (the SDK, and Claude Code).
"""

from __future__ import annotations

import json
from typing import Any

import anthropic
import httpx
import pytest

from proxy.backends.scripted import Script
from proxy.core.conversation import load_encoding
from tests.proxy.helpers import toks

THINK = "<|channel|>analysis<|message|>Let me see.<|end|><|start|>assistant"
ANSWER = THINK + "<|channel|>final<|message|>Hello there!<|return|>"
PREAMBLE = "<|channel|>commentary<|message|>Checking.<|end|><|start|>assistant"
CALL = (
    THINK
    + PREAMBLE
    + ' to=functions.get_weather<|channel|>commentary <|constrain|>json<|message|>{"city":"Paris"}'
    + "<|call|>"
)
WEATHER = {
    "name": "get_weather",
    "description": "Current weather for a city",
    "input_schema": {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "type": "object",
        "properties": {"city": {"type": "string", "maxLength": 100}},
        "required": ["city"],
        "additionalProperties": False,
    },
    "cache_control": {"type": "ephemeral"},
}


@pytest.fixture
def client(scripted_server) -> anthropic.Anthropic:
    return anthropic.Anthropic(
        base_url=scripted_server.base_url.removesuffix("/v1"), api_key="unused", max_retries=0
    )


def script(server, text: str, **options: Any) -> None:
    server.backend.script = Script([toks(text)], **options)


def prompt_text(server) -> str:
    return load_encoding().decode(server.backend.requests[-1].prompt_token_ids)


def post(server, body: dict[str, Any], path: str = "/messages") -> httpx.Response:
    return httpx.post(
        server.base_url + path + "?beta=true",
        json=body,
        headers={"anthropic-version": "2023-06-01", "anthropic-beta": "claude-code-20250219"},
        timeout=30,
    )


def events(response: httpx.Response) -> list[tuple[str, dict[str, Any]]]:
    out = []
    for frame in response.text.split("\n\n"):
        lines = dict(line.split(": ", 1) for line in frame.splitlines() if ": " in line)
        if "event" in lines:
            out.append((lines["event"], json.loads(lines["data"])))
    return out


def ask(server, **fields: Any) -> dict[str, Any]:
    return {
        "model": server.model,
        "max_tokens": 256,
        "messages": [{"role": "user", "content": "Hi"}],
        **fields,
    }


# ---------------------------------------------------------------------------- answers


def test_create_returns_thinking_with_signature_then_text(scripted_server, client):
    script(scripted_server, ANSWER)
    message = client.messages.create(
        model=scripted_server.model, max_tokens=256, messages=[{"role": "user", "content": "Hi"}]
    )
    assert [block.type for block in message.content] == ["thinking", "text"]
    assert message.content[0].thinking == "Let me see."
    assert message.content[0].signature.startswith("hpr2.")
    assert message.content[1].text == "Hello there!"
    assert message.stop_reason == "end_turn" and message.stop_sequence is None
    assert message.id.startswith("msg_")
    prompt = len(scripted_server.backend.requests[-1].prompt_token_ids)
    assert message.usage.input_tokens == prompt
    assert message.usage.cache_read_input_tokens == 0
    assert message.usage.output_tokens == len(toks(ANSWER))


def test_stream_tool_call_emits_anthropics_exact_event_sequence(scripted_server):
    script(scripted_server, CALL)
    response = post(scripted_server, ask(scripted_server, stream=True, tools=[WEATHER]))
    assert response.status_code == 200
    seen = events(response)
    kinds = [kind for kind, _ in seen]
    collapsed = [k for i, k in enumerate(kinds) if i == 0 or kinds[i - 1] != k]
    assert collapsed == [
        "message_start",
        "ping",
        "content_block_start",  # 0: thinking
        "content_block_delta",  # thinking_delta..., signature_delta
        "content_block_stop",
        "content_block_start",  # 1: text (the preamble)
        "content_block_delta",
        "content_block_stop",
        "content_block_start",  # 2: tool_use
        "content_block_delta",  # input_json_delta
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]
    assert all(data["type"] == kind for kind, data in seen)
    deltas = [d["delta"]["type"] for k, d in seen if k == "content_block_delta"]
    assert deltas[-1] == "input_json_delta"
    assert deltas.index("signature_delta") == deltas.index("text_delta") - 1
    starts = [d for k, d in seen if k == "content_block_start"]
    assert [s["index"] for s in starts] == [0, 1, 2]
    tool = starts[2]["content_block"]
    assert tool["type"] == "tool_use" and tool["name"] == "get_weather" and tool["input"] == {}
    assert tool["id"].startswith("toolu_")
    arguments = "".join(
        d["delta"]["partial_json"]
        for k, d in seen
        if k == "content_block_delta" and d["delta"]["type"] == "input_json_delta"
    )
    assert json.loads(arguments) == {"city": "Paris"}
    end = dict(seen)["message_delta"]
    assert end["delta"] == {"stop_reason": "tool_use", "stop_sequence": None}
    assert end["usage"]["output_tokens"] == len(toks(CALL))


def test_sdk_stream_accumulates_the_same_message(scripted_server, client):
    script(scripted_server, CALL)
    with client.messages.stream(
        model=scripted_server.model,
        max_tokens=256,
        tools=[WEATHER],
        messages=[{"role": "user", "content": "Weather in Paris?"}],
    ) as stream:
        kinds = {event.type for event in stream}
        final = stream.get_final_message()
    assert {"message_start", "content_block_delta", "message_stop"} <= kinds
    assert [block.type for block in final.content] == ["thinking", "text", "tool_use"]
    assert final.content[2].input == {"city": "Paris"}
    assert final.stop_reason == "tool_use"


def test_display_omitted_sends_signature_only(scripted_server):
    script(scripted_server, ANSWER)
    body = ask(scripted_server, stream=True, thinking={"type": "adaptive", "display": "omitted"})
    seen = events(post(scripted_server, body))
    deltas = [d["delta"]["type"] for k, d in seen if k == "content_block_delta"]
    assert "thinking_delta" not in deltas and deltas[0] == "signature_delta"
    script(scripted_server, ANSWER)
    body = ask(scripted_server, thinking={"type": "adaptive", "display": "omitted"})
    block = post(scripted_server, body).json()["content"][0]
    assert block["thinking"] == "" and block["signature"].startswith("hpr2.")


def test_max_tokens_and_stop_sequence_reasons(scripted_server):
    script(scripted_server, THINK + "<|channel|>final<|message|>one two three", finish_reason=None)
    body = ask(scripted_server, max_tokens=len(toks(THINK)) + 3)
    assert post(scripted_server, body).json()["stop_reason"] == "max_tokens"
    script(scripted_server, ANSWER)
    answer = post(scripted_server, ask(scripted_server, stop_sequences=["there"])).json()
    assert answer["stop_reason"] == "stop_sequence"
    assert answer["stop_sequence"] == "there"
    assert answer["content"][-1]["text"] == "Hello "


# ---------------------------------------------------------------------------- requests


def test_replayed_signature_restores_the_analysis_in_the_prompt(scripted_server, client):
    script(scripted_server, CALL)
    first = client.messages.create(
        model=scripted_server.model,
        max_tokens=256,
        tools=[WEATHER],
        thinking={"type": "adaptive", "display": "omitted"},
        messages=[{"role": "user", "content": "Weather in Paris?"}],
    )
    call = first.content[-1]
    script(scripted_server, ANSWER)
    client.messages.create(
        model=scripted_server.model,
        max_tokens=256,
        tools=[WEATHER],
        messages=[
            {"role": "user", "content": "Weather in Paris?"},
            {"role": "assistant", "content": [b.model_dump() for b in first.content]},
            {
                "role": "user",
                "content": [
                    {"type": "tool_result", "tool_use_id": call.id, "content": "Sunny"},
                ],
            },
        ],
    )
    prompt = prompt_text(scripted_server)
    assert "<|channel|>analysis<|message|>Let me see.<|end|>" in prompt
    assert '<|constrain|>json<|message|>{"city": "Paris"}<|call|>' in prompt
    assert "functions.get_weather to=assistant<|channel|>commentary<|message|>Sunny" in prompt


def test_claude_code_request_shapes_are_accepted(scripted_server):
    """System blocks with cache_control, a system message inside `messages`, adaptive
    thinking, effort, context management, metadata, deferred and server tools."""
    script(scripted_server, ANSWER)
    deferred = dict(WEATHER, name="later", defer_loading=True)
    body = ask(
        scripted_server,
        system=[
            {"type": "text", "text": "x-anthropic-billing-header: cc_version=1;"},
            {"type": "text", "text": "Be brief.", "cache_control": {"type": "ephemeral"}},
        ],
        messages=[
            {"role": "user", "content": [{"type": "text", "text": "Hi"}]},
            {"role": "system", "content": [{"type": "text", "text": "Env: linux"}]},
        ],
        tools=[WEATHER, deferred, {"type": "web_search_20250305", "name": "web_search"}],
        thinking={"type": "adaptive", "display": "omitted"},
        output_config={"effort": "high"},
        context_management={"edits": [{"type": "clear_thinking_20251015", "keep": "all"}]},
        metadata={"user_id": json.dumps({"device_id": "ab" * 32, "session_id": "x"})},
    )
    response = post(scripted_server, body)
    assert response.status_code == 200, response.text
    prompt = prompt_text(scripted_server)
    assert "Reasoning: high" in prompt
    assert "Be brief." in prompt and "billing-header" not in prompt
    assert "<|start|>developer<|message|># Instructions\n\nEnv: linux<|end|>" in prompt
    assert "get_weather" in prompt and "later" not in prompt and "web_search" not in prompt


def test_thinking_budget_and_disabled_set_the_reasoning_level(scripted_server):
    for thinking, level in (
        ({"type": "enabled", "budget_tokens": 4000}, "low"),
        ({"type": "enabled", "budget_tokens": 10000}, "medium"),
        ({"type": "enabled", "budget_tokens": 31999}, "high"),
        ({"type": "disabled"}, "low"),
    ):
        script(scripted_server, ANSWER)
        assert post(scripted_server, ask(scripted_server, thinking=thinking)).status_code == 200
        assert f"Reasoning: {level}" in prompt_text(scripted_server)


def test_count_tokens_counts_the_rendered_prompt(scripted_server):
    script(scripted_server, ANSWER)
    body = ask(scripted_server, tools=[WEATHER])
    post(scripted_server, body)
    rendered = len(scripted_server.backend.requests[-1].prompt_token_ids)
    del body["max_tokens"]
    counted = post(scripted_server, body, "/messages/count_tokens")
    assert counted.status_code == 200
    assert counted.json() == {"input_tokens": rendered}


def test_claude_code_probe_is_answered(scripted_server):
    response = httpx.head(scripted_server.base_url.removesuffix("/v1") + "/api/hello")
    assert response.status_code == 200


# ---------------------------------------------------------------------------- errors


def _error(response: httpx.Response, status: int = 400, kind: str = "invalid_request_error"):
    assert response.status_code == status, response.text
    body = response.json()
    assert body["type"] == "error" and body["error"]["type"] == kind
    return body["error"]["message"]


@pytest.mark.parametrize(
    ("messages", "field"),
    [
        (
            [
                {
                    "role": "user",
                    "content": [
                        {"type": "image", "source": {"type": "base64", "data": "AA=="}},
                    ],
                }
            ],
            "messages.0.content.0.type",
        ),
        ([{"role": "user", "content": [{"type": "hologram"}]}], "messages.0.content.0.type"),
        (
            [
                {"role": "user", "content": "Hi"},
                {"role": "assistant", "content": "Hello"},
                {"role": "user", "content": "More"},
                {
                    "role": "user",
                    "content": [{"type": "tool_result", "tool_use_id": "toolu_x", "content": ""}],
                },
            ],
            "messages.3.content.0.tool_use_id",
        ),
        (
            [
                {"role": "user", "content": "Hi"},
                {
                    "role": "assistant",
                    "content": [{"type": "thinking", "thinking": "x", "signature": "forged"}],
                },
            ],
            "messages.1.content.0.signature",
        ),
        ([{"role": "robot", "content": "Hi"}], "messages.0.role"),
    ],
)
def test_bad_blocks_are_anthropic_400s_naming_the_field(scripted_server, messages, field):
    message = _error(post(scripted_server, ask(scripted_server, messages=messages)))
    assert message.startswith(field + ":")


def test_a_responses_token_is_no_thinking_signature(scripted_server):
    sealer = scripted_server.app.state.responses.sealer
    # Sealed for the same owner and model: only the purpose differs.
    token = sealer.seal("x", owner="anonymous", model=scripted_server.model)
    body = ask(
        scripted_server,
        messages=[
            {"role": "user", "content": "Hi"},
            {
                "role": "assistant",
                "content": [{"type": "thinking", "thinking": "", "signature": token}],
            },
            {"role": "user", "content": "Again"},
        ],
    )
    assert "invalid signature" in _error(post(scripted_server, body))


def test_max_tokens_missing_or_above_the_context(scripted_server):
    body = ask(scripted_server)
    del body["max_tokens"]
    assert _error(post(scripted_server, body)) == "max_tokens: Field required"
    message = _error(post(scripted_server, ask(scripted_server, max_tokens=10**6)))
    assert message.startswith("max_tokens")


def test_route_errors_take_anthropics_shape(scripted_server):
    _error(httpx.get(scripted_server.base_url + "/messages"), 405)
    _error(
        httpx.post(scripted_server.base_url + "/messages/nothing", json={}), 404, "not_found_error"
    )
    body = ask(scripted_server, model="no-such-model")
    _error(post(scripted_server, body), 404, "not_found_error")
    # The other APIs keep OpenAI's shape.
    assert "error" in httpx.get(scripted_server.base_url + "/chat/completions").json()


def test_api_key_is_read_from_x_api_key(make_server):
    from proxy.backends.scripted import ScriptedBackend
    from proxy.server.settings import ProxyConfig

    backend = ScriptedBackend(Script([toks(ANSWER)]))
    server = make_server(
        ProxyConfig(served_model_names=(backend.model_name,), api_keys=("k",)), backend
    )
    body = ask(server)
    _error(httpx.post(server.base_url + "/messages", json=body), 401, "authentication_error")
    ok = httpx.post(server.base_url + "/messages", json=body, headers={"x-api-key": "k"})
    assert ok.status_code == 200


def test_error_after_the_start_is_an_error_event(scripted_server):
    script(scripted_server, ANSWER, fail_after=3)
    seen = events(post(scripted_server, ask(scripted_server, stream=True)))
    assert seen[0][0] == "message_start"
    assert seen[-1][0] == "error"
    assert seen[-1][1]["error"]["type"] == "api_error"
    assert "message_stop" not in [kind for kind, _ in seen]
