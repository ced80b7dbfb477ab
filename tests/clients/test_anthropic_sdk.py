"""/v1/messages on the real server and engine (demo model), through the official anthropic SDK.

`create`, `stream` (typed events, the message they accumulate), `count_tokens`, and a tool loop
that replays the thinking blocks as Claude Code does (signature only, `display: "omitted"`):
the analysis sealed in the signature reaches the second prompt.
"""

from __future__ import annotations

import anthropic
import pytest

from proxy.server.settings import ProxyConfig
from tests.clients.test_responses import Recording
from tests.support.server_fixtures import TEST_DATE

pytestmark = pytest.mark.engine

WEATHER = {
    "name": "get_weather",
    "description": "Get the current weather for a location.",
    "input_schema": {
        "type": "object",
        "properties": {"location": {"type": "string"}},
        "required": ["location"],
    },
}


def sdk(server) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=server.url, api_key="unused", max_retries=0)


def test_create_stream_and_count_tokens(proxy_server):
    client = sdk(proxy_server)
    ask = {
        "model": proxy_server.model,
        "max_tokens": 200,
        # (this SDK version takes no `temperature` argument; the API still does)
        "extra_body": {"temperature": 0},
        "messages": [{"role": "user", "content": "Hello!"}],
    }
    made = client.messages.create(**ask)
    assert made.content and made.content[0].type == "thinking"
    assert made.stop_reason in ("end_turn", "max_tokens")
    with client.messages.stream(**ask) as stream:
        kinds = [event.type for event in stream]
        final = stream.get_final_message()
    assert kinds[0] == "message_start" and "message_stop" in kinds
    assert [b.type for b in final.content] == [b.type for b in made.content]
    counted = client.messages.count_tokens(model=proxy_server.model, messages=ask["messages"])
    assert counted.input_tokens == made.usage.input_tokens + made.usage.cache_read_input_tokens


def test_tool_loop_replays_signed_thinking_into_the_prompt(make_server, vllm_backend):
    backend = Recording(vllm_backend)
    server = make_server(
        ProxyConfig(served_model_names=(vllm_backend.model_name,), conversation_date=TEST_DATE),
        backend,
    )
    client = sdk(server)
    messages: list = [{"role": "user", "content": "What is the weather in Oslo?"}]
    first = client.messages.create(
        model=server.model,
        max_tokens=300,
        extra_body={"temperature": 0},
        tools=[WEATHER],
        tool_choice={"type": "any"},
        thinking={"type": "adaptive", "display": "omitted"},
        messages=messages,
    )
    assert first.stop_reason == "tool_use"
    thinking = [block for block in first.content if block.type == "thinking"]
    call = next(block for block in first.content if block.type == "tool_use")
    assert thinking and all(b.thinking == "" and b.signature for b in thinking)
    assert call.id.startswith("toolu_") and call.name == "get_weather"
    # What the signature seals (the test opens it with the server's own key, for the
    # anonymous caller of a server without API keys and the model it named).
    sealer = server.app.state.messages.sealer
    analysis = sealer.open(thinking[0].signature, owner="anonymous", model=server.model)
    assert analysis
    messages += [
        {"role": "assistant", "content": [block.model_dump() for block in first.content]},
        {
            "role": "user",
            "content": [{"type": "tool_result", "tool_use_id": call.id, "content": "-2 C"}],
        },
    ]
    second = client.messages.create(
        model=server.model,
        max_tokens=300,
        extra_body={"temperature": 0},
        tools=[WEATHER],
        messages=messages,
    )
    assert second.stop_reason in ("end_turn", "max_tokens", "tool_use")
    assert f"<|channel|>analysis<|message|>{analysis}<|end|>" in backend.last_prompt()
