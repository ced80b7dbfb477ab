"""The OpenAI Agents SDK, unchanged, running its tool loop against the real server and engine.

The agent's tool is an ordinary Python function: the SDK derives its name, docstring description
and a strict JSON schema from it, exactly as users write them. The demo model never saw this
tool in training; it has to read the declaration, call it, then answer from its result.
"""

from __future__ import annotations

import asyncio

import pytest

pytestmark = pytest.mark.engine

agents = pytest.importorskip("agents")


def run_agent(server, tool_choice: str | None, api: str = "chat") -> tuple[str, list[str]]:
    from openai import AsyncOpenAI

    calls: list[str] = []

    @agents.function_tool
    def get_current_temperature(city: str) -> str:
        """Return the current temperature in a city."""
        calls.append(city)
        return "18 degrees Celsius and sunny"

    async def main() -> str:
        client = AsyncOpenAI(base_url=server.base_url, api_key="unused", max_retries=0)
        agent = agents.Agent(
            name="assistant",
            instructions="You are a helpful assistant. Use the tools when they help.",
            tools=[get_current_temperature],
            model=(
                agents.OpenAIResponsesModel(model=server.model, openai_client=client)
                if api == "responses"
                else agents.OpenAIChatCompletionsModel(model=server.model, openai_client=client)
            ),
            model_settings=agents.ModelSettings(temperature=0, tool_choice=tool_choice),
        )
        result = await agents.Runner.run(
            agent, "What is the temperature in Paris right now?", max_turns=4
        )
        await client.close()
        return str(result.final_output)

    agents.set_tracing_disabled(True)
    return asyncio.run(main()), calls


@pytest.mark.parametrize("api", ["chat", "responses"])
@pytest.mark.parametrize("tool_choice", [None, "required"])
def test_an_agent_calls_its_function_tool_then_answers(proxy_server, tool_choice, api):
    """Both model classes: chat completions, and the Responses one (the SDK's default)."""
    answer, calls = run_agent(proxy_server, tool_choice, api)
    assert len(calls) == 1 and calls[0].strip()
    assert answer.strip()
    assert "<|" not in answer


def test_an_agent_with_auto_truncation_continues_a_history_longer_than_the_context(
    proxy_server,
):
    """`ModelSettings(truncation="auto")` over the Responses API: a history several times the
    engine's context is answered from its newest turns; without it, the same run is refused
    with `context_length_exceeded`."""
    from openai import AsyncOpenAI, BadRequestError

    from tests.support.engine_fixtures import ENGINE_MAX_MODEL_LEN

    filler = " ".join(f"note {i}" for i in range(120))  # ~360 tokens
    history: list = []
    for i in range(8):
        history.append({"role": "user", "content": f"Old question {i}: {filler}"})
        history.append({"role": "assistant", "content": f"Old answer {i}: {filler}"})
    history.append({"role": "user", "content": "Say hello."})

    async def main(truncation: str | None):
        client = AsyncOpenAI(base_url=proxy_server.base_url, api_key="unused", max_retries=0)
        agent = agents.Agent(
            name="assistant",
            instructions="You are a helpful assistant.",
            model=agents.OpenAIResponsesModel(model=proxy_server.model, openai_client=client),
            model_settings=agents.ModelSettings(
                temperature=0, max_tokens=200, truncation=truncation
            ),
        )
        try:
            return await agents.Runner.run(agent, history, max_turns=1)
        finally:
            await client.close()

    agents.set_tracing_disabled(True)
    with pytest.raises(BadRequestError) as refused:
        asyncio.run(main(None))
    assert refused.value.body["code"] == "context_length_exceeded"
    result = asyncio.run(main("auto"))
    response = result.raw_responses[-1]
    assert response.output  # generated (the answer itself may be cut by max_tokens)
    usage = response.usage
    assert 0 < usage.input_tokens <= ENGINE_MAX_MODEL_LEN - 200
    assert usage.output_tokens > 0
