"""MCP tools in /v1/responses on the real server, a scripted model and a real MCP server.

The scripted backend makes the model's calls deterministic; the MCP server (tests/support/
mcp_server.py) and the proxy's `mcp` client are real, so each test shows the whole loop: the
listing, the call run over streamable HTTP (or SSE), its result fed back into the next round's
prompt, the answer, and the items and events the openai SDK reads.
"""

from __future__ import annotations

import json
import time

import httpx
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


def test_the_stream_shows_listing_and_call_with_openai_event_names(proxy, client, mcp_server):
    calling(proxy.backend, [call("calc.add", '{"a": 2, "b": 3}')])
    stream = client.responses.create(
        model=proxy.model,
        input="What is 2 + 3?",
        tools=[mcp_tool(mcp_server.url, require_approval="never")],
        stream=True,
    )
    events = list(stream)
    kinds = [event.type for event in events]
    assert [e.sequence_number for e in events] == list(range(len(events)))
    listing = [k for k in kinds if "mcp_list_tools" in k]
    assert listing == ["response.mcp_list_tools.in_progress", "response.mcp_list_tools.completed"]
    start = kinds.index("response.mcp_call.in_progress")
    assert kinds[start - 1] == "response.output_item.added"
    assert events[start - 1].item.type == "mcp_call"
    after = [
        k for k in kinds[start:] if k.startswith(("response.mcp_call", "response.output_item"))
    ]
    assert after[:2] == ["response.mcp_call.in_progress", "response.mcp_call_arguments.delta"]
    tail = [k for k in after if k != "response.mcp_call_arguments.delta"]
    assert tail[:4] == [
        "response.mcp_call.in_progress",
        "response.mcp_call_arguments.done",
        "response.mcp_call.completed",
        "response.output_item.done",
    ]
    done = next(e for e in events if e.type == "response.mcp_call_arguments.done")
    assert done.arguments == '{"a": 2, "b": 3}'
    final = events[-1]
    assert final.type == "response.completed"
    call_item = next(item for item in final.response.output if item.type == "mcp_call")
    assert call_item.output == "5"


def test_previous_response_id_continues_without_listing_again(proxy, client, mcp_server):
    tools = [mcp_tool(mcp_server.url, require_approval="never")]
    calling(proxy.backend, [call("calc.add", '{"a": 2, "b": 3}')])
    first = client.responses.create(model=proxy.model, input="What is 2 + 3?", tools=tools)
    calling(proxy.backend, [call("calc.add", '{"a": 5, "b": 4}')], rounds=2)
    second = client.responses.create(
        model=proxy.model, input="And 5 + 4?", tools=tools, previous_response_id=first.id
    )
    assert [item.type for item in second.output] == [
        "reasoning",
        "mcp_call",
        "reasoning",
        "message",
    ]
    assert second.output[1].output == "9"
    last_prompt = prompts(proxy.backend)[-1]
    assert f"<|start|>calc.add{RESULT_MARK}5<|end|>" in last_prompt  # the first response's
    assert f"<|start|>calc.add{RESULT_MARK}9<|end|>" in last_prompt


def test_an_approval_request_ends_the_response_and_an_approval_runs_the_call(
    proxy, client, mcp_server
):
    tools = [mcp_tool(mcp_server.url)]  # require_approval defaults to "always", as OpenAI's
    calling(proxy.backend, [call("calc.add", '{"a": 2, "b": 3}')])
    asked = client.responses.create(model=proxy.model, input="What is 2 + 3?", tools=tools)
    assert asked.status == "completed"
    assert [item.type for item in asked.output] == [
        "mcp_list_tools",
        "reasoning",
        "mcp_approval_request",
    ]
    request = asked.output[-1]
    assert (request.server_label, request.name) == ("calc", "add")
    assert request.arguments == '{"a": 2, "b": 3}'
    assert len(proxy.backend.requests) == 1  # nothing ran, no second round
    approved = client.responses.create(
        model=proxy.model,
        previous_response_id=asked.id,
        tools=tools,
        input=[
            {"type": "mcp_approval_response", "approval_request_id": request.id, "approve": True}
        ],
    )
    assert [item.type for item in approved.output] == ["mcp_call", "reasoning", "message"]
    ran = approved.output[0]
    assert ran.approval_request_id == request.id and ran.output == "5"
    assert f"<|start|>calc.add{RESULT_MARK}5<|end|>" in prompts(proxy.backend)[-1]


