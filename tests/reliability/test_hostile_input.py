"""Hostile input through the real server (scripted engine): zero 5xx, OpenAI-shaped refusals
(Anthropic-shaped on /v1/messages).

Two layers: schemathesis generating valid and invalid requests from the server's own OpenAPI
schema, and hand-written bodies for what a generator rarely produces (lone surrogates, invalid
UTF-8, deep nesting, NaN, 10,000 messages, megabytes of text, broken tool schemas).
"""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, settings

from proxy.backends.scripted import Script, ScriptedBackend
from proxy.server.app import create_app
from proxy.server.settings import ProxyConfig
from tests.proxy.helpers import toks

URL = "/v1/chat/completions"
MODEL = "scripted-gpt-oss"
ANSWER = toks("<|channel|>final<|message|>ok<|return|>")

_schema_app = create_app(ProxyConfig(served_model_names=(MODEL,)), ScriptedBackend())
schema = schemathesis.openapi.from_dict(_schema_app.openapi())


def assert_openai_shaped(status: int, payload: Any, where: str) -> None:
    assert status < 500, f"{where}: {status} {payload}"
    if status >= 400:
        assert isinstance(payload, dict) and set(payload) == {"error"}, (where, payload)
        assert set(payload["error"]) == {"message", "type", "param", "code"}, (where, payload)
        assert payload["error"]["message"], (where, payload)


@schema.parametrize()
@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=True,
)
def test_schemathesis_finds_no_5xx_and_only_openai_shaped_errors(case, _scripted_session):
    _scripted_session.backend.script = Script([ANSWER])
    response = case.call(base_url=_scripted_session.url, timeout=30)
    try:
        payload = response.json()
    except ValueError:
        payload = response.text
    where = f"{case.method} {case.path}"
    if case.path.startswith("/v1/messages"):
        assert_anthropic_shaped(response.status_code, payload, where)
    elif response.status_code >= 400 or case.path != URL:
        assert_openai_shaped(response.status_code, payload, where)


def assert_anthropic_shaped(status: int, payload: Any, where: str) -> None:
    """The Messages API answers its errors as Anthropic does (proxy/api/messages/errors.py)."""
    assert status < 500, f"{where}: {status} {payload}"
    if status >= 400:
        assert isinstance(payload, dict) and payload.get("type") == "error", (where, payload)
        assert set(payload["error"]) == {"type", "message"}, (where, payload)
        assert payload["error"]["message"], (where, payload)


def _body(**extra: Any) -> dict[str, Any]:
    return {"model": MODEL, "messages": [{"role": "user", "content": "Hi"}], **extra}


def _user(content: Any) -> list[dict[str, Any]]:
    return [{"role": "user", "content": content}]


_WEATHER = {"type": "function", "function": {"name": "w", "parameters": {"type": "object"}}}

# (name, raw body bytes, expected status, expected `param`)
RAW_CASES: list[tuple[str, bytes, int, str | None]] = [
    (
        "lone surrogate in content",
        b'{"model":"%s","messages":[{"role":"user","content":"a\\ud800b"}]}' % MODEL.encode(),
        400,
        "messages[0].content",
    ),
    (
        "lone surrogate in model",
        b'{"model":"\\udfff","messages":[{"role":"user","content":"x"}]}',
        400,
        "model",
    ),
    (
        "invalid UTF-8",
        b'{"model":"%s","messages":[{"role":"user","content":"\xff\xfe"}]}' % MODEL.encode(),
        400,
        None,
    ),
    ("NaN temperature", json.dumps(_body(temperature=float("nan"))).encode(), 400, "temperature"),
    ("Infinity top_p", json.dumps(_body(top_p=float("inf"))).encode(), 400, "top_p"),
    (
        "deeply nested JSON",
        b'{"model":"%s","messages":[],"metadata":' % MODEL.encode()
        + b"[" * 100_000
        + b"]" * 100_000
        + b"}",
        400,
        None,
    ),
    ("truncated JSON", b'{"model": ', 400, None),
    ("a JSON array", b"[1, 2]", 400, None),
    ("empty body", b"", 400, None),
]

