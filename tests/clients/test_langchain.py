"""LangChain's ChatOpenAI, unchanged, against the real server and engine."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.engine

langchain_openai = pytest.importorskip("langchain_openai")


def chat_model(server):  # noqa: ANN201
    return langchain_openai.ChatOpenAI(
        model=server.model,
        base_url=server.base_url,
        api_key="unused",
        temperature=0,
        max_retries=0,
        timeout=120,
    )


def test_chat_openai_streams_an_answer(proxy_server):
    chunks = list(chat_model(proxy_server).stream("Hello!"))
    text = "".join(c.content for c in chunks if isinstance(c.content, str))
    assert len(chunks) > 2 and text.strip()
    assert "<|" not in text


UNTRAINED = pytest.mark.xfail(
    reason='the retrained demo model calls a tool described only as "Get weather." after a '
    'system prompt, but answers "I cannot" to this bare user message (issue 7, item 3; '
    "training/RUNS.md)",
    strict=False,
)


@pytest.mark.parametrize("tool_choice", [pytest.param(None, marks=UNTRAINED), "get_weather", "any"])
def test_bind_tools_invoke_returns_a_call_of_the_declared_tool(proxy_server, tool_choice):
    from langchain_core.tools import tool

    @tool
    def get_weather(location: str) -> str:
        """Get weather."""
        return "sunny"

    model = chat_model(proxy_server).bind_tools([get_weather], tool_choice=tool_choice)
    message = model.invoke("What's the weather like in Tokyo?")
    assert [call["name"] for call in message.tool_calls] == ["get_weather"]
    assert isinstance(message.tool_calls[0]["args"].get("location"), str)
