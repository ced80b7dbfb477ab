"""/v1/responses on the real server and engine (demo model), through the official openai SDK.

`create`, `stream` (typed events, in order) and `parse`; `previous_response_id` chained across a
server restart (the SQLite store outlives the process); and a stateless tool loop with
`store: false` whose reasoning goes back to the server sealed, as Codex CLI runs it.
"""

from __future__ import annotations

import json
from typing import Literal

import openai
import pytest
from pydantic import BaseModel

from proxy.core.conversation import load_encoding
from proxy.server.settings import ProxyConfig
from tests.support.server_fixtures import TEST_DATE, stop_server

pytestmark = pytest.mark.engine

WEATHER = {
    "type": "function",
    "name": "get_weather",
    "description": "Get the current weather for a location.",
    "parameters": {
        "type": "object",
        "properties": {"location": {"type": "string"}},
        "required": ["location"],
    },
}


class Recording:
    """The real engine, remembering each prompt it was given (to check what was rendered)."""

    def __init__(self, backend) -> None:
        self._backend = backend
        self.prompts: list[list[int]] = []

    def __getattr__(self, name: str):
        return getattr(self._backend, name)

    def generate(self, prompt_token_ids, sampling, request_id):
        self.prompts.append(list(prompt_token_ids))
        return self._backend.generate(prompt_token_ids, sampling, request_id)

    def last_prompt(self) -> str:
        return load_encoding().decode(self.prompts[-1])


def sdk(server) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.base_url, api_key="unused", max_retries=0)


def test_create_and_stream_give_the_same_kind_of_answer(proxy_server):
    client = sdk(proxy_server)
    made = client.responses.create(
        model=proxy_server.model, input="Hello!", temperature=0, max_output_tokens=200
    )
    assert made.status == "completed", made
    assert made.output_text.strip() and "<|" not in made.output_text
    assert made.output[0].type == "reasoning"
    with client.responses.stream(
        model=proxy_server.model, input="Hello!", temperature=0, max_output_tokens=200
    ) as stream:
        events = list(stream)
        final = stream.get_final_response()
    assert events[0].type == "response.created" and events[-1].type == "response.completed"
    assert [e.sequence_number for e in events] == list(range(len(events)))
    assert final.output_text == made.output_text  # temperature 0: the same answer


def test_parse_returns_the_schema_typed_answer(proxy_server):
    # Bounded fields: the grammar forces the shape, and a tiny model cannot ramble in a free
    # string until max_output_tokens (the SDK cannot parse a cut answer).
    class Weather(BaseModel):
        city: Literal["Paris", "London"]
        sunny: bool

    parsed = sdk(proxy_server).responses.parse(
        model=proxy_server.model,
        input="Weather in Paris as JSON.",
        text_format=Weather,
        temperature=0,
        max_output_tokens=300,
    )
    assert isinstance(parsed.output_parsed, Weather)


def test_required_tool_loop_with_previous_response_id_survives_a_restart(
    make_server, vllm_backend, background_loop, tmp_path
):
    config = ProxyConfig(
        served_model_names=(vllm_backend.model_name,),
        conversation_date=TEST_DATE,
        response_store=str(tmp_path / "responses.sqlite3"),
    )
    backend = Recording(vllm_backend)
    first_server = make_server(config, backend)
    first = sdk(first_server).responses.create(
        model=first_server.model,
        input="What is the weather in Paris?",
        tools=[WEATHER],
        tool_choice="required",
        temperature=0,
        max_output_tokens=300,
    )
    call = next(item for item in first.output if item.type == "function_call")
    assert call.name == "get_weather" and isinstance(json.loads(call.arguments), dict)
    stop_server(background_loop, first_server)

    second_server = make_server(config, backend)  # a new server on the same store file
    second = sdk(second_server).responses.create(
        model=second_server.model,
        previous_response_id=first.id,
        input=[{"type": "function_call_output", "call_id": call.call_id, "output": "18 C, sunny"}],
        tools=[WEATHER],
        temperature=0,
        max_output_tokens=300,
    )
    assert second.status == "completed"
    prompt = backend.last_prompt()
    assert "What is the weather in Paris?" in prompt
    assert (
        "<|start|>functions.get_weather to=assistant<|channel|>commentary<|message|>18 C, sunny"
        in prompt
    )
    assert sdk(second_server).responses.retrieve(first.id).id == first.id


def test_stateless_tool_loop_replays_sealed_reasoning(make_server, vllm_backend):
    backend = Recording(vllm_backend)
    server = make_server(
        ProxyConfig(served_model_names=(vllm_backend.model_name,), conversation_date=TEST_DATE),
        backend,
    )
    client = sdk(server)
    history: list = [{"role": "user", "content": "What is the weather in Oslo?"}]
    first = client.responses.create(
        model=server.model,
        input=history,
        tools=[WEATHER],
        tool_choice="required",
        store=False,
        include=["reasoning.encrypted_content"],
        temperature=0,
        max_output_tokens=300,
    )
    reasoning = [item for item in first.output if item.type == "reasoning"]
    call = next(item for item in first.output if item.type == "function_call")
    assert reasoning and all(item.encrypted_content for item in reasoning)
    history += [item.model_dump(exclude_none=True) for item in first.output]
    for item in history[1:]:
        if item["type"] == "reasoning":
            item.pop("content", None)  # only the sealed copy goes back, as Codex sends it
    history.append({"type": "function_call_output", "call_id": call.call_id, "output": "-2 C"})
    second = client.responses.create(
        model=server.model,
        input=history,
        tools=[WEATHER],
        store=False,
        temperature=0,
        max_output_tokens=300,
    )
    assert second.status in ("completed", "incomplete")
    prompt = backend.last_prompt()
    analysis = reasoning[0].content[0].text
    assert f"<|channel|>analysis<|message|>{analysis}<|end|>" in prompt
