"""What an operator sees: one structured log line per request (no prompts, no keys), internal
errors logged with a traceback and counted apart from engine errors."""

from __future__ import annotations

import json
import logging

import httpx

from proxy.backends.scripted import Script, ScriptedBackend
from proxy.server.settings import ProxyConfig
from tests.proxy.helpers import body, toks
from tests.support.server_fixtures import TEST_DATE

URL = "/v1/chat/completions"
SECRET_PROMPT = "my-password-is-hunter2"
API_KEY = "sk-never-log-me"
ANSWER = toks("<|channel|>analysis<|message|>deep thoughts<|end|>")
ANSWER += toks("<|start|>assistant<|channel|>final<|message|>ok<|return|>")


def request_lines(caplog) -> list[dict]:
    return [
        json.loads(r.getMessage())
        for r in caplog.records
        if r.name == "proxy.requests" and r.getMessage().startswith("{")
    ]


def metric(server, name: str) -> float:
    text = httpx.get(f"{server.url}/metrics").text
    line = next(line for line in text.splitlines() if line.startswith(name + " "))
    return float(line.split()[-1])


def test_one_log_line_per_request_without_prompt_reasoning_or_key(make_server, caplog):
    caplog.set_level(logging.INFO)
    backend = ScriptedBackend(Script([ANSWER]))
    config = ProxyConfig(
        served_model_names=(backend.model_name,), conversation_date=TEST_DATE, api_keys=(API_KEY,)
    )
    server = make_server(config, backend)
    headers = {"Authorization": f"Bearer {API_KEY}", "X-Request-Id": "req-42"}
    with httpx.Client(base_url=server.url, headers=headers) as client:
        streamed = client.post(URL, json=body(server.model, SECRET_PROMPT, stream=True))
        whole = client.post(URL, json=body(server.model, SECRET_PROMPT))
        refused = client.post(URL, json=body(server.model, SECRET_PROMPT, n=99))
        missing = client.post(URL, json=body("no-such-model", SECRET_PROMPT))
    assert [r.status_code for r in (streamed, whole, refused, missing)] == [200, 200, 400, 404]
    lines = request_lines(caplog)
    by_status = sorted(line["status"] for line in lines)
    assert by_status == [200, 200, 400, 404]
    ok = [line for line in lines if line["status"] == 200]
    for line in ok:
        assert line["id"] == "req-42" and line["model"] == server.model
        assert line["finish_reason"] == "stop"
        assert line["prompt_tokens"] > 0 and line["completion_tokens"] > 0
        assert line["reasoning_tokens"] > 0
        assert line["ttft_ms"] is not None and line["duration_ms"] >= line["ttft_ms"]
    assert {line["stream"] for line in ok} == {True, False}
    assert [line["error"] for line in lines if line["status"] == 404] == ["model_not_found"]
    assert SECRET_PROMPT not in caplog.text
    assert "deep thoughts" not in caplog.text
    assert API_KEY not in caplog.text


class _BuggyBackend(ScriptedBackend):
    def generate(self, prompt_token_ids, sampling, request_id):
        raise KeyError("a bug in the server, not an engine failure")


def test_an_unexpected_exception_is_a_logged_internal_error_not_an_engine_error(
    make_server, caplog
):
    server = make_server(backend=_BuggyBackend())
    with httpx.Client(base_url=server.url) as client:
        response = client.post(URL, json=body(server.model))
    assert response.status_code == 500
    assert response.json()["error"]["type"] == "server_error"
    assert metric(server, "harmony_proxy_internal_errors_total") == 1
    assert metric(server, "harmony_proxy_engine_errors_total") == 0
    crashes = [r for r in caplog.records if r.exc_info and r.exc_info[0] is KeyError]
    assert crashes, "the traceback is logged"
    assert [line["status"] for line in request_lines(caplog)] == [500]


def test_an_exception_mid_stream_is_an_error_event_and_a_logged_internal_error(
    scripted_server, caplog
):
    backend = scripted_server.backend
    # The second chunk holds something that is not a token id: the parser chokes on it.
    backend.script = Script([[*ANSWER[:2], "not a token id", *ANSWER[2:]]], chunk_sizes=(2,))
    before = metric(scripted_server, "harmony_proxy_internal_errors_total")
    with httpx.Client(base_url=scripted_server.url) as client:
        response = client.post(URL, json=body(scripted_server.model, stream=True))
    events = [e for e in response.text.split("\n\n") if e.startswith("data:")]
    assert events[-1] == "data: [DONE]"
    assert any('"error"' in e for e in events)
    assert metric(scripted_server, "harmony_proxy_internal_errors_total") == before + 1
    assert any(r.exc_info for r in caplog.records if r.name == "proxy")
