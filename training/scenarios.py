"""Client-shaped tool requests the demo model never saw, used as a held-out smoke check.

These mirror what real clients send through the proxy: the OpenAI Agents SDK (agent
instructions as a system message, a tool derived from a Python function with a Pydantic
schema), LangChain's `@tool` (the docstring as description, a bare schema), an openai-SDK tool
loop with a distractor tool, and a set of several tools where one fits or none does. Their
names, descriptions and user texts are deliberately absent from the training data
(tests/demo_model/test_data.py checks it), so the model can only succeed by reading the request.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from proxy.api.chat_request import chat_prompt
from proxy.api.chat_schema import ChatCompletionRequest
from proxy.server.settings import ProxyConfig


def function_tool(name: str, description: str, parameters: dict[str, Any]) -> dict[str, Any]:
    """An OpenAI `tools[]` entry."""
    return {
        "type": "function",
        "function": {"name": name, "description": description, "parameters": parameters},
    }


def render_request(
    request: dict[str, Any], config: ProxyConfig | None = None
) -> tuple[list[int], dict[str, Any]]:
    """Prompt tokens exactly as the proxy renders `request`, and the declared tools' schemas."""
    parsed = ChatCompletionRequest.model_validate({"model": "gpt-oss-demo", **request})
    prompt, names = chat_prompt(parsed, (config or ProxyConfig()).service_settings().system)
    schemas = {
        names.to_model(t.function.name): t.function.parameters or {}
        for t in parsed.tools or []
        if t.function is not None
    }
    return prompt, schemas


def tool_result_turn(
    request: dict[str, Any], name: str, arguments: dict[str, Any], result: str
) -> dict[str, Any]:
    """`request` continued the way an SDK continues a tool loop: the call, then its result."""
    call_id = "call_scenario_1"
    messages = [
        *request["messages"],
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": call_id,
                    "type": "function",
                    "function": {"name": name, "arguments": json.dumps(arguments)},
                }
            ],
        },
        {"role": "tool", "tool_call_id": call_id, "content": result},
    ]
    return {**request, "messages": messages}


AGENTS_TEMPERATURE = function_tool(
    "get_current_temperature",
    "Return the current temperature in a city.",
    {
        "properties": {"city": {"title": "City", "type": "string"}},
        "required": ["city"],
        "title": "get_current_temperature_args",
        "type": "object",
        "additionalProperties": False,
    },
)
LANGCHAIN_WEATHER = function_tool(
    "get_weather",
    "Get weather.",
    {"properties": {"location": {"type": "string"}}, "required": ["location"], "type": "object"},
)
STOCK = function_tool(
    "lookup_stock_price",
    "Look up a stock price.",
    {
        "type": "object",
        "properties": {"symbol": {"type": "string", "description": "Ticker, e.g. MSFT"}},
        "required": ["symbol"],
    },
)
DISTRACTOR_EMAIL = function_tool(
    "email_contact",
    "Send an email to one of the user's contacts.",
    {
        "type": "object",
        "properties": {"to": {"type": "string"}, "body": {"type": "string"}},
        "required": ["to", "body"],
    },
)
SEVERAL = [
    function_tool(
        "company_news",
        "Latest news headlines about a company or topic.",
        {"type": "object", "properties": {"topic": {"type": "string"}}, "required": ["topic"]},
    ),
    function_tool(
        "translate_phrase",
        "Translate a phrase into another language.",
        {
            "type": "object",
            "properties": {
                "phrase": {"type": "string"},
                "target_language": {"type": "string"},
            },
            "required": ["phrase", "target_language"],
        },
    ),
    DISTRACTOR_EMAIL,
    function_tool(
        "unit-converter.v1",
        "Convert a quantity between units of measurement.",
        {
            "type": "object",
            "properties": {"value": {"type": "number"}, "from_unit": {"type": "string"}},
            "required": ["value", "from_unit"],
        },
    ),
]


@dataclass(frozen=True)
class Scenario:
    """One request and what a good model does with it: `call:<model-side name>` or `final`."""

    label: str
    request: dict[str, Any]
    expected: str
    # For calls: the argument values that must appear; for answers: words that must appear.
    must_contain: tuple[str, ...] = ()


_AGENTS = {
    "messages": [
        {"role": "system", "content": "You are a helpful assistant. Use the tools when they help."},
        {"role": "user", "content": "What is the temperature in Paris right now?"},
    ],
    "tools": [AGENTS_TEMPERATURE],
}
_STOCK = {
    "messages": [{"role": "user", "content": "How much does one share of NVDA cost today?"}],
    "tools": [DISTRACTOR_EMAIL, STOCK],
    "tool_choice": "required",
}

SCENARIOS: tuple[Scenario, ...] = (
    Scenario("agents-sdk call", _AGENTS, "call:get_current_temperature", ("Paris",)),
    Scenario(
        "agents-sdk answer",
        tool_result_turn(
            _AGENTS, "get_current_temperature", {"city": "Paris"}, "18 degrees Celsius and sunny"
        ),
        "final",
        ("18",),
    ),
    Scenario(
        "langchain call",
        {
            "messages": [{"role": "user", "content": "What's the weather like in Tokyo?"}],
            "tools": [LANGCHAIN_WEATHER],
        },
        "call:get_weather",
        ("Tokyo",),
    ),
    Scenario(
        "langchain call, system prompt",
        {
            "messages": [
                {"role": "system", "content": "You are a helpful assistant."},
                {"role": "user", "content": "What's the weather like in Tokyo?"},
            ],
            "tools": [LANGCHAIN_WEATHER],
        },
        "call:get_weather",
        ("Tokyo",),
    ),
    Scenario("openai-sdk stock call", _STOCK, "call:lookup_stock_price", ("NVDA",)),
    Scenario(
        "openai-sdk stock answer",
        tool_result_turn(_STOCK, "lookup_stock_price", {"symbol": "NVDA"}, "131.26 USD"),
        "final",
        ("131.26",),
    ),
    Scenario(
        "several tools: translate",
        {
            "messages": [
                {"role": "user", "content": "How would I write 'thank you' in German?"},
            ],
            "tools": SEVERAL,
        },
        "call:translate_phrase",
        ("German",),
    ),
    Scenario(
        "several tools: news",
        {
            "messages": [
                {"role": "system", "content": "You are a helpful assistant."},
                {"role": "user", "content": "Anything new about electric cars in the news?"},
            ],
            "tools": SEVERAL,
        },
        "call:company_news",
    ),
    Scenario(
        "several tools: greeting",
        {"messages": [{"role": "user", "content": "Hello!"}], "tools": SEVERAL},
        "final",
    ),
    Scenario(
        "several tools: arithmetic",
        {"messages": [{"role": "user", "content": "What is 2 + 3?"}], "tools": SEVERAL},
        "final",
        ("5",),
    ),
)
