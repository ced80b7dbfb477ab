"""The openai SDK's own tool loop, and the guarantee that no undeclared call ever comes out."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import openai
import pytest

from proxy.server.settings import ProxyConfig
from tests.support.server_fixtures import TEST_DATE
from training.data import TOOLS

pytestmark = pytest.mark.engine

STOCK = {
    "type": "function",
    "function": {
        "name": "lookup_stock_price",
        "description": "Look up the latest price of a stock by its ticker symbol.",
        "parameters": {
            "type": "object",
            "properties": {"symbol": {"type": "string", "description": "Ticker, e.g. AAPL"}},
            "required": ["symbol"],
        },
    },
}
# The tool the demo model was trained on, with its training texts, beside one it never saw.
WEATHER = {"type": "function", "function": {"name": "get_weather", **TOOLS["get_weather"]}}
# Names and shapes the demo model never saw in training, MCP-style punctuation included.
UNFAMILIAR = [
    {
        "type": "function",
        "function": {
            "name": "crm.contacts/find-by-email",
            "description": "Find a customer record.",
            "parameters": {
                "type": "object",
                "properties": {"email": {"type": "string"}},
                "required": ["email"],
            },
        },
    },
    {
        "type": "function",
        "function": {
            "name": "setThermostat",
            "description": "Set the target temperature of the house.",
            "parameters": {
                "type": "object",
                "properties": {"celsius": {"type": "number"}},
                "required": ["celsius"],
            },
        },
    },
]
PROMPTS = [
    "What's the weather in Paris?",
    "Please calculate 12 * 7.",
    "Search the web for jazz music.",
    "Hello!",
    "Can you run some Python to sort [3, 1, 2]?",
    "Find the customer with the email ann@example.com.",
]


def client_for(server) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.base_url, api_key="unused", max_retries=0, timeout=300)


def test_required_call_then_tool_result_then_an_answer(proxy_server):
    client = client_for(proxy_server)
    tools = [WEATHER, STOCK]
    messages: list[Any] = [{"role": "user", "content": "What's the weather in Paris?"}]
    first = client.chat.completions.create(
        model=proxy_server.model,
        messages=messages,
        tools=tools,
        tool_choice="required",
        temperature=0,
        max_tokens=300,
    )
    choice = first.choices[0]
    assert choice.finish_reason == "tool_calls"
    (call,) = choice.message.tool_calls
    assert call.function.name == "get_weather"
    assert isinstance(json.loads(call.function.arguments), dict)

    messages += [
        choice.message.model_dump(exclude_none=True),
        {"role": "tool", "tool_call_id": call.id, "content": '{"temperature": 18, "sky": "sunny"}'},
    ]
    second = client.chat.completions.create(
        model=proxy_server.model, messages=messages, tools=tools, temperature=0, max_tokens=300
    )
    answer = second.choices[0]
    assert answer.finish_reason == "stop" and not answer.message.tool_calls
    assert answer.message.content and "<|" not in answer.message.content


def sampled(server, tools: list[dict[str, Any]], stream: bool) -> list[tuple[str, dict]]:
    """(finish_reason, tool call) pairs over many sampled completions of every prompt."""
    client = client_for(server)

    def one(prompt: str) -> list[tuple[str, dict]]:
        kwargs: dict[str, Any] = {
            "model": server.model,
            "messages": [{"role": "user", "content": prompt}],
            "tools": tools,
            "temperature": 1.0,
            "n": 8,
            "max_tokens": 200,
            "seed": 7,
        }
        if not stream:
            result = client.chat.completions.create(**kwargs)
            return [
                (c.finish_reason, {"name": t.function.name, "arguments": t.function.arguments})
                for c in result.choices
                for t in c.message.tool_calls or []
            ] + [(c.finish_reason, {}) for c in result.choices]
        calls: dict[tuple[int, int], dict] = {}
        finish: dict[int, str] = {}
        for chunk in client.chat.completions.create(**kwargs, stream=True):
            for c in chunk.choices:
                for t in c.delta.tool_calls or []:
                    entry = calls.setdefault((c.index, t.index), {"name": "", "arguments": ""})
                    entry["name"] += t.function.name or ""
                    entry["arguments"] += t.function.arguments or ""
                if c.finish_reason:
                    finish[c.index] = c.finish_reason
        return [(finish[i], call) for (i, _), call in calls.items()] + [
            (f, {}) for f in finish.values()
        ]

    with ThreadPoolExecutor(4) as pool:
        return [pair for pairs in pool.map(one, PROMPTS) for pair in pairs]


@pytest.mark.parametrize("stream", [False, True])
def test_no_undeclared_call_comes_out_of_many_sampled_completions(proxy_server, stream):
    results = sampled(proxy_server, UNFAMILIAR, stream)
    declared = {t["function"]["name"] for t in UNFAMILIAR}
    calls = [(finish, call) for finish, call in results if call]
    assert len(results) - len(calls) == len(PROMPTS) * 8
    for finish, call in calls:
        assert call["name"] in declared, call
        if finish != "length":
            assert isinstance(json.loads(call["arguments"]), dict), call


def test_without_the_grammar_calls_are_still_only_declared_ones_with_object_arguments(
    make_server, vllm_backend
):
    config = ProxyConfig(
        served_model_names=(vllm_backend.model_name,),
        conversation_date=TEST_DATE,
        enforce_auto_tool_calls=False,
    )
    server = make_server(config, vllm_backend)
    results = sampled(server, UNFAMILIAR, stream=False)
    declared = {t["function"]["name"] for t in UNFAMILIAR}
    for _, call in results:
        if call:
            assert call["name"] in declared
            assert isinstance(json.loads(call["arguments"]), dict)