JSON_CASES: list[tuple[str, dict[str, Any], int, str | None]] = [
    ("wrong types everywhere", {"model": 5, "messages": "hi", "n": "two"}, 400, "model"),
    ("messages null", {"model": MODEL, "messages": None}, 400, "messages"),
    ("content a number", {"model": MODEL, "messages": _user(5)}, 400, "messages[0].content"),
    (
        "unknown role",
        {"model": MODEL, "messages": [{"role": "wizard", "content": "x"}]},
        400,
        "messages[0]",
    ),
    ("no role", {"model": MODEL, "messages": [{"content": "x"}]}, 400, "messages[0]"),
    ("empty messages", {"model": MODEL, "messages": []}, 400, "messages"),
    ("10,000 messages", {"model": MODEL, "messages": _user("hi") * 10_000}, 400, "messages"),
    ("3 MB message", {"model": MODEL, "messages": _user("a" * 3_000_000)}, 400, "messages"),
    ("huge max_tokens", _body(max_tokens=10**30), 400, "max_tokens"),
    ("huge seed", _body(seed=10**30), 400, "seed"),
    ("huge n", _body(n=10**6), 400, "n"),
    ("negative max_tokens", _body(max_tokens=-1), 400, "max_tokens"),
    ("five stop strings", _body(stop=["a"] * 5), 400, "stop"),
    ("top_logprobs 100", _body(logprobs=True, top_logprobs=100), 400, "top_logprobs"),
    (
        "tool parameters a list",
        _body(tools=[{"type": "function", "function": {"name": "f", "parameters": [1]}}]),
        400,
        "tools[0].function.parameters",
    ),
    (
        "tool parameters not JSON Schema",
        _body(
            tools=[{"type": "function", "function": {"name": "f", "parameters": {"type": 5}}}],
            tool_choice="required",
        ),
        400,
        None,
    ),
    (
        "tool_call_id that points nowhere",
        {
            "model": MODEL,
            "messages": [*_user("x"), {"role": "tool", "tool_call_id": "call_x", "content": "1"}],
        },
        400,
        "messages[1].tool_call_id",
    ),
    (
        "tool_choice naming no tool",
        _body(tools=[_WEATHER], tool_choice={"type": "function", "function": {"name": "nope"}}),
        400,
        "tool_choice",
    ),  # fmt: skip
    ("response_format a string", _body(response_format="json"), 400, "response_format"),
    (
        "image content part",
        {"model": MODEL, "messages": _user([{"type": "image_url", "image_url": {"url": "x"}}])},
        400,
        "messages[0].content[0].type",
    ),
    (
        "chat_template_kwargs effort not a string",
        _body(chat_template_kwargs={"reasoning_effort": 7}),
        400,
        "chat_template_kwargs.reasoning_effort",
    ),
    ("unknown model", {**_body(), "model": "gpt-5"}, 404, "model"),
]


@pytest.mark.parametrize(
    ("name", "raw", "status", "param"), RAW_CASES, ids=[c[0] for c in RAW_CASES]
)
def test_hostile_raw_bodies_are_refused_cleanly(scripted_server, name, raw, status, param):
    with httpx.Client(base_url=scripted_server.url, timeout=30) as client:
        response = client.post(URL, content=raw, headers={"content-type": "application/json"})
    assert_openai_shaped(response.status_code, response.json(), name)
    assert response.status_code == status
    assert response.json()["error"]["param"] == param
    assert scripted_server.backend.requests == []


@pytest.mark.parametrize(
    ("name", "payload", "status", "param"), JSON_CASES, ids=[c[0] for c in JSON_CASES]
)
def test_hostile_json_bodies_are_refused_cleanly(scripted_server, name, payload, status, param):
    with httpx.Client(base_url=scripted_server.url, timeout=30) as client:
        response = client.post(URL, json=payload)
    assert_openai_shaped(response.status_code, response.json(), name)
    assert response.status_code == status, response.text
    if param is not None:
        assert response.json()["error"]["param"] == param
    assert scripted_server.backend.requests == []


def test_a_body_over_the_size_limit_is_a_413_before_parsing(make_server):
    backend = ScriptedBackend()
    config = ProxyConfig(served_model_names=(backend.model_name,), max_body_bytes=1000)
    server = make_server(config, backend)
    with httpx.Client(base_url=server.url) as client:
        declared = client.post(URL, json=_body(messages=_user("x" * 2000)))

        def chunked():  # no Content-Length: the limit applies to the bytes actually sent
            yield json.dumps(_body(messages=_user("x" * 2000))).encode()

        streamed = client.post(URL, content=chunked())
        small = client.post(URL, json=_body(max_tokens=2))
    for response in (declared, streamed):
        assert response.status_code == 413
        assert response.json()["error"]["code"] == "request_too_large"
    assert small.status_code == 200


def test_the_sampling_fields_vllm_users_send_reach_the_engine(scripted_server):
    scripted_server.backend.script = Script([ANSWER])
    payload = _body(
        top_k=40,
        min_p=0.05,
        repetition_penalty=1.1,
        chat_template_kwargs={"reasoning_effort": "high"},
    )
    with httpx.Client(base_url=scripted_server.url) as client:
        assert client.post(URL, json=payload).status_code == 200
        assert client.post(URL, json=_body()).status_code == 200
    tuned, plain = scripted_server.backend.requests
    assert (tuned.sampling.top_k, tuned.sampling.min_p) == (40, 0.05)
    assert tuned.sampling.repetition_penalty == 1.1
    assert (plain.sampling.top_k, plain.sampling.min_p, plain.sampling.repetition_penalty) == (
        0,
        0.0,
        1.0,
    )
    text = toks_text(tuned.prompt_token_ids)
    assert "Reasoning: high" in text and "Reasoning: high" not in toks_text(plain.prompt_token_ids)


def toks_text(tokens: list[int]) -> str:
    from proxy.core.conversation import load_encoding

    return load_encoding().decode(tokens)