def test_a_refused_approval_tells_the_model_and_runs_nothing(proxy, client, mcp_server):
    tools = [mcp_tool(mcp_server.url)]
    calling(proxy.backend, [call("calc.add", '{"a": 2, "b": 3}')])
    asked = client.responses.create(model=proxy.model, input="What is 2 + 3?", tools=tools)
    request = asked.output[-1]
    refused = client.responses.create(
        model=proxy.model,
        previous_response_id=asked.id,
        tools=tools,
        input=[
            {"type": "mcp_approval_response", "approval_request_id": request.id, "approve": False}
        ],
    )
    assert [item.type for item in refused.output] == ["reasoning", "message"]
    assert "The user declined to run this tool call." in prompts(proxy.backend)[-1]


def test_approval_filters_pick_the_tools_that_wait(proxy, client, mcp_server):
    never_add = {"never": {"tool_names": ["add"]}}
    calling(proxy.backend, [call("calc.add", '{"a": 1, "b": 1}')])
    response = client.responses.create(
        model=proxy.model,
        input="1 + 1?",
        tools=[mcp_tool(mcp_server.url, require_approval=never_add)],
    )
    assert "mcp_call" in [item.type for item in response.output]


def test_the_sse_transport_works_too(proxy, client, mcp_server):
    calling(proxy.backend, [call("calc.lookup", '{"city": "Paris"}')])
    response = client.responses.create(
        model=proxy.model,
        input="Tell me about Paris.",
        tools=[mcp_tool(mcp_server.sse_url, require_approval="never")],
    )
    ran = next(item for item in response.output if item.type == "mcp_call")
    assert ran.output == "Paris is the capital of France."


def test_headers_reach_the_server_but_are_never_echoed_or_stored(proxy, client, mcp_server):
    secret = "Bearer s3cret-token-for-the-test"
    calling(proxy.backend, [call("calc.add", '{"a": 2, "b": 3}')])
    response = client.responses.create(
        model=proxy.model,
        input="What is 2 + 3?",
        tools=[
            mcp_tool(
                mcp_server.url,
                require_approval="never",
                headers={"Authorization": secret, "X-Test": "yes"},
            )
        ],
    )
    assert mcp_server.seen_headers() == {"authorization": secret, "x-test": "yes"}
    assert "headers" not in response.tools[0].model_dump(exclude_none=True)
    stored = client.responses.retrieve(response.id)
    assert "s3cret" not in stored.model_dump_json()
    assert "s3cret" not in response.model_dump_json()


def test_tool_choice_mcp_forces_the_first_round_only(proxy, client, mcp_server):
    calling(proxy.backend, [call("calc.add", '{"a": 2, "b": 3}')])
    response = client.responses.create(
        model=proxy.model,
        input="What is 2 + 3?",
        tools=[mcp_tool(mcp_server.url, require_approval="never")],
        tool_choice={"type": "mcp", "server_label": "calc", "name": "add"},
    )
    assert response.status == "completed"
    first, second = (str(r.sampling.structured_outputs) for r in proxy.backend.requests)
    # The first round's grammar allows only the call; the second's allows an answer again.
    assert "calc.add" in first and "<|channel|>final" not in first
    assert "<|channel|>final" in second


