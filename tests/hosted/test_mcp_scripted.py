"""MCP tools in /v1/responses on the real server, a scripted model and a real MCP server.

The scripted backend makes the model's calls deterministic; the MCP server (tests/support/
mcp_server.py) and the proxy's `mcp` client are real, so each test shows the whole loop: the
listing, the call run over streamable HTTP (or SSE), its result fed back into the next round's
prompt, the answer, and the items and events the openai SDK reads.
"""

from __future__ import annotations

import openai
import pytest

from tests.hosted.scripted_model import RESULT_MARK, call, calling, prompts


def mcp_tool(url: str, **extra: object) -> dict[str, object]:
    return {"type": "mcp", "server_label": "calc", "server_url": url, **extra}


@pytest.fixture
def proxy(hosted_server):
    return hosted_server()


@pytest.fixture
def client(proxy) -> openai.OpenAI:
    return openai.OpenAI(base_url=proxy.base_url, api_key="unused", max_retries=0)


def test_a_call_runs_and_its_result_is_fed_back(proxy, client, mcp_server):
    calling(proxy.backend, [call("calc.add", '{"a": 2, "b": 3}')])
    response = client.responses.create(
        model=proxy.model,
        input="What is 2 + 3?",
        tools=[mcp_tool(mcp_server.url, require_approval="never")],
    )
    assert response.status == "completed"
    types = [item.type for item in response.output]
    assert types == ["mcp_list_tools", "reasoning", "mcp_call", "reasoning", "message"]
    listing, call_item = response.output[0], response.output[2]
    assert {tool.name for tool in listing.tools} >= {"add", "lookup"}
    assert (call_item.server_label, call_item.name) == ("calc", "add")
    assert call_item.output == "5" and call_item.error is None
    assert call_item.status == "completed"
    first, second = prompts(proxy.backend)
    assert "namespace calc" in first
    assert f"<|start|>calc.add{RESULT_MARK}5<|end|>" in second
    assert response.output_text == "The answer is ready."
    requests = proxy.backend.requests
    assert response.usage.input_tokens == sum(len(r.prompt_token_ids) for r in requests)
