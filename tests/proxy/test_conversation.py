"""Request -> Harmony conversation -> prompt tokens (serving-anchors §1.2)."""

from __future__ import annotations

from typing import Any

import openai_harmony as oh
import pytest

from proxy.api.chat_schema import ChatCompletionRequest
from proxy.core.conversation import load_encoding
from proxy.core.errors import InvalidRequest
from proxy.server.settings import ProxyConfig
from tests.proxy.helpers import WEATHER_TOOL, prompt_for

CONFIG = ProxyConfig(conversation_date="2026-01-15")


def render(messages: list[dict[str, Any]], **extra: Any) -> str:
    request = ChatCompletionRequest.model_validate({"model": "m", "messages": messages, **extra})
    return load_encoding().decode(prompt_for(request, CONFIG))


def test_system_message_has_identity_cutoff_pinned_date_and_effort():
    prompt = render([{"role": "user", "content": "Hi"}], reasoning_effort="high")
    assert prompt.startswith(
        "<|start|>system<|message|>You are ChatGPT, a large language model trained by OpenAI.\n"
        "Knowledge cutoff: 2024-06\nCurrent date: 2026-01-15\n\nReasoning: high\n\n"
    )
    assert prompt.endswith("<|start|>user<|message|>Hi<|end|><|start|>assistant")


@pytest.mark.parametrize(
    ("given", "rendered"),
    [
        (None, "medium"),
        ("none", "low"),
        ("minimal", "low"),
        ("low", "low"),
        ("xhigh", "high"),
        ("max", "high"),
    ],
)
def test_reasoning_effort_is_mapped_onto_gpt_oss_levels(given, rendered):
    prompt = render([{"role": "user", "content": "Hi"}], reasoning_effort=given)
    assert f"Reasoning: {rendered}\n" in prompt


@pytest.mark.parametrize("effort", ["extreme", "", "NONE!"])
def test_other_reasoning_efforts_are_a_400(effort):
    with pytest.raises(InvalidRequest) as info:
        render([{"role": "user", "content": "Hi"}], reasoning_effort=effort)
    assert info.value.param == "reasoning_effort"


def test_first_system_message_becomes_developer_instructions_and_later_ones_stay_in_place():
    prompt = render(
        [
            {"role": "system", "content": "Be terse."},
            {"role": "user", "content": "Hi"},
            {"role": "developer", "content": "Now answer in French."},
            {"role": "user", "content": "Bye"},
        ]
    )
    assert "<|start|>developer<|message|># Instructions\n\nBe terse.<|end|>" in prompt
    assert (
        "<|start|>user<|message|>Hi<|end|>"
        "<|start|>developer<|message|># Instructions\n\nNow answer in French.<|end|>"
        "<|start|>user<|message|>Bye<|end|>"
    ) in prompt
    assert prompt.count("<|start|>system") == 1


def test_no_developer_message_without_instructions_or_tools():
    assert "<|start|>developer" not in render([{"role": "user", "content": "Hi"}])


def test_tools_are_rendered_as_function_namespace_with_identifier_names():
    tool = {
        "type": "function",
        "function": {"name": "web-search.v2", "parameters": {"type": "object"}},
    }
    prompt = render([{"role": "user", "content": "Hi"}], tools=[WEATHER_TOOL, tool])
    assert "namespace functions {" in prompt
    assert "type get_weather = (_: {\ncity: string,\n}) => any;" in prompt
    assert "type web_search_v2 = " in prompt
    assert "Calls to these tools must go to the commentary channel: 'functions'." in prompt


def test_content_may_be_a_list_of_text_parts():
    prompt = render(
        [
            {
                "role": "user",
                "content": [{"type": "text", "text": "Hel"}, {"type": "text", "text": "lo"}],
            }
        ]
    )
    assert "<|start|>user<|message|>Hello<|end|>" in prompt


def test_non_text_content_parts_are_a_400_naming_the_part():
    with pytest.raises(InvalidRequest) as info:
        render(
            [
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": "What is this?"},
                        {"type": "image_url", "image_url": {"url": "http://x/y.png"}},
                    ],
                }
            ]
        )
    assert info.value.param == "messages[0].content[1].type"


def test_reasoning_before_the_last_final_answer_is_dropped():
    prompt = render(
        [
            {"role": "user", "content": "Hi"},
            {"role": "assistant", "content": "Hello!", "reasoning": "They greet me."},
            {"role": "user", "content": "Bye"},
        ]
    )
    assert "They greet me." not in prompt
    assert "<|start|>assistant<|channel|>final<|message|>Hello!<|end|>" in prompt


def test_reasoning_inside_an_unfinished_tool_loop_is_kept_under_either_field_name():
    for field in ("reasoning", "reasoning_content"):
        prompt = render(
            [
                {"role": "user", "content": "Weather in Paris?"},
                {
                    "role": "assistant",
                    field: "Need the weather tool.",
                    "tool_calls": [
                        {
                            "id": "call_1",
                            "type": "function",
                            "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'},
                        }
                    ],
                },
                {"role": "tool", "tool_call_id": "call_1", "content": '{"temp": 21}'},
            ],
            tools=[WEATHER_TOOL],
        )
        assert (
            "<|start|>assistant<|channel|>analysis<|message|>Need the weather tool.<|end|>"
            '<|start|>assistant to=functions.get_weather<|channel|>commentary <|constrain|>json<|message|>{"city":"Paris"}<|call|>'
            '<|start|>functions.get_weather to=assistant<|channel|>commentary<|message|>{"temp": 21}<|end|>'
            "<|start|>assistant"
        ) in prompt, field


