"""The OpenAI Agents SDK, unchanged, keeping a conversation in this server's Conversations API
over three turns, on the real server and the real vLLM engine with the demo model.

Two ways the SDK does it: `OpenAIConversationsSession` (the SDK lists the conversation's items
before each turn, sends them as the turn's input, and adds the turn's items after it), and
`conversation_id` (the server renders the conversation and appends each turn itself). Each turn's
prompt is checked through the server's own records (the stored response's input items, the
conversation's items, the prompt's token count), never through what the tiny model answers.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

pytestmark = pytest.mark.engine

agents = pytest.importorskip("agents")

QUESTIONS = ["My name is Ada.", "I live in Paris.", "What is my name?"]


def _agent(server: Any, client: Any) -> Any:
    return agents.Agent(
        name="assistant",
        instructions="You are a helpful assistant. Answer briefly.",
        model=agents.OpenAIResponsesModel(model=server.model, openai_client=client),
        model_settings=agents.ModelSettings(temperature=0, max_tokens=48),
    )


def _texts(items: list[Any], role: str) -> list[str]:
    return [
        "".join(part.text for part in item.content)
        for item in items
        if item.type == "message" and item.role == role
    ]


def _content(item: Any) -> tuple[str, str | None, str]:
    """An item's kind and text (the SDK resends history under ids of its choosing)."""
    parts = getattr(item, "content", None) or []
    text = "".join(getattr(part, "text", "") for part in parts)
    if item.type == "function_call":
        text = item.arguments
    return item.type, getattr(item, "role", None), text


def test_an_openai_conversations_session_carries_three_turns(proxy_server: Any) -> None:
    from openai import AsyncOpenAI

    async def main() -> None:
        client = AsyncOpenAI(base_url=proxy_server.base_url, api_key="unused", max_retries=0)
        session = agents.OpenAIConversationsSession(openai_client=client)
        agent = _agent(proxy_server, client)
        before: list[Any] = []
        for turn, question in enumerate(QUESTIONS, start=1):
            result = await agents.Runner.run(agent, question, session=session, max_turns=1)
            after = [
                item
                async for item in client.conversations.items.list(session.session_id, order="asc")
            ]
            # The conversation grew by this turn: the question, then what the model produced.
            assert [item.id for item in after[: len(before)]] == [item.id for item in before]
            assert _texts(after, "user") == QUESTIONS[:turn]
            assert len(after) >= len(before) + 2
            assert after[len(before) + 1].type in ("reasoning", "message")
            # The turn's prompt held every earlier item: the stored response's input items
            # are the conversation as it was, then the question.
            response_id = result.raw_responses[-1].response_id
            sent = [
                item async for item in client.responses.input_items.list(response_id, order="asc")
            ]
            assert [_content(item) for item in sent[:-1]] == [_content(item) for item in before]
            assert _texts(sent[-1:], "user") == [question]
            before = after
        await client.close()

    agents.set_tracing_disabled(True)
    asyncio.run(main())


def test_conversation_id_lets_the_server_keep_the_turns(proxy_server: Any) -> None:
    from openai import AsyncOpenAI

    async def main() -> None:
        client = AsyncOpenAI(base_url=proxy_server.base_url, api_key="unused", max_retries=0)
        conversation = await client.conversations.create()
        agent = _agent(proxy_server, client)
        prompt_tokens: list[int] = []
        for turn, question in enumerate(QUESTIONS, start=1):
            result = await agents.Runner.run(
                agent, question, conversation_id=conversation.id, max_turns=1
            )
            response = await client.responses.retrieve(result.raw_responses[-1].response_id)
            assert response.conversation is not None
            assert response.conversation.id == conversation.id
            prompt_tokens.append(response.usage.input_tokens)
            items = [
                item async for item in client.conversations.items.list(conversation.id, order="asc")
            ]
            assert _texts(items, "user") == QUESTIONS[:turn]
            assert items[-1].id == response.output[-1].id
        # Each prompt held the turns before it: longer by at least the earlier questions.
        assert prompt_tokens[0] < prompt_tokens[1] < prompt_tokens[2]
        assert prompt_tokens[2] - prompt_tokens[0] > 2 * 5
        await client.close()

    agents.set_tracing_disabled(True)
    asyncio.run(main())
