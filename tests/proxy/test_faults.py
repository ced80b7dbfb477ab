"""Engine faults and client disconnects (fixture (k)), through the real server."""

from __future__ import annotations

import json
import time

import httpx
import openai
import pytest

from proxy.backends.scripted import Script, ScriptedBackend
from proxy.server.settings import ProxyConfig
from tests.proxy.helpers import body, sse_events, toks
from tests.support.server_fixtures import TEST_DATE

URL = "/v1/chat/completions"
LONG = toks("<|channel|>analysis<|message|>" + "thinking " * 200 + "<|end|>")


def wait_for(predicate, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def test_engine_error_mid_stream_becomes_an_error_event_then_finish_and_done(scripted_server):
    scripted_server.backend.script = Script([LONG], fail_after=5)
    with httpx.Client(base_url=scripted_server.url) as client:
        response = client.post(URL, json=body(scripted_server.model, stream=True))
    assert response.status_code == 200
    events = sse_events(response.text)
    assert events[-1] == "[DONE]"
    payloads = [json.loads(e) for e in events[:-1]]
    errors = [p for p in payloads if "error" in p]
    assert len(errors) == 1
    assert errors[0]["error"]["type"] == "server_error"
    assert "scripted engine failure" in errors[0]["error"]["message"]
    after = payloads[payloads.index(errors[0]) + 1 :]
    # OpenAI's finish_reason enum has no "error": the error event says it, the finish says stop.
    assert [c["choices"][0]["finish_reason"] for c in after] == ["stop"]


def test_engine_error_mid_stream_raises_in_the_openai_sdk(scripted_server):
    scripted_server.backend.script = Script([LONG], fail_after=5)
    client = openai.OpenAI(base_url=scripted_server.base_url, api_key="x", max_retries=0)
    with pytest.raises(openai.APIError, match="scripted engine failure"):
        for _ in client.chat.completions.create(
            model=scripted_server.model, messages=[{"role": "user", "content": "Hi"}], stream=True
        ):
            pass


def test_engine_error_before_the_first_token_is_a_500(scripted_server):
    scripted_server.backend.script = Script([LONG], fail_after=0)
    with httpx.Client(base_url=scripted_server.url) as client:
        streamed = client.post(URL, json=body(scripted_server.model, stream=True))
        whole = client.post(URL, json=body(scripted_server.model))
    for response in (streamed, whole):
        assert response.status_code == 500
        assert response.json()["error"]["type"] == "server_error"
        assert response.json()["error"]["code"] == "engine_error"


def test_engine_error_in_a_non_streaming_request_is_a_500(scripted_server):
    scripted_server.backend.script = Script([LONG], fail_after=4)
    with httpx.Client(base_url=scripted_server.url) as client:
        response = client.post(URL, json=body(scripted_server.model))
    assert response.status_code == 500
    assert set(response.json()["error"]) == {"message", "type", "param", "code"}


def test_k_client_disconnect_mid_stream_aborts_the_generation(scripted_server):
    backend = scripted_server.backend
    backend.script = Script([LONG], delay=0.02)
    with httpx.Client(base_url=scripted_server.url) as client:
        with client.stream("POST", URL, json=body(scripted_server.model, stream=True)) as response:
            lines = response.iter_lines()
            for _ in range(6):
                next(lines)
    wait_for(lambda: len(backend.aborted) == 1)
    assert backend.finished == []
    assert _gauge(scripted_server, "harmony_proxy_client_disconnects_total") >= 1
    wait_for(lambda: _gauge(scripted_server, "harmony_proxy_requests_in_flight") == 0)


def test_k_client_disconnect_during_a_non_streaming_request_aborts_the_generation(scripted_server):
    backend = scripted_server.backend
    backend.script = Script([LONG], delay=0.02)
    with httpx.Client(base_url=scripted_server.url, timeout=0.5) as client:
        with pytest.raises(httpx.ReadTimeout):
            client.post(URL, json=body(scripted_server.model))
    wait_for(lambda: len(backend.aborted) == 1)
    assert backend.finished == []


def test_slow_engine_gets_sse_keepalive_pings(make_server):
    # Pings start once the stream has (the first engine output fixes the HTTP status): a gap
    # between the first and second chunks must carry them.
    backend = ScriptedBackend(
        Script([toks("<|channel|>final<|message|>ok<|return|>")], chunk_sizes=(2,), delay=0.6)
    )
    config = ProxyConfig(
        served_model_names=(backend.model_name,), conversation_date=TEST_DATE, sse_ping_seconds=0.2
    )
    server = make_server(config, backend)
    with httpx.Client(base_url=server.url) as client:
        response = client.post(URL, json=body(server.model, stream=True))
    assert ": ping" in response.text
    assert sse_events(response.text)[-1] == "[DONE]"


def test_a_stream_that_keeps_writing_gets_no_pings(make_server):
    # A ping keeps an idle stream alive; between events that come every 50 ms, with pings due
    # after 200 ms of silence, there is none to send.
    (dot,) = toks(".")
    answer = toks("<|channel|>final<|message|>") + [dot] * 20 + toks("<|return|>")
    backend = ScriptedBackend(Script([answer], delay=0.05))
    config = ProxyConfig(
        served_model_names=(backend.model_name,), conversation_date=TEST_DATE, sse_ping_seconds=0.2
    )
    server = make_server(config, backend)
    with httpx.Client(base_url=server.url) as client:
        response = client.post(URL, json=body(server.model, stream=True))
    assert ": ping" not in response.text
    assert sse_events(response.text)[-1] == "[DONE]"


def test_requests_while_the_engine_loads_are_503_and_ready_says_so(make_server):
    backend = ScriptedBackend(ready=False)
    server = make_server(backend=backend, ready=False)
    with httpx.Client(base_url=server.url) as client:
        assert client.get("/health").status_code == 200
        ready = client.get("/ready")
        response = client.post(URL, json=body(server.model))
    assert ready.status_code == 503
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "engine_not_ready"


def test_ready_turns_200_once_the_engine_has_loaded(make_server, background_loop):
    backend = ScriptedBackend(ready=False)
    server = make_server(backend=backend, ready=False)
    background_loop.loop.call_soon_threadsafe(backend.release.set)
    with httpx.Client(base_url=server.url) as client:
        wait_for(lambda: client.get("/ready").status_code == 200)


def _gauge(server, name: str) -> float:
    text = httpx.get(f"{server.url}/metrics").text
    line = next(line for line in text.splitlines() if line.startswith(name + " "))
    return float(line.split()[-1])


def test_a_completed_request_is_not_aborted(scripted_server):
    backend = scripted_server.backend
    backend.script = Script([toks("<|channel|>final<|message|>Done.<|return|>")])
    with httpx.Client(base_url=scripted_server.url) as client:
        client.post(URL, json=body(scripted_server.model, stream=True))
        client.post(URL, json=body(scripted_server.model))
    assert len(backend.finished) == 2 and backend.aborted == []


def test_a_stop_string_ends_the_choice_and_aborts_the_rest_of_the_generation(scripted_server):
    backend = scripted_server.backend
    backend.script = Script(
        [toks("<|channel|>final<|message|>Count: 1 2 3 4 5 6 7 8 9 10<|return|>")]
    )
    with httpx.Client(base_url=scripted_server.url) as client:
        data = client.post(URL, json=body(scripted_server.model, stop=" 3")).json()
    assert data["choices"][0]["message"]["content"] == "Count: 1 2"
    assert data["choices"][0]["finish_reason"] == "stop"
    assert len(backend.aborted) == 1 and backend.finished == []


class _FailingBackend(ScriptedBackend):
    async def start(self) -> None:
        raise RuntimeError("no such checkpoint")


def test_an_engine_that_failed_to_load_is_reported_by_ready_and_requests(make_server, caplog):
    """/ready and requests say it failed with a fixed reason; the cause (internal paths,
    addresses, a replica's own error) goes to the server's log only."""
    server = make_server(backend=_FailingBackend(ready=False), ready=False)
    with httpx.Client(base_url=server.url) as client:
        wait_for(lambda: "failed to start" in client.get("/ready").text)
        ready = client.get("/ready")
        response = client.post(URL, json=body(server.model))
    assert ready.status_code == 503 and response.status_code == 503
    for answer in (ready, response):
        assert "no such checkpoint" not in answer.text and "RuntimeError" not in answer.text
        assert "server's log" in answer.json()["error"]["message"]
    assert "no such checkpoint" in caplog.text


def test_an_engine_finishing_a_request_with_error_is_a_500_not_an_empty_answer(scripted_server):
    scripted_server.backend.script = Script([[]], finish_reason="error")
    response = post_json(
        scripted_server, body(scripted_server.model, response_format={"type": "json_object"})
    )
    error = response.json()["error"]
    assert response.status_code == 500
    assert "grammar" in error["message"]


def test_an_engine_error_finish_mid_stream_is_an_error_event(scripted_server):
    scripted_server.backend.script = Script([LONG[:20]], finish_reason="error")
    with httpx.Client(base_url=scripted_server.url) as client:
        response = client.post(URL, json=body(scripted_server.model, stream=True))
    events = sse_events(response.text)
    assert events[-1] == "[DONE]"
    assert any("error" in json.loads(e) for e in events[:-1])


def post_json(server, payload) -> httpx.Response:
    with httpx.Client(base_url=server.url) as client:
        return client.post(URL, json=payload)
