"""The OpenAI Agents SDK's `HostedMCPTool`, unchanged, against the real server (scripted model,
real MCP server): the SDK sends the `mcp` tool, reads the hosted items back, and with
`require_approval` answers the proxy's approval request through its `on_approval_request`
callback, replaying the conversation (no stored state) with its `mcp_approval_response`."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from tests.hosted.scripted_model import RESULT_MARK, call, calling, prompts

agents = pytest.importorskip("agents")


def run_agent(server, tool: Any, question: str) -> Any:
    from openai import AsyncOpenAI

    async def main() -> Any:
        client = AsyncOpenAI(base_url=server.base_url, api_key="unused", max_retries=0)
        agent = agents.Agent(
            name="assistant",
            instructions="Use the tools when they help.",
            tools=[tool],
            model=agents.OpenAIResponsesModel(model=server.model, openai_client=client),
        )
        try:
            return await agents.Runner.run(agent, question, max_turns=4)
        finally:
            await client.close()

    agents.set_tracing_disabled(True)
    return asyncio.run(main())


def config(url: str, approval: str) -> dict[str, Any]:
    return {"type": "mcp", "server_label": "calc", "server_url": url, "require_approval": approval}


def test_hosted_mcp_tool_runs_on_the_proxy(hosted_server, mcp_server):
    server = hosted_server()
    calling(server.backend, [call("calc.add", '{"a": 2, "b": 3}')])
    result = run_agent(
        server, agents.HostedMCPTool(tool_config=config(mcp_server.url, "never")), "2 + 3?"
    )
    assert result.final_output == "The answer is ready."
    raw = [item.raw_item for item in result.new_items]
    kinds = [getattr(r, "type", None) for r in raw]
    assert "mcp_list_tools" in kinds and "mcp_call" in kinds
    ran = next(r for r in raw if getattr(r, "type", None) == "mcp_call")
    assert ran.output == "5"
    assert len(server.backend.requests) == 2  # one response, two rounds


def test_hosted_mcp_tool_with_approval_asks_the_callback(hosted_server, mcp_server):
    server = hosted_server()
    calling(server.backend, [call("calc.add", '{"a": 2, "b": 3}')])
    asked: list[Any] = []

    def approve(request: Any) -> dict[str, Any]:
        asked.append(request.data)
        return {"approve": True}

    tool = agents.HostedMCPTool(
        tool_config=config(mcp_server.url, "always"), on_approval_request=approve
    )
    result = run_agent(server, tool, "2 + 3?")
    assert [(a.server_label, a.name, a.arguments) for a in asked] == [
        ("calc", "add", '{"a": 2, "b": 3}')
    ]
    assert result.final_output == "The answer is ready."
    ran = [
        item.raw_item
        for item in result.new_items
        if getattr(item.raw_item, "type", None) == "mcp_call"
    ]
    assert [r.output for r in ran] == ["5"]
    assert ran[0].approval_request_id == asked[0].id
    assert f"<|start|>calc.add{RESULT_MARK}5<|end|>" in prompts(server.backend)[-1]
