"""Codex CLI (`@openai/codex`, pinned in tests/clients/codex/package.json), unchanged, on /v1/responses.

`codex exec` runs with a model provider whose `base_url` is the server and `wire_api =
"responses"` (tests/clients/codex/codex_cli.py writes its config). Two servers:

- the capture server (tests/clients/codex/capture_server.py), a fake Responses backend that
  records what Codex sends: fast, and pins the request shape the proxy has to accept (the same
  shape as the fixtures captured_request.json and captured_followup.json beside it);
- the real server on the demo model: a turn must complete without a protocol error.

Both skip, saying why, when Codex CLI is not installed (`make install-dev` installs it with npm).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from tests.clients.codex.capture_server import (
    ENCRYPTED_REASONING,
    REPLY_TEXT,
    CapturedRequest,
    CaptureServer,
)
from tests.clients.codex.codex_cli import API_KEY, CODEX_DIR, CodexRun, codex_missing, run_codex

pytestmark = pytest.mark.skipif(codex_missing() is not None, reason=codex_missing() or "")

CODEX_VERSION = json.loads((CODEX_DIR / "package.json").read_text())["dependencies"][
    "@openai/codex"
]
# What Codex prints when a stream breaks, an event surprises it, or it retries a request.
PROTOCOL_TROUBLE = re.compile(
    r"^ERROR|stream error|stream disconnected|unexpected|retrying|reconnecting",
    re.IGNORECASE | re.MULTILINE,
)
TIMEOUT_S = 60


def fixture(name: str) -> dict[str, Any]:
    return json.loads((CODEX_DIR / name).read_text())


def assert_clean_turn(run: CodexRun) -> None:
    assert run.returncode == 0, run.stderr[-4000:]
    trouble = PROTOCOL_TROUBLE.findall(run.stderr)
    assert not trouble, run.stderr[-4000:]
    assert run.last_message.strip(), run.stderr[-4000:]


def tool_shape(tools: list[dict[str, Any]]) -> list[tuple[str, str | None]]:
    return [(tool["type"], tool.get("name")) for tool in tools]


def assert_first_turn_shape(request: CapturedRequest) -> None:
    headers = {k.lower(): v for k, v in request.headers.items()}
    assert headers["authorization"] == f"Bearer {API_KEY}"
    assert headers["accept"] == "text/event-stream"
    assert headers["originator"] == "codex_exec"
    assert headers["user-agent"].startswith(f"codex_exec/{CODEX_VERSION} ")
    body = request.body
    assert isinstance(body, dict)
    assert body["stream"] is True
    assert body["store"] is False
    assert body["include"] == ["reasoning.encrypted_content"]
    assert body["reasoning"] == {"summary": "auto"}
    assert body["parallel_tool_calls"] is True
    assert body["tool_choice"] == "auto"
    assert isinstance(body["prompt_cache_key"], str) and body["prompt_cache_key"]
    metadata = body["client_metadata"]
    assert metadata["session_id"] == body["prompt_cache_key"]
    assert all(isinstance(value, str) for value in metadata.values())
    # Codex sends its base instructions as the first developer message, not as `instructions`.
    assert "instructions" not in body
    items = body["input"]
    assert {item["type"] for item in items} == {"message"}
    assert [item["role"] for item in items] == ["developer", "developer", "user", "user"]
    assert all(part["type"] == "input_text" for item in items for part in item["content"])
    assert items[-1]["content"] == [{"type": "input_text", "text": "say hi"}]

    tools = body["tools"]
    assert {tool["type"] for tool in tools} == {"function", "namespace", "web_search"}
    for tool in tools:
        if tool["type"] == "function":
            assert tool["strict"] is False and tool["parameters"]["type"] == "object"
        elif tool["type"] == "namespace":
            assert tool["name"] == "multi_agent_v1" and tool["description"]
            assert {inner["type"] for inner in tool["tools"]} == {"function"}
            assert len(tool["tools"]) == 5
        else:
            assert tool == {"type": "web_search", "external_web_access": False}
    assert "exec_command" in [tool.get("name") for tool in tools]

    # The fixture beside this file was captured from this version: same fields, same tools.
    captured = fixture("captured_request.json")
    assert sorted(body) == sorted(captured)
    assert tool_shape(tools) == tool_shape(captured["tools"])
    assert [(i["type"], i["role"]) for i in items] == [
        (i["type"], i["role"]) for i in captured["input"]
    ]


def assert_followup_shape(first: dict[str, Any], followup: dict[str, Any]) -> None:
    """Stateless replay: the whole history again, plus the reasoning, the call and its output."""
    assert followup["store"] is False and followup["prompt_cache_key"] == first["prompt_cache_key"]
    assert followup["tools"] == first["tools"]
    count = len(first["input"])
    assert followup["input"][:count] == first["input"]
    reasoning, call, output = followup["input"][count:]
    assert reasoning["type"] == "reasoning" and reasoning["id"] == "rs_0"
    assert reasoning["encrypted_content"] == ENCRYPTED_REASONING
    assert reasoning["summary"][0]["type"] == "summary_text" and reasoning["content"] is None
    assert call["type"] == "function_call" and call["name"] == "exec_command"
    assert call["call_id"] == "call_0" and json.loads(call["arguments"]) == {"cmd": "echo hi"}
    assert output["type"] == "function_call_output" and output["call_id"] == "call_0"
    assert isinstance(output["output"], str) and "hi" in output["output"]
    captured = fixture("captured_followup.json")
    assert [i["type"] for i in followup["input"]] == [i["type"] for i in captured["input"]]


def test_codex_request_shape_on_a_fake_backend(tmp_path: Path):
    """Codex's own defaults, a tool call, the follow-up: what the proxy has to accept."""
    with CaptureServer(tool_call=True) as server:
        run = run_codex(server.base_url, "gpt-oss-120b", tmp_path, timeout=TIMEOUT_S)
        requests = server.responses_requests
    assert_clean_turn(run)
    assert run.last_message.strip() == REPLY_TEXT
    assert len(requests) == 2, [(r.method, r.path) for r in requests]
    assert all(r.path == "/v1/responses" for r in requests)
    assert_first_turn_shape(requests[0])
    assert_followup_shape(requests[0].body, requests[1].body)


def test_codex_slim_request_on_a_fake_backend(tmp_path: Path):
    """The slim settings the real-server test uses still send a real Codex request."""
    with CaptureServer() as server:
        run = run_codex(server.base_url, "gpt-oss-demo", tmp_path, timeout=TIMEOUT_S, slim=True)
        (request,) = server.responses_requests
    assert_clean_turn(run)
    body = request.body
    assert body["stream"] is True and body["store"] is False
    assert body["include"] == ["reasoning.encrypted_content"]
    assert tool_shape(body["tools"]) == [
        ("function", "exec_command"),
        ("function", "write_stdin"),
        ("function", "view_image"),
        ("web_search", None),
    ]
    assert [item["role"] for item in body["input"]] == ["developer", "user"]
    assert len(json.dumps(body)) < 6000


@pytest.mark.engine
def test_codex_completes_a_turn_on_the_real_server(proxy_server, tmp_path: Path):
    """`codex exec` against the proxy on the demo model: a finished turn, no protocol error.

    The slim settings keep Codex's request inside the test engine's 2048-token context.
    """
    run = run_codex(
        proxy_server.base_url, proxy_server.model, tmp_path, timeout=TIMEOUT_S, slim=True
    )
    assert_clean_turn(run)
