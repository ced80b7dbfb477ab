"""MCP tools under hostile conditions, on the real server: refused URLs and names (400s naming
the field), servers that are down, malformed, slow or failing (an item with its `error`, the
response completing), and the limits on rounds and calls (the response ends `incomplete`)."""

from __future__ import annotations

import time

import httpx
import openai
import pytest

from proxy.backends.scripted import Script
from tests.hosted.scripted_model import ANSWER, RESULT_MARK, call, calling, prompts
from tests.proxy.helpers import toks


def mcp_tool(url: str, **extra: object) -> dict[str, object]:
    return {
        "type": "mcp",
        "server_label": "calc",
        "server_url": url,
        "require_approval": "never",
        **extra,
    }


def post(server, **body: object) -> httpx.Response:
    return httpx.post(
        f"{server.base_url}/responses",
        json={"model": server.model, "input": "Hi", **body},
        timeout=60,
    )


def client_of(server) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.base_url, api_key="unused", max_retries=0)


def test_mcp_tools_are_refused_without_an_allowlist(hosted_server, mcp_server):
    server = hosted_server(mcp_allow=())
    answer = post(server, tools=[mcp_tool(mcp_server.url)])
    assert answer.status_code == 400
    error = answer.json()["error"]
    assert error["param"] == "tools[0].server_url"
    assert "--mcp-allow" in error["message"]
    assert server.backend.requests == []


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:1/mcp",  # another port
        "http://localhost:{port}/mcp",  # another host name for the same place
        "https://127.0.0.1:{port}/mcp",  # another scheme
        "http://127.0.0.1:{port}@169.254.169.254/mcp",  # credentials hiding another host
        "http://127.0.0.1:{port}/mcp/../admin",
        "file:///etc/passwd",
    ],
)
def test_a_url_outside_the_allowlist_is_a_400_naming_it(hosted_server, mcp_server, url):
    server = hosted_server(mcp_allow=(f"http://127.0.0.1:{mcp_server.port}/mcp",))
    tools = [{"type": "function", "name": "f"}, mcp_tool(url.format(port=mcp_server.port))]
    answer = post(server, tools=tools)
    assert answer.status_code == 400
    assert answer.json()["error"]["param"] == "tools[1].server_url"


def test_a_label_colliding_with_a_client_tool_is_a_400(hosted_server, mcp_server):
    server = hosted_server()
    namespace = {
        "type": "namespace",
        "name": "calc",
        "description": "mine",
        "tools": [{"type": "function", "name": "add"}],
    }
    answer = post(server, tools=[namespace, mcp_tool(mcp_server.url)])
    assert answer.status_code == 400
    assert answer.json()["error"]["param"] == "tools[1]"


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("server_label", "has space"),
        ("headers", {"X-Bad": "a\r\nInjected: 1"}),
        ("require_approval", "sometimes"),
        ("allowed_tools", "add"),
    ],
)
def test_malformed_entries_are_400s_naming_the_field(hosted_server, mcp_server, field, value):
    server = hosted_server()
    answer = post(server, tools=[mcp_tool(mcp_server.url, **{field: value})])
    assert answer.status_code == 400
    assert answer.json()["error"]["param"].startswith(f"tools[0].{field}")


@pytest.mark.parametrize("path", ["down", "garbage"])
def test_a_server_down_or_malformed_is_a_listing_error_and_the_answer_goes_on(
    hosted_server, mcp_server, path
):
    url = "http://127.0.0.1:1/mcp" if path == "down" else f"{mcp_server.origin}/garbage"
    server = hosted_server(mcp_allow=("http://127.0.0.1:1", mcp_server.origin))
    server.backend.script = Script([toks(ANSWER)])
    response = client_of(server).responses.create(
        model=server.model, input="Hi", tools=[mcp_tool(url)]
    )
    assert response.status == "completed"
    listing = response.output[0]
    assert listing.type == "mcp_list_tools" and listing.tools == []
    assert listing.error
    assert response.output_text == "The answer is ready."