def test_a_client_function_call_still_ends_the_response(proxy, client, mcp_server):
    weather = {
        "type": "function",
        "name": "get_weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    }
    calling(proxy.backend, [call("functions.get_weather", '{"city": "Paris"}')])
    response = client.responses.create(
        model=proxy.model,
        input="Weather in Paris?",
        tools=[weather, mcp_tool(mcp_server.url, require_approval="never")],
    )
    assert [item.type for item in response.output] == [
        "mcp_list_tools",
        "reasoning",
        "function_call",
    ]
    assert len(proxy.backend.requests) == 1


def test_the_request_log_and_usage_hook_count_every_round(proxy, client, mcp_server, caplog):
    calling(proxy.backend, [call("calc.add", '{"a": 2, "b": 3}')])
    with caplog.at_level("INFO", logger="proxy.requests"):
        response = client.responses.create(
            model=proxy.model,
            input="What is 2 + 3?",
            tools=[mcp_tool(mcp_server.url, require_approval="never")],
        )
    logged = [json.loads(r.getMessage()) for r in caplog.records if r.name == "proxy.requests"]
    assert [entry["status"] for entry in logged] == [200]  # one request, however many rounds
    assert logged[0]["prompt_tokens"] == response.usage.input_tokens
    assert logged[0]["completion_tokens"] == response.usage.output_tokens
    first, second = proxy.backend.requests
    assert response.usage.input_tokens == len(first.prompt_token_ids) + len(second.prompt_token_ids)


def test_a_client_leaving_during_a_tool_call_stops_the_response(proxy, mcp_server):
    calling(proxy.backend, [call("calc.wait", '{"seconds": 6}')])
    body = {
        "model": proxy.model,
        "input": "Wait.",
        "stream": True,
        "tools": [mcp_tool(mcp_server.url, require_approval="never")],
    }
    with httpx.stream("POST", f"{proxy.base_url}/responses", json=body, timeout=30) as answer:
        for line in answer.iter_lines():
            if "response.mcp_call.in_progress" in line:
                break  # leave while the call runs
    deadline = time.monotonic() + 4
    while time.monotonic() < deadline and in_flight(proxy) != 0:
        time.sleep(0.1)
    assert in_flight(proxy) == 0  # the slot is back before the 6-second call could end
    assert len(proxy.backend.requests) == 1  # and no second round


def in_flight(proxy) -> float:
    text = httpx.get(f"{proxy.url}/metrics", timeout=5).text
    line = next(x for x in text.splitlines() if x.startswith("harmony_proxy_requests_in_flight"))
    return float(line.split()[-1])


def test_a_conversation_keeps_the_hosted_items_and_lists_a_server_once(proxy, client, mcp_server):
    tools = [mcp_tool(mcp_server.url, require_approval="never")]
    conversation = client.conversations.create()
    calling(proxy.backend, [call("calc.add", '{"a": 2, "b": 3}')])
    first = client.responses.create(
        model=proxy.model, input="2 + 3?", tools=tools, conversation=conversation.id
    )
    calling(proxy.backend, [call("calc.add", '{"a": 5, "b": 4}')], rounds=2)
    second = client.responses.create(
        model=proxy.model, input="5 + 4?", tools=tools, conversation=conversation.id
    )
    assert first.output[0].type == "mcp_list_tools"
    assert "mcp_list_tools" not in [item.type for item in second.output]
    kept = [item.type for item in client.conversations.items.list(conversation.id, order="asc")]
    assert kept.count("mcp_list_tools") == 1 and kept.count("mcp_call") == 2
    assert f"<|start|>calc.add{RESULT_MARK}5<|end|>" in prompts(proxy.backend)[-1]


def _approved(request_id: str) -> list[dict[str, object]]:
    """A stateless client's replay: its own copy of an approval request, and the approval."""
    return [
        {
            "type": "mcp_approval_request",
            "id": request_id,
            "server_label": "calc",
            "name": "add",
            "arguments": '{"a": 2, "b": 3}',
        },
        {"type": "mcp_approval_response", "approval_request_id": request_id, "approve": True},
    ]


def test_an_approval_sent_twice_runs_its_call_once(proxy, client, mcp_server):
    calling(proxy.backend, [])
    twice = [*_approved("mcpr_1"), _approved("mcpr_1")[1]]
    response = client.responses.create(
        model=proxy.model, input=twice, tools=[mcp_tool(mcp_server.url)]
    )
    assert [item.type for item in response.output].count("mcp_call") == 1


def test_more_approved_calls_than_the_cap_are_refused_before_any_runs(proxy, mcp_server):
    items = [item for i in range(17) for item in _approved(f"mcpr_{i}")]
    response = httpx.post(
        f"{proxy.base_url}/responses",
        json={"model": proxy.model, "input": items, "tools": [mcp_tool(mcp_server.url)]},
        timeout=60,
    )
    assert response.status_code == 400, response.text
    assert response.json()["error"]["param"] == "input"
    assert len(proxy.backend.requests) == 0  # refused before generation


@pytest.mark.parametrize("action", [{"type": [1]}, {"type": "teleport"}, "search", 3])
def test_a_malformed_web_search_call_in_the_input_is_a_400(proxy, action):
    item = {
        "type": "web_search_call",
        "id": "ws_1",
        "status": "completed",
        "action": action,
        "arguments": "{}",
        "output": "page",
    }
    response = httpx.post(
        f"{proxy.base_url}/responses",
        json={"model": proxy.model, "input": [item, {"role": "user", "content": "Hi"}]},
        timeout=60,
    )
    assert response.status_code == 400, response.text
    assert response.json()["error"]["param"] == "input[0].action"