def test_tool_results_are_named_through_tool_call_id_not_message_order():
    prompt = render(
        [
            {"role": "user", "content": "Both please"},
            {
                "role": "assistant",
                "tool_calls": [
                    {
                        "id": "a",
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": "{}"},
                    },
                    {
                        "id": "b",
                        "type": "function",
                        "function": {"name": "get-time", "arguments": "{}"},
                    },
                ],
            },
            {"role": "tool", "tool_call_id": "b", "content": "noon"},
            {"role": "tool", "tool_call_id": "a", "content": "sunny"},
        ]
    )
    assert (
        "<|start|>functions.get_time to=assistant<|channel|>commentary<|message|>noon<|end|>"
        in prompt
    )
    assert (
        "<|start|>functions.get_weather to=assistant<|channel|>commentary<|message|>sunny<|end|>"
        in prompt
    )


def test_tool_result_with_unknown_id_falls_back_to_the_latest_call():
    prompt = render(
        [
            {"role": "user", "content": "Weather?"},
            {
                "role": "assistant",
                "tool_calls": [
                    {
                        "id": "a",
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": "{}"},
                    }
                ],
            },
            {"role": "tool", "tool_call_id": "zzz", "content": "sunny"},
        ]
    )
    assert "<|start|>functions.get_weather to=assistant" in prompt


def test_tool_result_without_any_earlier_call_is_a_400():
    with pytest.raises(InvalidRequest) as info:
        render(
            [
                {"role": "user", "content": "Hi"},
                {"role": "tool", "tool_call_id": "x", "content": "?"},
            ]
        )
    assert info.value.param == "messages[1].tool_call_id"


def test_assistant_content_next_to_tool_calls_is_a_commentary_preamble():
    prompt = render(
        [
            {"role": "user", "content": "Weather?"},
            {
                "role": "assistant",
                "content": "Let me check.",
                "tool_calls": [
                    {
                        "id": "a",
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": "{}"},
                    }
                ],
            },
            {"role": "tool", "tool_call_id": "a", "content": "sunny"},
        ]
    )
    assert "<|start|>assistant<|channel|>commentary<|message|>Let me check.<|end|>" in prompt


def test_rendering_matches_the_reference_library_token_for_token():
    """The same conversation built with openai-harmony 0.0.8 renders to the same ids."""
    ours = ChatCompletionRequest.model_validate(
        {
            "model": "m",
            "reasoning_effort": "low",
            "tools": [WEATHER_TOOL],
            "messages": [
                {"role": "system", "content": "Be terse."},
                {"role": "user", "content": "Hi"},
                {"role": "assistant", "content": "Hello!", "reasoning": "greeting"},
                {"role": "user", "content": "Weather in SF?"},
                {
                    "role": "assistant",
                    "reasoning": "Need tool.",
                    "tool_calls": [
                        {
                            "id": "c",
                            "type": "function",
                            "function": {"name": "get_weather", "arguments": '{"city":"SF"}'},
                        }
                    ],
                },
                {"role": "tool", "tool_call_id": "c", "content": '{"temp":20}'},
            ],
        }
    )
    tokens = prompt_for(ours, CONFIG)

    enc = oh.load_harmony_encoding(oh.HarmonyEncodingName.HARMONY_GPT_OSS)
    system = (
        oh.SystemContent.new()
        .with_conversation_start_date("2026-01-15")
        .with_reasoning_effort(oh.ReasoningEffort.LOW)
    )
    fn = WEATHER_TOOL["function"]
    developer = (
        oh.DeveloperContent.new()
        .with_instructions("Be terse.")
        .with_function_tools(
            [oh.ToolDescription.new(fn["name"], fn["description"], parameters=fn["parameters"])]
        )
    )
    A = oh.Role.ASSISTANT
    reference = oh.Conversation.from_messages(
        [
            oh.Message.from_role_and_content(oh.Role.SYSTEM, system),
            oh.Message.from_role_and_content(oh.Role.DEVELOPER, developer),
            oh.Message.from_role_and_content(oh.Role.USER, "Hi"),
            oh.Message.from_role_and_content(A, "Hello!").with_channel("final"),
            oh.Message.from_role_and_content(oh.Role.USER, "Weather in SF?"),
            oh.Message.from_role_and_content(A, "Need tool.").with_channel("analysis"),
            oh.Message.from_role_and_content(A, '{"city":"SF"}')
            .with_channel("commentary")
            .with_recipient("functions.get_weather")
            .with_content_type("<|constrain|>json"),
            oh.Message.from_author_and_content(
                oh.Author.new(oh.Role.TOOL, "functions.get_weather"), '{"temp":20}'
            )
            .with_channel("commentary")
            .with_recipient("assistant"),
        ]
    )
    expected = enc.render_conversation_for_completion(
        reference, A, oh.RenderConversationConfig(auto_drop_analysis=False)
    )
    assert tokens == list(expected)


def test_openrouter_style_reasoning_effort_object_is_understood():
    prompt = render([{"role": "user", "content": "Hi"}], reasoning={"effort": "low"})
    assert "Reasoning: low\n" in prompt