def test_a_tool_error_is_the_calls_error_and_the_model_reads_it(hosted_server, mcp_server):
    server = hosted_server()
    calling(server.backend, [call("calc.lookup", '{"city": "Atlantis"}')])
    response = client_of(server).responses.create(
        model=server.model, input="Atlantis?", tools=[mcp_tool(mcp_server.url)]
    )
    assert response.status == "completed"
    failed = next(item for item in response.output if item.type == "mcp_call")
    assert failed.status == "failed" and failed.output is None
    assert failed.error.type == "mcp_tool_execution_error"
    assert f"<|start|>calc.lookup{RESULT_MARK}Error:" in prompts(server.backend)[-1]


def test_a_slow_tool_times_out_as_an_http_error(hosted_server, mcp_server):
    server = hosted_server(mcp_timeout_seconds=1.0)
    calling(server.backend, [call("calc.wait", '{"seconds": 20}')])
    started = time.monotonic()
    response = client_of(server).responses.create(
        model=server.model, input="Wait.", tools=[mcp_tool(mcp_server.url)]
    )
    assert time.monotonic() - started < 15
    failed = next(item for item in response.output if item.type == "mcp_call")
    assert failed.status == "failed"
    assert (failed.error.type, failed.error.code) == ("http_error", 504)
    assert response.status == "completed"


def test_a_large_result_is_cut_before_the_model_reads_it(hosted_server, mcp_server):
    server = hosted_server(max_model_len=65536)
    calling(server.backend, [call("calc.repeat", '{"text": "ab", "times": 40000}')])
    response = client_of(server).responses.create(
        model=server.model, input="Repeat.", tools=[mcp_tool(mcp_server.url)]
    )
    ran = next(item for item in response.output if item.type == "mcp_call")
    assert len(ran.output) < 16_100
    assert ran.output.endswith("the first 16000 shown]")
    assert response.status == "completed"


def test_a_result_overflowing_the_context_fails_the_stream_cleanly(hosted_server, mcp_server):
    server = hosted_server(max_model_len=2048)
    calling(server.backend, [call("calc.repeat", '{"text": "ab ", "times": 3000}')])
    stream = client_of(server).responses.create(
        model=server.model, input="Repeat.", tools=[mcp_tool(mcp_server.url)], stream=True
    )
    events = list(stream)
    assert events[-1].type == "response.failed"
    assert events[-1].response.error.code == "context_length_exceeded"
    ran = next(item for item in events[-1].response.output if item.type == "mcp_call")
    assert ran.status == "completed"  # the call ran; the next round did not fit


def test_the_round_limit_ends_the_response_incomplete(hosted_server, mcp_server):
    server = hosted_server(max_tool_rounds=2)
    calling(server.backend, [call("calc.add", '{"a": 1, "b": 1}')], rounds=99)
    response = client_of(server).responses.create(
        model=server.model, input="Keep adding.", tools=[mcp_tool(mcp_server.url)]
    )
    assert response.status == "incomplete"
    assert response.incomplete_details.reason == "max_tool_calls"
    calls = [item for item in response.output if item.type == "mcp_call"]
    assert [c.status for c in calls] == ["completed", "completed", "incomplete"]
    assert len(server.backend.requests) == 3
    requests = server.backend.requests
    assert response.usage.input_tokens == sum(len(r.prompt_token_ids) for r in requests)


def test_max_tool_calls_bounds_the_calls_of_one_response(hosted_server, mcp_server):
    server = hosted_server()
    calling(server.backend, [call("calc.add", '{"a": 1, "b": 1}')], rounds=99)
    response = client_of(server).responses.create(
        model=server.model,
        input="Keep adding.",
        tools=[mcp_tool(mcp_server.url)],
        max_tool_calls=1,
    )
    assert response.status == "incomplete" and response.max_tool_calls == 1
    assert len(server.backend.requests) == 2


def test_an_approval_for_an_unknown_request_is_a_400(hosted_server, mcp_server):
    server = hosted_server()
    answer = post(
        server,
        tools=[mcp_tool(mcp_server.url)],
        input=[{"type": "mcp_approval_response", "approval_request_id": "mcpr_x", "approve": True}],
    )
    assert answer.status_code == 400
    assert answer.json()["error"]["param"] == "input[0].approval_request_id"
