"""Claude Code (`@anthropic-ai/claude-code`, pinned in tests/clients/claude_code/package.json),
unchanged, on /v1/messages.

- the captured request (captured_request.json, what Claude Code sends: its full system prompt,
  a `role: "system"` message, 12 tools with draft 2020-12 schemas, adaptive thinking...) is
  accepted by the server and streamed back: no binary needed;
- `claude -p` with its full tool set and system prompt against the server on a scripted engine
  with a long context: a finished turn, no protocol error, the scripted answer printed;
- `claude -p` against the server on the real engine (demo model), slimmed to fit the test
  engine's 2,048-token context: a finished turn, no protocol error.

The runs skip, saying why, when Claude Code is not installed (`make install-dev` installs it).
"""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from proxy.backends.scripted import Script, ScriptedBackend
from proxy.core.conversation import load_encoding
from proxy.server.settings import ProxyConfig
from tests.clients.claude_code.claude_cli import CLAUDE_DIR, ClaudeRun, claude_missing, run_claude
from tests.proxy.helpers import toks
from tests.support.server_fixtures import TEST_DATE

ANSWER = (
    "<|channel|>analysis<|message|>Greet back.<|end|><|start|>assistant"
    "<|channel|>final<|message|>Hello from gpt-oss, friend!<|return|>"
)
needs_claude = pytest.mark.skipif(claude_missing() is not None, reason=claude_missing() or "")


def captured(name: str) -> Any:
    return json.loads((CLAUDE_DIR / name).read_text())


@pytest.fixture
def long_context_server(make_server):
    """The server on a scripted engine whose context holds Claude Code's ~12k-token prompt."""
    backend = ScriptedBackend(Script([toks(ANSWER)]), max_model_len=131072)
    config = ProxyConfig(served_model_names=(backend.model_name,), conversation_date=TEST_DATE)
    return make_server(config, backend)


def assert_clean_turn(run: ClaudeRun) -> dict[str, Any]:
    assert run.returncode == 0, (run.stdout[-2000:], run.stderr[-2000:])
    result = run.result
    assert result["type"] == "result" and result["subtype"] == "success", result
    assert result["is_error"] is False and result["api_error_status"] is None, result
    return result


def test_the_captured_claude_code_request_is_served(long_context_server):
    server = long_context_server
    body = dict(captured("captured_request.json"), model=server.model, max_tokens=32000)
    headers = {k: v for k, v in captured("captured_headers.json").items() if k != "accept-encoding"}
    response = httpx.post(
        server.url + "/v1/messages?beta=true", json=body, headers=headers, timeout=60
    )
    assert response.status_code == 200, response.text
    assert response.text.startswith("event: message_start")
    assert response.text.rstrip().endswith('data: {"type":"message_stop"}')
    prompt = load_encoding().decode(server.backend.requests[-1].prompt_token_ids)
    assert "Reasoning: high" in prompt
    declared = [t["name"] for t in body["tools"] if not t.get("defer_loading")]
    assert all(f"type {name} = " in prompt for name in declared)
    assert (
        "DeferredToolPlaceholder" not in prompt.split("<|start|>developer")[1].split("<|end|>")[0]
    )


@needs_claude
def test_claude_code_full_turn_on_a_scripted_engine(long_context_server):
    server = long_context_server
    run = run_claude(server.url, server.model, "Say hello in five words.", timeout=120)
    result = assert_clean_turn(run)
    assert result["result"] == "Hello from gpt-oss, friend!"
    assert len(server.backend.requests) == 1
    assert len(server.backend.requests[0].prompt_token_ids) > 8000  # the whole tool set


@needs_claude
@pytest.mark.engine
def test_claude_code_completes_a_turn_on_the_real_server(proxy_server):
    """`claude -p` against the proxy on the demo model: a finished turn, no protocol error."""
    run = run_claude(proxy_server.url, proxy_server.model, "Say hello.", timeout=300, slim=True)
    assert_clean_turn(run)
