"""An MCP tool through /v1/responses on the real server and engine (the demo model), calling
the real test MCP server. The model is tiny, so its first call is forced with an `mcp`
tool_choice, and the test asserts on the structure: the listing, the call with the server's
real output, the response completed, its usage the sum of its rounds."""

from __future__ import annotations

import json
from collections.abc import Iterator

import openai
import pytest

from proxy.core.conversation import load_encoding
from proxy.server.settings import ProxyConfig
from tests.clients.test_responses import Recording
from tests.hosted.scripted_model import RESULT_MARK
from tests.support.server_fixtures import TEST_DATE, RunningServer, start_server, stop_server

pytestmark = pytest.mark.engine


@pytest.fixture(scope="module")
def engine_proxy(background_loop, vllm_backend, mcp_server) -> Iterator[RunningServer]:
    config = ProxyConfig(
        served_model_names=(vllm_backend.model_name,),
        conversation_date=TEST_DATE,
        mcp_allow=(mcp_server.origin,),
        mcp_timeout_seconds=10.0,
        max_tool_rounds=2,
    )
    running = start_server(background_loop, config, Recording(vllm_backend))
    yield running
    stop_server(background_loop, running)


def test_a_forced_mcp_call_runs_on_the_server_and_the_model_answers(engine_proxy, mcp_server):
    recording = engine_proxy.backend
    recording.prompts.clear()
    client = openai.OpenAI(base_url=engine_proxy.base_url, api_key="unused", max_retries=0)
    response = client.responses.create(
        model=engine_proxy.model,
        input="What is 2 + 3? Use the add tool.",
        tools=[
            {
                "type": "mcp",
                "server_label": "calc",
                "server_url": mcp_server.url,
                "require_approval": "never",
            }
        ],
        tool_choice={"type": "mcp", "server_label": "calc", "name": "add"},
        temperature=0,
        max_output_tokens=600,
    )
    listing = response.output[0]
    assert listing.type == "mcp_list_tools" and listing.error is None
    assert {tool.name for tool in listing.tools} >= {"add", "lookup"}
    calls = [item for item in response.output if item.type == "mcp_call"]
    assert calls and (calls[0].server_label, calls[0].name) == ("calc", "add")
    arguments = json.loads(calls[0].arguments)  # the grammar made them valid for the schema
    assert calls[0].output == str(arguments["a"] + arguments["b"])  # the server's own answer
    assert calls[0].status == "completed"
    assert response.status == "completed"
    assert len(recording.prompts) >= 2
    fed_back = f"<|start|>calc.add{RESULT_MARK}{calls[0].output}<|end|>"
    assert fed_back in load_encoding().decode(recording.prompts[1])
    assert response.usage.input_tokens == sum(len(p) for p in recording.prompts)
    assert response.usage.output_tokens > 0
