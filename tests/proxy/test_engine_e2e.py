"""End to end: the real openai SDK -> the real server (uvicorn) -> the real vLLM engine.

The engine runs the tiny demo model, which knows the Harmony format and the tools it was trained
on (get_weather, search, calculator) but little else, so these tests assert structure, not
wisdom: what the grammar guarantees (tool calls and JSON that match their schemas), that the
stream and the non-streaming response agree, and that nothing of the Harmony envelope leaks.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import httpx
import openai
import pytest
from pydantic import BaseModel, Field

from tests.proxy.helpers import sse_events

pytestmark = pytest.mark.engine

WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Get the current weather for a city.",
        "parameters": {
            "type": "object",
            "properties": {
                "location": {"type": "string", "description": "City name"},
                "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
            },
            "required": ["location"],
        },
    },
}
CALCULATOR = {
    "type": "function",
    "function": {
        "name": "calculator",
        "description": "Evaluate an arithmetic expression.",
        "parameters": {
            "type": "object",
            "properties": {"expression": {"type": "string", "description": "For example 2 * 21"}},
            "required": ["expression"],
        },
    },
}
MAX = 160


@pytest.fixture(scope="module")
def client(proxy_server) -> openai.OpenAI:
    return openai.OpenAI(
        base_url=proxy_server.base_url, api_key="unused", max_retries=0, timeout=300
    )


def ask(text: str) -> list[dict[str, Any]]:
    return [{"role": "user", "content": text}]


def no_markup(*texts: str | None) -> bool:
    return all("<|" not in (t or "") for t in texts)


def test_non_streaming_answer_has_openai_shape_and_usage(client, proxy_server):
    completion = client.chat.completions.create(
        model=proxy_server.model, messages=ask("Hello!"), max_completion_tokens=MAX, temperature=0
    )
    choice = completion.choices[0]
    assert completion.id.startswith("chatcmpl-")
    assert choice.finish_reason in ("stop", "length")
    message = choice.message
    reasoning = getattr(message, "reasoning", None)
    assert message.content or reasoning
    assert no_markup(message.content, reasoning)
    usage = completion.usage
    assert usage.completion_tokens > 0
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens
    if reasoning:
        assert 0 < usage.completion_tokens_details.reasoning_tokens <= usage.completion_tokens


def test_stream_and_non_stream_agree_under_greedy_decoding(client, proxy_server):
    params = dict(
        model=proxy_server.model,
        messages=ask("What is the capital of France?"),
        max_completion_tokens=MAX,
        temperature=0,
    )
    whole = client.chat.completions.create(**params).choices[0]
    content, reasoning, finish = "", "", None
    for chunk in client.chat.completions.create(**params, stream=True):
        delta = chunk.choices[0].delta
        content += delta.content or ""
        reasoning += getattr(delta, "reasoning", None) or ""
        finish = chunk.choices[0].finish_reason or finish
    assert content == (whole.message.content or "")
    assert reasoning == (getattr(whole.message, "reasoning", None) or "")
    assert finish == whole.finish_reason


def test_async_stream_with_usage(proxy_server):
    async def go() -> tuple[str, Any]:
        async with openai.AsyncOpenAI(
            base_url=proxy_server.base_url, api_key="x", max_retries=0
        ) as aclient:
            stream = await aclient.chat.completions.create(
                model=proxy_server.model,
                messages=ask("Hi there."),
                max_completion_tokens=MAX,
                stream=True,
                stream_options={"include_usage": True},
            )
            text, usage = "", None
            async for chunk in stream:
                if chunk.choices:
                    delta = chunk.choices[0].delta
                    text += (delta.content or "") + (getattr(delta, "reasoning", None) or "")
                else:
                    usage = chunk.usage
            return text, usage

    text, usage = asyncio.run(go())
    assert text and no_markup(text)
    assert usage is not None and usage.completion_tokens > 0


def test_full_tool_loop_call_then_result_then_answer(client, proxy_server):
    messages = ask("What's the weather in Paris?")
    first = client.chat.completions.create(
        model=proxy_server.model,
        messages=messages,
        tools=[WEATHER],
        tool_choice="required",
        max_completion_tokens=MAX,
    ).choices[0]
    assert first.finish_reason == "tool_calls"
    (call,) = first.message.tool_calls
    assert call.id.startswith("call_") and call.function.name == "get_weather"
    args = json.loads(call.function.arguments)
    assert isinstance(args["location"], str)
    messages += [
        first.message.model_dump(exclude_none=True),
        {
            "role": "tool",
            "tool_call_id": call.id,
            "content": json.dumps({"condition": "sunny", "temperature": 21}),
        },
    ]
    second = client.chat.completions.create(
        model=proxy_server.model,
        messages=messages,
        tools=[WEATHER],
        tool_choice="none",
        max_completion_tokens=MAX,
    ).choices[0]
    assert second.message.tool_calls is None
    assert second.finish_reason in ("stop", "length")
    if second.finish_reason == "stop":
        assert second.message.content
    assert no_markup(second.message.content)


def test_streamed_tool_call_fragments(client, proxy_server):
    fragments = []
    finish = None
    for chunk in client.chat.completions.create(
        model=proxy_server.model,
        messages=ask("Is it sunny in Tokyo?"),
        tools=[WEATHER],
        tool_choice="required",
        max_completion_tokens=MAX,
        temperature=0,  # (sampled, the demo model may ramble past MAX inside the argument)
        stream=True,
    ):
        fragments += chunk.choices[0].delta.tool_calls or []
        finish = chunk.choices[0].finish_reason or finish
    first, *rest = fragments
    assert (
        first.id.startswith("call_")
        and first.type == "function"
        and first.function.name == "get_weather"
    )
    assert all(f.id is None and f.function.name is None for f in rest)
    args = json.loads(
        (first.function.arguments or "") + "".join(f.function.arguments or "" for f in rest)
    )
    assert "location" in args
    assert finish == "tool_calls"


def test_named_tool_choice_calls_that_tool_and_finishes_with_stop(client, proxy_server):
    choice = client.chat.completions.create(
        model=proxy_server.model,
        messages=ask("What is the weather in Rome?"),
        tools=[WEATHER, CALCULATOR],
        tool_choice={"type": "function", "function": {"name": "calculator"}},
        max_completion_tokens=MAX,
    ).choices[0]
    assert [c.function.name for c in choice.message.tool_calls] == ["calculator"]
    assert isinstance(
        json.loads(choice.message.tool_calls[0].function.arguments)["expression"], str
    )
    assert choice.finish_reason == "stop"


def test_tool_choice_none_prevents_tool_calls_even_when_the_model_wants_one(client, proxy_server):
    choice = client.chat.completions.create(
        model=proxy_server.model,
        messages=ask("What's the weather in Berlin?"),
        tools=[WEATHER],
        tool_choice="none",
        max_completion_tokens=MAX,
    ).choices[0]
    assert choice.message.tool_calls is None
    assert choice.finish_reason in ("stop", "length")


class Capital(BaseModel):
    # Bounded strings (a pattern, which the grammar enforces) so the tiny model must close them.
    country: str = Field(pattern=r"^[A-Za-z ]{1,24}$")
    capital: str = Field(pattern=r"^[A-Za-z ]{1,24}$")


def test_response_format_with_a_pydantic_model_via_the_sdk_parse_helper(client, proxy_server):
    completion = client.chat.completions.parse(
        model=proxy_server.model,
        messages=ask("What is the capital of Spain?"),
        response_format=Capital,
        max_completion_tokens=400,
        temperature=0,
    )
    parsed = completion.choices[0].message.parsed
    assert isinstance(parsed, Capital)


def test_response_format_json_object_constrains_the_answer_to_json(client, proxy_server):
    choice = client.chat.completions.create(
        model=proxy_server.model,
        messages=ask("What is the capital of Spain?"),
        response_format={"type": "json_object"},
        max_completion_tokens=400,
        temperature=0,
    ).choices[0]
    content = choice.message.content or ""
    assert content.lstrip().startswith("{") and no_markup(content)
    if choice.finish_reason == "stop":  # complete: the grammar guarantees a whole object
        assert isinstance(json.loads(content), dict)


def test_n_choices(client, proxy_server):
    completion = client.chat.completions.create(
        model=proxy_server.model, messages=ask("Hello!"), n=2, max_completion_tokens=48
    )
    assert [c.index for c in completion.choices] == [0, 1]
    assert all(c.finish_reason in ("stop", "length") for c in completion.choices)


def test_small_budget_finishes_with_length(client, proxy_server):
    choice = client.chat.completions.create(
        model=proxy_server.model, messages=ask("Hello!"), max_tokens=3
    ).choices[0]
    assert choice.finish_reason == "length"
    assert (
        client.chat.completions.create(
            model=proxy_server.model, messages=ask("Hello!"), max_tokens=3
        ).usage.completion_tokens
        == 3
    )


def test_seed_makes_sampling_reproducible(client, proxy_server):
    params = dict(
        model=proxy_server.model,
        messages=ask("Tell me the weather for Oslo."),
        max_completion_tokens=48,
        temperature=1.0,
        seed=1234,
    )
    a = client.chat.completions.create(**params).choices[0].message
    b = client.chat.completions.create(**params).choices[0].message
    assert (a.content, getattr(a, "reasoning", None)) == (b.content, getattr(b, "reasoning", None))


def test_raw_sse_framing_from_the_real_engine(proxy_server):
    payload = {
        "model": proxy_server.model,
        "messages": ask("Hi!"),
        "max_completion_tokens": 48,
        "stream": True,
    }
    response = httpx.post(f"{proxy_server.url}/v1/chat/completions", json=payload, timeout=300)
    assert response.status_code == 200
    events = sse_events(response.text)
    assert events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert chunks[-1]["choices"][0]["finish_reason"] in ("stop", "length")


def test_client_disconnect_aborts_the_request_in_the_engine(proxy_server):
    backend = proxy_server.backend
    # A schema demanding 300+ numbers keeps the engine busy, whatever the model would say.
    schema = {
        "type": "object",
        "properties": {"n": {"type": "array", "items": {"type": "integer"}, "minItems": 300}},
        "required": ["n"],
    }
    payload = {
        "model": proxy_server.model,
        "messages": ask("Hello!"),
        "max_completion_tokens": 1000,
        "stream": True,
        "response_format": {
            "type": "json_schema",
            "json_schema": {"name": "long", "schema": schema},
        },
    }
    with httpx.Client(timeout=300) as http:
        with http.stream(
            "POST", f"{proxy_server.url}/v1/chat/completions", json=payload
        ) as response:
            lines = response.iter_lines()
            for _ in range(4):
                next(lines)
            assert backend.num_unfinished_requests() == 1
    deadline = time.monotonic() + 30
    while backend.num_unfinished_requests() != 0:
        assert time.monotonic() < deadline, "the engine kept generating after the client left"
        time.sleep(0.05)


def test_concurrent_streams_do_not_mix(client, proxy_server):
    """Requests batched together in the engine each get their own parser and their own text."""
    questions = ["What is the capital of France?", "What's the weather in Paris?", "Hello!"]
    params = dict(model=proxy_server.model, max_completion_tokens=64, temperature=0)
    alone = [
        client.chat.completions.create(messages=ask(q), **params).choices[0].message
        for q in questions
    ]

    async def one(aclient: openai.AsyncOpenAI, question: str) -> tuple[str, str]:
        content, reasoning = "", ""
        async for chunk in await aclient.chat.completions.create(
            messages=ask(question), stream=True, **params
        ):
            delta = chunk.choices[0].delta
            content += delta.content or ""
            reasoning += getattr(delta, "reasoning", None) or ""
        return content, reasoning

    async def together() -> list[tuple[str, str]]:
        async with openai.AsyncOpenAI(
            base_url=proxy_server.base_url, api_key="x", max_retries=0
        ) as aclient:
            return await asyncio.gather(*(one(aclient, q) for q in questions))

    for (content, reasoning), message in zip(asyncio.run(together()), alone, strict=True):
        assert content == (message.content or "")
        assert reasoning == (getattr(message, "reasoning", None) or "")


def test_logprobs_from_the_real_engine_describe_the_answer_tokens(client, proxy_server):
    choice = client.chat.completions.create(
        model=proxy_server.model,
        messages=ask("Hello!"),
        max_completion_tokens=MAX,
        temperature=0,
        logprobs=True,
        top_logprobs=3,
    ).choices[0]
    entries = choice.logprobs.content
    assert entries, "the demo model answers a greeting"
    assert "".join(e.token for e in entries) == choice.message.content
    for entry in entries:
        assert len(entry.top_logprobs) == 3
        assert entry.logprob <= 0
        # Greedy decoding picks the most likely token.
        assert entry.logprob == pytest.approx(entry.top_logprobs[0].logprob)
