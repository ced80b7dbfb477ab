"""The streaming wire format, checked with raw HTTP against the real uvicorn server."""

from __future__ import annotations

import json

import httpx

from proxy.backends.scripted import Script
from tests.proxy.helpers import body, fold_content, sse_events, stream_chunks, toks

ANSWER = toks(
    "<|channel|>analysis<|message|>User greets.<|end|>"
    "<|start|>assistant<|channel|>final<|message|>Hello there!<|return|>"
)


def test_stream_is_data_events_ending_with_done(scripted_server):
    scripted_server.backend.script = Script([ANSWER])
    with httpx.Client(base_url=scripted_server.url) as client:
        response = client.post(
            "/v1/chat/completions", json=body(scripted_server.model, stream=True)
        )
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    raw = response.text
    assert raw.endswith("data: [DONE]\n\n")
    for block in raw.strip("\n").split("\n\n"):
        assert block.startswith("data: ") and "\n" not in block
    events = sse_events(raw)
    chunks = [json.loads(e) for e in events[:-1]]
    assert {c["id"] for c in chunks} == {chunks[0]["id"]}
    assert {c["created"] for c in chunks} == {chunks[0]["created"]}
    assert all(c["object"] == "chat.completion.chunk" for c in chunks)
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}


def test_stream_headers_keep_caches_and_buffering_proxies_out(scripted_server):
    scripted_server.backend.script = Script([ANSWER])
    with httpx.Client(base_url=scripted_server.url) as client:
        response = client.post(
            "/v1/chat/completions", json=body(scripted_server.model, stream=True)
        )
    assert response.headers["content-type"] == "text/event-stream; charset=utf-8"
    assert response.headers["cache-control"] == "no-cache"
    assert response.headers["x-accel-buffering"] == "no"  # nginx: do not hold events back
    assert response.headers["connection"] == "keep-alive"
    assert response.headers["transfer-encoding"] == "chunked"


def test_reasoning_and_content_arrive_as_separate_delta_fields(scripted_server):
    scripted_server.backend.script = Script([ANSWER])
    with httpx.Client(base_url=scripted_server.url) as client:
        chunks = stream_chunks(client, "/v1/chat/completions", body(scripted_server.model))
    folded = fold_content(chunks)
    assert folded["reasoning"] == "User greets."
    assert folded["content"] == "Hello there!"
    assert folded["finish_reason"] == "stop"
    for chunk in chunks:
        delta = chunk["choices"][0]["delta"]
        assert delta.get("reasoning_content") == delta.get("reasoning")
        assert "<|" not in (delta.get("content") or "")


def test_last_choice_chunk_has_empty_delta_and_finish_reason(scripted_server):
    scripted_server.backend.script = Script([ANSWER])
    with httpx.Client(base_url=scripted_server.url) as client:
        chunks = stream_chunks(client, "/v1/chat/completions", body(scripted_server.model))
    last = chunks[-1]["choices"][0]
    assert last["delta"] == {} and last["finish_reason"] == "stop"
    assert all(c["choices"][0]["finish_reason"] is None for c in chunks[:-1])
    assert all("usage" not in c for c in chunks)


def test_include_usage_adds_a_usage_chunk_with_empty_choices(scripted_server):
    scripted_server.backend.script = Script([ANSWER])
    payload = body(scripted_server.model, stream_options={"include_usage": True})
    with httpx.Client(base_url=scripted_server.url) as client:
        chunks = stream_chunks(client, "/v1/chat/completions", payload)
    *body_chunks, usage_chunk = chunks
    assert all(c["usage"] is None for c in body_chunks)
    assert usage_chunk["choices"] == []
    usage = usage_chunk["usage"]
    prompt_len = len(scripted_server.backend.requests[-1].prompt_token_ids)
    assert usage["prompt_tokens"] == prompt_len
    assert usage["completion_tokens"] == len(ANSWER)
    assert usage["total_tokens"] == prompt_len + len(ANSWER)
    assert usage["completion_tokens_details"]["reasoning_tokens"] == len(toks("User greets."))


def test_non_streaming_response_is_the_stream_folded_up(scripted_server):
    scripted_server.backend.script = Script([ANSWER])
    with httpx.Client(base_url=scripted_server.url) as client:
        chunks = stream_chunks(client, "/v1/chat/completions", body(scripted_server.model))
        whole = client.post("/v1/chat/completions", json=body(scripted_server.model)).json()
    folded = fold_content(chunks)
    message = whole["choices"][0]["message"]
    assert whole["object"] == "chat.completion"
    assert message["role"] == "assistant"
    assert message["content"] == folded["content"]
    assert message["reasoning"] == message["reasoning_content"] == folded["reasoning"]
    assert message["tool_calls"] is None
    assert whole["choices"][0]["finish_reason"] == folded["finish_reason"]
    assert whole["usage"]["completion_tokens"] == len(ANSWER)


def test_x_request_id_is_echoed_and_names_the_completion(scripted_server):
    scripted_server.backend.script = Script([ANSWER])
    with httpx.Client(base_url=scripted_server.url) as client:
        response = client.post(
            "/v1/chat/completions",
            json=body(scripted_server.model),
            headers={"X-Request-Id": "trace-42"},
        )
        generated = client.get("/health")
    assert response.headers["x-request-id"] == "trace-42"
    assert response.json()["id"] == "chatcmpl-trace-42"
    assert scripted_server.backend.requests[-1].request_id.startswith("chatcmpl-trace-42")
    assert len(generated.headers["x-request-id"]) >= 16
