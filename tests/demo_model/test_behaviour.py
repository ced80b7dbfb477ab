"""What the demo model was taught, checked on the real engine with greedy decoding."""

from __future__ import annotations

import asyncio
import itertools
import json

import pytest

from harmony import (
    Author,
    Conversation,
    DeveloperContent,
    HarmonyEncodingName,
    Message,
    ReasoningEffort,
    Role,
    SystemContent,
    ToolDescription,
    load_harmony_encoding,
)
from proxy.backends.base import SamplingConfig
from proxy.demo_model.data import PREAMBLE_INSTRUCTION, TOOLS

ENC = load_harmony_encoding(HarmonyEncodingName.HARMONY_GPT_OSS)
ALL_TOOLS = ("get_weather", "search", "calculator")
_ids = itertools.count()


def conversation(
    *later: Message,
    effort: ReasoningEffort = ReasoningEffort.MEDIUM,
    tools: tuple[str, ...] = (),
    instructions: str | None = None,
) -> list[int]:
    system = SystemContent.new().with_reasoning_effort(effort)
    messages = [Message.from_role_and_content(Role.SYSTEM, system)]
    if tools or instructions:
        developer = DeveloperContent.new()
        if instructions:
            developer = developer.with_instructions(instructions)
        if tools:
            developer = developer.with_function_tools(
                [
                    ToolDescription.new(
                        n, TOOLS[n]["description"], parameters=TOOLS[n]["parameters"]
                    )
                    for n in tools
                ]
            )
        messages.append(Message.from_role_and_content(Role.DEVELOPER, developer))
    messages.extend(later)
    return list(
        ENC.render_conversation_for_completion(Conversation.from_messages(messages), Role.ASSISTANT)
    )


def user(text: str) -> Message:
    return Message.from_role_and_content(Role.USER, text)


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
        for effort in (ReasoningEffort.LOW, ReasoningEffort.MEDIUM, ReasoningEffort.HIGH)
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
    call = (
        Message.from_role_and_content(Role.ASSISTANT, '{"location":"Oslo"}')
        .with_channel("commentary")
        .with_recipient("functions.get_weather")
        .with_content_type("<|constrain|>json")
    )
    result = (
        Message.from_author_and_content(
            Author.new(Role.TOOL, "functions.get_weather"),
            '{"location":"Oslo","temperature":12,"unit":"celsius","condition":"rainy"}',
        )
        .with_channel("commentary")
        .with_recipient("assistant")
    )
    prompt = conversation(user("What's the weather in Oslo?"), call, result, tools=("get_weather",))
    (messages,) = complete(background_loop, vllm_backend, [prompt])
    assert [m.channel for m in messages] == ["analysis", "final"]
    assert all(word in text(messages[-1]) for word in ("12", "rainy", "Oslo"))
