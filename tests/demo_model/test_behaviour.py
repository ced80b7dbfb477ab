"""What the demo model was taught, checked on the real engine with greedy decoding."""

from __future__ import annotations

import asyncio
import itertools
import json

import pytest

from harmony import HarmonyEncodingName, Role, load_harmony_encoding
from proxy.backends.base import SamplingConfig
from training.data import TOOLS
from training.phrases import PREAMBLE_INSTRUCTION
from training.scenarios import render_request, tool_result_turn

ENC = load_harmony_encoding(HarmonyEncodingName.HARMONY_GPT_OSS)
ALL_TOOLS = ("get_weather", "search", "calculator")
_ids = itertools.count()


def conversation(
    *messages: dict,
    effort: str = "medium",
    tools: tuple[str, ...] = (),
    instructions: str | None = None,
) -> list[int]:
    """Prompt tokens for a chat request, rendered by the proxy exactly as it serves them."""
    request: dict = {"messages": list(messages), "reasoning_effort": effort}
    if instructions:
        request["messages"].insert(0, {"role": "system", "content": instructions})
    if tools:
        request["tools"] = [
            {"type": "function", "function": {"name": n, **TOOLS[n]}} for n in tools
        ]
    return render_request(request)[0]


def user(text: str) -> dict:
    return {"role": "user", "content": text}


def complete(background_loop, backend, prompts: list[list[int]]) -> list[list]:
    """Greedy completions, parsed into messages (all prompts batched in the engine)."""

    async def one(prompt: list[int]) -> list:
        tokens: list[int] = []
        sampling = SamplingConfig(max_tokens=200, temperature=0.0)
        async for chunk in backend.generate(prompt, sampling, f"behaviour-{next(_ids)}"):
            tokens.extend(chunk.token_ids)
        return ENC.parse_messages_from_completion_tokens(tokens, Role.ASSISTANT)

    async def run() -> list[list]:
        return list(await asyncio.gather(*(one(p) for p in prompts)))

    return background_loop.run(run(), timeout=300)


def text(message) -> str:
    return "".join(part.text for part in message.content)


@pytest.mark.engine
def test_higher_reasoning_effort_gives_longer_analysis(background_loop, vllm_backend):
    questions = [
        "Hello!",
        "What is the capital of Spain?",
        "How many days are in a week?",
        "What is 12 + 30?",
    ]
    lengths = {
        effort: [
            len(text(messages[0]))
            for messages in complete(
                background_loop,
                vllm_backend,
                [conversation(user(q), effort=effort) for q in questions],
            )
        ]
        for effort in ("low", "medium", "high")
    }
    for low, medium, high in zip(*lengths.values(), strict=True):
        assert low < medium < high


@pytest.mark.engine
def test_weather_calls_carry_the_users_city_and_unit_as_json_arguments(
    background_loop, vllm_backend
):
    asks = {
        "What's the weather in Paris?": ("get_weather", {"location": "Paris"}),
        "Is it raining in Tokyo? Please answer in fahrenheit.": (
            "get_weather",
            {"location": "Tokyo", "unit": "fahrenheit"},
        ),
        "Can you tell me the weather for London? Use celsius.": (
            "get_weather",
            {"location": "London", "unit": "celsius"},
        ),
    }
    results = complete(
        background_loop, vllm_backend, [conversation(user(q), tools=ALL_TOOLS) for q in asks]
    )
    for (name, arguments), messages in zip(asks.values(), results, strict=True):
        call = messages[-1]
        assert call.recipient == f"functions.{name}"
        assert json.loads(text(call)) == arguments


@pytest.mark.engine
def test_a_preamble_on_commentary_comes_only_when_the_developer_asks(background_loop, vllm_backend):
    questions = [
        "What's the weather in Tokyo?",
        "Search the web for jazz music.",
        "What is 40 - 2?",
    ]
    for instructions, preambles in ((None, 0), (PREAMBLE_INSTRUCTION, 1)):
        prompts = [
            conversation(user(q), tools=ALL_TOOLS, instructions=instructions) for q in questions
        ]
        for messages in complete(background_loop, vllm_backend, prompts):
            shapes = [(m.channel, m.recipient is not None) for m in messages]
            assert shapes == [("analysis", False)] + [("commentary", False)] * preambles + [
                ("commentary", True)
            ]


@pytest.mark.engine
def test_the_answer_uses_the_tool_result(background_loop, vllm_backend):
    request = {
        "messages": [user("What's the weather in Oslo?")],
        "tools": [
            {"type": "function", "function": {"name": "get_weather", **TOOLS["get_weather"]}}
        ],
    }
    result = '{"location":"Oslo","temperature":12,"unit":"celsius","condition":"rainy"}'
    prompt = render_request(tool_result_turn(request, "get_weather", {"location": "Oslo"}, result))[
        0
    ]
    (messages,) = complete(background_loop, vllm_backend, [prompt])
    assert [m.channel for m in messages] == ["analysis", "final"]
    assert all(word in text(messages[-1]) for word in ("12", "rainy", "Oslo"))
